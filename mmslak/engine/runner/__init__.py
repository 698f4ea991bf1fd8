from .checked_runner import CheckedRunner, check_fit, describe_mismatch, state_dict_mismatch

__all__ = ['CheckedRunner', 'check_fit', 'describe_mismatch', 'state_dict_mismatch']
