"""Convert an official SLaK checkpoint into a clean mmslak checkpoint.

Official ImageNet files (``{'model', 'model_ema', 'args', 'epoch'}``) become a backbone-only
checkpoint: the EMA copy and the classifier (``norm.*``, ``head.*``) are dropped. Official
downstream files (mmseg / mmdet, ``{'state_dict': {'backbone.*': ...}, 'meta': ...}``) keep the
whole model, with the backbone's keys renamed under ``backbone.``. The result
``{'state_dict', 'meta'}`` holds tensors and plain Python values only, so it loads with
``torch.load(..., weights_only=True)``; zeros of sparse weights are kept as they are.
"""
import argparse
import math
import os.path as osp
import re
from collections import OrderedDict

import torch

from mmslak import __version__
from mmslak.analysis import slak_stage_groups
from mmslak.checkpoint import (BACKBONE_PREFIX, Scope, check_finite, read_checkpoint, recognise,
                               translate_keys)
from mmslak.models.backbones.slak_checkpoint import CLASSIFIER_KEY, SLAK_CHECKPOINT_FORMAT

# Official training arguments worth keeping, as plain values.
ARGS_TO_KEEP = ('model', 'kernel_size', 'width_factor', 'Decom', 'LoRA', 'sparse', 'sparsity',
                'drop_path')


def parse_args(argv=None):
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Convert an official SLaK checkpoint (ImageNet or mmseg/mmdet downstream) into '
        'an mmslak checkpoint that loads with torch.load(weights_only=True) and with '
        "init_cfg=dict(type='Pretrained', checkpoint=DST) (prefix='backbone.' for downstream "
        'files).')
    parser.add_argument('src', help='official checkpoint (.pth)')
    parser.add_argument('dst', help='where to write the mmslak checkpoint')
    parser.add_argument('--allow-non-finite', action='store_true',
                        help='convert a checkpoint with NaN or infinite values (refused '
                        'otherwise)')
    return parser.parse_args(argv)


def checkpoint_format(checkpoint, filename):
    """``'imagenet'`` or ``'downstream'``, from the layout of an official checkpoint.

    Raises:
        ValueError: If the checkpoint is of neither layout.
    """
    if isinstance(checkpoint, dict):
        layout = recognise(checkpoint)
        if layout.entry == 'model':
            return 'imagenet'
        if layout.entry == 'state_dict' and layout.whole_model:
            return 'downstream'
    found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
    raise ValueError(f'{filename} is not an official SLaK checkpoint: expected an ImageNet file '
                     "with a 'model' entry or a downstream file whose 'state_dict' has "
                     f"'backbone.*' keys; found {found}")


def convert_state_dict(checkpoint, fmt):
    """Rename the official keys and drop what an mmslak checkpoint does not hold.

    Args:
        checkpoint (dict): The official checkpoint.
        fmt (str): ``'imagenet'`` or ``'downstream'``.

    Returns:
        tuple[OrderedDict, list[str], int]: The converted state dict, the dropped (classifier)
        keys and the number of keys whose name changed.
    """
    source = recognise(checkpoint).state_dict
    # the backbone's keys: all of an ImageNet file's, those under backbone. of a downstream one
    prefix = '' if fmt == 'imagenet' else BACKBONE_PREFIX
    renamed = translate_keys(source, scopes=[Scope(prefix, None, SLAK_CHECKPOINT_FORMAT)])
    kept = OrderedDict((key, value) for key, value in renamed.items()
                       if fmt != 'imagenet' or not CLASSIFIER_KEY.match(key))
    dropped = [key for key in renamed if key not in kept]
    originals = [re.sub(r'^module\.', '', key) for key in source]
    changed = len(set(kept) - set(originals))
    return kept, dropped, changed


def _dims_from_channels(channels, width_factor):
    """The smallest ``dim`` with ``int(dim * width_factor) == channels``, or None."""
    start = max(math.floor(channels / width_factor) - 1, 1)
    return next((dim for dim in range(start, start + 4) if int(dim * width_factor) == channels),
                None)


def infer_architecture(backbone_state, width_factor):
    """SLaK arguments read from the weights themselves (depths, dims, kernels, decomposition).

    Args:
        backbone_state (dict): Backbone state dict in mmslak naming, without prefix.
        width_factor (float): Channel multiplier the weights were built with.

    Returns:
        dict: ``arch`` (``depths``, ``dims``), ``kernel_size``, ``width_factor``, ``decompose``;
        usable as ``mmslak.SLaK`` arguments.

    Raises:
        ValueError: If the weights are not those of a four-stage SLaK.
    """
    kernels = {}
    for key, value in backbone_state.items():
        match = re.match(r'stages\.(\d+)\.0\.large_kernel\.(vertical|square|small)\.', key)
        if match and key.endswith('weight') and value.dim() == 4:
            kernels[(int(match.group(1)), match.group(2))] = value.shape[2]
    blocks = {tuple(map(int, match.groups())) for match in
              (re.match(r'stages\.(\d+)\.(\d+)\.', key) for key in backbone_state) if match}
    decompose = (0, 'vertical') in kernels
    large = [kernels.get((i, 'vertical' if decompose else 'square')) for i in range(4)]
    if None in large or {i for i, _ in blocks} != set(range(4)):
        raise ValueError('The checkpoint does not hold a four-stage SLaK backbone (no large '
                         'kernel found in some stage)')
    depths = [1 + max(j for i, j in blocks if i == stage) for stage in range(4)]
    channels = [backbone_state[f'stages.{i}.0.norm.weight'].shape[0] for i in range(4)]
    # Without a small branch (small kernel == large kernel), the small kernel is the first one.
    small = kernels.get((0, 'small'), large[0])
    return dict(
        arch=dict(depths=depths, dims=[_dims_from_channels(c, width_factor) for c in channels]),
        kernel_size=large + [small],
        width_factor=width_factor,
        decompose=decompose)


def official_args(checkpoint):
    """The official training arguments worth recording, as a plain dict (empty if absent)."""
    args = checkpoint.get('args')
    if args is None:
        return {}
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    return {key: values[key] for key in ARGS_TO_KEEP if key in values}


def sparsity_by_stage(backbone_state):
    """Fraction of zeros of the 2-D and 4-D weights per backbone part (stem, stages, all)."""
    groups = slak_stage_groups()
    groups['all'] = ('', )
    zeros, totals = {}, {}
    for key, value in backbone_state.items():
        if not key.endswith('weight') or value.dim() not in (2, 4):
            continue
        for group, prefixes in groups.items():
            if key.startswith(prefixes):
                zeros[group] = zeros.get(group, 0) + int((value == 0).sum())
                totals[group] = totals.get(group, 0) + value.numel()
    return {group: zeros[group] / totals[group] for group in groups if group in totals}


def convert(src, dst, allow_non_finite=False):
    """Convert ``src`` into ``dst`` and return the summary lines.

    Raises:
        FileNotFoundError: If ``src`` or the folder of ``dst`` does not exist.
        ValueError: If ``src`` is not an official SLaK checkpoint, is ``dst`` itself, or holds
            NaN or infinite values (unless ``allow_non_finite``).
    """
    if not osp.isfile(src):
        raise FileNotFoundError(f'Checkpoint not found: {src}')
    if osp.abspath(src) == osp.abspath(dst):
        raise ValueError('DST must differ from SRC: the converter does not overwrite its input')
    dst_dir = osp.dirname(osp.abspath(dst))
    if not osp.isdir(dst_dir):
        raise FileNotFoundError(f'Output folder does not exist: {dst_dir}')
    checkpoint = read_checkpoint(src)
    fmt = checkpoint_format(checkpoint, src)
    state_dict, dropped, changed = convert_state_dict(checkpoint, fmt)
    check_finite(state_dict, src, allow_non_finite)
    prefix = '' if fmt == 'imagenet' else BACKBONE_PREFIX
    backbone_state = {key[len(prefix):]: value for key, value in state_dict.items()
                      if key.startswith(prefix)}
    args = official_args(checkpoint)
    arch = infer_architecture(backbone_state, args.get('width_factor', 1.3))
    meta = dict(source=osp.abspath(src), format=fmt, backbone_prefix=prefix, arch=arch,
                official_args=args, converted_by=f'mmslak {__version__} slak2mmslak')
    if 'epoch' in checkpoint:
        meta['epoch'] = int(checkpoint['epoch'])
    torch.save(dict(state_dict=state_dict, meta=meta), dst)
    return summary_lines(src, dst, fmt, state_dict, dropped, changed, arch, args,
                         sparsity_by_stage(backbone_state))


def summary_lines(src, dst, fmt, state_dict, dropped, changed, arch, args, sparsity):
    """Human-readable summary of a conversion."""
    lines = [
        f'Converted {src} ({fmt} format) -> {dst}',
        f'  keys written: {len(state_dict)} ({changed} renamed from official names)',
        f'  keys dropped: {len(dropped)}' + (f" ({', '.join(dropped)})" if dropped else ''),
    ]
    if fmt == 'imagenet':
        lines.append("  model_ema ignored: the 'model' weights are converted")
    assumed = '' if 'width_factor' in args else ' (not in the file: the published value)'
    lines.append(f"  architecture (from the weights): depths {arch['arch']['depths']}, dims "
                 f"{arch['arch']['dims']}, width_factor {arch['width_factor']}{assumed}, "
                 f"kernel_size {arch['kernel_size']}, decompose {arch['decompose']}")
    if args:
        lines.append('  official args: ' + ', '.join(f'{k}={v}' for k, v in args.items()))
    lines.append('  sparsity of conv/linear weights (fraction of zeros): ' + ', '.join(
        f'{group} {value:.1%}' for group, value in sparsity.items()))
    return lines


def main(argv=None):
    """Entry point: ``python tools/model_converters/slak2mmslak.py SRC DST``."""
    args = parse_args(argv)
    print('\n'.join(convert(args.src, args.dst, args.allow_non_finite)))


if __name__ == '__main__':
    main()
