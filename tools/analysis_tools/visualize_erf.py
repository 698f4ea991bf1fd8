"""Effective receptive field (ERF) of a SLaK backbone, optionally beside a 7 x 7 baseline.

For each image, the last-stage features at the central pixel are back-propagated to the input and
the absolute gradient summed over colour channels; the maps are added up over the images (the
RepLKNet / SLaK analysis). Written to ``--out-dir``: the matrices (``erf_<model>.npy``), a
log-scaled heatmap (``erf.png``) and the high-contribution area ratios (``erf_area_ratios.json``):
for t = 20%, 30%, 50% and 99%, the area of the smallest centred square that holds t of the total
contribution, as a fraction of the input.
"""
import argparse
import copy
import json
import logging
import os
import os.path as osp
from contextlib import contextmanager

import mmcv
import numpy as np
import torch
from mmengine.logging import MMLogger
from mmengine.utils import ProgressBar

from mmslak.analysis import accumulate_erf, high_contribution_area_ratios, save_erf_figure
from mmslak.apis import load_downstream_config, slak_backbone_config
from mmslak.checkpoint import load_weights
from mmslak.models import SLaK
from mmslak.registry import MODELS

THRESHOLDS = (0.2, 0.3, 0.5, 0.99)
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')
# ImageNet normalisation (RGB), as the backbones were trained.
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
SMALL_KERNEL = dict(kernel_size=[7] * 5, decompose=False)


def parse_args(argv=None):
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='Compute and draw the effective receptive field of a SLaK backbone (CONFIG '
        'or --arch): the input gradient of the central last-stage output, summed over images. '
        'Saves the matrix (.npy), a heatmap (.png) and the area ratios holding 20/30/50/99% of '
        'the contribution (.json). Weights are random (untrained) unless --checkpoint is given.')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('config', nargs='?', help='mmseg or mmdet config with a SLaK backbone')
    source.add_argument('--arch', choices=sorted(SLaK.arch_settings),
                        help='a published SLaK backbone')
    parser.add_argument('--kernel-size', type=int, nargs=5, metavar='K',
                        help='override the four stage kernels and the small kernel')
    parser.add_argument('--checkpoint', help='backbone or whole-model checkpoint to analyse')
    images = parser.add_mutually_exclusive_group()
    images.add_argument('--images', help='folder of images (resized to --input-size)')
    images.add_argument('--num-images', type=int, default=4,
                        help='number of generated random images (default: 4)')
    parser.add_argument('--input-size', type=int, default=1024,
                        help='square input side in pixels (default: 1024, as in the papers)')
    parser.add_argument('--compare-small-kernel', action='store_true',
                        help='also compute a baseline of the same network with all kernels 7 x 7 '
                        'and not decomposed (ConvNeXt-like, random weights), drawn side by side')
    parser.add_argument('--layer-scale', type=float, default=1.,
                        help='layer-scale gamma of random (untrained) weights; the training '
                        'initialisation 1e-6 would silence every block (default: 1)')
    parser.add_argument('--seed', type=int, default=0, help='seed of weights and images')
    parser.add_argument('--out-dir', default='work_dirs/erf', help='output folder')
    return parser.parse_args(argv)


def backbone_config(args):
    """The SLaK backbone config named by ``args`` (``--kernel-size`` applied, no init_cfg)."""
    if args.arch:
        cfg = dict(type='mmslak.SLaK', arch=args.arch)
    else:
        cfg = copy.deepcopy(slak_backbone_config(load_downstream_config(args.config))).to_dict()
        cfg['type'] = 'mmslak.SLaK'
    cfg.update(init_cfg=None, pretrained=None, out_indices=(3, ), drop_path_rate=0.)
    if args.kernel_size:
        cfg['kernel_size'] = args.kernel_size
    return cfg


@contextmanager
def _quiet_logs():
    """Silence INFO logs (weight initialisation logs every parameter) for the duration."""
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def build_backbone(cfg, checkpoint, layer_scale, seed):
    """Build a backbone in eval mode, with the weights of ``checkpoint`` or random ones."""
    torch.manual_seed(seed)
    if checkpoint is None:
        cfg = dict(cfg, layer_scale_init_value=layer_scale)
    backbone = MODELS.build(cfg)
    with _quiet_logs():
        backbone.init_weights()
    if checkpoint is not None:
        load_weights(backbone, checkpoint, prefix='auto')
    return backbone.eval()


def load_images(args):
    """The ``1 x 3 x S x S`` normalised input images and a description of them.

    Raises:
        FileNotFoundError: If ``--images`` is not a folder or holds no image.
    """
    size = args.input_size
    if args.images is None:
        if args.num_images < 1:
            raise ValueError(f'--num-images must be at least 1, got {args.num_images}')
        generator = torch.Generator().manual_seed(args.seed)
        images = [torch.randn(1, 3, size, size, generator=generator)
                  for _ in range(args.num_images)]
        return images, f'{args.num_images} generated images (Gaussian noise)'
    if not osp.isdir(args.images):
        raise FileNotFoundError(f'Image folder not found: {args.images}')
    names = sorted(name for name in os.listdir(args.images)
                   if name.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise FileNotFoundError(f'No image ({", ".join(IMAGE_EXTENSIONS)}) in {args.images}')
    images = []
    for name in names:
        image = mmcv.imresize(mmcv.imread(osp.join(args.images, name), channel_order='rgb'),
                              (size, size))
        image = (image.astype(np.float32) - MEAN) / STD
        images.append(torch.from_numpy(image).permute(2, 0, 1)[None])
    return images, f'{len(images)} images of {args.images}'


def describe(backbone):
    """A short label of a backbone: its kernels and whether they are decomposed."""
    kernels = backbone.kernel_size
    form = 'decomposed' if backbone.decompose else 'square'
    return f"kernels {'-'.join(map(str, kernels[:4]))} / small {kernels[4]} ({form})"


def format_ratios(results):
    """The area ratios as an aligned text table."""
    names = list(results)
    width = max(len(name) for name in names + ['model'])
    lines = ['model'.ljust(width) + ''.join(f'  t={t:.0%}'.rjust(9) for t in THRESHOLDS)]
    for name in names:
        ratios = results[name]['area_ratio']
        lines.append(name.ljust(width) + ''.join(f'{ratios[str(t)]:9.2%}' for t in THRESHOLDS))
    return '\n'.join(lines)


def main(argv=None):
    """Entry point; returns the JSON summary (also written to ``erf_area_ratios.json``)."""
    args = parse_args(argv)
    cfg = backbone_config(args)
    models = {'slak': cfg}
    if args.compare_small_kernel:
        models['small_kernel_7x7'] = dict(cfg, **SMALL_KERNEL)
    images, image_note = load_images(args)
    os.makedirs(args.out_dir, exist_ok=True)
    random_note = f'random (untrained) weights, layer scale {args.layer_scale:g}'
    results, panels = {}, {}
    for name, model_cfg in models.items():
        # Only the SLaK has trained weights to load; the baseline is always untrained.
        checkpoint = args.checkpoint if name == 'slak' else None
        backbone = build_backbone(model_cfg, checkpoint, args.layer_scale, args.seed)
        weights = f'weights of {checkpoint}' if checkpoint else random_note
        print(f'{name}: {describe(backbone)}, {weights}; {image_note}, '
              f'{args.input_size} x {args.input_size}')
        matrix = accumulate_erf(backbone, images, ProgressBar(len(images)))
        print()  # the progress bar leaves its line open
        np.save(osp.join(args.out_dir, f'erf_{name}.npy'), matrix)
        ratios = high_contribution_area_ratios(matrix, THRESHOLDS)
        results[name] = dict(backbone=describe(backbone), weights=weights,
                             area_ratio={str(t): ratio for t, ratio in ratios.items()})
        panels[f'{name}: {describe(backbone)}\n{weights}'] = matrix
    summary = dict(input_size=args.input_size, images=image_note, models=results)
    with open(osp.join(args.out_dir, 'erf_area_ratios.json'), 'w') as file:
        json.dump(summary, file, indent=2)
    save_erf_figure(panels, osp.join(args.out_dir, 'erf.png'))
    print('High-contribution area ratio (share of the input area holding t of the contribution):')
    print(format_ratios(results))
    print(f'Saved the matrices, erf.png and erf_area_ratios.json in {args.out_dir}')
    return summary


if __name__ == '__main__':
    main()
