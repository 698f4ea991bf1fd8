"""Triton kernels of the large-kernel depthwise op: stride 1, 'same' padding, odd kernel sizes.

Tiles: a program of :func:`depthwise_fwd_kernel` owns ``BLOCK_P`` output pixels (a
``BLOCK_H x BLOCK_W`` patch of one image) by ``BLOCK_C`` channels, for up to three kernels at
once. For every tap of every kernel it loads the shifted input patch (masked at the borders, the
zero padding), widens it to float32 and multiply-adds it with the tap's ``BLOCK_C`` weights, so
the input is read from global memory once per program and from cache for the other taps. It
writes either each kernel's output (the training form, for the BNs that follow) or their sum
plus a bias (inference, and the input gradient: the sum of each output gradient convolved with
its flipped kernel). Every tensor is addressed through its own strides, NCHW and channels-last
alike.

:func:`depthwise_wgrad_kernel` computes one kernel's weight gradient: a program owns
``BLOCK_C`` channels and one split of the ``N x H x W`` pixels, and for each tap writes the sum
over its pixels of output gradient times shifted input into its own row of a float32 buffer of
partial sums; the launcher adds the splits' rows in a fixed order (deterministic, no atomics).
"""
import triton
import triton.language as tl

from . import interpreting


def _configs(gpu, interpreted):
    """Autotuning configs: several tile shapes on a GPU, one small one in the interpreter (which
    needs seconds per program)."""
    if interpreting():
        return [triton.Config(interpreted, num_warps=1)]
    return [triton.Config(tiles, num_warps=warps) for tiles, warps in gpu]


FWD_CONFIGS = _configs(
    gpu=[(dict(BLOCK_H=8, BLOCK_W=16, BLOCK_C=16), 4), (dict(BLOCK_H=16, BLOCK_W=16, BLOCK_C=8), 4),
         (dict(BLOCK_H=4, BLOCK_W=8, BLOCK_C=64), 4), (dict(BLOCK_H=8, BLOCK_W=8, BLOCK_C=32), 8)],
    interpreted=dict(BLOCK_H=8, BLOCK_W=8, BLOCK_C=8))
WGRAD_CONFIGS = _configs(
    gpu=[(dict(BLOCK_P=128, BLOCK_C=32), 4), (dict(BLOCK_P=256, BLOCK_C=16), 4),
         (dict(BLOCK_P=64, BLOCK_C=64), 8)],
    interpreted=dict(BLOCK_P=64, BLOCK_C=8))


@triton.jit
def _taps(acc, x_ptr, s_n, s_c, s_h, s_w, w_ptr, n, c, h, w, H, W, c_mask,
          KH: tl.constexpr, KW: tl.constexpr):
    """``acc`` plus the correlation of the input at ``(n, c, h, w)`` with a ``KH x KW`` kernel."""
    base = x_ptr + n * s_n + c * s_c
    for i in range(KH):
        hh = h + (i - KH // 2)
        row_ok = (hh >= 0) & (hh < H)
        for j in range(KW):
            ww = w + (j - KW // 2)
            mask = row_ok & (ww >= 0) & (ww < W) & c_mask
            x = tl.load(base + hh * s_h + ww * s_w, mask=mask, other=0.).to(tl.float32)
            tap = tl.load(w_ptr + c * (KH * KW) + (i * KW + j), mask=c_mask, other=0.)
            acc += x * tap.to(tl.float32)
    return acc


@triton.autotune(configs=FWD_CONFIGS,
                 key=['C', 'H', 'W', 'KH0', 'KW0', 'KH1', 'KW1', 'KH2', 'KW2', 'SUM'])
@triton.jit
def depthwise_fwd_kernel(
        x0, x1, x2, sx0_n, sx0_c, sx0_h, sx0_w, sx1_n, sx1_c, sx1_h, sx1_w, sx2_n, sx2_c, sx2_h,
        sx2_w, w0, w1, w2, bias, o0, o1, o2, so_n, so_c, so_h, so_w, C, H, W,
        KH0: tl.constexpr, KW0: tl.constexpr, KH1: tl.constexpr, KW1: tl.constexpr,
        KH2: tl.constexpr, KW2: tl.constexpr, NUM_K: tl.constexpr, SUM: tl.constexpr,
        HAS_BIAS: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr,
        BLOCK_C: tl.constexpr):
    """Up to three depthwise correlations, kernel ``k`` on input ``x{k}``: their outputs
    ``o{k}`` (``SUM`` false) or their sum plus ``bias`` into ``o0``."""
    c_blocks = tl.cdiv(C, BLOCK_C)
    n = (tl.program_id(0) // c_blocks).to(tl.int64)
    c = (tl.program_id(0) % c_blocks) * BLOCK_C + tl.arange(0, BLOCK_C)[None, :]
    p = tl.arange(0, BLOCK_H * BLOCK_W)[:, None]
    h = tl.program_id(1) * BLOCK_H + p // BLOCK_W
    w = tl.program_id(2) * BLOCK_W + p % BLOCK_W
    c_mask = c < C
    out_mask = (h < H) & (w < W) & c_mask
    out_offset = n * so_n + c * so_c + h * so_h + w * so_w
    zeros = tl.zeros((BLOCK_H * BLOCK_W, BLOCK_C), dtype=tl.float32)
    acc = _taps(zeros, x0, sx0_n, sx0_c, sx0_h, sx0_w, w0, n, c, h, w, H, W, c_mask, KH0, KW0)
    if not SUM:
        tl.store(o0 + out_offset, acc.to(o0.dtype.element_ty), mask=out_mask)
        acc = zeros
    if NUM_K > 1:
        acc = _taps(acc, x1, sx1_n, sx1_c, sx1_h, sx1_w, w1, n, c, h, w, H, W, c_mask, KH1, KW1)
        if not SUM:
            tl.store(o1 + out_offset, acc.to(o1.dtype.element_ty), mask=out_mask)
            acc = zeros
    if NUM_K > 2:
        acc = _taps(acc, x2, sx2_n, sx2_c, sx2_h, sx2_w, w2, n, c, h, w, H, W, c_mask, KH2, KW2)
        if not SUM:
            tl.store(o2 + out_offset, acc.to(o2.dtype.element_ty), mask=out_mask)
    if SUM:
        if HAS_BIAS:
            acc += tl.load(bias + c, mask=c_mask, other=0.).to(tl.float32)
        tl.store(o0 + out_offset, acc.to(o0.dtype.element_ty), mask=out_mask)


@triton.autotune(configs=WGRAD_CONFIGS, key=['N', 'C', 'H', 'W', 'KH', 'KW'])
@triton.jit
def depthwise_wgrad_kernel(
        x, sx_n, sx_c, sx_h, sx_w, g, sg_n, sg_c, sg_h, sg_w, partial, N, C, H, W, SPLITS,
        KH: tl.constexpr, KW: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr):
    """Partial weight gradients of one ``KH x KW`` kernel: split ``program_id(1)`` of
    ``SPLITS`` sums over its share of the tiles of ``BLOCK_P`` pixels into row
    ``[split, tap, c]`` of ``partial``."""
    c_row = tl.program_id(0) * BLOCK_C + tl.arange(0, BLOCK_C)
    c = c_row[None, :]
    c_mask = c < C
    split = tl.program_id(1)
    pixels = N * H * W
    tiles = tl.cdiv(tl.cdiv(pixels, BLOCK_P), SPLITS)
    for tap in range(KH * KW):
        di = tap // KW - KH // 2
        dj = tap % KW - KW // 2
        acc = tl.zeros((BLOCK_C, ), dtype=tl.float32)
        for tile in range(tiles):
            q = (split * tiles + tile) * BLOCK_P + tl.arange(0, BLOCK_P)[:, None]
            n = (q // (H * W)).to(tl.int64)
            h = q % (H * W) // W
            w = q % W
            valid = (q < pixels) & c_mask
            grad = tl.load(g + n * sg_n + c * sg_c + h * sg_h + w * sg_w, mask=valid, other=0.)
            hh = h + di
            ww = w + dj
            inside = valid & (hh >= 0) & (hh < H) & (ww >= 0) & (ww < W)
            xs = tl.load(x + n * sx_n + c * sx_c + hh * sx_h + ww * sx_w, mask=inside, other=0.)
            acc += tl.sum(grad.to(tl.float32) * xs.to(tl.float32), axis=0)
        tl.store(partial + (split * (KH * KW) + tap) * C + c_row, acc, mask=c_row < C)
