import pytest
import torch.nn as nn
from mmengine.optim import build_optim_wrapper

import mmslak  # noqa: F401
from mmslak.engine.optimizers.layer_decay_optim_wrapper_constructor import (get_layer_id_layer_wise,
                                                                            get_layer_id_stage_wise)
from mmslak.registry import MODELS


class Segmentor(nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = MODELS.build(dict(type='mmslak.SLaK', arch='tiny', kernel_size=[7, 7, 7, 7,
                                                                                        5]))
        self.head = nn.Conv2d(998, 4, 1)


@pytest.mark.parametrize('name,layer_id', [
    ('backbone.downsample_layers.0.0.weight', 0),
    ('backbone.stages.0.2.pwconv1.weight', 1),
    ('backbone.downsample_layers.1.1.weight', 2),
    ('backbone.stages.1.0.gamma', 2),
    ('backbone.downsample_layers.2.1.weight', 3),
    ('backbone.stages.2.0.large_kernel.vertical.conv.weight', 3),
    ('backbone.stages.2.8.norm.weight', 5),
    ('backbone.downsample_layers.3.1.weight', 6),
    ('backbone.stages.3.2.pwconv2.bias', 6),
    ('backbone.norm3.weight', 7),
    ('decode_head.conv_seg.weight', 7),
])
def test_layer_wise_ids(name, layer_id):
    assert get_layer_id_layer_wise(name, 6) == layer_id


@pytest.mark.parametrize('name,layer_id', [
    ('backbone.downsample_layers.0.0.weight', 0),
    ('backbone.downsample_layers.3.1.weight', 0),
    ('backbone.stages.0.0.gamma', 1),
    ('backbone.stages.3.2.pwconv2.weight', 4),
    ('backbone.norm0.weight', 13),
    ('neck.fpn_convs.0.conv.weight', 13),
])
def test_stage_wise_ids(name, layer_id):
    assert get_layer_id_stage_wise(name, 12 + 2) == layer_id


@pytest.mark.parametrize('decay_type,expected', [
    ('stage_wise', {
        'backbone.downsample_layers.0.0.weight': (0.9**7, 0.05),
        'backbone.stages.2.4.pwconv1.weight': (0.9**4, 0.05),
        'backbone.stages.3.0.gamma': (0.9**3, 0.),
        'backbone.stages.3.0.pwconv1.bias': (0.9**3, 0.),
        'head.weight': (1., 0.05),
        'head.bias': (1., 0.),
    }),
    ('layer_wise', {
        'backbone.downsample_layers.0.0.weight': (0.9**7, 0.05),
        'backbone.stages.0.1.large_kernel.small.bn.weight': (0.9**6, 0.),
        'backbone.stages.2.4.pwconv1.weight': (0.9**3, 0.05),
        'backbone.stages.3.0.norm.weight': (0.9**1, 0.),
        'head.weight': (1., 0.05),
    }),
])
def test_learning_rates_and_weight_decay(decay_type, expected):
    wrapper = build_optim_wrapper(
        Segmentor(),
        dict(constructor='mmslak.LearningRateDecayOptimizerConstructor',
             optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
             paramwise_cfg=dict(decay_rate=0.9, decay_type=decay_type, num_layers=6)))
    found = {}
    for group in wrapper.optimizer.param_groups:
        for name in group['param_names']:
            found[name] = (group['lr'], group['weight_decay'])
    for name, (scale, weight_decay) in expected.items():
        assert found[name][0] == pytest.approx(1e-4 * scale), name
        assert found[name][1] == weight_decay, name


def test_missing_paramwise_keys_raise():
    with pytest.raises(ValueError, match='decay_rate'):
        build_optim_wrapper(
            Segmentor(),
            dict(constructor='mmslak.LearningRateDecayOptimizerConstructor',
                 optimizer=dict(type='AdamW', lr=1e-4), paramwise_cfg=dict(num_layers=6)))


def test_custom_keys_multiply_the_layer_rates():
    wrapper = build_optim_wrapper(
        Segmentor(),
        dict(constructor='mmslak.LearningRateDecayOptimizerConstructor',
             optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
             paramwise_cfg=dict(decay_rate=0.9, num_layers=6, custom_keys={
                 'head': dict(lr_mult=10., decay_mult=0.5),
                 'head.bias': dict(lr_mult=3.),
                 'stages.3': dict(decay_mult=0.)})))
    found = {name: (group['lr'], group['weight_decay'])
             for group in wrapper.optimizer.param_groups for name in group['param_names']}
    assert found['head.weight'] == (pytest.approx(1e-3), pytest.approx(0.025))
    assert found['head.bias'] == (pytest.approx(3e-4), 0.)  # the longer key wins
    assert found['backbone.stages.3.0.pwconv1.weight'] == (pytest.approx(1e-4 * 0.9), 0.)
    assert found['backbone.stages.2.4.pwconv1.weight'] == (pytest.approx(1e-4 * 0.9**3), 0.05)


@pytest.mark.parametrize('paramwise_cfg, message', [
    (dict(decay_rate=0.9, num_layers=6, bias_decay_mult=0.), 'bias_decay_mult'),
    (dict(decay_rate=0.9, num_layers=6, custom_keys={'head': dict(lr=1.)}), 'lr_mult'),
])
def test_paramwise_keys_that_would_be_ignored_raise(paramwise_cfg, message):
    with pytest.raises(ValueError, match=message):
        build_optim_wrapper(
            Segmentor(),
            dict(constructor='mmslak.LearningRateDecayOptimizerConstructor',
                 optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
                 paramwise_cfg=paramwise_cfg))
