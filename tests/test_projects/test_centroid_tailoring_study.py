"""The one-pixel study: its statistics on hand-made attack summaries, its report, and the driver
end to end with fake training, test and attack steps."""
import json
import os
import os.path as osp
import re
import sys

import numpy as np
import pytest
from one_pixel.stats import targets_for_power, wilson_interval
from one_pixel.study import (compare, format_report, pick_metric, pool_label, pool_rows,
                             power_statement, run_row)
from scipy.stats import fisher_exact

from .conftest import load_tool

PNG = b'\x89PNG\r\n\x1a\n'


def summary(label, flips, targets, seed=0, max_budget=200):
    """An attack summary with ``targets`` targets, the first ``len(flips)`` flipped after
    ``flips`` evaluations."""
    records = [dict(success=True, evaluations=e) for e in flips]
    records += [dict(success=False, evaluations=max_budget)] * (targets - len(flips))
    return dict(label=label, task='mmseg', method='de', seed=seed, max_budget=max_budget,
                num_targets=targets, num_successes=len(flips), success_rate=len(flips) / targets,
                ci95=list(wilson_interval(len(flips), targets)),
                mean_evaluations_to_success=float(np.mean(flips)) if flips else None,
                median_evaluations_to_success=None, targets=records, num_images=targets,
                targets_per_image=1, boundary_width=None,
                settings=dict(popsize=20, maxiter=9, search_radius=None))


def pooled_head(label, successes, targets):
    """A pooled head of one seed with these counts."""
    flips = [10] * successes
    return pool_label([run_row(summary(label, flips, targets), dict(mIoU=90.), 0)])


def test_run_row_and_pooling_over_seeds():
    rows = [
        run_row(summary('softmax', [10, 30], 8, seed=3), dict(aAcc=98., mIoU=96.), seed=0),
        run_row(summary('softmax', [50], 8, seed=3), dict(mIoU=95.), seed=1),
        run_row(summary('softmax', [], 4, seed=3), dict(mIoU=92.5), seed=2),
        run_row(summary('gauss', [], 8), dict(mIoU=90.), seed=0),
    ]
    first = rows[0]
    assert (first['label'], first['seed'], first['attack_seed']) == ('softmax', 0, 3)
    assert (first['metric'], first['accuracy']) == ('mIoU', 96.)
    assert (first['successes'], first['targets'], first['rate']) == (2, 8, 0.25)
    assert first['ci95'] == list(wilson_interval(2, 8)) and first['mean_evaluations'] == 20.
    assert rows[2]['mean_evaluations'] is None

    pooled = pool_rows(rows)
    assert list(pooled) == ['softmax', 'gauss']
    softmax = pooled['softmax']
    assert softmax['seeds'] == [0, 1, 2]
    assert (softmax['successes'], softmax['targets']) == (3, 20)
    assert softmax['rate'] == 3 / 20 and softmax['ci95'] == list(wilson_interval(3, 20))
    assert softmax['accuracy_mean'] == pytest.approx(np.mean([96., 95., 92.5]))
    assert softmax['accuracy_std'] == pytest.approx(np.std([96., 95., 92.5], ddof=1))
    # over all flips, not the mean of the runs' means (20 and 50)
    assert softmax['mean_evaluations'] == pytest.approx(np.mean([10, 30, 50]))
    gauss = pooled['gauss']
    assert gauss['accuracy_std'] is None and gauss['mean_evaluations'] is None
    assert gauss['ci95'] == list(wilson_interval(0, 8))


def test_metric_choice_and_mixed_metrics():
    assert pick_metric({'aAcc': 1, 'mIoU': 2}) == 'mIoU'
    assert pick_metric({'pascal_voc/AP50': 1, 'pascal_voc/mAP': 2}) == 'pascal_voc/mAP'
    assert pick_metric({'coco/bbox_mAP': 1, 'coco/bbox_mAP_50': 2}) == 'coco/bbox_mAP'
    assert pick_metric({'aAcc': 1, 'mIoU': 2}, 'aAcc') == 'aAcc'
    with pytest.raises(KeyError, match='present are aAcc, mAcc'):
        pick_metric({'mAcc': 1, 'aAcc': 2})
    with pytest.raises(KeyError, match='no test metric mDice'):
        pick_metric({'mIoU': 1}, 'mDice')
    rows = [run_row(summary('a', [], 4), dict(mIoU=1.), 0),
            run_row(summary('a', [], 4), dict(mIoU=1., aAcc=2.), 1, 'aAcc')]
    with pytest.raises(ValueError, match='different metrics'):
        pool_label(rows)


def test_comparison_is_fisher_exact_with_power_at_the_observed_rate():
    softmax, gauss = pooled_head('softmax', 4, 64), pooled_head('gauss', 12, 64)
    comparison = compare(softmax, gauss)
    assert comparison['labels'] == ['softmax', 'gauss']
    assert comparison['table'] == [[4, 60], [12, 52]]
    assert comparison['p_value'] == fisher_exact([[4, 60], [12, 52]])[1]
    assert comparison['rate_ratio'] == 3
    power = comparison['power']
    assert (power['label'], power['basis'], power['rate']) == ('softmax', 'observed', 4 / 64)
    assert power['targets_needed'] == targets_for_power(4 / 64, 2, 0.05, 0.8)
    assert power['reached'] == dict(softmax=False, gauss=False)
    statement = power_statement(comparison)
    assert f"needs {power['targets_needed']} targets per head" in statement
    assert 'softmax has 64 (too few)' in statement

    many = compare(pooled_head('softmax', 100, 400), pooled_head('gauss', 150, 400))
    assert many['power']['targets_needed'] == targets_for_power(0.25) == 58
    assert many['power']['reached'] == dict(softmax=True, gauss=True)
    assert 'gauss has 400 (enough)' in power_statement(many)


def test_zero_rate_is_powered_at_its_upper_bound_only():
    # both 0: the head with more targets has the tighter bound, the most plausible smaller rate
    comparison = compare(pooled_head('softmax', 0, 24), pooled_head('gauss', 0, 30))
    assert comparison['p_value'] == 1 and comparison['rate_ratio'] is None
    power = comparison['power']
    bound = wilson_interval(0, 30)[1]
    assert (power['label'], power['basis'], power['rate']) == ('gauss', 'upper_bound', bound)
    assert power['targets_needed'] == targets_for_power(bound)
    statement = power_statement(comparison)
    assert 'no 2x difference can be powered at the observed rate' in statement
    assert 'the fewest that could suffice' in statement

    one_zero = compare(pooled_head('softmax', 3, 24), pooled_head('gauss', 0, 24))
    assert one_zero['power']['label'] == 'gauss' and one_zero['rate_ratio'] == 0
    assert one_zero['p_value'] == fisher_exact([[3, 21], [0, 24]])[1]

    tiny = compare(pooled_head('softmax', 0, 2), pooled_head('gauss', 0, 2))
    assert tiny['power']['targets_needed'] is None and tiny['power']['reached'] is None
    assert 'too wide to size the study' in power_statement(tiny)
    high = compare(pooled_head('softmax', 6, 10), pooled_head('gauss', 8, 10))
    assert high['power']['basis'] == 'observed' and high['power']['targets_needed'] is None
    assert 'there is none to detect' in power_statement(high)


def test_report_tables_and_comparison():
    rows = [
        run_row(summary('softmax', [10, 30], 8), dict(mIoU=96.), 0),
        run_row(summary('softmax', [], 8), dict(mIoU=95.), 1),
        run_row(summary('gauss', [], 8), dict(mIoU=93.5), 0),
        run_row(summary('gauss', [], 8), dict(mIoU=93.), 1),
    ]
    pooled = pool_rows(rows)
    comparison = compare(*pooled.values())
    report = format_report(rows, pooled, comparison)
    lines = report.splitlines()
    assert lines[0] == '# One-pixel robustness study'
    assert ('Attack: method de, budget per target 200, attack seed 0, images 8, maxiter 9, '
            'popsize 20, targets per image 1.') in lines
    low, high = wilson_interval(2, 8)
    assert (f'| softmax | 0 | mIoU 96 | 2 / 8 | 25.0% | [{100 * low:.1f}%, {100 * high:.1f}%] '
            '| 20.0 |') in lines
    assert '| gauss | 1 | mIoU 93 | 0 / 8 | 0.0% | [0.0%, 32.4%] | - |' in lines
    std = np.std([96., 95.], ddof=1)
    assert any(line.startswith(f'| softmax | 0, 1 | mIoU 95.5 ± {std:.3g} | 2 / 16 | 12.5% |')
               for line in lines)
    assert '## gauss against softmax' in lines
    assert (f"- Fisher's exact test (two-sided) on the pooled targets flipped, 2 / 16 (softmax) "
            f"against 0 / 16 (gauss): p = {fisher_exact([[2, 14], [0, 16]])[1]:.3g}.") in lines
    assert '- Rate ratio gauss / softmax: 0.' in lines
    assert f'- {power_statement(comparison)}' in lines


# The driver, with fake steps: the attacks flip 1 of 4 softmax targets, none of gauss's.
ATTACK_ARGS = '--num-images 2 --popsize 5 --seed 3'


@pytest.fixture(scope='module')
def tool():
    return load_tool('study')


@pytest.fixture
def configs(tmp_path):
    """Two config files: the driver only hands them to the (fake) tools."""
    paths = []
    for name in ('softmax.py', 'gauss.py'):
        paths.append(str(tmp_path / name))
        (tmp_path / name).write_text("default_scope = 'mmseg'\n")
    return paths


def option(command, name, default=None):
    """The value after ``name`` in a command, ``default`` without ``name``."""
    return command[command.index(name) + 1] if name in command else default


class FakeSteps:
    """Stands in for ``run_command``: records each command and writes what its tool would."""

    def __init__(self, tool):
        self.tool = tool
        self.calls = []

    def __call__(self, command, log_path):
        self.calls.append((command, log_path))
        {self.tool.TRAIN: self.train, self.tool.TEST: self.test,
         self.tool.ATTACK: self.attack}[command[1]](command)

    def train(self, command):
        folder = option(command, '--work-dir')
        checkpoint = osp.join(folder, 'iter_200.pth')
        open(checkpoint, 'wb').close()
        with open(osp.join(folder, 'last_checkpoint'), 'w') as file:
            file.write(checkpoint)

    def test(self, command):
        # mmengine's LoggerHook writes WORK_DIR/TIMESTAMP/TIMESTAMP.json
        run = osp.dirname(option(command, '--work-dir'))
        seed = int(osp.basename(run)[len('seed'):])
        miou = (96. if 'softmax' in command[2] else 93.) - seed
        # an older test's file too: the driver must read the latest
        for stamp, value in (('20240101_000000', 0.), ('20240102_000000', miou)):
            os.makedirs(osp.join(run, 'test', stamp), exist_ok=True)
            with open(osp.join(run, 'test', stamp, f'{stamp}.json'), 'w') as file:
                json.dump(dict(aAcc=99., mIoU=value), file)

    def attack(self, command):
        label = option(command, '--label')
        flips = [40] if label == 'softmax' else []
        run = summary(label, flips, 4, seed=int(option(command, '--seed', 0)), max_budget=30)
        with open(option(command, '--out'), 'w') as file:
            json.dump(dict(run, checkpoint=command[3]), file)


def test_driver_trains_tests_attacks_and_resumes(tool, configs, tmp_path, monkeypatch, mmlogs,
                                                 capsys):
    # mmlogs before capsys: mmengine's logger, if new, then writes to pytest's own stream, not
    # to capsys's, which closes after this test
    fake = FakeSteps(tool)
    monkeypatch.setattr(tool, 'run_command', fake)
    work_dir = str(tmp_path / 'study')
    argv = ['--runs', f'softmax={configs[0]}', f'gauss={configs[1]}', '--seeds', '0', '1',
            '--work-dir', work_dir, '--attack-args', ATTACK_ARGS]
    study = tool.main(argv)

    assert [(command[1], osp.basename(log)) for command, log in fake.calls] == [
        (tool.TRAIN, 'train.log'), (tool.TEST, 'test.log'), (tool.ATTACK, 'attack.log')] * 4
    runs = [(config, osp.join(work_dir, label, f'seed{seed}'), seed)
            for config, label in zip(configs, ('softmax', 'gauss')) for seed in (0, 1)]
    for index, (config, folder, seed) in enumerate(runs):
        (train, train_log), (test, _), (attack, _) = fake.calls[3 * index:3 * index + 3]
        assert train_log == osp.join(folder, 'train.log')
        assert train == [sys.executable, tool.TRAIN, config, '--work-dir', folder,
                         '--cfg-options', f'randomness.seed={seed}']
        checkpoint = osp.join(folder, 'iter_200.pth')
        assert test == [sys.executable, tool.TEST, config, checkpoint, '--work-dir',
                        osp.join(folder, 'test')]
        label = osp.basename(osp.dirname(folder))
        assert attack == [sys.executable, tool.ATTACK, config, checkpoint, '--label', label,
                          '--out', osp.join(folder, 'one_pixel.json'), *ATTACK_ARGS.split()]
        with open(osp.join(folder, 'metrics.json')) as file:  # the latest test's metrics
            assert json.load(file)['mIoU'] == (96. if label == 'softmax' else 93.) - seed

    with open(osp.join(work_dir, 'study.json')) as file:
        saved = json.load(file)
    assert saved == json.loads(json.dumps(study))
    assert [(row['label'], row['seed'], row['attack_seed'], row['accuracy'])
            for row in saved['rows']] == [('softmax', 0, 3, 96.), ('softmax', 1, 3, 95.),
                                          ('gauss', 0, 3, 93.), ('gauss', 1, 3, 92.)]
    softmax, gauss = saved['pooled']['softmax'], saved['pooled']['gauss']
    assert (softmax['successes'], softmax['targets'], softmax['mean_evaluations']) == (2, 8, 40.)
    assert (gauss['successes'], gauss['targets'], gauss['accuracy_mean']) == (0, 8, 92.5)
    assert saved['comparison']['p_value'] == pytest.approx(fisher_exact([[2, 6], [0, 8]])[1])
    assert saved['comparison']['power']['basis'] == 'upper_bound'

    with open(osp.join(work_dir, 'study.md')) as file:
        report = file.read()
    assert report in capsys.readouterr().out
    assert '| softmax | 1 | mIoU 95 | 1 / 4 | 25.0% |' in report
    assert '## gauss against softmax' in report
    with open(osp.join(work_dir, 'one_pixel_study.png'), 'rb') as file:
        assert file.read(8) == PNG
    assert [message.split(': ')[1] for message in mmlogs.messages[:3]] == [
        'training', 'testing', 'attacking']
    assert mmlogs.messages[0] == 'softmax seed 0: training'

    fake.calls.clear()
    mmlogs.messages.clear()
    assert tool.main(argv) == study
    assert fake.calls == []  # resumed: every step's result is there
    folder = osp.join(work_dir, 'softmax', 'seed0')
    assert mmlogs.messages[:3] == [
        f'softmax seed 0: {step} done already ({osp.join(folder, name)})'
        for step, name in (('training', 'iter_200.pth'), ('testing', 'metrics.json'),
                           ('attack', 'one_pixel.json'))
    ]


def test_driver_retrains_a_lost_checkpoint_and_redoes_its_steps(tool, configs, tmp_path,
                                                                monkeypatch):
    fake = FakeSteps(tool)
    monkeypatch.setattr(tool, 'run_command', fake)
    work_dir = str(tmp_path / 'study')
    argv = ['--runs', f'a={configs[0]}', f'b={configs[1]}', '--seeds', '5', '--work-dir',
            work_dir, '--metric', 'aAcc']
    assert tool.main(argv)['pooled']['a']['metric'] == 'aAcc'
    os.remove(osp.join(work_dir, 'b', 'seed5', 'iter_200.pth'))
    fake.calls.clear()
    tool.main(argv)
    assert [command[1] for command, _ in fake.calls] == [tool.TRAIN, tool.TEST, tool.ATTACK]
    assert option(fake.calls[0][0], '--work-dir') == osp.join(work_dir, 'b', 'seed5')
    assert option(fake.calls[2][0], '--label') == 'b'


def test_driver_retrains_an_unfinished_training(tool, configs, tmp_path, monkeypatch):
    fake = FakeSteps(tool)
    monkeypatch.setattr(tool, 'run_command', fake)
    work_dir = str(tmp_path / 'study')
    argv = ['--runs', f'a={configs[0]}', f'b={configs[1]}', '--seeds', '5', '--work-dir',
            work_dir]
    tool.main(argv)
    # an interrupted training leaves last_checkpoint naming an intermediate checkpoint
    os.remove(osp.join(work_dir, 'a', 'seed5', 'trained'))
    fake.calls.clear()
    tool.main(argv)
    assert [command[1] for command, _ in fake.calls] == [tool.TRAIN, tool.TEST, tool.ATTACK]
    assert option(fake.calls[0][0], '--work-dir') == osp.join(work_dir, 'a', 'seed5')


def test_a_missing_metric_stops_before_the_attack(tool, configs, tmp_path, monkeypatch):
    fake = FakeSteps(tool)
    monkeypatch.setattr(tool, 'run_command', fake)
    with pytest.raises(KeyError, match='no test metric mDice; the metrics present are aAcc, mIoU'):
        tool.main(['--runs', f'a={configs[0]}', f'b={configs[1]}', '--seeds', '0',
                   '--work-dir', str(tmp_path / 'study'), '--metric', 'mDice'])
    assert [command[1] for command, _ in fake.calls] == [tool.TRAIN, tool.TEST]


def test_a_failing_step_names_its_command_and_log(tool, configs, tmp_path, monkeypatch):
    failing = tmp_path / 'failing_train.py'
    failing.write_text("import sys\nprint('out of memory')\nsys.exit(3)\n")
    monkeypatch.setattr(tool, 'TRAIN', str(failing))
    work_dir = tmp_path / 'study'
    log = work_dir / 'softmax' / 'seed0' / 'train.log'
    with pytest.raises(RuntimeError,
                       match=re.escape(f'{failing} {configs[0]} --work-dir') + '.*exit status 3; '
                       f'see its log {re.escape(str(log))}$'):
        tool.main(['--runs', f'softmax={configs[0]}', f'gauss={configs[1]}', '--seeds', '0',
                   '--work-dir', str(work_dir)])
    assert log.read_text() == 'out of memory\n'


@pytest.mark.parametrize('runs, extra, message', [
    (['softmax'], [], 'expected LABEL=CONFIG'),
    (['a/b={0}', 'c={1}'], [], 'a label is letters'),
    (['a={0}', 'a={1}'], [], 'the label a is given twice'),
    (['a={0}', 'b=missing.py'], [], 'config file missing.py does not exist'),
    (['a={0}'], [], 'exactly two LABEL=CONFIG'),
    (['a={0}', 'b={1}', 'c={1}'], [], 'exactly two LABEL=CONFIG'),
    (['a={0}', 'b={1}'], ['--attack-args', '--out x.json'], '--out is set by the study'),
    (['a={0}', 'b={1}'], ['--attack-args=--lab=x'], '--lab=x is set by the study'),
    (['a={0}', 'b={1}'], ['--attack-args', '--seed "1'], '--attack-args: No closing'),
])
def test_driver_refuses_bad_arguments(tool, configs, tmp_path, capsys, runs, extra, message):
    with pytest.raises(SystemExit):
        tool.parse_args(['--runs', *(run.format(*configs) for run in runs), '--seeds', '0',
                         '--work-dir', str(tmp_path), *extra])
    assert message in capsys.readouterr().err


def test_driver_needs_distinct_seeds(tool, configs, tmp_path, capsys):
    for seeds in ([], ['0', '0'], ['-1']):
        with pytest.raises(SystemExit):
            tool.parse_args(['--runs', f'a={configs[0]}', f'b={configs[1]}', '--seeds', *seeds,
                             '--work-dir', str(tmp_path)])
    assert capsys.readouterr().err.count('--seeds must be distinct and non-negative') == 2


def test_settings_line_names_what_the_attacks_set():
    local = summary('softmax', [5], 4)
    local.update(boundary_width=2, settings=dict(popsize=20, maxiter=9, search_radius=8))
    rows = [run_row(local, dict(mIoU=90.), 0), run_row(summary('gauss', [], 4), dict(mIoU=90.), 0)]
    pooled = pool_rows(rows)
    lines = format_report(rows, pooled, compare(*pooled.values())).splitlines()
    assert ('Attack: method de, budget per target 200, attack seed 0, boundary width 2, None, '
            'images 4, maxiter 9, popsize 20, search radius 8, None, targets per image 1.') in lines
