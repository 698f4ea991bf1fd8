"""The CPU backend: compiled AVX-512 / AVX2 depthwise kernels and oneDNN's fused operators."""
from .kernel_library import kernel_isa

__all__ = ['kernel_isa']
