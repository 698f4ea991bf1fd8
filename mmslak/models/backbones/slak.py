import logging
import numbers
import warnings

import torch.nn as nn
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init, trunc_normal_init
from torch.nn.modules.batchnorm import _BatchNorm

from mmslak.checkpoint import load_weights
from mmslak.models.layers import LargeKernelConv, LayerNorm2d, SLaKBlock
from mmslak.models.utils import (add_weight_masks, apply_weight_masks, density_by_prefix,
                                 fill_missing_masks)
from mmslak.ops import memory_format_of, preferred_memory_format, use_ops
from mmslak.registry import MODELS
from mmslak.utils.torch_compat import register_load_state_dict_pre_hook

MIN_INPUT_SIZE = 32


def _take_alias(name, value, default, **aliases):
    """Return the value of ``name`` or of its one official alias, refusing a double setting."""
    given = {alias: setting for alias, setting in aliases.items() if setting is not None}
    if not given:
        return value
    if len(given) > 1 or value != default:
        raise ValueError(f'SLaK got {name} more than once: as {name} and {sorted(given)}')
    return next(iter(given.values()))


def _reference_ops(fast_path):
    """Whether the deprecated ``fast_path=False`` asks for the ``torch`` ops."""
    if fast_path is None:
        return False
    warnings.warn('SLaK(fast_path=...) is deprecated: the ops pick their backend per call; set '
                  "MMSLAK_OPS=torch or wrap the call in mmslak.ops.use_ops('torch') for the "
                  'reference', DeprecationWarning, stacklevel=3)
    return not fast_path


def _fill_missing_masks(module, state_dict, prefix, *args):
    """Load-state-dict pre-hook: masks absent from a checkpoint come from its weights' zeros."""
    mask_keys = [key for key in module.state_dict() if key.endswith('weight_mask')]
    fill_missing_masks(state_dict, prefix, mask_keys)


@MODELS.register_module()
class SLaK(BaseModule):
    """SLaK backbone from `More ConvNets in the 2020s: Scaling up Kernels Beyond 51x51 using
    Sparsity <https://arxiv.org/abs/2207.03620>`_.

    A ConvNeXt whose 7 x 7 depthwise convs are replaced by :class:`LargeKernelConv`: per stage, a
    ``k x s`` and an ``s x k`` depthwise conv plus an ``s x s`` one, each with BN, on channels
    widened by ``width_factor``. Each output in ``out_indices`` passes through a channels-first
    LayerNorm ``norm{i}``, as in the official dense-prediction backbone.

    Official argument names are accepted as aliases: ``depths``, ``dims``, ``Decom``, ``LoRA``
    (both meaning ``decompose``), ``in_chans``, ``pretrained`` and ``bn=True``.

    Args:
        arch (str | dict): ``'tiny'``, ``'small'``, ``'base'``, or a dict with ``depths`` (blocks
            per stage) and ``dims`` (channels per stage before ``width_factor``). Defaults to
            ``'tiny'``.
        in_channels (int): Number of input channels. Defaults to 3.
        kernel_size (Sequence[int]): The four stage kernel sizes, then the small kernel size; all
            odd, no stage kernel smaller than the small one. Defaults to ``(51, 49, 47, 13, 5)``.
        width_factor (float): Channel multiplier, ``int(dim * width_factor)``. Defaults to 1.3.
        decompose (bool): Decompose ``k x k`` kernels into ``k x s`` and ``s x k``. Defaults to
            True.
        drop_path_rate (float): Stochastic depth rate, increasing linearly over blocks.
            Defaults to 0.
        layer_scale_init_value (float): Initial layer scale; none when not positive.
            Defaults to 1e-6.
        out_indices (Sequence[int] | int): Stages whose outputs are returned; negative indices
            count from the end. Defaults to ``(0, 1, 2, 3)``.
        frozen_stages (int): Freeze the stem, the downsampling layers and the stages up to and
            including this index (no gradients, BN in eval mode); -1 freezes nothing.
            Defaults to -1.
        norm_eval (bool): Keep the kernel branches' BN layers in eval mode during training.
            Defaults to False.
        with_cp (bool): Checkpoint the activations of each block to save memory. Defaults to False.
        norm_cfg (dict): Config of the kernel branches' normalisation, e.g. ``dict(type='SyncBN')``.
            Defaults to ``dict(type='BN')``.
        sparse (bool): Keep the zeros of the loaded weights during fine-tuning: every 2-D and 4-D
            weight gets a mask derived from its zeros, re-applied after each optimizer step by
            ``mmslak.SparseMaskHook`` (or :meth:`apply_sparse_masks`). Defaults to False.
        deploy (bool): Build the fused inference form (see :meth:`switch_to_deploy`).
            Defaults to False.
        fast_path (bool, optional): Deprecated: every call of :mod:`mmslak.ops` picks its backend
            (``MMSLAK_OPS``, :func:`mmslak.ops.use_ops`); ``False`` runs this model's forward on
            the ``torch`` reference, as ``use_ops('torch')`` would. Defaults to None.
        init_cfg (dict | list[dict], optional): Initialisation config. ``dict(type='Pretrained',
            checkpoint=..., prefix=...)`` loads official or mmslak checkpoints strictly, refusing
            NaN and infinite values unless it also sets ``allow_non_finite=True``.
    """

    arch_settings = {
        'tiny': dict(depths=[3, 3, 9, 3], dims=[96, 192, 384, 768]),
        'small': dict(depths=[3, 3, 27, 3], dims=[96, 192, 384, 768]),
        'base': dict(depths=[3, 3, 27, 3], dims=[128, 256, 512, 1024]),
    }

    def __init__(self,
                 arch='tiny',
                 in_channels=3,
                 kernel_size=(51, 49, 47, 13, 5),
                 width_factor=1.3,
                 decompose=True,
                 drop_path_rate=0.,
                 layer_scale_init_value=1e-6,
                 out_indices=(0, 1, 2, 3),
                 frozen_stages=-1,
                 norm_eval=False,
                 with_cp=False,
                 norm_cfg=dict(type='BN'),
                 sparse=False,
                 deploy=False,
                 fast_path=None,
                 init_cfg=None,
                 depths=None,
                 dims=None,
                 Decom=None,
                 LoRA=None,
                 in_chans=None,
                 pretrained=None,
                 bn=True):
        if not bn:
            raise ValueError('SLaK without BN in the kernel branches (bn=False) is not supported')
        if pretrained is not None:
            if init_cfg is not None:
                raise ValueError('Set either pretrained or init_cfg, not both')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        super().__init__(init_cfg=init_cfg)
        decompose = _take_alias('decompose', decompose, True, Decom=Decom, LoRA=LoRA)
        in_channels = _take_alias('in_channels', in_channels, 3, in_chans=in_chans)
        if depths is not None or dims is not None:
            if arch != 'tiny':
                raise ValueError('Set either arch or the official depths/dims, not both')
            arch = dict(depths=depths, dims=dims)

        self.arch = self._parse_arch(arch)
        self.in_channels = in_channels
        self.kernel_size = self._check_kernel_size(kernel_size)
        self.width_factor = width_factor
        self.channels = [int(dim * width_factor) for dim in self.arch['dims']]
        self.decompose = decompose
        self.out_indices = self._normalise_out_indices(out_indices)
        if not -1 <= frozen_stages < 4:
            raise ValueError(f'frozen_stages must be in [-1, 3], got {frozen_stages}')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        self.with_cp = with_cp
        self.sparse = sparse
        self.deploy = deploy
        self.reference_ops = _reference_ops(fast_path)

        channels = self.channels
        self.downsample_layers = nn.ModuleList([
            nn.Sequential(
                nn.Conv2d(in_channels, channels[0], kernel_size=4, stride=4),
                LayerNorm2d(channels[0]))
        ])
        for i in range(3):
            self.downsample_layers.append(
                nn.Sequential(
                    LayerNorm2d(channels[i]),
                    nn.Conv2d(channels[i], channels[i + 1], kernel_size=2, stride=2)))

        depths = self.arch['depths']
        rates = [drop_path_rate * i / max(sum(depths) - 1, 1) for i in range(sum(depths))]
        self.stages = nn.ModuleList()
        for i, depth in enumerate(depths):
            first = sum(depths[:i])
            self.stages.append(
                nn.Sequential(*[
                    SLaKBlock(
                        channels[i],
                        self.kernel_size[i],
                        self.kernel_size[-1],
                        decompose=decompose,
                        drop_path_rate=rates[first + j],
                        layer_scale_init_value=layer_scale_init_value,
                        norm_cfg=norm_cfg,
                        deploy=deploy) for j in range(depth)
                ]))
        for i in self.out_indices:
            self.add_module(f'norm{i}', LayerNorm2d(channels[i]))

        if sparse:
            add_weight_masks(self)
            register_load_state_dict_pre_hook(self, _fill_missing_masks)
        self._freeze_stages()

    @classmethod
    def _parse_arch(cls, arch):
        if isinstance(arch, str):
            if arch not in cls.arch_settings:
                raise ValueError(f'Unknown SLaK arch {arch!r}; choose one of '
                                 f'{sorted(cls.arch_settings)} or pass a dict')
            return dict(cls.arch_settings[arch])
        if not isinstance(arch, dict):
            raise TypeError(f'arch must be a str or a dict, got {type(arch).__name__}')
        missing = {'depths', 'dims'} - {key for key, value in arch.items() if value is not None}
        if missing:
            raise ValueError(f'A custom SLaK arch needs the keys depths and dims; missing: '
                             f'{sorted(missing)}')
        for key in ('depths', 'dims'):
            if len(arch[key]) != 4:
                raise ValueError(f'arch {key} must have 4 entries (one per stage), '
                                 f'got {list(arch[key])}')
        return dict(depths=list(arch['depths']), dims=list(arch['dims']))

    @staticmethod
    def _check_kernel_size(kernel_size):
        if isinstance(kernel_size, (str, numbers.Number)):
            raise TypeError('kernel_size must be a sequence of the four stage kernels and the '
                            f'small kernel, got {kernel_size!r}')
        kernel_size = list(kernel_size)
        not_int = [k for k in kernel_size if not isinstance(k, numbers.Integral)
                   or isinstance(k, bool)]
        if not_int:
            raise TypeError(f'SLaK kernel sizes must be integers, got {not_int} in {kernel_size}')
        kernel_size = [int(k) for k in kernel_size]
        if len(kernel_size) != 5:
            raise ValueError('kernel_size must list the four stage kernels and then the small '
                             f'kernel (5 entries), got {kernel_size}')
        even = [k for k in kernel_size if k % 2 == 0 or k < 1]
        if even:
            raise ValueError(f'SLaK kernel sizes must be odd and positive, got {even} in '
                             f'{kernel_size}')
        small = kernel_size[-1]
        too_small = [k for k in kernel_size[:4] if k < small]
        if too_small:
            raise ValueError(f'Stage kernels {too_small} are smaller than the small kernel {small}')
        return kernel_size

    @staticmethod
    def _normalise_out_indices(out_indices):
        if isinstance(out_indices, int):
            out_indices = [out_indices]
        normalised = []
        for index in out_indices:
            if not -4 <= index < 4:
                raise ValueError(f'out_indices must be in [-4, 3], got {index}')
            normalised.append(index % 4)
        if len(set(normalised)) != len(normalised):
            raise ValueError(f'out_indices has duplicates: {list(out_indices)}')
        return sorted(normalised)

    def init_weights(self):
        """Load the Pretrained checkpoint of ``init_cfg`` strictly, or initialise as officially."""
        init_cfg = self.init_cfg
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            if init_cfg.get('checkpoint') is not None:
                load_weights(self, init_cfg['checkpoint'], prefix=init_cfg.get('prefix', ''),
                             allow_non_finite=init_cfg.get('allow_non_finite', False))
                self._is_init = True
                return
            # The recipes leave the checkpoint for the user to set; say loudly that none is used.
            print_log('SLaK: init_cfg Pretrained has checkpoint=None, so the backbone is trained '
                      'from scratch; set it with --cfg-options '
                      'model.backbone.init_cfg.checkpoint=PATH', logger='current',
                      level=logging.WARNING)
            self.init_cfg = None
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                trunc_normal_init(module, std=.02, bias=0.)
            elif isinstance(module, (nn.LayerNorm, _BatchNorm)):
                constant_init(module, 1., bias=0.)
        super().init_weights()

    def apply_sparse_masks(self):
        """Zero the masked-out weights in place (after an optimizer step); no-op if not sparse."""
        if self.sparse:
            apply_weight_masks(self)

    def sparse_density(self):
        """Fraction of kept (non-masked) weights: stem, each stage (with its downsampling), all."""
        groups = {'stem': ('downsample_layers.0.', )}
        for i in range(4):
            groups[f'stage{i}'] = (f'stages.{i}.', ) + ((f'downsample_layers.{i}.', ) if i else ())
        groups['all'] = ('', )
        return density_by_prefix(self, groups)

    def log_sparse_density(self):
        """Log the density per stage once masks are in place."""
        density = ', '.join(f'{name} {value:.1%}' for name, value in self.sparse_density().items())
        print_log(f'SLaK sparse masks, density of kept weights: {density}', logger='current')

    def switch_to_deploy(self):
        """Fold BNs and merge the small kernels into the large ones (exact, for inference).

        Raises:
            RuntimeError: If the model is in training mode (BN statistics would still change).
        """
        if self.deploy:
            return
        if self.training:
            raise RuntimeError('switch_to_deploy() needs eval mode: call model.eval() first, so '
                               'that the BN statistics it folds are final')
        for module in self.modules():
            if isinstance(module, LargeKernelConv):
                module.switch_to_deploy()
        self.deploy = True

    def _freeze_stages(self):
        for i in range(self.frozen_stages + 1):
            for module in (self.downsample_layers[i], self.stages[i]):
                module.eval()
                for param in module.parameters():
                    param.requires_grad = False

    def train(self, mode=True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self

    def _check_input(self, x):
        """Refuse inputs the stem cannot take, with what to change.

        Raises:
            ValueError: If ``x`` is not ``(N, in_channels, H, W)`` with H, W of at least 32.
        """
        if x.dim() != 4:
            hint = ': add a batch dimension, x[None]' if x.dim() == 3 else ''
            raise ValueError(f'SLaK takes 4-D inputs (N, C, H, W), got a {x.dim()}-D tensor of '
                             f'shape {tuple(x.shape)}{hint}')
        if x.shape[1] != self.in_channels:
            if x.shape[-1] == self.in_channels:
                raise ValueError(f'SLaK takes channels-first inputs (N, C, H, W); shape '
                                 f'{tuple(x.shape)} looks channels-last (N, H, W, C): pass '
                                 'x.permute(0, 3, 1, 2)')
            raise ValueError(f'SLaK was built for in_channels={self.in_channels}, got an input '
                             f'with {x.shape[1]} channels (shape {tuple(x.shape)})')
        if min(x.shape[-2:]) < MIN_INPUT_SIZE:
            raise ValueError(f'SLaK needs inputs of at least {MIN_INPUT_SIZE} x {MIN_INPUT_SIZE} '
                             f'pixels, got {tuple(x.shape[-2:])}')

    def forward(self, x):
        if self.reference_ops:
            with use_ops('torch'):
                return self._forward(x)
        return self._forward(x)

    def _forward(self, x):
        self._check_input(x)
        out_format = memory_format_of(x)
        run_format = preferred_memory_format(x)
        if run_format is not None:
            x = x.contiguous(memory_format=run_format)
        outs = []
        for i, (downsample, stage) in enumerate(zip(self.downsample_layers, self.stages)):
            x = downsample(x)
            for block in stage:
                if self.with_cp and self.training:
                    x = cp.checkpoint(block, x, use_reentrant=False)
                else:
                    x = block(x)
            if i in self.out_indices:
                outs.append(getattr(self, f'norm{i}')(x).contiguous(memory_format=out_format))
        return tuple(outs)
