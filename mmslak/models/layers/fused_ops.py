"""Fused CPU inference kernels: linear layers and depthwise convolutions with their epilogues.

PyTorch's CPU build carries oneDNN operators that apply a GELU to, or add a tensor to, the output
of a linear layer while it is still in cache (the GELU only where that is faster: with
AVX-512). They have no autograd formula, so they serve inference only (:func:`can_fuse` says
when). :func:`linear` runs the forward of training through oneDNN too (its bias epilogue saves
``addmm``'s copy of the bias into the output) and the backward through MKL on Intel CPUs,
through oneDNN elsewhere (about twice as fast as MKL on an AMD EPYC). Elsewhere the same
arithmetic runs through the plain functional ops.
"""
import functools

import torch
import torch.nn.functional as F

from mmslak.utils.torch_compat import cpu_autocast_enabled
from .depthwise_kernel import PackedKernels, available, cpu_vendor, depthwise_conv_sum, kernel_lanes

_ONEDNN = torch.backends.mkldnn.is_available() and all(
    hasattr(torch.ops.mkldnn, name) for name in ('_linear_pointwise', '_convolution_pointwise'))


def _dtype_supported(dtype):
    if dtype == torch.float32:
        return True
    return dtype == torch.bfloat16 and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def _onednn_applies(x):
    """oneDNN is on and ``x`` a non-empty CPU tensor (oneDNN builds no primitive for 0 rows)."""
    return _ONEDNN and torch.backends.mkldnn.enabled and x.device.type == 'cpu' and \
        x.numel() > 0


def can_fuse(x, module):
    """Whether the fused kernels may compute ``module`` on ``x``.

    They need a non-empty CPU tensor of float32 (or bfloat16 where oneDNN supports it), oneDNN
    enabled (``torch.backends.mkldnn.flags``), no autocast, and no autograd graph to record:
    gradients disabled, or neither ``x`` nor any parameter of ``module`` requiring them.

    Args:
        x (Tensor): The input.
        module (nn.Module): The module about to compute on ``x``.

    Returns:
        bool: True when the fused kernels apply.
    """
    if not _onednn_applies(x):
        return False
    if not _dtype_supported(x.dtype) or cpu_autocast_enabled():
        return False
    if not torch.is_grad_enabled():
        return True
    return not (x.requires_grad or any(p.requires_grad for p in module.parameters()))


def fused_linear(x, weight, bias=None, gelu=None, residual=None):
    """``F.linear`` over the last dimension with an optional GELU or residual, in one call.

    Only valid where :func:`can_fuse` holds.

    Args:
        x (Tensor): Input of shape ``(..., in_features)``.
        weight (Tensor): Weight of shape ``(out_features, in_features)``.
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
    """``F.linear`` through oneDNN where it can (non-empty float32 CPU input, no autocast),
    differentiable (see :class:`_OneDNNLinear`).

    Args:
        x (Tensor): Input of shape ``(..., in_features)``.
        weight (Tensor): Weight of shape ``(out_features, in_features)``.
        bias (Tensor, optional): Bias of shape ``(out_features, )``. Defaults to None.

    Returns:
        Tensor: The output of shape ``(..., out_features)``.
    """
    if not _onednn_applies(x) or x.dtype != torch.float32 or cpu_autocast_enabled():
        return F.linear(x, weight, bias)
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


class FusedDepthwiseKernels:
    """Biased depthwise kernels to be summed by :func:`fused_depthwise_sum`.

    Args:
        kernels (Sequence[Tensor]): Kernels of shape ``(C, 1, kh, kw)``, all sizes odd.
        biases (Sequence[Tensor]): One bias of shape ``(C, )`` per kernel.
    """

    def __init__(self, kernels, biases):
        self.kernels = [kernel.detach() for kernel in kernels]
        self.biases = [bias.detach() for bias in biases]
        self._packed = None

    def packed(self):
        """The kernels and the sum of the biases packed once for the depthwise kernel in use
        (packed again if another one has been selected since; float32, any input dtype)."""
        if self._packed is None or self._packed.lanes != kernel_lanes():
            self._packed = PackedKernels(self.kernels, sum(self.biases))
        return self._packed


def fused_depthwise_sum(x, fused):
    """The sum of stride-1, 'same'-padded depthwise convolutions of ``x``, each with its bias.

    Only valid where :func:`can_fuse` holds. A channels-last ``x`` goes through the AVX-512 or
    AVX2 kernel of :mod:`.depthwise_kernel` where one is built, in one pass (a bfloat16 ``x``
    widened to float32 and the output rounded back: several times faster than oneDNN's
    bfloat16 depthwise convolutions, and no less exact); otherwise each oneDNN convolution adds the
    previous one's output. A channels-last ``x`` gives a channels-last output without any
    reorder.

    Args:
        x (Tensor): Input of shape ``(N, C, H, W)``.
        fused (FusedDepthwiseKernels): The kernels and biases.

    Returns:
        Tensor: The output, shaped and laid out like ``x``.
    """
    if available(x, dtypes=(torch.float32, torch.bfloat16)):
        return depthwise_conv_sum(x.float(), fused.packed()).to(x.dtype)
    out = None
    for kernel, bias in zip(fused.kernels, fused.biases):
        padding = [kernel.shape[2] // 2, kernel.shape[3] // 2]
        args = (kernel, bias, padding, [1, 1], [1, 1], x.shape[1])
        if out is None:
            out = torch.ops.mkldnn._convolution_pointwise(x, *args, 'none', [], '')
        else:  # oneDNN fuses no sum into a grouped convolution, so add in place
            out.add_(torch.ops.mkldnn._convolution_pointwise(x, *args, 'none', [], ''))
    return out
