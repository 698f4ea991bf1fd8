from .finite_loss_hook import FiniteLossHook
from .random_state_hook import RandomStateHook
from .sparse_mask_hook import SparseMaskHook

__all__ = ['FiniteLossHook', 'RandomStateHook', 'SparseMaskHook']
