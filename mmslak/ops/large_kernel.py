"""The large-kernel depthwise op: SLaK's ``k x s``, ``s x k`` and ``s x s`` branches.

Two forms, each one function for every backend (:mod:`.backend` picks per call):

- :func:`depthwise_convs`, the training form: each branch's bias-free convolution, separately,
  for the BatchNorm that follows each;
- :func:`depthwise_conv_sum`, the inference form: the sum of the branches, each with its bias or
  its eval-mode BN (folded on the fly where a backend can), in one pass.

All convolutions are depthwise, stride 1, 'same'-padded, with odd kernel sizes.
"""
from typing import NamedTuple, Optional

import torch
import torch.nn.functional as F

from mmslak.utils.torch_compat import cpu_autocast_enabled, cuda_autocast_dtype
from .backend import needs_grad, requested_backend, select
from .cpu import depthwise as cpu_depthwise
from .cpu import onednn
from .cpu.kernel_library import kernel_lanes
from .measure import MEASURED, call_key
from .triton import kernels as triton_kernels
from .triton import why_not_triton
from .weight_cache import cached


def _conv(x, weight, bias=None):
    padding = (weight.shape[2] // 2, weight.shape[3] // 2)
    return F.conv2d(x, weight, bias, padding=padding, groups=x.shape[1])


def _why_not_cpu_convs(x, weights):
    if cpu_autocast_enabled():
        return 'autocast is on'
    if any(w.dtype != torch.float32 for w in weights):
        return 'the kernels take float32 weights'
    return cpu_depthwise.why_not_kernel(x)


def _why_not_triton(x, weights):
    """The triton backend takes CUDA tensors, and CPU ones (its interpreter) only when forced."""
    if x.device.type != 'cuda' and requested_backend() != 'triton':
        return f'the input is on {x.device.type}'
    return why_not_triton(x, weights)


def _autocast(x, weights):
    """``x`` and ``weights`` in the dtype CUDA autocast gives convolutions, where it is on."""
    dtype = cuda_autocast_dtype() if x.device.type == 'cuda' else None
    if dtype is None:
        return x, weights
    return x.to(dtype), [w.to(dtype) for w in weights]


def _trial(run, x, weights, grad):
    """A call of ``run(x, weights)`` on copies, with a backward through it if ``grad``."""
    x, weights = x.detach().requires_grad_(grad), [w.detach().requires_grad_(grad)
                                                   for w in weights]

    def call():
        with torch.set_grad_enabled(grad):
            outs = run(x, weights)
            if grad:
                outs = outs if isinstance(outs, (tuple, list)) else [outs]
                torch.autograd.grad(sum(out.float().sum() for out in outs), [x, *weights])

    return call


def _measured(op, x, weights, grad, runs):
    """The fastest of ``runs`` (name to ``run(x, weights)``) for this kind of call, measured at
    its first occurrence (:mod:`.measure`)."""
    key = call_key(op, 'forward+backward' if grad else 'forward', x, weights)
    return MEASURED.pick(key, {name: _trial(run, x, weights, grad) for name, run in runs.items()})


def _torch_convs(x, weights):
    return tuple(_conv(x, weight) for weight in weights)


def _channels_last_convs(x, weights):
    """``F.conv2d`` on a channels-last copy of ``x``, which cuDNN takes for depthwise kernels."""
    return _torch_convs(x.contiguous(memory_format=torch.channels_last), weights)


def _triton_convs(x, weights):
    return triton_kernels().convs(*_autocast(x, weights))


CONVS = {'torch': _torch_convs, 'torch_channels_last': _channels_last_convs,
         'triton': _triton_convs, 'cpu': cpu_depthwise.convs}


def _convs_backend(x, weights):
    backend = select('depthwise_convs', {
        'cpu': lambda: _why_not_cpu_convs(x, weights),
        'triton': lambda: _why_not_triton(x, weights)})
    if backend == 'triton' and requested_backend() == 'auto':
        backend = _measured('depthwise_convs', x, weights, needs_grad(x, *weights),
                            {name: CONVS[name] for name in ('triton', 'torch',
                                                            'torch_channels_last')})
    return backend


def depthwise_convs(x, weights):
    """Bias-free depthwise convolutions of ``x``, one output per kernel (the training form).

    Backends: ``torch`` (``F.conv2d`` each); ``cpu`` for float32 channels-last CPU inputs outside
    autocast where a compiled kernel runs (:mod:`.cpu.depthwise`: one pass for all outputs and
    its own backward, several times faster than oneDNN's); ``triton`` for CUDA tensors (one
    launch for all outputs, one for the input gradient, one per weight gradient), chosen under
    ``auto`` against ``F.conv2d`` on the input and on a channels-last copy by measurement.

    Args:
        x (Tensor): Input of shape ``(N, C, H, W)``.
        weights (Sequence[Tensor]): Kernels of shape ``(C, 1, kh, kw)``, all sizes odd.

    Returns:
        tuple[Tensor]: ``conv(x, weights[i])`` for each kernel, differentiable.
    """
    return CONVS[_convs_backend(x, weights)](x, weights)


class EvalBatchNorm(NamedTuple):
    """The tensors of a BatchNorm in eval mode, which normalises each channel by fixed
    statistics: ``(y - running_mean) / sqrt(running_var + eps) * weight + bias``.

    Args:
        running_mean (Tensor): ``(C, )``.
        running_var (Tensor): ``(C, )``.
        weight (Tensor | None): ``(C, )``, None without affine parameters.
        bias (Tensor | None): ``(C, )``, None without affine parameters.
        eps (float): Added to the variance.
    """
    running_mean: torch.Tensor
    running_var: torch.Tensor
    weight: Optional[torch.Tensor]
    bias: Optional[torch.Tensor]
    eps: float

    @classmethod
    def of(cls, bn):
        """The eval-mode tensors of ``bn`` (an ``nn.BatchNorm2d`` or a subclass)."""
        return cls(bn.running_mean, bn.running_var, bn.weight, bn.bias, bn.eps)

    def tensors(self):
        return [t for t in self[:4] if t is not None]


def fold_batch_norm(weight, norm):
    """The kernel and bias of the biased convolution equal to ``conv(x, weight)`` then ``norm``.

    Args:
        weight (Tensor): A depthwise kernel ``(C, 1, kh, kw)``.
        norm (EvalBatchNorm): The eval-mode BN that follows it.

    Returns:
        tuple[Tensor, Tensor]: The kernel and the bias ``(C, )``.
    """
    std = (norm.running_var + norm.eps).sqrt()
    scale = 1 / std if norm.weight is None else norm.weight / std
    shift = -norm.running_mean * scale
    if norm.bias is not None:
        shift = norm.bias + shift
    return weight * scale.reshape(-1, 1, 1, 1), shift


def _folded(weights, biases, norms):
    """Each kernel with its BN folded, a kernel that fits inside an earlier one added into it
    (the sum is the same, with fewer taps), and the sum of the biases; copies, not views of the
    weights."""
    kernels, total_bias = [], weights[0].new_zeros(weights[0].shape[0])
    for weight, bias, norm in zip(weights, biases, norms):
        kernel, bias = (weight, bias) if norm is None else fold_batch_norm(weight, norm)
        kernel = kernel.detach().clone()
        if bias is not None:
            total_bias = total_bias + bias.detach()
        outer = next((k for k in kernels if k.shape[2] >= kernel.shape[2] and
                      k.shape[3] >= kernel.shape[3]), None)
        if outer is None:
            kernels.append(kernel)
            continue
        pad_h = (outer.shape[2] - kernel.shape[2]) // 2
        pad_w = (outer.shape[3] - kernel.shape[3]) // 2
        outer += F.pad(kernel, (pad_w, pad_w, pad_h, pad_h))
    return kernels, total_bias


def _why_not_fused(x):
    """Why neither the compiled kernel nor oneDNN can take ``x`` for inference (None if one
    can)."""
    if cpu_autocast_enabled():
        return 'autocast is on'
    if cpu_depthwise.why_not_kernel(x, (torch.float32, torch.bfloat16)) is None:
        return None
    return onednn.why_not_onednn(x, (torch.float32, torch.bfloat16))


def _fused_sum(x, weights, sources, biases, norms):
    """The inference sum on the CPU backend: the compiled kernel where it takes ``x`` (a bfloat16
    ``x`` widened to float32 and the output rounded back: several times faster than oneDNN's
    bfloat16 depthwise convolutions, and no less exact), else oneDNN's convolutions."""
    if cpu_depthwise.why_not_kernel(x, (torch.float32, torch.bfloat16)) is None:
        packed = cached(f'depthwise_packed_{kernel_lanes()}', sources,
                        lambda: cpu_depthwise.PackedKernels(*_folded(weights, biases, norms)))
        return cpu_depthwise.conv_sum(x.float(), packed).to(x.dtype)
    kernels, bias = cached('depthwise_folded', sources, lambda: _folded(weights, biases, norms))
    return onednn.conv_sum(x, kernels, [bias] + [None] * (len(kernels) - 1))


def depthwise_conv_sum(x, weights, biases=None, norms=None):
    """The sum over ``i`` of ``conv(x, weights[i]) + biases[i]``, each then normalised by
    ``norms[i]`` (the inference form: eval-mode BNs, or the deploy form's biases).

    Where autograd must record the call, the branches of :func:`depthwise_convs` (any backend)
    and then each bias and BN. Otherwise one of: ``torch`` (``F.conv2d`` and ``F.batch_norm``
    each, as the modules compute them); ``cpu`` for float32 or bfloat16 CPU inputs outside
    autocast: one pass of a compiled kernel over a channels-last input (oneDNN's convolutions
    otherwise, where oneDNN is on and computes the dtype), the BNs folded and the kernels packed
    once (:mod:`.weight_cache`); ``triton`` for CUDA tensors: one launch over the folded kernels,
    chosen under ``auto`` by measurement as in :func:`depthwise_convs`.

    Args:
        x (Tensor): Input of shape ``(N, C, H, W)``.
        weights (Sequence[Tensor]): Kernels of shape ``(C, 1, kh, kw)``, all sizes odd.
        biases (Sequence[Tensor | None], optional): One bias ``(C, )`` per kernel, or None for
            none. Defaults to None.
        norms (Sequence[EvalBatchNorm | None], optional): The eval-mode BN after each kernel, or
            None for none. Defaults to None.

    Returns:
        Tensor: The sum, shaped and laid out like ``x``.
    """
    biases = biases or [None] * len(weights)
    norms = norms or [None] * len(weights)
    sources = [*weights, *(b for b in biases if b is not None),
               *(t for norm in norms if norm is not None for t in norm.tensors())]
    if needs_grad(x, *sources):  # the branches, then their biases and BNs
        outs = depthwise_convs(x, weights)
        outs = [out if bias is None else out + bias[:, None, None]
                for out, bias in zip(outs, biases)]
        return sum(out if norm is None else F.batch_norm(out, *norm[:4], False, 0., norm.eps)
                   for out, norm in zip(outs, norms))
    sums = {
        'torch': lambda x, weights: _torch_sum(x, weights, biases, norms),
        'torch_channels_last': lambda x, weights: _torch_sum(
            x.contiguous(memory_format=torch.channels_last), weights, biases, norms),
        'triton': lambda x, weights: _triton_sum(x, weights, sources, biases, norms),
        'cpu': lambda x, weights: _fused_sum(x, weights, sources, biases, norms),
    }
    backend = select('depthwise_conv_sum', {'cpu': lambda: _why_not_fused(x),
                                            'triton': lambda: _why_not_triton(x, weights)})
    if backend == 'triton' and requested_backend() == 'auto':
        backend = _measured('depthwise_conv_sum', x, weights, False,
                            {name: sums[name] for name in ('triton', 'torch',
                                                           'torch_channels_last')})
    return sums[backend](x, weights)


def _torch_sum(x, weights, biases, norms):
    outs = [_conv(x, weight, bias) for weight, bias in zip(weights, biases)]
    return sum(out if norm is None else F.batch_norm(out, *norm[:4], False, 0., norm.eps)
               for out, norm in zip(outs, norms))


def _triton_sum(x, weights, sources, biases, norms):
    """The inference sum on the triton backend: one launch over the folded kernels."""
    kernels, bias = cached('depthwise_folded', sources, lambda: _folded(weights, biases, norms))
    x, kernels = _autocast(x, kernels)
    return triton_kernels().conv_sum(x, kernels, bias)
