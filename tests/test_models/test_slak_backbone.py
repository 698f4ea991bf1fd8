"""The OpenMMLab backbone contract of SLaK: archs, validation, outputs, freezing, cp, sparsity."""
import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

import mmslak  # noqa: F401
from mmslak.registry import MODELS

TINY = dict(type='mmslak.SLaK', arch=dict(depths=[1, 1, 2, 1], dims=[8, 16, 24, 32]),
            kernel_size=[13, 11, 9, 7, 3])


def build(**kwargs):
    model = MODELS.build(dict(TINY, **kwargs))
    model.init_weights()
    return model


@pytest.mark.parametrize('arch,depths,channels', [
    ('tiny', [3, 3, 9, 3], [124, 249, 499, 998]),
    ('small', [3, 3, 27, 3], [124, 249, 499, 998]),
    ('base', [3, 3, 27, 3], [166, 332, 665, 1331]),
])
def test_published_archs(arch, depths, channels):
    model = MODELS.build(dict(type='mmslak.SLaK', arch=arch))
    assert [len(stage) for stage in model.stages] == depths
    assert model.channels == channels
    lk = model.stages[0][0].large_kernel
    assert lk.vertical.conv.weight.shape == (124 if arch != 'base' else 166, 1, 51, 5)
    assert lk.horizontal.conv.weight.shape[2:] == (5, 51)
    assert lk.small.conv.weight.shape[2:] == (5, 5)
    assert model.stages[3][0].large_kernel.vertical.conv.weight.shape[2:] == (13, 5)


def test_published_tiny_parameter_count():
    model = MODELS.build(dict(type='mmslak.SLaK', arch='tiny'))
    params = sum(p.numel() for p in model.parameters())
    assert 45e6 < params < 55e6  # dense SLaK-T backbone: ~30M non-zero at 40% sparsity


@pytest.mark.parametrize('kwargs,message', [
    (dict(kernel_size=[13, 11, 8, 7, 3]), 'odd'),
    (dict(kernel_size=[13, 11, 9, 3, 5]), 'smaller than the small kernel'),
    (dict(kernel_size=[13, 11, 9, 3]), '5 entries'),
    (dict(arch='huge'), 'Unknown SLaK arch'),
    (dict(arch=dict(depths=[1, 1, 1, 1])), 'missing'),
    (dict(arch=dict(depths=[1, 1, 1], dims=[8, 8, 8])), '4 entries'),
    (dict(out_indices=(4, )), 'out_indices'),
    (dict(frozen_stages=4), 'frozen_stages'),
    (dict(decompose=False, Decom=True), 'more than once'),
])
def test_invalid_settings_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MODELS.build(dict(TINY, **kwargs))


def test_unknown_argument_raises():
    with pytest.raises(TypeError, match='unexpected keyword'):
        MODELS.build(dict(TINY, kernel=3))


def test_official_aliases():
    model = MODELS.build(dict(type='mmslak.SLaK', depths=[1, 1, 1, 1], dims=[8, 8, 8, 8],
                              kernel_size=[7, 7, 7, 7, 3], LoRA=False, in_chans=1))
    assert not model.decompose and model.downsample_layers[0][0].in_channels == 1
    assert model.stages[0][0].large_kernel.square.conv.weight.shape[2:] == (7, 7)


@pytest.mark.parametrize('size', [(32, 32), (64, 48), (37, 101)])
def test_any_input_of_at_least_32(size):
    model = build().eval()
    outs = model(torch.randn(1, 3, *size))
    h, w = size
    for i, out in enumerate(outs):
        h, w = (h // 4, w // 4) if i == 0 else (h // 2, w // 2)
        assert out.shape == (1, model.channels[i], h, w)


def test_small_input_raises():
    with pytest.raises(ValueError, match='at least 32 x 32'):
        build().eval()(torch.randn(1, 3, 31, 64))


def test_out_indices_negative_and_norms():
    model = build(out_indices=(-1, 1)).eval()
    assert model.out_indices == [1, 3]
    assert hasattr(model, 'norm1') and hasattr(model, 'norm3') and not hasattr(model, 'norm0')
    outs = model(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [model.channels[1], model.channels[3]]
    # the outputs are channels-first LayerNorm'ed
    torch.testing.assert_close(outs[0].mean(1), torch.zeros_like(outs[0][:, 0]), atol=1e-5,
                               rtol=0)


def test_frozen_stages():
    model = build(frozen_stages=1).train()
    for i in range(4):
        frozen = i <= 1
        for module in (model.downsample_layers[i], model.stages[i]):
            assert all(p.requires_grad != frozen for p in module.parameters())
            assert all(m.training != frozen for m in module.modules() if isinstance(m, _BatchNorm))
    model(torch.randn(2, 3, 32, 32))[-1].sum().backward()
    assert model.stages[0][0].pwconv1.weight.grad is None
    assert model.stages[2][0].pwconv1.weight.grad is not None


def test_norm_eval():
    model = build(norm_eval=True).train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert bns and not any(bn.training for bn in bns)
    before = bns[0].running_mean.clone()
    model(torch.randn(2, 3, 32, 32))
    assert torch.equal(before, bns[0].running_mean)
    assert model.stages[0][0].pwconv1.training


def test_with_cp_identical_outputs_and_gradients():
    torch.manual_seed(0)
    plain = build().train()
    checkpointed = build(with_cp=True).train()
    checkpointed.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    grads = []
    for model in (plain, checkpointed):
        outs = model(x)
        sum(o.square().mean() for o in outs).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        model.zero_grad()
    outs_plain, outs_cp = plain(x), checkpointed(x)
    for a, b in zip(outs_plain, outs_cp):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5)


def test_drop_path_rates_increase():
    model = build(drop_path_rate=0.3)
    rates = [getattr(b.drop_path, 'drop_prob', 0.) for s in model.stages for b in s]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.3)
    assert rates == sorted(rates)


def test_syncbn_norm_cfg():
    model = MODELS.build(dict(TINY, norm_cfg=dict(type='SyncBN')))
    assert isinstance(model.stages[0][0].large_kernel.vertical.bn, torch.nn.SyncBatchNorm)


def test_deploy_switch_is_exact_on_random_bn(torch_ops):
    # the reference ops: the CPU backend folds BNs on the fly at inference, which would make the
    # training form and the deploy form the same computation
    model = build(layer_scale_init_value=1.).eval()
    for name, buffer in model.named_buffers():
        if name.endswith('running_var'):
            buffer.uniform_(0.5, 2.0)
        elif name.endswith('running_mean'):
            buffer.normal_()
    x = torch.randn(1, 3, 64, 80)
    with torch.no_grad():
        before = model(x)
        model.switch_to_deploy()
        after = model(x)
    for a, b in zip(before, after):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    assert MODELS.build(dict(TINY, deploy=True)).state_dict().keys() == model.state_dict().keys()


def test_broken_fusion_would_be_caught(monkeypatch, torch_ops):
    """The deploy check compares against unfused BNs: a fusion that drops BN is visible."""
    from mmslak.models.layers import DepthwiseConvBN
    monkeypatch.setattr(DepthwiseConvBN, 'fuse',
                        lambda self: (self.conv.weight.clone(), torch.zeros_like(self.bn.bias)))
    model = build(layer_scale_init_value=1.).eval()
    for name, buffer in model.named_buffers():
        if name.endswith('running_var'):
            buffer.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[-1]
        model.switch_to_deploy()
        assert (model(x)[-1] - before).abs().max() > 1e-3
