from .checkpoint_checks import check_dtypes, check_finite, non_finite_tensors, short_list
from .safe_load import allow_runner_checkpoints, load_official_checkpoint

__all__ = [
    'allow_runner_checkpoints', 'check_dtypes', 'check_finite', 'load_official_checkpoint',
    'non_finite_tensors', 'short_list'
]
