"""Running a model through the reference ops, differentiably, not through the CPU backend."""
from contextlib import contextmanager

import torch

from mmslak.ops import use_ops


@contextmanager
def plain_ops(inputs):
    """The ``torch`` ops (:func:`mmslak.ops.use_ops`), autograd on, ``inputs`` a leaf requiring
    gradients.

    The CPU backend's fused kernels (oneDNN convolutions with the BN folded or the next add in
    their epilogue, the compiled depthwise kernel) are neither traceable nor separate ops, so a
    forward that is traced or checked against runs every op as written: tracing counts each of
    them, and a check against it sees every BN.

    Args:
        inputs (Tensor): The input tensor.

    Yields:
        Tensor: A detached copy of ``inputs`` that requires gradients.
    """
    with use_ops('torch'), torch.enable_grad():
        yield inputs.detach().requires_grad_()
