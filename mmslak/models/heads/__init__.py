"""The Gauss (centroid) classifier and its loss; the decode heads built on them where mmseg is.

:class:`CentroidClassifier` and :class:`CentroidBCELoss` need PyTorch and mmengine alone. The
Gauss decode heads subclass mmseg's, so they are imported (and registered) only where mmseg is
installed: the backbone and the classifier then work on a machine without mmseg or mmdet.
"""
from importlib.util import find_spec

from .centroid_bce_loss import CentroidBCELoss
from .centroid_classifier import CentroidClassifier

__all__ = ['CentroidBCELoss', 'CentroidClassifier']

if find_spec('mmseg') is not None:
    from .gauss_heads import CentroidHeadMixin, GaussFCNHead, GaussUPerHead  # noqa: F401
    __all__ += ['CentroidHeadMixin', 'GaussFCNHead', 'GaussUPerHead']
