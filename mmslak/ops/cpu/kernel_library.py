"""Build, cache and load the channels-last depthwise convolution kernels of ``depthwise.c``.

The C source (shipped beside this module) computes stride-1, 'same'-padded depthwise convolutions
one register of channels at a time: 16 float32 lanes with AVX-512F, 8 with AVX2 + FMA, one source
compiled for either. It is compiled with the system C compiler (``$CC``, else ``cc``) into
``$MMSLAK_CACHE_DIR`` (default ``~/.cache/mmslak``) the first time it is needed, which takes about a
second, for the best instruction set the CPU has (its flags in ``/proc/cpuinfo``; a library built
for a flag the CPU lacks dies of SIGILL with no message, so the flags are checked before
building). ``MMSLAK_CPU_KERNEL`` selects:

- ``auto`` (the default): the best of AVX-512 and AVX2 the CPU has; none (oneDNN computes the
  inference sums, PyTorch the training convolutions) where neither is there, or no compiler, or
  not Linux on x86-64.
- ``avx512`` or ``avx2``: that kernel (``avx2`` on an AVX-512 CPU runs the lower one), and ``1``:
  the best one; these raise at the first call where it cannot run instead of falling back.
- ``0``: no kernel.
"""
import ctypes
import functools
import hashlib
import logging
import os
import os.path as osp
import platform
import subprocess
import sys
import tempfile
from typing import NamedTuple

import torch
from mmengine.logging import print_log

# Instruction sets, best first: float32 lanes per register, the CPU flags they need, name.
ISAS = {'avx512': (16, ('avx512f', ), 'AVX-512'), 'avx2': (8, ('avx2', 'fma'), 'AVX2')}
KERNEL_MODES = ('0', '1', 'auto', *ISAS)  # values of MMSLAK_CPU_KERNEL
SOURCE_PATH = osp.join(osp.dirname(__file__), 'depthwise.c')


@functools.lru_cache(maxsize=None)
def _source():
    """The C source of the kernels, package data beside this module."""
    with open(SOURCE_PATH) as source:
        return source.read()


def _cache_dir():
    default = osp.join(os.environ.get('XDG_CACHE_HOME', osp.expanduser('~/.cache')), 'mmslak')
    return os.environ.get('MMSLAK_CACHE_DIR', default)


def _cpu_signature():
    """The CPU's model and flags, which ``-march=native`` compiles for."""
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            return ''.join(line for line in cpuinfo
                           if line.startswith(('model name', 'flags')))[:4096]
    except OSError:
        return platform.processor()


def _cpuinfo_field(name):
    """The value of the first ``name`` line of ``/proc/cpuinfo``, or None without one."""
    with open('/proc/cpuinfo') as cpuinfo:
        for line in cpuinfo:
            if line.split(':', 1)[0].strip() == name:
                return line.split(':', 1)[1].strip()
    return None


def cpu_vendor():
    """The CPU's vendor (``'GenuineIntel'``, ``'AuthenticAMD'``, ...), or None if unknown."""
    try:
        return _cpuinfo_field('vendor_id')
    except OSError:
        return None


def _cpu_flags():
    """The CPU's feature flags as the OS enables them (``/proc/cpuinfo``), else torch's probe."""
    try:
        flags = _cpuinfo_field('flags')
        if flags is not None:
            return frozenset(flags.split())
    except OSError:
        pass
    capability = torch.backends.cpu.get_cpu_capability()
    if capability.startswith('AVX512'):
        return frozenset({'avx512f', 'avx2', 'fma'})
    return frozenset({'avx2', 'fma'} if capability == 'AVX2' else ())


def _unsupported(isa):
    """Why the kernel of ``isa`` cannot run on this machine, or None if it can."""
    if not sys.platform.startswith('linux') or platform.machine() not in ('x86_64', 'AMD64'):
        return f'they need Linux on x86-64, not {sys.platform} on {platform.machine()}'
    missing = [flag for flag in ISAS[isa][1] if flag not in _cpu_flags()]
    if missing:
        return f'this CPU lacks the flag{"s" * (len(missing) > 1)} {" and ".join(missing)}'
    return None


def _kernel_mode():
    """``MMSLAK_CPU_KERNEL``: one of :data:`KERNEL_MODES`, ``'auto'`` if unset.

    Raises:
        ValueError: For any other value.
    """
    mode = os.environ.get('MMSLAK_CPU_KERNEL', 'auto')
    if mode not in KERNEL_MODES:
        raise ValueError(f'MMSLAK_CPU_KERNEL must be 0 (oneDNN), auto (the best kernel the CPU '
                         f'runs, else oneDNN), 1 (require the best), avx512 or avx2 (require '
                         f'that one), got {mode!r}')
    return mode


def _build(compiler, isa):
    """Compile the kernel of ``isa`` into the cache (once per source, compiler, instruction set
    and CPU); return the path.

    The AVX2 kernel is built without AVX-512 (``-mno-avx512f``) even on a CPU that has it, so
    that it runs the instructions it would run on an AVX2 CPU.

    Raises:
        OSError: If the compiler is missing or fails.
    """
    lanes = ISAS[isa][0]
    flags = ['-O3', '-march=native', *(['-mno-avx512f'] if lanes == 8 else []),
             f'-DLANES={lanes}', '-fopenmp', '-shared', '-fPIC']
    key = hashlib.sha256('\0'.join([_source(), compiler, *flags, _cpu_signature()]).encode())
    path = osp.join(_cache_dir(), f'depthwise_{isa}_{key.hexdigest()[:16]}.so')
    if osp.exists(path):
        return path
    os.makedirs(_cache_dir(), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=_cache_dir()) as tmp:
        source, target = osp.join(tmp, 'depthwise.c'), osp.join(tmp, 'depthwise.so')
        with open(source, 'w') as out:
            out.write(_source())
        result = subprocess.run([compiler, *flags, source, '-o', target], capture_output=True,
                                text=True)
        if result.returncode:
            raise OSError(f'{compiler} failed: {result.stderr.strip()[-500:]}')
        os.replace(target, path)  # atomic: concurrent builders each leave a whole library
    return path


class KernelLibrary(NamedTuple):
    """A compiled kernel library: its instruction set, channels per register (the block of
    :class:`PackedKernels`), slab margin and C functions."""
    isa: str
    lanes: int
    margin: int
    forward: ctypes._CFuncPtr
    kernel_grad: ctypes._CFuncPtr


def _load(isa):
    """Build (or find in the cache) and load the kernel library of ``isa``.

    Raises:
        OSError: If the compiler is missing or fails.
    """
    library = ctypes.CDLL(_build(os.environ.get('CC', 'cc'), isa))
    pointer, integer, long = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
    library.depthwise_forward.argtypes = [pointer] * 2 + [integer] * 6 + [pointer] * 6 + \
        [long, integer]
    library.depthwise_kernel_grad.argtypes = [pointer] * 3 + [integer] * 5 + [pointer] * 4 + \
        [long, long, integer]
    return KernelLibrary(isa, library.depthwise_lanes(), library.depthwise_margin(),
                         library.depthwise_forward, library.depthwise_kernel_grad)


def _fall_back(reason):
    """Log why the kernels are not used, and return None (no library)."""
    print_log(f'mmslak: no depthwise CPU kernel runs here ({reason})',
              logger='current', level=logging.INFO)


@functools.lru_cache(maxsize=None)
def _library():
    """The kernel library ``MMSLAK_CPU_KERNEL`` selects, or None for no kernel.

    Raises:
        ValueError: If a required kernel (``1``, ``avx512``, ``avx2``) cannot run on this CPU.
        OSError: If a required kernel's build fails.
    """
    mode = _kernel_mode()
    if mode == '0':
        return None
    candidates = list(ISAS) if mode in ('auto', '1') else [mode]
    reasons = []
    for isa in candidates:
        reason = _unsupported(isa)
        if reason is None:
            try:
                return _load(isa)
            except OSError as error:
                reason = error
                if mode != 'auto':
                    raise
        reasons.append(f'{ISAS[isa][2]}: {reason}' if len(candidates) > 1 else str(reason))
    if mode != 'auto':
        wanted = ' or '.join(ISAS[isa][2] for isa in candidates)
        raise ValueError(f'MMSLAK_CPU_KERNEL={mode} requires the {wanted} depthwise kernel, '
                         f'but {"; ".join(reasons)}; unset MMSLAK_CPU_KERNEL to use what runs '
                         'here')
    return _fall_back('; '.join(reasons))


def kernel_lanes():
    """Channels per register of the depthwise kernel in use (16, 8), or None for none."""
    library = _library()
    return None if library is None else library.lanes


def kernel_isa():
    """The instruction set of the depthwise kernel in use (``'avx512'``, ``'avx2'``), or None
    where no kernel runs."""
    library = _library()
    return None if library is None else library.isa
