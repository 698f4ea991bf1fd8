"""mmslak's ops: one function per op, computed by the backend :mod:`.backend` picks.

The model layers (:mod:`mmslak.models.layers`) call these and nothing below them; which backend
runs when, and why the CPU one exists, is told in :mod:`.backend`.
"""
from .backend import BACKENDS, memory_format_of, preferred_memory_format, requested_backend, use_ops
from .cpu import kernel_isa
from .large_kernel import EvalBatchNorm, depthwise_conv_sum, depthwise_convs, fold_batch_norm
from .mlp import block_mlp
from .weight_cache import clear_weight_cache

__all__ = [
    'BACKENDS', 'EvalBatchNorm', 'block_mlp', 'clear_weight_cache', 'depthwise_conv_sum',
    'depthwise_convs', 'fold_batch_norm', 'kernel_isa', 'memory_format_of',
    'preferred_memory_format', 'requested_backend', 'use_ops'
]
