import logging
import os
import os.path as osp

import pytest
import torch
from mmengine.logging import MMLogger

if not torch.cuda.is_available():  # the triton backend's tests run in Triton's interpreter
    os.environ.setdefault('TRITON_INTERPRET', '1')

from mmslak.ops.cpu import kernel_library

# torch.amp.GradScaler, the loss scaler of float16 training on the CPU, is in torch >= 2.3.
needs_cpu_grad_scaler = pytest.mark.skipif(
    not hasattr(torch.amp, 'GradScaler'),
    reason=f'torch {torch.__version__} has no CPU loss scaler (torch.amp.GradScaler, 2.3)')


def _cpu_half_matmul():
    try:
        torch.addmm(*torch.ones(3, 2, 2, dtype=torch.float16))
    except RuntimeError:  # "addmm_impl_cpu_" not implemented for 'Half' (torch 2.1)
        return False
    return True


needs_cpu_half_matmul = pytest.mark.skipif(
    not _cpu_half_matmul(), reason=f'torch {torch.__version__} has no float16 matmul on the CPU')
DATA = osp.join(osp.dirname(__file__), 'data')
OFFICIAL_CKPT = osp.join(DATA, 'slak_official_in1k_format.pth')
OFFICIAL_REF = osp.join(DATA, 'slak_official_in1k_format_ref.pt')


@pytest.fixture(scope='session')
def official_reference():
    """Config, input and outputs the official implementation computed for the fixture weights."""
    return torch.load(OFFICIAL_REF, weights_only=True)


@pytest.fixture
def fixture_arch():
    """Backbone arguments of the fixture checkpoint's architecture."""
    return dict(
        type='mmslak.SLaK',
        arch=dict(depths=[1, 1, 2, 1], dims=[16, 32, 64, 128]),
        kernel_size=[51, 49, 47, 13, 5],
        width_factor=1.3,
        decompose=True)


class _Collector(logging.Handler):

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    @property
    def text(self):
        return '\n'.join(self.messages)


@pytest.fixture
def mmlogs():
    """Messages logged through mmengine's current logger during the test."""
    logger = MMLogger.get_current_instance()
    collector = _Collector()
    logger.addHandler(collector)
    yield collector
    logger.removeHandler(collector)


@pytest.fixture
def torch_ops():
    """The reference ops (``mmslak.ops.use_ops('torch')``) for the whole test."""
    from mmslak.ops import use_ops
    with use_ops('torch'):
        yield


# The depthwise kernels this CPU runs (AVX-512 and AVX2 on an AVX-512 CPU): every test that
# takes `kernel_isa` runs once with each, and with none on a CPU that runs neither.
ISAS_HERE = [isa for isa in kernel_library.ISAS if kernel_library._unsupported(isa) is None]


@pytest.fixture(params=ISAS_HERE)
def kernel_isa(request, monkeypatch):
    """Select the depthwise kernel of one instruction set (``MMSLAK_CPU_KERNEL``)."""
    monkeypatch.setenv('MMSLAK_CPU_KERNEL', request.param)
    kernel_library._library.cache_clear()
    assert kernel_library.kernel_isa() == request.param
    yield request.param
    kernel_library._library.cache_clear()
