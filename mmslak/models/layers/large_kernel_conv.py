import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch.nn.modules.batchnorm import _BatchNorm

from mmslak.ops import EvalBatchNorm, depthwise_conv_sum, depthwise_convs, fold_batch_norm


class DepthwiseConvBN(nn.Module):
    """A depthwise convolution without bias followed by a BatchNorm-like layer.

    Args:
        channels (int): Number of input and output channels.
        kernel_size (tuple[int, int]): Kernel height and width, both odd.
        norm_cfg (dict): Config of the normalisation layer.
    """

    def __init__(self, channels, kernel_size, norm_cfg):
        super().__init__()
        padding = (kernel_size[0] // 2, kernel_size[1] // 2)
        self.conv = nn.Conv2d(
            channels, channels, kernel_size, padding=padding, groups=channels, bias=False)
        self.bn = build_norm_layer(norm_cfg, channels)[1]

    def forward(self, x):
        return self.bn(self.conv(x))

    @property
    def foldable(self):
        """Whether the norm is a BatchNorm in eval mode with running statistics to fold."""
        return isinstance(self.bn, _BatchNorm) and not self.bn.training and \
            self.bn.running_var is not None

    def fuse(self):
        """Return the kernel and bias of the equivalent biased convolution (BN in eval form)."""
        return fold_batch_norm(self.conv.weight, EvalBatchNorm.of(self.bn))


def _pad_to(kernel, height, width):
    """Zero-pad a kernel symmetrically to ``height x width`` (both differences are even)."""
    pad_h = (height - kernel.shape[2]) // 2
    pad_w = (width - kernel.shape[3]) // 2
    return F.pad(kernel, (pad_w, pad_w, pad_h, pad_h))


def _biased_depthwise_conv(kernel, bias):
    """An ``nn.Conv2d`` holding a fused depthwise kernel and its bias, on the kernel's device
    and in its dtype (a model switched on a GPU or in float64 must stay there)."""
    channels, _, height, width = kernel.shape
    conv = nn.Conv2d(
        channels, channels, (height, width), padding=(height // 2, width // 2), groups=channels,
        device=kernel.device, dtype=kernel.dtype)
    conv.weight.data.copy_(kernel)
    conv.bias.data.copy_(bias)
    return conv


class LargeKernelConv(nn.Module):
    """SLaK's large depthwise kernel: decomposed k x s and s x k branches plus an s x s branch.

    With ``decompose=True`` the block computes ``vertical(x) + horizontal(x) + small(x)``, with
    kernels of ``k x s``, ``s x k`` and ``s x s``; with ``decompose=False`` it computes
    ``square(x) + small(x)`` with a ``k x k`` kernel. Every branch is a depthwise conv + BN. The
    small branch is omitted when ``k == s``. :meth:`switch_to_deploy` folds the BNs and merges the
    small branch into ``vertical`` (or ``square``), leaving two (or one) biased convolutions.

    The convolutions are :mod:`mmslak.ops`: :func:`~mmslak.ops.depthwise_convs` gives each
    branch's output to its BN; with eval-mode BNs, and in the deploy form,
    :func:`~mmslak.ops.depthwise_conv_sum` computes the whole sum in one call (a backend may fold
    each BN into its kernel).

    Args:
        channels (int): Number of input and output channels.
        kernel_size (int): The large kernel size ``k`` (odd).
        small_kernel (int): The small kernel size ``s`` (odd, at most ``k``).
        decompose (bool): Whether to decompose ``k x k`` into ``k x s`` and ``s x k``.
            Defaults to True.
        norm_cfg (dict): Config of the branch normalisation. Defaults to ``dict(type='BN')``.
        deploy (bool): Build the fused inference form directly. Defaults to False.
    """

    def __init__(self,
                 channels,
                 kernel_size,
                 small_kernel,
                 decompose=True,
                 norm_cfg=dict(type='BN'),
                 deploy=False):
        super().__init__()
        self.channels = channels
        self.kernel_size = kernel_size
        self.small_kernel = small_kernel
        self.decompose = decompose
        self.deploy = deploy
        k, s = kernel_size, small_kernel
        large_shapes = {'vertical': (k, s), 'horizontal': (s, k)} if decompose else \
            {'square': (k, k)}
        for name, shape in large_shapes.items():
            branch = _biased_depthwise_conv(
                torch.zeros(channels, 1, *shape), torch.zeros(channels)) if deploy else \
                DepthwiseConvBN(channels, shape, norm_cfg)
            self.add_module(name, branch)
        self.small = DepthwiseConvBN(channels, (s, s), norm_cfg) if s < k and not deploy else None

    @property
    def branch_names(self):
        """Names of the large-kernel branches, in order."""
        return ('vertical', 'horizontal') if self.decompose else ('square', )

    def forward(self, x):
        if self.deploy:
            convs = [getattr(self, name) for name in self.branch_names]
            return depthwise_conv_sum(x, [c.weight for c in convs], [c.bias for c in convs])
        branches = self._branches()
        weights = [branch.conv.weight for branch in branches]
        if all(branch.foldable for branch in branches):
            norms = [EvalBatchNorm.of(branch.bn) for branch in branches]
            return depthwise_conv_sum(x, weights, norms=norms)
        return sum(branch.bn(out) for branch, out in zip(branches, depthwise_convs(x, weights)))

    def _branches(self):
        """The large branches, then the small one if any."""
        small = [self.small] if self.small is not None else []
        return [getattr(self, name) for name in self.branch_names] + small

    def _fused_kernels(self):
        """``(kernel, bias)`` of each large branch, BNs folded and the small kernel merged."""
        fused = [getattr(self, name).fuse() for name in self.branch_names]
        if self.small is not None:
            kernel, bias = fused[0]
            small_kernel, small_bias = self.small.fuse()
            fused[0] = (kernel + _pad_to(small_kernel, *kernel.shape[2:]), bias + small_bias)
        return fused

    @torch.no_grad()
    def switch_to_deploy(self):
        """Fold each BN into its conv and merge the small branch into the first large branch."""
        if self.deploy:
            return
        for name, (kernel, bias) in zip(self.branch_names, self._fused_kernels()):
            setattr(self, name, _biased_depthwise_conv(kernel, bias))
        self.small = None
        self.deploy = True
