import logging
import math
import os.path as osp
import re
import time

import torch
from mmengine.dist import broadcast_object_list, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper

from mmslak.engine.optimizers import reset_optimizer_state
from mmslak.models.utils import (apply_masks, erk_densities, iter_masked_weights, prune_and_regrow,
                                 random_mask, snip_masks)
from mmslak.registry import HOOKS
from mmslak.utils.torch_compat import add_step_hooks

DISTRIBUTIONS = ('ERK', 'uniform', 'from_weights', 'snip')
GROWTHS = ('random', 'gradient')
# the large-kernel branches of SLaK blocks (mmslak.models.layers.LargeKernelConv)
LARGE_KERNEL_PATTERN = r'(^|\.)large_kernel\.'
# layers this dense are left dense by the updates, as in the official engine
DENSE_ENOUGH = 0.99


class _MaskedLayer:
    """A masked weight of the model: its name, parameter and boolean mask buffer."""

    def __init__(self, name, weight, mask):
        self.name, self.weight, self.mask = name, weight, mask

    @property
    def density(self):
        return int(self.mask.sum()) / self.mask.numel()


@HOOKS.register_module()
class DynamicSparsityHook(Hook):
    """Train with sparse weights whose sparsity pattern moves: prune the smallest, regrow.

    The hook acts on the ``weight_mask`` buffers that SLaK registers with ``sparse=True`` (the
    masks are then in every state dict, broadcast by DDP and resumed with the model). Before
    training it draws the masks (``ERK`` or ``uniform``) or keeps those already there
    (``from_weights``: loaded, or derived from a checkpoint's zeros); ``snip`` draws them at the
    first optimizer step, before the weights change, from the gradients of that step. After
    every optimizer step it zeroes the masked-out weights; every ``update_interval`` steps it
    prunes in each target layer the ``ceil(rate * active)`` active weights of smallest magnitude
    and regrows as many inactive positions, at random or where the gradient of that step is
    largest (weights from zero, their optimizer state reset, as is that of the pruned
    positions), so each layer keeps exactly its number of weights. The rate decays by a cosine
    from ``prune_rate`` to ``prune_rate_min`` over training.

    Optimizer steps are counted where they happen (a post-step hook of the optimizer), so
    gradient accumulation and steps skipped by a loss scaler count right; gradients are read in
    a pre-step hook, where they are complete (accumulated, unscaled, all-reduced by DDP) and the
    weights not yet changed. Every process draws from a generator seeded alike, on identical
    weights and gradients: all ranks hold identical masks. The step count and the generator are
    saved with each checkpoint and restored on resume.

    Args:
        sparsity (float): Fraction of the target weights that are zero. Defaults to 0.4.
        distribution (str): How density is spread over the layers: ``'ERK'`` (proportional to
            ``sum(shape) / prod(shape)``), ``'uniform'``, ``'from_weights'`` (the masks the
            model holds) or ``'snip'`` (global SNIP: the ``round(density * total)`` target
            weights of highest ``|weight * gradient|`` at the first optimizer step, over all
            target layers; ties keep the earlier layer and lower index). Defaults to ``'ERK'``.
        targets (str | Sequence[str]): The masked weights that are sparsified: ``'all'``,
            ``'large_kernels'`` (the large-kernel branches, the official ``--only-L``) or
            regular expressions searched in the weight names. Others keep their masks.
            Defaults to ``'all'``.
        prune_rate (float): Fraction of each layer's active weights moved at the first
            update. Defaults to 0.3.
        prune_rate_min (float): The rate the cosine decays to at the end of training.
            Defaults to 0.005.
        update_interval (int, optional): Optimizer steps between updates; None keeps the masks
            fixed. Defaults to 100.
        stop_at (float): Fraction of the training's optimizer steps after which the masks stay
            fixed. Defaults to 1.0.
        growth (str): How positions are regrown: ``'random'`` or ``'gradient'`` (RigL: the
            inactive positions of largest gradient magnitude at the updating step, ties to the
            lower index). Defaults to ``'random'``.
        seed (int, optional): Seed of the mask generator; None takes the runner's seed.
            Defaults to None.
        plot (bool): Save ``density_per_layer.png`` into the work dir. Defaults to True.

    Example:
        >>> model = dict(backbone=dict(sparse=True))
        >>> custom_hooks = [dict(type='mmslak.DynamicSparsityHook', sparsity=0.4)]
    """

    priority = 'NORMAL'

    def __init__(self,
                 sparsity=0.4,
                 distribution='ERK',
                 targets='all',
                 prune_rate=0.3,
                 prune_rate_min=0.005,
                 update_interval=100,
                 stop_at=1.0,
                 growth='random',
                 seed=None,
                 plot=True):
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f'distribution must be one of {DISTRIBUTIONS}, got {distribution!r}')
        if growth not in GROWTHS:
            raise ValueError(f'growth must be one of {GROWTHS}, got {growth!r}')
        if not 0 <= sparsity < 1:
            raise ValueError(f'sparsity must be in [0, 1), got {sparsity}')
        if not 0 <= prune_rate_min <= prune_rate <= 1:
            raise ValueError('prune rates must satisfy 0 <= prune_rate_min <= prune_rate <= 1, '
                             f'got {prune_rate_min} and {prune_rate}')
        if update_interval is not None and update_interval < 1:
            raise ValueError(f'update_interval must be a positive int or None, '
                             f'got {update_interval}')
        self.sparsity = sparsity
        self.distribution = distribution
        self.targets = targets
        self.prune_rate = prune_rate
        self.prune_rate_min = prune_rate_min
        self.update_interval = update_interval
        self.stop_at = stop_at
        self.growth = growth
        self.seed = seed
        self.plot = plot
        self.steps = 0
        self._total_steps = 1
        self.generator = torch.Generator()
        self._loaded = None
        self._handles = []
        self._grads = None
        self._snip_pending = False

    def before_train(self, runner):
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._masked = [_MaskedLayer(*layer) for layer in iter_masked_weights(model)]
        self._layers = self._select_targets()
        self._backbones = [m for m in model.modules() if hasattr(m, 'log_sparse_density')]
        self._optimizer = self._find_optimizer(runner)
        accumulation = getattr(runner.optim_wrapper, '_accumulative_counts', 1)
        self._total_steps = max(math.ceil(runner.max_iters / accumulation), 1)
        self._plot_path = osp.join(runner.work_dir, 'density_per_layer.png')
        if not self._resume(runner):
            self._seed_generator(runner)
            if self.distribution in ('ERK', 'uniform'):
                self._draw_masks()
        # SNIP needs the gradients of the first optimizer step (a run resumed before it too)
        self._snip_pending = self.distribution == 'snip' and self.steps == 0
        if not self._snip_pending:
            self._masks_ready()
        self._handles = [add_step_hooks(self._optimizer, self._before_step, self._after_step)]
        self._own_seconds, self._train_start = 0., time.perf_counter()

    def after_train(self, runner):
        for remove in self._handles:
            remove()
        self._handles = []
        # the hook's cost, measured in every run (SNIP scores, masking after each step, updates)
        elapsed = time.perf_counter() - self._train_start
        print_log(f'{type(self).__name__} took {self._own_seconds:.2f} s of the {elapsed:.1f} s '
                  f'of training ({self._own_seconds / elapsed:.2%})', logger='current')

    def _masks_ready(self):
        # updates keep each layer's count: dense layers stay dense and need no masking
        self._sparse = [layer for layer in self._masked if not layer.mask.all()]
        self._apply_masks()
        self._log_layers()
        if self.plot and is_main_process():
            self._plot(self._plot_path)

    def before_save_checkpoint(self, runner, checkpoint):
        # runs on the first process only: no collective here
        checkpoint['dynamic_sparsity'] = dict(
            steps=self.steps, generator=self.generator.get_state(),
            prune_rate=self.current_prune_rate())

    def after_load_checkpoint(self, runner, checkpoint):
        self._loaded = (checkpoint.get('meta', {}).get('iter'),
                        checkpoint.get('dynamic_sparsity'))

    def current_prune_rate(self):
        """The prune rate of an update after ``self.steps`` optimizer steps (cosine decay)."""
        progress = min(self.steps / self._total_steps, 1.0)
        return self.prune_rate_min + 0.5 * (self.prune_rate - self.prune_rate_min) * (
            1 + math.cos(math.pi * progress))

    def _select_targets(self):
        layers = self._masked
        if not layers:
            raise ValueError(f'{type(self).__name__} found no masked weights: build the SLaK '
                             'backbone with sparse=True, or remove the hook')
        if self.targets == 'all':
            return layers
        patterns = [LARGE_KERNEL_PATTERN] if self.targets == 'large_kernels' else (
            [self.targets] if isinstance(self.targets, str) else list(self.targets))
        targets = [layer for layer in layers
                   if any(re.search(pattern, layer.name) for pattern in patterns)]
        if not targets:
            raise ValueError(f'targets={self.targets!r} matches none of the masked weights, '
                             f'e.g. {layers[0].name!r}')
        return targets

    @staticmethod
    def _find_optimizer(runner):
        if not isinstance(runner.optim_wrapper, OptimWrapper):
            raise TypeError('DynamicSparsityHook needs a single OptimWrapper, got '
                            f'{type(runner.optim_wrapper).__name__}')
        return runner.optim_wrapper.optimizer

    def _seed_generator(self, runner):
        # ranks may have different seeds (diff_rank_seed): the first process's seed wins
        seed = [runner.seed if self.seed is None else self.seed]
        broadcast_object_list(seed)
        self.generator.manual_seed(seed[0])

    def _resume(self, runner):
        """Restore the step count and generator of a resumed run; True if resumed."""
        if self._loaded is None or runner.iter == 0 or self._loaded[0] != runner.iter:
            return False
        state, self._loaded = self._loaded[1], None
        if state is None:
            self.steps = runner.iter // getattr(runner.optim_wrapper, '_accumulative_counts', 1)
            self._seed_generator(runner)
            print_log('The resumed checkpoint holds no dynamic sparsity state: masks resume, '
                      'but later updates draw other positions than the interrupted run',
                      logger='current', level=logging.WARNING)
        else:
            self.steps = state['steps']
            self.generator.set_state(state['generator'])
        return True

    def _draw_masks(self):
        shapes = {layer.name: layer.weight.shape for layer in self._layers}
        density = 1 - self.sparsity
        densities = erk_densities(shapes, density) if self.distribution == 'ERK' else {
            name: density for name in shapes}
        with torch.no_grad():
            for layer in self._layers:
                mask = random_mask(layer.mask.shape, densities[layer.name], self.generator)
                layer.mask.copy_(mask)

    def _apply_masks(self):
        # the targets' masks and the fixed ones of the other layers
        apply_masks((layer.weight, layer.mask) for layer in self._sparse)

    @torch.no_grad()
    def _draw_snip_masks(self):
        scores = {layer.name: (layer.weight * layer.weight.grad).abs()
                  if layer.weight.grad is not None else torch.zeros_like(layer.weight)
                  for layer in self._layers}
        masks = snip_masks(scores, 1 - self.sparsity)
        for layer in self._layers:
            layer.mask.copy_(masks[layer.name])
            if layer.weight.grad is not None:
                layer.weight.grad.mul_(layer.mask)
        self._snip_pending = False
        self._masks_ready()

    def _before_step(self, optimizer, args, kwargs):
        # gradients complete, weights untouched: RigL's growth criterion, SNIP's scores
        start = time.perf_counter()
        if self.growth == 'gradient' and self._update_due(self.steps + 1):
            self._grads = {layer.name: layer.weight.grad.detach().abs()
                           if layer.weight.grad is not None else None
                           for layer in self._layers}
        if self._snip_pending:
            self._draw_snip_masks()
        self._own_seconds += time.perf_counter() - start

    def _after_step(self, optimizer, args, kwargs):
        start = time.perf_counter()
        self.steps += 1
        if self._update_due(self.steps):
            self._update()
        else:
            self._apply_masks()
        self._own_seconds += time.perf_counter() - start

    def _update_due(self, step):
        return (self.update_interval is not None and step % self.update_interval == 0
                and step <= self.stop_at * self._total_steps)

    def _update(self):
        start, rate, moved = time.perf_counter(), self.current_prune_rate(), 0
        self._apply_masks()
        for layer in self._layers:
            if layer.density >= DENSE_ENOUGH:
                continue
            scores = None
            if self.growth == 'gradient':
                scores = self._grads.get(layer.name)
                scores = torch.zeros_like(layer.weight) if scores is None else scores
            pruned, regrown = prune_and_regrow(layer.weight, layer.mask, rate, self.generator,
                                               growth_scores=scores)
            reset_optimizer_state(self._optimizer, layer.weight, torch.cat([pruned, regrown]))
            moved += pruned.numel()
        self._apply_masks()
        self._grads = None
        density = ', '.join(f'{name} {value:.1%}' for backbone in self._backbones
                            for name, value in backbone.sparse_density().items())
        print_log(f'Dynamic sparsity update at optimizer step {self.steps}: prune rate '
                  f'{rate:.4f}, {moved} weights moved in {time.perf_counter() - start:.3f} s; '
                  f'density {density}', logger='current')

    def _log_layers(self):
        rows = [f'{layer.name:<48} {str(tuple(layer.weight.shape)):<20} {layer.density:7.2%}'
                for layer in self._layers]
        kept = sum(int(layer.mask.sum()) for layer in self._layers)
        total = sum(layer.mask.numel() for layer in self._layers)
        print_log(f'{type(self).__name__}: {self.distribution} masks, density per layer '
                  f'(name, shape, density):\n' + '\n'.join(rows) +
                  f'\nall {len(rows)} target layers: {kept} of {total} weights kept '
                  f'({kept / total:.2%})', logger='current')
        for backbone in self._backbones:
            backbone.log_sparse_density()

    def _plot(self, path):
        from matplotlib.figure import Figure
        figure = Figure(figsize=(8, 2 + 0.18 * len(self._layers)), layout='tight')
        axes = figure.subplots()
        axes.barh(range(len(self._layers)), [layer.density for layer in self._layers])
        axes.set_yticks(range(len(self._layers)), [layer.name for layer in self._layers],
                        fontsize=6)
        axes.invert_yaxis()
        axes.set_xlim(0, 1)
        axes.set_xlabel('density (fraction of weights kept)')
        axes.set_title(f'{self.distribution}, global sparsity {self.sparsity:.0%}')
        figure.savefig(path, dpi=100)
        print_log(f'Saved the density per layer to {path}', logger='current')
