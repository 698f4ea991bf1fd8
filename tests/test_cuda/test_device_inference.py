"""Inference on each device: the official outputs in float32 and under autocast, the deploy
form, and ``torch.compile``."""
import pytest
import torch

from mmslak.ops import use_ops
from mmslak.utils.torch_compat import autocast_supports
from .conftest import build_fixture_model, max_error

# Largest error against the float32 reference under autocast (outputs are LayerNorm'd, ~1).
AUTOCAST_ATOL = {torch.float16: 0.02, torch.bfloat16: 0.15}


def test_official_outputs_in_fp32(device, fixture_arch, official_reference, exact_fp32):
    model = build_fixture_model(fixture_arch, device).eval()
    with torch.no_grad():
        outputs = model(official_reference['input'].to(device))
    assert all(out.device.type == device.type for out in outputs)
    assert max_error(outputs, official_reference['outputs']) <= 1e-4


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16], ids=['fp16', 'bf16'])
def test_official_outputs_under_autocast(device, dtype, fixture_arch, official_reference):
    if not autocast_supports(device.type, dtype):
        pytest.skip(f'torch {torch.__version__} has no {dtype} autocast on the {device.type}')
    model = build_fixture_model(fixture_arch, device).eval()
    with torch.no_grad(), torch.autocast(device.type, dtype):
        outputs = model(official_reference['input'].to(device))
    assert all(torch.isfinite(out).all() for out in outputs)
    assert max_error(outputs, official_reference['outputs']) <= AUTOCAST_ATOL[dtype]


def test_deploy_form_matches_training_form(device, fixture_arch, official_reference, exact_fp32):
    model = build_fixture_model(fixture_arch, device).eval()
    x = official_reference['input'].to(device)
    with torch.no_grad():
        expected = model(x)
        model.switch_to_deploy()
        outputs = model(x)
    assert all(param.device.type == device.type for param in model.parameters())
    assert max_error(outputs, expected) <= 1e-4


def test_compiled_backbone_matches_eager(device, fixture_arch, official_reference, exact_fp32):
    torch._dynamo.reset()  # compile afresh, whatever an earlier test compiled
    # On the CPU the CPU backend's ctypes kernels and packed oneDNN weights do not compile: the
    # reference ops, which are also what runs on CUDA.
    model = build_fixture_model(fixture_arch, device).eval()
    compiled = torch.compile(model)
    x = official_reference['input'].to(device)
    with torch.no_grad(), use_ops('torch'):
        expected = model(x)
        outputs = compiled(x)
        again = compiled(x + 1)  # a second call reuses the compiled graph with new data
    assert max_error(outputs, expected) <= 1e-4
    assert max_error(again, model(x + 1)) <= 1e-4
