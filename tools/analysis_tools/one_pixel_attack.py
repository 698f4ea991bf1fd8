"""Bounded random-search one-pixel attack on a segmentation model.

For each of the first ``--num-images`` images of the config's test set, up to
``--targets-per-image`` target pixels are drawn among the pixels the model classifies correctly
(ignored pixels excluded). Then ``--trials`` one-pixel perturbations are tried: each sets one
pixel, anywhere in the network input, to a random colour, uniform in ``[0, 255]^3``. The change
is made in the raw image space (the ``uint8`` image after the test pipeline), before the data
preprocessor converts and normalises it, so it is a colour the image could have. A target is
attacked successfully when its predicted class differs from the clean one in at least one trial.

The trials of an image are shared by its targets (they do not depend on the target) and
evaluated ``--batch-size`` at a time, each batch with the clean image beside them, whose
prediction in that same batch is what a flip is measured against (so that kernels chosen by
batch size cannot pass for an attack); an image stops early once all its targets have flipped.
Trials are drawn from ``(seed, image index)``, so two models attacked with the same seed face
the same perturbations; targets from another stream of the same seed. The success rate comes
with a 95% Wilson score interval, which treats the targets as independent; targets of one image
share its trials, so read it as approximate.

Example::

    python tools/analysis_tools/one_pixel_attack.py CONFIG CHECKPOINT --num-images 16 \\
        --targets-per-image 8 --trials 64 --seed 0 --out work_dirs/one_pixel.json
"""
import argparse
import json
import math
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from mmengine.utils import ProgressBar
from mmseg.registry import DATASETS, MODELS
from mmseg.structures import SegDataSample

Z_95 = 1.959963984540054  # two-sided 95% quantile of the standard normal


def parse_args(argv=None):
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='One-pixel attack on an mmseg model: for sampled, correctly classified '
        'target pixels, try random one-pixel changes anywhere in the image and report how often '
        "the target's predicted class changes, with a 95%% Wilson interval.")
    parser.add_argument('config', help='mmseg config of the model')
    parser.add_argument('checkpoint', help='checkpoint of the model')
    parser.add_argument('--num-images',
                        type=int,
                        default=16,
                        help='images from the start of the test set (default: 16)')
    parser.add_argument('--targets-per-image',
                        type=int,
                        default=8,
                        help='target pixels per image (default: 8)')
    parser.add_argument('--trials',
                        type=int,
                        default=64,
                        help='one-pixel perturbations tried per image (default: 64)')
    parser.add_argument('--batch-size',
                        type=int,
                        default=16,
                        help='perturbed images per forward pass (default: 16)')
    parser.add_argument('--seed', type=int, default=0, help='seed of targets and trials')
    parser.add_argument('--device',
                        default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='device (default: cuda if available, else cpu)')
    parser.add_argument('--out', help='also write the summary and per-target results here')
    parser.add_argument('--cfg-options',
                        nargs='+',
                        action=DictAction,
                        help='override config entries, e.g. test_dataloader.dataset.data_root=X')
    args = parser.parse_args(argv)
    for name in ('num_images', 'targets_per_image', 'trials', 'batch_size'):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.seed < 0:
        parser.error('--seed must be non-negative')
    return args


def wilson_interval(successes, total, z=Z_95):
    """The Wilson score interval of a binomial proportion.

    Args:
        successes (int): Number of successes.
        total (int): Number of trials, at least 1.
        z (float): Standard normal quantile of the confidence level. Defaults to 95%.

    Returns:
        tuple[float, float]: Lower and upper bound.
    """
    if total < 1:
        raise ValueError('the Wilson interval needs at least one trial')
    rate = successes / total
    denominator = 1 + z**2 / total
    centre = (rate + z**2 / (2 * total)) / denominator
    half_width = z * math.sqrt(rate * (1 - rate) / total + z**2 / (4 * total**2)) / denominator
    # At 0 or all successes a bound is exactly 0 or 1; rounding must not move it past the rate.
    low = 0. if successes == 0 else min(rate, max(0., centre - half_width))
    high = 1. if successes == total else max(rate, min(1., centre + half_width))
    return low, high


def load_model_and_dataset(args):
    """The segmentor (eval mode, checkpoint loaded), its test set and its ignore index.

    Args:
        args (argparse.Namespace): The command line (config, checkpoint, cfg_options, device).

    Raises:
        FileNotFoundError: If the config or the checkpoint does not exist.
        ValueError: If the config is not an mmseg config.
    """
    for kind, path in (('Config', args.config), ('Checkpoint', args.checkpoint)):
        if not osp.isfile(path):
            raise FileNotFoundError(f'{kind} file {path} does not exist')
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if cfg.get('default_scope') != 'mmseg':
        raise ValueError(f"{args.config} has default_scope={cfg.get('default_scope')!r}; the "
                         'one-pixel attack needs an mmseg (segmentation) config')
    init_default_scope('mmseg')
    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    load_checkpoint(model, args.checkpoint, map_location='cpu', strict=True,
                    logger='silent')
    model.to(args.device).eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    return model, dataset, model.decode_head.ignore_index


@torch.no_grad()
def predict(model, images, metainfo):
    """Predicted class maps (``B x H x W``, original image size) of ``uint8`` images.

    Args:
        model (BaseSegmentor): The segmentor.
        images (Tensor): ``B x 3 x H x W`` ``uint8`` images, as the test pipeline packs them.
        metainfo (dict): Meta information of the clean image, shared by all of them.
    """
    data_samples = [SegDataSample(metainfo=metainfo) for _ in range(len(images))]
    results = model.test_step(dict(inputs=list(images), data_samples=data_samples))
    return torch.stack([result.pred_sem_seg.data[0] for result in results])


def sample_targets(clean_pred, gt, ignore_index, num_targets, rng):
    """Up to ``num_targets`` distinct (row, column) pixels, uniform among the correct ones.

    Args:
        clean_pred (Tensor): ``H x W`` prediction on the clean image.
        gt (Tensor): ``H x W`` ground truth.
        ignore_index (int): Label of the pixels that are never targets.
        num_targets (int): How many targets to draw at most.
        rng (numpy.random.Generator): The random stream of the targets.
    """
    correct = (clean_pred == gt) & (gt != ignore_index)
    candidates = torch.nonzero(correct.flatten()).flatten().numpy()
    chosen = rng.choice(candidates, size=min(num_targets, len(candidates)), replace=False)
    width = gt.shape[1]
    return torch.as_tensor(chosen // width), torch.as_tensor(chosen % width)


def draw_trials(num_trials, height, width, rng):
    """Rows, columns and ``uint8`` colours (``T x 3``) of the one-pixel perturbations.

    Args:
        num_trials (int): Number of perturbations ``T``.
        height (int): Image height.
        width (int): Image width.
        rng (numpy.random.Generator): The random stream of the trials.
    """
    rows = torch.as_tensor(rng.integers(0, height, num_trials))
    cols = torch.as_tensor(rng.integers(0, width, num_trials))
    colours = torch.as_tensor(rng.integers(0, 256, (num_trials, 3)), dtype=torch.uint8)
    return rows, cols, colours


def attack_image(model, sample, index, args, ignore_index):
    """Attack the targets of one test image.

    Args:
        model (BaseSegmentor): The segmentor.
        sample (dict): The test pipeline's output for the image (``inputs``, ``data_samples``).
        index (int): Index of the image in the test set (seeds its targets and trials).
        args (argparse.Namespace): The command line.
        ignore_index (int): Label of the pixels that are never targets.

    Returns:
        list[dict]: Per target: image index, pixel, class, whether it flipped and the first
        flipping trial (``None`` if none).
    """
    image = sample['inputs']
    metainfo = sample['data_samples'].metainfo
    gt = sample['data_samples'].gt_sem_seg.data[0].cpu()
    clean_pred = predict(model, image.to(args.device)[None], metainfo)[0].cpu()
    if clean_pred.shape != gt.shape:
        raise ValueError(f'Image {index}: the prediction is {tuple(clean_pred.shape)} but the '
                         f'label {tuple(gt.shape)}; load the annotations after resizing in the '
                         'test pipeline, as the mmseg configs do')
    rows, cols = sample_targets(clean_pred, gt, ignore_index, args.targets_per_image,
                                np.random.default_rng([args.seed, index, 1]))
    trial_rows, trial_cols, colours = draw_trials(args.trials, image.shape[1], image.shape[2],
                                                  np.random.default_rng([args.seed, index, 0]))
    first_success = torch.full((len(rows), ), -1, dtype=torch.long)
    for start in range(0, args.trials, args.batch_size):
        if len(rows) == 0 or (first_success >= 0).all():
            break
        stop = min(start + args.batch_size, args.trials)
        # The clean image rides along as the first of the batch: a flip is a change against
        # it, not against a prediction made at another batch size (with other kernels).
        batch = image[None].repeat(stop - start + 1, 1, 1, 1)
        batch[torch.arange(1, stop - start + 1), :, trial_rows[start:stop],
              trial_cols[start:stop]] = colours[start:stop]
        preds = predict(model, batch.to(args.device), metainfo).cpu()
        flipped = preds[1:, rows, cols] != preds[0, rows, cols]  # trials x targets
        new = (first_success < 0) & flipped.any(0)
        first_success[new] = start + flipped.int().argmax(0)[new]
    return [
        dict(image=index,
             row=int(row),
             col=int(col),
             label=int(clean_pred[row, col]),
             success=bool(trial >= 0),
             first_success_trial=int(trial) if trial >= 0 else None)
        for row, col, trial in zip(rows, cols, first_success)
    ]


def summarise(targets, args, num_images):
    """Success rate, its Wilson interval and the attack settings.

    Args:
        targets (list[dict]): The per-target results of :func:`attack_image`.
        args (argparse.Namespace): The command line.
        num_images (int): Number of images attacked.
    """
    if not targets:
        raise ValueError('No target pixel: the model classifies no pixel of the attacked images '
                         'correctly')
    successes = sum(target['success'] for target in targets)
    low, high = wilson_interval(successes, len(targets))
    trials_to_success = [t['first_success_trial'] + 1 for t in targets if t['success']]
    return dict(
        config=args.config,
        checkpoint=args.checkpoint,
        seed=args.seed,
        num_images=num_images,
        targets_per_image=args.targets_per_image,
        trials=args.trials,
        perturbation='one pixel of the raw uint8 network input set to a colour uniform in '
        '[0, 255]^3, before normalisation',
        num_targets=len(targets),
        num_successes=successes,
        success_rate=successes / len(targets),
        ci95=[low, high],
        mean_trials_to_success=(float(np.mean(trials_to_success)) if trials_to_success else None),
        targets=targets)


def format_table(summary):
    """The summary as a small text table."""
    rows = [('images', summary['num_images']), ('targets', summary['num_targets']),
            ('trials per image', summary['trials']), ('seed', summary['seed']),
            ('successful attacks', summary['num_successes']),
            ('success rate', f"{100 * summary['success_rate']:.1f}%"),
            ('95% Wilson CI', '[{:.1f}%, {:.1f}%]'.format(*(100 * b for b in summary['ci95'])))]
    if summary['mean_trials_to_success'] is not None:
        rows.append(('mean trials to success', f"{summary['mean_trials_to_success']:.1f}"))
    width = max(len(name) for name, _ in rows)
    return '\n'.join(f'{name:<{width}}  {value}' for name, value in rows)


def main(argv=None):
    """Run the attack; print the table and return the summary."""
    args = parse_args(argv)
    model, dataset, ignore_index = load_model_and_dataset(args)
    num_images = min(args.num_images, len(dataset))
    if num_images < args.num_images:
        print_log(f'The test set has {len(dataset)} images; attacking all of them',
                  logger='current')
    targets = []
    progress = ProgressBar(num_images)
    for index in range(num_images):
        targets += attack_image(model, dataset[index], index, args, ignore_index)
        progress.update()
    print()  # the progress bar leaves its line open
    summary = summarise(targets, args, num_images)
    print(f'One-pixel attack on {args.checkpoint}')
    print(format_table(summary))
    if args.out:
        with open(args.out, 'w') as file:
            json.dump(summary, file, indent=2)
        print(f'Results written to {args.out}')
    return summary


if __name__ == '__main__':
    main()
