// Linear layers (MatMul by a constant weight, the transformer's projections and MLPs):
// y [R, N] = act(x [R, K] · W [K, N] + bias[n] + residual [R, N]), rows of x K apart and of y
// and the residual N apart. W is packed once into column panels of 32:
// packed[p][k][j] = W[k][32p + j], zero past N, so a panel streams through in order.

static size_t linear_packed_size(int K, int N) { return (size_t)((N + 31) / 32) * (size_t)K * 32; }

static void linear_pack(const float *w, int K, int N, int trans, float *packed) {
    const int P = (N + 31) / 32;
    for (int p = 0; p < P; p++) {
        for (int k = 0; k < K; k++) {
            float *dst = packed + ((size_t)p * K + k) * 32;
            for (int j = 0; j < 32; j++) {
                const int n = p * 32 + j;
                dst[j] = n < N ? (trans ? w[(size_t)n * K + k] : w[(size_t)k * N + n]) : 0.0f;
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
static inline __attribute__((always_inline)) void linear_tile(const float *x, int K, int N, const float *panel, int r0, int mr, int n0,
                                                              const float *bias, const float *residual, kiln_act a, float *y) {
    KILN_ACT_LOCALS(a);
    v16 acc0[LINEAR_MR], acc1[LINEAR_MR];
    const float *xr = x + (size_t)r0 * K;
#if KILN_LEVEL == KILN_LEVEL_AVX2
    // 16 ymm registers: 6 rows × 16 columns (12 accumulators, 2 loads of W and a broadcast)
    // per half of the panel; 3 rows × 32 needed 17 registers and spilled an accumulator,
    // whose reload chain halved the rate.
    for (int h = 0; h < 2; h++) {
        __m256 acc[LINEAR_MR][2];
        for (int i = 0; i < mr; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
        const float *bk = panel + 16 * h;
        for (int k = 0; k < K; k++, bk += 32) {
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
    for (int k = 0; k < K; k++) {
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
    const v16 bias0 = bias ? v16_maskz_load(m0, bias + n0) : v16_zero();
    const v16 bias1 = bias ? v16_maskz_load(m1, bias + n0 + 16) : v16_zero();
    for (int i = 0; i < mr; i++) {
        const size_t at = (size_t)(r0 + i) * N + n0;
        v16 v0 = v16_add(acc0[i], bias0), v1 = v16_add(acc1[i], bias1);
        if (residual) {
            v0 = v16_add(v0, v16_maskz_load(m0, residual + at));
            v1 = v16_add(v1, v16_maskz_load(m1, residual + at + 16));
        }
        v16_mask_store(y + at, m0, activate16(v0, 16, act, alpha, lo, hi));
        if (valid > 16) v16_mask_store(y + at + 16, m1, activate16(v1, 16, act, alpha, lo, hi));
    }
}
#endif

// Rows [r_begin, r_end) × panels [p_begin, p_end): blocks of rows that fit in a quarter of a
// MiB (so a block of x stays in L2 while every panel streams past it), panel by panel inside
// a block (a panel is read from cache for every tile of rows).
static void linear(const float *x, int K, int N, const float *packed, int r_begin, int r_end, int p_begin, int p_end,
                   const float *bias, const float *residual, kiln_act a, float *y) {
#if KILN_SIMD
    int block = (int)((256 * 1024) / ((size_t)K * sizeof(float))) / 24 * 24;
    if (block < 24) block = 24;
    for (int rb = r_begin; rb < r_end; rb += block) {
    const int rb_end = rb + block < r_end ? rb + block : r_end;
    for (int p = p_begin; p < p_end; p++) {
        const float *panel = packed + (size_t)p * K * 32;
        const int n0 = p * 32;
        int r0 = rb;
        for (; r0 + LINEAR_MR <= rb_end; r0 += LINEAR_MR) linear_tile(x, K, N, panel, r0, LINEAR_MR, n0, bias, residual, a, y);
        switch (rb_end - r0) {
#if LINEAR_MR > 7
        case 7: linear_tile(x, K, N, panel, r0, 7, n0, bias, residual, a, y); break;
        case 6: linear_tile(x, K, N, panel, r0, 6, n0, bias, residual, a, y); break;
#endif
#if LINEAR_MR > 3
        case 5: linear_tile(x, K, N, panel, r0, 5, n0, bias, residual, a, y); break;
        case 4: linear_tile(x, K, N, panel, r0, 4, n0, bias, residual, a, y); break;
        case 3: linear_tile(x, K, N, panel, r0, 3, n0, bias, residual, a, y); break;
#endif
        case 2: linear_tile(x, K, N, panel, r0, 2, n0, bias, residual, a, y); break;
        case 1: linear_tile(x, K, N, panel, r0, 1, n0, bias, residual, a, y); break;
        default: break;
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
