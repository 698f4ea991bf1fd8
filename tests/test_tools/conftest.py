"""Helpers of the tool tests: load a tool script as a module, write tiny inputs."""
import importlib.util
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch

from mmslak.apis import build_downstream_model, load_downstream_config

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = osp.join(ROOT, 'tests', 'data', 'configs')
SEG_CONFIG = osp.join(CONFIGS, 'upernet_slak-test-tiny.py')
DET_CONFIG = osp.join(CONFIGS, 'mask-rcnn_slak-test-tiny_fpn.py')


def load_tool(relative_path):
    """Import a tool script (not a package module) by its path under the repository root."""
    path = osp.join(ROOT, relative_path)
    name = osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(f'tool_{name}', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_config(tmp_path, text, name='config.py'):
    """Write a config file and return its path."""
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.fixture
def non_slak_config(tmp_path):
    """An mmseg config whose backbone is the base's ResNet."""
    return write_config(tmp_path, "_base_ = ['mmseg::_base_/models/upernet_r50.py']\n"
                        "default_scope = 'mmseg'\n", 'resnet.py')


@pytest.fixture
def classifier_config(tmp_path):
    """A config of neither mmseg nor mmdet."""
    return write_config(tmp_path, "default_scope = 'mmpretrain'\n"
                        "model = dict(type='ImageClassifier')\n", 'classifier.py')


@pytest.fixture
def seg_checkpoint(tmp_path):
    """A whole-model checkpoint of the tiny segmentor with non-trivial BN and layer scale.

    Returns:
        tuple[str, nn.Module]: The path and the model (eval mode) it was saved from.
    """
    model = build_downstream_model(load_downstream_config(SEG_CONFIG))
    model.init_weights()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith('running_var'):
                buffer.copy_(torch.rand(buffer.shape, generator=generator) + 0.5)
            elif name.endswith('running_mean'):
                buffer.copy_(torch.randn(buffer.shape, generator=generator))
        for name, param in model.named_parameters():
            if name.endswith('gamma'):  # the training init 1e-6 would hide the kernels
                param.fill_(1.)
    path = tmp_path / 'seg.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return str(path), model.eval()


@pytest.fixture
def image_dir(tmp_path):
    """A folder with two small random images."""
    folder = tmp_path / 'images'
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        mmcv.imwrite((rng.random((80, 96, 3)) * 255).astype(np.uint8), str(folder / f'{i}.png'))
    return str(folder)


@pytest.fixture
def other_kernel_checkpoint(tmp_path):
    """A whole-model checkpoint of the tiny segmentor with a 15 x 15 first-stage kernel."""
    cfg = load_downstream_config(SEG_CONFIG)
    cfg.model.backbone.kernel_size = [15, 11, 9, 7, 3]
    path = tmp_path / 'seg_kernel15.pth'
    torch.save(dict(state_dict=build_downstream_model(cfg).state_dict(), meta=dict()), path)
    return str(path)
