"""What SLaK tells a user whose input or arguments it cannot take, and empty batches."""
import pytest
import torch

import mmslak  # noqa: F401
from mmslak.ops import use_ops
from mmslak.registry import MODELS

TINY = dict(type='mmslak.SLaK', arch=dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64]),
            kernel_size=[13, 11, 9, 7, 3])
OUT_SHAPES = [(10, 16, 16), (20, 8, 8), (41, 4, 4), (83, 2, 2)]  # for a 64 x 64 input


@pytest.fixture(scope='module')
def backbone():
    return MODELS.build(TINY).eval()


@pytest.mark.parametrize('shape,message', [
    ((3, 64, 64), r'4-D inputs \(N, C, H, W\), got a 3-D tensor .*add a batch dimension'),
    ((1, 1, 3, 64, 64), r'got a 5-D tensor of shape \(1, 1, 3, 64, 64\)'),
    ((1, 64, 64, 3), r'looks channels-last \(N, H, W, C\): pass x.permute\(0, 3, 1, 2\)'),
    ((1, 4, 64, 64), r'built for in_channels=3, got an input with 4 channels'),
    ((1, 3, 64, 16), r'at least 32 x 32 pixels, got \(64, 16\)'),
])
def test_inputs_it_cannot_take(backbone, shape, message):
    with pytest.raises(ValueError, match=message):
        backbone(torch.zeros(shape))


def test_channels_last_hint_for_one_channel():
    model = MODELS.build(dict(TINY, in_channels=1)).eval()
    with pytest.raises(ValueError, match='looks channels-last'):
        model(torch.zeros(2, 64, 64, 1))


@pytest.mark.parametrize('kernel_size,error,message', [
    ([13., 11, 9, 7, 3], TypeError, r'must be integers, got \[13.0\]'),
    ([13, 11, 9, 7, True], TypeError, 'must be integers'),
    (13, TypeError, 'must be a sequence'),
    ([13, 11, 9, 7], ValueError, '5 entries'),
])
def test_kernel_sizes_it_cannot_take(kernel_size, error, message):
    with pytest.raises(error, match=message):
        MODELS.build(dict(TINY, kernel_size=kernel_size))


def test_numpy_integer_kernel_sizes_are_taken():
    np = pytest.importorskip('numpy')
    model = MODELS.build(dict(TINY, kernel_size=list(np.array([13, 11, 9, 7, 3]))))
    assert model.kernel_size == [13, 11, 9, 7, 3]
    assert all(type(k) is int for k in model.kernel_size)


@pytest.mark.parametrize('ops', ['auto', 'torch'])
@pytest.mark.parametrize('mode', ['train', 'eval', 'eval_no_grad', 'deploy'])
def test_an_empty_batch(ops, mode):
    """oneDNN builds no primitive for 0 rows: an empty batch must not reach it."""
    torch.manual_seed(0)
    model = MODELS.build(dict(TINY, with_cp=mode == 'train'))
    model.train(mode == 'train')
    if mode == 'deploy':
        model.switch_to_deploy()
    x = torch.randn(0, 3, 64, 64, requires_grad=mode in ('train', 'eval'))
    with torch.set_grad_enabled(mode != 'eval_no_grad'), use_ops(ops):
        outs = model(x)
    assert [tuple(out.shape) for out in outs] == [(0, *shape) for shape in OUT_SHAPES]
    if x.requires_grad:
        sum(out.sum() for out in outs).backward()
        assert x.grad.shape == x.shape
        if mode == 'train':
            grad = model.stages[0][0].pwconv1.weight.grad
            assert grad is not None and not grad.any()


def test_an_empty_batch_keeps_the_channels_last_layout():
    model = MODELS.build(TINY).eval()
    x = torch.randn(0, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        outs = model(x)
    assert all(out.shape[0] == 0 for out in outs)
