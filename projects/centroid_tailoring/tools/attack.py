"""One-pixel attack on a segmentation or detection model (Su, Vargas and Sakurai).

Targets: for an mmseg model, up to ``--targets-per-image`` pixels drawn among those the model
classifies correctly (ignored pixels excluded; with ``--boundary-width``, only those near a
ground-truth boundary); for an mmdet model, up to as many detections
that match a ground-truth box of their class. A one-pixel change ``(x, y, r, g, b)`` sets one
pixel, anywhere in the network input, to a colour; it is made in the raw image space (the
``uint8`` image after the test pipeline), before the data preprocessor normalises it. A target
is flipped when its class changes (segmentation), or when its box's class changes or its score
falls below the test threshold (detection); the margin, the target's clean-class confidence
minus the best other, is then negative.

``--method de`` (the default) searches each target's margin with scipy's differential
evolution (untargeted; ``--popsize`` candidates per generation, ``--maxiter`` generations,
recombination 1, no polishing; each generation is one batch), over the whole image or, with
``--search-radius``, the pixels near the target. ``--method random`` tries
``--trials`` uniform random changes per image, shared by its targets. Every forward pass carries
the clean image too, and a flip is measured against the clean prediction of that same pass.
Searches are seeded by ``(seed, image, target)``, so two models attacked with the same seed start
from the same candidates. The success rate comes with a 95% Wilson interval; ``--plot`` draws
success against budget (evaluations per target), with the curves of ``--plot-with`` runs
(without a config and checkpoint, it only draws those).

Example::

    python projects/centroid_tailoring/tools/attack.py CONFIG CHECKPOINT --num-images 16 \\
        --targets-per-image 4 --popsize 400 --maxiter 100 --seed 0 --label softmax \\
        --out work_dirs/one_pixel.json --plot work_dirs/one_pixel.png
    python projects/centroid_tailoring/tools/attack.py --plot both.png --plot-with a.json b.json
"""
import argparse
import json
import os.path as osp
import sys
import time

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.logging import print_log
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import DATASETS
from mmengine.utils import ProgressBar

from mmslak.analysis import build_downstream_model, load_downstream_config, load_whole_model

# The project folder, where the one_pixel package lives (it is no part of the mmslak package).
PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if PROJECT not in sys.path:
    sys.path.insert(0, PROJECT)
from one_pixel.search import (differential_evolution_search, random_search,  # noqa: E402
                              search_window)
from one_pixel.stats import plot_runs, wilson_interval  # noqa: E402
from one_pixel.targets import DetectionTargets, SegmentationTargets  # noqa: E402


def parse_args(argv=None):
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        description='One-pixel attack on an mmseg or mmdet model: differential evolution (or '
        'random search) over one pixel and its colour, per correctly classified pixel or '
        'correctly detected object; success rate with a 95%% Wilson interval.')
    parser.add_argument('config', nargs='?',
                        help='mmseg or mmdet config of the model (omit both to only draw the '
                        '--plot-with runs)')
    parser.add_argument('checkpoint', nargs='?', help='checkpoint of the model')
    parser.add_argument('--method', choices=('de', 'random'), default='de',
                        help='differential evolution per target, or random changes shared by '
                        "an image's targets (default: de)")
    parser.add_argument('--num-images', type=int, default=16,
                        help='images from the start of the test set (default: 16)')
    parser.add_argument('--targets-per-image', type=int, default=8,
                        help='target pixels or objects per image (default: 8)')
    parser.add_argument('--popsize', type=int, default=400,
                        help='de: candidates per generation (default: 400)')
    parser.add_argument('--maxiter', type=int, default=100,
                        help='de: generations after the initial one (default: 100)')
    parser.add_argument('--time-budget', type=float,
                        help='de: wall-clock seconds per target after which no generation '
                        'starts (default: none)')
    parser.add_argument('--mutation', type=float, default=0.5,
                        help='de: differential weight (default: 0.5)')
    parser.add_argument('--recombination', type=float, default=1.0,
                        help='de: crossover probability (default: 1)')
    parser.add_argument('--strategy', default='rand1bin',
                        help="de: scipy's strategy (default: rand1bin)")
    parser.add_argument('--search-radius', type=int,
                        help='de: change only pixels within this distance of the target pixel '
                        "(segmentation) or of the target's box (detection) (default: anywhere)")
    parser.add_argument('--boundary-width', type=int,
                        help='segmentation: draw targets only among the correct pixels within '
                        'this distance of a ground-truth label boundary (default: any correct '
                        'pixel)')
    parser.add_argument('--trials', type=int, default=64,
                        help='random: changes tried per image (default: 64)')
    parser.add_argument('--batch-size', type=int,
                        help='changes per forward pass at most (default: a whole generation '
                        'for de, 16 for random)')
    parser.add_argument('--score-thr', type=float,
                        help="detection: the test threshold (default: the config's "
                        'model.test_cfg.rcnn.score_thr)')
    parser.add_argument('--seed', type=int, default=0, help='seed of targets and searches')
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu',
                        help='device (default: cuda if available, else cpu)')
    parser.add_argument('--label', help='name of the model in the plot (default: the config)')
    parser.add_argument('--out', help='also write the summary and per-target results here')
    parser.add_argument('--plot', help='save success rate against budget as this PNG')
    parser.add_argument('--plot-with', nargs='+', default=[],
                        help='--out files of other runs to draw in the plot (pooled by label)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. test_dataloader.dataset.data_root=X')
    args = parser.parse_args(argv)
    for name in ('num_images', 'targets_per_image', 'trials', 'popsize', 'batch_size'):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.method == 'de' and args.popsize < 5:
        parser.error('--popsize must be at least 5')
    if args.maxiter < 0 or args.seed < 0:
        parser.error('--maxiter and --seed must be non-negative')
    if args.search_radius is not None and (args.search_radius < 0 or args.method != 'de'):
        parser.error('--search-radius must be non-negative and is an option of --method de')
    if args.boundary_width is not None and args.boundary_width < 1:
        parser.error('--boundary-width must be at least 1')
    if args.time_budget is not None and args.time_budget <= 0:
        parser.error('--time-budget must be positive')
    for path in args.plot_with:
        if not osp.isfile(path):
            parser.error(f'--plot-with file {path} does not exist')
    if args.plot_with and not args.plot:
        parser.error('--plot-with needs --plot')
    if args.checkpoint is None and not (args.config is None and args.plot_with):
        parser.error('give a config and a checkpoint, or neither and --plot with --plot-with')
    return args


def load_model_and_dataset(args):
    """The model (eval mode, checkpoint loaded), its test set and its task.

    Args:
        args (argparse.Namespace): The command line (config, checkpoint, cfg_options, device).

    Returns:
        tuple[nn.Module, Dataset, str, Config]: Model, test set, ``'mmseg'`` or ``'mmdet'``,
        and the config.

    Raises:
        FileNotFoundError: If the config or the checkpoint does not exist.
        ValueError: If the config is neither an mmseg nor an mmdet config.
    """
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint file {args.checkpoint} does not exist')
    cfg = load_downstream_config(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    model = revert_sync_batchnorm(build_downstream_model(cfg))
    load_whole_model(model, args.checkpoint)
    model.to(args.device).eval()
    dataset = DATASETS.build(cfg.test_dataloader.dataset)
    return model, dataset, cfg.default_scope, cfg


def detection_threshold(args, cfg):
    """``--score-thr``, else the config's ``model.test_cfg.rcnn.score_thr``."""
    if args.score_thr is not None:
        return args.score_thr
    try:
        return float(cfg.model.test_cfg.rcnn.score_thr)
    except (AttributeError, KeyError, TypeError):
        raise ValueError('the config has no model.test_cfg.rcnn.score_thr; pass --score-thr')


def make_targets(model, sample, index, args, task, cfg):
    """The targets of one test image, drawn from the stream ``(seed, index, 1)``."""
    rng = np.random.default_rng([args.seed, index, 1])
    batch_size = args.batch_size or (16 if args.method == 'random' else None)
    if task == 'mmseg':
        return SegmentationTargets(model, sample, args.targets_per_image, rng,
                                   ignore_index=model.decode_head.ignore_index,
                                   batch_size=batch_size, device=args.device,
                                   boundary_width=args.boundary_width)
    if args.boundary_width is not None:
        raise ValueError('--boundary-width chooses target pixels of a segmentation; the '
                         'config is an mmdet one')
    return DetectionTargets(model, sample, args.targets_per_image, rng,
                            score_thr=detection_threshold(args, cfg), batch_size=batch_size,
                            device=args.device)


def attack_image(targets, index, args):
    """Attack every target of one image.

    Args:
        targets (SegmentationTargets | DetectionTargets): The image's targets.
        index (int): Index of the image in the test set (seeds the searches).
        args (argparse.Namespace): The command line.

    Returns:
        list[dict]: Per target: image, target, success, evaluations (to the flip, or in all),
        the flipping (or best) candidate ``(x, y, r, g, b)`` and its margin.
    """
    if args.method == 'random':
        results = random_search(targets.margins, len(targets), targets.height, targets.width,
                                trials=args.trials, batch_size=args.batch_size or 16,
                                seed=[args.seed, index, 0])
    else:
        results = [
            differential_evolution_search(
                targets.margins, targets.height, targets.width, target=target,
                popsize=args.popsize, maxiter=args.maxiter, seed=[args.seed, index, 2, target],
                time_budget=args.time_budget, strategy=args.strategy, mutation=args.mutation,
                recombination=args.recombination,
                window=search_window(targets.position(target), args.search_radius,
                                     targets.height, targets.width))
            for target in range(len(targets))
        ]
    return [
        dict(image=index, **targets.describe(target), success=result.success,
             evaluations=result.evaluations,
             candidate=list(result.candidate) if result.candidate else None,
             margin=result.margin) for target, result in enumerate(results)
    ]


def max_budget(args):
    """Evaluations per target at most (without a time budget)."""
    return args.trials if args.method == 'random' else args.popsize * (args.maxiter + 1)


def summarise(records, args, task, num_images, seconds):
    """Success rate, its Wilson interval, evaluations per flip and the attack settings."""
    if not records:
        raise ValueError('No target: the model classifies no pixel (detects no object) of the '
                         'attacked images correctly')
    successes = sum(record['success'] for record in records)
    low, high = wilson_interval(successes, len(records))
    to_flip = [record['evaluations'] for record in records if record['success']]
    settings = (dict(trials=args.trials) if args.method == 'random' else dict(
        popsize=args.popsize, maxiter=args.maxiter, time_budget=args.time_budget,
        strategy=args.strategy, mutation=args.mutation, recombination=args.recombination,
        search_radius=args.search_radius))
    return dict(
        config=args.config, checkpoint=args.checkpoint, label=args.label or args.config,
        task=task, method=args.method, seed=args.seed, num_images=num_images,
        targets_per_image=args.targets_per_image, boundary_width=args.boundary_width,
        settings=settings,
        max_budget=max_budget(args),
        perturbation='one pixel of the raw uint8 network input set to any colour, before '
        'normalisation',
        num_targets=len(records), num_successes=successes,
        success_rate=successes / len(records), ci95=[low, high],
        mean_evaluations_to_success=float(np.mean(to_flip)) if to_flip else None,
        median_evaluations_to_success=float(np.median(to_flip)) if to_flip else None,
        total_evaluations=int(sum(record['evaluations'] for record in records)),
        seconds=round(seconds, 1), targets=records)


def format_table(summary):
    """The summary as a small text table."""
    rows = [('method', summary['method']), ('images', summary['num_images']),
            ('targets', summary['num_targets']), ('budget per target', summary['max_budget']),
            ('seed', summary['seed']), ('successful attacks', summary['num_successes']),
            ('success rate', f"{100 * summary['success_rate']:.1f}%"),
            ('95% Wilson CI', '[{:.1f}%, {:.1f}%]'.format(*(100 * b for b in summary['ci95'])))]
    if summary['mean_evaluations_to_success'] is not None:
        rows.append(('mean evaluations to a flip',
                     f"{summary['mean_evaluations_to_success']:.1f}"))
    width = max(len(name) for name, _ in rows)
    return '\n'.join(f'{name:<{width}}  {value}' for name, value in rows)


def save_plot(summary, args):
    """Success against budget for this run (if any) and the ``--plot-with`` runs, pooled by
    label."""
    summaries = [summary] if summary else []
    for path in args.plot_with:
        with open(path) as file:
            summaries.append(json.load(file))
    return plot_runs(summaries, args.plot)


def main(argv=None):
    """Run the attack; print the table and return the summary."""
    args = parse_args(argv)
    if args.config is None:
        print(f'Plot saved to {save_plot(None, args)}')
        return None
    model, dataset, task, cfg = load_model_and_dataset(args)
    num_images = min(args.num_images, len(dataset))
    if num_images < args.num_images:
        print_log(f'The test set has {len(dataset)} images; attacking all of them',
                  logger='current')
    records = []
    start = time.monotonic()
    progress = ProgressBar(num_images)
    for index in range(num_images):
        targets = make_targets(model, dataset[index], index, args, task, cfg)
        records += attack_image(targets, index, args)
        progress.update()
    print()  # the progress bar leaves its line open
    summary = summarise(records, args, task, num_images, time.monotonic() - start)
    print(f'One-pixel attack on {args.checkpoint}')
    print(format_table(summary))
    if args.out:
        with open(args.out, 'w') as file:
            json.dump(summary, file, indent=2)
        print(f'Results written to {args.out}')
    if args.plot:
        print(f'Plot saved to {save_plot(summary, args)}')
    return summary


if __name__ == '__main__':
    main()
