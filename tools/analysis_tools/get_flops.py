"""Parameters and FLOPs of a SLaK backbone or of a whole mmseg / mmdet model, dense and sparse.

The sparse-aware columns follow the SLaK paper: only non-zero weights are counted, and each
convolution or linear layer's multiply-adds scale with the density of its weight. Zeros come from
``--checkpoint`` (a sparsely trained SLaK) or are simulated by ``--sparsity`` (a random fraction
of every conv / linear weight of the backbone). FLOPs are multiply-adds, as the papers count them.
"""
import argparse
from collections import OrderedDict

import torch
import torch.nn as nn

from mmslak.analysis import complexity_by_group, simulate_sparsity, slak_stage_groups
from mmslak.apis import (build_downstream_model, dummy_batch, load_downstream_config,
                         slak_backbone_config)
from mmslak.checkpoint import load_weights
from mmslak.models import SLaK

COLUMNS = ('part', 'params', 'params (sparse)', 'FLOPs', 'FLOPs (sparse)', 'density')


def parse_args(argv=None):
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Count the parameters and FLOPs (multiply-adds) of a SLaK backbone '
        '(--arch) or of a whole mmseg/mmdet model (CONFIG), per backbone stage and in total, '
        'both dense and sparse-aware (only non-zero weights, as in the SLaK paper: SLaK-T has '
        '~30M parameters and ~5.0G FLOPs at 224 x 224 with 40% sparsity).')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('config', nargs='?', help='mmseg or mmdet config with a SLaK backbone')
    source.add_argument('--arch', choices=sorted(SLaK.arch_settings),
                        help='count the published SLaK backbone of this size alone')
    parser.add_argument('--shape', type=int, nargs=2, default=[224, 224], metavar=('H', 'W'),
                        help='input height and width (default: 224 224)')
    zeros = parser.add_mutually_exclusive_group()
    zeros.add_argument('--sparsity', type=float, default=0.,
                       help='zero this random fraction of every conv/linear weight of the '
                       'backbone, e.g. 0.4 for the published SLaK models (default: 0)')
    zeros.add_argument('--checkpoint',
                       help='read the backbone weights, and so their zeros, from this checkpoint')
    return parser.parse_args(argv)


class _TensorForward(nn.Module):
    """A segmentor or detector in tensor mode on fixed data samples (FlopAnalyzer traces tensors).

    Args:
        model (BaseModel): The segmentor or detector.
        data_samples (list): The data samples of the traced batch.
    """

    def __init__(self, model, data_samples):
        super().__init__()
        self.model = model
        self.data_samples = data_samples

    def forward(self, inputs):
        return self.model(inputs, self.data_samples, mode='tensor')


def backbone_only(arch, shape):
    """The SLaK backbone of ``arch``, its input, its groups and a description."""
    backbone = SLaK(arch=arch)
    inputs = torch.zeros(1, 3, *shape)
    return backbone, backbone, inputs, slak_stage_groups(), f'SLaK backbone {arch!r}'


def whole_model(config, shape):
    """The model of ``config``, its backbone, a batch, its groups and a description.

    Backbone parts are named ``backbone.<part>``; each other top-level module is one group.
    """
    cfg = load_downstream_config(config)
    slak_backbone_config(cfg)
    model = build_downstream_model(cfg)
    batch = dummy_batch(model, cfg.default_scope, *shape)
    wrapper = _TensorForward(model, batch['data_samples'])
    groups = OrderedDict((f'backbone.{part}', prefixes)
                         for part, prefixes in slak_stage_groups('model.backbone.').items())
    for name, _ in model.named_children():
        if name not in ('backbone', 'data_preprocessor'):
            groups[name] = (f'model.{name}.', )
    return wrapper, model.backbone, batch['inputs'], groups, f'{type(model).__name__} of {config}'


def count(args):
    """Build what ``args`` names, set its zeros, and count; return the table and a title."""
    if not 0 <= args.sparsity < 1:
        raise ValueError(f'--sparsity must be in [0, 1), got {args.sparsity}')
    build = backbone_only if args.arch else whole_model
    model, backbone, inputs, groups, title = build(args.arch or args.config, args.shape)
    if args.checkpoint:
        load_weights(backbone, args.checkpoint, prefix='auto')
        weights = f'backbone weights from {args.checkpoint}'
    elif args.sparsity:
        simulate_sparsity(backbone, args.sparsity)
        weights = (f'random weights, {args.sparsity:.0%} of every backbone conv/linear weight '
                   'zeroed at random (--sparsity)')
    else:
        weights = 'random dense weights (pass --sparsity or --checkpoint for sparse counts)'
    model.eval()
    table = complexity_by_group(model, inputs, groups)
    return table, f'{title}, input 1x3x{args.shape[0]}x{args.shape[1]}, {weights}'


def _format_count(value, unit):
    """``value`` in G, M or k with three significant decimals."""
    for scale, prefix in ((1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if abs(value) >= scale:
            return f'{value / scale:.3f} {prefix}{unit}'
    return f'{value:.0f} {unit}'


def format_table(table, title):
    """The counts as an aligned text table."""
    rows = [COLUMNS]
    for part, row in table.items():
        density = row['sparse_params'] / row['params'] if row['params'] else 1.
        rows.append((part, _format_count(row['params'], ''),
                     _format_count(row['sparse_params'], ''), _format_count(row['flops'], 'FLOPs'),
                     _format_count(row['sparse_flops'], 'FLOPs'), f'{density:.1%}'))
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = ['  '.join(cell.ljust(width) if i == 0 else cell.rjust(width)
                       for i, (cell, width) in enumerate(zip(row, widths))) for row in rows]
    rule = '-' * len(lines[0])
    return '\n'.join([title, rule, lines[0], rule, *lines[1:-1], rule, lines[-1], rule,
                      'FLOPs are multiply-adds; density: non-zero share of the parameters.'])


def main(argv=None):
    """Entry point; returns ``{part: {params, sparse_params, flops, sparse_flops}}``."""
    args = parse_args(argv)
    table, title = count(args)
    print(format_table(table, title))
    return table


if __name__ == '__main__':
    main()
