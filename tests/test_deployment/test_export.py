"""ONNX export of the nano demo models, checked against PyTorch with ONNX Runtime."""
import copy
import os.path as osp

import pytest
import torch
from mmengine.model import revert_sync_batchnorm

from mmslak.apis import build_downstream_model, load_downstream_config
from mmslak.checkpoint import load_weights
from mmslak.deployment import (check_depthwise_convs, check_export, depthwise_convs, export_model,
                               export_module, export_onnx, load_for_export, traceable)
from .conftest import CASCADE_CONFIG, FASTER_CONFIG, SEG_CONFIG, load_tool, save_random_checkpoint

onnx = pytest.importorskip('onnx', reason='the deploy extra (onnx, onnxruntime) is not installed')
pytest.importorskip('onnxruntime', reason='the deploy extra (onnx, onnxruntime) is not installed')

NANO_BLOCKS = 5  # depths 1, 1, 2, 1


@pytest.mark.parametrize('dynamic', [False, True])
def test_segmentor_exports_end_to_end(seg_checkpoint, tmp_path, dynamic):
    report = export_model(SEG_CONFIG, seg_checkpoint, str(tmp_path), shape=(64, 64),
                          dynamic=dynamic, threads=2)
    assert osp.isfile(tmp_path / 'end2end.onnx') and osp.isfile(tmp_path / 'export_report.json')
    assert report['graph']['blocks'] == NANO_BLOCKS
    assert report['graph']['depthwise_convs'] == 2 * NANO_BLOCKS  # k x s and s x k per block
    assert [check['shape'] for check in report['parity']] == \
        ([[64, 64], [96, 128]] if dynamic else [[64, 64]])
    for check in report['parity']:
        assert check['max_abs_difference'] <= 1e-4
        assert check['argmax_agreement'] >= 0.999


def test_dense_kernels_export_one_depthwise_conv_per_block(tmp_path):
    config = tmp_path / 'dense.py'
    config.write_text(f'_base_ = [{SEG_CONFIG!r}]\nmodel = dict(backbone=dict(decompose=False))\n')
    checkpoint = save_random_checkpoint(str(config), str(tmp_path / 'dense.pth'))
    report = export_model(str(config), checkpoint, str(tmp_path / 'out'), shape=(64, 64))
    assert report['graph']['depthwise_convs'] == NANO_BLOCKS
    assert report['graph']['kernels'][0] == '51x51'
    assert report['parity'][0]['max_abs_difference'] <= 1e-4


def test_cascade_mask_rcnn_exports_backbone_and_neck(cascade_checkpoint, tmp_path):
    report = export_model(CASCADE_CONFIG, cascade_checkpoint, str(tmp_path), shape=(64, 96),
                          dynamic=True, threads=2)
    assert report['kind'] == 'detector_features'
    assert report['graph']['depthwise_convs'] == 2 * NANO_BLOCKS
    for check in report['parity']:
        assert check['max_abs_difference'] <= 1e-4
        assert check['detections'] > 0 and check['unmatched'] == 0
        assert check['max_box_difference'] <= 1e-2 and check['max_score_difference'] <= 1e-4
        assert check['min_mask_agreement'] >= 0.999


def test_faster_rcnn_exports_backbone_and_neck(tmp_path):
    checkpoint = save_random_checkpoint(FASTER_CONFIG, str(tmp_path / 'faster.pth'))
    report = export_model(FASTER_CONFIG, checkpoint, str(tmp_path / 'out'), shape=(64, 64))
    assert report['parity'][0]['max_abs_difference'] <= 1e-4
    assert report['parity'][0]['unmatched'] == 0


def test_deploy_form_checkpoint_exports(seg_checkpoint, tmp_path):
    reparameterize = load_tool('tools/model_converters/reparameterize.py').reparameterize
    fused = str(tmp_path / 'fused.pth')
    reparameterize(SEG_CONFIG, seg_checkpoint, fused, shape=(64, 64))
    report = export_model(SEG_CONFIG, fused, str(tmp_path / 'out'), shape=(64, 64))
    assert report['graph']['depthwise_convs'] == 2 * NANO_BLOCKS


def test_a_diverging_export_fails_the_check(seg_checkpoint, tmp_path):
    model, cfg = load_for_export(SEG_CONFIG, seg_checkpoint)
    module, kind = export_module(model)
    filename = str(tmp_path / 'end2end.onnx')
    with traceable(model):
        export_onnx(module, torch.randn(1, 3, 64, 64), filename)
    with torch.no_grad():
        model.decode_head.conv_seg.bias.add_(1e-3)  # PyTorch now computes something else
    with pytest.raises(ValueError, match='diverges from PyTorch'):
        check_export(model, kind, filename, cfg.default_scope, [(64, 64)])


def test_a_training_form_branch_fails_the_graph_check(seg_checkpoint, tmp_path):
    cfg = load_downstream_config(SEG_CONFIG)
    model = revert_sync_batchnorm(build_downstream_model(cfg))
    load_weights(model, seg_checkpoint)
    model.eval()  # not switched: three depthwise convs and their BNs per block
    filename = str(tmp_path / 'training_form.onnx')
    with traceable(model):
        export_onnx(export_module(model)[0], torch.randn(1, 3, 64, 64), filename)
    deploy_form = copy.deepcopy(model.backbone)
    deploy_form.switch_to_deploy()
    assert len(depthwise_convs(onnx.load(filename))) == 3 * NANO_BLOCKS
    with pytest.raises(ValueError, match='training-form branch'):
        check_depthwise_convs(onnx.load(filename), deploy_form)
