from .checkpoint_checks import check_dtypes, check_finite, non_finite_tensors, short_list
from .safe_load import load_official_checkpoint, safe_load

__all__ = [
    'check_dtypes', 'check_finite', 'load_official_checkpoint', 'non_finite_tensors', 'safe_load',
    'short_list'
]
