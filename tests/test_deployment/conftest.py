import importlib.util
import os.path as osp

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from mmslak.apis import build_downstream_model, load_downstream_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO = osp.join(ROOT, 'configs', 'demo')
SEG_CONFIG = osp.join(DEMO, 'slak-nano_upernet_1xb8-200iter_tiny-ade20k-128x128.py')
CASCADE_CONFIG = osp.join(
    DEMO, 'cascade-mask-rcnn_slak-nano_fpn_4conv1fc-giou_ms-crop-24e_tiny-coco.py')
FASTER_CONFIG = osp.join(DEMO, 'faster-rcnn_slak-nano_fpn_8e_tiny-voc0712.py')


def load_tool(relative_path):
    """Import a tool script (not a package module) by its path under the repository root."""
    path = osp.join(ROOT, relative_path)
    spec = importlib.util.spec_from_file_location(
        'tool_' + osp.splitext(osp.basename(path))[0], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def save_random_checkpoint(config, filename, seed=0):
    """Initialise the model of ``config`` at random, BN statistics included, and save it whole.

    Random running means and variances make the BN folding of the deploy form non-trivial.
    """
    torch.manual_seed(seed)
    cfg = load_downstream_config(config)
    cfg.model.backbone.init_cfg = None
    model = build_downstream_model(cfg)
    model.init_weights()
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), filename)
    return filename


@pytest.fixture(scope='module')
def seg_checkpoint(tmp_path_factory):
    return save_random_checkpoint(SEG_CONFIG, str(tmp_path_factory.mktemp('seg') / 'seg.pth'))


@pytest.fixture(scope='module')
def cascade_checkpoint(tmp_path_factory):
    return save_random_checkpoint(CASCADE_CONFIG,
                                  str(tmp_path_factory.mktemp('det') / 'cascade.pth'))
