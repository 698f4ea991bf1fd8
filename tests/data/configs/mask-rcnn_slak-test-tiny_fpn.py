# A tiny Mask R-CNN on a tiny SLaK for the tool tests: runs in about a second on a CPU.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py', 'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmslak'], allow_failed_imports=False)
default_scope = 'mmdet'
width = 16
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmslak.SLaK',
        arch=dict(depths=[1, 1, 1, 1], dims=[8, 16, 24, 32]),
        kernel_size=[13, 11, 9, 7, 3]),
    neck=dict(in_channels=[int(dim * 1.3) for dim in (8, 16, 24, 32)], out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=32, num_classes=3),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(in_channels=width, conv_out_channels=width, num_classes=3)),
    test_cfg=dict(rpn=dict(nms_pre=100, max_per_img=20), rcnn=dict(max_per_img=5)))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor'))
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
