# The SLaK-T COCO Cascade Mask R-CNN recipe shrunk to learn the generated tiny COCO set on 2 CPU
# cores in minutes: a nano SLaK, 64-channel FPN and heads, the DETR-style multi-scale crop
# augmentation at 128-pixel scale, 24 short epochs.
_base_ = '../detection/cascade-mask-rcnn_slak-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'
data_root = 'data/tiny/coco/'
classes = ('circle', 'square', 'triangle')
width = 64
# SyncBN as in the recipes: one process runs it as BN (mmengine reverts it), CPU processes
# synchronise it over gloo (mmslak.CPUDistributedDataParallel), GPUs with torch's SyncBN.
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 2, 1], dims=[16, 32, 64, 128]),
        drop_path_rate=0.1,
        norm_cfg=norm_cfg),
    neck=dict(in_channels=[20, 41, 83, 166], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=[
            dict(
                type='ConvFCBBoxHead',
                num_shared_convs=4,
                num_shared_fcs=1,
                in_channels=width,
                conv_out_channels=width,
                fc_out_channels=256,
                roi_feat_size=7,
                num_classes=len(classes),
                bbox_coder=dict(
                    type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=stds),
                reg_class_agnostic=False,
                reg_decoded_bbox=True,
                norm_cfg=norm_cfg,
                loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
                loss_bbox=dict(type='GIoULoss', loss_weight=10.0))
            for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                         [0.033, 0.033, 0.067, 0.067])
        ],
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=len(classes))),
    # A few objects per 128-pixel image: far fewer proposals and sampled RoIs than on COCO.
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=500, max_per_img=200),
        rcnn=[
            dict(
                assigner=dict(
                    type='MaxIoUAssigner',
                    pos_iou_thr=iou,
                    neg_iou_thr=iou,
                    min_pos_iou=iou,
                    match_low_quality=False,
                    ignore_iof_thr=-1),
                sampler=dict(
                    type='RandomSampler',
                    num=64,
                    pos_fraction=0.25,
                    neg_pos_ub=-1,
                    add_gt_as_proposals=True),
                mask_size=28,
                pos_weight=-1,
                debug=False) for iou in (0.5, 0.6, 0.7)
        ]),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

long_edge = 256
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(
        type='RandomChoice',
        transforms=[
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(s, long_edge) for s in range(96, 161, 16)],
                    keep_ratio=True)
            ],
            [
                dict(
                    type='RandomChoiceResize',
                    scales=[(s, long_edge) for s in (100, 120, 140)],
                    keep_ratio=True),
                dict(
                    type='RandomCrop',
                    crop_type='absolute_range',
                    crop_size=(80, 120),
                    allow_negative_crop=True),
                dict(
                    type='RandomChoiceResize',
                    scales=[(s, long_edge) for s in range(96, 161, 16)],
                    keep_ratio=True)
            ],
        ]),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(long_edge, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
metainfo = dict(classes=classes)
train_dataloader = dict(
    batch_size=4,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

max_epochs = 24
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        by_epoch=True,
        milestones=[18, 22],
        gamma=0.1)
]
# CPU: no AMP; a higher learning rate for training from scratch, same layer-wise decay.
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
