"""oneDNN's fused operators of the CPU backend compute what the functional ops compute."""
import pytest
import torch
import torch.nn.functional as F

from mmslak.ops.cpu import onednn


@pytest.mark.skipif(not onednn.ONEDNN, reason='no oneDNN fused ops in this PyTorch')
@pytest.mark.parametrize('in_epilogue', [True, False])  # with AVX-512, elsewhere
@pytest.mark.parametrize('approximate', ['none', 'tanh'])
def test_fused_linear_gelu_in_or_after_the_epilogue(in_epilogue, approximate, monkeypatch):
    monkeypatch.setattr(onednn, 'gelu_in_epilogue', lambda: in_epilogue)
    x, weight, bias = torch.randn(37, 20), torch.randn(48, 20), torch.randn(48)
    out = onednn.fused_linear(x, onednn.pack_linear_weight(weight, 37), bias, gelu=approximate)
    torch.testing.assert_close(out, F.gelu(F.linear(x, weight, bias), approximate=approximate),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.skipif(not onednn.ONEDNN, reason='no oneDNN fused ops in this PyTorch')
@pytest.mark.parametrize('mkl_is_fast', [True, False])  # Intel CPUs, others
def test_linear_differentiates_through_mkl_or_onednn(mkl_is_fast, monkeypatch):
    monkeypatch.setattr(onednn, 'mkl_is_fast', lambda: mkl_is_fast)
    onednn_calls = []
    original = onednn._onednn_mm
    monkeypatch.setattr(onednn, '_onednn_mm', lambda a, b: onednn_calls.append(1) or
                        original(a, b))
    sources = [torch.randn(2, 5, 7, 20), torch.randn(48, 20), torch.randn(48)]
    results = []
    for fn in (onednn.linear, F.linear):
        inputs = [tensor.clone().requires_grad_() for tensor in sources]
        out = fn(*inputs)
        out.backward(torch.cos(out.detach()))
        results.append([out, *(tensor.grad for tensor in inputs)])
    assert 'OneDNNLinear' in type(results[0][0].grad_fn).__name__
    assert len(onednn_calls) == (0 if mkl_is_fast else 2)  # input and weight gradients
    for got, expected in zip(*results):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)
