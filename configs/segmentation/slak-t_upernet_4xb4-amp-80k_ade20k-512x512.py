_base_ = './slak-t_upernet_4xb4-amp-160k_ade20k-512x512.py'
model = dict(backbone=dict(drop_path_rate=0.1))
# No layer decay (rate 1.0); norms, biases and layer scales keep no weight decay.
optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=800),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=800, end=80000)
]
train_cfg = dict(max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(interval=8000))
