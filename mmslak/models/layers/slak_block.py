import torch
import torch.nn as nn
from mmcv.cnn.bricks import DropPath

from .fused_ops import can_fuse, fused_linear, linear, pack_linear_weight
from .inference_cache import InferenceCacheMixin, cached
from .large_kernel_conv import LargeKernelConv


class SLaKBlock(InferenceCacheMixin, nn.Module):
    """A SLaK block: large-kernel depthwise conv, LayerNorm, MLP, layer scale, residual.

    The ConvNeXt block with its 7 x 7 depthwise conv replaced by :class:`LargeKernelConv`. On a
    channels-last input the LayerNorm and MLP read the NHWC view of the activations without a
    copy. For inference on CPU (see :func:`~.fused_ops.can_fuse`) the first linear layer applies
    the GELU and the second, with the layer scale folded into it, adds the shortcut in their
    epilogues, both with weights reordered once for oneDNN (kept until a parameter changes);
    where gradients are wanted the linear layers differentiate through oneDNN
    (:func:`~.fused_ops.linear`).

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
        fast_path (bool): Use the fused and oneDNN CPU kernels where they apply; False always
            runs the plain modules. Defaults to True.
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
                 deploy=False,
                 fast_path=True):
        super().__init__()
        self.fast_path = fast_path
        self.large_kernel = LargeKernelConv(
            channels,
            kernel_size,
            small_kernel,
            decompose,
            norm_cfg=norm_cfg,
            deploy=deploy,
            fast_path=fast_path)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        hidden = int(mlp_ratio * channels)
        self.pwconv1 = nn.Linear(channels, hidden)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(hidden, channels)
        self.gamma = nn.Parameter(torch.full((channels, ), float(layer_scale_init_value))) \
            if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x):
        if self.fast_path and not self.training and can_fuse(x, self):
            return self._forward_fused(x)
        shortcut = x
        x = self.norm(self.large_kernel(x).permute(0, 2, 3, 1))
        if self.fast_path:
            x = linear(self.act(linear(x, self.pwconv1.weight, self.pwconv1.bias)),
                       self.pwconv2.weight, self.pwconv2.bias)
        else:
            x = self.pwconv2(self.act(self.pwconv1(x)))
        if self.gamma is not None:
            x = self.gamma * x
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))

    def _forward_fused(self, x):
        shortcut = x.permute(0, 2, 3, 1)
        y = self.norm(self.large_kernel(x).permute(0, 2, 3, 1))
        sources = [self.pwconv1.weight, self.pwconv2.weight, self.pwconv2.bias]
        if self.gamma is not None:
            sources.append(self.gamma)
        fc1, fc2, fc2_bias = cached(self, 'fused_mlp', sources,
                                    lambda: self._fused_mlp_weights(shortcut[..., 0].numel()))
        y = fused_linear(y, fc1, self.pwconv1.bias, gelu=self.act.approximate)
        return fused_linear(y, fc2, fc2_bias, residual=shortcut).permute(0, 3, 1, 2)

    def _fused_mlp_weights(self, rows):
        """The oneDNN weights of both linear layers and the second's bias, layer scale folded.

        Args:
            rows (int): Pixels per call, oneDNN's layout hint.
        """
        fc2, fc2_bias = self.pwconv2.weight, self.pwconv2.bias
        if self.gamma is not None:
            fc2, fc2_bias = fc2 * self.gamma[:, None], fc2_bias * self.gamma
        return (pack_linear_weight(self.pwconv1.weight, rows), pack_linear_weight(fc2, rows),
                fc2_bias.detach())
