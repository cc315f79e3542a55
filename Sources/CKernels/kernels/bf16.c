// bf16 convolutions: activations and weights rounded to bfloat16 (8-bit mantissas), products
// summed in f32, with AVX-512 BF16 (vdpbf16ps: two products per lane) where the CPU has it,
// plain loops otherwise. The layout is the int8 kernel's (int8.c), with 16-bit elements: the
// input converted once per image into its zero-padded stride phases, every tap a shifted row
// of them, output (oy, ox) at column oy·W2 + ox; per chunk of 32 columns, pairs of rows
// interleaved element by element (vdpbf16ps's operand order), 8 × 32 tiles over the packed
// weights (blocks of 8 rows × 2 elements, broadcast).

static size_t bconv_source_bytes(kiln_conv_geometry g) {
    int H2, W2;
    const size_t plane = qconv_plane(g, &H2, &W2);  // elements
    return 2 * (size_t)g.C * g.SH * g.SW * plane + 64;
}

static size_t bconv_packed_bytes(int M, int K) { return (size_t)((M + 7) / 8) * 8 * (size_t)((K + 1) / 2) * 4; }

// Per-thread scratch: the rows' offsets (K rounded up to 2) and one chunk, [K/2][32][2 × 16 bits].
static size_t bconv_chunk_bytes(kiln_conv_geometry g) {
    const size_t K2 = ((size_t)g.C * g.KH * g.KW + 1) / 2;
    return K2 * 8 + K2 * 4 * KILN_Q_CHUNK + 192;
}

// Weights w [M, K] (f32) → bf16 blocks of 8 rows, packed[mb][k2][i][j] = w[8·mb + i][2·k2 + j], zero past M and K.
static void bconv_pack(const float *w, int M, int K, uint16_t *packed) {
    const int K2 = (K + 1) / 2, MB = (M + 7) / 8;
    memset(packed, 0, bconv_packed_bytes(M, K));
    for (int mb = 0; mb < MB; mb++)
        for (int i = 0; i < 8 && mb * 8 + i < M; i++)
            for (int k = 0; k < K; k++) packed[(((size_t)mb * K2 + k / 2) * 8 + i) * 2 + k % 2] = bf16_of(w[(size_t)(mb * 8 + i) * K + k]);
}

#if KILN_LEVEL == KILN_LEVEL_AVX512
__attribute__((target("avx512bf16"))) static void bconv_row16(const float *xr, int ix, int W, __mmask16 store, uint16_t *out) {
    const __mmask16 m = (__mmask16)(lanes(W - ix) & ~lanes(-ix));
    _mm256_mask_storeu_epi16(out, store, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, xr + ix)));
}

static int bconv_fast(void) {
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512bf16") ? 1 : 0;
    }
    return known;
}
#else
static int bconv_fast(void) { return 0; }
#endif

static void bf16_row(const narrow_fill *f, kiln_conv_geometry g, const float *xr, int b, int W2, void *dst) {
    const int SW = g.SW, PW = g.PW, W = g.W;
    uint16_t *row = dst;
    (void)f;
    if (!xr) {
        memset(row, 0, 2 * (size_t)W2);
        return;
    }
    int s = 0;
#if KILN_LEVEL == KILN_LEVEL_AVX512
    if (SW == 1 && bconv_fast())
        for (; s < W2; s += 16) bconv_row16(xr, b + s - PW, W, (__mmask16)lanes(W2 - s), row + s);
#endif
    for (; s < W2; s++) {
        const int ix = s * SW + b - PW;
        row[s] = ix < 0 || ix >= W ? 0 : bf16_of(xr[ix]);
    }
}

// Channels [c_begin, c_end) of one image x [C, H, W] into its bf16 source planes (zero padding).
static void bconv_convert(const float *x, kiln_conv_geometry g, int c_begin, int c_end, uint16_t *source) {
    const narrow_fill f = {.size = 2};
    narrow_planes(x, g, c_begin, c_end, &f, (uint8_t *)source);
}

#if KILN_LEVEL == KILN_LEVEL_AVX512
__attribute__((target("avx512bf16"))) static void bconv_gemm_dot(const uint16_t *packed, const uint16_t *source, kiln_conv_geometry g,
                                                                  int n_begin, int n_end, int mb_begin, int mb_end, const float *bias,
                                                                  const float *residual, kiln_act a, const int32_t *off, uint8_t *chunk,
                                                                  float *y) {
    KILN_GEOMETRY_LOCALS(g);
    int H2, W2;
    qconv_plane(g, &H2, &W2);
    const int K = C * KH * KW, K2 = (K + 1) / 2;
    const size_t ldy = (size_t)OH * OW;
    for (int n0 = n_begin; n0 < n_end; n0 += KILN_Q_CHUNK) {
        for (int k2 = 0; k2 < K2; k2++) {
            // (An odd K's last pair holds a zero: its weight is zero, and an input's infinity
            // must not make 0 · ∞.)
            const uint16_t *r0 = source + off[2 * k2] + n0, *r1 = 2 * k2 + 1 < K ? source + off[2 * k2 + 1] + n0 : NULL;
            for (int h = 0; h < KILN_Q_VECTORS; h++) {
                const __m512i b0 = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(r0 + 16 * h)));
                const __m512i b1 = r1 ? _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(r1 + 16 * h))) : _mm512_setzero_si512();
                _mm512_store_si512((__m512i *)(chunk + (size_t)k2 * 64 * KILN_Q_VECTORS + 64 * h), _mm512_or_si512(b0, _mm512_slli_epi32(b1, 16)));
            }
        }
        qconv_segments seg[KILN_Q_VECTORS];
        for (int h = 0; h < KILN_Q_VECTORS; h++) qconv_segments_of(n0 + 16 * h, n_end, W2, OW, &seg[h]);
        for (int mb = mb_begin; mb < mb_end; mb++) {
            const int32_t *w = (const int32_t *)(packed + (size_t)mb * K2 * 16);
            __m512 acc[8][KILN_Q_VECTORS];
            for (int i = 0; i < 8; i++)
                for (int h = 0; h < KILN_Q_VECTORS; h++) acc[i][h] = _mm512_setzero_ps();
            const uint8_t *ck = chunk;
            for (int k2 = 0; k2 < K2; k2++, ck += 64 * KILN_Q_VECTORS, w += 8) {
                __m512bh x[KILN_Q_VECTORS];
                for (int h = 0; h < KILN_Q_VECTORS; h++) x[h] = (__m512bh)_mm512_load_si512((const __m512i *)(ck + 64 * h));
                for (int i = 0; i < 8; i++) {
                    const __m512bh wi = (__m512bh)_mm512_set1_epi32(w[i]);
                    for (int h = 0; h < KILN_Q_VECTORS; h++) acc[i][h] = _mm512_dpbf16_ps(acc[i][h], x[h], wi);
                }
            }
            for (int i = 0; i < 8 && mb * 8 + i < M; i++) {
                const int m = mb * 8 + i;
                const __m512 bm = _mm512_set1_ps(bias ? bias[m] : 0.0f);
                float *ym = y + (size_t)m * ldy;
                const float *rm = residual ? residual + (size_t)m * ldy : NULL;
                for (int h = 0; h < KILN_Q_VECTORS; h++) narrow_store(_mm512_add_ps(acc[i][h], bm), &seg[h], ym, rm, a);
            }
        }
    }
}
#endif

// Output columns [n_begin, n_end) (of qconv_columns) and channel blocks [mb_begin, mb_end) of one image.
static void bconv_gemm(const uint16_t *packed, const uint16_t *source, kiln_conv_geometry g, int n_begin, int n_end, int mb_begin,
                       int mb_end, const float *bias, const float *residual, kiln_act a, uint8_t *scratch, float *y) {
    const int K2 = (g.C * g.KH * g.KW + 1) / 2;
    int32_t *off = (int32_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    narrow_offsets(g, 2, off);
#if KILN_LEVEL == KILN_LEVEL_AVX512
    if (bconv_fast()) {
        uint8_t *chunk = (uint8_t *)(((uintptr_t)(off + 2 * K2) + 63) & ~(uintptr_t)63);
        bconv_gemm_dot(packed, source, g, n_begin, n_end, mb_begin, mb_end, bias, residual, a, off, chunk, y);
        return;
    }
#endif
    (void)K2;
    narrow_gemm_plain(packed, source, 2, g, n_begin, n_end, mb_begin, mb_end, NULL, NULL, bias, residual, a, off, y);
}
