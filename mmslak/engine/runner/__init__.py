from .strict_load_runner import StrictLoadRunner, describe_mismatch, state_dict_mismatch

__all__ = ['StrictLoadRunner', 'describe_mismatch', 'state_dict_mismatch']
