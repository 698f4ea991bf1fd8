"""mmdet RoI bbox heads whose classifier is a Gauss classifier (Centroid Based Tailoring).

mmdet's bbox heads build their classifier from ``cls_predictor_cfg`` (with ``in_features`` and
``out_features``) and take the activation of its scores from the loss when the loss defines one
(``custom_activation``, as mmdet's SeesawLoss does). :class:`GaussLinear` is the Gauss
classifier as such a predictor and :class:`CentroidBCELoss` the loss with that activation;
:class:`GaussBBoxHeadMixin` sets both, so a head of Faster R-CNN or of any Cascade R-CNN stage
switches with its type::

    bbox_head=dict(type='mmslak.GaussShared2FCBBoxHead', gamma=0.1, centroid_std=0.3, ...)

The classifier has ``num_classes + 1`` centroids, the last for background: its log-confidences
``-gamma_c * ||phi - z_c||^2`` are the head's ``cls_score``; the scores of the detections are
the object classes' confidences ``exp(-gamma_c * ||phi - z_c||^2)``, not normalised against each
other or the background (mmdet's NMS drops the background column, as it does softmax's).
"""
from mmdet.models.roi_heads.bbox_heads import ConvFCBBoxHead, Shared2FCBBoxHead

from mmslak.registry import MODELS
from .centroid_classifier import CentroidClassifier


@MODELS.register_module()
class GaussLinear(CentroidClassifier):
    """:class:`CentroidClassifier` under ``nn.Linear``'s argument names, for mmdet's
    ``cls_predictor_cfg``.

    Args:
        in_features (int): Feature dimension.
        out_features (int): Number of centroids (classes, with background).
        **kwargs: ``gamma``, ``init_std``, ``learn_gamma``, ``gamma_range`` of
            :class:`CentroidClassifier`.
    """

    def __init__(self, in_features: int, out_features: int, **kwargs):
        super().__init__(in_features, out_features, **kwargs)


class GaussBBoxHeadMixin:
    """Makes an mmdet bbox head classify with :class:`GaussLinear` and train it one-vs-rest.

    Args:
        gamma (float): Scale of the squared distance (initial value if learned).
            Defaults to 1.0.
        learn_gamma (bool): Learn a gamma per class (log-parameterised, clamped to
            ``gamma_range``). Defaults to False.
        gamma_range (Sequence[float]): Bounds of a learned gamma. Defaults to ``(1e-3, 1e3)``.
        centroid_std (float): Scale of the initial centroids, ``max(0, N(0, centroid_std^2))``
            per coordinate. Defaults to 1.0.
        loss_cls (dict): The classification loss; it must define mmdet's custom activation
            (the confidences). Defaults to ``dict(type='mmslak.CentroidBCELoss')``.
        *args: The positional arguments of the bbox head.
        **kwargs: Its keyword arguments, but ``cls_predictor_cfg``.
    """

    def __init__(self,
                 *args,
                 gamma: float = 1.0,
                 learn_gamma: bool = False,
                 gamma_range=(1e-3, 1e3),
                 centroid_std: float = 1.0,
                 loss_cls=dict(type='mmslak.CentroidBCELoss', loss_weight=1.0),
                 **kwargs):
        if 'cls_predictor_cfg' in kwargs:
            raise ValueError(f'{type(self).__name__} sets cls_predictor_cfg itself (a '
                             'mmslak.GaussLinear); configure it with gamma, learn_gamma, '
                             'gamma_range and centroid_std')
        predictor = dict(type='mmslak.GaussLinear', gamma=gamma, learn_gamma=learn_gamma,
                         gamma_range=tuple(gamma_range), init_std=centroid_std)
        super().__init__(*args, cls_predictor_cfg=predictor, loss_cls=loss_cls, **kwargs)
        if not self.with_cls:
            raise ValueError(f'{type(self).__name__} is a classifier head: with_cls must be True')
        if not (self.custom_cls_channels and self.custom_activation):
            raise ValueError(f'{type(self).__name__} scores boxes by Gauss confidences, which '
                             f'its loss must define (custom_cls_channels, get_activation); '
                             f"{type(self.loss_cls).__name__} does not: use "
                             "loss_cls=dict(type='mmslak.CentroidBCELoss')")


@MODELS.register_module()
class GaussConvFCBBoxHead(GaussBBoxHeadMixin, ConvFCBBoxHead):
    """mmdet's ``ConvFCBBoxHead`` (e.g. Cascade R-CNN's 4conv1fc stages) with a Gauss
    classifier; the arguments are those of :class:`GaussBBoxHeadMixin` and
    ``ConvFCBBoxHead``."""


@MODELS.register_module()
class GaussShared2FCBBoxHead(GaussBBoxHeadMixin, Shared2FCBBoxHead):
    """mmdet's ``Shared2FCBBoxHead`` (Faster R-CNN's) with a Gauss classifier; the arguments
    are those of :class:`GaussBBoxHeadMixin` and ``Shared2FCBBoxHead``."""
