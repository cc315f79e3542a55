// Convolution as a matrix product with the epilogue fused into the store, and the weight
// gradient from patches.

#if KILN_SIMD
// Stores 8 rows × 16 columns (lanes in `mask`) of accumulators with y = act(acc + bias + residual).
static inline void gemm_store16(const v16 *acc, int m0, int n, size_t ldy, m16 mask, const float *bias,
                                const float *residual, int act, float alpha, float lo, float hi, float *y) {
    for (int i = 0; i < 8; i++) {
        const size_t k = (size_t)(m0 + i) * ldy + n;
        v16 v = acc[i];
        if (bias) v = v16_add(v, v16_set1(bias[m0 + i]));
        if (residual) v = v16_add(v, v16_maskz_load(mask, residual + k));
        v = activate16(v, 16, act, alpha, lo, hi);
        v16_mask_store(y + k, mask, v);
    }
}
#endif

#if KILN_LEVEL == KILN_LEVEL_AVX2
// AVX2 has 16 ymm registers: 8 rows × 32 columns (32 accumulators) would spill. A tile is
// 4 rows (half of a packed block of 8) × 24 columns: 12 accumulators, 3 loads of B and a
// broadcast per k. `bk` is the chunk's first column, rows `ldb` apart; `cols` ≤ 24 columns are
// stored. `full`: the 24 columns are read as they are (B's own rows with cols = 24, or the
// packed copy); otherwise only `cols` are read and the rest count as zero. With `pack`, the
// 24 values read per row are also written to pack (rows 24 apart, 32-byte aligned), so the
// tiles after the chunk's first read it from there: contiguous, aligned, and no cache-set
// conflicts when B's rows are a power of two apart. With `next`, the rows of the next chunk
// (from `next`, `ldb` apart) are prefetched as this one is read.
static inline __attribute__((always_inline)) void gemm_tile4x24(const float *u, const float *bk, int K, size_t ldb, int half, int cols,
                                                                 int full, float *pack, const float *next, int m0, int n0, const float *bias,
                                                                 const float *residual, size_t ldy, int act, float alpha, float lo,
                                                                 float hi, float *y) {
    __m256 acc[4][3];
    for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = acc[i][2] = _mm256_setzero_ps();
    const float *uk = u + 4 * half;
#define KILN_TILE_STEP(load)                                                                                       \
    for (int k = 0; k < K; k++, bk += ldb, uk += 8) {                                                              \
        const __m256 x0 = load(bk, 0), x1 = load(bk + 8, 1), x2 = load(bk + 16, 2);                                \
        if (pack) {                                                                                                \
            _mm256_store_ps(pack + 24 * (size_t)k, x0);                                                            \
            _mm256_store_ps(pack + 24 * (size_t)k + 8, x1);                                                        \
            _mm256_store_ps(pack + 24 * (size_t)k + 16, x2);                                                       \
        }                                                                                                          \
        if (next) {                                                                                                \
            _mm_prefetch((const char *)(next + (size_t)k * ldb), _MM_HINT_T0);                                     \
            _mm_prefetch((const char *)(next + (size_t)k * ldb + 12), _MM_HINT_T0);                                \
            _mm_prefetch((const char *)(next + (size_t)k * ldb + 23), _MM_HINT_T0);                                \
        }                                                                                                          \
        for (int i = 0; i < 4; i++) {                                                                              \
            const __m256 w = _mm256_broadcast_ss(uk + i);                                                          \
            acc[i][0] = _mm256_fmadd_ps(x0, w, acc[i][0]);                                                         \
            acc[i][1] = _mm256_fmadd_ps(x1, w, acc[i][1]);                                                         \
            acc[i][2] = _mm256_fmadd_ps(x2, w, acc[i][2]);                                                         \
        }                                                                                                          \
    }
    if (full) {
#define KILN_LOAD_FULL(p, j) _mm256_loadu_ps(p)
        KILN_TILE_STEP(KILN_LOAD_FULL)
#undef KILN_LOAD_FULL
    } else {
        const __m256i km[3] = {mask_lanes8(lanes(cols) & 0xFF), mask_lanes8((lanes(cols) >> 8) & 0xFF), mask_lanes8(lanes(cols - 16) & 0xFF)};
#define KILN_LOAD_MASKED(p, j) _mm256_maskload_ps(p, km[j])
        KILN_TILE_STEP(KILN_LOAD_MASKED)
#undef KILN_LOAD_MASKED
    }
#undef KILN_TILE_STEP
    const m16 first = lanes(cols), second = lanes(cols - 16);
    for (int i = 0; i < 4; i++) {
        const int m = m0 + 4 * half + i;
        const size_t at = (size_t)m * ldy + n0;
        const v16 bm = bias ? v16_set1(bias[m]) : v16_zero();
        v16 v0 = v16_add((v16){acc[i][0], acc[i][1]}, bm), v1 = v16_add((v16){acc[i][2], _mm256_setzero_ps()}, bm);
        if (residual) {
            v0 = v16_add(v0, v16_maskz_load(first, residual + at));
            if (second) v1 = v16_add(v1, v16_maskz_load(second, residual + at + 16));
        }
        v16_mask_store(y + at, first, activate16(v0, 16, act, alpha, lo, hi));
        if (second) v16_mask_store(y + at + 16, second, activate16(v1, 16, act, alpha, lo, hi));
    }
}
#endif

#if KILN_LEVEL == KILN_LEVEL_AVX2
// The last ≤ 8 columns: all 8 rows of a packed block × 8 columns (8 accumulators, one load of
// B and 8 broadcasts per k), a third of a 24-column tile pair's work.
static inline void gemm_tile8x8(const float *u, const float *b, int K, size_t ldb, int cols, int m0, int n0, const float *bias,
                                const float *residual, size_t ldy, int act, float alpha, float lo, float hi, float *y) {
    __m256 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
    const __m256i km = mask_lanes8(lanes(cols) & 0xFF);
    const float *bk = b + n0, *uk = u;
    for (int k = 0; k < K; k++, bk += ldb, uk += 8) {
        const __m256 x = _mm256_maskload_ps(bk, km);
        for (int i = 0; i < 8; i++) acc[i] = _mm256_fmadd_ps(x, _mm256_broadcast_ss(uk + i), acc[i]);
    }
    v16 rows[8];
    for (int i = 0; i < 8; i++) rows[i] = (v16){acc[i], _mm256_setzero_ps()};
    gemm_store16(rows, m0, n0, ldy, lanes(cols), bias, residual, act, alpha, lo, hi, y);
}
#endif

static void conv_gemm_ld(const float *packed, const float *b, int K, int N, size_t ldb, int mb_begin, int mb_end, const float *bias,
                         const float *residual, size_t ldy, kiln_act a, float *y, float *pack) {
    KILN_ACT_LOCALS(a);
    (void)pack;
#if KILN_LEVEL == KILN_LEVEL_AVX2
    // Column chunks of 24 outside, channel blocks inside: a chunk of B (K × 24 floats) is read
    // from memory once and stays in cache for every block of output channels (the next chunk
    // prefetched as the first block reads this one). With `pack` (room for K × 24 floats and
    // 32 bytes), the first tile of a chunk copies it there as it reads it and the others read
    // the copy: contiguous and aligned, where B's rows may be a power of two apart (cache-set
    // conflicts) or misaligned. Measured with B and the weights cold, the copy pays from 12
    // blocks; grouping the blocks so that their weights stay in L2 across chunks did not.
    float *copy = pack && mb_end - mb_begin >= 12 ? (float *)(((uintptr_t)pack + 31) & ~(uintptr_t)31) : NULL;
    for (int n0 = 0; n0 < N; n0 += 24) {
        const int cols = N - n0 < 24 ? N - n0 : 24;
        const float *bk = b + n0, *next = n0 + 24 < N && N - n0 - 24 > 8 ? bk + 24 : NULL;
        if (cols <= 8) {
            for (int mb = mb_begin; mb < mb_end; mb++)
                gemm_tile8x8(packed + (size_t)mb * K * 8, b, K, ldb, cols, mb * 8, n0, bias, residual, ldy, act, alpha, lo, hi, y);
            continue;
        }
        for (int mb = mb_begin; mb < mb_end; mb++) {
            const float *u = packed + (size_t)mb * K * 8;
            if (n0 + 24 < N) {
                // The block's rows of y (for writing) and of the residual in the next chunk:
                // a chunk of blocks later they are in cache, where a store to a cold line
                // waited for memory (1×1 convolutions of few channels on large planes ran at
                // 3–6 GB/s of traffic).
                for (int i = 0; i < 8; i++) {
                    const size_t at = (size_t)(mb * 8 + i) * ldy + n0 + 24;
                    __builtin_prefetch(y + at, 1, 3);
                    __builtin_prefetch(y + at + 23, 1, 3);
                    if (residual) {
                        __builtin_prefetch(residual + at, 0, 3);
                        __builtin_prefetch(residual + at + 23, 0, 3);
                    }
                }
            }
            // Constant widths in each call, so the inlined copies drop the masks they can.
            if (copy && mb > mb_begin) {
                gemm_tile4x24(u, copy, K, 24, 0, cols, 1, NULL, NULL, mb * 8, n0, bias, residual, ldy, act, alpha, lo, hi, y);
            } else if (cols == 24) {
                gemm_tile4x24(u, bk, K, ldb, 0, 24, 1, copy, mb == mb_begin ? next : NULL, mb * 8, n0, bias, residual, ldy, act, alpha, lo, hi, y);
            } else {
                gemm_tile4x24(u, bk, K, ldb, 0, cols, 0, copy, NULL, mb * 8, n0, bias, residual, ldy, act, alpha, lo, hi, y);
            }
            if (copy) {
                gemm_tile4x24(u, copy, K, 24, 1, cols, 1, NULL, NULL, mb * 8, n0, bias, residual, ldy, act, alpha, lo, hi, y);
            } else if (cols == 24) {
                gemm_tile4x24(u, bk, K, ldb, 1, 24, 1, NULL, NULL, mb * 8, n0, bias, residual, ldy, act, alpha, lo, hi, y);
            } else {
                gemm_tile4x24(u, bk, K, ldb, 1, cols, 0, NULL, NULL, mb * 8, n0, bias, residual, ldy, act, alpha, lo, hi, y);
            }
        }
    }
#elif KILN_SIMD
    // Column chunks outside, channel blocks inside: a chunk of B (K × 32 floats) is read from
    // memory once and stays in cache for every block of 8 output channels.
    int n0 = 0;
    for (; n0 + 32 <= N; n0 += 32) {
        for (int mb = mb_begin; mb < mb_end; mb++) {
            const float *u = packed + (size_t)mb * K * 8;
            v16 a0[8], a1[8];
            for (int i = 0; i < 8; i++) { a0[i] = v16_zero(); a1[i] = v16_zero(); }
            const float *bk = b + n0;
            for (int k = 0; k < K; k++, bk += ldb) {
                const v16 x0 = v16_load(bk), x1 = v16_load(bk + 16);
                const float *uk = u + (size_t)k * 8;
                for (int i = 0; i < 8; i++) {
                    const v16 w = v16_set1(uk[i]);
                    a0[i] = v16_fmadd(x0, w, a0[i]);
                    a1[i] = v16_fmadd(x1, w, a1[i]);
                }
            }
            gemm_store16(a0, mb * 8, n0, ldy, 0xFFFF, bias, residual, act, alpha, lo, hi, y);
            gemm_store16(a1, mb * 8, n0 + 16, ldy, 0xFFFF, bias, residual, act, alpha, lo, hi, y);
        }
    }
    // The rest of the row 16 columns at a time, the last masked.
    for (; n0 < N; n0 += 16) {
        const int valid = N - n0 < 16 ? N - n0 : 16;
        const m16 mask = (m16)((1u << valid) - 1u);
        for (int mb = mb_begin; mb < mb_end; mb++) {
            const float *u = packed + (size_t)mb * K * 8;
            v16 a0[8];
            for (int i = 0; i < 8; i++) a0[i] = v16_zero();
            const float *bk = b + n0;
            for (int k = 0; k < K; k++, bk += ldb) {
                const v16 x0 = v16_maskz_load(mask, bk);
                const float *uk = u + (size_t)k * 8;
                for (int i = 0; i < 8; i++) a0[i] = v16_fmadd(x0, v16_set1(uk[i]), a0[i]);
            }
            gemm_store16(a0, mb * 8, n0, ldy, mask, bias, residual, act, alpha, lo, hi, y);
        }
    }
#else
    for (int mb = mb_begin; mb < mb_end; mb++) {
        const float *u = packed + (size_t)mb * K * 8;
        for (int i = 0; i < 8; i++) {
            const int m = mb * 8 + i;
            float *ym = y + (size_t)m * ldy;
            for (int n = 0; n < N; n++) ym[n] = 0.0f;
            for (int k = 0; k < K; k++) {
                const float w = u[(size_t)k * 8 + i];
                const float *bk = b + (size_t)k * ldb;
                for (int n = 0; n < N; n++) ym[n] += w * bk[n];
            }
            const float bm = bias ? bias[m] : 0.0f;
            const float *rm = residual ? residual + (size_t)m * ldy : NULL;
            for (int n = 0; n < N; n++) ym[n] = apply_act(ym[n] + bm + (rm ? rm[n] : 0.0f), act, alpha, lo, hi);
        }
    }
#endif
}

// ---------------------------------------------------------------------------------------
// Training kernels.

static void weight_grad(const float *dy, const float *col, int M, int K, int P, int m_begin, int m_end, float *dw) {
    // Patches as rows are the shifted-row case with one image, one tap and no padding: K
    // "channels" of one row of P values.
    const kiln_conv_geometry g = {.C = K, .H = 1, .W = P, .M = M, .OH = 1, .OW = P, .KH = 1, .KW = 1, .SH = 1, .SW = 1, .DH = 1, .DW = 1};
    weight_grad_shift(dy, col, 1, g, P, m_begin, m_end, dw);
}
