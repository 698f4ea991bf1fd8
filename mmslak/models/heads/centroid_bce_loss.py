"""One-vs-rest binary cross-entropy on the confidences of a Gauss classifier."""
import math
from typing import Optional

import torch
import torch.nn as nn

from mmslak.registry import MODELS

_REDUCTIONS = ('none', 'mean', 'sum')
# devices where torch._assert_async checks without waiting (a no-op on meta tensors)
_ASYNC_ASSERT_DEVICES = ('cuda', 'meta')


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """``log(1 - exp(x))`` for ``x < 0``, accurate near 0 and for very negative ``x``."""
    return torch.where(x > -math.log(2), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _check_labels(label, valid, num_classes, ignore_index):
    """Refuse labels outside ``[0, num_classes)`` that are not ``ignore_index``.

    Raising needs the answer on the host, a wait for the device at every step; so where
    ``torch._assert_async`` has a kernel (CUDA) the check stays on the device and a bad label
    fails the way it does in mmseg's cross-entropy there, as a device-side assert at a later
    synchronisation, which ends the process. Elsewhere (CPU) it raises at once.

    Args:
        label (Tensor): ``(N, H, W)`` class indices.
        valid (Tensor): ``(N, H, W)`` mask of the pixels that are not ignored.
        num_classes (int): Number of classes.
        ignore_index (int): Label of the pixels to ignore.

    Raises:
        ValueError: If a label on a synchronous device is out of range.
    """
    out_of_range = valid & ((label < 0) | (label >= num_classes))
    message = f'labels must be class indices in [0, {num_classes}) or the ignore index ' \
        f'{ignore_index}'
    if label.device.type in _ASYNC_ASSERT_DEVICES:
        torch._assert_async(~out_of_range.any(), message)
    elif out_of_range.any():
        raise ValueError(f'{message}; got {label[out_of_range].unique().tolist()}')


@MODELS.register_module()
class CentroidBCELoss(nn.Module):
    """Binary cross-entropy of every class against the rest, on Gauss confidences.

    Works per pixel (mmseg decode heads) and per box (mmdet bbox heads, where background is a
    class with its own centroid, the last one: a background box pulls that centroid's
    confidence to 1 and every object class's to 0).

    Takes the log-confidences ``s_c = log p_c`` of :class:`CentroidClassifier` (the confidences
    ``p_c = exp(s_c)`` are not normalised over the classes, so softmax cross-entropy does not
    apply) and, per pixel of label ``y``, adds up ``-log p_y - sum_{c != y} log(1 - p_c)``: the
    true class's confidence is pulled to 1, every other one to 0. Both terms are computed in log
    space; the confidences are capped at ``1 - eps`` so that ``log(1 - p_c)`` stays finite
    (a wrong class above the cap gets no gradient from its own term, whose gradient would be
    about ``1 / eps`` there; the true class's term still moves the feature).
    Pixels labelled ``ignore_index`` add nothing; any other label outside ``[0, C)`` is an
    error (as with mmseg's cross-entropy), e.g. a dataset that needs ``reduce_zero_label``: a
    ``ValueError`` on CPU, a device-side assert on a GPU, where the loss never waits for the
    device.

    Args:
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        reduction (str): ``'mean'`` (over the pixels that are not ignored), ``'sum'`` or
            ``'none'`` (the per-pixel loss, ignored pixels 0). Defaults to ``'mean'``.
        eps (float): Gap between the largest confidence used and 1. Defaults to 1e-6.
        loss_name (str): Name in the logs; mmseg back-propagates only names starting with
            ``loss_``. Defaults to ``'loss_centroid_bce'``.
    """

    def __init__(self,
                 loss_weight: float = 1.0,
                 reduction: str = 'mean',
                 eps: float = 1e-6,
                 loss_name: str = 'loss_centroid_bce'):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reduction must be one of {_REDUCTIONS}, got {reduction!r}')
        if not 0 < eps < 1:
            raise ValueError(f'eps must be in (0, 1), got {eps}')
        self.loss_weight = loss_weight
        self.reduction = reduction
        self.eps = eps
        self._loss_name = loss_name

    def forward(self,
                log_confidences: torch.Tensor,
                label: torch.Tensor,
                weight: Optional[torch.Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None,
                ignore_index: int = 255,
                **kwargs) -> torch.Tensor:
        """The weighted loss, with the arguments mmseg decode heads and pixel samplers pass.

        Args:
            log_confidences (Tensor): ``(N, C, H, W)`` (pixels) or ``(N, C)`` (boxes)
                log-confidences, at most 0.
            label (Tensor): ``(N, H, W)`` or ``(N, )`` class indices.
            weight (Tensor, optional): ``(N, H, W)`` or ``(N, )`` weights (from a pixel
                sampler, or mmdet's label weights).
            avg_factor (float, optional): Divisor of the ``'mean'`` reduction instead of the
                number of pixels that are not ignored.
            reduction_override (str, optional): Reduction for this call.
            ignore_index (int): Label of the pixels to ignore. Defaults to 255.

        Returns:
            Tensor: The loss, a scalar unless the reduction is ``'none'``.
        """
        reduction = reduction_override or self.reduction
        if reduction not in _REDUCTIONS:
            raise ValueError(f'reduction must be one of {_REDUCTIONS}, got {reduction!r}')
        if log_confidences.dim() < 2 or label.shape != (log_confidences.shape[:1] +
                                                        log_confidences.shape[2:]):
            raise ValueError(f'expected (N, C, H, W) log-confidences and (N, H, W) labels (or '
                             f'(N, C) and (N, )), got {tuple(log_confidences.shape)} and '
                             f'{tuple(label.shape)}')
        valid = label != ignore_index
        num_classes = log_confidences.size(1)
        _check_labels(label, valid, num_classes, ignore_index)
        log_conf = log_confidences.float().clamp(max=math.log1p(-self.eps))
        classes = torch.arange(num_classes, device=label.device)
        is_target = label[:, None] == classes.view(1, -1, *[1] * (label.dim() - 1))
        loss = torch.where(is_target, -log_conf, -log1mexp(log_conf)).sum(1)
        if weight is not None:
            loss = loss * weight
        loss = torch.where(valid, loss, loss.new_zeros(()))
        if reduction == 'sum':
            loss = loss.sum()
        elif reduction == 'mean':
            divisor = valid.sum() if avg_factor is None else avg_factor
            loss = loss.sum() / torch.clamp_min(torch.as_tensor(divisor, dtype=loss.dtype), 1)
        return self.loss_weight * loss

    # mmdet's bbox heads read these (as they do for its SeesawLoss): the classifier has a
    # background centroid beside the classes, and its scores are confidences, not a softmax.
    custom_cls_channels = True
    custom_activation = True
    custom_accuracy = True

    def get_cls_channels(self, num_classes: int) -> int:
        """Outputs of a detection classifier: a centroid per class and one for background."""
        return num_classes + 1

    def get_activation(self, cls_score: torch.Tensor) -> torch.Tensor:
        """The confidences ``exp(s_c)`` of log-confidences ``s_c`` (background last)."""
        return cls_score.float().exp()

    def get_accuracy(self, cls_score: torch.Tensor, labels: torch.Tensor) -> dict:
        """Top-1 accuracy (%) of the most confident class, background included, as ``acc``."""
        if len(labels) == 0:
            return dict(acc=cls_score.new_zeros(()))
        return dict(acc=(cls_score.argmax(1) == labels).float().mean() * 100)

    @property
    def loss_name(self) -> str:
        """Name of the loss in the logs."""
        return self._loss_name
