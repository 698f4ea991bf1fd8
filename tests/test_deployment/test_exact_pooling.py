"""Adaptive average pooling as matrix products: exact, and exported at any input size."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmslak.deployment import OrtRunner, export_onnx
from mmslak.deployment.exact_pooling import (MatmulAdaptiveAvgPool2d, adaptive_avg_pool2d,
                                             exportable_adaptive_pools)

pytest.importorskip('onnxruntime', reason='the deploy extra (onnx, onnxruntime) is not installed')


@pytest.mark.parametrize('size,bins', [((16, 16), 6), ((16, 16), 3), ((2, 2), 4), ((7, 9), (3, 2)),
                                       ((17, 18), 6)])
def test_equals_adaptive_avg_pool2d(size, bins):
    x = torch.randn(2, 3, *size)
    torch.testing.assert_close(adaptive_avg_pool2d(x, bins), F.adaptive_avg_pool2d(x, bins))


def test_dynamic_export_pools_every_size(tmp_path):
    filename = str(tmp_path / 'pool.onnx')
    export_onnx(MatmulAdaptiveAvgPool2d(6).eval(), torch.randn(1, 2, 16, 16), filename,
                dynamic=True)
    run = OrtRunner(filename)
    for size in [(16, 16), (17, 18), (5, 7)]:
        x = torch.randn(1, 2, *size)
        torch.testing.assert_close(torch.from_numpy(run(x)[0]), F.adaptive_avg_pool2d(x, 6))


def test_pools_are_swapped_for_the_duration_only():
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Sequential(nn.AdaptiveAvgPool2d(3)))
    with exportable_adaptive_pools(model) as swapped:
        assert swapped == 1  # the global pool exports as it is
        assert isinstance(model[0], nn.AdaptiveAvgPool2d)
        assert isinstance(model[1][0], MatmulAdaptiveAvgPool2d)
    assert isinstance(model[1][0], nn.AdaptiveAvgPool2d)
