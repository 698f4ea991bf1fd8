"""Every config under configs/ parses, builds its model (SyncBN throughout) and predicts on a
small input."""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import DefaultScope
from torch.nn.modules.batchnorm import _BatchNorm

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(
    path for path in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in path)


def config_id(path):
    return osp.relpath(path, osp.join(ROOT, 'configs'))


def predict_segmentation(model, size):
    from mmseg.structures import SegDataSample
    sample = SegDataSample(metainfo=dict(
        img_shape=size, ori_shape=size, pad_shape=size, padding_size=[0, 0, 0, 0]))
    result = model.predict(torch.randn(1, 3, *size), [sample])[0]
    assert result.pred_sem_seg.data.shape == (1, *size)


def predict_detection(model, size):
    from mmdet.structures import DetDataSample
    sample = DetDataSample(metainfo=dict(
        img_shape=size, ori_shape=size, pad_shape=size, batch_input_shape=size,
        scale_factor=(1., 1.)))
    result = model.predict(torch.randn(1, 3, *size), [sample])[0]
    assert result.pred_instances.bboxes.shape[1] == 4
    if model.with_mask:
        assert 'masks' in result.pred_instances


def test_configs_are_found():
    assert len(CONFIGS) >= 9


@pytest.mark.parametrize('path', CONFIGS, ids=config_id)
def test_config_builds_and_predicts(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports == dict(imports=['mmslak'], allow_failed_imports=False)
    assert cfg.model.backbone.type == 'mmslak.SLaK'
    scope = cfg.default_scope
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    with DefaultScope.overwrite_default_scope(scope):
        model = registry.build(cfg.model).eval()
        assert type(model.backbone).__name__ == 'SLaK'
        # every BN is SyncBN: synchronised across the processes of a data-parallel run (torch's
        # SyncBatchNorm on GPUs, mmslak.CPUSyncBatchNorm on CPUs), BN in one process
        norms = {type(module).__name__ for module in model.modules()
                 if isinstance(module, _BatchNorm)}
        assert norms == {'SyncBatchNorm'}
        with torch.no_grad():
            if scope == 'mmseg':
                predict_segmentation(model, (64, 96))
            else:
                predict_detection(model, (64, 96))
