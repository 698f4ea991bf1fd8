"""tools/model_converters/reparameterize.py: fused deploy checkpoints and configs."""
import pytest
import torch
from mmengine.config import Config

from mmslak.apis import build_downstream_model, load_downstream_config
from mmslak.models.layers import DepthwiseConvBN
from .conftest import SEG_CONFIG, load_tool


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/model_converters/reparameterize.py')


def test_deploy_checkpoint_and_config(tool, seg_checkpoint, tmp_path, capsys):
    checkpoint, trained = seg_checkpoint
    dst = tmp_path / 'deploy' / 'seg_deploy.pth'
    dst.parent.mkdir()
    tool.main([SEG_CONFIG, checkpoint, str(dst), '--shape', '64', '64'])
    assert 'deploy config' in capsys.readouterr().out

    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['deploy'] is True
    assert not any('.small.' in key or '.bn.' in key for key in saved['state_dict']
                   if key.startswith('backbone.'))
    cfg = Config.fromfile(str(dst.with_suffix('.py')))
    assert cfg.model.backbone.deploy is True and cfg.model.backbone.init_cfg is None
    assert cfg.load_from == str(dst)

    deployed = build_downstream_model(load_downstream_config(str(dst.with_suffix('.py'))))
    deployed.load_state_dict(saved['state_dict'])
    deployed.eval()
    inputs = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        for fused, original in zip(deployed.backbone(inputs), trained.backbone(inputs)):
            assert (fused - original).abs().max() <= 1e-4
        torch.testing.assert_close(deployed(inputs, mode='tensor'), trained(inputs, mode='tensor'),
                                   atol=1e-4, rtol=0)


def test_a_wrong_fusion_is_caught(tool, seg_checkpoint, tmp_path, monkeypatch):
    """A fusion that forgets the BN must fail the check, fused CPU kernels or not."""
    monkeypatch.setattr(DepthwiseConvBN, 'fuse',
                        lambda self: (self.conv.weight, torch.zeros_like(self.bn.bias)))
    with pytest.raises(ValueError, match='differs from the training form'):
        tool.main([SEG_CONFIG, seg_checkpoint[0], str(tmp_path / 'd.pth'), '--shape', '64', '64'])


def test_nan_difference_fails(tool, seg_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(tool, 'max_output_difference', lambda *args: float('nan'))
    with pytest.raises(ValueError, match='differs from the training form'):
        tool.main([SEG_CONFIG, seg_checkpoint[0], str(tmp_path / 'd.pth'), '--shape', '64', '64'])


def test_errors(tool, tmp_path, non_slak_config, classifier_config, seg_checkpoint):
    dst = str(tmp_path / 'd.pth')
    with pytest.raises(FileNotFoundError, match='Config file not found'):
        tool.main([str(tmp_path / 'missing.py'), seg_checkpoint[0], dst])
    with pytest.raises(FileNotFoundError, match='Checkpoint not found'):
        tool.main([SEG_CONFIG, str(tmp_path / 'missing.pth'), dst])
    with pytest.raises(ValueError, match='not a SLaK backbone'):
        tool.main([non_slak_config, seg_checkpoint[0], dst])
    with pytest.raises(ValueError, match='neither an mmseg nor an mmdet'):
        tool.main([classifier_config, seg_checkpoint[0], dst])
    backbone_only = tmp_path / 'backbone.pth'
    state = torch.load(seg_checkpoint[0], weights_only=True)['state_dict']
    torch.save({key[len('backbone.'):]: value for key, value in state.items()
                if key.startswith('backbone.')}, backbone_only)
    with pytest.raises(ValueError, match='backbone-only checkpoint'):
        tool.main([SEG_CONFIG, str(backbone_only), dst])
    state['decode_head.conv_seg.weight'] = torch.zeros(7, 16, 1, 1)
    torch.save(dict(state_dict=state), tmp_path / 'other_head.pth')
    with pytest.raises(ValueError, match='decode_head differ in shape'):
        tool.main([SEG_CONFIG, str(tmp_path / 'other_head.pth'), dst])


def test_help(tool, capsys):
    with pytest.raises(SystemExit):
        tool.main(['--help'])
    assert 'switch_to_deploy' in capsys.readouterr().out


def test_the_output_folder_is_checked_first(tool, seg_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setattr(tool, 'build_downstream_model', lambda cfg: pytest.fail('built a model'))
    with pytest.raises(FileNotFoundError, match='Output folder does not exist'):
        tool.main([SEG_CONFIG, seg_checkpoint[0], str(tmp_path / 'no' / 'd.pth')])


def test_another_kernel_size_is_explained(tool, other_kernel_checkpoint, tmp_path):
    with pytest.raises(ValueError, match='backbone: the kernel sizes differ') as error:
        tool.main([SEG_CONFIG, other_kernel_checkpoint, str(tmp_path / 'd.pth')])
    assert 'backbone.stages.0.0.large_kernel.vertical.conv.weight' in str(error.value)
    assert other_kernel_checkpoint in str(error.value)


def test_non_finite_weights_are_refused_unless_allowed(tool, seg_checkpoint, tmp_path):
    state = torch.load(seg_checkpoint[0], weights_only=True)['state_dict']
    key = 'backbone.stages.3.0.large_kernel.small.bn.running_var'
    state[key] = torch.full_like(state[key], float('nan'))
    path = tmp_path / 'nan.pth'
    torch.save(dict(state_dict=state), path)
    args = [SEG_CONFIG, str(path), str(tmp_path / 'd.pth'), '--shape', '64', '64']
    with pytest.raises(ValueError, match=f'NaN or infinite values in 1 tensor.*: {key}'):
        tool.main(args)
    # loaded on request, the NaN then fails the comparison of the fused form
    with pytest.raises(ValueError, match='differs from the training form by nan'):
        tool.main(args + ['--allow-non-finite'])
