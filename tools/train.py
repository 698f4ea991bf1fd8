"""Train an mmdet or mmseg model (the task follows the config's default_scope)."""
import argparse
import logging
import os
import os.path as osp
import sys

try:
    import mmslak  # noqa: F401  (first: it checks the installed torch and OpenMMLab packages)
except ImportError as error:
    if type(error).__name__ != 'UnsupportedStackError':
        raise
    sys.exit(str(error))  # the message names each problem and its fix; no traceback

from mmengine.logging import print_log
from mmengine.runner import find_latest_checkpoint

from mmslak.apis import (add_common_args, add_training_safeguards, build_runner, enable_amp,
                         load_config, task_of)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument(
        '--resume', nargs='?', type=str, const='auto',
        help='resume from this checkpoint, or from the latest one in the work dir if no path')
    parser.add_argument('--amp', action='store_true',
                        help='automatic mixed precision: fp16 with dynamic loss scaling on '
                        'CUDA, bfloat16 autocast on CPUs')
    parser.add_argument('--auto-scale-lr', action='store_true',
                        help='scale the learning rate by the real batch size (auto_scale_lr)')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = load_config(args)
    enable_amp(cfg, force=args.amp)
    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ValueError('--auto-scale-lr needs auto_scale_lr.base_batch_size in the config')
        cfg.auto_scale_lr.enable = True
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
        if find_latest_checkpoint(cfg.work_dir) is None:
            print_log(f'--resume: no checkpoint to resume from in {cfg.work_dir}, so training '
                      'starts from the beginning', logger='current', level=logging.WARNING)
    elif args.resume is not None:
        if not osp.isfile(args.resume):
            raise FileNotFoundError(f'--resume {args.resume}: no such checkpoint file')
        cfg.resume, cfg.load_from = True, args.resume
    add_training_safeguards(cfg)
    print_log(f'Training a {task_of(cfg)} model from {args.config}', logger='current')
    build_runner(cfg).train()


if __name__ == '__main__':
    main()
