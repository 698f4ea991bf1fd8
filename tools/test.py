"""Evaluate an mmdet or mmseg checkpoint (the task follows the config's default_scope)."""
import argparse
import os
import os.path as osp
import sys

try:
    import mmslak  # noqa: F401  (first: it checks the installed torch and OpenMMLab packages)
except ImportError as error:
    if type(error).__name__ != 'UnsupportedStackError':
        raise
    sys.exit(str(error))  # the message names each problem and its fix; no traceback

from mmengine.evaluator import DumpResults

from mmslak.apis import add_common_args, build_runner, enable_visualization, load_config


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    add_common_args(parser)
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', help='dump the raw predictions to this .pkl file')
    parser.add_argument('--show', action='store_true', help='show predictions in a window')
    parser.add_argument('--show-dir', help='save pictures of the predictions in this folder')
    parser.add_argument('--wait-time', type=float, default=2, help='seconds per shown picture')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    if not osp.isfile(args.checkpoint):
        raise FileNotFoundError(f'Checkpoint {args.checkpoint} does not exist')
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    if args.show or args.show_dir:
        enable_visualization(cfg, args.show_dir, args.show, args.wait_time)
    runner = build_runner(cfg)
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ValueError(f'--out must be a .pkl file, got {args.out}')
        runner.test_evaluator.metrics.append(DumpResults(out_file_path=args.out))
    runner.test()


if __name__ == '__main__':
    main()
