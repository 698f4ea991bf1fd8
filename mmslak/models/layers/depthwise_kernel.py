"""Channels-last depthwise convolution kernels for x86 CPUs with AVX-512, built at first use.

oneDNN runs SLaK's long depthwise kernels (51 x 5 and 5 x 51) well below the machine's
multiply-add rate, adds their outputs in separate passes, and differentiates them an order of
magnitude slower still. These C kernels compute stride-1, 'same'-padded depthwise convolutions
16 channels at a time: each block of channels is copied, with zero margins, into a row-major and
a column-major slab, so that every kernel slides along a contiguous axis with the inputs of its
taps held in registers, and taps that read only padding are skipped. One call computes several
kernels: their sum plus a bias (inference, and the input gradient through the flipped kernels)
or their separate outputs (training), and another their kernel gradients.

They are compiled with the system C compiler (``$CC``, else ``cc``) into ``$MMSLAK_CACHE_DIR``
(default ``~/.cache/mmslak``) the first time they are needed, which takes about a second. Where
that is impossible (no compiler, a CPU without the ``avx512f`` flag, not Linux on x86-64) or
``MMSLAK_CPU_KERNEL=0`` is set, :func:`depthwise_conv_sum` and :func:`depthwise_convs` return
None and the callers fall back to oneDNN. ``MMSLAK_CPU_KERNEL=1`` requires the kernels: where
they cannot run, the first call raises instead of falling back. The CPU flag is checked before
building, since an AVX-512 library run on a CPU without it dies of SIGILL with no message.
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

import torch
import torch.nn.functional as F
from mmengine.logging import print_log

BLOCK = 16  # channels per AVX-512 register
REQUIRED_CPU_FLAG = 'avx512f'
KERNEL_MODES = ('0', '1', 'auto')  # values of MMSLAK_CPU_KERNEL: off, required, where possible
MARGIN = 7  # tile length - 1: the zero border each slab needs on every side

_SOURCE = r'''
#include <immintrin.h>
#include <omp.h>
#include <string.h>
#ifndef __AVX512F__
#error "the mmslak depthwise kernel needs AVX-512F"
#endif
#define TILE 8   /* outputs per tile, along the contiguous axis p of a slab */
#define CHUNK 6  /* taps per register-held window */
#define MARGIN (TILE - 1)

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

/* Geometry of one pass: a kernel K[a][b][16] of one channel block with ka taps along the slab's
   contiguous axis p (extent P) and kb taps along q (extent Q, slab stride sq). */
typedef struct { int P, Q, ka, kb; long sq; } pass_t;

/* out[p, q] = (init ? init[p, q] : bias) + sum_ab K[a][b] x[p + a - pa, q + b - pb] over one
   16-channel slab; taps reading only padding are skipped, partly padded ones read the zero
   margins. (isp, isq) and (osp, osq) are the strides of init and out along p and q. */
static void slide(pass_t g, const float* slab, const float* K, const float* init,
                  long isp, long isq, float* out, long osp, long osq, __m512 bias,
                  __mmask16 mask) {
    int pa = g.ka / 2, pb = g.kb / 2;
    long ks = (long)g.kb * 16;
    for (int q = 0; q < g.Q; ++q) {
        int b0 = imax(pb - q, 0), b1 = imin(g.Q + pb - q, g.kb);
        for (int p0 = 0; p0 < g.P; p0 += TILE) {
            int tp = imin(g.P - p0, TILE);
            int a0 = imax(pa - p0 - (tp - 1), 0), a1 = imin(g.P + pa - p0, g.ka);
            __m512 acc[TILE];
#pragma GCC unroll 16
            for (int o = 0; o < TILE; ++o)
                acc[o] = init ? _mm512_load_ps(init + (p0 + o) * isp + q * isq) : bias;
            for (int b = b0; b < b1; ++b) {
                const float* x = slab + (long)(p0 - pa) * 16 + (long)(q + b - pb) * g.sq;
                const float* k = K + (long)b * 16;
                int a = a0;
                for (; a + CHUNK <= a1; a += CHUNK) {
                    __m512 in[TILE + CHUNK - 1], w[CHUNK];
#pragma GCC unroll 16
                    for (int r = 0; r < TILE + CHUNK - 1; ++r)
                        in[r] = _mm512_load_ps(x + (a + r) * 16);
#pragma GCC unroll 16
                    for (int r = 0; r < CHUNK; ++r) w[r] = _mm512_loadu_ps(k + (a + r) * ks);
#pragma GCC unroll 16
                    for (int r = 0; r < CHUNK; ++r)
#pragma GCC unroll 16
                        for (int o = 0; o < TILE; ++o)
                            acc[o] = _mm512_fmadd_ps(in[o + r], w[r], acc[o]);
                }
                for (; a < a1; ++a) {
                    __m512 w = _mm512_loadu_ps(k + a * ks);
#pragma GCC unroll 16
                    for (int o = 0; o < TILE; ++o)
                        acc[o] = _mm512_fmadd_ps(_mm512_load_ps(x + (a + o) * 16), w, acc[o]);
                }
            }
#pragma GCC unroll 16
            for (int o = 0; o < TILE; ++o)
                _mm512_mask_storeu_ps(out + (p0 + o) * osp + q * osq, o < tp ? mask : 0, acc[o]);
        }
    }
}

/* dK[a][b] += sum_pq grad[p, q] x[p + a - pa, q + b - pb] over one 16-channel slab; dK is
   [ka][kb][16]. grad is read from NHWC with strides (gsp, gsq) and channel mask. */
static void slide_grad(pass_t g, const float* slab, const float* grad, long gsp, long gsq,
                       __mmask16 mask, float* dK) {
    int pa = g.ka / 2, pb = g.kb / 2;
    for (int q = 0; q < g.Q; ++q) {
        int b0 = imax(pb - q, 0), b1 = imin(g.Q + pb - q, g.kb);
        for (int p0 = 0; p0 < g.P; p0 += TILE) {
            int tp = imin(g.P - p0, TILE);
            int a0 = imax(pa - p0 - (tp - 1), 0), a1 = imin(g.P + pa - p0, g.ka);
            __m512 gr[TILE];
#pragma GCC unroll 16
            for (int o = 0; o < TILE; ++o)
                gr[o] = _mm512_maskz_loadu_ps(o < tp ? mask : 0, grad + (p0 + o) * gsp + q * gsq);
            for (int b = b0; b < b1; ++b) {
                const float* x = slab + (long)(p0 - pa) * 16 + (long)(q + b - pb) * g.sq;
                float* d = dK + (long)b * 16;
                long ds = (long)g.kb * 16;
                int a = a0;
                for (; a + CHUNK <= a1; a += CHUNK) {
                    __m512 in[TILE + CHUNK - 1], acc[CHUNK];
#pragma GCC unroll 16
                    for (int r = 0; r < TILE + CHUNK - 1; ++r)
                        in[r] = _mm512_load_ps(x + (a + r) * 16);
#pragma GCC unroll 16
                    for (int r = 0; r < CHUNK; ++r) acc[r] = _mm512_load_ps(d + (a + r) * ds);
#pragma GCC unroll 16
                    for (int o = 0; o < TILE; ++o)
#pragma GCC unroll 16
                        for (int r = 0; r < CHUNK; ++r)
                            acc[r] = _mm512_fmadd_ps(in[o + r], gr[o], acc[r]);
#pragma GCC unroll 16
                    for (int r = 0; r < CHUNK; ++r) _mm512_store_ps(d + (a + r) * ds, acc[r]);
                }
                for (; a < a1; ++a) {
                    __m512 acc = _mm512_load_ps(d + a * ds);
#pragma GCC unroll 16
                    for (int o = 0; o < TILE; ++o)
                        acc = _mm512_fmadd_ps(_mm512_load_ps(x + (a + o) * 16), gr[o], acc);
                    _mm512_store_ps(d + a * ds, acc);
                }
            }
        }
    }
}

/* Scratch layout (64-byte aligned floats): a row-major [h][w][16] and a column-major [w][h][16]
   copy of one 16-channel block, each with zero margins, then [h][w][16] partial sums. */
typedef struct { float *rows, *cols, *part; long hp, wp; } slabs_t;

static slabs_t slabs(float* scratch, int H, int W) {
    slabs_t s;
    s.hp = H + 2 * MARGIN;
    s.wp = W + 2 * MARGIN;
    long size = s.hp * s.wp * 16;
    memset(scratch, 0, sizeof(float) * 2 * size);
    s.rows = scratch + (MARGIN * s.wp + MARGIN) * 16;
    s.cols = scratch + size + (MARGIN * s.hp + MARGIN) * 16;
    s.part = scratch + 2 * size;
    return s;
}

static void pack(slabs_t s, const float* x, int H, int W, int C, __mmask16 mask) {
    for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) {
            __m512 v = _mm512_maskz_loadu_ps(mask, x + ((long)h * W + w) * C);
            _mm512_store_ps(s.rows + (h * s.wp + w) * 16, v);
            _mm512_store_ps(s.cols + (w * s.hp + h) * 16, v);
        }
}

/* The pass geometry of kernel t and the slab it slides over. */
static pass_t geometry(slabs_t s, int H, int W, int ka, int kb, int vertical, const float** slab) {
    pass_t g;
    g.ka = ka;
    g.kb = kb;
    g.P = vertical ? H : W;
    g.Q = vertical ? W : H;
    g.sq = vertical ? s.hp * 16 : s.wp * 16;
    *slab = vertical ? s.cols : s.rows;
    return g;
}

/* Depthwise convolutions, stride 1, 'same' padding, NHWC float32, channel blocks [cb0, cb1) of
   every image. Kernel t is K[t] = [Cp / 16][ka][kb][16] (each channel block's taps contiguous)
   with its ka taps along H if vertical[t], else
   along W, and reads xs[t]. With sum, out[0] = bias + sum_t conv(xs[t], K[t]); otherwise
   out[t] = conv(xs[t], K[t]) (bias may then be zeros). scratch: 3 * (H + 14) * (W + 14) * 16. */
static void forward_blocks(const float* const* xs, float* const* outs, int sum, int N, int H,
                           int W, int C, int nk, const float* const* K, const int* ka,
                           const int* kb, const int* vertical, const float* bias, float* scratch,
                           int cb0, int cb1) {
    long image = (long)H * W * C, hs = (long)W * 16;
    slabs_t s = slabs(scratch, H, W);
    for (int n = 0; n < N; ++n)
        for (int cb = cb0; cb < cb1; ++cb) {
            int c0 = cb * 16;
            __mmask16 mask = (__mmask16)((1u << imin(C - c0, 16)) - 1);
            __m512 b = _mm512_loadu_ps(bias + c0);
            for (int t = 0; t < nk; ++t) {
                if (t == 0 || xs[t] != xs[t - 1])
                    pack(s, xs[t] + n * image + c0, H, W, C, mask);
                int direct = !sum || t == nk - 1;
                const float* init = sum && t ? s.part : 0;
                float* dst = direct ? outs[sum ? 0 : t] + n * image + c0 : s.part;
                long dh = direct ? (long)W * C : hs, dw = direct ? C : 16;
                const float* slab;
                const float* k = K[t] + (long)cb * ka[t] * kb[t] * 16;
                pass_t g = geometry(s, H, W, ka[t], kb[t], vertical[t], &slab);
                if (vertical[t])
                    slide(g, slab, k, init, hs, 16, dst, dh, dw, b, direct ? mask : 0xFFFF);
                else
                    slide(g, slab, k, init, 16, hs, dst, dw, dh, b, direct ? mask : 0xFFFF);
            }
        }
}

/* Kernel gradients: dK[t] ([ka][kb][Cp], overwritten for channel blocks [cb0, cb1)) =
   sum over images and positions of grads[t] times the shifted x. dk_scratch holds one
   [ka][kb][16] block per kernel. */
static void kernel_grad_blocks(const float* x, const float* const* grads, float* const* dK,
                               int N, int H, int W, int C, int nk, const int* ka, const int* kb,
                               const int* vertical, float* scratch, float* dk_scratch, int cb0,
                               int cb1) {
    long Cp = (C + 15) / 16 * 16, image = (long)H * W * C;
    slabs_t s = slabs(scratch, H, W);
    for (int cb = cb0; cb < cb1; ++cb) {
        int c0 = cb * 16;
        __mmask16 mask = (__mmask16)((1u << imin(C - c0, 16)) - 1);
        long offset = 0;
        for (int t = 0; t < nk; ++t) {
            memset(dk_scratch + offset, 0, sizeof(float) * ka[t] * kb[t] * 16);
            offset += (long)ka[t] * kb[t] * 16;
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
                offset += (long)ka[t] * kb[t] * 16;
            }
        }
        offset = 0;
        for (int t = 0; t < nk; ++t) {
            for (long i = 0; i < (long)ka[t] * kb[t]; ++i)
                _mm512_storeu_ps(dK[t] + i * Cp + c0, _mm512_load_ps(dk_scratch + offset + i * 16));
            offset += (long)ka[t] * kb[t] * 16;
        }
    }
}

/* The channel blocks split evenly over an OpenMP team of `threads` (the runtime PyTorch runs
   its own parallel regions with, so that neither waits on the other's idle threads); thread i
   works in scratch + i * scratch_stride. */
#define SPLIT_BLOCKS(C, threads, body)                                                       \
    _Pragma("omp parallel num_threads(threads)") {                                         \
        int blocks = ((C) + 15) / 16, i = omp_get_thread_num(), n = omp_get_num_threads(); \
        int cb0 = (long)blocks * i / n, cb1 = (long)blocks * (i + 1) / n;                  \
        float* own = scratch + i * scratch_stride;                                         \
        body;                                                                              \
    }

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


def _cpu_flags():
    """The CPU's feature flags as the OS enables them (``/proc/cpuinfo``), else torch's probe."""
    try:
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('flags'):
                    return frozenset(line.split(':', 1)[1].split())
    except OSError:
        pass
    avx512 = torch.backends.cpu.get_cpu_capability().startswith('AVX512')
    return frozenset([REQUIRED_CPU_FLAG] if avx512 else [])


def _unsupported():
    """Why the kernels cannot run on this machine, or None if they can."""
    if not sys.platform.startswith('linux') or platform.machine() not in ('x86_64', 'AMD64'):
        return f'they need Linux on x86-64, not {sys.platform} on {platform.machine()}'
    if REQUIRED_CPU_FLAG not in _cpu_flags():
        return f'this CPU lacks the flag {REQUIRED_CPU_FLAG} (AVX-512)'
    return None


def _kernel_mode():
    """``MMSLAK_CPU_KERNEL``: ``'0'``, ``'1'`` or ``'auto'`` (the default).

    Raises:
        ValueError: For any other value.
    """
    mode = os.environ.get('MMSLAK_CPU_KERNEL', 'auto')
    if mode not in KERNEL_MODES:
        raise ValueError(f'MMSLAK_CPU_KERNEL must be 0 (oneDNN), 1 (require the AVX-512 '
                         f'kernels) or auto, got {mode!r}')
    return mode


def _build(compiler):
    """Compile the kernels into the cache (once per source, compiler and CPU); return the path.

    Raises:
        OSError: If the compiler is missing or fails.
    """
    flags = ['-O3', '-march=native', '-fopenmp', '-shared', '-fPIC']
    key = hashlib.sha256('\0'.join([_SOURCE, compiler, *flags, _cpu_signature()]).encode())
    path = osp.join(_cache_dir(), f'depthwise_{key.hexdigest()[:16]}.so')
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


def _fall_back(reason):
    """Log why the kernels are not used, and return None (no library)."""
    print_log(f'mmslak: the AVX-512 depthwise kernels are unavailable ({reason}); using oneDNN',
              logger='current', level=logging.INFO)


@functools.lru_cache(maxsize=None)
def _library():
    """The compiled kernels, or None where they cannot be built.

    Raises:
        ValueError: If ``MMSLAK_CPU_KERNEL=1`` requires them on a machine they cannot run on.
        OSError: If ``MMSLAK_CPU_KERNEL=1`` requires them and the compiler fails.
    """
    mode = _kernel_mode()
    if mode == '0':
        return None
    unsupported = _unsupported()
    if unsupported and mode == '1':
        raise ValueError(f'MMSLAK_CPU_KERNEL=1 requires the AVX-512 depthwise kernels, but '
                         f'{unsupported}; unset MMSLAK_CPU_KERNEL to use oneDNN instead')
    if unsupported:
        return _fall_back(unsupported)
    try:
        library = ctypes.CDLL(_build(os.environ.get('CC', 'cc')))
    except OSError as error:
        if mode == '1':
            raise
        return _fall_back(error)
    pointer, integer, long = ctypes.c_void_p, ctypes.c_int, ctypes.c_long
    library.depthwise_forward.argtypes = [pointer] * 2 + [integer] * 6 + [pointer] * 6 + \
        [long, integer]
    library.depthwise_kernel_grad.argtypes = [pointer] * 3 + [integer] * 5 + [pointer] * 4 + \
        [long, long, integer]
    return library


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
    """Kernels ``(C, 1, kh, kw)`` packed for the C code: ``[blocks of 16 channels][taps along
    the sliding axis][other taps][16]``, sliding along H when at least as high as wide. (Kernel
    gradients come back as ``[taps along the sliding axis][other taps][C padded to 16]``.)

    Packing once and passing the result to :func:`depthwise_conv_sum` saves repacking fixed
    kernels at every call.

    Args:
        kernels (Sequence[Tensor]): The kernels, all sizes odd.
        bias (Tensor, optional): Bias ``(C, )`` of their sum. Defaults to None.
    """

    def __init__(self, kernels, bias=None):
        self.channels = kernels[0].shape[0]
        self.padded = -(-self.channels // BLOCK) * BLOCK
        self.vertical = [k.shape[2] >= k.shape[3] for k in kernels]
        self.taps = [(k.shape[2], k.shape[3]) if v else (k.shape[3], k.shape[2])
                     for k, v in zip(kernels, self.vertical)]
        self.packed = [self.pack(k.detach().float(), v) for k, v in zip(kernels, self.vertical)]
        self.bias = None if bias is None else self.pad(bias)

    def pack(self, kernel, vertical):
        taps = kernel[:, 0].permute(1, 2, 0) if vertical else kernel[:, 0].permute(2, 1, 0)
        taps = F.pad(taps, (0, self.padded - self.channels))
        return taps.unflatten(2, (-1, BLOCK)).permute(2, 0, 1, 3).contiguous()

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
    """Run a C kernel over the channel blocks on ``torch.get_num_threads()`` OpenMP threads.

    Each thread gets its own slabs (and ``extra`` more floats of scratch, for gradients); the
    C function takes the scratch, its per-thread stride (and, with ``extra``, the slab size)
    and the thread count after ``args``.
    """
    n, c, h, w = shape
    workers = max(1, min(torch.get_num_threads(), -(-c // BLOCK)))
    slab = 3 * (h + 2 * MARGIN) * (w + 2 * MARGIN) * BLOCK
    scratch = torch.empty(workers, slab + extra)
    sizes = [scratch.stride(0)] + ([slab] if extra else [])
    function(*args, scratch.data_ptr(), *sizes, workers)


def _forward(inputs, kernels, total):
    """``bias + sum_t conv(inputs[t], kernel t)`` if ``total``, else each ``conv(x, kernel t)``
    (``kernels.bias`` is the bias; None for zeros)."""
    n, c, h, w = inputs[0].shape
    outs = [torch.empty_like(inputs[0], memory_format=torch.channels_last)
            for _ in range(1 if total else len(kernels.packed))]
    # held: the C code reads it through a raw pointer
    bias = inputs[0].new_zeros(kernels.padded) if kernels.bias is None else kernels.bias
    _run(inputs[0].shape, _library().depthwise_forward, _pointers(inputs), _pointers(outs),
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
    _run(x.shape, _library().depthwise_kernel_grad, x.data_ptr(), _pointers(grads),
         _pointers(outs), n, h, w, c, len(outs), *packed.geometry(),
         extra=sum(a * b for a, b in packed.taps) * BLOCK)
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
