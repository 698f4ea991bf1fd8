"""The triton backend: the large-kernel depthwise op as Triton kernels, for CUDA tensors and,
under ``TRITON_INTERPRET=1`` (set before triton is imported), for CPU tensors through Triton's
interpreter, which proves the kernels without a GPU.

The kernels are imported at the first call that takes them (:func:`kernels`), so that neither
triton nor its import time are needed elsewhere.
"""
import functools
import importlib.util
import os

import torch
from packaging.version import Version

MIN_TRITON = Version('3.4')
DTYPES = (torch.float32, torch.float16, torch.bfloat16)


@functools.lru_cache(maxsize=None)
def _why_not_installed():
    if importlib.util.find_spec('triton') is None:
        return 'triton is not installed (pip install triton)'
    import triton
    if Version(triton.__version__).release < MIN_TRITON.release:
        return f'triton {triton.__version__} is older than {MIN_TRITON}, the first it supports'
    return None


def interpreting():
    """Whether Triton runs its interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get('TRITON_INTERPRET') == '1'


def why_not_triton(x, kernels):
    """Why the triton backend cannot compute the depthwise op on ``x``, or None if it can.

    Args:
        x (Tensor): The input.
        kernels (Sequence[Tensor]): The kernels.
    """
    why = _why_not_installed()
    if why is not None:
        return why
    if x.device.type != 'cuda' and not (interpreting() and x.device.type == 'cpu'):
        return (f'the input is on {x.device.type}: triton takes CUDA tensors, and CPU tensors '
                'under TRITON_INTERPRET=1')
    if len(kernels) > 3:
        return f'one launch takes at most 3 kernels, got {len(kernels)}'
    dtypes = {x.dtype, *(k.dtype for k in kernels)}
    if not dtypes <= set(DTYPES):
        return f'triton takes {", ".join(map(str, DTYPES))}, not {sorted(map(str, dtypes))}'
    if interpreting() and torch.bfloat16 in dtypes:
        return "Triton's interpreter has no bfloat16 arithmetic (bfloat16 runs on a GPU)"
    return None


def kernels():
    """The launchers of :mod:`.depthwise` (imports triton)."""
    from . import depthwise
    return depthwise
