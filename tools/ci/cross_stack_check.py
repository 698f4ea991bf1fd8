"""A checkpoint of one stack resumes and tests on another with the same metrics.

For each ordered pair of stacks (A, B): A trains the demo segmentor on tiny ADE20K for a few
iterations; A and B both test A's checkpoint (the metrics must agree within ``--tolerance``
percentage points); B resumes A's training for more iterations. The stacks differ in torch, numpy
(1.x and 2.x) and the OpenMMLab family, so this checks the safe loader, the checkpoint format and
the model across them. Standard library only: it runs each stack's own Python.

Example:
    python tools/ci/cross_stack_check.py legacy=.venv-legacy/bin/python \\
        forks=.venv-forks/bin/python
"""
import argparse
import glob
import itertools
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIG = osp.join(ROOT, 'configs/demo/slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py')
METRICS = ('aAcc', 'mIoU', 'mAcc')
SINGLE_PROCESS = [f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader',
                                                   'test_dataloader')
                  for key in ('num_workers=0', 'persistent_workers=False')]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('stacks', nargs='+', metavar='NAME=PYTHON',
                        help="each stack's name and the Python of its environment")
    parser.add_argument('--iters', type=int, default=4, help='training iterations of stack A')
    parser.add_argument('--tolerance', type=float, default=0.01,
                        help='largest metric difference between the stacks, in points')
    parser.add_argument('--work-dir', help='folder for data, checkpoints and logs '
                        '(default: a temporary one)')
    return parser.parse_args(argv)


def run(python, *args, cwd):
    """Run a tool with ``python`` in ``cwd``; raise with its output's tail if it fails."""
    result = subprocess.run([python, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=900)
    if result.returncode:
        raise RuntimeError(f'{python} {" ".join(args)} failed:\n{result.stdout[-3000:]}'
                           f'{result.stderr[-3000:]}')
    return result.stdout + result.stderr


def tested_metrics(python, checkpoint, work_dir, cwd):
    """The metrics that ``tools/test.py`` of ``python``'s stack writes for ``checkpoint``."""
    run(python, osp.join(ROOT, 'tools/test.py'), CONFIG, checkpoint, '--work-dir', work_dir,
        '--cfg-options', *SINGLE_PROCESS, cwd=cwd)
    logs = glob.glob(osp.join(work_dir, '*', '*.json'))
    if len(logs) != 1:
        raise RuntimeError(f'expected one metrics log in {work_dir}, found {logs}')
    with open(logs[0]) as f:
        metrics = json.loads(f.readlines()[-1])
    return {name: metrics[name] for name in METRICS}


def check_pair(trainer, tester, root, iters, tolerance):
    """``trainer`` trains and tests, ``tester`` tests and resumes; returns a report line."""
    (name_a, python_a), (name_b, python_b) = trainer, tester
    train_dir = osp.join(root, f'{name_a}_train')
    options = ['--cfg-options', f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
               'train_dataloader.batch_size=2', *SINGLE_PROCESS]
    run(python_a, osp.join(ROOT, 'tools/train.py'), CONFIG, '--work-dir', train_dir, *options,
        cwd=root)
    checkpoint = osp.join(train_dir, f'iter_{iters}.pth')
    metrics_a = tested_metrics(python_a, checkpoint, osp.join(root, f'{name_a}_test_{name_a}'),
                               root)
    metrics_b = tested_metrics(python_b, checkpoint, osp.join(root, f'{name_a}_test_{name_b}'),
                               root)
    differences = {name: abs(metrics_a[name] - metrics_b[name]) for name in METRICS}
    if max(differences.values()) > tolerance:
        raise RuntimeError(f'{name_a} checkpoint: {name_a} measured {metrics_a}, {name_b} '
                           f'{metrics_b} (tolerance {tolerance})')
    resume_dir = osp.join(root, f'{name_a}_resume_{name_b}')
    more = ['--cfg-options', f'train_cfg.max_iters={iters + 2}',
            f'train_cfg.val_interval={iters + 2}', 'train_dataloader.batch_size=2',
            *SINGLE_PROCESS]
    output = run(python_b, osp.join(ROOT, 'tools/train.py'), CONFIG, '--work-dir', resume_dir,
                 '--resume', checkpoint, *more, cwd=root)
    if f'resumed epoch: 0, iter: {iters}' not in output or \
            not osp.isfile(osp.join(resume_dir, f'iter_{iters + 2}.pth')):
        raise RuntimeError(f'{name_b} did not resume the {name_a} checkpoint at iteration '
                           f'{iters}:\n{output[-3000:]}')
    shown = ', '.join(f'{name} {metrics_a[name]:.2f}' for name in METRICS)
    return (f'{name_a} checkpoint (iter {iters}): {shown} on {name_a}; largest difference on '
            f'{name_b} {max(differences.values()):.4f}; {name_b} resumed it to iter {iters + 2}')


def main(argv=None):
    args = parse_args(argv)
    stacks = [tuple(item.split('=', 1)) for item in args.stacks]
    if len(stacks) < 2 or any(len(item) != 2 for item in stacks):
        sys.exit('give at least two stacks as NAME=PYTHON')
    stacks = [(name, osp.abspath(python)) for name, python in stacks]  # the tools run elsewhere
    root = osp.abspath(args.work_dir or tempfile.mkdtemp(prefix='cross_stack_'))
    os.makedirs(root, exist_ok=True)
    start = time.time()
    run(stacks[0][1], osp.join(ROOT, 'tools/dataset_converters/make_tiny_datasets.py'),
        osp.join(root, 'data', 'tiny'), '--which', 'ade20k', '--num-train', '8', '--num-val', '4',
        cwd=root)
    for trainer, tester in itertools.permutations(stacks, 2):
        print(check_pair(trainer, tester, root, args.iters, args.tolerance), flush=True)
    print(f'cross-stack check passed in {time.time() - start:.0f} s ({root})')


if __name__ == '__main__':
    main()
