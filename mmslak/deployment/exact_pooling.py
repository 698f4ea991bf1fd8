"""Adaptive average pooling as two matrix products, which ONNX can express at any input size.

``torch.onnx`` exports ``adaptive_avg_pool2d`` only where the output size divides the input size
(or is 1): UperNet's pyramid pooling (scales 1, 2, 3, 6 on the 16 x 16 last stage of a 512 x 512
image) fails, and mmdeploy's rewrite to ``avg_pool2d`` with a kernel of ``size // scale`` changes
the result wherever the division is not exact. Each adaptive bin is the mean over rows
``floor(i H / h)`` to ``ceil((i + 1) H / h)`` and the same columns, so the pooling is
``A_h @ x @ A_w^T`` with 0/1 averaging matrices built from the input's (traced) size.
"""
from contextlib import contextmanager

import torch
import torch.nn as nn
from torch.nn.modules.utils import _pair


def _averaging_matrix(size, bins, dtype):
    """The ``(bins, size)`` matrix whose row ``i`` averages adaptive bin ``i`` of ``size``."""
    index = torch.arange(bins)
    start = torch.div(index * size, bins, rounding_mode='floor')
    end = torch.div((index + 1) * size + bins - 1, bins, rounding_mode='floor')
    position = torch.arange(size)
    inside = (position[None] >= start[:, None]) & (position[None] < end[:, None])
    weights = inside.to(dtype)
    return weights / weights.sum(1, keepdim=True)


def adaptive_avg_pool2d(x, output_size):
    """``F.adaptive_avg_pool2d`` of an ``(N, C, H, W)`` tensor as two matrix products.

    Args:
        x (Tensor): The input.
        output_size (int | tuple[int, int]): Output height and width (no None).

    Returns:
        Tensor: ``(N, C, h, w)``, equal to ``F.adaptive_avg_pool2d(x, output_size)`` up to the
        order of the float additions.
    """
    height, width = _pair(output_size)
    rows = _averaging_matrix(x.shape[2], height, x.dtype)
    columns = _averaging_matrix(x.shape[3], width, x.dtype)
    return torch.matmul(torch.matmul(rows, x), columns.t())


class MatmulAdaptiveAvgPool2d(nn.Module):
    """:func:`adaptive_avg_pool2d` as a module, to stand in for ``nn.AdaptiveAvgPool2d``.

    Args:
        output_size (int | tuple[int, int]): Output height and width.
    """

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return adaptive_avg_pool2d(x, self.output_size)


@contextmanager
def exportable_adaptive_pools(model):
    """Every ``nn.AdaptiveAvgPool2d`` of ``model`` with an output larger than 1 x 1 replaced
    by :class:`MatmulAdaptiveAvgPool2d` for the duration, and restored on exit.

    Args:
        model (nn.Module): The model, changed in place.

    Yields:
        int: The number of pools replaced.
    """
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and \
                    _pair(child.output_size) != (1, 1) and None not in _pair(child.output_size):
                setattr(parent, name, MatmulAdaptiveAvgPool2d(child.output_size))
                swapped.append((parent, name, child))
    try:
        yield len(swapped)
    finally:
        for parent, name, child in swapped:
            setattr(parent, name, child)
