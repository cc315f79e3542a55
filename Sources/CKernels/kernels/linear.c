// Linear layers (MatMul by a constant weight, the transformer's projections and MLPs):
// y [R, N] = act(x [R, K] · W [K, N] + bias[n] + residual [R, N]), rows of x K apart and of y
// and the residual N apart. W is packed once into column panels of 32:
// packed[p][k][j] = W[k][32p + j], zero past N, so a panel streams through in order.

#include <unistd.h>

static size_t linear_packed_size(int K, int N) { return (size_t)((N + 31) / 32) * (size_t)K * 32; }

// At AVX2 each panel is two half-panels of 16 columns one after the other,
// packed[p][h][k][j] = W[k][32p + 16h + j], since the tiles read half a panel at a time: the
// halves stream in order rather than every other cache line.
#if KILN_SIMD && KILN_LEVEL == KILN_LEVEL_AVX2
#define LINEAR_HALVES 1
#else
#define LINEAR_HALVES 0
#endif
static void linear_pack(const float *w, int K, int N, int trans, float *packed) {
    const int P = (N + 31) / 32;
    for (int p = 0; p < P; p++) {
        for (int k = 0; k < K; k++) {
            for (int j = 0; j < 32; j++) {
                const int n = p * 32 + j;
                const size_t at = LINEAR_HALVES ? ((size_t)p * K * 32 + (size_t)(j / 16) * K * 16 + (size_t)k * 16 + j % 16)
                                                : ((size_t)p * K + k) * 32 + j;
                packed[at] = n < N ? (trans ? w[(size_t)n * K + k] : w[(size_t)k * N + n]) : 0.0f;
            }
        }
    }
}

#if KILN_SIMD
// Rows per tile: 8 × 32 columns is 16 zmm accumulators at AVX-512; at AVX2 (16 ymm) 6 rows
// × 16 columns, twice per panel, is 12.
#if KILN_LEVEL >= KILN_LEVEL_AVX512
#define LINEAR_MR 8
#else
#define LINEAR_MR 6
#endif

// One tile: rows [r0, r0 + mr) of one panel (columns n0 …), the epilogue fused into the store.
// Inlined with a constant mr, so the accumulators live in registers.
// With K split into chunks [k0, k1) (`phase`: LINEAR_FIRST, LINEAR_LAST, both for one chunk):
// the first chunk adds bias and residual, later ones add to y, the last applies the activation
// (so the residual may be y itself).
#define LINEAR_FIRST 1
#define LINEAR_LAST 2
static inline __attribute__((always_inline)) void linear_tile(const float *x, int K, int N, const float *panel, int r0, int mr, int n0,
                                                              int k0, int k1, int phase, const float *bias, const float *residual,
                                                              kiln_act a, float *y) {
    KILN_ACT_LOCALS(a);
    v16 acc0[LINEAR_MR], acc1[LINEAR_MR];
    const float *xr = x + (size_t)r0 * K + k0;
    const int kc = k1 - k0;
#if KILN_LEVEL == KILN_LEVEL_AVX2
    // 16 ymm registers: 6 rows × 16 columns (12 accumulators, 2 loads of W and a broadcast)
    // per half of the panel; 3 rows × 32 needed 17 registers and spilled an accumulator,
    // whose reload chain halved the rate.
    for (int h = 0; h < 2; h++) {
        __m256 acc[LINEAR_MR][2];
        for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        const float *bk = panel + (size_t)h * K * 16 + (size_t)k0 * 16;
        for (int k = 0; k < kc; k++, bk += 16) {
            const __m256 b0 = _mm256_loadu_ps(bk), b1 = _mm256_loadu_ps(bk + 8);
            for (int i = 0; i < mr; i++) {
                const __m256 xv = _mm256_broadcast_ss(xr + (size_t)i * K + k);
                acc[i][0] = _mm256_fmadd_ps(xv, b0, acc[i][0]);
                acc[i][1] = _mm256_fmadd_ps(xv, b1, acc[i][1]);
            }
        }
        for (int i = 0; i < mr; i++) {
            if (h == 0) acc0[i] = (v16){acc[i][0], acc[i][1]};
            else acc1[i] = (v16){acc[i][0], acc[i][1]};
        }
    }
#else
    for (int i = 0; i < mr; i++) { acc0[i] = v16_zero(); acc1[i] = v16_zero(); }
    panel += (size_t)k0 * 32;
    for (int k = 0; k < kc; k++) {
        const v16 b0 = v16_load(panel + (size_t)k * 32), b1 = v16_load(panel + (size_t)k * 32 + 16);
        for (int i = 0; i < mr; i++) {
            const v16 xv = v16_set1(xr[(size_t)i * K + k]);
            acc0[i] = v16_fmadd(xv, b0, acc0[i]);
            acc1[i] = v16_fmadd(xv, b1, acc1[i]);
        }
    }
#endif
    const int valid = N - n0;
    const m16 m0 = lanes(valid), m1 = lanes(valid - 16);
    const int first = phase & LINEAR_FIRST;
    const v16 bias0 = bias && first ? v16_maskz_load(m0, bias + n0) : v16_zero();
    const v16 bias1 = bias && first ? v16_maskz_load(m1, bias + n0 + 16) : v16_zero();
    const float *add = first ? residual : y;
    for (int i = 0; i < mr; i++) {
        const size_t at = (size_t)(r0 + i) * N + n0;
        v16 v0 = v16_add(acc0[i], bias0), v1 = v16_add(acc1[i], bias1);
        if (add) {
            v0 = v16_add(v0, v16_maskz_load(m0, add + at));
            v1 = v16_add(v1, v16_maskz_load(m1, add + at + 16));
        }
        if (phase & LINEAR_LAST) {
            v0 = activate16(v0, 16, act, alpha, lo, hi);
            v1 = activate16(v1, 16, act, alpha, lo, hi);
        }
        v16_mask_store(y + at, m0, v0);
        if (valid > 16) v16_mask_store(y + at + 16, m1, v1);
    }
}
#endif

// Rows per tile, for callers that split rows between threads.
static int linear_tile_rows(void) {
#if KILN_SIMD
    return LINEAR_MR;
#else
    return 1;
#endif
}

// Rows [r_begin, r_end) × panels [p_begin, p_end). K is cut into chunks of at most
// LINEAR_KC (a chunk of a panel, 96 KiB, stays in L2 while every tile of rows reads it);
// rows into blocks whose chunk of x fits in linear_xbytes() (so a block of x stays in L2 while
// the panels stream past it); then panel by panel, tile by tile. Each block reads every
// panel once, from memory when the weight is larger than the cache (a transformer's): so
// when all the rows fit with chunks of at least 192, the chunks shrink to make one block.
// The size of a block of x: the core's L2 as the C library reports it, kept within 256 KiB
// – 1 MiB (256 KiB when unknown). On Zen 2's 512 KiB L2, 512 KiB blocks ran vit_b_16's layers
// at 177–185 GFLOP/s on two threads against 161–177 with 256 KiB (the weight from memory).
static size_t linear_xbytes(void) {
#ifdef LINEAR_XBYTES
    return LINEAR_XBYTES;
#else
    static size_t cached;  // every thread computes the same value
    size_t b = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (!b) {
        const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
        b = l2 > 0 ? (size_t)l2 : 256 * 1024;
        b = b < 256 * 1024 ? 256 * 1024 : b > 1024 * 1024 ? 1024 * 1024 : b;
        __atomic_store_n(&cached, b, __ATOMIC_RELAXED);
    }
    return b;
#endif
}
#ifndef LINEAR_KC
#define LINEAR_KC 768
#endif
static void linear(const float *x, int K, int N, const float *packed, int r_begin, int r_end, int p_begin, int p_end,
                   const float *bias, const float *residual, kiln_act a, float *y) {
#if KILN_SIMD
    const size_t all_rows = (size_t)(r_end > r_begin ? r_end - r_begin : 1), xbytes = linear_xbytes();
    const int fit = (int)(xbytes / (all_rows * sizeof(float)));
    const int most = fit >= 192 && fit < LINEAR_KC ? fit : LINEAR_KC;
    // (K = 0: one empty chunk, so y still gets bias, residual and activation.)
    const int chunks = K > 0 ? (K + most - 1) / most : 1, kc = K > 0 ? (K + chunks - 1) / chunks : 0;
    int block = kc > 0 ? (int)(xbytes / ((size_t)kc * sizeof(float))) / 24 * 24 : r_end - r_begin;
    if (block < 24) block = 24;
    for (int rb = r_begin; rb < r_end; rb += block) {
    const int rb_end = rb + block < r_end ? rb + block : r_end;
    for (int k0 = 0, more = 1; more; k0 += kc, more = k0 < K) {
    const int k1 = k0 + kc < K ? k0 + kc : K;
    const int phase = (k0 == 0 ? LINEAR_FIRST : 0) | (k1 == K ? LINEAR_LAST : 0);
    for (int p = p_begin; p < p_end; p++) {
        const float *panel = packed + (size_t)p * K * 32;
        const int n0 = p * 32;
        int r0 = rb;
#define LINEAR_TILE(rows) linear_tile(x, K, N, panel, r0, rows, n0, k0, k1, phase, bias, residual, a, y)
        for (; r0 + LINEAR_MR <= rb_end; r0 += LINEAR_MR) LINEAR_TILE(LINEAR_MR);
        switch (rb_end - r0) {
#if LINEAR_MR > 7
        case 7: LINEAR_TILE(7); break;
        case 6: LINEAR_TILE(6); break;
#endif
#if LINEAR_MR > 3
        case 5: LINEAR_TILE(5); break;
        case 4: LINEAR_TILE(4); break;
        case 3: LINEAR_TILE(3); break;
#endif
        case 2: LINEAR_TILE(2); break;
        case 1: LINEAR_TILE(1); break;
        default: break;
        }
#undef LINEAR_TILE
    }
    }
    }
#else
    KILN_ACT_LOCALS(a);
    float acc[32];
    for (int p = p_begin; p < p_end; p++) {
        const float *panel = packed + (size_t)p * K * 32;
        const int n0 = p * 32, cols = N - n0 < 32 ? N - n0 : 32;
        for (int r = r_begin; r < r_end; r++) {
            for (int j = 0; j < 32; j++) acc[j] = 0.0f;
            const float *xr = x + (size_t)r * K;
            for (int k = 0; k < K; k++) {
                const float xv = xr[k];
                const float *bk = panel + (size_t)k * 32;
                for (int j = 0; j < 32; j++) acc[j] += xv * bk[j];
            }
            float *yr = y + (size_t)r * N + n0;
            const float *rr = residual ? residual + (size_t)r * N + n0 : NULL;
            for (int j = 0; j < cols; j++) {
                yr[j] = apply_act(acc[j] + (bias ? bias[n0 + j] : 0.0f) + (rr ? rr[j] : 0.0f), act, alpha, lo, hi);
            }
        }
    }
#endif
}
