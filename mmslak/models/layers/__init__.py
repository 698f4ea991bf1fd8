from .large_kernel_conv import DepthwiseConvBN, LargeKernelConv
from .layer_norm import LayerNorm2d
from .slak_block import SLaKBlock

__all__ = ['DepthwiseConvBN', 'LargeKernelConv', 'LayerNorm2d', 'SLaKBlock']
