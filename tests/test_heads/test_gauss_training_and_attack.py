"""End to end: the Gauss demo config trains through tools/train.py, and the one-pixel attack
tool runs on its checkpoint."""
import importlib.util
import json
import os.path as osp
import subprocess
import sys
from argparse import Namespace

import numpy as np
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from mmslak.datasets import make_tiny_datasets

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
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
    'config', 'checkpoint', 'seed', 'num_images', 'targets_per_image', 'trials', 'perturbation',
    'num_targets', 'num_successes', 'success_rate', 'ci95', 'mean_trials_to_success', 'targets'
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
    path = osp.join(ROOT, 'tools', 'analysis_tools', 'one_pixel_attack.py')
    spec = importlib.util.spec_from_file_location('one_pixel_attack', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gauss_head_trains_and_reports_miou(trained):
    _, checkpoint, output = trained
    assert 'decode.loss_centroid_bce' in output and 'aux.loss_centroid_bce' in output
    assert 'mIoU' in output
    assert osp.isfile(checkpoint)


def test_attack_runs_and_is_reproducible(trained, attack, monkeypatch, tmp_path, capsys):
    root, checkpoint, _ = trained
    monkeypatch.chdir(root)  # the demo config reads data/tiny relative to the working folder
    out = tmp_path / 'attack.json'
    args = [
        GAUSS_DEMO, checkpoint, '--num-images', '2', '--targets-per-image', '3', '--trials', '5',
        '--batch-size', '3', '--seed', '1'
    ]
    summary = attack.main(args + ['--out', str(out)])
    assert 'success rate' in capsys.readouterr().out
    with open(out) as file:
        written = json.load(file)
    assert set(written) == SUMMARY_KEYS and written == summary
    assert summary['num_images'] == 2 and 1 <= summary['num_targets'] <= 6
    assert len(summary['targets']) == summary['num_targets']
    assert summary['num_successes'] == sum(target['success'] for target in summary['targets'])
    low, high = summary['ci95']
    assert 0 <= low <= summary['success_rate'] <= high <= 1
    for target in summary['targets']:
        assert target['success'] == (target['first_success_trial'] is not None)
    assert attack.main(args) == summary


def test_wilson_interval(attack):
    low, high = attack.wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-4) and high == pytest.approx(0.7634, abs=1e-4)
    assert attack.wilson_interval(0, 20)[0] == 0 and attack.wilson_interval(20, 20)[1] == 1
    with pytest.raises(ValueError):
        attack.wilson_interval(0, 0)


def test_attack_refuses_bad_arguments(attack, tmp_path):
    with pytest.raises(SystemExit):
        attack.parse_args([GAUSS_DEMO, 'ckpt.pth', '--trials', '0'])
    with pytest.raises(FileNotFoundError, match='Checkpoint'):
        attack.main([GAUSS_DEMO, str(tmp_path / 'missing.pth')])


class PixelChangeDetector:
    """A stand-in segmentor: class 0 where a pixel differs from ``clean``, class 1 elsewhere."""

    def __init__(self, clean):
        self.clean = clean

    def test_step(self, data):
        return [
            SegDataSample(pred_sem_seg=PixelData(
                data=(image == self.clean).all(0, keepdim=True).long())) for image in data['inputs']
        ]


def test_attack_flips_exactly_the_perturbed_targets(attack):
    image = torch.full((3, 4, 5), 7, dtype=torch.uint8)
    sample = dict(inputs=image,
                  data_samples=SegDataSample(gt_sem_seg=PixelData(data=torch.ones(1, 4, 5).long())))
    args = Namespace(targets_per_image=20, trials=30, batch_size=7, seed=3, device='cpu')
    targets = attack.attack_image(PixelChangeDetector(image), sample, 2, args, ignore_index=255)
    rows, cols, colours = attack.draw_trials(30, 4, 5, np.random.default_rng([3, 2, 0]))
    first_hit = {}
    for trial, (row, col, colour) in enumerate(zip(rows.tolist(), cols.tolist(), colours)):
        if (colour != 7).any():
            first_hit.setdefault((row, col), trial)
    assert len(targets) == 20  # every pixel is correctly classified, so every one is a target
    assert 0 < len(first_hit) < 20
    for target in targets:
        trial = first_hit.get((target['row'], target['col']))
        assert target['success'] == (trial is not None)
        assert target['first_success_trial'] == trial
