"""The triton backend of the large-kernel depthwise op: launchers of :mod:`.kernels` and their
autograd function (forward, input gradient, weight gradients)."""
import torch
import triton

from .kernels import depthwise_fwd_kernel, depthwise_wgrad_kernel

MAX_KERNELS = 3
# Splits of the pixels in a weight gradient: enough programs to fill a GPU with few channels,
# and a partial-sum buffer of SPLITS x taps x C floats.
MAX_SPLITS = 64


def _fwd_grid(n, c, h, w):
    return lambda meta: (n * triton.cdiv(c, meta['BLOCK_C']), triton.cdiv(h, meta['BLOCK_H']),
                         triton.cdiv(w, meta['BLOCK_W']))


def _launch(inputs, kernels, outs, bias=None):
    """One launch over up to three ``(input, kernel)`` pairs into ``outs`` (one output: their
    sum plus ``bias``; one per pair: each correlation)."""
    n, c, h, w = outs[0].shape
    if outs[0].numel() == 0:
        if len(outs) == 1:
            outs[0].zero_()
        return outs
    count = len(kernels)
    inputs = list(inputs) + [inputs[0]] * (MAX_KERNELS - count)
    shapes = [k.shape[2:] for k in kernels] + [(1, 1)] * (MAX_KERNELS - count)
    kernels = [k.contiguous() for k in kernels] + [kernels[0]] * (MAX_KERNELS - count)
    targets = list(outs) + [outs[0]] * (MAX_KERNELS - len(outs))
    strides = [s for x in inputs for s in x.stride()]
    depthwise_fwd_kernel[_fwd_grid(n, c, h, w)](
        *inputs, *strides, *kernels, outs[0] if bias is None else bias, *targets,
        *outs[0].stride(), c, h, w, shapes[0][0], shapes[0][1], shapes[1][0], shapes[1][1],
        shapes[2][0], shapes[2][1], NUM_K=count, SUM=len(outs) == 1, HAS_BIAS=bias is not None)
    return outs


def conv_sum(x, kernels, bias=None):
    """The sum of the depthwise correlations of ``x`` with ``kernels`` plus ``bias``, one launch.

    Args:
        x (Tensor): Input ``(N, C, H, W)``, any strides.
        kernels (Sequence[Tensor]): At most three kernels ``(C, 1, kh, kw)``, sizes odd.
        bias (Tensor, optional): Bias ``(C, )``. Defaults to None.

    Returns:
        Tensor: The sum, laid out like ``x``, in its dtype (accumulated in float32).
    """
    return _launch([x] * len(kernels), kernels, [torch.empty_like(x)], bias)[0]


def _weight_grad(x, grad, shape):
    """The gradient of a ``shape`` kernel from its output gradient: per-split partial sums,
    added in a fixed order."""
    n, c, h, w = x.shape
    kh, kw = shape
    splits = max(1, min(MAX_SPLITS, triton.cdiv(n * h * w, 256)))
    partial = torch.zeros(splits, kh * kw, c, device=x.device, dtype=torch.float32)
    if x.numel():
        depthwise_wgrad_kernel[lambda meta: (triton.cdiv(c, meta['BLOCK_C']), splits)](
            x, *x.stride(), grad, *grad.stride(), partial, n, c, h, w, splits, kh, kw)
    return partial.sum(0).t().reshape(c, 1, kh, kw)


class DepthwiseConvs(torch.autograd.Function):
    """Separate bias-free depthwise correlations of one input with up to three kernels, their
    forward in one launch, the input gradient in another, and each weight gradient in one."""

    @staticmethod
    def forward(ctx, x, *kernels):
        ctx.save_for_backward(x, *kernels)
        return tuple(_launch([x] * len(kernels), kernels, [torch.empty_like(x) for _ in kernels]))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        x, *kernels = ctx.saved_tensors
        used = [i for i, g in enumerate(grads) if g is not None]
        grad_x = None
        if ctx.needs_input_grad[0]:
            if used:
                grad_x = _launch([grads[i] for i in used],
                                 [kernels[i].flip(2, 3) for i in used], [torch.empty_like(x)])[0]
            else:
                grad_x = torch.zeros_like(x)
        grad_kernels = [
            _weight_grad(x, grads[i], kernels[i].shape[2:]).to(kernels[i].dtype)
            if ctx.needs_input_grad[1 + i] and grads[i] is not None else None
            for i in range(len(kernels))
        ]
        return (grad_x, *grad_kernels)


def convs(x, kernels):
    """Each depthwise correlation of ``x``, differentiable (:class:`DepthwiseConvs`).

    Args:
        x (Tensor): Input ``(N, C, H, W)``, any strides.
        kernels (Sequence[Tensor]): At most three kernels ``(C, 1, kh, kw)``, sizes odd.

    Returns:
        tuple[Tensor]: One output per kernel, each laid out like ``x``.
    """
    return DepthwiseConvs.apply(x, *kernels)
