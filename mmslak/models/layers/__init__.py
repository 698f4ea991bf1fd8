from .cpu_sync_batch_norm import CPUSyncBatchNorm
from .large_kernel_conv import DepthwiseConvBN, LargeKernelConv
from .layer_norm import LayerNorm2d
from .slak_block import SLaKBlock

__all__ = ['CPUSyncBatchNorm', 'DepthwiseConvBN', 'LargeKernelConv', 'LayerNorm2d', 'SLaKBlock']
