import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath

from mmslak.ops import block_mlp
from .large_kernel_conv import LargeKernelConv


class SLaKBlock(nn.Module):
    """A SLaK block: large-kernel depthwise conv, LayerNorm, MLP, layer scale, residual.

    The ConvNeXt block with its 7 x 7 depthwise conv replaced by :class:`LargeKernelConv`; the
    LayerNorm and the MLP (:func:`~mmslak.ops.block_mlp`, which adds the shortcut unless a path
    is being dropped) read the NHWC view of the activations.

    Args:
        channels (int): Number of channels.
        kernel_size (int): The large kernel size.
        small_kernel (int): The small kernel size.
        decompose (bool): Whether the large kernel is decomposed. Defaults to True.
        mlp_ratio (float): Hidden width of the MLP relative to ``channels``. Defaults to 4.
        drop_path_rate (float): Stochastic depth rate. Defaults to 0.
        layer_scale_init_value (float): Initial value of the layer scale ``gamma``; no layer
            scale when not positive. Defaults to 1e-6.
        norm_cfg (dict): Config of the kernel branches' normalisation. Defaults to
            ``dict(type='BN')``.
        deploy (bool): Build the large kernel in its fused inference form. Defaults to False.
    """

    def __init__(self,
                 channels,
                 kernel_size,
                 small_kernel,
                 decompose=True,
                 mlp_ratio=4.,
                 drop_path_rate=0.,
                 layer_scale_init_value=1e-6,
                 norm_cfg=dict(type='BN'),
                 deploy=False):
        super().__init__()
        self.large_kernel = LargeKernelConv(
            channels, kernel_size, small_kernel, decompose, norm_cfg=norm_cfg, deploy=deploy)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        hidden = int(mlp_ratio * channels)
        self.pwconv1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden, channels)
        self.gamma = nn.Parameter(torch.full((channels, ), float(layer_scale_init_value))) \
            if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x):
        shortcut = x.permute(0, 2, 3, 1)
        x = self.norm(self.large_kernel(x).permute(0, 2, 3, 1))
        if self.training and isinstance(self.drop_path, DropPath):
            x = shortcut + self.drop_path(self._mlp(x))
        else:
            x = self._mlp(x, residual=shortcut)
        return x.permute(0, 3, 1, 2)

    def _mlp(self, x, residual=None):
        return block_mlp(x, self.pwconv1.weight, self.pwconv1.bias, self.pwconv2.weight,
                         self.pwconv2.bias, self.gamma, residual, self.act.approximate)
