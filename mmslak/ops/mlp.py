"""The block MLP op: ConvNeXt's pointwise MLP with its layer scale and residual, over NHWC.

One function for every backend (:mod:`.backend` picks per call): ``torch`` is ``F.linear``,
``F.gelu``, ``F.linear``, the scale and the sum; ``cpu`` runs both linear layers through oneDNN
(:mod:`.cpu.onednn`): for inference with the GELU and the residual in their epilogues and the
weights packed once with the layer scale folded into the second (:mod:`.weight_cache`); where
autograd must record the call, differentiably (float32 only).
"""
import torch
import torch.nn.functional as F

from mmslak.utils.torch_compat import cpu_autocast_enabled
from .backend import needs_grad, select
from .cpu import onednn
from .weight_cache import cached


def _why_not_cpu(x, grad):
    if cpu_autocast_enabled():
        return 'autocast is on'
    return onednn.why_not_onednn(x, (torch.float32, ) if grad else (torch.float32, torch.bfloat16))


def _packed_weights(fc1_weight, fc2_weight, fc2_bias, gamma, rows):
    """Both weights reordered for oneDNN and the second's bias, the layer scale folded in.

    Args:
        rows (int): Pixels per call, oneDNN's layout hint.
    """
    if gamma is not None:
        fc2_weight, fc2_bias = fc2_weight * gamma[:, None], fc2_bias * gamma
    return (onednn.pack_linear_weight(fc1_weight, rows),
            onednn.pack_linear_weight(fc2_weight, rows), fc2_bias.detach().clone())


def block_mlp(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, gamma=None, residual=None,
              approximate='none'):
    """``residual + gamma * fc2(gelu(fc1(x)))`` over the last dimension.

    Args:
        x (Tensor): Input of shape ``(..., C)``, e.g. an NHWC view.
        fc1_weight (Tensor): First weight, ``(hidden, C)``.
        fc1_bias (Tensor): First bias, ``(hidden, )``.
        fc2_weight (Tensor): Second weight, ``(C, hidden)``.
        fc2_bias (Tensor): Second bias, ``(C, )``.
        gamma (Tensor, optional): Layer scale ``(C, )``; None for none. Defaults to None.
        residual (Tensor, optional): Added to the output, shaped like ``x`` (any strides); None
            for none. Defaults to None.
        approximate (str): The GELU's approximation, ``'none'`` (erf) or ``'tanh'``.
            Defaults to ``'none'``.

    Returns:
        Tensor: The output, shaped like ``x``.
    """
    params = (fc1_weight, fc1_bias, fc2_weight, fc2_bias, gamma)
    grad = needs_grad(x, residual, *params)
    if select('block_mlp', {'cpu': lambda: _why_not_cpu(x, grad)}) == 'torch':
        x = F.linear(F.gelu(F.linear(x, fc1_weight, fc1_bias), approximate=approximate),
                     fc2_weight, fc2_bias)
    elif grad:
        x = onednn.linear(F.gelu(onednn.linear(x, fc1_weight, fc1_bias), approximate=approximate),
                          fc2_weight, fc2_bias)
    else:
        sources = [fc1_weight, fc2_weight, fc2_bias, *([] if gamma is None else [gamma])]
        fc1, fc2, bias = cached('mlp_packed', sources, lambda: _packed_weights(
            fc1_weight, fc2_weight, fc2_bias, gamma, x[..., 0].numel()))
        x = onednn.fused_linear(x, fc1, fc1_bias, gelu=approximate)
        if residual is not None:
            return onednn.fused_linear(x, fc2, bias, residual=residual)
        return onednn.fused_linear(x, fc2, bias)
    if gamma is not None:
        x = gamma * x
    return x if residual is None else residual + x
