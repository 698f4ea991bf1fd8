# UperNet with a SLaK-T backbone; the ADE20K recipes inherit it and set arch, widths, drop path.
_base_ = 'mmseg::_base_/models/upernet_r50.py'
custom_imports = dict(imports=['mmslak'], allow_failed_imports=False)
# Also under mmdet's/mmseg's own tools/train.py: checkpoints are read safely and checked.
runner_type = 'mmslak.ToolRunner'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    pretrained=None,
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
        norm_cfg=norm_cfg,
        # ImageNet SLaK weights: --cfg-options model.backbone.init_cfg.checkpoint=SLaK_tiny.pth
        init_cfg=dict(type='Pretrained', checkpoint=None, prefix='')),
    decode_head=dict(in_channels=[124, 249, 499, 998], num_classes=150),
    auxiliary_head=dict(in_channels=499, num_classes=150))
