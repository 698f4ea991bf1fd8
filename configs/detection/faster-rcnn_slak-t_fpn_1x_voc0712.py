# mmdet's PASCAL VOC 07+12 recipe (trained on VOC2007+2012 trainval, tested on VOC2007 test with
# VOCMetric mAP) with SLaK-T, AdamW and layer-wise learning-rate decay.
_base_ = 'mmdet::pascal_voc/faster-rcnn_r50_fpn_1x_voc0712.py'
custom_imports = dict(imports=['mmslak'], allow_failed_imports=False)
# Also under mmdet's/mmseg's own tools/train.py: checkpoints are read safely and checked.
runner_type = 'mmslak.ToolRunner'
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmslak.SLaK',
        arch='tiny',
        kernel_size=[51, 49, 47, 13, 5],
        width_factor=1.3,
        decompose=True,
        drop_path_rate=0.2,
        layer_scale_init_value=1.0,
        out_indices=[0, 1, 2, 3],
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        # ImageNet SLaK weights: --cfg-options model.backbone.init_cfg.checkpoint=SLaK_tiny.pth
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='')),
    neck=dict(in_channels=[124, 249, 499, 998]))
optim_wrapper = dict(
    _delete_=True,
    type='AmpOptimWrapper',
    constructor='mmslak.LearningRateDecayOptimizerConstructor',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6))
