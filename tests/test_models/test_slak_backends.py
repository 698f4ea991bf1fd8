"""SLaK on the CPU backend computes what it does on the reference ops; the benchmark runs."""
import copy
import importlib
import json
import os.path as osp
import sys

import pytest
import torch

import mmslak  # noqa: F401
from mmslak.models.backbones import SLaK
from mmslak.ops import use_ops
from mmslak.ops.cpu import depthwise as cpu_depthwise
from mmslak.ops.cpu import onednn
from mmslak.ops.weight_cache import cached_names, clear_weight_cache
from mmslak.registry import MODELS
from ..conftest import OFFICIAL_CKPT

TOOLS = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'analysis_tools')
TINY = dict(type='mmslak.SLaK', arch=dict(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32]),
            kernel_size=[13, 11, 9, 7, 3], layer_scale_init_value=0.5)


def on_torch_ops(model):
    """``model`` (a SLaK backbone), its every forward on the reference ops, as the deprecated
    ``fast_path=False`` asks."""
    model.reference_ops = True
    return model


def pair(**kwargs):
    """The same random network twice, on the backends ``MMSLAK_OPS`` selects and on the
    reference ops; BN statistics non-trivial."""
    torch.manual_seed(0)
    fast = MODELS.build(dict(TINY, **kwargs))
    for name, buffer in fast.named_buffers():
        if name.endswith('running_var'):
            buffer.uniform_(0.5, 2.0)
        elif name.endswith('running_mean'):
            buffer.normal_()
    plain = MODELS.build(dict(TINY, **kwargs))
    plain.load_state_dict(fast.state_dict())
    return fast, on_torch_ops(plain)


def assert_outputs_close(outs, refs, atol):
    assert len(outs) == len(refs)
    for out, ref in zip(outs, refs):
        assert out.shape == ref.shape
        torch.testing.assert_close(out, ref, atol=atol, rtol=0)


@pytest.mark.parametrize('layer_scale', [0.5, 0.])  # 0: no gamma to fold
@pytest.mark.parametrize('deploy', [False, True])
def test_inference_matches_plain_path(deploy, layer_scale, kernel_isa):
    fast, plain = pair(layer_scale_init_value=layer_scale)
    fast.eval()
    plain.eval()
    if deploy:
        fast.switch_to_deploy()
    x = torch.randn(2, 3, 64, 80)
    with torch.no_grad():
        assert_outputs_close(fast(x), plain(x), atol=1e-4 if deploy else 1e-5)


@pytest.mark.skipif(not onednn.ONEDNN, reason='no oneDNN fused ops in this PyTorch')
def test_fused_kernels_are_taken_for_inference(monkeypatch):
    fast, _ = pair()
    calls = []
    original = onednn.fused_linear
    monkeypatch.setattr(onednn, 'fused_linear',
                        lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    x = torch.randn(1, 3, 64, 64)
    fast.train()(x)
    assert not calls  # training: autograd path
    with torch.no_grad():
        fast.eval()(x)
    assert len(calls) == 2 * 5  # two linear layers in each of the five blocks


def test_training_outputs_and_gradients_match_plain_path(kernel_isa):
    fast, plain = pair(drop_path_rate=0.)
    x = torch.randn(2, 3, 48, 48)
    grads = []
    for model in (fast, plain):
        outs = model.train()(x)
        sum(out.square().mean() for out in outs).backward()
        grads.append({name: p.grad for name, p in model.named_parameters()})
    assert_outputs_close(fast(x), plain(x), atol=1e-5)
    for name, grad in grads[1].items():
        torch.testing.assert_close(grads[0][name], grad, atol=1e-6, rtol=1e-4)


def test_eval_with_input_gradients_takes_the_autograd_path():
    """Effective-receptive-field tools differentiate an eval-mode model by its input."""
    fast, plain = pair()
    grads = []
    for model in (fast, plain):
        x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1),
                        requires_grad=True)
        model.eval()(x)[-1].sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_with_cp_matches_plain_path():
    fast, plain = pair(with_cp=True)
    x = torch.randn(2, 3, 48, 48)
    outs = fast.train()(x)
    sum(out.sum() for out in outs).backward()
    assert_outputs_close(outs, plain.train()(x), atol=1e-5)
    assert fast.stages[0][0].pwconv1.weight.grad is not None


@pytest.mark.parametrize('channels_last', [False, True])
def test_outputs_keep_the_input_layout(channels_last):
    fast, _ = pair()
    x = torch.randn(1, 3, 64, 64)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    with torch.no_grad():
        outs = fast.eval()(x.contiguous(memory_format=fmt))
    assert all(out.is_contiguous(memory_format=fmt) for out in outs)


def test_fallback_without_onednn(monkeypatch):
    fast, plain = pair()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = plain.eval()(x)
        with torch.backends.mkldnn.flags(enabled=False):
            assert_outputs_close(fast.eval()(x), expected, atol=1e-5)
        monkeypatch.setattr(onednn, 'ONEDNN', False)
        assert onednn.why_not_onednn(x, (torch.float32, )) is not None
        assert_outputs_close(fast(x), expected, atol=1e-5)


@pytest.mark.skipif(not onednn.dtype_supported(torch.bfloat16), reason='no oneDNN bf16')
def test_bf16_inference_is_close_to_fp32():
    fast, _ = pair()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        refs = fast.eval()(x)
        outs = fast.to(torch.bfloat16)(x.bfloat16())
    for out, ref in zip(outs, refs):
        assert out.dtype == torch.bfloat16
        assert (out.float() - ref).abs().mean() < 0.05


@pytest.mark.skipif(not onednn.dtype_supported(torch.bfloat16), reason='no oneDNN bf16')
def test_bf16_model_runs_the_float32_depthwise_kernel(monkeypatch, kernel_isa):
    fast, _ = pair()
    fast = fast.eval().to(torch.bfloat16)
    x = torch.randn(1, 3, 64, 64).bfloat16()
    widened = []
    original = cpu_depthwise.conv_sum
    monkeypatch.setattr(cpu_depthwise, 'conv_sum',
                        lambda x, *args: widened.append(x.dtype) or original(x, *args))
    with torch.no_grad():
        outs = fast(x)
        assert widened == [torch.float32] * 5  # one call per block, on the widened input
        monkeypatch.setattr(cpu_depthwise, 'why_not_kernel', lambda *args: 'disabled')
        refs = fast(x)  # oneDNN's bfloat16 convolutions
    for out, ref in zip(outs, refs):
        assert out.dtype == torch.bfloat16
        torch.testing.assert_close(out.float(), ref.float(), atol=0.05, rtol=0)  # ~0.02 seen


@pytest.mark.parametrize('ops', ['torch', 'cpu'])
def test_fixture_deploy_form_matches_training_form(ops, fixture_arch, official_reference):
    if ops == 'cpu' and not onednn.ONEDNN:
        pytest.skip('no oneDNN fused ops in this PyTorch: the cpu backend does not run here')

    def build():
        model = MODELS.build(dict(fixture_arch, init_cfg=dict(type='Pretrained',
                                                              checkpoint=OFFICIAL_CKPT)))
        model.init_weights()
        return model.eval()

    training_form, deployed = build(), build()
    deployed.switch_to_deploy()
    x = official_reference['input']
    with torch.no_grad(), use_ops(ops):
        assert_outputs_close(deployed(x), on_torch_ops(copy.deepcopy(training_form))(x), atol=1e-4)
        assert_outputs_close(deployed(x), official_reference['outputs'], atol=1e-4)
        assert_outputs_close(training_form(x), official_reference['outputs'], atol=1e-5)


@pytest.fixture
def benchmark(monkeypatch):
    monkeypatch.syspath_prepend(TOOLS)
    sys.modules.pop('benchmark', None)
    return importlib.import_module('benchmark')


def test_fast_path_is_a_deprecated_alias_of_the_torch_ops(monkeypatch):
    calls = []
    original = onednn.fused_linear
    monkeypatch.setattr(onednn, 'fused_linear',
                        lambda *args, **kwargs: calls.append(1) or original(*args, **kwargs))
    fast, plain = pair()
    with pytest.warns(DeprecationWarning, match=r"use_ops\('torch'\)"):
        alias = MODELS.build(dict(TINY, fast_path=False))
    alias.load_state_dict(fast.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert_outputs_close(alias.eval()(x), plain.eval()(x), atol=0)
    assert not calls


def test_benchmark_backbone_json(benchmark, tmp_path, monkeypatch):
    monkeypatch.setitem(SLaK.arch_settings, 'tiny', TINY['arch'])  # keep the test fast
    out = tmp_path / 'bench.json'
    benchmark.main(['--arch', 'tiny', '--shape', '32', '32', '--runs', '2', '--warmup', '0',
                    '--matmul-size', '64', '--threads', '2', '--json', str(out)])
    report = json.loads(out.read_text())
    assert report['mode'] == 'inference' and report['input_shape'] == [1, 3, 32, 32]
    macs = report['dense_gmacs_per_image']
    assert 0 < macs['deploy'] < macs['train']  # the small kernels merge into the large ones
    assert report['matmul_gflops']['fp32']['best'] > 0
    rows = {(row['impl'], row['form']): row for row in report['rows']}
    assert set(rows) == {('plain', 'train'), ('mmslak', 'train'), ('mmslak', 'deploy')}
    for row in rows.values():
        assert row['min_ms'] <= row['median_ms'] <= row['max_ms']
        assert row['images_per_s'] > 0 and row['ratio_to_floor'] > 0
    assert rows['plain', 'train']['speedup_vs_plain'] == pytest.approx(1.0)


def test_benchmark_op_mode_times_each_stage_and_backend(benchmark, tmp_path, monkeypatch):
    monkeypatch.setitem(SLaK.arch_settings, 'tiny', TINY['arch'])
    out = tmp_path / 'op.json'
    rows = benchmark.main(['--op', '--arch', 'tiny', '--shape', '64', '64', '--runs', '1',
                           '--warmup', '0', '--peak-tflops', '1', '--json', str(out)])
    assert json.loads(out.read_text())['rows'] == rows
    backends = benchmark.op_backends(torch.device('cpu'))
    assert len(rows) == 4 * 2 * len(backends)  # stages x directions x backends, fp32
    first = [row for row in rows if row['stage'] == 0 and row['direction'] == 'forward']
    assert [row['backend'] for row in first] == backends
    # stage 0 at 64 x 64: 16 x 16 maps of int(8 * 1.3) channels, SLaK's 51 x 5, 5 x 51, 5 x 5
    assert first[0]['shape'] == [1, 10, 16, 16]
    assert first[0]['kernels'] == [[51, 5], [5, 51], [5, 5]]
    for row in rows:
        assert row['ms'] > 0 and row['peak_fraction'] == pytest.approx(row['gflops'] / 1e3)
    # the faster PyTorch layout is the native reference
    assert max(r['vs_native'] for r in first if r['backend'].startswith('torch')) == \
        pytest.approx(1.0)


def test_benchmark_config_train_step(benchmark, tmp_path, capsys):
    config = tmp_path / 'tiny_seg.py'
    config.write_text(f"""
default_scope = 'mmseg'
custom_imports = dict(imports=['mmslak'], allow_failed_imports=False)
model = dict(
    type='EncoderDecoder',
    backbone=dict({', '.join(f'{k}={v!r}' for k, v in TINY.items())}, drop_path_rate=0.1),
    decode_head=dict(type='FCNHead', in_channels=41, in_index=3, channels=8, num_convs=1,
                     num_classes=3, norm_cfg=dict(type='BN'),
                     loss_decode=dict(type='CrossEntropyLoss')))
""")
    out = tmp_path / 'step.json'
    benchmark.main(['--config', str(config), '--shape', '64', '64', '--batch', '2',
                    '--train-step', '--runs', '1', '--warmup', '0', '--matmul-size', '64',
                    '--json', str(out)])
    report = json.loads(out.read_text())
    assert report['mode'] == 'train-step'
    assert [(row['impl'], row['form']) for row in report['rows']] == [('plain', 'train'),
                                                                      ('mmslak', 'train')]
    assert 'training step' in capsys.readouterr().out


def test_benchmark_floor_ratio_pairs_each_round_with_its_matmul_rate(benchmark):
    row = ('mmslak', 'deploy', 'fp32')
    times = {row: [1.0, 2.0, 3.0]}  # seconds per round
    rates = {('fp32', 'torch.mm'): [100., 50., 100.], ('fp32', 'oneDNN'): [80., 60., 90.]}
    args = benchmark.parse_args(['--batch', '1'])
    result, = benchmark.summarise([row], times, {row: None}, {'deploy': 50e9}, rates, args)
    # 100 GFLOP per round at 100, 60 and 100 GFLOP/s: floors of 1, 5/3 and 1 s
    assert result['ratio_to_floor'] == pytest.approx(1.2)
    assert result['floor_ms'] == pytest.approx(1000.)
    assert benchmark.summarise_rates(rates) == {
        'fp32': {'torch.mm': 100., 'oneDNN': 80., 'best': 100.}}


def test_benchmark_help(benchmark, capsys):
    with pytest.raises(SystemExit):
        benchmark.main(['--help'])
    assert '--train-step' in capsys.readouterr().out


def test_cached_inference_weights_follow_parameter_changes():
    fast, plain = pair()
    fast.eval()
    plain.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        fast(x)  # fills the caches of the fused path
        block = fast.stages[0][0]
        assert cached_names(block.pwconv1.weight) == {'mlp_packed'}
        assert cached_names(block.large_kernel.vertical.conv.weight) <= {
            'depthwise_folded', *(f'depthwise_packed_{lanes}' for lanes in (8, 16))}
        for model in (fast, plain):
            model.stages[0][0].pwconv2.weight.mul_(3)  # in place: bumps the version counter
            model.stages[1][0].large_kernel.vertical.bn.running_var.add_(1)
        assert_outputs_close(fast(x), plain(x), atol=1e-5)
        state = {key: value + 0.01 * torch.randn_like(value) if value.is_floating_point() else
                 value for key, value in plain.state_dict().items()}
        for model in (fast, plain):
            model.load_state_dict(state)
        assert_outputs_close(fast(x), plain(x), atol=1e-5)
        for model in (fast, plain):  # a write through .data bumps no version counter
            model.stages[2][1].gamma.data.mul_(2)
        clear_weight_cache()
        assert_outputs_close(fast(x), plain(x), atol=1e-5)
        for model in (fast, plain):  # new storage, then back to the old address's size
            for param in model.stages[3][0].parameters():
                param.data = param.data * 1.5
                param.data = param.data.bfloat16().float()
        assert_outputs_close(fast(x), plain(x), atol=1e-5)


def test_a_model_with_cached_inference_weights_copies_and_pickles(tmp_path):
    fast, _ = pair()
    fast.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = fast(x)  # fills the caches with oneDNN tensors, which cannot be copied
        copied = copy.deepcopy(fast)
        torch.save(fast, tmp_path / 'model.pt')
        loaded = torch.load(tmp_path / 'model.pt', weights_only=False)
        for model in (fast, copied, loaded):
            assert_outputs_close(model(x), expected, atol=0)
