"""A plain NCHW eager SLaK: the reference that ``benchmark.py`` measures mmslak against.

It computes SLaK as the official code does without its CUDA extension: each block runs its
depthwise branches as ``nn.Conv2d`` + ``BatchNorm2d`` on NCHW tensors and sums them, the
channels-first LayerNorms take their statistics with tensor reductions, and nothing is fused or
re-laid out. Its parameters and buffers carry mmslak's names, so :meth:`PlainSLaK.from_backbone`
copies an mmslak backbone into it and both compute the same network.
"""
import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from mmcv.cnn.bricks import DropPath


class ChannelsFirstLayerNorm(nn.Module):
    """LayerNorm over dim 1 of an NCHW tensor, from its mean and biased variance.

    Args:
        channels (int): Number of channels.
        eps (float): Added to the variance. Defaults to 1e-6.
    """

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(1, keepdim=True)
        var = (x - mean).pow(2).mean(1, keepdim=True)
        x = (x - mean) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class PlainConvBN(nn.Module):
    """A bias-free depthwise ``nn.Conv2d`` and a ``BatchNorm2d``.

    Args:
        channels (int): Number of channels.
        kernel_size (tuple[int, int]): Kernel height and width, both odd.
    """

    def __init__(self, channels, kernel_size):
        super().__init__()
        padding = (kernel_size[0] // 2, kernel_size[1] // 2)
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=padding, groups=channels,
                              bias=False)
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x):
        return self.bn(self.conv(x))


class PlainBlock(nn.Module):
    """A SLaK block: summed depthwise branches, LayerNorm, MLP, layer scale, residual.

    Args:
        channels (int): Number of channels.
        kernel_shapes (dict[str, tuple[int, int]]): Branch name to depthwise kernel shape, e.g.
            ``vertical``, ``horizontal`` and ``small``.
        layer_scale (bool): Whether the block has a layer scale ``gamma``.
        drop_path_rate (float): Stochastic depth rate.
    """

    def __init__(self, channels, kernel_shapes, layer_scale, drop_path_rate):
        super().__init__()
        self.large_kernel = nn.ModuleDict(
            {name: PlainConvBN(channels, shape)
             for name, shape in kernel_shapes.items()})
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pwconv1 = nn.Linear(channels, 4 * channels)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * channels, channels)
        self.gamma = nn.Parameter(torch.ones(channels)) if layer_scale else None
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()

    def forward(self, x):
        y = sum(branch(x) for branch in self.large_kernel.values())
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y.permute(0, 2, 3, 1)))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y.permute(0, 3, 1, 2))


def _kernel_shapes(large_kernel):
    """Branch name to kernel shape of an mmslak ``LargeKernelConv`` in its training form."""
    names = large_kernel.branch_names + (('small', ) if large_kernel.small is not None else ())
    return {name: tuple(getattr(large_kernel, name).conv.kernel_size) for name in names}


class PlainSLaK(nn.Module):
    """The SLaK backbone in plain NCHW eager PyTorch, built as a copy of an mmslak ``SLaK``.

    Args:
        backbone (mmslak.SLaK): The backbone to copy, in its training form: architecture,
            layer scales, drop path rates, ``out_indices``, ``with_cp`` and all weights.
    """

    def __init__(self, backbone):
        super().__init__()
        if backbone.deploy:
            raise ValueError('PlainSLaK copies the training form; build it before '
                             'switch_to_deploy()')
        channels = backbone.channels
        in_channels = backbone.downsample_layers[0][0].in_channels
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(in_channels, channels[0], kernel_size=4, stride=4),
                ChannelsFirstLayerNorm(channels[0]))
        ])
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(
                    ChannelsFirstLayerNorm(channels[i]),
                    nn.Conv2d(channels[i], channels[i + 1], kernel_size=2, stride=2)))
        self.stages = nn.ModuleList(
            nn.Sequential(*[
                PlainBlock(channels[i], _kernel_shapes(block.large_kernel), block.gamma
                           is not None, getattr(block.drop_path, 'drop_prob', 0.))
                for block in stage
            ]) for i, stage in enumerate(backbone.stages))
        self.out_indices = list(backbone.out_indices)
        for i in self.out_indices:
            self.add_module(f'norm{i}', ChannelsFirstLayerNorm(channels[i]))
        self.with_cp = backbone.with_cp
        weights = {k: v for k, v in backbone.state_dict().items() if not k.endswith('_mask')}
        self.load_state_dict(weights)
        self.train(backbone.training)

    def forward(self, x):
        outs = []
        for i, (downsample, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            x = downsample(x)
            for block in stage:
                if self.with_cp and self.training:
                    x = cp.checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x))
        return tuple(outs)
