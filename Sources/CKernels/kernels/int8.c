// int8 convolutions (QDQ models): uint8 activations × int8 weights summed exactly in int32,
// with AVX-512 VNNI (vpdpbusd: four products per lane) where the CPU has it, plain loops
// otherwise.
//
// The input is quantized once per image into "source" planes: per channel, the zero-padded
// image split into its SH × SW stride phases (phase (a, b) holds padded rows a, a + SH, … and
// columns b, b + SW, …), each plane H2 × W2 bytes and some slack. Every tap (kh, kw) is then a
// constant shift in one phase plane, and the output position (oy, ox) is column
// n = oy·W2 + ox of every row of the product: the columns with ox ≥ OW are computed and never
// stored (W2 − OW of W2; none for 1×1 stride-1 convolutions). Padding holds the zero point,
// so it counts as 0; the zero point's share comes off at the end as zero · Σ w. What the bf16
// kernel (bf16.c) shares with this one — the phase planes, row offsets, bf16 rounding, plain
// loops and the run-by-run store — is here too ("narrow" kernels).

#define KILN_Q_CHUNK 32
#define KILN_Q_VECTORS (KILN_Q_CHUNK / 16)

// Bytes of one phase plane: H2 × W2, then slack for the reads past the last row (a tap's
// shift, a whole chunk of columns past the end), rounded to 64.
static size_t qconv_plane(kiln_conv_geometry g, int *H2, int *W2) {
    KILN_GEOMETRY_LOCALS(g);
    const int Hp = H + PH + PHE, Wp = W + PW + PWE;
    *H2 = (Hp + SH - 1) / SH;
    *W2 = (Wp + SW - 1) / SW;
    const size_t bytes = (size_t)*H2 * *W2 + (size_t)*W2 + 2 * KILN_Q_CHUNK + 64;
    return (bytes + 63) & ~(size_t)63;
}

static size_t qconv_source_bytes(kiln_conv_geometry g) {
    int H2, W2;
    const size_t plane = qconv_plane(g, &H2, &W2);
    return (size_t)g.C * g.SH * g.SW * plane + 64;
}

static int qconv_columns(kiln_conv_geometry g) {
    int H2, W2;
    qconv_plane(g, &H2, &W2);
    return g.OH * W2;
}

static size_t qconv_packed_bytes(int M, int K) { return (size_t)((M + 7) / 8) * 8 * (size_t)((K + 3) / 4) * 4; }

// Per-thread scratch: the rows' offsets (K rounded up to 4) and one chunk of columns,
// [K/4][KILN_Q_CHUNK columns][4 bytes], 64-byte aligned.
static size_t qconv_chunk_bytes(kiln_conv_geometry g) {
    const size_t K4 = ((size_t)g.C * g.KH * g.KW + 3) / 4;
    return K4 * 16 + K4 * 4 * KILN_Q_CHUNK + 192;
}

// Weights q [M, K] → blocks of 8 rows, packed[mb][k4][i][j] = q[8·mb + i][4·k4 + j], zero past M and K.
static void qconv_pack(const int8_t *q, int M, int K, int8_t *packed) {
    const int K4 = (K + 3) / 4, MB = (M + 7) / 8;
    memset(packed, 0, qconv_packed_bytes(M, K));
    for (int mb = 0; mb < MB; mb++)
        for (int i = 0; i < 8 && mb * 8 + i < M; i++)
            for (int k = 0; k < K; k++) packed[(((size_t)mb * K4 + k / 4) * 8 + i) * 4 + k % 4] = q[(size_t)(mb * 8 + i) * K + k];
}

// f32 → bf16, rounded to nearest even (NaN kept a quiet NaN), as vcvtneps2bf16 does.
static inline uint16_t bf16_of(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7FFFu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float float_of_bf16(uint16_t h) {
    const uint32_t u = (uint32_t)h << 16;
    float v;
    memcpy(&v, &u, 4);
    return v;
}

static inline uint8_t quantize_u8(float v, float inv, int zero) {
    const float q = nearbyintf(v * inv) + (float)zero;
    return q != q ? 0 : q < 0.0f ? 0 : q > 255.0f ? 255 : (uint8_t)q;
}

#if KILN_LEVEL == KILN_LEVEL_AVX512
// Sixteen floats → sixteen bytes: round(v · inv) + zero, clamped to [0, 255] (NaN → 0).
static inline __m128i quantize16_u8(__m512 v, __m512 inv, __m512i zero) {
    __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), zero);
    q = _mm512_min_epi32(_mm512_max_epi32(q, _mm512_setzero_si512()), _mm512_set1_epi32(255));
    return _mm512_cvtepi32_epi8(q);
}
#endif

// How the narrow kernels (int8 here, bf16 in bf16.c) fill their source planes: elements of
// `size` bytes (1: uint8 quantized with inv = 1 / scale and the zero point; 2: bf16), one
// phase row of W2 elements at a time from the input row xr (NULL: a row of padding) at the
// phase's column b (quantize_row, bf16_row), and a plane's slack (reads past its last row, by
// columns never stored) holding the padding value.
typedef struct narrow_fill {
    size_t size;
    float inv;
    int zero;
} narrow_fill;

static inline __attribute__((always_inline)) void quantize_row(const narrow_fill *f, kiln_conv_geometry g, const float *xr, int b, int W2, void *dst);
static void bf16_row(const narrow_fill *f, kiln_conv_geometry g, const float *xr, int b, int W2, void *dst);

// Channels [c_begin, c_end) of one image x [C, H, W] into their phase planes — only the
// phases some tap reads (a strided 1×1 convolution reads one of four).
static inline __attribute__((always_inline)) void narrow_planes(const float *x, kiln_conv_geometry g, int c_begin, int c_end, const narrow_fill *f, uint8_t *source) {
    KILN_GEOMETRY_LOCALS(g);
    int H2, W2;
    const size_t plane = qconv_plane(g, &H2, &W2), chan = (size_t)SH * SW * plane;
    const int every = SH > 32 || SW > 32;
    unsigned rows_read = 0, cols_read = 0;
    for (int kh = 0; kh < KH && !every; kh++) rows_read |= 1u << ((kh * DH) % SH);
    for (int kw = 0; kw < KW && !every; kw++) cols_read |= 1u << ((kw * DW) % SW);
    for (int c = c_begin; c < c_end; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int a = 0; a < SH; a++) {
            for (int b = 0; b < SW; b++) {
                if (!every && (!(rows_read >> a & 1) || !(cols_read >> b & 1))) continue;
                uint8_t *p = source + ((size_t)c * chan + (size_t)(a * SW + b) * plane) * f->size;
                for (int r = 0; r < H2; r++) {
                    const int iy = r * SH + a - PH;
                    const float *xr = iy < 0 || iy >= H ? NULL : xc + (size_t)iy * W;
                    if (f->size == 1) quantize_row(f, g, xr, b, W2, p + (size_t)r * W2);
                    else bf16_row(f, g, xr, b, W2, p + (size_t)r * W2 * f->size);
                }
                memset(p + (size_t)H2 * W2 * f->size, f->size == 1 ? f->zero : 0, (plane - (size_t)H2 * W2) * f->size);
            }
        }
    }
}

// Lanes outside the row load as 0, which quantizes to the zero point.
static inline __attribute__((always_inline)) void quantize_row(const narrow_fill *f, kiln_conv_geometry g, const float *xr, int b, int W2, void *dst) {
    const int SW = g.SW, PW = g.PW, W = g.W, zero = f->zero;
    const float inv = f->inv;
    uint8_t *row = dst;
    if (!xr) {
        memset(row, zero, (size_t)W2);
        return;
    }
    int s = 0;
#if KILN_LEVEL == KILN_LEVEL_AVX512
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i vzero = _mm512_set1_epi32(zero);
    if (SW == 1) {
        for (; s < W2; s += 16) {
            const int ix = b + s - PW;
            const __mmask16 m = (__mmask16)(lanes(W - ix) & ~lanes(-ix));
            _mm_mask_storeu_epi8(row + s, (__mmask16)lanes(W2 - s), quantize16_u8(_mm512_maskz_loadu_ps(m, xr + ix), vinv, vzero));
        }
    } else if (SW == 2) {
        const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        for (; s < W2; s += 16) {
            const int ix = b + 2 * s - PW;
            const __mmask16 m0 = (__mmask16)(lanes(W - ix) & ~lanes(-ix));
            const __mmask16 m1 = (__mmask16)(lanes(W - ix - 16) & ~lanes(-ix - 16));
            const __m512 v0 = _mm512_maskz_loadu_ps(m0, xr + ix), v1 = _mm512_maskz_loadu_ps(m1, xr + ix + 16);
            _mm_mask_storeu_epi8(row + s, (__mmask16)lanes(W2 - s), quantize16_u8(_mm512_permutex2var_ps(v0, even, v1), vinv, vzero));
        }
    }
#endif
    for (; s < W2; s++) {
        const int ix = s * SW + b - PW;
        row[s] = ix < 0 || ix >= W ? (uint8_t)zero : quantize_u8(xr[ix], inv, zero);
    }
}

// Channels [c_begin, c_end) of one image x [C, H, W] into its uint8 source planes (the
// padding and the slack hold the zero point).
static void qconv_quantize(const float *x, kiln_conv_geometry g, float scale, int zero, int c_begin, int c_end, uint8_t *source) {
    const narrow_fill f = {.size = 1, .inv = 1.0f / scale, .zero = zero};
    narrow_planes(x, g, c_begin, c_end, &f, source);
}

// Row k of the product (channel c, tap kh, kw) as an element offset into the source planes,
// K rounded up to a multiple of `group` (the rows a lane's dot product sums: 4, or bf16's 2).
static void narrow_offsets(kiln_conv_geometry g, int group, int32_t *off) {
    KILN_GEOMETRY_LOCALS(g);
    int H2, W2;
    const size_t plane = qconv_plane(g, &H2, &W2);
    const int K = C * KH * KW, rows = (K + group - 1) / group * group;
    for (int k = 0; k < rows; k++) {
        const int kk = k < K ? k : K - 1;  // rows past K have zero weights
        const int c = kk / (KH * KW), t = kk % (KH * KW), kh = t / KW, kw = t % KW;
        const int dy = kh * DH, dx = kw * DW;
        off[k] = (int32_t)((size_t)c * SH * SW * plane + (size_t)((dy % SH) * SW + dx % SW) * plane + (size_t)(dy / SH) * W2 + dx / SW);
    }
}

// The narrow kernels' plain loops (CPUs without the instruction, and the portable and AVX2
// levels): per output, Σ_k w·x over the packed weights (blocks of 8 rows × `group` elements)
// and the source rows, in Double — exact for int8's integers and for bf16's products — then
// int8's (Σ − offset[m]) · scale[m] (scale NULL: bf16, the sum as it is), bias, residual,
// activation. bf16 (group 2) elements are 16-bit, int8's (group 4) 8-bit.
static void narrow_gemm_plain(const void *packed, const void *source, int group, kiln_conv_geometry g, int n_begin, int n_end, int mb_begin,
                              int mb_end, const float *scale, const int32_t *offset, const float *bias, const float *residual, kiln_act a,
                              const int32_t *off, float *y) {
    KILN_GEOMETRY_LOCALS(g);
    KILN_ACT_LOCALS(a);
    int H2, W2;
    qconv_plane(g, &H2, &W2);
    const int K = C * KH * KW, KG = (K + group - 1) / group;
    const size_t ldy = (size_t)OH * OW;
    for (int n = n_begin; n < n_end; n++) {
        const int oy = n / W2, ox = n % W2;
        if (ox >= OW) continue;
        const size_t at = (size_t)oy * OW + ox;
        for (int mb = mb_begin; mb < mb_end; mb++) {
            for (int i = 0; i < 8 && mb * 8 + i < M; i++) {
                const int m = mb * 8 + i;
                double acc = 0;
                for (int k = 0; k < K; k++) {
                    const size_t wk = (((size_t)mb * KG + k / group) * 8 + i) * group + k % group, xk = (size_t)off[k] + n;
                    acc += group == 4 ? (double)((const int8_t *)packed)[wk] * ((const uint8_t *)source)[xk]
                                      : (double)float_of_bf16(((const uint16_t *)packed)[wk]) * float_of_bf16(((const uint16_t *)source)[xk]);
                }
                const float v = (scale ? (float)((int32_t)acc - offset[m]) * scale[m] : (float)acc) + (bias ? bias[m] : 0.0f);
                y[m * ldy + at] = apply_act(v + (residual ? residual[m * ldy + at] : 0.0f), act, alpha, lo, hi);
            }
        }
    }
}

#if KILN_LEVEL == KILN_LEVEL_AVX512
// Where 16 lanes of a chunk go: runs of lanes [lane, lane + len) to output offset `at` on.
typedef struct {
    int count;
    int lane[17], len[17];
    size_t at[17];
} qconv_segments;

static void qconv_segments_of(int n, int n_end, int W2, int OW, qconv_segments *s) {
    s->count = 0;
    for (int j = 0; j < 16 && n + j < n_end;) {
        const int oy = (n + j) / W2, ox = (n + j) % W2;
        int run = 16 - j;
        if (run > W2 - ox) run = W2 - ox;
        if (run > n_end - n - j) run = n_end - n - j;
        const int last = s->count - 1;
        if (ox < OW && last >= 0 && s->lane[last] + s->len[last] == j && s->at[last] + (size_t)s->len[last] == (size_t)oy * OW + ox) {
            // Contiguous in the output too (a row's end and the next one's start, when no
            // column is dropped): one run.
            s->len[last] += run < OW - ox ? run : OW - ox;
        } else if (ox < OW) {
            s->lane[s->count] = j;
            s->len[s->count] = run < OW - ox ? run : OW - ox;
            s->at[s->count] = (size_t)oy * OW + ox;
            s->count++;
        }
        j += run;
    }
}

// Sixteen outputs of one row, run by run to their places: the residual added, the activation
// applied, lanes past the runs never written.
static inline __attribute__((always_inline)) void narrow_store(__m512 v, const qconv_segments *seg, float *ym, const float *rm, kiln_act a) {
    KILN_ACT_LOCALS(a);
    for (int s = 0; s < seg->count; s++) {
        const int lane = seg->lane[s], len = seg->len[s];
        const __mmask16 keep = (__mmask16)lanes(len);
        __m512 u = lane ? _mm512_maskz_compress_ps((__mmask16)(lanes(lane + len) & ~lanes(lane)), v) : v;
        if (rm) u = _mm512_add_ps(u, _mm512_maskz_loadu_ps(keep, rm + seg->at[s]));
        _mm512_mask_storeu_ps(ym + seg->at[s], keep, activate16(u, 16, act, alpha, lo, hi));
    }
}

__attribute__((target("avx512vnni"))) static void qconv_gemm_vnni(const int8_t *packed, const uint8_t *source, kiln_conv_geometry g,
                                                                  int n_begin, int n_end, int mb_begin, int mb_end, const float *scale,
                                                                  const int32_t *offset, const float *bias, const float *residual, kiln_act a,
                                                                  const int32_t *off, uint8_t *chunk, float *y) {
    KILN_GEOMETRY_LOCALS(g);
    int H2, W2;
    qconv_plane(g, &H2, &W2);
    const int K = C * KH * KW, K4 = (K + 3) / 4;
    const size_t ldy = (size_t)OH * OW;
    for (int n0 = n_begin; n0 < n_end; n0 += KILN_Q_CHUNK) {
        // The chunk: KILN_Q_CHUNK columns of every row, four rows interleaved byte by byte
        // (the operand order of vpdpbusd).
        for (int k4 = 0; k4 < K4; k4++) {
            const uint8_t *r0 = source + off[4 * k4] + n0, *r1 = source + off[4 * k4 + 1] + n0;
            const uint8_t *r2 = source + off[4 * k4 + 2] + n0, *r3 = source + off[4 * k4 + 3] + n0;
            for (int h = 0; h < KILN_Q_VECTORS; h++) {
                const __m512i b0 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(r0 + 16 * h)));
                const __m512i b1 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(r1 + 16 * h)));
                const __m512i b2 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(r2 + 16 * h)));
                const __m512i b3 = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(r3 + 16 * h)));
                const __m512i v = _mm512_or_si512(_mm512_or_si512(b0, _mm512_slli_epi32(b1, 8)),
                                                  _mm512_or_si512(_mm512_slli_epi32(b2, 16), _mm512_slli_epi32(b3, 24)));
                _mm512_store_si512((__m512i *)(chunk + (size_t)k4 * 64 * KILN_Q_VECTORS + 64 * h), v);
            }
        }
        qconv_segments seg[KILN_Q_VECTORS];
        for (int h = 0; h < KILN_Q_VECTORS; h++) qconv_segments_of(n0 + 16 * h, n_end, W2, OW, &seg[h]);
        for (int mb = mb_begin; mb < mb_end; mb++) {
            const int32_t *w = (const int32_t *)(packed + (size_t)mb * K4 * 32);
            __m512i acc[8][KILN_Q_VECTORS];
            for (int i = 0; i < 8; i++)
                for (int h = 0; h < KILN_Q_VECTORS; h++) acc[i][h] = _mm512_setzero_si512();
            const uint8_t *ck = chunk;
            for (int k4 = 0; k4 < K4; k4++, ck += 64 * KILN_Q_VECTORS, w += 8) {
                __m512i x[KILN_Q_VECTORS];
                for (int h = 0; h < KILN_Q_VECTORS; h++) x[h] = _mm512_load_si512((const __m512i *)(ck + 64 * h));
                for (int i = 0; i < 8; i++) {
                    const __m512i wi = _mm512_set1_epi32(w[i]);
                    for (int h = 0; h < KILN_Q_VECTORS; h++) acc[i][h] = _mm512_dpbusd_epi32(acc[i][h], x[h], wi);
                }
            }
            for (int i = 0; i < 8 && mb * 8 + i < M; i++) {
                const int m = mb * 8 + i;
                const __m512 sm = _mm512_set1_ps(scale[m]), bm = _mm512_set1_ps(bias ? bias[m] : 0.0f);
                const __m512i om = _mm512_set1_epi32(offset[m]);
                float *ym = y + (size_t)m * ldy;
                const float *rm = residual ? residual + (size_t)m * ldy : NULL;
                for (int h = 0; h < KILN_Q_VECTORS; h++)
                    narrow_store(_mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc[i][h], om)), sm, bm), &seg[h], ym, rm, a);
            }
        }
    }
}

static int qconv_vnni(void) {
    static int known = -1;
    if (known < 0) {
        __builtin_cpu_init();
        known = __builtin_cpu_supports("avx512vnni") ? 1 : 0;
    }
    return known;
}
#else
static int qconv_vnni(void) { return 0; }
#endif

// Output columns [n_begin, n_end) (of qconv_columns) and channel blocks [mb_begin, mb_end) of one image.
static void qconv_gemm(const int8_t *packed, const uint8_t *source, kiln_conv_geometry g, int n_begin, int n_end, int mb_begin,
                       int mb_end, const float *scale, const int32_t *offset, const float *bias, const float *residual, kiln_act a,
                       uint8_t *scratch, float *y) {
    const int K4 = (g.C * g.KH * g.KW + 3) / 4;
    int32_t *off = (int32_t *)(((uintptr_t)scratch + 63) & ~(uintptr_t)63);
    narrow_offsets(g, 4, off);
#if KILN_LEVEL == KILN_LEVEL_AVX512
    if (qconv_vnni()) {
        uint8_t *chunk = (uint8_t *)(((uintptr_t)(off + 4 * K4) + 63) & ~(uintptr_t)63);
        qconv_gemm_vnni(packed, source, g, n_begin, n_end, mb_begin, mb_end, scale, offset, bias, residual, a, off, chunk, y);
        return;
    }
#endif
    (void)K4;
    narrow_gemm_plain(packed, source, 4, g, n_begin, n_end, mb_begin, mb_end, scale, offset, bias, residual, a, off, y);
}
