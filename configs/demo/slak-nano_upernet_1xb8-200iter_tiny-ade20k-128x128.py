# The SLaK-T ADE20K recipe shrunk to learn the generated tiny ADE20K set on 2 CPU cores in minutes:
# a nano SLaK (the published kernels, narrow stages), a slim UperNet, 128 x 128 crops,
# 200 iterations.
_base_ = '../segmentation/slak-t_upernet_4xb4-amp-160k_ade20k-512x512.py'
crop_size = (128, 128)
data_root = 'data/tiny/ade20k/ADEChallengeData2016'
classes = ('wall', 'building', 'sky', 'floor', 'tree')
palette = [[120, 120, 120], [180, 120, 120], [6, 230, 230], [80, 50, 50], [4, 200, 3]]
# SyncBN as in the recipes: one process runs it as BN (mmengine reverts it), CPU processes
# synchronise it over gloo (mmslak.CPUDistributedDataParallel), GPUs with torch's SyncBN.
norm_cfg = dict(type='SyncBN', requires_grad=True)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(
        arch=dict(_delete_=True, depths=[1, 1, 2, 1], dims=[16, 32, 64, 128]),
        drop_path_rate=0.1,
        norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=[20, 41, 83, 166],
        channels=64,
        pool_scales=(1, 2, 4),
        num_classes=len(classes),
        norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=83, channels=32, num_classes=len(classes), norm_cfg=norm_cfg),
    test_cfg=dict(mode='whole'))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(256, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs')
]
metainfo = dict(classes=classes, palette=palette)
train_dataloader = dict(
    batch_size=8,
    num_workers=2,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=2,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

# CPU: no AMP; a higher learning rate for training from scratch, same stage-wise decay.
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmslak.LearningRateDecayOptimizerConstructor',
    paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=20, end=200)
]
train_cfg = dict(max_iters=200, val_interval=200)
default_hooks = dict(
    logger=dict(interval=20),
    checkpoint=dict(interval=200, max_keep_ckpts=1))
