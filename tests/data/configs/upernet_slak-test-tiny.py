# A tiny UperNet on a tiny SLaK for the tool tests: runs in well under a second on a CPU.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmslak'], allow_failed_imports=False)
default_scope = 'mmseg'
norm_cfg = dict(type='BN', requires_grad=True)
channels = [int(dim * 1.3) for dim in (8, 16, 24, 32)]
model = dict(
    pretrained=None,
    data_preprocessor=dict(size=(64, 64)),
    backbone=dict(
        _delete_=True,
        type='mmslak.SLaK',
        arch=dict(depths=[1, 1, 1, 1], dims=[8, 16, 24, 32]),
        kernel_size=[13, 11, 9, 7, 3],
        norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=channels, channels=16, pool_scales=(1, 2), num_classes=4, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=channels[2], channels=8, num_classes=4, norm_cfg=norm_cfg))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackSegInputs')
]
test_dataloader = dict(dataset=dict(pipeline=test_pipeline))
