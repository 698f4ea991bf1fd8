"""The Gauss (centroid) classifier and its loss; the heads built on them where mmseg / mmdet are.

:class:`CentroidClassifier` and :class:`CentroidBCELoss` need PyTorch and mmengine alone. The
Gauss decode heads subclass mmseg's and the Gauss bbox heads mmdet's, so each is imported (and
registered) only where its package is installed: the backbone and the classifier then work on a
machine without mmseg or mmdet.
"""
from importlib.util import find_spec

from .centroid_bce_loss import CentroidBCELoss
from .centroid_classifier import CentroidClassifier

__all__ = ['CentroidBCELoss', 'CentroidClassifier']

if find_spec('mmseg') is not None:
    from .gauss_heads import CentroidHeadMixin, GaussFCNHead, GaussUPerHead  # noqa: F401
    __all__ += ['CentroidHeadMixin', 'GaussFCNHead', 'GaussUPerHead']

if find_spec('mmdet') is not None:
    from .gauss_bbox_heads import (GaussBBoxHeadMixin, GaussConvFCBBoxHead,  # noqa: F401
                                   GaussLinear, GaussShared2FCBBoxHead)
    __all__ += [
        'GaussBBoxHeadMixin', 'GaussConvFCBBoxHead', 'GaussLinear', 'GaussShared2FCBBoxHead'
    ]
