_base_ = './slak-t_upernet_4xb4-amp-160k_ade20k-512x512.py'
model = dict(backbone=dict(arch='small', drop_path_rate=0.3))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
