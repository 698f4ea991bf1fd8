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
