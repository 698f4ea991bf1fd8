"""Timing the large-kernel depthwise op alone, per backend, at the shapes of a SLaK's stages.

Each case is one stage's op: the input ``(batch, C, H, W)`` of the stage and its ``k x s``,
``s x k`` and ``s x s`` kernels, in a precision and a direction (``forward``: the training
form's three outputs; ``forward+backward``: with the input and weight gradients). The backends
are those of :mod:`mmslak.ops` that take the case, plus ``torch_channels_last`` (PyTorch on a
channels-last copy of the input: cuDNN on a GPU).
"""
import statistics
import time
from typing import NamedTuple

import torch

from mmslak.ops import depthwise_convs, use_ops
from mmslak.ops.large_kernel import CONVS


class OpCase(NamedTuple):
    """One stage's depthwise op: input shape and kernel shapes."""
    stage: int
    shape: tuple
    kernels: tuple

    def macs(self, direction):
        """Multiply-adds: per output element one per kernel tap; a backward twice the forward
        (input and weight gradients)."""
        n, c, h, w = self.shape
        forward = n * c * h * w * sum(kh * kw for kh, kw in self.kernels)
        return forward * (3 if direction == 'forward+backward' else 1)


def slak_op_cases(backbone, shape, batch):
    """The op of each stage of ``backbone`` (a SLaK) on ``batch`` images of ``shape``.

    Args:
        backbone (mmslak.models.SLaK): The network whose stages give channels and kernels.
        shape (tuple[int, int]): Input height and width of the network.
        batch (int): Images per batch.

    Returns:
        list[OpCase]: One case per stage.
    """
    small = backbone.kernel_size[-1]
    cases = []
    for stage, (channels, k) in enumerate(zip(backbone.channels, backbone.kernel_size[:4])):
        stride = 4 * 2**stage
        kernels = ((k, small), (small, k)) if backbone.decompose else ((k, k), )
        if small < k:
            kernels += ((small, small), )
        cases.append(OpCase(stage, (batch, channels, shape[0] // stride, shape[1] // stride),
                            kernels))
    return cases


def _synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_case(case, backend, dtype, direction, device, runs=5, warmup=1):
    """Median milliseconds of the case on ``backend`` (a name of :data:`CONVS`).

    Args:
        case (OpCase): What to time.
        backend (str): ``'torch'``, ``'torch_channels_last'``, ``'cpu'`` or ``'triton'``.
        dtype (torch.dtype): Input and kernel dtype.
        direction (str): ``'forward'`` or ``'forward+backward'``.
        device (torch.device): Where to run.
        runs (int): Timed calls. Defaults to 5.
        warmup (int): Untimed calls first (compilation, autotuning). Defaults to 1.

    Returns:
        float: Milliseconds per call.
    """
    grad = direction == 'forward+backward'
    x = torch.randn(case.shape, device=device, dtype=dtype, requires_grad=grad)
    if backend == 'cpu':
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(grad)
    kernels = [torch.randn(case.shape[1], 1, *k, device=device, dtype=dtype,
                           requires_grad=grad) for k in case.kernels]
    grads = [torch.randn_like(x) for _ in kernels] if grad else None
    run = CONVS[backend]
    forced = backend if backend in ('cpu', 'triton') else 'torch'

    def call():
        with use_ops(forced), torch.set_grad_enabled(grad):
            outs = run(x, kernels) if forced == 'torch' else depthwise_convs(x, kernels)
            if grad:
                torch.autograd.backward(outs, grads)

    times = []
    for i in range(warmup + runs):
        _synchronize(device)
        start = time.perf_counter()
        call()
        _synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3
