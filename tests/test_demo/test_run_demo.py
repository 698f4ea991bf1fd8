"""The demo script draws predictions without gradients and stops at the number asked for."""
import importlib.util
import os.path as osp
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@pytest.fixture(scope='module')
def run_demo():
    spec = importlib.util.spec_from_file_location('run_demo',
                                                  osp.join(ROOT, 'demo', 'run_demo.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class DetectorStub:
    """Returns one box per image, computed from a parameter: it carries a gradient where
    gradients are enabled, as a detector's predictions do."""

    def __init__(self):
        self.scale = torch.nn.Parameter(torch.ones(()))

    def test_step(self, batch):
        return [
            DetDataSample(pred_instances=InstanceData(
                bboxes=self.scale * torch.tensor([[2., 2., 20., 20.]]),
                scores=self.scale * torch.tensor([0.9]),
                labels=torch.tensor([0])),
                          metainfo=dict(img_path=path)) for path in batch
        ]


def test_prediction_pictures_are_drawn_without_gradients(run_demo, tmp_path):
    paths = []
    for index in range(3):
        paths.append(str(tmp_path / f'image{index}.jpg'))
        run_demo.mmcv.imwrite(np.zeros((32, 32, 3), np.uint8), paths[-1])
    drawn = []

    def add_datasample(name, image, data_sample, out_file, **kwargs):
        assert not data_sample.pred_instances.bboxes.requires_grad
        drawn.append(out_file)

    runner = SimpleNamespace(test_dataloader=[paths[:2], paths[2:]],
                             model=DetectorStub(),
                             visualizer=SimpleNamespace(add_datasample=add_datasample))
    written = run_demo.save_prediction_pictures(runner, str(tmp_path / 'out'), num_pictures=2)
    assert written == drawn == [str(tmp_path / 'out' / f'image{i}.png') for i in range(2)]
