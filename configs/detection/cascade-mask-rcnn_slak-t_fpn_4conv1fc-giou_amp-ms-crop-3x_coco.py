# ConvNeXt's Cascade Mask R-CNN recipe (GIoU 4conv1fc heads with SyncBN, multi-scale 480-800 with
# DETR-style crops, AdamW, layer-wise decay 0.7 over 6 layers, AMP, 36 epochs) with SLaK-T.
_base_ = 'mmdet::convnext/cascade-mask-rcnn_convnext-t-p4-w7_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'  # noqa: E501
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
        drop_path_rate=0.4,
        layer_scale_init_value=1.0,
        out_indices=[0, 1, 2, 3],
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        # ImageNet SLaK weights: --cfg-options model.backbone.init_cfg.checkpoint=SLaK_tiny.pth
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='')),
    neck=dict(in_channels=[124, 249, 499, 998]))
optim_wrapper = dict(
    constructor='mmslak.LearningRateDecayOptimizerConstructor',
    optimizer=dict(lr=2e-4, weight_decay=0.05),
    paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6))
# 8 GPUs x 2 images
auto_scale_lr = dict(enable=False, base_batch_size=16)
