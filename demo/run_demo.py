"""The main job of ``make demo``: SLaK learns dense prediction on generated tiny datasets, on CPU.

It generates the tiny ADE20K and COCO sets, evaluates each demo model untrained, trains it with the
demo config (the real recipe, shrunk), evaluates it again, draws pictures of its predictions on
validation images, and prints a summary table.
"""
import argparse
import os.path as osp
import time
from dataclasses import dataclass

import mmcv
import torch
from mmengine.config import Config
from mmengine.runner import Runner, find_latest_checkpoint
from rich.console import Console
from rich.table import Table

from mmslak.datasets import make_tiny_datasets

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@dataclass(frozen=True)
class Demo:
    """One demo job: a config, the metrics that summarise it and their scale to percent."""
    name: str
    config: str
    metrics: tuple
    to_percent: float = 1.


DEMOS = {
    'ade20k': Demo('ADE20K semantic segmentation, UperNet',
                   'configs/demo/slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py',
                   ('mIoU', 'aAcc')),
    'coco': Demo('COCO instance segmentation, Cascade Mask R-CNN',
                 'configs/demo/'
                 'cascade-mask-rcnn_slak-nano_fpn_4conv1fc-giou_ms-crop-24e_tiny-coco.py',
                 ('coco/bbox_mAP', 'coco/bbox_mAP_50', 'coco/segm_mAP', 'coco/segm_mAP_50'),
                 to_percent=100.),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        '--only', choices=list(DEMOS), nargs='+', default=list(DEMOS),
        help='which demos to run, in order (default: all); the COCO detector starts from the '
        "backbone the ADE20K demo trained when that runs first")
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='folder for logs, checkpoints and pictures')
    parser.add_argument('--seed', type=int, default=0, help='seed of the generated datasets')
    parser.add_argument('--num-pictures', type=int, default=4,
                        help='validation images to draw predictions for')
    return parser.parse_args(argv)


def demo_config(demo, work_dir):
    cfg = Config.fromfile(osp.join(ROOT, demo.config))
    cfg.work_dir = work_dir
    cfg.randomness = dict(seed=0)
    return cfg


@torch.no_grad()  # detections that carry gradients cannot be drawn
def save_prediction_pictures(runner, out_dir, num_pictures):
    """Draw the trained model's predictions next to the ground truth for validation images."""
    written = []
    for batch in runner.test_dataloader:
        for sample in runner.model.test_step(batch):
            image = mmcv.imread(sample.img_path, channel_order='rgb')
            out_file = osp.join(out_dir, osp.splitext(osp.basename(sample.img_path))[0] + '.png')
            runner.visualizer.add_datasample(
                'prediction', image, data_sample=sample, draw_gt=True, show=False,
                out_file=out_file)
            written.append(out_file)
            if len(written) == num_pictures:
                return written
    return written


def run_demo(demo, work_dir, num_pictures, backbone_checkpoint=None):
    """Evaluate untrained, train, evaluate trained; return metrics, time and pictures.

    Args:
        demo (Demo): The job.
        work_dir (str): Its folder.
        num_pictures (int): Validation images to draw.
        backbone_checkpoint (str, optional): A downstream checkpoint whose ``backbone.`` weights
            initialise the backbone, as ``init_cfg=dict(type='Pretrained', prefix='backbone.')``.
    """
    untrained = Runner.from_cfg(demo_config(demo, osp.join(work_dir, 'untrained'))).test()
    start = time.perf_counter()
    cfg = demo_config(demo, work_dir)
    if backbone_checkpoint is not None:
        cfg.model.backbone.init_cfg = dict(
            type='Pretrained', checkpoint=backbone_checkpoint, prefix='backbone.')
    runner = Runner.from_cfg(cfg)
    runner.train()
    trained = runner.test()
    minutes = (time.perf_counter() - start) / 60
    pictures = save_prediction_pictures(runner, osp.join(work_dir, 'predictions'), num_pictures)
    return untrained, trained, minutes, pictures


def print_summary(results):
    table = Table(title='mmslak demo: SLaK on the generated tiny datasets (CPU)')
    for column in ('task', 'metric (%)', 'untrained', 'trained', 'train + eval'):
        table.add_column(column)
    for demo, (untrained, trained, minutes, _) in results.items():
        for metric in demo.metrics:
            before, after = (value[metric] * demo.to_percent for value in (untrained, trained))
            table.add_row(demo.name, metric, f'{before:.1f}', f'{after:.1f}', f'{minutes:.1f} min')
    Console(width=max(Console().width, 110)).print(table)  # wide enough for one line a row
    for demo, (*_, pictures) in results.items():
        print(f'{demo.name}: prediction pictures in {osp.dirname(pictures[0])}')


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    records = make_tiny_datasets(osp.join(ROOT, 'data/tiny'), which=args.only, seed=args.seed)
    for record in records:
        print(f'Generated {record.dataset} {record.split}: {record.num_images} images, '
              f'{record.num_instances} objects in {record.image_dir}')
    results = {}
    backbone_checkpoint = None
    for key in args.only:
        demo = DEMOS[key]
        print(f'=== {demo.name}: {demo.config}')
        if backbone_checkpoint is not None:
            print(f'    backbone initialised from {backbone_checkpoint}')
        work_dir = osp.join(args.work_dir, key)
        results[demo] = run_demo(demo, work_dir, args.num_pictures, backbone_checkpoint)
        # The detector starts from the segmentation demo's backbone, as from a pretrained one.
        backbone_checkpoint = find_latest_checkpoint(work_dir)
    print_summary(results)
    print(f'Total time: {(time.perf_counter() - start) / 60:.1f} min')


if __name__ == '__main__':
    main()
