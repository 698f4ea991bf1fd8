"""The published recipes carry the official settings."""
import os.path as osp

import pytest
from mmengine.config import Config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def load(name):
    return Config.fromfile(osp.join(ROOT, 'configs', name))


ADE = 'segmentation/slak-{}_upernet_4xb4-amp-{}k_ade20k-512x512.py'


@pytest.mark.parametrize('arch,drop_path,layers,widths', [
    ('t', 0.4, 6, [124, 249, 499, 998]),
    ('s', 0.3, 12, [124, 249, 499, 998]),
    ('b', 0.4, 12, [166, 332, 665, 1331]),
])
def test_ade20k_160k_recipes(arch, drop_path, layers, widths):
    cfg = load(ADE.format(arch, 160))
    backbone = cfg.model.backbone
    assert backbone.arch == {'t': 'tiny', 's': 'small', 'b': 'base'}[arch]
    assert backbone.drop_path_rate == drop_path
    assert backbone.kernel_size == [51, 49, 47, 13, 5] and backbone.width_factor == 1.3
    assert backbone.init_cfg.type == 'Pretrained'
    assert cfg.model.decode_head.in_channels == widths
    assert cfg.model.auxiliary_head.in_channels == widths[2]
    assert cfg.model.test_cfg.mode == 'slide' and cfg.model.test_cfg.crop_size == (512, 512)
    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'AmpOptimWrapper'
    assert wrapper.constructor == 'mmslak.LearningRateDecayOptimizerConstructor'
    assert wrapper.optimizer == dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05)
    assert wrapper.paramwise_cfg == dict(decay_rate=0.9, decay_type='stage_wise', num_layers=layers)
    warmup, poly = cfg.param_scheduler
    assert (warmup.type, warmup.end) == ('LinearLR', 1500)
    assert (poly.type, poly.begin, poly.end) == ('PolyLR', 1500, 160000)
    assert cfg.train_cfg.max_iters == 160000 and cfg.train_dataloader.batch_size == 4


def test_ade20k_80k_recipe():
    cfg = load(ADE.format('t', 80))
    assert cfg.model.backbone.drop_path_rate == 0.1
    assert cfg.optim_wrapper.optimizer.lr == 2e-4
    assert cfg.optim_wrapper.paramwise_cfg.decay_rate == 1.0  # no layer decay
    warmup, poly = cfg.param_scheduler
    assert warmup.end == 800 and (poly.begin, poly.end) == (800, 80000)
    assert cfg.train_cfg.max_iters == 80000


@pytest.mark.parametrize('schedule,epochs,milestones', [('1x', 12, [8, 11]), ('3x', 36, [27, 33])])
def test_coco_cascade_mask_rcnn_recipes(schedule, epochs, milestones):
    cfg = load('detection/cascade-mask-rcnn_slak-t_fpn_4conv1fc-giou_amp-ms-crop-'
               f'{schedule}_coco.py')
    assert cfg.model.backbone.drop_path_rate == 0.4
    assert cfg.model.backbone.norm_cfg.type == 'SyncBN'
    assert cfg.model.neck.in_channels == [124, 249, 499, 998]
    for head in cfg.model.roi_head.bbox_head:
        assert head.num_shared_convs == 4 and head.num_shared_fcs == 1
        assert head.loss_bbox.type == 'GIoULoss' and head.norm_cfg.type == 'SyncBN'
    assert cfg.train_pipeline[3].type == 'RandomChoice'  # multi-scale 480-800 or DETR crop
    assert cfg.train_pipeline[3].transforms[0][0].scales[0] == (480, 1333)
    wrapper = cfg.optim_wrapper
    assert wrapper.type == 'AmpOptimWrapper'
    assert wrapper.constructor == 'mmslak.LearningRateDecayOptimizerConstructor'
    assert (wrapper.optimizer.type, wrapper.optimizer.lr) == ('AdamW', 2e-4)
    assert wrapper.optimizer.weight_decay == 0.05
    assert wrapper.paramwise_cfg == dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6)
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.param_scheduler[1].milestones == milestones
    assert cfg.auto_scale_lr.base_batch_size == 16
    assert cfg.val_evaluator.metric == ['bbox', 'segm']


def test_voc_recipe():
    cfg = load('detection/faster-rcnn_slak-t_fpn_1x_voc0712.py')
    assert cfg.model.backbone.type == 'mmslak.SLaK'
    assert cfg.val_evaluator.type == 'VOCMetric' and cfg.val_evaluator.metric == 'mAP'
    assert cfg.test_dataloader.dataset.ann_file == 'VOC2007/ImageSets/Main/test.txt'
    years = [d.data_prefix.sub_data_root for d in cfg.train_dataloader.dataset.dataset.datasets]
    assert years == ['VOC2007/', 'VOC2012/']
    assert cfg.optim_wrapper.constructor == 'mmslak.LearningRateDecayOptimizerConstructor'
    assert cfg.optim_wrapper.optimizer.type == 'AdamW'
