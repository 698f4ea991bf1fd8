"""Sparse fine-tuning: masks from the loaded zeros, kept on every path, re-applied each step."""
import pytest
import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmslak  # noqa: F401
from mmslak.registry import MODELS
from mmslak.utils import safe_load
from ..conftest import OFFICIAL_CKPT


def sparse_backbone(fixture_arch, pretrained=True):
    cfg = dict(fixture_arch, sparse=True)
    if pretrained:
        cfg['init_cfg'] = dict(type='Pretrained', checkpoint=OFFICIAL_CKPT)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def masked_weights(model):
    return {name[:-len('_mask')]: mask for name, mask in model.named_buffers()
            if name.endswith('weight_mask')}


def test_masks_come_from_the_loaded_zeros(fixture_arch):
    model = sparse_backbone(fixture_arch)
    params = dict(model.named_parameters())
    masks = masked_weights(model)
    assert 'downsample_layers.0.0.weight' in masks and 'stages.0.0.pwconv1.weight' in masks
    assert 'stages.0.0.large_kernel.vertical.conv.weight' in masks
    assert all(params[name].dim() in (2, 4) for name in masks)
    for name, mask in masks.items():
        assert torch.equal(mask, params[name] != 0)
    density = model.sparse_density()
    assert set(density) == {'stem', 'stage0', 'stage1', 'stage2', 'stage3', 'all'}
    assert 0.55 < density['all'] < 0.65


def test_masks_exist_without_init_weights_and_travel_in_state_dict(fixture_arch):
    model = MODELS.build(dict(fixture_arch, sparse=True))
    keys = [k for k in model.state_dict() if k.endswith('weight_mask')]
    assert keys and all(model.state_dict()[k].all() for k in keys)
    trained = sparse_backbone(fixture_arch)
    model.load_state_dict(trained.state_dict())
    for name, mask in masked_weights(model).items():
        assert torch.equal(mask, masked_weights(trained)[name])


def test_state_dict_without_masks_gets_them_from_zeros(fixture_arch):
    source = sparse_backbone(fixture_arch)
    plain = {k: v for k, v in source.state_dict().items() if not k.endswith('weight_mask')}
    model = MODELS.build(dict(fixture_arch, sparse=True))
    model.load_state_dict(plain)
    params = dict(model.named_parameters())
    for name, mask in masked_weights(model).items():
        assert torch.equal(mask, params[name] != 0)


class BackboneRegressor(BaseModel):
    """A minimal trainable wrapper: the loss pulls the last feature map towards zero."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = MODELS.build(backbone)

    def forward(self, inputs, mode='tensor'):
        out = self.backbone(inputs)[-1]
        return dict(loss=out.square().mean() + out.mean()) if mode == 'loss' else out


def test_fine_tuning_keeps_the_zero_pattern(fixture_arch, tmp_path):
    backbone = dict(fixture_arch, sparse=True,
                    init_cfg=dict(type='Pretrained', checkpoint=OFFICIAL_CKPT))
    data = [dict(inputs=torch.randn(3, 64, 64)) for _ in range(8)]
    runner = Runner(
        model=BackboneRegressor(backbone),
        work_dir=str(tmp_path),
        train_dataloader=dict(dataset=data, batch_size=2, sampler=dict(type='DefaultSampler'),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=1e-2, weight_decay=0.05)),
        train_cfg=dict(by_epoch=False, max_iters=4),
        custom_hooks=[dict(type='mmslak.SparseMaskHook')],
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=4, by_epoch=False)))
    initial = sparse_backbone(fixture_arch).state_dict()
    runner.train()
    trained = runner.model.backbone.state_dict()
    changed = 0
    for name in masked_weights(runner.model.backbone):
        assert torch.equal(trained[name] == 0, initial[name] == 0), name
        changed += int(not torch.equal(trained[name], initial[name]))
    assert changed > 0
    saved = safe_load(tmp_path / 'iter_4.pth')['state_dict']  # a Runner checkpoint
    assert torch.equal(saved['backbone.stages.0.0.pwconv1.weight_mask'],
                       initial['stages.0.0.pwconv1.weight'] != 0)


def test_hook_without_sparse_backbone_raises(fixture_arch, tmp_path):
    runner = Runner(
        model=BackboneRegressor(fixture_arch), work_dir=str(tmp_path),
        train_dataloader=dict(dataset=[dict(inputs=torch.randn(3, 32, 32))], batch_size=1,
                              sampler=dict(type='DefaultSampler'),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        train_cfg=dict(by_epoch=False, max_iters=1),
        custom_hooks=[dict(type='mmslak.SparseMaskHook')])
    with pytest.raises(ValueError, match='sparse=True'):
        runner.train()
