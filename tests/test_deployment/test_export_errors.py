"""The export tool's answers to bad input: clear errors, no half-written export."""
import pytest
import torch.nn as nn

from mmslak.deployment import export_model, export_module
from .conftest import SEG_CONFIG, load_tool

pytest.importorskip('onnx', reason='the deploy extra (onnx, onnxruntime) is not installed')
pytest.importorskip('onnxruntime', reason='the deploy extra (onnx, onnxruntime) is not installed')
export_tool = load_tool('tools/deployment/export.py')


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match='Checkpoint not found: .*nowhere.pth'):
        export_model(SEG_CONFIG, str(tmp_path / 'nowhere.pth'), str(tmp_path / 'out'))
    assert not (tmp_path / 'out').exists()


def test_missing_config(tmp_path, seg_checkpoint):
    with pytest.raises(FileNotFoundError, match='Config file not found'):
        export_model(str(tmp_path / 'nowhere.py'), seg_checkpoint, str(tmp_path / 'out'))


def test_checkpoint_that_does_not_fit(tmp_path, cascade_checkpoint):
    with pytest.raises(ValueError, match='does not fit the model'):
        export_model(SEG_CONFIG, cascade_checkpoint, str(tmp_path / 'out'), shape=(64, 64))
    assert not (tmp_path / 'out').exists()


def test_backbone_that_is_not_slak(tmp_path, seg_checkpoint):
    config = tmp_path / 'resnet.py'
    config.write_text(f'_base_ = [{SEG_CONFIG!r}]\n'
                      "model = dict(backbone=dict(_delete_=True, type='ResNetV1c', depth=18))\n")
    with pytest.raises(ValueError, match='not a SLaK backbone'):
        export_model(str(config), seg_checkpoint, str(tmp_path / 'out'))


def test_unsupported_model():

    class CascadeEncoderDecoder(nn.Module):
        pass

    with pytest.raises(ValueError, match='Unsupported model CascadeEncoderDecoder'):
        export_module(CascadeEncoderDecoder())


def test_head_that_does_not_trace(tmp_path, seg_checkpoint, monkeypatch):
    from mmseg.models.decode_heads import UPerHead
    monkeypatch.setattr(UPerHead, 'forward', lambda self, inputs: dict(logits=inputs[0]))
    with pytest.raises(ValueError, match='with UPerHead did not export to ONNX'):
        export_model(SEG_CONFIG, seg_checkpoint, str(tmp_path / 'out'), shape=(64, 64))


def test_command_line_exits_with_the_message(tmp_path, capsys):
    with pytest.raises(SystemExit, match='export failed: Checkpoint not found'):
        export_tool.main([SEG_CONFIG, str(tmp_path / 'nowhere.pth'), '--out', str(tmp_path)])


def test_command_line_prints_the_checks(tmp_path, seg_checkpoint, capsys):
    export_tool.main([SEG_CONFIG, seg_checkpoint, '--out', str(tmp_path), '--shape', '64', '64',
                      '--threads', '2'])
    out = capsys.readouterr().out
    assert 'onnx.checker: passed; depthwise convs: 10 in 5 blocks (2 per block' in out
    assert '64x64: max |ORT - PyTorch|' in out and 'arg max agreement' in out
