from .checked_runner import CheckedRunner, describe_mismatch, state_dict_mismatch

__all__ = ['CheckedRunner', 'describe_mismatch', 'state_dict_mismatch']
