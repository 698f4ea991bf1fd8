"""The per-pixel Gauss classifier of Centroid Based Tailoring (Hess, Duivesteijn, Mocanu).

Softmax classification splits the feature space into cones around equidistant centroids; the
Gauss classifier replaces that last linear layer by learned class centroids ``z_c`` and the
confidence ``exp(-gamma * ||phi(x) - z_c||^2)``, high only near the centroid.
"""
import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


class CentroidClassifier(nn.Module):
    """Gauss classifier of every pixel of a feature map, a drop-in for a ``1 x 1`` convolution
    (on ``(N, C, H, W)`` maps) or a linear layer (on ``(N, C)`` vectors, e.g. RoI features).

    The output is the log-confidence ``-gamma * ||phi - z_c||^2`` (never positive) of each class
    ``c``: the confidence is its exponential, so the arg max is the class of highest
    confidence, and a loss works in log space without the confidences underflowing (see
    :class:`CentroidBCELoss`). The squared distance is expanded as ``||phi||^2 - 2 phi.z_c +
    ||z_c||^2``, one matrix product per pixel, and computed in float32 even under autocast:
    the expansion cancels digits that half precision does not have.

    Args:
        in_channels (int): Feature channels, the dimension of the centroids.
        num_classes (int): Number of classes, one centroid each.
        gamma (float): Scale of the squared distance (its initial value when learned); the
            paper uses 1. Defaults to 1.0.
        learn_gamma (bool): Learn one gamma per class, as ``exp(log_gamma_c)`` with
            ``log_gamma_c`` clamped to ``log(gamma_range)``. Defaults to False (fixed).
        gamma_range (Sequence[float]): Bounds of a learned gamma; outside them its gradient is
            0. Defaults to ``(1e-3, 1e3)``.
        init_std (float): Scale of the initial centroids, drawn like the features of a decode
            head at initialisation, a ReLU of a normal: ``max(0, N(0, init_std^2))`` per
            coordinate. Each centroid is then a point the features reach (no negative
            coordinate), and about half its coordinates are 0, as half the pixels are in each
            channel after batch norm and ReLU. Defaults to 1.0.
    """

    def __init__(self,
                 in_channels: int,
                 num_classes: int,
                 gamma: float = 1.0,
                 init_std: float = 1.0,
                 learn_gamma: bool = False,
                 gamma_range: Sequence[float] = (1e-3, 1e3)):
        super().__init__()
        low, high = gamma_range
        if not 0 < low < high:
            raise ValueError(f'gamma_range must be (low, high) with 0 < low < high, got '
                             f'{tuple(gamma_range)}')
        if gamma <= 0 or (learn_gamma and not low <= gamma <= high):
            raise ValueError(f'gamma must be positive (and inside gamma_range when learned), got '
                             f'{gamma}')
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.gamma = gamma
        self.init_std = init_std
        self.learn_gamma = learn_gamma
        self.gamma_range = (float(low), float(high))
        self.centroids = nn.Parameter(torch.empty(num_classes, in_channels))
        if learn_gamma:
            self.log_gamma = nn.Parameter(torch.empty(num_classes))
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the centroids from ``max(0, N(0, init_std^2))``; a learned gamma starts at
        ``gamma``."""
        with torch.no_grad():
            nn.init.normal_(self.centroids, std=self.init_std).clamp_(min=0)
            if self.learn_gamma:
                self.log_gamma.fill_(math.log(self.gamma))

    def scale(self) -> torch.Tensor:
        """The gamma of each class, shape ``(num_classes, )``, float32."""
        if not self.learn_gamma:
            return self.centroids.new_full((self.num_classes, ), self.gamma, dtype=torch.float32)
        low, high = self.gamma_range
        return self.log_gamma.float().clamp(math.log(low), math.log(high)).exp()

    def squared_distances(self, feats: torch.Tensor) -> torch.Tensor:
        """``||phi - z_c||^2`` of every pixel and class.

        Args:
            feats (Tensor): Features ``phi`` of shape ``(N, in_channels, H, W)`` or
                ``(N, in_channels)``.

        Returns:
            Tensor: Float32 squared distances of shape ``(N, num_classes, H, W)`` or
            ``(N, num_classes)``.
        """
        if feats.dim() not in (2, 4) or feats.size(1) != self.in_channels:
            raise ValueError(f'expected features of shape (N, {self.in_channels}, H, W) or '
                             f'(N, {self.in_channels}), got {tuple(feats.shape)}')
        if feats.dim() == 2:
            return self.squared_distances(feats[:, :, None, None])[:, :, 0, 0]
        with torch.autocast(device_type=feats.device.type, enabled=False):
            feats = feats.float()
            centroids = self.centroids.float()
            cross = F.conv2d(feats, centroids[:, :, None, None])
            squared = (feats.pow(2).sum(1, keepdim=True) - 2 * cross +
                       centroids.pow(2).sum(1)[None, :, None, None])
            # Rounding can take the expansion a little below zero at a centroid.
            return squared.clamp_min(0)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Log-confidences ``-gamma_c * ||phi - z_c||^2``, shape ``(N, num_classes, H, W)``
        (or ``(N, num_classes)``)."""
        squared = self.squared_distances(feats)
        gamma = self.scale().view(-1, *[1] * (squared.dim() - 2))
        return -gamma * squared

    def confidences(self, feats: torch.Tensor) -> torch.Tensor:
        """Confidences ``exp(-gamma * ||phi - z_c||^2)`` in ``(0, 1]``."""
        return self.forward(feats).exp()

    def extra_repr(self) -> str:
        return (f'in_channels={self.in_channels}, num_classes={self.num_classes}, '
                f'gamma={self.gamma}' + (f', learned in {self.gamma_range}'
                                         if self.learn_gamma else ''))
