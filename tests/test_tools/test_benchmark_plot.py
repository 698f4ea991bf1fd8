"""benchmark.py --plot: the measured rows as a bar chart (the figures of docs/en/notes)."""
import importlib
import os.path as osp
import sys

import pytest

from mmslak.models.backbones import SLaK

TOOLS = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis_tools')


@pytest.fixture
def benchmark(monkeypatch):
    monkeypatch.syspath_prepend(TOOLS)
    sys.modules.pop('benchmark', None)
    monkeypatch.setitem(SLaK.arch_settings, 'tiny', dict(depths=[1, 1, 1, 1], dims=[8, 8, 16, 16]))
    return importlib.import_module('benchmark')


def test_plot_draws_the_rows(benchmark, tmp_path, capsys):
    pytest.importorskip('matplotlib')
    from PIL import Image
    out = tmp_path / 'bench.png'
    benchmark.main(['--arch', 'tiny', '--shape', '32', '32', '--runs', '1', '--warmup', '0',
                    '--matmul-size', '32', '--form', 'both', '--plot', str(out)])
    assert f'plot written to {out}' in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.format == 'PNG' and image.size[0] > 400 and image.size[1] > 100


def test_plot_refused_with_op(benchmark, capsys):
    with pytest.raises(SystemExit):
        benchmark.main(['--op', '--plot', 'x.png'])
    assert '--plot draws the model rows' in capsys.readouterr().err
