"""Config preparation shared by ``tools/train.py`` and ``tools/test.py`` for mmdet and mmseg."""
import logging
import os.path as osp

import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS, RUNNERS

from mmslak.engine.runner import ToolRunner
from mmslak.stack import check_task
from .cpu_distributed import init_cpu_process_group

# default_scope of a config -> the task it runs and how its visualisation hook saves pictures.
TASKS = {'mmseg': 'segmentation', 'mmdet': 'detection'}


def task_of(cfg):
    """The task of a config, from its ``default_scope``.

    Raises:
        ValueError: If the config is neither an mmseg nor an mmdet config.
    """
    scope = cfg.get('default_scope')
    if scope not in TASKS:
        raise ValueError(f'The config is neither an mmseg nor an mmdet config (its default_scope '
                         f'is {scope!r}); set default_scope to one of {sorted(TASKS)}')
    return TASKS[scope]


def add_common_args(parser):
    """Arguments that both entry points take, as the upstream tools name them."""
    parser.add_argument('config', help='config file of an mmseg or mmdet model')
    parser.add_argument('--work-dir', help='folder for logs and checkpoints '
                        '(default: ./work_dirs/CONFIG_NAME)')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override config entries, e.g. model.backbone.init_cfg.checkpoint=SLaK_tiny.pth')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher for distributed runs')
    # torchrun sets LOCAL_RANK; older launchers pass --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def load_config(args):
    """Read the config and apply ``--cfg-options``, ``--launcher`` and ``--work-dir``."""
    if not osp.isfile(args.config):
        raise FileNotFoundError(f'Config file not found: {args.config}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    task_of(cfg)
    check_task(cfg.default_scope)  # after task_of: a config of neither task is named as such
    cfg.launcher = args.launcher
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def enable_visualization(cfg, show_dir=None, show=False, wait_time=2.):
    """Turn on the task's visualisation hook; pictures go to ``show_dir`` when given.

    Raises:
        ValueError: If the config has no visualisation hook.
    """
    hook = cfg.default_hooks.get('visualization')
    if hook is None:
        raise ValueError("The config's default_hooks has no 'visualization' hook to draw with")
    # mmseg's hook draws every ``interval``-th image only (50 by default): draw them all.
    hook.update(draw=True, interval=1)
    if show:
        hook.update(show=True, wait_time=wait_time)
    if show_dir is not None:
        if task_of(cfg) == 'segmentation':
            cfg.visualizer['save_dir'] = show_dir
        else:
            hook['test_out_dir'] = show_dir


def cpu_model_wrapper_cfg(model_wrapper_cfg=None, find_unused_parameters=False):
    """The model wrapper config of a data-parallel run on CPUs.

    mmengine's ``MMDistributedDataParallel`` (the default, or named in the config) becomes
    ``mmslak.CPUDistributedDataParallel`` with the same arguments; a subclass of that is kept.

    Args:
        model_wrapper_cfg (dict, optional): The config's ``model_wrapper_cfg``.
        find_unused_parameters (bool): The config's ``find_unused_parameters``, used when there
            is no ``model_wrapper_cfg`` (as mmengine does). Defaults to False.

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


def enable_amp(cfg, force=False):
    """Mixed precision for the machine: fp16 with dynamic loss scaling on CUDA, bf16 on CPUs.

    With ``force`` (``tools/train.py --amp``) the optimizer wrapper becomes ``AmpOptimWrapper``
    on CUDA. On a machine without CUDA, where ``AmpOptimWrapper`` cannot run, a forced run or a
    config asking for ``AmpOptimWrapper`` trains with ``mmslak.CPUAmpOptimWrapper`` (bfloat16
    autocast, no loss scaling), which is logged.

    Args:
        cfg (Config): The config; changed in place.
        force (bool): Turn mixed precision on even if the config does not ask for it.
            Defaults to False.
    """
    wrapper = cfg.optim_wrapper
    if torch.cuda.is_available():
        if force:
            wrapper.type = 'AmpOptimWrapper'
            wrapper.setdefault('loss_scale', 'dynamic')
        return
    if not force and wrapper.get('type') != 'AmpOptimWrapper':
        return
    print_log('Mixed precision without CUDA: training with mmslak.CPUAmpOptimWrapper (bfloat16 '
              'autocast, no loss scaling)', logger='current', level=logging.WARNING)
    wrapper.pop('loss_scale', None)
    wrapper.update(type='mmslak.CPUAmpOptimWrapper', dtype='bfloat16')


def add_training_safeguards(cfg):
    """Add ``mmslak.FiniteLossHook`` and ``mmslak.RandomStateHook`` to ``custom_hooks``.

    The run then stops at the first non-finite loss, and a resumed run draws the random
    numbers the interrupted one would have. Hooks the config already lists are not repeated.

    Args:
        cfg (Config): The config; changed in place.
    """
    hooks = list(cfg.get('custom_hooks') or [])
    listed = {hook.get('type') for hook in hooks}
    for name in ('FiniteLossHook', 'RandomStateHook'):
        if name not in listed and f'mmslak.{name}' not in listed:
            hooks.append(dict(type=f'mmslak.{name}'))
    cfg.custom_hooks = hooks


def build_runner(cfg):
    """Build the config's runner after :func:`prepare_launcher`: ``runner_type`` if the config
    names one, else ``mmslak.ToolRunner`` (checkpoints load only if they fit, failing data files
    are named, one process writes the test metrics)."""
    prepare_launcher(cfg)
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return ToolRunner.from_cfg(cfg)
