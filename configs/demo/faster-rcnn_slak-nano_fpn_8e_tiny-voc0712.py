# The SLaK-T PASCAL VOC 07+12 recipe shrunk for the generated tiny VOC set (train on VOC2007+2012
# trainval, test on VOC2007 test) on 2 CPU cores: a nano SLaK, 64-channel FPN and heads, 128 pixels.
_base_ = '../detection/faster-rcnn_slak-t_fpn_1x_voc0712.py'
data_root = 'data/tiny/voc/VOCdevkit/'
classes = ('bottle', 'chair', 'tvmonitor')
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
        bbox_head=dict(in_channels=width, fc_out_channels=256, num_classes=len(classes))),
    test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=100), rcnn=dict(max_per_img=20)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(256, 128), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(256, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
metainfo = dict(classes=classes)
voc_split = dict(
    type='VOCDataset',
    data_root=data_root,
    metainfo=metainfo,
    filter_cfg=dict(filter_empty_gt=True, min_size=32, bbox_min_size=8),
    pipeline=train_pipeline)
train_dataloader = dict(
    batch_size=4,
    dataset=dict(
        times=1,
        dataset=dict(datasets=[
            dict(
                **voc_split,
                ann_file=f'{year}/ImageSets/Main/trainval.txt',
                data_prefix=dict(sub_data_root=f'{year}/')) for year in ('VOC2007', 'VOC2012')
        ])))
val_dataloader = dict(
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=50),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True, milestones=[6], gamma=0.1)
]
# CPU: no AMP; a higher learning rate for training from scratch, same layer-wise decay.
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3))
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
