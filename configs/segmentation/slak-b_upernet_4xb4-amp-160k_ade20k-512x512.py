_base_ = './slak-t_upernet_4xb4-amp-160k_ade20k-512x512.py'
model = dict(
    backbone=dict(arch='base', drop_path_rate=0.4),
    decode_head=dict(in_channels=[166, 332, 665, 1331]),
    auxiliary_head=dict(in_channels=665))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
