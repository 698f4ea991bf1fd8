"""tools/analysis_tools/visualize_erf.py and the ERF helpers."""
import json

import mmcv
import numpy as np
import pytest

from mmslak.analysis import high_contribution_area_ratios
from .conftest import SEG_CONFIG, load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/analysis_tools/visualize_erf.py')


def test_area_ratios_of_known_matrices():
    point = np.zeros((9, 9))
    point[4, 4] = 1
    assert high_contribution_area_ratios(point) == {t: 1 / 81 for t in (0.2, 0.3, 0.5, 0.99)}
    ratios = high_contribution_area_ratios(np.ones((101, 101)), (0.2, 0.5, 0.99))
    assert ratios[0.2] == pytest.approx(0.2, abs=0.04)
    assert ratios[0.5] == pytest.approx(0.5, abs=0.04)
    assert ratios[0.99] == 1.


def test_config_with_small_kernel_baseline(tool, tmp_path, capsys):
    out_dir = tmp_path / 'erf'
    summary = tool.main([SEG_CONFIG, '--input-size', '96', '--num-images', '2',
                         '--compare-small-kernel', '--out-dir', str(out_dir)])
    printed = capsys.readouterr().out
    assert 'random (untrained) weights' in printed and 't=99%' in printed
    for name in ('slak', 'small_kernel_7x7'):
        matrix = np.load(out_dir / f'erf_{name}.npy')
        assert matrix.shape == (96, 96) and (matrix >= 0).all() and matrix.sum() > 0
        ratios = list(summary['models'][name]['area_ratio'].values())
        assert ratios == sorted(ratios) and 0 < ratios[0] < ratios[-1] <= 1
    assert '7-7-7-7 / small 7 (square)' in summary['models']['small_kernel_7x7']['backbone']
    assert '13-11-9-7 / small 3 (decomposed)' in summary['models']['slak']['backbone']
    assert json.loads((out_dir / 'erf_area_ratios.json').read_text()) == summary
    figure = mmcv.imread(str(out_dir / 'erf.png'))
    assert figure.shape[1] > figure.shape[0]  # two panels side by side


def test_image_folder_and_checkpoint(tool, tmp_path, image_dir, seg_checkpoint):
    summary = tool.main([SEG_CONFIG, '--images', image_dir, '--checkpoint', seg_checkpoint[0],
                         '--kernel-size', '13', '11', '9', '7', '3', '--input-size', '64',
                         '--out-dir', str(tmp_path / 'erf')])
    assert summary['images'].startswith('2 images of')
    assert summary['models']['slak']['weights'] == f'weights of {seg_checkpoint[0]}'
    assert np.load(tmp_path / 'erf' / 'erf_slak.npy').shape == (64, 64)


def test_errors(tool, tmp_path, non_slak_config, classifier_config):
    with pytest.raises(FileNotFoundError, match='Image folder not found'):
        tool.main(['--arch', 'tiny', '--images', str(tmp_path / 'none')])
    with pytest.raises(FileNotFoundError, match='No image'):
        tool.main(['--arch', 'tiny', '--images', str(tmp_path)])
    with pytest.raises(ValueError, match='not a SLaK backbone'):
        tool.main([non_slak_config])
    with pytest.raises(ValueError, match='neither an mmseg nor an mmdet'):
        tool.main([classifier_config])


def test_help(tool, capsys):
    with pytest.raises(SystemExit):
        tool.main(['--help'])
    assert 'effective receptive field' in capsys.readouterr().out
