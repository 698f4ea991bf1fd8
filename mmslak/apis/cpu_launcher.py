"""``--launcher`` runs on machines without CUDA: a gloo process group and a CPU model wrapper."""
import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS

from .cpu_process_group import init_cpu_process_group


def cpu_model_wrapper_cfg(model_wrapper_cfg=None, find_unused_parameters=False):
    """The model wrapper config of a data-parallel run on CPUs.

    mmengine's ``MMDistributedDataParallel`` (the default, or named in the config) becomes
    ``mmslak.CPUDistributedDataParallel`` with the same arguments; a subclass of that is kept.

    Args:
        model_wrapper_cfg (dict, optional): The config's ``model_wrapper_cfg``.
        find_unused_parameters (bool): The config's ``find_unused_parameters``, used when there
            is no ``model_wrapper_cfg`` (as mmengine does). Defaults to False.

    Returns:
        dict: The wrapper config, without ``device_ids``.

    Raises:
        ValueError: If the config names another wrapper, which would need a GPU.
    """
    if model_wrapper_cfg is None:
        model_wrapper_cfg = dict(broadcast_buffers=False,
                                 find_unused_parameters=find_unused_parameters)
    wrapper_cfg = dict(model_wrapper_cfg)
    cpu_wrapper = MODEL_WRAPPERS.get('mmslak.CPUDistributedDataParallel')
    wrapper = MODEL_WRAPPERS.get(wrapper_cfg.get('type', 'MMDistributedDataParallel'))
    if wrapper is MMDistributedDataParallel:
        wrapper_cfg['type'] = 'mmslak.CPUDistributedDataParallel'
    elif wrapper is None or not issubclass(wrapper, cpu_wrapper):
        raise ValueError(f"model_wrapper_cfg type {wrapper_cfg['type']!r} cannot wrap a model "
                         'on the CPU; without CUDA use mmslak.CPUDistributedDataParallel (or '
                         'leave model_wrapper_cfg unset)')
    wrapper_cfg.pop('device_ids', None)
    return wrapper_cfg


def prepare_launcher(cfg):
    """Make a ``--launcher`` run work on a machine without CUDA; GPU runs stay mmengine's.

    Without CUDA the processes join a gloo process group before the runner would select a
    CUDA device, and the model is wrapped by ``mmslak.CPUDistributedDataParallel`` (no device
    ids, SyncBN layers synchronised over gloo).

    Args:
        cfg (Config): The config (its ``launcher`` set); changed in place.
    """
    if cfg.get('launcher', 'none') == 'none' or torch.cuda.is_available():
        return
    dist_cfg = cfg.setdefault('env_cfg', {}).setdefault('dist_cfg', {})
    dist_cfg['backend'] = 'gloo'
    init_cpu_process_group(cfg.launcher, dist_cfg.get('timeout'))
    cfg.model_wrapper_cfg = cpu_model_wrapper_cfg(cfg.get('model_wrapper_cfg'),
                                                  cfg.get('find_unused_parameters', False))
