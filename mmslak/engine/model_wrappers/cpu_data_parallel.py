from mmengine.model import MMDistributedDataParallel

from mmslak.models.layers import CPUSyncBatchNorm
from mmslak.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's data-parallel wrapper for a model on the CPU (gloo process group).

    PyTorch's DistributedDataParallel takes no ``device_ids`` for a CPU module and refuses
    :class:`torch.nn.SyncBatchNorm` there, whose forward needs a GPU. This wrapper builds the
    wrapper without device ids and replaces every SyncBatchNorm by
    :class:`~mmslak.models.layers.CPUSyncBatchNorm`, which synchronises the batch statistics
    over the processes as SyncBN does on GPUs (same parameters and buffers, so checkpoints
    are unchanged). ``tools/train.py`` and ``tools/test.py`` use it for ``--launcher`` runs on
    machines without CUDA; on GPUs they keep mmengine's ``MMDistributedDataParallel``.

    Args:
        module (nn.Module): The model, on the CPU.
        device_ids (list[int], optional): Not used: a CPU module has no device ids, and
            mmengine's runner passes the local rank here by default. Defaults to None.
        **kwargs: The other arguments of :class:`MMDistributedDataParallel`.

    Raises:
        ValueError: If the model has parameters off the CPU, or holds mmcv's MMSyncBN.
    """

    def __init__(self, module, device_ids=None, **kwargs):
        devices = {param.device.type for param in module.parameters()}
        if devices - {'cpu'}:
            raise ValueError(f'CPUDistributedDataParallel wraps CPU models, this one has '
                             f'parameters on {sorted(devices)}; use MMDistributedDataParallel')
        module = CPUSyncBatchNorm.convert_sync_batchnorm(module)
        super().__init__(module=module, device_ids=None, **kwargs)
