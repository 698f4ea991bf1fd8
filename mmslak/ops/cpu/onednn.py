"""oneDNN's fused CPU operators, for the CPU backend: linear layers with their GELU or residual
in the epilogue, and biased depthwise convolutions.

PyTorch's CPU build carries oneDNN operators that apply a GELU to, or add a tensor to, the output
of a linear layer while it is still in cache (the GELU only where that is faster: with AVX-512).
They have no autograd formula, so they serve inference only. :func:`linear` runs the forward of
training through oneDNN too (its bias epilogue saves ``addmm``'s copy of the bias into the
output) and the backward through MKL on Intel CPUs, through oneDNN elsewhere (about twice as fast
as MKL on an AMD EPYC).
"""
import functools

import torch

from .kernel_library import cpu_vendor

ONEDNN = torch.backends.mkldnn.is_available() and all(
    hasattr(torch.ops.mkldnn, name) for name in ('_linear_pointwise', '_convolution_pointwise'))


def why_not_onednn(x, dtypes):
    """Why oneDNN's operators cannot take ``x``, or None if they can.

    Args:
        x (Tensor): The input.
        dtypes (Sequence[torch.dtype]): The dtypes the caller accepts (bfloat16 only where
            oneDNN supports it on this CPU).
    """
    if not (ONEDNN and torch.backends.mkldnn.enabled):
        return 'oneDNN is not available or disabled (torch.backends.mkldnn.flags)'
    if x.device.type != 'cpu':
        return f'the input is on {x.device.type}'
    if x.numel() == 0:
        return 'the input is empty (oneDNN builds no primitive for 0 rows)'
    if x.dtype not in dtypes or not dtype_supported(x.dtype):
        return f'the input is {x.dtype}'
    return None


def dtype_supported(dtype):
    """Whether oneDNN computes ``dtype`` here: float32, and bfloat16 on CPUs with its kernels."""
    if dtype == torch.float32:
        return True
    return dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def fused_linear(x, weight, bias=None, gelu=None, residual=None):
    """``F.linear`` over the last dimension with an optional GELU or residual, in one call.

    For inference only (no autograd formula), where :func:`why_not_onednn` finds nothing.

    Args:
        x (Tensor): Input of shape ``(..., in_features)``.
        weight (Tensor): Weight of shape ``(out_features, in_features)``, as it is or packed by
            :func:`pack_linear_weight`.
        bias (Tensor, optional): Bias of shape ``(out_features, )``. Defaults to None.
        gelu (str, optional): Apply a GELU with this approximation (``'none'`` for the exact
            erf form, ``'tanh'``); None for no activation. Defaults to None.
        residual (Tensor, optional): Added to the output (same shape, any strides); not
            combinable with ``gelu``. Defaults to None.

    Returns:
        Tensor: The contiguous output of shape ``(..., out_features)``.
    """
    if residual is not None:
        if gelu is not None:
            raise ValueError('fused_linear applies either a GELU or a residual, not both')
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, weight, bias, 'add')
    if gelu is not None and gelu_in_epilogue():
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'gelu', [], gelu)
    out = torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'none', [], '')
    return out if gelu is None else torch.ops.aten.gelu_(out, approximate=gelu)


@functools.lru_cache(maxsize=None)
def gelu_in_epilogue():
    """Whether oneDNN applies the GELU of :func:`fused_linear` in its epilogue: with AVX-512
    only. Without it, oneDNN's erf GELU costs more than PyTorch's in place on the matrix
    multiply's output (SLaK-T deploy form, 1 x 3 x 512 x 512, 2 threads, alternating runs:
    AVX2 511 ms with the epilogue, 503 ms without; AVX-512 282 ms with, 290 ms without)."""
    return torch.backends.cpu.get_cpu_capability().startswith('AVX512')


def _onednn_mm(a, b):
    """``a @ b`` for 2-D ``a`` and ``b`` (any strides) through oneDNN."""
    return torch.ops.mkldnn._linear_pointwise(a, b.t(), None, 'none', [], '')


@functools.lru_cache(maxsize=None)
def mkl_is_fast():
    """Whether the backward matrix multiplies of :func:`linear` run through MKL (``torch.mm``)
    rather than oneDNN: on Intel CPUs. There MKL computes the weight gradient about twice as
    fast as oneDNN (SLaK-T's 36 MLP layers at batch 2 x 512 x 512, 2 threads: 429 vs 733 ms with
    AVX-512, 681 vs 1011 ms with AVX2) and the input gradient as fast; on other vendors' CPUs
    MKL takes slower paths and oneDNN was about twice as fast (AMD EPYC)."""
    return torch.backends.mkl.is_available() and cpu_vendor() == 'GenuineIntel'


class _OneDNNLinear(torch.autograd.Function):
    """``F.linear`` whose forward runs through oneDNN, the bias added in its epilogue (where
    ``F.linear``'s ``addmm`` first copies the bias into every output row), and whose backward
    matrix multiplies run through MKL or oneDNN (:func:`mkl_is_fast`)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, 'none', [], '')

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, weight = ctx.saved_tensors
        grad = grad.reshape(-1, weight.shape[0])
        rows = x.reshape(-1, weight.shape[1])
        mm = torch.mm if mkl_is_fast() else _onednn_mm
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = mm(grad, weight).reshape(x.shape)
        if ctx.needs_input_grad[1]:
            grad_weight = mm(grad.t(), rows)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = grad.sum(0)
        return grad_x, grad_weight, grad_bias


def linear(x, weight, bias=None):
    """``F.linear`` through oneDNN, differentiable (see :class:`_OneDNNLinear`); for non-empty
    float32 CPU inputs outside autocast.

    Args:
        x (Tensor): Input of shape ``(..., in_features)``.
        weight (Tensor): Weight of shape ``(out_features, in_features)``.
        bias (Tensor, optional): Bias of shape ``(out_features, )``. Defaults to None.

    Returns:
        Tensor: The output of shape ``(..., out_features)``.
    """
    return _OneDNNLinear.apply(x, weight, bias)


def pack_linear_weight(weight, rows):
    """A linear weight reordered once into oneDNN's layout for :func:`fused_linear`.

    Args:
        weight (Tensor): Weight of shape ``(out_features, in_features)``.
        rows (int): Expected number of input rows (a layout hint; any number works).

    Returns:
        Tensor: The oneDNN weight, usable only by :func:`fused_linear`.
    """
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)


def conv_sum(x, kernels, biases):
    """The sum of stride-1, 'same'-padded biased depthwise convolutions of ``x`` through oneDNN,
    each adding the previous one's output; a channels-last ``x`` gives a channels-last output.

    Args:
        x (Tensor): Input of shape ``(N, C, H, W)``.
        kernels (Sequence[Tensor]): Kernels of shape ``(C, 1, kh, kw)``, all sizes odd.
        biases (Sequence[Tensor]): One bias of shape ``(C, )`` per kernel.
    """
    out = None
    for kernel, bias in zip(kernels, biases):
        padding = [kernel.shape[2] // 2, kernel.shape[3] // 2]
        conv = torch.ops.mkldnn._convolution_pointwise(
            x, kernel, bias, padding, [1, 1], [1, 1], x.shape[1], 'none', [], '')
        # oneDNN fuses no sum into a grouped convolution, so add in place
        out = conv if out is None else out.add_(conv)
    return out
