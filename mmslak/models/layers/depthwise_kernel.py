"""Channels-last depthwise convolution kernels for x86 CPUs (AVX-512 or AVX2 + FMA), built at
first use.

oneDNN runs SLaK's long depthwise kernels (51 x 5 and 5 x 51) well below the machine's
multiply-add rate, adds their outputs in separate passes, and differentiates them an order of
magnitude slower still. These C kernels compute stride-1, 'same'-padded depthwise convolutions
one register of channels at a time (16 float32 lanes with AVX-512F, 8 with AVX2 + FMA; one
source, compiled for either): each block of channels is copied, with zero margins, into a
row-major and a column-major slab, so that every kernel slides along a contiguous axis with the
inputs of its taps in registers or L1, and taps that read only padding are skipped. One call
computes several kernels: their sum plus a bias (inference, and the input gradient through the
flipped kernels) or their separate outputs (training), and another their kernel gradients.

They are compiled with the system C compiler (``$CC``, else ``cc``) into ``$MMSLAK_CACHE_DIR``
(default ``~/.cache/mmslak``) the first time they are needed, which takes about a second, for
the best instruction set the CPU has (its flags in ``/proc/cpuinfo``; a library built for a flag
the CPU lacks dies of SIGILL with no message, so the flags are checked before building).
``MMSLAK_CPU_KERNEL`` selects:

- ``auto`` (the default): the best of AVX-512 and AVX2 the CPU has; oneDNN where neither is
  there, or no compiler, or not Linux on x86-64 (:func:`depthwise_conv_sum` and
  :func:`depthwise_convs` return None and the callers fall back).
- ``avx512`` or ``avx2``: that kernel (``avx2`` on an AVX-512 CPU runs the lower one), and
  ``1``: the best one; these raise at the first call where it cannot run instead of falling
  back.
- ``0``: oneDNN.
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
import torch.nn.functional as F
from mmengine.logging import print_log

# Instruction sets, best first: float32 lanes per register, the CPU flags they need, name.
ISAS = {'avx512': (16, ('avx512f', ), 'AVX-512'), 'avx2': (8, ('avx2', 'fma'), 'AVX2')}
KERNEL_MODES = ('0', '1', 'auto', *ISAS)  # values of MMSLAK_CPU_KERNEL

_SOURCE = r'''
#include <immintrin.h>
#include <omp.h>
#include <string.h>

/* One source for two instruction sets: LANES (defined by the build: 16 for AVX-512F, 8 for
   AVX2 + FMA) float32 channels per register, the vector type and its few operations below. */
#if LANES == 16
#ifndef __AVX512F__
#error "LANES=16 needs AVX-512F"
#endif
typedef __m512 vec_t;
typedef __mmask16 lanes_t; /* which lanes of a vector are real channels */
#define TILE 8             /* outputs per tile, along the contiguous axis p of a slab */
#define CHUNK 6            /* taps per register-held window (32 registers) */
#define v_load _mm512_load_ps
#define v_loadu _mm512_loadu_ps
#define v_store _mm512_store_ps
#define v_storeu _mm512_storeu_ps
#define v_fmadd _mm512_fmadd_ps
static inline lanes_t first_lanes(int n) { return (lanes_t)((1u << n) - 1); }
static inline lanes_t no_lanes(void) { return 0; }
static inline vec_t v_loadu_lanes(lanes_t m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
static inline void v_storeu_lanes(float* p, lanes_t m, vec_t v) { _mm512_mask_storeu_ps(p, m, v); }
#elif LANES == 8
#if !defined(__AVX2__) || !defined(__FMA__)
#error "LANES=8 needs AVX2 and FMA"
#endif
typedef __m256 vec_t;
typedef __m256i lanes_t;
#define TILE 8
#define CHUNK 1 /* 16 registers: inputs are read by the FMAs from L1, not held */
#define v_load _mm256_load_ps
#define v_loadu _mm256_loadu_ps
#define v_store _mm256_store_ps
#define v_storeu _mm256_storeu_ps
#define v_fmadd _mm256_fmadd_ps
static inline lanes_t first_lanes(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
static inline lanes_t no_lanes(void) { return _mm256_setzero_si256(); }
static inline vec_t v_loadu_lanes(lanes_t m, const float* p) { return _mm256_maskload_ps(p, m); }
static inline void v_storeu_lanes(float* p, lanes_t m, vec_t v) { _mm256_maskstore_ps(p, m, v); }
#else
#error "LANES must be 16 (AVX-512F) or 8 (AVX2 + FMA)"
#endif
#define MARGIN (TILE - 1)

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

/* Geometry of one pass: a kernel K[a][b][LANES] of one channel block with ka taps along the
   slab's contiguous axis p (extent P) and kb taps along q (extent Q, slab stride sq). */
typedef struct { int P, Q, ka, kb; long sq; } pass_t;

/* out[p, q] = (init ? init[p, q] : bias) + sum_ab K[a][b] x[p + a - pa, q + b - pb] over one
   slab of LANES channels; taps reading only padding are skipped, partly padded ones read the
   zero margins. (isp, isq) and (osp, osq) are the strides of init and out along p and q. */
static void slide(pass_t g, const float* slab, const float* K, const float* init,
                  long isp, long isq, float* out, long osp, long osq, vec_t bias,
                  lanes_t mask) {
    int pa = g.ka / 2, pb = g.kb / 2;
    long ks = (long)g.kb * LANES;
    for (int q = 0; q < g.Q; ++q) {
        int b0 = imax(pb - q, 0), b1 = imin(g.Q + pb - q, g.kb);
        for (int p0 = 0; p0 < g.P; p0 += TILE) {
            int tp = imin(g.P - p0, TILE);
            int a0 = imax(pa - p0 - (tp - 1), 0), a1 = imin(g.P + pa - p0, g.ka);
            vec_t acc[TILE];
#pragma GCC unroll 16
            for (int o = 0; o < TILE; ++o)
                acc[o] = init ? v_load(init + (p0 + o) * isp + q * isq) : bias;
            for (int b = b0; b < b1; ++b) {
                const float* x = slab + (long)(p0 - pa) * LANES + (long)(q + b - pb) * g.sq;
                const float* k = K + (long)b * LANES;
                int a = a0;
                for (; a + CHUNK <= a1 && CHUNK > 1; a += CHUNK) {
                    vec_t in[TILE + CHUNK - 1], w[CHUNK];
#pragma GCC unroll 16
                    for (int r = 0; r < TILE + CHUNK - 1; ++r)
                        in[r] = v_load(x + (a + r) * LANES);
#pragma GCC unroll 16
                    for (int r = 0; r < CHUNK; ++r) w[r] = v_loadu(k + (a + r) * ks);
#pragma GCC unroll 16
                    for (int r = 0; r < CHUNK; ++r)
#pragma GCC unroll 16
                        for (int o = 0; o < TILE; ++o)
                            acc[o] = v_fmadd(in[o + r], w[r], acc[o]);
                }
                for (; a < a1; ++a) {
                    vec_t w = v_loadu(k + a * ks);
#pragma GCC unroll 16
                    for (int o = 0; o < TILE; ++o)
                        acc[o] = v_fmadd(v_load(x + (a + o) * LANES), w, acc[o]);
                }
            }
#pragma GCC unroll 16
            for (int o = 0; o < TILE; ++o)
                v_storeu_lanes(out + (p0 + o) * osp + q * osq, o < tp ? mask : no_lanes(),
                               acc[o]);
        }
    }
}

/* dK[a][b] += sum_pq grad[p, q] x[p + a - pa, q + b - pb] over one slab of LANES channels;
   dK is [ka][kb][LANES]. grad is read from NHWC with strides (gsp, gsq) and channel mask. */
static void slide_grad(pass_t g, const float* slab, const float* grad, long gsp, long gsq,
                       lanes_t mask, float* dK) {
    int pa = g.ka / 2, pb = g.kb / 2;
    for (int q = 0; q < g.Q; ++q) {
        int b0 = imax(pb - q, 0), b1 = imin(g.Q + pb - q, g.kb);
        for (int p0 = 0; p0 < g.P; p0 += TILE) {
            int tp = imin(g.P - p0, TILE);
            int a0 = imax(pa - p0 - (tp - 1), 0), a1 = imin(g.P + pa - p0, g.ka);
            vec_t gr[TILE];
#pragma GCC unroll 16
            for (int o = 0; o < TILE; ++o)
                gr[o] = v_loadu_lanes(o < tp ? mask : no_lanes(), grad + (p0 + o) * gsp + q * gsq);
            for (int b = b0; b < b1; ++b) {
                const float* x = slab + (long)(p0 - pa) * LANES + (long)(q + b - pb) * g.sq;
                float* d = dK + (long)b * LANES;
                long ds = (long)g.kb * LANES;
                int a = a0;
                for (; a + CHUNK <= a1 && CHUNK > 1; a += CHUNK) {
                    vec_t in[TILE + CHUNK - 1], acc[CHUNK];
#pragma GCC unroll 16
                    for (int r = 0; r < TILE + CHUNK - 1; ++r)
                        in[r] = v_load(x + (a + r) * LANES);
#pragma GCC unroll 16
                    for (int r = 0; r < CHUNK; ++r) acc[r] = v_load(d + (a + r) * ds);
#pragma GCC unroll 16
                    for (int o = 0; o < TILE; ++o)
#pragma GCC unroll 16
                        for (int r = 0; r < CHUNK; ++r)
                            acc[r] = v_fmadd(in[o + r], gr[o], acc[r]);
#pragma GCC unroll 16
                    for (int r = 0; r < CHUNK; ++r) v_store(d + (a + r) * ds, acc[r]);
                }
                for (; a < a1; ++a) {
                    vec_t acc = v_load(d + a * ds);
#pragma GCC unroll 16
                    for (int o = 0; o < TILE; ++o)
                        acc = v_fmadd(v_load(x + (a + o) * LANES), gr[o], acc);
                    v_store(d + a * ds, acc);
                }
            }
        }
    }
}

/* Scratch layout (64-byte aligned floats): a row-major [h][w][LANES] and a column-major
   [w][h][LANES] copy of one channel block, each with zero margins, then [h][w][LANES] partial
   sums. */
typedef struct { float *rows, *cols, *part; long hp, wp; } slabs_t;

static slabs_t slabs(float* scratch, int H, int W) {
    slabs_t s;
    s.hp = H + 2 * MARGIN;
    s.wp = W + 2 * MARGIN;
    long size = s.hp * s.wp * LANES;
    memset(scratch, 0, sizeof(float) * 2 * size);
    s.rows = scratch + (MARGIN * s.wp + MARGIN) * LANES;
    s.cols = scratch + size + (MARGIN * s.hp + MARGIN) * LANES;
    s.part = scratch + 2 * size;
    return s;
}

static void pack(slabs_t s, const float* x, int H, int W, int C, lanes_t mask) {
    for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) {
            vec_t v = v_loadu_lanes(mask, x + ((long)h * W + w) * C);
            v_store(s.rows + (h * s.wp + w) * LANES, v);
            v_store(s.cols + (w * s.hp + h) * LANES, v);
        }
}

/* The pass geometry of kernel t and the slab it slides over. */
static pass_t geometry(slabs_t s, int H, int W, int ka, int kb, int vertical, const float** slab) {
    pass_t g;
    g.ka = ka;
    g.kb = kb;
    g.P = vertical ? H : W;
    g.Q = vertical ? W : H;
    g.sq = vertical ? s.hp * LANES : s.wp * LANES;
    *slab = vertical ? s.cols : s.rows;
    return g;
}

/* Depthwise convolutions, stride 1, 'same' padding, NHWC float32, channel blocks [cb0, cb1) of
   every image. Kernel t is K[t] = [Cp / LANES][ka][kb][LANES] (each channel block's taps
   contiguous) with its ka taps along H if vertical[t], else along W, and reads xs[t]. With sum,
   out[0] = bias + sum_t conv(xs[t], K[t]); otherwise out[t] = conv(xs[t], K[t]) (bias may then
   be zeros). scratch: 3 * (H + 2 MARGIN) * (W + 2 MARGIN) * LANES. */
static void forward_blocks(const float* const* xs, float* const* outs, int sum, int N, int H,
                           int W, int C, int nk, const float* const* K, const int* ka,
                           const int* kb, const int* vertical, const float* bias, float* scratch,
                           int cb0, int cb1) {
    long image = (long)H * W * C, hs = (long)W * LANES;
    slabs_t s = slabs(scratch, H, W);
    for (int n = 0; n < N; ++n)
        for (int cb = cb0; cb < cb1; ++cb) {
            int c0 = cb * LANES;
            lanes_t mask = first_lanes(imin(C - c0, LANES)), all = first_lanes(LANES);
            vec_t b = v_loadu(bias + c0);
            for (int t = 0; t < nk; ++t) {
                if (t == 0 || xs[t] != xs[t - 1])
                    pack(s, xs[t] + n * image + c0, H, W, C, mask);
                int direct = !sum || t == nk - 1;
                const float* init = sum && t ? s.part : 0;
                float* dst = direct ? outs[sum ? 0 : t] + n * image + c0 : s.part;
                long dh = direct ? (long)W * C : hs, dw = direct ? C : LANES;
                const float* slab;
                const float* k = K[t] + (long)cb * ka[t] * kb[t] * LANES;
                pass_t g = geometry(s, H, W, ka[t], kb[t], vertical[t], &slab);
                if (vertical[t])
                    slide(g, slab, k, init, hs, LANES, dst, dh, dw, b, direct ? mask : all);
                else
                    slide(g, slab, k, init, LANES, hs, dst, dw, dh, b, direct ? mask : all);
            }
        }
}

/* Kernel gradients: dK[t] ([ka][kb][Cp], overwritten for channel blocks [cb0, cb1)) =
   sum over images and positions of grads[t] times the shifted x. dk_scratch holds one
   [ka][kb][LANES] block per kernel. */
static void kernel_grad_blocks(const float* x, const float* const* grads, float* const* dK,
                               int N, int H, int W, int C, int nk, const int* ka, const int* kb,
                               const int* vertical, float* scratch, float* dk_scratch, int cb0,
                               int cb1) {
    long Cp = (C + LANES - 1) / LANES * LANES, image = (long)H * W * C;
    slabs_t s = slabs(scratch, H, W);
    for (int cb = cb0; cb < cb1; ++cb) {
        int c0 = cb * LANES;
        lanes_t mask = first_lanes(imin(C - c0, LANES));
        long offset = 0;
        for (int t = 0; t < nk; ++t) {
            memset(dk_scratch + offset, 0, sizeof(float) * ka[t] * kb[t] * LANES);
            offset += (long)ka[t] * kb[t] * LANES;
        }
        for (int n = 0; n < N; ++n) {
            pack(s, x + n * image + c0, H, W, C, mask);
            offset = 0;
            for (int t = 0; t < nk; ++t) {
                const float* slab;
                pass_t g = geometry(s, H, W, ka[t], kb[t], vertical[t], &slab);
                const float* gn = grads[t] + n * image + c0;
                if (vertical[t])
                    slide_grad(g, slab, gn, (long)W * C, C, mask, dk_scratch + offset);
                else
                    slide_grad(g, slab, gn, C, (long)W * C, mask, dk_scratch + offset);
                offset += (long)ka[t] * kb[t] * LANES;
            }
        }
        offset = 0;
        for (int t = 0; t < nk; ++t) {
            for (long i = 0; i < (long)ka[t] * kb[t]; ++i)
                v_storeu(dK[t] + i * Cp + c0, v_load(dk_scratch + offset + i * LANES));
            offset += (long)ka[t] * kb[t] * LANES;
        }
    }
}

/* The channel blocks split evenly over an OpenMP team of `threads` (the runtime PyTorch runs
   its own parallel regions with, so that neither waits on the other's idle threads); thread i
   works in scratch + i * scratch_stride. */
#define SPLIT_BLOCKS(C, threads, body)                                                       \
    _Pragma("omp parallel num_threads(threads)") {                                         \
        int blocks = ((C) + LANES - 1) / LANES, i = omp_get_thread_num();                  \
        int n = omp_get_num_threads();                                                     \
        int cb0 = (long)blocks * i / n, cb1 = (long)blocks * (i + 1) / n;                  \
        float* own = scratch + i * scratch_stride;                                         \
        body;                                                                              \
    }

int depthwise_lanes(void) { return LANES; }
int depthwise_margin(void) { return MARGIN; }

void depthwise_forward(const float* const* xs, float* const* outs, int sum, int N, int H, int W,
                       int C, int nk, const float* const* K, const int* ka, const int* kb,
                       const int* vertical, const float* bias, float* scratch,
                       long scratch_stride, int threads) {
    SPLIT_BLOCKS(C, threads, forward_blocks(xs, outs, sum, N, H, W, C, nk, K, ka, kb, vertical,
                                            bias, own, cb0, cb1))
}

/* As kernel_grad_blocks over every channel block; each thread's dk_scratch follows its slabs. */
void depthwise_kernel_grad(const float* x, const float* const* grads, float* const* dK, int N,
                           int H, int W, int C, int nk, const int* ka, const int* kb,
                           const int* vertical, float* scratch, long scratch_stride,
                           long slab_size, int threads) {
    SPLIT_BLOCKS(C, threads, kernel_grad_blocks(x, grads, dK, N, H, W, C, nk, ka, kb, vertical,
                                                own, own + slab_size, cb0, cb1))
}
'''


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
    key = hashlib.sha256('\0'.join([_SOURCE, compiler, *flags, _cpu_signature()]).encode())
    path = osp.join(_cache_dir(), f'depthwise_{isa}_{key.hexdigest()[:16]}.so')
    if osp.exists(path):
        return path
    os.makedirs(_cache_dir(), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=_cache_dir()) as tmp:
        source, target = osp.join(tmp, 'depthwise.c'), osp.join(tmp, 'depthwise.so')
        with open(source, 'w') as out:
            out.write(_SOURCE)
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
    print_log(f'mmslak: no depthwise CPU kernel runs here ({reason}); using oneDNN',
              logger='current', level=logging.INFO)


@functools.lru_cache(maxsize=None)
def _library():
    """The kernel library ``MMSLAK_CPU_KERNEL`` selects, or None for oneDNN.

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
    """Channels per register of the depthwise kernel in use (16, 8), or None for oneDNN."""
    library = _library()
    return None if library is None else library.lanes


def kernel_isa():
    """The instruction set of the depthwise kernel in use (``'avx512'``, ``'avx2'``), or None
    where oneDNN computes the depthwise convolutions."""
    library = _library()
    return None if library is None else library.isa


def available(x, dtypes=(torch.float32, )):
    """Whether the kernels apply to ``x``: CPU, 4-D, non-empty, channels-last, built here.

    Args:
        x (Tensor): The input.
        dtypes (Sequence[torch.dtype]): The dtypes accepted (the kernels compute in float32;
            a caller that widens other inputs first names them). Defaults to float32.
    """
    return x.dtype in dtypes and x.device.type == 'cpu' and x.dim() == 4 and x.numel() > 0 and \
        x.is_contiguous(memory_format=torch.channels_last) and _library() is not None


def _pointers(tensors):
    return (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])


def _integers(values):
    return (ctypes.c_int * len(values))(*values)


class PackedKernels:
    """Kernels ``(C, 1, kh, kw)`` packed for the C code: ``[blocks of L channels][taps along
    the sliding axis][other taps][L]``, L being the lanes of the kernel library in use, sliding
    along H when at least as high as wide. (Kernel gradients come back as ``[taps along the
    sliding axis][other taps][C padded to L]``.)

    Packing once and passing the result to :func:`depthwise_conv_sum` saves repacking fixed
    kernels at every call. Only valid where a kernel library is in use (see
    :func:`available`).

    Args:
        kernels (Sequence[Tensor]): The kernels, all sizes odd.
        bias (Tensor, optional): Bias ``(C, )`` of their sum. Defaults to None.
    """

    def __init__(self, kernels, bias=None):
        self.lanes = _library().lanes
        self.channels = kernels[0].shape[0]
        self.padded = -(-self.channels // self.lanes) * self.lanes
        self.vertical = [k.shape[2] >= k.shape[3] for k in kernels]
        self.taps = [(k.shape[2], k.shape[3]) if v else (k.shape[3], k.shape[2])
                     for k, v in zip(kernels, self.vertical)]
        self.packed = [self.pack(k.detach().float(), v) for k, v in zip(kernels, self.vertical)]
        self.bias = None if bias is None else self.pad(bias)

    def pack(self, kernel, vertical):
        taps = kernel[:, 0].permute(1, 2, 0) if vertical else kernel[:, 0].permute(2, 1, 0)
        taps = F.pad(taps, (0, self.padded - self.channels))
        return taps.unflatten(2, (-1, self.lanes)).permute(2, 0, 1, 3).contiguous()

    def unpack(self, packed, vertical):
        taps = packed[..., :self.channels]
        return (taps.permute(2, 0, 1) if vertical else taps.permute(2, 1, 0)).unsqueeze(1)

    def geometry(self):
        """The ``ka, kb, vertical`` arrays of the C calls."""
        return (_integers([a for a, _ in self.taps]), _integers([b for _, b in self.taps]),
                _integers(self.vertical))

    def pad(self, vector):
        return F.pad(vector.detach().float(), (0, self.padded - self.channels)).contiguous()


def _run(shape, function, *args, extra=0):
    """Run a C kernel (a name of :class:`KernelLibrary`) over the channel blocks on
    ``torch.get_num_threads()`` OpenMP threads.

    Each thread gets its own slabs (and ``extra`` more floats of scratch, for gradients); the
    C function takes the scratch, its per-thread stride (and, with ``extra``, the slab size)
    and the thread count after ``args``.
    """
    n, c, h, w = shape
    library = _library()
    workers = max(1, min(torch.get_num_threads(), -(-c // library.lanes)))
    slab = 3 * (h + 2 * library.margin) * (w + 2 * library.margin) * library.lanes
    scratch = torch.empty(workers, slab + extra)
    sizes = [scratch.stride(0)] + ([slab] if extra else [])
    getattr(library, function)(*args, scratch.data_ptr(), *sizes, workers)


def _forward(inputs, kernels, total):
    """``bias + sum_t conv(inputs[t], kernel t)`` if ``total``, else each ``conv(x, kernel t)``
    (``kernels.bias`` is the bias; None for zeros)."""
    n, c, h, w = inputs[0].shape
    outs = [torch.empty_like(inputs[0], memory_format=torch.channels_last)
            for _ in range(1 if total else len(kernels.packed))]
    # held: the C code reads it through a raw pointer
    bias = inputs[0].new_zeros(kernels.padded) if kernels.bias is None else kernels.bias
    _run(inputs[0].shape, 'forward', _pointers(inputs), _pointers(outs),
         int(total), n, h, w, c, len(kernels.packed), _pointers(kernels.packed),
         *kernels.geometry(), bias.data_ptr())
    return outs


def depthwise_conv_sum(x, kernels, bias=None):
    """``bias`` plus the sum of stride-1 'same' depthwise convolutions of ``x``, in one pass.

    Args:
        x (Tensor): Input of shape ``(N, C, H, W)``.
        kernels (Sequence[Tensor] | PackedKernels): Kernels of shape ``(C, 1, kh, kw)``, all
            sizes odd, or the same packed with their bias.
        bias (Tensor, optional): Bias of shape ``(C, )``; None for packed kernels (which carry
            theirs) or no bias. Defaults to None.

    Returns:
        Tensor | None: The channels-last output, or None where the kernels do not apply (see
        :func:`available`). No autograd graph is recorded.
    """
    if not available(x):
        return None
    if not isinstance(kernels, PackedKernels):
        kernels = PackedKernels(kernels, bias)
    elif bias is not None:
        raise ValueError('packed kernels carry their bias; pass bias=None')
    if kernels.channels != x.shape[1]:
        raise ValueError(f'kernels for {kernels.channels} channels, input of {x.shape[1]}')
    if kernels.lanes != _library().lanes:
        raise ValueError(f'kernels packed for {kernels.lanes}-lane registers, but the '
                         f'{_library().isa} kernel in use has {_library().lanes}: pack them again')
    return _forward([x] * len(kernels.packed), kernels, total=True)[0]


class _DepthwiseConvs(torch.autograd.Function):
    """Separate bias-free depthwise convolutions of one input, differentiable."""

    @staticmethod
    def forward(ctx, x, *kernels):
        ctx.save_for_backward(x, *kernels)
        ctx.packed = PackedKernels(kernels)  # its layout serves the kernel gradients too
        return tuple(_forward([x] * len(kernels), ctx.packed, total=False))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads):
        x, *kernels = ctx.saved_tensors
        grads = [torch.zeros_like(x) if g is None else g.contiguous(
            memory_format=torch.channels_last) for g in grads]
        grad_x = None
        if ctx.needs_input_grad[0]:
            flipped = PackedKernels([k.flip(2, 3) for k in kernels])
            grad_x = _forward(grads, flipped, total=True)[0]
        return (grad_x, *_kernel_grads(x, grads, ctx.packed, ctx.needs_input_grad[1:]))


def _kernel_grads(x, grads, packed, needed):
    """The gradients of the kernels that need one (None for the others).

    Args:
        x (Tensor): The channels-last input of the forward pass.
        grads (Sequence[Tensor]): The channels-last gradient of each kernel's output.
        packed (PackedKernels): The kernels as packed for the forward pass (for their layout).
        needed (Sequence[bool]): Which kernels need a gradient.
    """
    if not any(needed):
        return [None] * len(needed)
    n, c, h, w = x.shape
    outs = [x.new_empty(a, b, packed.padded) for a, b in packed.taps]
    _run(x.shape, 'kernel_grad', x.data_ptr(), _pointers(grads),
         _pointers(outs), n, h, w, c, len(outs), *packed.geometry(),
         extra=sum(a * b for a, b in packed.taps) * packed.lanes)
    return [packed.unpack(out, vertical).contiguous() if need else None
            for out, vertical, need in zip(outs, packed.vertical, needed)]


def depthwise_convs(x, kernels):
    """Bias-free stride-1 'same' depthwise convolutions of ``x``, one output per kernel.

    Differentiable (once) with respect to ``x`` and the kernels.

    Args:
        x (Tensor): Input of shape ``(N, C, H, W)``.
        kernels (Sequence[Tensor]): Kernels of shape ``(C, 1, kh, kw)``, all sizes odd.

    Returns:
        tuple[Tensor] | None: The channels-last outputs, or None where the kernels do not apply
        (see :func:`available`).
    """
    if not available(x) or any(k.dtype != torch.float32 for k in kernels):
        return None
    return _DepthwiseConvs.apply(x, *kernels)
