from .sparse_masks import (add_weight_masks, apply_masks, apply_weight_masks, density_by_prefix,
                           erk_densities, fill_missing_masks, iter_masked_weights, prune_and_regrow,
                           random_mask, snip_masks)

__all__ = [
    'add_weight_masks', 'apply_masks', 'apply_weight_masks', 'density_by_prefix',
    'erk_densities', 'fill_missing_masks', 'iter_masked_weights', 'prune_and_regrow',
    'random_mask', 'snip_masks'
]
