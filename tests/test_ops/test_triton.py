"""The triton backend's kernels against F.conv2d and its autograd, run by Triton's interpreter on
CPU tensors (``TRITON_INTERPRET=1``, set by the suite's conftest where no GPU is present), on
tiny shapes: the interpreter takes seconds per program."""
import copy
import json

import pytest
import torch
import torch.nn.functional as F

from mmslak.models.layers import LargeKernelConv
from mmslak.ops import depthwise_conv_sum, depthwise_convs, measure, use_ops
from mmslak.ops.triton import _why_not_installed, interpreting, why_not_triton
from mmslak.registry import MODELS

if _why_not_installed() is not None:
    pytest.skip(f'the triton backend cannot run here: {_why_not_installed()}',
                allow_module_level=True)
DEVICE = 'cuda' if torch.cuda.is_available() else 'cpu'
if DEVICE == 'cpu' and not interpreting():
    pytest.skip('no GPU, and TRITON_INTERPRET=1 was not set before triton was imported',
                allow_module_level=True)
TOLERANCES = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float16: dict(atol=2e-2, rtol=2e-3),
              torch.bfloat16: dict(atol=1e-1, rtol=1e-2)}
# bfloat16 arithmetic runs on a GPU only (the interpreter has none; its routing is tested here)
ON_GPU = pytest.mark.skipif(DEVICE == 'cpu', reason="Triton's interpreter has no bfloat16")


def conv(x, weight):
    return F.conv2d(x, weight, padding=(weight.shape[2] // 2, weight.shape[3] // 2),
                    groups=x.shape[1])


def inputs(shape, kernel_shapes, dtype=torch.float32, layout='nchw', seed=0):
    torch.manual_seed(seed)
    x = torch.randn(shape, device=DEVICE)
    if layout == 'channels_last':
        x = x.contiguous(memory_format=torch.channels_last)
    elif layout == 'sliced':  # non-contiguous: every other channel of a wider tensor
        x = torch.randn(shape[0], 2 * shape[1], *shape[2:], device=DEVICE)[:, ::2]
    kernels = [torch.randn(shape[1], 1, *k, device=DEVICE) / k[0] for k in kernel_shapes]
    return x.to(dtype), [k.to(dtype) for k in kernels]


def reference(x, kernels):
    """F.conv2d in float32 on the same (rounded) values."""
    return [conv(x.float(), k.float()) for k in kernels]


SLAK_BRANCHES = [(13, 5), (5, 13), (5, 5)]
CASES = [  # shape, kernels, layout
    ((1, 5, 11, 9), SLAK_BRANCHES, 'nchw'),  # rows and columns beyond one 8 x 8 tile
    ((2, 9, 7, 13), [(7, 7)], 'channels_last'),  # a dense k x k kernel, a channel tail
    ((1, 6, 4, 6), SLAK_BRANCHES, 'sliced'),  # kernels longer than the map, non-contiguous
]


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16,
                                   pytest.param(torch.bfloat16, marks=ON_GPU)])
@pytest.mark.parametrize('shape,kernel_shapes,layout', CASES)
def test_branches_and_their_gradients_match_conv2d(shape, kernel_shapes, layout, dtype):
    x, kernels = inputs(shape, kernel_shapes, dtype, layout)
    grads = [torch.randn(shape, device=DEVICE).to(dtype) for _ in kernels]
    leaves = [t.clone().requires_grad_() for t in (x, *kernels)]
    with use_ops('triton'):
        outs = depthwise_convs(leaves[0], leaves[1:])
    torch.autograd.backward(outs, grads)
    refs = [t.float().clone().requires_grad_() for t in (x, *kernels)]
    expected = reference(refs[0], refs[1:])
    torch.autograd.backward(expected, [g.float() for g in grads])
    for out, want in zip(outs, expected):
        assert out.dtype == dtype and out.stride() == x.stride() or layout == 'sliced'
        torch.testing.assert_close(out.float(), want, **TOLERANCES[dtype])
    for leaf, ref in zip(leaves, refs):  # input, then each kernel
        assert leaf.grad.dtype == dtype
        torch.testing.assert_close(leaf.grad.float(), ref.grad, **TOLERANCES[dtype])


@pytest.mark.parametrize('layout', ['nchw', 'channels_last'])
def test_inference_sum_with_bias_in_one_launch(layout):
    x, kernels = inputs((1, 5, 9, 11), SLAK_BRANCHES, layout=layout)
    biases = [torch.randn(5, device=DEVICE), None, torch.randn(5, device=DEVICE)]
    with use_ops('triton'), torch.no_grad():
        out = depthwise_conv_sum(x, kernels, biases)
    expected = sum(reference(x, kernels)) + (biases[0] + biases[2])[:, None, None]
    torch.testing.assert_close(out, expected, **TOLERANCES[torch.float32])
    assert out.is_contiguous(memory_format=torch.channels_last) == (layout == 'channels_last')


@pytest.mark.parametrize('batch', [0, 1])
def test_batches_of_zero_and_one(batch):
    x, kernels = inputs((batch, 4, 6, 6), [(5, 3)])
    x.requires_grad_()
    with use_ops('triton'):
        out, = depthwise_convs(x, kernels)
    out.sum().backward()
    assert out.shape == x.shape and x.grad.shape == x.shape
    torch.testing.assert_close(out, conv(x.detach(), kernels[0]))


@pytest.mark.parametrize('deploy', [False, True])
def test_large_kernel_conv_equals_the_torch_ops(deploy):
    torch.manual_seed(0)
    layer = LargeKernelConv(6, 9, 3).to(DEVICE)
    for bn in (layer.vertical.bn, layer.horizontal.bn, layer.small.bn):
        bn.running_var.uniform_(0.5, 2)
        bn.running_mean.normal_()
    x = torch.randn(2, 6, 10, 7, device=DEVICE)
    results = {}
    for ops in ('torch', 'triton'):
        trained = copy.deepcopy(layer)  # each updates its BN statistics once
        leaf = x.clone().requires_grad_()
        with use_ops(ops):
            out = trained.train()(leaf)
            out.backward(torch.cos(out.detach()))
            with torch.no_grad():
                evaluated = trained.eval()(x)
        results[ops] = [out, evaluated, leaf.grad, *(p.grad for p in trained.parameters())]
    for got, want in zip(results['triton'], results['torch']):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    if deploy:
        layer.switch_to_deploy()
        with torch.no_grad():
            with use_ops('torch'):
                expected = layer(x)
            with use_ops('triton'):
                torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=1e-5)


def test_nano_slak_forward_and_backward_equal_the_torch_ops():
    torch.manual_seed(0)
    nano = dict(depths=[1, 1, 1, 1], dims=[4, 8, 8, 8])
    model = MODELS.build(dict(type='mmslak.SLaK', arch=nano, width_factor=1.,
                              kernel_size=[7, 5, 5, 5, 3], layer_scale_init_value=0.5))
    model = model.to(DEVICE)
    x = torch.randn(2, 3, 32, 32, device=DEVICE)
    results = {}
    for ops in ('torch', 'triton'):
        model.zero_grad()
        leaf = x.clone().requires_grad_()
        with use_ops(ops):
            outs = model.train()(leaf)
            sum(out.square().mean() for out in outs).backward()
        results[ops] = [*outs, leaf.grad, *(p.grad.clone() for p in model.parameters())]
    for got, want in zip(results['triton'], results['torch']):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_bfloat16_is_routed_to_the_gpu_only():
    x, kernels = inputs((1, 4, 6, 6), [(5, 3)], torch.bfloat16)
    if DEVICE == 'cpu':
        assert 'no bfloat16 arithmetic' in why_not_triton(x, kernels)
        with use_ops('triton'), pytest.raises(
                ValueError, match='MMSLAK_OPS=triton, but the triton backend cannot compute '
                'depthwise_convs'):
            depthwise_convs(x, kernels)
        with use_ops('auto'):  # auto on the CPU: never the interpreter
            torch.testing.assert_close(depthwise_convs(x, kernels)[0], conv(x, kernels[0]))
    else:
        assert why_not_triton(x, kernels) is None
    meta = torch.empty(1, 4, 6, 6, dtype=torch.bfloat16, device='meta')
    assert 'the input is on meta' in why_not_triton(meta, [meta[:, :1]])


def test_the_fastest_candidate_is_measured_once_and_cached(tmp_path):
    times = {'triton': 1.0, 'torch': 3.0, 'torch_channels_last': 2.0}
    calls = []

    def timer(fn):
        name = next(name for name, candidate in candidates.items() if candidate is fn)
        calls.append(name)
        return times[name]

    candidates = {name: (lambda: None) for name in times}
    cache = tmp_path / 'choices.json'
    choice = measure.MeasuredChoice(timer, str(cache))
    assert choice.pick('key', candidates) == 'triton'
    times['triton'] = 9.0  # a later call is not measured again
    assert choice.pick('key', candidates) == 'triton'
    assert sorted(calls) == sorted(times)
    assert json.loads(cache.read_text()) == {'key': 'triton'}
    again = measure.MeasuredChoice(timer, str(cache))  # another process reads the file
    assert again.pick('key', candidates) == 'triton' and len(calls) == 3
    assert again.pick('other', candidates) == 'torch_channels_last'


def test_call_keys_tell_shapes_dtypes_layouts_and_kernels():
    x, kernels = inputs((1, 5, 9, 11), SLAK_BRANCHES)
    key = measure.call_key('depthwise_convs', 'forward', x, kernels)
    assert key == 'depthwise_convs/forward/1x5x9x11/float32/nchw/13x5,5x13,5x5'
    last = measure.call_key('depthwise_convs', 'forward',
                            x.contiguous(memory_format=torch.channels_last), kernels)
    assert last.endswith('/channels_last/13x5,5x13,5x5')
