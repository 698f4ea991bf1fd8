"""Training on each device: mixed precision steps and sparse masks kept through optimizer steps."""
import pytest
import torch
from mmengine.optim import AmpOptimWrapper

from mmslak.utils.torch_compat import autocast_supports, grad_scaler
from .conftest import build_fixture_model, needs_cuda

DTYPES = [torch.float16, torch.bfloat16]
DTYPE_IDS = ['fp16', 'bf16']


def feature_loss(model, x):
    """A scalar that depends on every output of the backbone."""
    return sum(out.float().square().mean() + out.float().mean() for out in model(x))


def snapshot(model):
    return {name: param.detach().clone() for name, param in model.named_parameters()}


def moved(model, before):
    """Names of the parameters that differ from ``before``."""
    return [name for name, param in model.named_parameters()
            if not torch.equal(param.detach(), before[name])]


@pytest.mark.parametrize('dtype', DTYPES, ids=DTYPE_IDS)
def test_autocast_training_step(device, dtype, fixture_arch):
    if not autocast_supports(device.type, dtype):
        pytest.skip(f'torch {torch.__version__} has no {dtype} autocast on the {device.type}')
    model = build_fixture_model(fixture_arch, device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    # As AmpOptimWrapper: float16 losses are scaled; a step whose gradients overflow is skipped
    # and the scale lowered, so allow a few steps for one to go through.
    scaler = grad_scaler(device.type) if dtype == torch.float16 else None
    before = snapshot(model)
    x = torch.randn(2, 3, 64, 64, device=device)
    for _ in range(4):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype):
            loss = feature_loss(model, x)
        assert torch.isfinite(loss)
        if scaler is None:
            loss.backward()
        else:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        grads = [param.grad for param in model.parameters()]
        finite = all(grad is not None and torch.isfinite(grad).all() for grad in grads)
        if scaler is None:
            optimizer.step()
        else:
            scaler.step(optimizer)
            scaler.update()
        if finite:
            break
    assert finite, 'every step overflowed'
    assert any(grad.abs().sum() > 0 for grad in grads)
    assert moved(model, before)
    assert all(torch.isfinite(param).all() for param in model.parameters())


@needs_cuda
@pytest.mark.parametrize('dtype', DTYPES, ids=DTYPE_IDS)
def test_amp_optim_wrapper_step_on_cuda(dtype, fixture_arch):
    model = build_fixture_model(fixture_arch, torch.device('cuda')).train()
    wrapper = AmpOptimWrapper(optimizer=torch.optim.AdamW(model.parameters(), lr=1e-3),
                              dtype=dtype)
    before = snapshot(model)
    x = torch.randn(2, 3, 64, 64, device='cuda')
    for _ in range(4):
        with wrapper.optim_context(model):
            loss = feature_loss(model, x)
        assert torch.isfinite(loss)
        wrapper.update_params(loss)
        if moved(model, before):
            break
    assert moved(model, before), 'every step overflowed'
    assert all(torch.isfinite(param).all() for param in model.parameters())


def test_sparse_masks_survive_optimizer_steps(device, fixture_arch):
    model = build_fixture_model(fixture_arch, device, sparse=True).train()
    masks = {name[:-len('_mask')]: mask for name, mask in model.named_buffers()
             if name.endswith('weight_mask')}
    assert masks and all(mask.device.type == device.type for mask in masks.values())
    params = dict(model.named_parameters())
    assert all(torch.equal(params[name] != 0, mask) for name, mask in masks.items())
    before = snapshot(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.05)
    for _ in range(2):
        optimizer.zero_grad(set_to_none=True)
        feature_loss(model, torch.randn(2, 3, 64, 64, device=device)).backward()
        optimizer.step()
        model.apply_sparse_masks()
    for name, mask in masks.items():
        assert not params[name][~mask].any(), name
    assert set(moved(model, before)) & set(masks)
