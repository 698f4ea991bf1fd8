"""Running a model through its plain, differentiable ops, not through fast CPU kernels."""
from contextlib import contextmanager

import torch


@contextmanager
def plain_ops(model, inputs):
    """The model's fast paths off, autograd on, ``inputs`` a leaf requiring gradients.

    Fused inference kernels (oneDNN convolutions with the BN folded or the next add in their
    epilogue) and the compiled depthwise kernel are neither traceable nor separate ops, so a
    forward that is traced or checked against runs every op as written: tracing counts each of
    them, and a check against it sees every BN.

    Args:
        model (nn.Module): The model; every submodule with a ``fast_path`` flag has it cleared
            for the duration and restored afterwards.
        inputs (Tensor): The input tensor.

    Yields:
        Tensor: A detached copy of ``inputs`` that requires gradients.
    """
    switched = [module for module in model.modules() if getattr(module, 'fast_path', False)]
    for module in switched:
        module.fast_path = False
    try:
        with torch.enable_grad():
            yield inputs.detach().requires_grad_()
    finally:
        for module in switched:
            module.fast_path = True
