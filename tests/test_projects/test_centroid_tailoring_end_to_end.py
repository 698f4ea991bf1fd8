"""End to end: the Gauss demo config trains through tools/train.py, and the project's one-pixel
attack tool runs on its checkpoint."""
import json
import os.path as osp
import subprocess
import sys

import pytest

from mmslak.datasets import make_tiny_datasets
from .conftest import ROOT, load_tool

GAUSS_DEMO = osp.join(ROOT, 'configs', 'demo',
                      'slak-nano_upernet-gauss_1xb8-200iter_tiny-ade20k-128x128.py')
SHORT = [
    'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'train_dataloader.batch_size=2',
    'randomness.seed=0', 'default_hooks.logger.interval=1'
] + [
    f'{loader}.{key}' for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader')
    for key in ('num_workers=0', 'persistent_workers=False')
]
SUMMARY_KEYS = {
    'config', 'checkpoint', 'label', 'task', 'method', 'seed', 'num_images', 'targets_per_image',
    'boundary_width', 'settings', 'max_budget', 'perturbation', 'num_targets', 'num_successes',
    'success_rate', 'ci95', 'mean_evaluations_to_success', 'median_evaluations_to_success',
    'total_evaluations', 'seconds', 'targets'
}


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A folder with a tiny ADE20K and a Gauss model trained on it for 2 iterations.

    Returns:
        tuple[Path, str, str]: The folder, the checkpoint and what the training printed.
    """
    root = tmp_path_factory.mktemp('gauss')
    make_tiny_datasets(str(root / 'data' / 'tiny'), which=('ade20k', ), num_train=8, num_val=4)
    work_dir = root / 'work_dir'
    result = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools/train.py'), GAUSS_DEMO, '--work-dir',
        str(work_dir), '--cfg-options', *SHORT
    ],
                            cwd=root,
                            capture_output=True,
                            text=True,
                            timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    return root, str(work_dir / 'iter_2.pth'), output


@pytest.fixture(scope='module')
def attack():
    """The attack tool, imported as a module from its script."""
    return load_tool('attack')


def test_gauss_head_trains_and_reports_miou(trained):
    _, checkpoint, output = trained
    assert 'decode.loss_centroid_bce' in output and 'aux.loss_centroid_bce' in output
    assert 'mIoU' in output
    assert osp.isfile(checkpoint)


@pytest.mark.parametrize('method', [['--method', 'random', '--trials', '5', '--batch-size', '3'],
                                    ['--popsize', '5', '--maxiter', '1'],
                                    ['--popsize', '5', '--maxiter', '1', '--search-radius', '3',
                                     '--boundary-width', '2']])
def test_attack_runs_and_is_reproducible(trained, attack, method, monkeypatch, tmp_path, capsys):
    root, checkpoint, _ = trained
    monkeypatch.chdir(root)  # the demo config reads data/tiny relative to the working folder
    out = tmp_path / 'attack.json'
    args = [GAUSS_DEMO, checkpoint, '--num-images', '2', '--targets-per-image', '2', '--seed', '1'
            ] + method
    summary = attack.main(args + ['--out', str(out), '--plot', str(tmp_path / 'curve.png')])
    assert 'success rate' in capsys.readouterr().out
    assert osp.isfile(tmp_path / 'curve.png')
    with open(out) as file:
        written = json.load(file)
    assert set(written) == SUMMARY_KEYS and written['targets'] == summary['targets']
    assert summary['num_images'] == 2 and 1 <= summary['num_targets'] <= 4
    expected_method = 'random' if '--trials' in method else 'de'
    assert summary['task'] == 'mmseg' and summary['method'] == expected_method
    assert summary['num_successes'] == sum(target['success'] for target in summary['targets'])
    low, high = summary['ci95']
    assert 0 <= low <= summary['success_rate'] <= high <= 1
    for target in summary['targets']:
        assert 1 <= target['evaluations'] <= summary['max_budget']
        if '--search-radius' in method:  # the changed pixel lies near the target pixel
            x, y = target['candidate'][:2]
            assert abs(x - target['col']) <= 3 and abs(y - target['row']) <= 3
    if '--boundary-width' in method:
        assert summary['boundary_width'] == 2
    again = attack.main(args)
    assert again['targets'] == summary['targets']


def test_attack_refuses_bad_arguments(attack, tmp_path):
    with pytest.raises(SystemExit):
        attack.parse_args([GAUSS_DEMO, 'ckpt.pth', '--trials', '0'])
    with pytest.raises(FileNotFoundError, match='Checkpoint'):
        attack.main([GAUSS_DEMO, str(tmp_path / 'missing.pth')])
