"""mmseg decode heads whose last layer is a Gauss classifier (Centroid Based Tailoring).

``CentroidHeadMixin`` turns any ``mmseg`` decode head into its Gauss version; UperNet's head and
its FCN auxiliary head are registered, where mmseg is installed (``mmslak.models.heads`` imports
this module only then). Another head takes two lines::

    @MODELS.register_module()
    class GaussASPPHead(CentroidHeadMixin, ASPPHead):
        pass
"""
from mmseg.models.decode_heads import FCNHead, UPerHead

from mmslak.registry import MODELS
from .centroid_classifier import CentroidClassifier


class CentroidHeadMixin:
    """Replaces the ``conv_seg`` classifier of an mmseg decode head by a
    :class:`CentroidClassifier` and makes :class:`CentroidBCELoss` its default loss.

    The head then outputs log-confidences ``-gamma * ||phi - z_c||^2`` as its ``seg_logits``:
    mmseg resizes them, takes their arg max (the most confident class) and, for the logged
    accuracy and test-time augmentation, ranks or softmax-normalises them, which keeps the arg
    max. Dropout before the classifier stays as the head configures it.

    Args:
        gamma (float): Scale of the squared distance in the confidence (initial value if
            learned). Defaults to 1.0.
        learn_gamma (bool): Learn a gamma per class (log-parameterised, clamped to
            ``gamma_range``). Defaults to False.
        gamma_range (Sequence[float]): Bounds of a learned gamma. Defaults to ``(1e-3, 1e3)``.
        centroid_std (float): Scale of the initial centroids, ``max(0, N(0, centroid_std^2))``
            per coordinate. Defaults to 1.0.
        loss_decode (dict | Sequence[dict]): Losses of the head. Defaults to
            ``dict(type='mmslak.CentroidBCELoss')``.
        *args: The positional arguments of the decode head.
        **kwargs: Its keyword arguments.
    """

    def __init__(self,
                 *args,
                 gamma: float = 1.0,
                 learn_gamma: bool = False,
                 gamma_range=(1e-3, 1e3),
                 centroid_std: float = 1.0,
                 loss_decode=dict(type='mmslak.CentroidBCELoss', loss_weight=1.0),
                 **kwargs):
        super().__init__(*args, loss_decode=loss_decode, **kwargs)
        if self.out_channels != self.num_classes:
            raise ValueError(f'{type(self).__name__} needs a centroid per class: out_channels '
                             f'must equal num_classes ({self.num_classes}), got '
                             f'{self.out_channels}')
        self.conv_seg = CentroidClassifier(self.conv_seg.in_channels,
                                           self.num_classes,
                                           gamma=gamma,
                                           init_std=centroid_std,
                                           learn_gamma=learn_gamma,
                                           gamma_range=gamma_range)


@MODELS.register_module()
class GaussUPerHead(CentroidHeadMixin, UPerHead):
    """UperNet's decode head (``mmseg.models.UPerHead``) with a Gauss classifier; the arguments
    are those of :class:`CentroidHeadMixin` and ``UPerHead``."""


@MODELS.register_module()
class GaussFCNHead(CentroidHeadMixin, FCNHead):
    """The FCN head (``mmseg.models.FCNHead``, UperNet's auxiliary head) with a Gauss
    classifier; the arguments are those of :class:`CentroidHeadMixin` and ``FCNHead``."""
