"""Train the nano ADE20K demo dense and dynamic-sparse on the same schedule and compare the mIoU.

Runs ``tools/train.py`` twice in the current folder (which holds ``data/tiny``; the tiny ADE20K
set is generated there when missing), with the same seed and ``--cfg-options`` for both, then
prints one row per run: the backbone weights kept in the last checkpoint and the last validation
metrics. Example (about a minute per run on 2 CPU cores)::

    python tools/analysis_tools/compare_dense_sparse.py
"""
import argparse
import glob
import json
import os.path as osp
import subprocess
import sys
import time

from mmengine.runner import find_latest_checkpoint
from rich.console import Console
from rich.table import Table

from mmslak.checkpoint import BACKBONE_PREFIX, read_checkpoint, recognise

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DENSE = 'configs/demo/slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py'
SPARSE = 'configs/demo/slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128_dynamic-sparse.py'
METRICS = ('mIoU', 'aAcc')


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dense-config', default=osp.join(ROOT, DENSE), help='dense config')
    parser.add_argument('--sparse-config', default=osp.join(ROOT, SPARSE),
                        help='the same recipe with the DynamicSparsityHook')
    parser.add_argument('--work-dir', default='work_dirs/compare_dense_sparse',
                        help='folder holding the work dirs of the two runs')
    parser.add_argument('--seed', type=int, default=0, help='training seed of both runs')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='key=value overrides for both runs, as for tools/train.py')
    return parser.parse_args(argv)


def last_validation(work_dir):
    """The metrics of the last validation in the JSON log of a training run."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    if not logs:
        raise FileNotFoundError(f'no training log under {work_dir}')
    with open(logs[-1]) as f:
        records = [json.loads(line) for line in f if line.strip()]
    validations = [record for record in records if METRICS[0] in record]
    if not validations:
        raise ValueError(f'{logs[-1]} holds no validation: let train_cfg.val_interval divide '
                         'the training length')
    return validations[-1]


def backbone_density(work_dir):
    """Fraction of the backbone's masked weights kept in the last checkpoint (1 when dense)."""
    checkpoint = find_latest_checkpoint(work_dir)
    state = recognise(read_checkpoint(checkpoint)).state_dict
    masks = [value for key, value in state.items()
             if key.startswith(BACKBONE_PREFIX) and key.endswith('weight_mask')]
    if not masks:
        return 1.0
    return sum(int(mask.sum()) for mask in masks) / sum(mask.numel() for mask in masks)


def train(config, work_dir, args):
    command = [sys.executable, osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir',
               work_dir, '--cfg-options', f'randomness.seed={args.seed}', *args.cfg_options]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    return time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    if not osp.isdir(osp.join('data', 'tiny', 'ade20k')):
        from mmslak.datasets import make_tiny_datasets
        make_tiny_datasets(osp.join('data', 'tiny'), which=['ade20k'])
    rows = []
    for name, config in (('dense', args.dense_config), ('dynamic sparse', args.sparse_config)):
        work_dir = osp.join(args.work_dir, name.replace(' ', '_'))
        seconds = train(config, work_dir, args)
        metrics = last_validation(work_dir)
        rows.append(dict(run=name, config=osp.basename(config), seconds=seconds,
                         density=backbone_density(work_dir),
                         **{metric: metrics[metric] for metric in METRICS}))
    table = Table(title='Nano SLaK + UperNet on tiny ADE20K, same schedule and seed')
    for column in ('run', 'config', 'backbone weights kept', *METRICS, 'training time'):
        table.add_column(column)
    for row in rows:
        table.add_row(row['run'], row['config'], f"{row['density']:.1%}",
                      *(f'{row[metric]:.2f}' for metric in METRICS), f"{row['seconds']:.0f} s")
    Console(width=200).print(table)
    return rows


if __name__ == '__main__':
    main()
