import pytest

from mmslak.models.layers import depthwise_kernel

# The depthwise kernels this CPU runs (AVX-512 and AVX2 on an AVX-512 CPU): every test that
# takes `kernel_isa` runs once with each, and with none on a CPU that runs neither.
ISAS_HERE = [isa for isa in depthwise_kernel.ISAS if depthwise_kernel._unsupported(isa) is None]


@pytest.fixture(params=ISAS_HERE)
def kernel_isa(request, monkeypatch):
    """Select the depthwise kernel of one instruction set (``MMSLAK_CPU_KERNEL``)."""
    monkeypatch.setenv('MMSLAK_CPU_KERNEL', request.param)
    depthwise_kernel._library.cache_clear()
    assert depthwise_kernel.kernel_isa() == request.param
    yield request.param
    depthwise_kernel._library.cache_clear()
