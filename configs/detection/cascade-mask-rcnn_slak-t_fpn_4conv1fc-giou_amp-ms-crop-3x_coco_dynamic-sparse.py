# The 3x Cascade Mask R-CNN recipe with SLaK-T trained with SLaK's dynamic sparsity: 40% of the
# backbone weights zero, the zero pattern moving during training. The settings are those of the
# official ImageNet-1K SLaK-T recipe (VITA-Group/SLaK README: --sparsity 0.4 --sparse_init snip
# --prune_rate 0.5 --growth random -u 2000), not tuned for COCO; -u counts optimizer steps, as
# update_interval.
_base_ = './cascade-mask-rcnn_slak-t_fpn_4conv1fc-giou_amp-ms-crop-3x_coco.py'
# sparse=True gives the backbone the mask buffers the hook moves (saved with the checkpoints)
model = dict(backbone=dict(sparse=True))
custom_hooks = [
    dict(type='mmslak.DynamicSparsityHook', sparsity=0.4, distribution='snip', prune_rate=0.5,
         growth='random', update_interval=2000)
]
