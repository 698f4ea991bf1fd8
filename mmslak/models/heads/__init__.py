"""Decode heads with a Gauss (centroid) classifier, and its loss."""
from .centroid_bce_loss import CentroidBCELoss
from .centroid_classifier import CentroidClassifier
from .gauss_heads import CentroidHeadMixin, GaussFCNHead, GaussUPerHead

__all__ = [
    'CentroidBCELoss', 'CentroidClassifier', 'CentroidHeadMixin', 'GaussFCNHead', 'GaussUPerHead'
]
