from contextlib import contextmanager

import torch
from mmengine.optim import OptimWrapper

from mmslak.registry import OPTIM_WRAPPERS


@OPTIM_WRAPPERS.register_module()
class CPUAmpOptimWrapper(OptimWrapper):
    """Mixed-precision training on the CPU: the forward and the loss run under bfloat16 autocast.

    mmengine's ``AmpOptimWrapper`` needs a GPU (its loss scaler is CUDA's). bfloat16 has the
    exponent range of float32, so no loss scaling is needed: backward and step are the plain
    wrapper's. ``tools/train.py --amp`` picks this wrapper on machines without CUDA.

    Args:
        dtype (str | torch.dtype): The autocast precision; the CPU autocasts to bfloat16 (or
            float16 where PyTorch supports it there). Defaults to ``'bfloat16'``.
        **kwargs: The arguments of :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self, dtype='bfloat16', **kwargs):
        super().__init__(**kwargs)
        dtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
        if dtype not in (torch.bfloat16, torch.float16):
            raise ValueError(f'CPUAmpOptimWrapper autocasts to bfloat16 or float16, got {dtype}')
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model):
        """The plain wrapper's context (gradient accumulation) inside CPU autocast.

        Args:
            model (nn.Module): The model being trained.
        """
        with super().optim_context(model), torch.autocast('cpu', dtype=self.cast_dtype):
            yield
