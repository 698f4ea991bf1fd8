"""Parameters and FLOPs, dense and sparse-aware, grouped by name prefix.

The sparse-aware count follows the SLaK paper: a weight that is exactly zero is neither stored nor
multiplied, so each convolution or linear layer contributes its parameters and its multiply-adds
scaled by the density (fraction of non-zeros) of its weight. Biases, norms and parameter-free
operations are counted in full. FLOPs are multiply-adds as counted by mmengine's
:class:`~mmengine.analysis.FlopAnalyzer` (the convention of the ConvNeXt and SLaK papers).
"""
from collections import Counter, OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmengine.analysis import FlopAnalyzer
from torch.overrides import TorchFunctionMode

from .plain_ops import plain_ops


def slak_stage_groups(prefix=''):
    """Name prefixes of the parts of a SLaK backbone: stem, four stages, output norms.

    Each stage includes the downsampling layer in front of it, as in
    :meth:`mmslak.models.SLaK.sparse_density`.

    Args:
        prefix (str): Prefix of the backbone's names, e.g. ``'backbone.'``. Defaults to ``''``.

    Returns:
        OrderedDict[str, tuple[str]]: Group name to the name prefixes it covers.
    """
    groups = OrderedDict(stem=(f'{prefix}downsample_layers.0.', ))
    for i in range(4):
        groups[f'stage{i}'] = (f'{prefix}stages.{i}.', ) + (
            (f'{prefix}downsample_layers.{i}.', ) if i else ())
    groups['out_norms'] = tuple(f'{prefix}norm{i}.' for i in range(4))
    return groups


def _sparsifiable_layers(model):
    """``(name, module)`` of the convolutions and linear layers with a 2-D or 4-D weight."""
    for name, module in model.named_modules():
        weight = getattr(module, 'weight', None)
        if isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) and \
                isinstance(weight, torch.Tensor) and weight.dim() in (2, 4):
            yield name, module


@torch.no_grad()
def simulate_sparsity(model, sparsity, seed=0):
    """Zero a random ``sparsity`` fraction of every conv and linear weight, in place.

    This gives random (dense) weights the density of a sparsely trained SLaK, the uniform
    layer-wise sparsity of the paper, so that the sparse-aware count can be read from them.

    Args:
        model (nn.Module): The model whose weights are sparsified.
        sparsity (float): Fraction of zeros, in ``[0, 1)``.
        seed (int): Seed of the random choice of zeros. Defaults to 0.
    """
    if not 0 <= sparsity < 1:
        raise ValueError(f'sparsity must be in [0, 1), got {sparsity}')
    generator = torch.Generator().manual_seed(seed)
    for _, module in _sparsifiable_layers(model):
        numel = module.weight.numel()
        zeros = torch.randperm(numel, generator=generator)[:round(sparsity * numel)]
        module.weight.view(-1)[zeros] = 0


def _parameter_counts(model):
    """``{parameter name: (dense count, non-zero count)}``; only layer weights can be sparse."""
    sparse_weights = {f'{name}.weight' if name else 'weight'
                      for name, _ in _sparsifiable_layers(model)}
    return {
        name: (param.numel(),
               int(torch.count_nonzero(param)) if name in sparse_weights else param.numel())
        for name, param in model.named_parameters()
    }


class _WeightFlops(TorchFunctionMode):
    """Multiply-adds of each conv and linear weight, by identity: the ops take a layer's
    weight, called through the module or not (the model layers call :mod:`mmslak.ops`, which
    calls ``F.conv2d`` and ``F.linear`` with it). Each output element of a convolution or linear
    layer costs one multiply-add per weight of its output channel, as FlopAnalyzer counts."""

    FUNCTIONS = {F.conv1d, F.conv2d, F.conv3d, F.linear}

    def __init__(self, names):
        super().__init__()
        self.names = names
        self.flops = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func in self.FUNCTIONS:
            weight = args[1] if len(args) > 1 else kwargs['weight']
            name = self.names.get(id(weight))
            if name is not None:
                self.flops[name] += out.numel() * weight[0].numel()
        return out


def _weight_flops(model, inputs):
    """``{layer name: dense multiply-adds}`` of the sparsifiable layers over one forward."""
    names = {id(module.weight): name for name, module in _sparsifiable_layers(model)}
    with _WeightFlops(names) as counter:
        model(inputs)
    return counter.flops


def _flop_counts(model, inputs):
    """FLOPs of the sparsifiable layers and of every module.

    Args:
        model (nn.Module): The model, whose ``forward`` takes ``inputs`` (tensors only).
        inputs (Tensor): The input traced.

    Returns:
        tuple[dict, Counter]: ``{layer name: (dense FLOPs, sparse FLOPs)}`` for the conv and
        linear layers, plus ``''`` for the whole model; and the dense FLOPs of every module.
    """
    with plain_ops(inputs) as inputs:
        analyzer = FlopAnalyzer(model, inputs)
        analyzer.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        by_module = analyzer.by_module()
        by_weight = _weight_flops(model, inputs)
    counts = {}
    for name, module in _sparsifiable_layers(model):
        dense = by_weight.get(name, 0)
        density = float(torch.count_nonzero(module.weight)) / module.weight.numel()
        counts[name] = (dense, dense * density)
    total = by_module['']
    counts[''] = (total, total - sum(dense - sparse for dense, sparse in counts.values()))
    return counts, by_module


def complexity_by_group(model, inputs, groups):
    """Dense and sparse-aware parameters and FLOPs of ``model`` per group and in total.

    Args:
        model (nn.Module): The model (in eval mode), whose ``forward`` takes ``inputs``.
        inputs (Tensor): Input of one forward pass, traced by ``FlopAnalyzer``.
        groups (dict[str, tuple[str]]): Group name to the names of the modules it covers, each
            followed by a dot (``'stages.0.'``). What no group covers is counted in ``'other'``
            when there is any.

    Returns:
        OrderedDict[str, dict]: For each group, then ``'other'`` and ``'total'``: ``params``,
        ``sparse_params``, ``flops`` and ``sparse_flops``.
    """
    params = _parameter_counts(model)
    flops, by_module = _flop_counts(model, inputs)

    def group_of(name):
        return next((group for group, prefixes in groups.items()
                     if f'{name}.'.startswith(prefixes)), 'other')

    table = OrderedDict((group, dict(params=0, sparse_params=0, flops=0, sparse_flops=0))
                        for group in [*groups, 'other', 'total'])
    for name, (dense, sparse) in params.items():
        for group in (group_of(name.rsplit('.', 1)[0]), 'total'):
            table[group]['params'] += dense
            table[group]['sparse_params'] += sparse
    # A prefix names a module ('stages.0.'): its FLOPs include those of all its submodules.
    for group, prefixes in groups.items():
        dense = sum(by_module.get(prefix[:-1], 0) for prefix in prefixes)
        saved = sum(flops[name][0] - flops[name][1] for name in flops
                    if name and f'{name}.'.startswith(prefixes))
        table[group]['flops'], table[group]['sparse_flops'] = dense, dense - saved
    table['total']['flops'], table['total']['sparse_flops'] = flops['']
    grouped = [table[group] for group in groups]
    for key in ('flops', 'sparse_flops'):
        table['other'][key] = table['total'][key] - sum(row[key] for row in grouped)
    if not any(table['other'].values()):
        table.pop('other')
    return table
