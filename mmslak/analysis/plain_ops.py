"""Running a model through its plain, differentiable ops, not through inference-only kernels."""
from contextlib import contextmanager

import torch


@contextmanager
def plain_ops(inputs):
    """Autograd on, and ``inputs`` as a leaf requiring gradients, for the duration.

    Inference-only kernels (such as fused oneDNN convolutions with the BN folded or the next add
    in their epilogue) have no backward, so a forward that must record a graph runs every op as
    written: tracing counts each of them, and a check against it sees every BN.

    Args:
        inputs (Tensor): The input tensor.

    Yields:
        Tensor: A detached copy of ``inputs`` that requires gradients.
    """
    with torch.enable_grad():
        yield inputs.detach().requires_grad_()
