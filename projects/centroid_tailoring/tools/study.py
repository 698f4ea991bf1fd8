"""One-pixel robustness of two heads over several training seeds: train, test, attack, compare.

For each head (``--runs LABEL=CONFIG``, exactly two) and each ``--seeds`` seed, in the run folder
``WORK_DIR/LABEL/seedS``:

1. ``tools/train.py CONFIG --work-dir RUN --cfg-options randomness.seed=S``, skipped when it
   finished before (``RUN/trained``, written after it, and the checkpoint
   ``RUN/last_checkpoint`` names exist: mmengine also names the checkpoints of an unfinished
   training there);
2. ``tools/test.py CONFIG CHECKPOINT --work-dir RUN/test``, its metrics saved as
   ``RUN/metrics.json``, skipped when that file exists;
3. ``projects/centroid_tailoring/tools/attack.py CONFIG CHECKPOINT --label LABEL --out
   RUN/one_pixel.json`` with ``--attack-args``, skipped when that file exists.

An interrupted study therefore resumes where it stopped; when a run is trained, the test and
attack results an earlier model left in its folder are removed first. Every run is attacked with
the same ``--attack-args``, hence the same attack ``--seed``: both heads' searches start alike.
Each step logs to ``RUN/train.log``, ``test.log`` or ``attack.log``. Relative paths in the
configs (data roots) resolve against the current folder, as with the tools themselves.

The heads are pooled over seeds and compared (Fisher's exact test, rate ratio second / first,
targets needed for 80% power to detect a 2x rate): see :mod:`one_pixel.study`.
Only two heads are compared, so that the p-value needs no correction for multiple comparisons;
run one study per pair otherwise. Written to WORK_DIR: ``study.json`` (rows, pooled,
comparison), ``study.md`` (the report, also printed) and ``one_pixel_study.png`` (success rate
against budget pooled by head).

Example::

    python projects/centroid_tailoring/tools/study.py \\
        --runs softmax=configs/demo/slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py \\
        gauss=configs/demo/slak-nano_upernet-gauss_1xb8-200iter_tiny-ade20k-128x128.py \\
        --seeds 0 1 2 --work-dir work_dirs/study_ade20k \\
        --attack-args "--num-images 16 --targets-per-image 8 --popsize 20 --maxiter 9"
"""
import argparse
import json
import os
import os.path as osp
import re
import shlex
import subprocess
import sys

from mmengine.logging import print_log

# The project folder, where the one_pixel package lives (it is no part of the mmslak package).
PROJECT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if PROJECT not in sys.path:
    sys.path.insert(0, PROJECT)
from one_pixel.stats import plot_runs  # noqa: E402
from one_pixel.study import compare, format_report, pick_metric, pool_rows, run_row  # noqa: E402

ROOT = osp.dirname(osp.dirname(PROJECT))
TRAIN = osp.join(ROOT, 'tools', 'train.py')
TEST = osp.join(ROOT, 'tools', 'test.py')
ATTACK = osp.join(PROJECT, 'tools', 'attack.py')
# The study sets these attack options itself, per run.
RESERVED_ATTACK_ARGS = ('--label', '--out', '--plot', '--plot-with')
# What the test and attack steps leave in a run folder, skipped on resume.
RESULTS = ('metrics.json', 'one_pixel.json')
# A label names a folder.
LABEL = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')


def parse_runs(parser, items):
    """``LABEL=CONFIG`` items as an ordered mapping; a malformed one is a parser error.

    Args:
        parser (argparse.ArgumentParser): Reports the errors.
        items (list[str]): The ``--runs`` values.

    Returns:
        dict[str, str]: Config per label, in the given order.
    """
    runs = {}
    for item in items:
        label, sep, config = item.partition('=')
        if not sep or not config:
            parser.error(f'--runs {item}: expected LABEL=CONFIG')
        if not LABEL.fullmatch(label):
            parser.error(f'--runs {item}: a label is letters, digits, "_", "." and "-" (it names '
                         'a folder)')
        if label in runs:
            parser.error(f'--runs: the label {label} is given twice')
        if not osp.isfile(config):
            parser.error(f'--runs {item}: config file {config} does not exist')
        runs[label] = config
    if len(runs) != 2:
        parser.error('--runs takes exactly two LABEL=CONFIG: the study compares two heads (run '
                     'one study per pair to compare more)')
    return runs


def parse_attack_args(parser, text):
    """``--attack-args`` split as a shell would; options the study sets are parser errors.

    Args:
        parser (argparse.ArgumentParser): Reports the errors.
        text (str): The ``--attack-args`` value.

    Returns:
        list[str]: The arguments.
    """
    try:
        args = shlex.split(text)
    except ValueError as error:
        parser.error(f'--attack-args: {error}')
    for arg in args:
        name = arg.split('=')[0]
        # argparse takes an unambiguous prefix of an option for the option
        if len(name) > 2 and any(option.startswith(name) for option in RESERVED_ATTACK_ARGS):
            parser.error(f'--attack-args: {arg} is set by the study per run')
    return args


def parse_args(argv=None):
    """Command-line arguments, with ``runs`` a label-to-config mapping and ``attack_args`` a
    list."""
    parser = argparse.ArgumentParser(
        description='Train, test and one-pixel attack two heads over several seeds, then '
        'compare their pooled attack success (Fisher exact test, power for a 2x rate).')
    parser.add_argument('--runs', nargs='+', required=True, metavar='LABEL=CONFIG',
                        help='the two heads, e.g. softmax=A.py gauss=B.py (the rate ratio is '
                        'second over first)')
    parser.add_argument('--seeds', nargs='+', type=int, required=True,
                        help='training seeds (randomness.seed), e.g. 0 1 2')
    parser.add_argument('--work-dir', required=True,
                        help='study folder: WORK_DIR/LABEL/seedS per run, the report at the top')
    parser.add_argument('--attack-args', default='',
                        help='arguments of every attack as one string, e.g. "--num-images 16 '
                        '--popsize 20 --maxiter 9 --seed 0" (the attack seed defaults to 0; one '
                        'option without a space is passed as --attack-args=--seed=1)')
    parser.add_argument('--metric',
                        help='accuracy metric of the test (default: the first present of mIoU, '
                        'pascal_voc/mAP, coco/bbox_mAP)')
    args = parser.parse_args(argv)
    args.runs = parse_runs(parser, args.runs)
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0:
        parser.error('--seeds must be distinct and non-negative')
    args.attack_args = parse_attack_args(parser, args.attack_args)
    # checkpoints are then named by absolute paths, valid from any folder a study resumes in
    args.work_dir = osp.abspath(args.work_dir)
    return args


def run_command(command, log_path):
    """Run a command, its stdout and stderr written to a log file.

    Args:
        command (list[str]): The command.
        log_path (str): The log file.

    Raises:
        RuntimeError: If the command fails; the message names it and its log.
    """
    with open(log_path, 'w') as log:
        returncode = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if returncode != 0:
        raise RuntimeError(f'{shlex.join(command)} failed with exit status {returncode}; see its '
                           f'log {log_path}')


def saved_checkpoint(folder):
    """The checkpoint that ``folder/last_checkpoint`` names, if it exists.

    Args:
        folder (str): A training work dir.

    Returns:
        str | None: The checkpoint, or ``None`` when there is none.
    """
    pointer = osp.join(folder, 'last_checkpoint')
    if not osp.isfile(pointer):
        return None
    with open(pointer) as file:
        checkpoint = file.read().strip()
    return checkpoint if osp.isfile(checkpoint) else None


def train_run(config, folder, seed, step):
    """Train a head with a seed, unless its folder holds a finished training already.

    Args:
        config (str): The config.
        folder (str): The run folder (the training work dir).
        seed (int): The training seed.
        step (str): The run's name in progress lines.

    Returns:
        str: The last checkpoint.
    """
    checkpoint = saved_checkpoint(folder)
    finished = osp.join(folder, 'trained')
    if checkpoint and osp.isfile(finished):
        print_log(f'{step}: training done already ({checkpoint})', logger='current')
        return checkpoint
    command = [sys.executable, TRAIN, config, '--work-dir', folder, '--cfg-options',
               f'randomness.seed={seed}']
    print_log(f'{step}: training', logger='current')
    # the results of an earlier model in this folder would pass for the new one's
    for name in RESULTS:
        if osp.isfile(osp.join(folder, name)):
            os.remove(osp.join(folder, name))
    run_command(command, osp.join(folder, 'train.log'))
    checkpoint = saved_checkpoint(folder)
    if checkpoint is None:
        raise RuntimeError(f'{shlex.join(command)} left no checkpoint named in '
                           f"{osp.join(folder, 'last_checkpoint')}")
    with open(finished, 'w') as file:
        file.write(checkpoint)
    return checkpoint


def latest_test_metrics(test_dir):
    """The metrics of the latest test in a ``tools/test.py`` work dir.

    mmengine's ``LoggerHook`` writes them to ``TIMESTAMP/TIMESTAMP.json``; the timestamps
    (``%Y%m%d_%H%M%S``) sort by time.

    Args:
        test_dir (str): The test's work dir.

    Returns:
        dict: The metrics.
    """
    stamps = sorted(name for name in os.listdir(test_dir)
                    if osp.isfile(osp.join(test_dir, name, f'{name}.json')))
    if not stamps:
        raise RuntimeError(f'no TIMESTAMP/TIMESTAMP.json metrics file in {test_dir}')
    with open(osp.join(test_dir, stamps[-1], f'{stamps[-1]}.json')) as file:
        return json.load(file)


def saved_or_made(path, step, action, name, make):
    """The JSON result a step writes to ``path``, the step run first unless it is there.

    Args:
        path (str): The step's result.
        step (str): The run's name in progress lines.
        action (str): What the step does, in the progress line (e.g. ``'testing'``).
        name (str): The step, in the line when its result is there (e.g. ``'testing'``).
        make (callable): Runs the step, which writes ``path``.

    Returns:
        dict: The result.
    """
    if osp.isfile(path):
        print_log(f'{step}: {name} done already ({path})', logger='current')
    else:
        print_log(f'{step}: {action}', logger='current')
        make()
    with open(path) as file:
        return json.load(file)


def test_run(config, checkpoint, folder, step):
    """Test a checkpoint, unless ``folder/metrics.json`` holds its metrics already.

    Args:
        config (str): The config.
        checkpoint (str): The checkpoint.
        folder (str): The run folder.
        step (str): The run's name in progress lines.

    Returns:
        dict: The test metrics.
    """
    path = osp.join(folder, 'metrics.json')
    test_dir = osp.join(folder, 'test')

    def test():
        run_command([sys.executable, TEST, config, checkpoint, '--work-dir', test_dir],
                    osp.join(folder, 'test.log'))
        with open(path, 'w') as file:
            json.dump(latest_test_metrics(test_dir), file, indent=2)

    return saved_or_made(path, step, 'testing', 'testing', test)


def attack_run(config, checkpoint, folder, label, attack_args, step):
    """One-pixel attack a checkpoint, unless ``folder/one_pixel.json`` holds its summary.

    Args:
        config (str): The config.
        checkpoint (str): The checkpoint.
        folder (str): The run folder.
        label (str): The head's label in the summary.
        attack_args (list[str]): Further arguments of the attack tool.
        step (str): The run's name in progress lines.

    Returns:
        dict: The attack summary.
    """
    path = osp.join(folder, 'one_pixel.json')
    command = [sys.executable, ATTACK, config, checkpoint, '--label', label, '--out', path,
               *attack_args]
    return saved_or_made(path, step, 'attacking', 'attack',
                         lambda: run_command(command, osp.join(folder, 'attack.log')))


def study_run(args, label, seed):
    """Train, test and attack one head with one seed.

    Args:
        args (argparse.Namespace): The command line.
        label (str): The head.
        seed (int): The training seed.

    Returns:
        tuple[dict, dict]: The run's row and its attack summary.
    """
    config = args.runs[label]
    folder = osp.join(args.work_dir, label, f'seed{seed}')
    os.makedirs(folder, exist_ok=True)
    step = f'{label} seed {seed}'
    checkpoint = train_run(config, folder, seed, step)
    metrics = test_run(config, checkpoint, folder, step)
    # a missing metric stops the study before the attack, the long step
    metric = pick_metric(metrics, args.metric)
    summary = attack_run(config, checkpoint, folder, label, args.attack_args, step)
    return run_row(summary, metrics, seed, metric), summary


def write_outputs(work_dir, rows, summaries):
    """Pool, compare and write ``study.json``, ``study.md`` and ``one_pixel_study.png``.

    Args:
        work_dir (str): The study folder.
        rows (list[dict]): The runs' rows, in label order.
        summaries (list[dict]): The runs' attack summaries.

    Returns:
        tuple[dict, str]: What ``study.json`` holds (``rows``, ``pooled`` and ``comparison``)
        and the report.
    """
    pooled = pool_rows(rows)
    comparison = compare(*pooled.values())
    study = dict(rows=rows, pooled=pooled, comparison=comparison)
    with open(osp.join(work_dir, 'study.json'), 'w') as file:
        json.dump(study, file, indent=2)
    report = format_report(rows, pooled, comparison)
    with open(osp.join(work_dir, 'study.md'), 'w') as file:
        file.write(report)
    seeds = ', '.join(str(seed) for seed in next(iter(pooled.values()))['seeds'])
    plot_runs(summaries, osp.join(work_dir, 'one_pixel_study.png'),
              title=f'One-pixel attack, pooled over training seeds {seeds}')
    return study, report


def main(argv=None):
    """Run the study; return what ``study.json`` holds."""
    args = parse_args(argv)
    rows, summaries = [], []
    for label in args.runs:
        for seed in args.seeds:
            row, summary = study_run(args, label, seed)
            rows.append(row)
            summaries.append(summary)
    study, report = write_outputs(args.work_dir, rows, summaries)
    print(report)
    print_log(f'Study written to {args.work_dir}: study.json, study.md, one_pixel_study.png',
              logger='current')
    return study


if __name__ == '__main__':
    main()
