from .dynamic_sparsity_hook import DynamicSparsityHook
from .finite_loss_hook import FiniteLossHook
from .main_process_logger_hook import MainProcessLoggerHook
from .random_state_hook import RandomStateHook
from .sparse_mask_hook import SparseMaskHook

__all__ = [
    'DynamicSparsityHook', 'FiniteLossHook', 'MainProcessLoggerHook', 'RandomStateHook',
    'SparseMaskHook'
]
