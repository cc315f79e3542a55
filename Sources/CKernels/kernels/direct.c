// Direct convolution on a zero-padded copy of the input (every tap a constant shift of the
// output index), and the weight gradient of stride-1 convolutions in the same form.
//
// Strided, the padded input is stored as its SH·SW phases (rows ≡ a mod SH, columns ≡ b mod
// SW), each Hph × Wph: output (oh, ow)'s tap (kh, kw) reads phase (kh mod SH, kw mod SW) at
// (oh + kh / SH, ow + kw / SW), so every tap is again a constant shift on a grid Wph wide.
// Stride 1 is the one-phase case (Hph × Wph = the padded image).

static int conv_shift_phase_h(kiln_conv_geometry g) { return (g.H + g.PH + g.PHE + g.SH - 1) / g.SH; }
static int conv_shift_phase_w(kiln_conv_geometry g) { return (g.W + g.PW + g.PWE + g.SW - 1) / g.SW; }

static int conv_shift_plane(kiln_conv_geometry g) {
    KILN_GEOMETRY_LOCALS(g);
    const int phases = SH * SW * conv_shift_phase_h(g) * conv_shift_phase_w(g);
    // Room past the last phase for the vector reads of the padded grid's junk columns.
    return phases + 32 + KW + 16;
}

static void conv_shift_pad(const float *x, kiln_conv_geometry g, int plane, float *xp) {
    KILN_GEOMETRY_LOCALS(g);
    const int Hph = conv_shift_phase_h(g), Wph = conv_shift_phase_w(g);
    for (int c = 0; c < C; c++) {
        float *dst = xp + (size_t)c * plane;
        memset(dst, 0, sizeof(float) * plane);
        const float *src = x + (size_t)c * H * W;
        if (SH == 1 && SW == 1) {
            for (int h = 0; h < H; h++) memcpy(dst + (size_t)(h + PH) * Wph + PW, src + (size_t)h * W, sizeof(float) * W);
            continue;
        }
        const size_t phase = (size_t)Hph * Wph;
        for (int h = 0; h < H; h++) {
            const int r = h + PH;
            float *row = dst + (size_t)(r % SH) * SW * phase + (size_t)(r / SH) * Wph;
            const float *in = src + (size_t)h * W;
            int w = 0;
            if (SW == 2) {
                // Thirty-two columns at a time: the even ones (w0, w0 + 2, …) go to phase
                // (w0 + PW) mod 2 and the odd ones to the other, each sixteen consecutive
                // places of its phase.
                const int be = PW & 1, bo = 1 - be;
                for (; w + 32 <= W; w += 32) {
                    const kiln_v16 a = load16(in + w), c = load16(in + w + 16);
                    store16(row + be * phase + (w + PW - be) / 2,
                            __builtin_shufflevector(a, c, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
                    store16(row + bo * phase + (w + 1 + PW - bo) / 2,
                            __builtin_shufflevector(a, c, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31));
                }
            }
            // Column w + PW goes to phase b = (w + PW) mod SW at j = (w + PW) / SW.
            int b = (w + PW) % SW, j = (w + PW) / SW;
            for (; w < W; w++) {
                row[b * phase + j] = in[w];
                if (++b == SW) { b = 0; j++; }
            }
        }
    }
}

static size_t conv_shift_packed_size(kiln_conv_geometry g) { return (size_t)(g.M + 7) / 8 * 8 * g.C * g.KH * g.KW; }

static void conv_shift_pack(const float *w, kiln_conv_geometry g, float *packed) {
    KILN_GEOMETRY_LOCALS(g);
    const int T = KH * KW;
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < T; t++)
                packed[(((size_t)(m / 8) * C + c) * T + t) * 8 + (m % 8)] = w[((size_t)m * C + c) * T + t];
}

static void conv_shift(const float *xp, kiln_conv_geometry g, int plane, const float *packed, int mb_begin, int mb_end,
                       const float *bias, const float *residual, kiln_act a, float *y) {
    KILN_GEOMETRY_LOCALS(g);
    KILN_ACT_LOCALS(a);
    const int Hph = conv_shift_phase_h(g), Wp = conv_shift_phase_w(g);  // Wp: the grid's width
    const int T = KH * KW;
    const int Q = OH * Wp;  // outputs on the padded grid
    int shift[64];
    for (int kh = 0, t = 0; kh < KH; kh++)
        for (int kw = 0; kw < KW; kw++, t++)
            shift[t] = ((kh % SH) * SW + kw % SW) * Hph * Wp + kh / SH * Wp + kw / SW;
    float tile[8][32];
    for (int mb = mb_begin; mb < mb_end; mb++) {
        const float *wb = packed + (size_t)mb * C * T * 8;
        for (int q0 = 0; q0 < Q; q0 += 32) {
#if KILN_LEVEL == KILN_LEVEL_AVX2
            // 16 ymm registers (8 × 32 outputs would need 32): four passes over the block, each
            // 4 output channels × 16 outputs in 8 accumulators, the input read from L1 again.
            for (int h = 0; h < 2; h++) {
                for (int o = 0; o < 2; o++) {
                    __m256 acc[4][2];
                    for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
                    for (int c = 0; c < C; c++) {
                        const float *xc = xp + (size_t)c * plane + q0 + 16 * o;
                        const float *wc = wb + (size_t)c * T * 8 + 4 * h;
                        for (int t = 0; t < T; t++) {
                            const __m256 x0 = _mm256_loadu_ps(xc + shift[t]), x1 = _mm256_loadu_ps(xc + shift[t] + 8);
                            for (int i = 0; i < 4; i++) {
                                const __m256 w = _mm256_broadcast_ss(wc + t * 8 + i);
                                acc[i][0] = _mm256_fmadd_ps(x0, w, acc[i][0]);
                                acc[i][1] = _mm256_fmadd_ps(x1, w, acc[i][1]);
                            }
                        }
                    }
                    for (int i = 0; i < 4; i++) {
                        _mm256_storeu_ps(&tile[4 * h + i][16 * o], acc[i][0]);
                        _mm256_storeu_ps(&tile[4 * h + i][16 * o + 8], acc[i][1]);
                    }
                }
            }
#else
            kiln_v16 a0[8], a1[8];
            for (int i = 0; i < 8; i++) { a0[i] = (kiln_v16){0}; a1[i] = (kiln_v16){0}; }
#define KILN_FMA(i) a0[i] += x0 * wt[i]; a1[i] += x1 * wt[i];
#define KILN_TAP(off, t) { const kiln_v16 x0 = load16(xc + (off)), x1 = load16(xc + (off) + 16); const float *wt = wc + (t) * 8; \
                           KILN_FMA(0) KILN_FMA(1) KILN_FMA(2) KILN_FMA(3) KILN_FMA(4) KILN_FMA(5) KILN_FMA(6) KILN_FMA(7) }
            if (KH == 3 && KW == 3 && SH == 1 && SW == 1) {
                // The common case with the nine taps unrolled (offsets 0, 1, 2, Wp, …).
                const int w1 = Wp, w2 = 2 * Wp;
                for (int c = 0; c < C; c++) {
                    const float *xc = xp + (size_t)c * plane + q0;
                    const float *wc = wb + (size_t)c * 72;
                    KILN_TAP(0, 0) KILN_TAP(1, 1) KILN_TAP(2, 2)
                    KILN_TAP(w1, 3) KILN_TAP(w1 + 1, 4) KILN_TAP(w1 + 2, 5)
                    KILN_TAP(w2, 6) KILN_TAP(w2 + 1, 7) KILN_TAP(w2 + 2, 8)
                }
            } else {
                for (int c = 0; c < C; c++) {
                    const float *xc = xp + (size_t)c * plane + q0;
                    const float *wc = wb + (size_t)c * T * 8;
                    for (int t = 0; t < T; t++) KILN_TAP(shift[t], t)
                }
            }
#undef KILN_TAP
#undef KILN_FMA
            for (int i = 0; i < 8; i++) {
                memcpy(&tile[i][0], &a0[i], 64);
                memcpy(&tile[i][16], &a1[i], 64);
            }
#endif
            // Store the valid outputs of this block with the epilogue, one row run at a time.
            const int qend = q0 + 32 < Q ? q0 + 32 : Q;
            for (int q = q0; q < qend;) {
                const int oh = q / Wp, ow = q % Wp;
                int run = Wp - ow;
                if (q + run > qend) run = qend - q;
                const int valid = ow < OW ? (ow + run <= OW ? run : OW - ow) : 0;
                if (valid > 0) {
                    const int j0 = q - q0;
                    for (int i = 0; i < 8; i++) {
                        const int m = mb * 8 + i;
                        const size_t k = (size_t)m * OH * OW + (size_t)oh * OW + ow;
                        float *dst = y + k;
                        const float *src = &tile[i][j0];
                        const float b = bias ? bias[m] : 0.0f;
                        if (residual) {
                            const float *r = residual + k;
                            for (int j = 0; j < valid; j++) dst[j] = src[j] + b + r[j];
                        } else {
                            for (int j = 0; j < valid; j++) dst[j] = src[j] + b;
                        }
                        if (act == KILN_ACT_RELU) {
                            for (int j = 0; j < valid; j++) dst[j] = dst[j] < 0.0f ? 0.0f : dst[j];
                        } else if (act != KILN_ACT_NONE) {
                            activation(dst, dst, (size_t)valid, a);  // sixteen at a time (epilogue.c)
                        }
                    }
                }
                q += run;
            }
        }
    }
}

static void pad_rows(const float *dy, int M, int OH, int OW, int Wp, float *dyp) {
    for (int m = 0; m < M; m++) {
        for (int oh = 0; oh < OH; oh++) {
            float *dst = dyp + ((size_t)m * OH + oh) * Wp;
            memcpy(dst, dy + ((size_t)m * OH + oh) * OW, sizeof(float) * OW);
            for (int j = OW; j < Wp; j++) dst[j] = 0.0f;
        }
    }
}

static void weight_grad_shift(const float *dyp, const float *xp, int G, kiln_conv_geometry g, int plane, int m_begin,
                              int m_end, float *dw) {
    KILN_GEOMETRY_LOCALS(g);
    const int Wp = W + PW + PWE, Q = OH * Wp;
    const int T = KH * KW, K = C * T;
    // Row k = (c, kh, kw) of the (virtual) patch matrix of image g is xp_g[c] shifted by
    // kh·Wp + kw; dy sits on the same padded grid with zero junk columns.
#define KILN_XROW(g, k) (xp + ((size_t)(g) * C + (k) / T) * plane + ((k) % T) / KW * Wp + ((k) % T) % KW)
#if KILN_SIMD
    const int m4 = m_begin + (m_end - m_begin) / 4 * 4;
    int k0 = 0;
    for (; k0 + 4 <= K; k0 += 4) {
        for (int m0 = m_begin; m0 < m4; m0 += 4) {
            v16 acc[4][4];
            for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = v16_zero();
            for (int g = 0; g < G; g++) {
                const float *a0 = dyp + ((size_t)g * M + m0) * Q;
                const float *b0 = KILN_XROW(g, k0), *b1 = KILN_XROW(g, k0 + 1), *b2 = KILN_XROW(g, k0 + 2), *b3 = KILN_XROW(g, k0 + 3);
                for (int q = 0; q < Q; q += 16) {
                    const m16 mask = Q - q >= 16 ? 0xFFFF : (m16)((1u << (Q - q)) - 1u);
                    v16 a[4], b[4];
                    for (int i = 0; i < 4; i++) a[i] = v16_maskz_load(mask, a0 + (size_t)i * Q + q);
                    b[0] = v16_maskz_load(mask, b0 + q);
                    b[1] = v16_maskz_load(mask, b1 + q);
                    b[2] = v16_maskz_load(mask, b2 + q);
                    b[3] = v16_maskz_load(mask, b3 + q);
                    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = v16_fmadd(a[i], b[j], acc[i][j]);
                }
            }
            for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) dw[(size_t)(m0 + i) * K + k0 + j] += v16_reduce_add(acc[i][j]);
        }
    }
    for (int m = m_begin; m < m_end; m++) {
        for (int k = m < m4 ? k0 : 0; k < K; k++) {
            v16 acc = v16_zero();
            for (int g = 0; g < G; g++) {
                const float *a = dyp + ((size_t)g * M + m) * Q, *b = KILN_XROW(g, k);
                for (int q = 0; q < Q; q += 16) {
                    const m16 mask = Q - q >= 16 ? 0xFFFF : (m16)((1u << (Q - q)) - 1u);
                    acc = v16_fmadd(v16_maskz_load(mask, a + q), v16_maskz_load(mask, b + q), acc);
                }
            }
            dw[(size_t)m * K + k] += v16_reduce_add(acc);
        }
    }
#else
    for (int m = m_begin; m < m_end; m++) {
        for (int k = 0; k < K; k++) {
            float acc = 0;
            for (int g = 0; g < G; g++) {
                const float *a = dyp + ((size_t)g * M + m) * Q, *b = KILN_XROW(g, k);
                for (int q = 0; q < Q; q++) acc += a[q] * b[q];
            }
            dw[(size_t)m * K + k] += acc;
        }
    }
#endif
#undef KILN_XROW
}
