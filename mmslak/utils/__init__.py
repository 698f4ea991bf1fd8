from .safe_load import allow_runner_checkpoints, load_official_checkpoint

__all__ = ['allow_runner_checkpoints', 'load_official_checkpoint']
