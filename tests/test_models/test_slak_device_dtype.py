"""SLaK away from float32 on CPU, checked without a GPU: the deploy switch keeps each model's
dtype and device, a conversion frees the old weights, nothing reads a value back to the host
(meta tensors have none to read) and the route GPUs take compiles without graph breaks."""
import gc
import weakref

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

import mmslak  # noqa: F401
from mmslak.ops import use_ops
from mmslak.ops.cpu import onednn
from mmslak.ops.weight_cache import cached_names
from mmslak.registry import MODELS
from mmslak.utils.torch_compat import TORCH_VERSION

TINY = dict(type='mmslak.SLaK', arch=dict(depths=[1, 1, 1, 1], dims=[8, 16, 32, 64]),
            kernel_size=[13, 11, 9, 7, 3], layer_scale_init_value=0.5)


def build(**kwargs):
    """A tiny random SLaK in eval mode whose BNs fold into something other than the identity."""
    torch.manual_seed(0)
    model = MODELS.build(dict(TINY, **kwargs))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_()
    return model.eval()


def image(batch=1, size=64, **kwargs):
    """A fixed random input of ``batch`` RGB images of ``size x size``."""
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(1),
                       **kwargs)


def assert_outputs_close(outs, refs, atol):
    assert len(outs) == len(refs) == 4
    for out, ref in zip(outs, refs):
        assert out.dtype == ref.dtype and out.shape == ref.shape
        torch.testing.assert_close(out, ref, atol=atol, rtol=0)


# bfloat16 keeps 8 significant bits, a spacing of 2^-6 at the LayerNormed outputs (|y| < 4),
# and the fold rounds each merged kernel once more: 1 to 2 spacings apart are seen, so 4.
@pytest.mark.parametrize('dtype,atol', [(torch.float64, 1e-12), (torch.bfloat16, 2**-4)])
@pytest.mark.parametrize('ops', ['auto', 'torch'])
def test_switch_to_deploy_keeps_the_dtype(dtype, atol, ops):
    model = build().to(dtype)
    x = image(dtype=dtype)
    with torch.no_grad(), use_ops(ops):
        expected = model(x)
        model.switch_to_deploy()
        assert {param.dtype for param in model.parameters()} == {dtype}
        assert_outputs_close(model(x), expected, atol=atol)


@pytest.mark.parametrize('ops', ['auto', 'torch'])
def test_backbone_reads_nothing_back_on_meta_tensors(ops):
    """Meta tensors have no values: ``.item()``, ``bool()`` or a boolean mask raise on them, so
    a run on them proves that the forward and backward passes never wait for a GPU. The deploy
    switch must build its convolutions there too (on the CPU it used to)."""
    model = build(drop_path_rate=0.1).to('meta')
    x = torch.empty(2, 3, 64, 64, device='meta')
    with pytest.raises(RuntimeError, match='(?i)meta'):
        bool(x.sum() > 0)  # what the model must never do
    with use_ops(ops):
        sum(out.sum() for out in model.train()(x)).backward()
        assert model.stages[0][0].large_kernel.vertical.conv.weight.grad.device.type == 'meta'
        model.eval().switch_to_deploy()
        assert {param.device.type for param in model.parameters()} == {'meta'}
        with torch.no_grad():
            outs = model(x)
    assert [out.shape for out in outs] == [(2, c, 64 // 4 // 2**i, 64 // 4 // 2**i)
                                           for i, c in enumerate(model.channels)]
    assert all(out.device.type == 'meta' for out in outs)


@pytest.mark.skipif(not onednn.ONEDNN, reason='no oneDNN fused ops: nothing is cached')
@pytest.mark.parametrize('convert', [torch.float64, 'meta'])
def test_converting_a_model_frees_its_old_weights(convert):
    model = build()
    x = image()
    with torch.no_grad():
        expected = model(x)  # fills the inference caches with views of the weights
    assert any(cached_names(param) for param in model.parameters())
    old = [weakref.ref(tensor.untyped_storage())  # num_batches_tracked stays int64
           for tensor in [*model.parameters(), *model.buffers()] if tensor.is_floating_point()]
    model.to(convert)
    gc.collect()
    assert sum(ref() is not None for ref in old) == 0
    if convert != 'meta':  # and back: the caches rebuild from the converted weights
        with torch.no_grad():
            assert_outputs_close(model.float()(x), expected, atol=1e-6)


@pytest.fixture
def fresh_dynamo():
    """Each compiled model starts without the guards and recompilations of the last."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_compiled_plain_path_has_no_graph_break(fresh_dynamo, torch_ops):
    """``fullgraph=True`` raises at the first graph break of the plain path, the one CUDA takes.
    The ``aot_eager`` backend traces forward and backward through AOTAutograd as inductor does,
    without inductor's C++ compilation (over two minutes on two cores)."""
    model = build().train()
    compiled = torch.compile(model, backend='aot_eager', fullgraph=True)
    x = image(batch=2, size=32)  # two: BN in training needs more than one value
    outs, grads = [], []
    for forward in (compiled, model):
        leaf = x.clone().requires_grad_()
        outs.append(forward(leaf))
        sum(out.sum() for out in outs[-1]).backward()
        grads.append(leaf.grad)
    assert_outputs_close(*outs, atol=1e-5)
    torch.testing.assert_close(*grads, atol=1e-5, rtol=1e-5)
    model.eval()
    with torch.no_grad():
        assert_outputs_close(compiled(x), model(x), atol=1e-5)


@pytest.mark.skipif(TORCH_VERSION.release[:2] == (2, 1),
                    reason="torch 2.1's dynamo fails on BatchNorm of meta tensors ('Creating a new "
                    "Tensor subclass FakeTensor but the raw Tensor object is already associated')")
def test_default_ops_off_the_cpu_have_no_graph_break(fresh_dynamo):
    """Under ``MMSLAK_OPS=auto`` (the default) an input off the CPU takes the reference ops after
    the checks that pick the backend; dynamo traces meta tensors, like CUDA ones, as fake tensors
    off the CPU, so ``fullgraph=True`` proves that those checks break no graph."""
    model = build().to('meta')
    compiled = torch.compile(model, backend='eager', fullgraph=True)
    x = torch.empty(2, 3, 32, 32, device='meta')
    for mode in (True, False):
        outs = compiled.train(mode)(x)
        assert [out.shape[1] for out in outs] == model.channels
