"""tools/model_converters/slak2mmslak.py: official checkpoints to clean mmslak checkpoints."""
import re
import subprocess
import sys

import pytest
import torch

from mmslak.registry import MODELS
from mmslak.utils import safe_load
from ..conftest import OFFICIAL_CKPT
from .conftest import ROOT, load_tool

TOOL = 'tools/model_converters/slak2mmslak.py'


@pytest.fixture(scope='module')
def converter():
    return load_tool(TOOL)


def official_state_dict():
    # safe_load allows the file's argparse.Namespace on every torch (safe_globals needs >= 2.5)
    return safe_load(OFFICIAL_CKPT)['model']


def outputs_of(checkpoint, fixture_arch, reference, prefix=''):
    cfg = dict(fixture_arch, init_cfg=dict(type='Pretrained', checkpoint=checkpoint, prefix=prefix))
    model = MODELS.build(cfg)
    model.init_weights()
    with torch.no_grad():
        return model.eval()(reference['input'])


def max_difference(outputs, reference):
    return max(float((out - ref).abs().max()) for out, ref in zip(outputs, reference['outputs']))


def test_imagenet_file_converts_to_the_reference(tmp_path, fixture_arch, official_reference):
    dst = tmp_path / 'out.pth'
    result = subprocess.run([sys.executable, TOOL, OFFICIAL_CKPT, str(dst)], cwd=ROOT,
                            capture_output=True, text=True, check=True)
    assert 'keys dropped: 4 (norm.weight, norm.bias, head.weight, head.bias)' in result.stdout
    assert 'stage2 ' in result.stdout and 'model_ema ignored' in result.stdout

    converted = torch.load(dst, weights_only=True)
    state_dict, meta = converted['state_dict'], converted['meta']
    assert not any(re.match(r'(norm|head)\.', key) for key in state_dict)
    assert not any('LoRA' in key or 'small_conv' in key for key in state_dict)
    assert meta['format'] == 'imagenet' and meta['epoch'] == 299
    config = official_reference['config']
    assert meta['arch'] == dict(arch=dict(depths=config['depths'], dims=config['dims']),
                                kernel_size=config['kernel_size'],
                                width_factor=config['width_factor'], decompose=True)
    assert meta['official_args']['Decom'] is True

    source = official_state_dict()
    for key, value in source.items():
        new_key = key.replace('LoRA1', 'vertical').replace('LoRA2', 'horizontal').replace(
            'small_conv', 'small')
        if not re.match(r'(norm|head)\.', key):
            assert torch.equal(state_dict[new_key], value), key  # zeros and values kept
    assert max_difference(outputs_of(str(dst), fixture_arch, official_reference),
                          official_reference) <= 1e-5
    # the recorded architecture builds the right backbone
    model = MODELS.build(dict(type='mmslak.SLaK', **meta['arch']))
    model.load_state_dict(state_dict, strict=False)


def test_downstream_file_keeps_the_whole_model(converter, tmp_path, fixture_arch,
                                               official_reference, capsys):
    state_dict = {f'backbone.{key}': value for key, value in official_state_dict().items()
                  if not re.match(r'(norm|head)\.', key)}
    state_dict['decode_head.conv_seg.weight'] = torch.ones(3, 8, 1, 1)
    src, dst = tmp_path / 'seg_official.pth', tmp_path / 'seg_mmslak.pth'
    torch.save(dict(state_dict=state_dict, meta=dict(mmcv_version='1.4.0')), src)
    converter.main([str(src), str(dst)])
    assert 'downstream format' in capsys.readouterr().out

    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['format'] == 'downstream'
    keys = converted['state_dict']
    assert 'backbone.stages.0.0.large_kernel.vertical.conv.weight' in keys
    assert torch.equal(keys['decode_head.conv_seg.weight'], torch.ones(3, 8, 1, 1))
    outputs = outputs_of(str(dst), fixture_arch, official_reference, prefix='backbone.')
    assert max_difference(outputs, official_reference) <= 1e-5


def test_dense_kernels_are_recognised(converter, tmp_path):
    arch = dict(arch=dict(depths=[1, 1, 2, 1], dims=[8, 8, 8, 8]), kernel_size=[13, 11, 9, 7, 3],
                width_factor=1.3, decompose=False)
    model = MODELS.build(dict(type='mmslak.SLaK', **arch))
    official = {key.replace('.square.', '.lkb_origin.').replace('.small.', '.small_conv.'): value
                for key, value in model.state_dict().items()}
    src, dst = tmp_path / 'dense.pth', tmp_path / 'dense_mmslak.pth'
    torch.save(dict(model=official), src)
    converter.main([str(src), str(dst)])
    converted = torch.load(dst, weights_only=True)
    assert converted['meta']['arch'] == arch
    assert converted['state_dict'].keys() == model.state_dict().keys()


def test_errors(converter, tmp_path):
    with pytest.raises(FileNotFoundError, match='not found'):
        converter.main([str(tmp_path / 'missing.pth'), str(tmp_path / 'out.pth')])
    other = tmp_path / 'other.pth'
    torch.save(dict(weights=torch.zeros(1)), other)
    with pytest.raises(ValueError, match='not an official SLaK checkpoint'):
        converter.main([str(other), str(tmp_path / 'out.pth')])
    classifier = tmp_path / 'classifier.pth'
    torch.save(dict(model={'fc.weight': torch.zeros(2, 2)}), classifier)
    with pytest.raises(ValueError, match='four-stage SLaK'):
        converter.main([str(classifier), str(tmp_path / 'out.pth')])
    with pytest.raises(FileNotFoundError, match='Output folder'):
        converter.main([OFFICIAL_CKPT, str(tmp_path / 'no' / 'out.pth')])
    with pytest.raises(ValueError, match='must differ'):
        converter.main([OFFICIAL_CKPT, OFFICIAL_CKPT])


def test_help(converter, capsys):
    with pytest.raises(SystemExit) as exit_info:
        converter.main(['--help'])
    assert exit_info.value.code == 0
    assert 'weights_only=True' in capsys.readouterr().out


def test_non_finite_weights_are_refused_unless_allowed(converter, tmp_path, mmlogs):
    state_dict = official_state_dict()
    key = 'stages.2.1.large_kernel.small_conv.bn.running_var'
    state_dict[key] = torch.full_like(state_dict[key], float('nan'))
    src, dst = tmp_path / 'nan.pth', tmp_path / 'nan_mmslak.pth'
    torch.save(dict(model=state_dict), src)
    with pytest.raises(ValueError, match='NaN or infinite values in 1 tensor') as error:
        converter.main([str(src), str(dst)])
    assert str(src) in str(error.value)
    assert 'stages.2.1.large_kernel.small.bn.running_var' in str(error.value)
    assert not dst.exists()
    converter.main([str(src), str(dst), '--allow-non-finite'])
    assert 'loading them anyway' in mmlogs.text
    converted = torch.load(dst, weights_only=True)['state_dict']
    assert torch.isnan(converted['stages.2.1.large_kernel.small.bn.running_var']).all()


def test_unreadable_files_are_named(converter, tmp_path):
    empty, text = tmp_path / 'empty.pth', tmp_path / 'page.pth'
    empty.write_bytes(b'')
    text.write_text('<html><body>404 Not Found</body></html>')
    with pytest.raises(ValueError, match=re.escape(f'{empty} is empty')):
        converter.main([str(empty), str(tmp_path / 'out.pth')])
    with pytest.raises(ValueError, match=re.escape(f'{text} is not a PyTorch checkpoint')):
        converter.main([str(text), str(tmp_path / 'out.pth')])
