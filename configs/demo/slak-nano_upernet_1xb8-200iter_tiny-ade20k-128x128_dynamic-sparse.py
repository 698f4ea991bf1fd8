# The nano demo trained from scratch with 40% of its backbone weights zero, the zero pattern
# moving during training (SLaK's dynamic sparsity): ERK densities per layer, every 20 optimizer
# steps 30% of each layer's weights (decaying by a cosine to 0.5%) pruned and regrown.
_base_ = './slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py'
# sparse=True gives the backbone the mask buffers the hook moves (saved with the checkpoints)
model = dict(backbone=dict(sparse=True))
custom_hooks = [
    dict(type='mmslak.DynamicSparsityHook', sparsity=0.4, distribution='ERK', prune_rate=0.3,
         update_interval=20)
]
