"""Faithfulness to the official SLaK weights and every checkpoint format."""
import re

import pytest
import torch

import mmslak  # noqa: F401
from mmslak.checkpoint import load_weights
from mmslak.models.backbones.slak_checkpoint import likely_causes
from mmslak.registry import MODELS
from mmslak.utils import safe_load
from ..conftest import OFFICIAL_CKPT


def build(cfg, checkpoint=None, prefix=''):
    if checkpoint is not None:
        cfg = dict(cfg, init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix=prefix))
    model = MODELS.build(cfg)
    model.init_weights()
    return model.eval()


def official_state_dict():
    # safe_load allows the file's argparse.Namespace on every torch (safe_globals needs >= 2.5)
    return safe_load(OFFICIAL_CKPT)['model']


def assert_matches_reference(model, reference, atol):
    with torch.no_grad():
        outputs = model(reference['input'])
    assert len(outputs) == len(reference['outputs'])
    for out, ref in zip(outputs, reference['outputs']):
        assert out.shape == ref.shape
        assert (out - ref).abs().max().item() <= atol


def test_official_imagenet_file_matches_reference(fixture_arch, official_reference):
    assert official_reference['config']['dims'] == fixture_arch['arch']['dims']
    model = build(fixture_arch, OFFICIAL_CKPT)
    assert_matches_reference(model, official_reference, atol=1e-5)


def test_deploy_form_matches_reference(fixture_arch, official_reference):
    model = build(fixture_arch, OFFICIAL_CKPT)
    model.switch_to_deploy()
    model.switch_to_deploy()  # a second call is harmless
    lk = model.stages[0][0].large_kernel
    assert lk.small is None and lk.vertical.bias is not None
    assert lk.vertical.weight.shape[2:] == (51, 5) and lk.horizontal.weight.shape[2:] == (5, 51)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert_matches_reference(model, official_reference, atol=1e-4)


def test_deploy_checkpoint_loads_into_deploy_model(fixture_arch, official_reference, tmp_path):
    model = build(fixture_arch, OFFICIAL_CKPT)
    model.switch_to_deploy()
    path = tmp_path / 'deploy.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in model.state_dict().items()}}, path)
    deployed = build(dict(fixture_arch, deploy=True), str(path), prefix='backbone.')
    assert_matches_reference(deployed, official_reference, atol=1e-4)
    with pytest.raises(ValueError, match='deploy=True'):
        build(fixture_arch, str(path), prefix='backbone.')


def test_switch_to_deploy_refuses_training_mode(fixture_arch):
    model = MODELS.build(fixture_arch)
    with pytest.raises(RuntimeError, match='eval mode'):
        model.train().switch_to_deploy()


@pytest.mark.parametrize('layout', ['downstream', 'module_prefix', 'old_decom_names', 'bare'])
def test_official_checkpoint_layouts(layout, fixture_arch, official_reference, tmp_path):
    state_dict = official_state_dict()
    prefix = ''
    if layout == 'downstream':  # an official mmseg/mmdet checkpoint
        checkpoint = {'meta': {'mmcv_version': '1.4.0'},
                      'state_dict': {'backbone.' + k: v for k, v in state_dict.items()
                                     if not re.match(r'(norm|head)\.', k)}}
        checkpoint['state_dict']['decode_head.conv_seg.weight'] = torch.zeros(3, 3, 1, 1)
        prefix = 'backbone.'
    elif layout == 'module_prefix':
        checkpoint = {'model': {'module.' + k: v for k, v in state_dict.items()}}
    elif layout == 'old_decom_names':
        checkpoint = {'model': {k.replace('LoRA1', 'Decom1').replace('LoRA2', 'Decom2'): v
                                for k, v in state_dict.items()}}
    else:
        checkpoint = state_dict
    path = tmp_path / f'{layout}.pth'
    torch.save(checkpoint, path)
    model = build(fixture_arch, str(path), prefix)
    assert_matches_reference(model, official_reference, atol=1e-5)


def test_dense_kernel_checkpoint(tmp_path):
    """Official dense kernels (``lkb_origin``, ``decompose=False``) load and compute the same."""
    cfg = dict(type='mmslak.SLaK', arch=dict(depths=[1, 1, 1, 1], dims=[8, 8, 8, 8]),
               kernel_size=[13, 11, 9, 7, 3], decompose=False)
    source = build(cfg)
    for name, buffer in source.named_buffers():
        if name.endswith('running_var'):
            buffer.uniform_(0.5, 2.0)
    official = {k.replace('.square.', '.lkb_origin.').replace('.small.', '.small_conv.'): v
                for k, v in source.state_dict().items()}
    assert any('lkb_origin' in k for k in official)
    path = tmp_path / 'dense.pth'
    torch.save({'model': official}, path)
    loaded = build(cfg, str(path))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for a, b in zip(source(x), loaded(x)):
            assert torch.equal(a, b)
    with pytest.raises(ValueError, match='decompose=False'):
        build(dict(cfg, decompose=True), str(path))
    loaded.switch_to_deploy()
    with torch.no_grad():
        for a, b in zip(source(x), loaded(x)):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)


def test_width_mismatch_raises(fixture_arch):
    with pytest.raises(ValueError, match='width_factor') as error:
        build(dict(fixture_arch, width_factor=1.0), OFFICIAL_CKPT)
    assert 'downsample_layers.0.0.weight' in str(error.value)


def test_kernel_mismatch_raises(fixture_arch):
    with pytest.raises(ValueError, match='kernel sizes'):
        build(dict(fixture_arch, kernel_size=[31, 29, 27, 13, 5]), OFFICIAL_CKPT)


def test_depth_mismatch_raises(fixture_arch):
    with pytest.raises(ValueError, match='depths'):
        build(dict(fixture_arch, arch=dict(depths=[1, 1, 3, 1], dims=[16, 32, 64, 128])),
              OFFICIAL_CKPT)


def test_missing_prefix_is_explained(fixture_arch, tmp_path):
    path = tmp_path / 'seg.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in official_state_dict().items()}},
               path)
    with pytest.raises(ValueError, match="prefix='backbone.'"):
        build(fixture_arch, str(path))
    with pytest.raises(ValueError, match='No key of the checkpoint starts with'):
        build(fixture_arch, str(path), prefix='model.backbone.')


def test_pretrained_alias(fixture_arch, official_reference):
    cfg = {k: v for k, v in fixture_arch.items() if k != 'arch'}
    cfg.update(depths=[1, 1, 2, 1], dims=[16, 32, 64, 128], Decom=True, pretrained=OFFICIAL_CKPT)
    cfg.pop('decompose')
    model = MODELS.build(cfg)
    model.init_weights()
    assert_matches_reference(model.eval(), official_reference, atol=1e-5)


def test_official_file_needs_the_namespace_allowance():
    """argparse.Namespace is allowed by mmslak's loader only: torch's allow-list is as it was."""
    with pytest.raises(Exception, match='Namespace'):
        torch.load(OFFICIAL_CKPT, weights_only=True)


def test_pretrained_without_checkpoint_trains_from_scratch_and_says_so(fixture_arch, mmlogs):
    """The recipes ship ``Pretrained`` with ``checkpoint=None`` for the user to fill in."""
    model = MODELS.build(dict(fixture_arch, init_cfg=dict(type='Pretrained', checkpoint=None)))
    model.init_weights()
    assert 'trained from scratch' in mmlogs.text
    linear = model.stages[2][0].pwconv1
    assert abs(linear.weight.std().item() - 0.02) < 0.002  # trunc_normal(std=.02) as official
    assert not linear.bias.any()


def save_modified(tmp_path, name, changes):
    """The official fixture with some tensors replaced (None: removed); return its path."""
    state_dict = official_state_dict()
    for key, value in changes.items():
        if value is None:
            state_dict.pop(key)
        else:
            state_dict[key] = value
    path = tmp_path / name
    torch.save({'model': state_dict}, path)
    return str(path)


BN_VAR = 'stages.1.0.large_kernel.LoRA1.bn.running_var'


def test_non_finite_weights_are_refused(fixture_arch, tmp_path):
    nan = torch.full_like(official_state_dict()[BN_VAR], float('nan'))
    path = save_modified(tmp_path, 'nan.pth', {BN_VAR: nan})
    with pytest.raises(ValueError, match='NaN or infinite values in 1 tensor') as error:
        build(fixture_arch, path)
    assert path in str(error.value)
    assert 'stages.1.0.large_kernel.vertical.bn.running_var' in str(error.value)


def test_non_finite_weights_load_when_allowed(fixture_arch, tmp_path, mmlogs):
    inf = torch.full_like(official_state_dict()['stages.0.0.gamma'], float('inf'))
    path = save_modified(tmp_path, 'inf.pth', {'stages.0.0.gamma': inf})
    model = MODELS.build(dict(fixture_arch, init_cfg=dict(type='Pretrained', checkpoint=path,
                                                          allow_non_finite=True)))
    model.init_weights()
    assert torch.isinf(model.stages[0][0].gamma).all()
    assert 'loading them anyway' in mmlogs.text


def test_integer_weights_are_refused(fixture_arch, tmp_path):
    gamma = official_state_dict()['stages.0.0.gamma']
    path = save_modified(tmp_path, 'int.pth', {'stages.0.0.gamma': gamma.long()})
    with pytest.raises(ValueError, match=r'stages.0.0.gamma \(torch.int64 in the file, '
                       r'torch.float32 in the model\)'):
        build(fixture_arch, path)


def test_a_single_missing_key_is_not_blamed_on_the_depths(fixture_arch, tmp_path):
    path = save_modified(tmp_path, 'edited.pth', {'stages.1.0.gamma': None})
    with pytest.raises(ValueError, match='single tensors are missing from the checkpoint '
                       r'\(an incomplete or edited file\): stages.1.0.gamma') as error:
        build(fixture_arch, path)
    assert 'depths' not in str(error.value)


def test_whole_blocks_are_blamed_on_the_depths(fixture_arch):
    with pytest.raises(ValueError, match=r'whole blocks missing or extra: stages.2.1'):
        build(dict(fixture_arch, arch=dict(depths=[1, 1, 1, 1], dims=[16, 32, 64, 128])),
              OFFICIAL_CKPT)


def test_likely_causes_of_single_and_whole_keys(fixture_arch):
    backbone = MODELS.build(fixture_arch)
    block = [key for key in backbone.state_dict() if key.startswith('stages.2.1.')]
    assert 'number of blocks' in likely_causes(backbone, block, [], [])[0]
    single = likely_causes(backbone, [], ['stages.0.0.extra'], [])
    assert single == ['the checkpoint has single tensors the backbone does not: stages.0.0.extra']
    gammas = [key for key in backbone.state_dict() if key.endswith('.gamma')]
    assert likely_causes(backbone, gammas, [], []) == [
        'the checkpoint has no layer scale: build with layer_scale_init_value=0']


def test_load_weights_auto_prefix_refuses_non_finite_weights(fixture_arch, tmp_path):
    nan = torch.full_like(official_state_dict()[BN_VAR], float('nan'))
    path = save_modified(tmp_path, 'nan.pth', {BN_VAR: nan})
    backbone = MODELS.build(fixture_arch)
    with pytest.raises(ValueError, match='NaN or infinite'):
        load_weights(backbone, path, prefix='auto')
    load_weights(backbone, path, prefix='auto', allow_non_finite=True)
    assert torch.isnan(backbone.stages[1][0].large_kernel.vertical.bn.running_var).all()
