"""The CPU backend's compiled depthwise kernels: each instruction set this CPU runs computes what
conv2d does, and MMSLAK_CPU_KERNEL selects, requires or refuses them."""
import pytest
import torch
import torch.nn.functional as F

from mmslak.ops import depthwise_conv_sum, depthwise_convs, use_ops
from mmslak.ops.cpu import depthwise as cpu_depthwise
from mmslak.ops.cpu import kernel_library
from ..conftest import ISAS_HERE
from ..test_models.test_slak_backends import assert_outputs_close, pair


def conv2d_sum(x, kernels):
    return sum(F.conv2d(x, k, padding=(k.shape[2] // 2, k.shape[3] // 2), groups=x.shape[1])
               for k in kernels)


@pytest.mark.parametrize('shape,kernel_shapes', [
    ((2, 20, 19, 27), [(13, 3), (3, 13)]),  # channel, row and column tails; batch of two
    ((1, 32, 8, 16), [(11, 5), (5, 11)]),  # kernels longer than the input is high
    ((1, 7, 9, 9), [(7, 7)]),  # one square kernel (decompose=False)
    ((1, 5, 3, 2), [(51, 5), (5, 51), (5, 5)]),  # SLaK's kernels on a tiny map, fewer channels
])
def test_sum_matches_conv2d(shape, kernel_shapes, kernel_isa, monkeypatch):
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    kernels = [torch.randn(shape[1], 1, *size) for size in kernel_shapes]
    bias = torch.randn(shape[1])
    biases = [bias] + [None] * (len(kernels) - 1)
    calls = []
    original = cpu_depthwise.conv_sum
    monkeypatch.setattr(cpu_depthwise, 'conv_sum', lambda *args: calls.append(1) or original(*args))
    with use_ops('cpu'):
        out = depthwise_conv_sum(x, kernels, biases)
    assert calls and out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, conv2d_sum(x, kernels) + bias[:, None, None], atol=1e-5,
                               rtol=1e-5)
    assert cpu_depthwise.why_not_kernel(x.contiguous()) == 'the kernels take channels-last inputs'


def test_separate_outputs_and_gradients_match_conv2d(kernel_isa):
    shape = (2, 19, 17, 13)  # a channel tail for both lane widths
    x = torch.randn(shape).contiguous(memory_format=torch.channels_last)
    kernels = [torch.randn(19, 1, *size) for size in [(13, 5), (5, 13), (5, 5)]]
    grads = [torch.randn(shape) for _ in kernels]
    results = []
    for ops in ('cpu', 'torch'):
        inputs = [tensor.clone().requires_grad_() for tensor in [x, *kernels]]
        with use_ops(ops):
            outs = depthwise_convs(inputs[0], inputs[1:])
        torch.autograd.backward(outs, grads)
        results.append([*outs, *(tensor.grad for tensor in inputs)])
    for got, expected in zip(*results):
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-5)


def test_bf16_input_runs_the_float32_kernel(kernel_isa):
    """A bfloat16 input is widened (exactly) and the float32 sum rounded once: what oneDNN's
    bfloat16 convolutions compute, up to their own roundings, on any CPU with a kernel."""
    x = torch.randn(1, 24, 20, 20).bfloat16().contiguous(memory_format=torch.channels_last)
    kernels = [torch.randn(24, 1, *size) for size in [(13, 5), (5, 13)]]
    biases = [torch.randn(24) for _ in kernels]
    with torch.no_grad(), use_ops('cpu'):
        out = depthwise_conv_sum(x, kernels, biases)
    expected = conv2d_sum(x.float(), kernels) + sum(biases)[:, None, None]
    assert out.dtype == torch.bfloat16
    # one rounding of a float32 sum: within a bfloat16 step (2^-8 relative) of the exact value
    torch.testing.assert_close(out.float(), expected, atol=1e-5, rtol=2**-8)


@pytest.mark.parametrize('other', ISAS_HERE[1:] + ['0'] if ISAS_HERE else [])
def test_packed_kernels_follow_a_change_of_kernel(other, monkeypatch):
    """Packed for the best kernel here, then another instruction set (or none) is selected: the
    op repacks (or takes oneDNN); packed kernels of the old one are refused."""
    x = torch.randn(1, 16, 12, 12).contiguous(memory_format=torch.channels_last)
    kernels, biases = [torch.randn(16, 1, 7, 7)], [torch.randn(16)]
    try:
        monkeypatch.setenv('MMSLAK_CPU_KERNEL', ISAS_HERE[0])
        kernel_library._library.cache_clear()
        packed = cpu_depthwise.PackedKernels(kernels, biases[0])
        with torch.no_grad(), use_ops('cpu'):
            expected = depthwise_conv_sum(x, kernels, biases)
            monkeypatch.setenv('MMSLAK_CPU_KERNEL', other)
            kernel_library._library.cache_clear()
            torch.testing.assert_close(depthwise_conv_sum(x, kernels, biases), expected)
        if other != '0':
            with pytest.raises(ValueError, match=f'packed for {packed.lanes}-lane registers, '
                               f'but the {other} kernel in use has'):
                cpu_depthwise.conv_sum(x, packed)
    finally:
        kernel_library._library.cache_clear()


def assert_inference_matches_plain_path():
    """The fast path of a tiny SLaK (with whatever kernel is selected) computes the plain one."""
    fast, plain = pair()
    x = torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert_outputs_close(fast.eval()(x), plain.eval()(x), atol=1e-5)


@pytest.mark.parametrize('env', [dict(CC='no-such-compiler'), dict(MMSLAK_CPU_KERNEL='0')])
def test_unavailable_kernels_fall_back_to_onednn(env, monkeypatch, tmp_path):
    monkeypatch.setenv('MMSLAK_CACHE_DIR', str(tmp_path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    kernel_library._library.cache_clear()
    try:
        x = torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
        assert cpu_depthwise.why_not_kernel(x) is not None
        assert kernel_library.kernel_isa() is None
        assert_inference_matches_plain_path()
    finally:
        kernel_library._library.cache_clear()


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """The depthwise library looked up afresh, built (if at all) into an empty cache."""
    monkeypatch.setenv('MMSLAK_CACHE_DIR', str(tmp_path))
    kernel_library._library.cache_clear()
    yield
    kernel_library._library.cache_clear()


def cpu_with(monkeypatch, flags, buildable):
    """/proc/cpuinfo shows ``flags``; building a kernel outside ``buildable`` fails the test (a
    library built for a flag the CPU lacks dies of SIGILL, without a message)."""
    original = kernel_library._build

    def build(compiler, isa):
        assert isa in buildable, f'the {isa} kernel must not be built on this CPU'
        return original(compiler, isa)

    monkeypatch.setattr(kernel_library, '_cpu_flags', lambda: frozenset(flags))
    monkeypatch.setattr(kernel_library, '_build', build)


@pytest.fixture
def avx2_cpu(monkeypatch, fresh_library):
    if kernel_library._unsupported('avx2'):
        pytest.skip('this CPU cannot run the AVX2 kernel it stands in for')
    cpu_with(monkeypatch, {'sse4_2', 'avx2', 'fma'}, buildable={'avx2'})


@pytest.fixture
def sse_cpu(monkeypatch, fresh_library):
    cpu_with(monkeypatch, {'sse4_2', 'avx'}, buildable=set())


@pytest.mark.parametrize('mode', ['auto', '1', None])
def test_a_cpu_without_avx512_gets_the_avx2_kernel(mode, avx2_cpu, monkeypatch):
    if mode is None:
        monkeypatch.delenv('MMSLAK_CPU_KERNEL', raising=False)
    else:
        monkeypatch.setenv('MMSLAK_CPU_KERNEL', mode)
    assert kernel_library.kernel_isa() == 'avx2'
    assert_inference_matches_plain_path()


def test_requiring_avx512_on_a_cpu_without_it_names_the_flag(avx2_cpu, monkeypatch):
    monkeypatch.setenv('MMSLAK_CPU_KERNEL', 'avx512')
    fast, _ = pair()
    x = torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with pytest.raises(ValueError, match='MMSLAK_CPU_KERNEL=avx512 requires the AVX-512 '
                       'depthwise kernel, but this CPU lacks the flag avx512f; unset'):
        with torch.no_grad():
            fast.eval()(x)


@pytest.mark.parametrize('mode', ['1', 'avx2'])
def test_requiring_a_kernel_on_a_cpu_without_avx2_names_the_flags(mode, sse_cpu, monkeypatch):
    monkeypatch.setenv('MMSLAK_CPU_KERNEL', mode)
    wanted = 'AVX-512 or AVX2' if mode == '1' else 'AVX2'
    with pytest.raises(ValueError, match=f'MMSLAK_CPU_KERNEL={mode} requires the {wanted} '
                       'depthwise kernel, but .*this CPU lacks the flags avx2 and fma'):
        kernel_library._library()


def test_a_cpu_without_avx2_falls_back_to_onednn(sse_cpu, monkeypatch):
    monkeypatch.delenv('MMSLAK_CPU_KERNEL', raising=False)
    assert kernel_library._library() is None
    assert_inference_matches_plain_path()


def test_the_mode_is_checked(fresh_library, monkeypatch):
    monkeypatch.setenv('MMSLAK_CPU_KERNEL', 'yes')
    with pytest.raises(ValueError, match="must be 0 .*, auto .*, 1 .*, avx512 or avx2 .*, got "
                       "'yes'"):
        kernel_library._library()


@pytest.mark.parametrize('capability,flags', [
    ('AVX512', {'avx512f', 'avx2', 'fma'}), ('AVX2', {'avx2', 'fma'}), ('DEFAULT', set())])
def test_cpu_flags_from_torch_without_cpuinfo(capability, flags, monkeypatch):
    def no_cpuinfo(*args, **kwargs):
        raise OSError('no /proc here')

    monkeypatch.setattr('builtins.open', no_cpuinfo)
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: capability)
    assert kernel_library._cpu_flags() == flags
