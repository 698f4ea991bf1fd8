from .sparse_mask_hook import SparseMaskHook

__all__ = ['SparseMaskHook']
