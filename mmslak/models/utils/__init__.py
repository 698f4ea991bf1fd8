from .sparse_masks import (add_weight_masks, apply_weight_masks, density_by_prefix,
                           fill_missing_masks, iter_masked_weights)

__all__ = [
    'add_weight_masks', 'apply_weight_masks', 'density_by_prefix', 'fill_missing_masks',
    'iter_masked_weights'
]
