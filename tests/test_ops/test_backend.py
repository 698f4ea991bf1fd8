"""The backend switch (MMSLAK_OPS, use_ops), its one selection rule, the ops on every backend
against the functional reference, and the weight cache."""
import ast
import gc
import os.path as osp
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from torch.multiprocessing.reductions import StorageWeakRef

import mmslak
from mmslak.ops import (EvalBatchNorm, block_mlp, depthwise_conv_sum, depthwise_convs,
                        requested_backend, use_ops)
from mmslak.ops.cpu import depthwise as cpu_depthwise
from mmslak.ops.cpu import onednn
from mmslak.ops.weight_cache import cached_names

PACKAGE = osp.dirname(mmslak.__file__)
# the backends this machine has: cpu where oneDNN's fused operators exist
BACKENDS_HERE = ['torch'] + (['cpu'] if onednn.ONEDNN else [])


def test_use_ops_switches_and_restores():
    assert requested_backend() == 'auto'
    with pytest.raises(RuntimeError):
        with use_ops('torch'):
            assert requested_backend() == 'torch'
            raise RuntimeError
    assert requested_backend() == 'auto'
    with pytest.raises(ValueError, match=r"use_ops\(backend\) must be one of auto, torch, cpu, "
                       "triton, got 'gpu'"):
        use_ops('gpu').__enter__()


def test_mmslak_ops_is_read_and_checked_at_import():
    def run(value):
        return subprocess.run(
            [sys.executable, '-c', 'import mmslak.ops as ops; print(ops.requested_backend())'],
            capture_output=True, text=True, env={'MMSLAK_OPS': value, 'PATH': '/usr/bin:/bin'},
            timeout=120)

    assert run('torch').stdout.strip() == 'torch'
    result = run('gpu')
    assert result.returncode and \
        "MMSLAK_OPS must be one of auto, torch, cpu, triton, got 'gpu'" in \
        result.stderr


def test_forced_cpu_names_what_it_cannot_compute():
    x = torch.empty(1, 4, 8, 8, device='meta')
    weights = [torch.empty(4, 1, 5, 3, device='meta')]
    with use_ops('cpu'), pytest.raises(ValueError, match='MMSLAK_OPS=cpu, but the cpu backend '
                                       'cannot compute depthwise_convs here: the kernels take '
                                       'non-empty 4-D CPU tensors'):
        depthwise_convs(x, weights)
    assert depthwise_convs(x, weights)[0].device.type == 'meta'  # auto: the reference


def mlp_inputs(dtype=torch.float32):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 12, dtype=dtype)
    params = [torch.randn(48, 12), torch.randn(48), torch.randn(12, 48), torch.randn(12),
              torch.rand(12) + 0.5]
    # the residual with other strides: the NHWC view of an NCHW tensor
    return x, [p.to(dtype) for p in params], torch.randn(2, 12, 5, 7, dtype=dtype).permute(
        0, 2, 3, 1)


def mlp_reference(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, gamma, residual, approximate):
    out = F.linear(F.gelu(F.linear(x, fc1_weight, fc1_bias), approximate=approximate),
                   fc2_weight, fc2_bias)
    return residual + gamma * out


@pytest.mark.parametrize('backend', BACKENDS_HERE)
@pytest.mark.parametrize('approximate', ['none', 'tanh'])
def test_block_mlp_matches_the_functional_ops(backend, approximate):
    x, params, residual = mlp_inputs()
    expected = mlp_reference(x, *params, residual, approximate)
    with use_ops(backend), torch.no_grad():
        out = block_mlp(x, *params, residual=residual, approximate=approximate)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)
    leaves = [t.clone().requires_grad_() for t in (x, *params)]
    grads = []
    for ops in (backend, 'torch'):
        with use_ops(ops):
            out = block_mlp(*leaves, residual=residual, approximate=approximate)
        grads.append(torch.autograd.grad(out, leaves, torch.cos(out.detach())))
    for got, want in zip(*grads):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def branch_inputs():
    torch.manual_seed(0)
    x = torch.randn(2, 6, 11, 9).contiguous(memory_format=torch.channels_last)
    weights = [torch.randn(6, 1, *shape) for shape in [(9, 3), (3, 9), (3, 3)]]
    norms = [EvalBatchNorm(torch.randn(6), torch.rand(6) + 0.5, torch.randn(6), torch.randn(6),
                           1e-5) for _ in weights]
    return x, weights, norms


@pytest.mark.parametrize('backend', BACKENDS_HERE)
def test_depthwise_conv_sum_folds_what_batch_norm_computes(backend):
    x, weights, norms = branch_inputs()
    expected = sum(
        F.batch_norm(F.conv2d(x, w, padding=(w.shape[2] // 2, w.shape[3] // 2), groups=6),
                     *norm[:4], False, 0., norm.eps) for w, norm in zip(weights, norms))
    with use_ops(backend), torch.no_grad():
        out = depthwise_conv_sum(x, weights, norms=norms)
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_packed_weights_follow_the_parameters_and_free_them():
    if cpu_depthwise.why_not_kernel(branch_inputs()[0]) or not onednn.ONEDNN:
        pytest.skip('no compiled depthwise kernel or oneDNN here: nothing is packed')
    x, weights, norms = branch_inputs()
    weights = [torch.nn.Parameter(w) for w in weights]
    with torch.no_grad():
        before = depthwise_conv_sum(x, weights, norms=norms)
        assert cached_names(weights[0]) == {f'depthwise_packed_{cpu_depthwise._library().lanes}'}
        weights[1].mul_(2)  # in place: a new version
        with use_ops('torch'):
            expected = depthwise_conv_sum(x, weights, norms=norms)
        torch.testing.assert_close(depthwise_conv_sum(x, weights, norms=norms), expected,
                                   atol=1e-4, rtol=1e-5)
        assert not torch.allclose(before, expected)
    old = StorageWeakRef(weights[2].untyped_storage())
    weights[2].data = weights[2].data.double().float()  # new storage; the cache holds no old one
    gc.collect()
    assert old.expired()


def imports_of(path):
    tree = ast.parse(open(path).read(), path)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr == 'mkldnn' and isinstance(
                node.value, ast.Attribute) and node.value.attr == 'ops':
            yield node.lineno


def python_files():
    for root, _, files in __import__('os').walk(PACKAGE):
        yield from (osp.join(root, name) for name in files if name.endswith('.py'))


def test_torch_ops_mkldnn_is_called_from_the_ops_only():
    ops = osp.join(PACKAGE, 'ops') + osp.sep
    found = [f'{path}:{line}' for path in python_files() if not path.startswith(ops)
             for line in imports_of(path)]
    assert not found, f'torch.ops.mkldnn outside mmslak/ops: {found}'


def test_no_python_module_holds_c_source():
    markers = ('#include <', '__m256', '__m512', '#pragma omp')
    found = [path for path in python_files() if any(m in open(path).read() for m in markers)]
    assert not found, f'C source in Python modules: {found}'
    assert osp.isfile(osp.join(PACKAGE, 'ops', 'cpu', 'depthwise.c'))
