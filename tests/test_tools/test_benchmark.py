"""benchmark.py's precisions and layouts: planning, refusals, and tiny runs on the CPU."""
import importlib
import json
import os.path as osp
import sys
from types import SimpleNamespace

import pytest
import torch

from mmslak.analysis.op_profile import LABEL, event_category
from mmslak.models.backbones import SLaK
from mmslak.ops import kernel_isa
from mmslak.utils.torch_compat import autocast_supports
from ..conftest import needs_cpu_grad_scaler, needs_cpu_half_matmul

TOOLS = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis_tools')
TINY_ARCH = dict(depths=[1, 1, 1, 1], dims=[8, 8, 16, 16])
CPU = torch.device('cpu')


@pytest.fixture
def benchmark(monkeypatch):
    monkeypatch.syspath_prepend(TOOLS)
    sys.modules.pop('benchmark', None)
    monkeypatch.setitem(SLaK.arch_settings, 'tiny', TINY_ARCH)  # keep the runs fast
    return importlib.import_module('benchmark')


@pytest.fixture
def all_supported(benchmark, monkeypatch):
    """Every precision counts as native, so that fp16 rows run on any CPU (slowly)."""
    monkeypatch.setattr(benchmark, 'unsupported_reason', lambda device, precision: None)


def run(benchmark, tmp_path, *argv):
    out = tmp_path / 'bench.json'
    benchmark.main(['--arch', 'tiny', '--shape', '32', '32', '--runs', '1', '--warmup', '0',
                    '--matmul-size', '32', '--json', str(out), *argv])
    return json.loads(out.read_text())


def test_plan_crosses_precisions_forms_and_layouts(benchmark, all_supported):
    args = benchmark.parse_args(['--dtype', 'fp32', 'amp-fp16', '--memory-format', 'nchw',
                                 'channels_last'])
    rows = benchmark.plan_rows(args, CPU)
    assert rows[:5] == [('plain', 'train', 'fp32', 'nchw'), ('mmslak', 'train', 'fp32', 'nchw'),
                        ('mmslak', 'train', 'fp32', 'channels_last'),
                        ('mmslak', 'deploy', 'fp32', 'nchw'),
                        ('mmslak', 'deploy', 'fp32', 'channels_last')]
    assert len(rows) == 10 and rows[5] == ('plain', 'train', 'amp-fp16', 'nchw')
    args = benchmark.parse_args(['--train-step', '--no-plain', '--dtype', 'amp-bf16'])
    assert benchmark.plan_rows(args, CPU) == [('mmslak', 'train', 'amp-bf16', 'nchw')]


def test_plan_skips_precisions_without_native_kernels(benchmark, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *args, **kwargs: False)
    cuda = torch.device('cuda')
    assert benchmark.unsupported_reason(cuda, 'amp-bf16') == 'this GPU has no bfloat16 support'
    assert benchmark.unsupported_reason(cuda, 'fp16') is None
    assert benchmark.unsupported_reason(CPU, 'fp32') is None
    fp16 = benchmark.unsupported_reason(CPU, 'amp-fp16')
    assert (fp16 is None) == (benchmark.onednn_native(torch.float16) and
                              autocast_supports('cpu', torch.float16))
    assert fp16 is None or 'AVX512-FP16' in fp16 or 'autocast on the CPU' in fp16
    args = benchmark.parse_args(['--dtype', 'fp32', 'bf16', '--memory-format', 'channels_last'])
    rows = benchmark.plan_rows(args, cuda)
    assert {row.dtype for row in rows} == {'fp32'}
    assert 'skipping bf16: this GPU has no bfloat16 support' in capsys.readouterr().out
    # a CPU without AVX512-BF16 or AMX (AVX2 CPUs): bf16 is not faster there, and said so
    monkeypatch.setattr(benchmark, 'onednn_native', lambda dtype: dtype == torch.float32)
    assert 'slower than fp32, so time fp32 here' in benchmark.unsupported_reason(CPU, 'amp-bf16')


@pytest.mark.parametrize('argv,message', [
    (['--train-step', '--dtype', 'fp32', 'bf16'], 'amp-bf16'),
    (['--train-step', '--dtype', 'fp16'], 'amp-fp16'),
    (['--form', 'deploy', '--train-step'], '--form train'),
    (['--memory-format', 'nhwc'], 'invalid choice'),
    (['--dtype', 'fp64'], 'invalid choice'),
    (['--onnx', '--train-step'], '--onnx times float32 CPU inference'),
    (['--onnx', '--dtype', 'bf16'], 'keep fp32 in --dtype'),
])
def test_refused_arguments(benchmark, capsys, argv, message):
    with pytest.raises(SystemExit):
        benchmark.parse_args(argv)
    assert message in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the refusal without CUDA')
def test_cuda_refused_without_a_device(benchmark, capsys):
    with pytest.raises(SystemExit):
        benchmark.parse_args(['--device', 'cuda'])
    assert 'CUDA is not available' in capsys.readouterr().err


@needs_cpu_half_matmul
def test_inference_rows_in_each_precision_and_layout(benchmark, all_supported, tmp_path):
    report = run(benchmark, tmp_path, '--dtype', 'fp32', 'fp16', 'amp-bf16', '--memory-format',
                 'nchw', 'channels_last')
    rows = {(r['impl'], r['form'], r['dtype'], r['memory_format']): r for r in report['rows']}
    assert len(rows) == 15
    assert set(report['matmul_gflops']) == {'fp32', 'fp16', 'bf16'}  # amp-bf16 computes in bf16
    for (impl, _, dtype, _), row in rows.items():
        assert row['median_ms'] > 0 and row['floor_ms'] > 0
        assert row['speedup_vs_plain'] == pytest.approx(
            rows['plain', 'train', dtype, 'nchw']['median_ms'] / row['median_ms'])


@needs_cpu_grad_scaler
def test_amp_training_steps_scale_fp16_losses(benchmark, all_supported, tmp_path, monkeypatch):
    steps = []

    class Scaler(torch.amp.GradScaler):

        def step(self, optimizer, *args, **kwargs):
            steps.append(self._device)
            return super().step(optimizer, *args, **kwargs)

    monkeypatch.setattr(torch.amp, 'GradScaler', Scaler)
    report = run(benchmark, tmp_path, '--train-step', '--batch', '2', '--dtype', 'fp32',
                 'amp-fp16', 'amp-bf16', '--memory-format', 'channels_last')
    assert report['mode'] == 'train-step'
    assert [(r['impl'], r['dtype'], r['memory_format']) for r in report['rows']] == [
        ('plain', 'fp32', 'nchw'), ('mmslak', 'fp32', 'channels_last'),
        ('plain', 'amp-fp16', 'nchw'), ('mmslak', 'amp-fp16', 'channels_last'),
        ('plain', 'amp-bf16', 'nchw'), ('mmslak', 'amp-bf16', 'channels_last')]
    assert steps == ['cpu'] * 4  # the two fp16 rows, timed once and probed for memory once


@pytest.mark.parametrize('argv', [['--form', 'deploy'], ['--train-step', '--batch', '2']])
def test_profile_breaks_each_row_down_by_kind_of_operation(benchmark, tmp_path, capsys, argv):
    report = run(benchmark, tmp_path, *argv, '--profile', '1')
    out = capsys.readouterr().out
    assert f"CPU kernels: depthwise {report['cpu_kernels']['depthwise']}, aten " in out
    assert report['cpu_kernels']['depthwise'] == (kernel_isa() or 'oneDNN')
    assert 'where the time goes' in out
    for row in report['rows']:
        ms = row['profile_ms']
        assert set(ms) == {*benchmark.CATEGORIES, 'total'}
        for category in ('depthwise', 'linear', 'norm/layout', 'stem/downsample'):
            assert ms[category] > 0, (row['impl'], category)
        assert (ms['optimizer'] > 0) == ('--train-step' in argv)
        assert sum(ms[c] for c in benchmark.CATEGORIES) >= ms['total'] * 0.999


def test_profile_attributes_time_by_enclosing_module_then_operator():
    def event(name, parent=None):
        return SimpleNamespace(name=name, cpu_parent=parent)

    block = event('aten::add')
    kernel = event(LABEL + 'depthwise', block)
    assert event_category(event('aten::copy_', kernel)) == 'depthwise'  # the module decides
    norm = event(LABEL + 'norm/layout', event(LABEL + 'stem/downsample'))
    assert event_category(event('aten::layer_norm', norm)) == 'stem/downsample'  # the outermost
    assert event_category(event('aten::copy_', block)) == 'norm/layout'
    assert event_category(event('mkldnn::_linear_pointwise', block)) == 'linear'
    backward = event('autograd::engine::evaluate_function: _DepthwiseConvsBackward')
    assert event_category(event('aten::zeros_like', backward)) == 'depthwise'
    assert event_category(event('aten::mul_', event('Optimizer.step#AdamW.step'))) == 'optimizer'
    assert event_category(event('aten::add_', block)) == 'other'


def test_onnx_row_times_the_export_in_onnx_runtime(benchmark, tmp_path, capsys):
    pytest.importorskip('onnxruntime', reason='the deploy extra (make setup installs it)')
    report = run(benchmark, tmp_path, '--form', 'deploy', '--onnx', '--profile', '1')
    rows = {r['impl']: r for r in report['rows']}
    assert set(rows) == {'plain', 'mmslak', 'onnxruntime'}
    onnx = rows['onnxruntime']
    assert (onnx['form'], onnx['dtype'], onnx['memory_format']) == ('deploy', 'fp32', 'nchw')
    assert onnx['median_ms'] > 0 and onnx['speedup_vs_plain'] > 0
    assert 'profile_ms' not in onnx and 'profile_ms' in rows['mmslak']
    assert 'onnxruntime  deploy' in capsys.readouterr().out
