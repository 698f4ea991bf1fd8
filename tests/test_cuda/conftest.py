"""Fixtures of the device tests: each test runs on the CPU, and on CUDA where a device exists.

The CUDA variants are skipped, with the reason ``needs a CUDA device``, where PyTorch sees no
GPU. These tests import nothing from mmseg, mmdet or mmcv's compiled ops, so that a GPU machine
with mmengine and mmcv's pure-Python parts can run them (``tools/gpu_check/run.sh``).
"""
import pytest
import torch

import mmslak  # noqa: F401
from mmslak.registry import MODELS
from ..conftest import OFFICIAL_CKPT

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


@pytest.fixture(params=['cpu', pytest.param('cuda', marks=needs_cuda)])
def device(request):
    """The device of the test."""
    return torch.device(request.param)


@pytest.fixture
def exact_fp32():
    """float32 convolutions in full precision: cuDNN's default is TF32 on NVIDIA GPUs (matrix
    multiplies default to full precision already)."""
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        yield


def build_fixture_model(fixture_arch, device, **kwargs):
    """The backbone of the fixture checkpoint with its official weights, on ``device``.

    Args:
        fixture_arch (dict): Backbone config of the fixture's architecture.
        device (torch.device): Where to put the model.
        **kwargs: More backbone arguments, e.g. ``sparse=True``.

    Returns:
        nn.Module: The backbone, in training mode.
    """
    model = MODELS.build(dict(fixture_arch, init_cfg=dict(type='Pretrained',
                                                          checkpoint=OFFICIAL_CKPT), **kwargs))
    model.init_weights()
    return model.to(device)


def max_error(outputs, references):
    """The largest absolute difference over matching outputs (compared in float32)."""
    assert len(outputs) == len(references)
    errors = []
    for out, ref in zip(outputs, references):
        assert out.shape == ref.shape
        errors.append((out.float() - ref.float().to(out.device)).abs().max().item())
    return max(errors)
