// Winograd F(2×2, 3×3) forward: weight packing, the vector paths (tiles and channels-last)
// and the portable scalar path.

// U = G g Gᵀ for every (m, c) of w [M, C, 3, 3], or with `flip` for the data gradient's
// convolution (g rotated by 180°, w's channel axes exchanged). Packed for the path the
// convolution (output width OW) takes: [16][C][M] channels-last, [16][M/8][C][8] for tiles.
static void winograd_pack_any(const float *w, int M, int C, int OW, int flip, float *packed) {
    // Output channels of the packed convolution: M (forward) or C (flipped: the data gradient
    // of w, a convolution from M channels to C).
    const int PM = flip ? C : M, PC = flip ? M : C;
#if KILN_SIMD
    const int cl = winograd_channels_last((OW + 1) / 2, PC, PM);
#else
    const int cl = 1;
    (void)OW;
#endif
    // Eight packed output channels at a time, so that each ξ receives 8 contiguous floats in
    // either layout (PM is a multiple of 8).
    for (int pc = 0; pc < PC; pc++) {
        for (int pm0 = 0; pm0 < PM; pm0 += 8) {
            float u[16][8];
            for (int j8 = 0; j8 < 8; j8++) {
                const int pm = pm0 + j8, m = flip ? pc : pm, c = flip ? pm : pc;
                const float *src = w + ((size_t)m * C + c) * 9;
                float g[9];
                for (int t = 0; t < 9; t++) g[t] = flip ? src[8 - t] : src[t];
                float t3[4][3];  // G g: 4×3
                for (int j = 0; j < 3; j++) {
                    t3[0][j] = g[0 * 3 + j];
                    t3[1][j] = 0.5f * (g[0 * 3 + j] + g[1 * 3 + j] + g[2 * 3 + j]);
                    t3[2][j] = 0.5f * (g[0 * 3 + j] - g[1 * 3 + j] + g[2 * 3 + j]);
                    t3[3][j] = g[2 * 3 + j];
                }
                for (int i = 0; i < 4; i++) {  // (G g) Gᵀ: row i
                    u[i * 4 + 0][j8] = t3[i][0];
                    u[i * 4 + 1][j8] = 0.5f * (t3[i][0] + t3[i][1] + t3[i][2]);
                    u[i * 4 + 2][j8] = 0.5f * (t3[i][0] - t3[i][1] + t3[i][2]);
                    u[i * 4 + 3][j8] = t3[i][2];
                }
            }
            for (size_t xi = 0; xi < 16; xi++) {
                float *dst = cl ? packed + (xi * PC + pc) * PM + pm0 : packed + ((xi * (PM / 8) + pm0 / 8) * PC + pc) * 8;
                memcpy(dst, u[xi], sizeof(float) * 8);
            }
        }
    }
}

static size_t winograd_packed_size(kiln_conv_geometry g) { return (size_t)16 * g.C * g.M; }

static void winograd_pack(const float *w, kiln_conv_geometry g, float *packed) { winograd_pack_any(w, g.M, g.C, g.OW, 0, packed); }

static void winograd_pack_flipped(const float *w, kiln_conv_geometry g, float *packed) {
    // The data gradient of a 3×3 stride-1 convolution is the convolution of dy with the
    // kernel rotated by 180° and its channel axes swapped: g[c][m] = rot180(w[m][c]). w is
    // the forward's [g.C, g.M, 3, 3].
    winograd_pack_any(w, g.C, g.M, g.OW, 1, packed);
}

// Enough for any level's path, so a plan made once serves whichever level runs.
static int winograd_scratch(kiln_conv_geometry g) {
    int TH, TW, Hp, Wp;
    winograd_dims(g.H, g.W, g.PH, g.PW, g.PHE, g.PWE, g.OH, g.OW, &TH, &TW, &Hp, &Wp);
    const size_t v = winograd_vector_scratch(g.C, g.M, TW), p = winograd_portable_scratch(g.C, g.M, TW, Hp, Wp);
    const size_t t = winograd_tile_scratch(g.C, g.M, TW), most = v > p ? v : p;
    return (int)(most > t ? most : t);
}

static int winograd_tile_rows(kiln_conv_geometry g) { return (g.OH + 1) / 2; }

#if KILN_SIMD

// Mt[ξ][t][m − m_lo] = Σ_c Vt[ξ][t][c] · U[ξ][c][m] for tiles [0, T) (a multiple of 8 with
// zero rows past the block) and output channels [m_lo, m_hi): 8 tiles × 32 output channels
// in registers (16 × 16 when 16 channels remain), Vt broadcast, U the vector operand.
static void winograd_multiply_cl(const float *Vt, size_t vs, const float *U, int C, int M, int m_lo, int m_hi, int T,
                                 float *Mt, size_t ms) {
    const int ML = m_hi - m_lo;
#if KILN_LEVEL == KILN_LEVEL_AVX2
    // 16 ymm registers: 4 tiles × 24 output channels (12 accumulators) instead of 8 × 32.
    for (int xi = 0; xi < 16; xi++) {
        const float *vb = Vt + xi * vs, *ub = U + (size_t)xi * C * M;
        float *mb = Mt + xi * ms;
        for (int m0 = m_lo; m0 < m_hi; m0 += 24) {
            const int rem = m_hi - m0;
            const m16 first = lanes(rem), second = lanes(rem - 16);
            const __m256i k0 = mask_lanes8(first & 0xFF), k1 = mask_lanes8((first >> 8) & 0xFF), k2 = mask_lanes8(second & 0xFF);
            for (int t0 = 0; t0 < T; t0 += 4) {
                __m256 acc[4][3];
                for (int i = 0; i < 4; i++) acc[i][0] = acc[i][1] = acc[i][2] = _mm256_setzero_ps();
                const float *v = vb + (size_t)t0 * C;
                for (int c = 0; c < C; c++) {
                    const float *uc = ub + (size_t)c * M + m0;
                    __m256 u0, u1, u2;
                    if (rem >= 24) {
                        u0 = _mm256_loadu_ps(uc), u1 = _mm256_loadu_ps(uc + 8), u2 = _mm256_loadu_ps(uc + 16);
                    } else {
                        u0 = _mm256_maskload_ps(uc, k0), u1 = _mm256_maskload_ps(uc + 8, k1), u2 = _mm256_maskload_ps(uc + 16, k2);
                    }
                    for (int i = 0; i < 4; i++) {
                        const __m256 b = _mm256_broadcast_ss(v + (size_t)i * C + c);
                        acc[i][0] = _mm256_fmadd_ps(u0, b, acc[i][0]);
                        acc[i][1] = _mm256_fmadd_ps(u1, b, acc[i][1]);
                        acc[i][2] = _mm256_fmadd_ps(u2, b, acc[i][2]);
                    }
                }
                for (int i = 0; i < 4; i++) {
                    float *out = mb + (size_t)(t0 + i) * ML + (m0 - m_lo);
                    _mm256_maskstore_ps(out, k0, acc[i][0]);
                    _mm256_maskstore_ps(out + 8, k1, acc[i][1]);
                    _mm256_maskstore_ps(out + 16, k2, acc[i][2]);
                }
            }
        }
    }
#else
    for (int xi = 0; xi < 16; xi++) {
        const float *vb = Vt + xi * vs, *ub = U + (size_t)xi * C * M;
        float *mb = Mt + xi * ms;
        for (int m0 = m_lo; m0 < m_hi; m0 += 32) {
            const int rem = m_hi - m0;
            const m16 k0 = lanes(rem);
            if (rem > 16) {
                const m16 k1 = lanes(rem - 16);
                for (int t0 = 0; t0 < T; t0 += 8) {
                    v16 a0[8], a1[8];
                    for (int i = 0; i < 8; i++) { a0[i] = v16_zero(); a1[i] = v16_zero(); }
                    const float *v = vb + (size_t)t0 * C;
                    for (int c = 0; c < C; c++) {
                        const v16 u0 = v16_maskz_load(k0, ub + (size_t)c * M + m0);
                        const v16 u1 = v16_maskz_load(k1, ub + (size_t)c * M + m0 + 16);
                        for (int i = 0; i < 8; i++) {
                            const v16 b = v16_set1(v[(size_t)i * C + c]);
                            a0[i] = v16_fmadd(u0, b, a0[i]);
                            a1[i] = v16_fmadd(u1, b, a1[i]);
                        }
                    }
                    for (int i = 0; i < 8; i++) {
                        v16_mask_store(mb + (size_t)(t0 + i) * ML + (m0 - m_lo), k0, a0[i]);
                        v16_mask_store(mb + (size_t)(t0 + i) * ML + (m0 - m_lo) + 16, k1, a1[i]);
                    }
                }
            } else {
                for (int t0 = 0; t0 < T; t0 += 16) {
                    const int n = T - t0 < 16 ? 8 : 16;
                    v16 a0[16];
                    for (int i = 0; i < 16; i++) a0[i] = v16_zero();
                    const float *v = vb + (size_t)t0 * C;
                    if (n == 16) {
                        for (int c = 0; c < C; c++) {
                            const v16 u0 = v16_maskz_load(k0, ub + (size_t)c * M + m0);
                            for (int i = 0; i < 16; i++) a0[i] = v16_fmadd(u0, v16_set1(v[(size_t)i * C + c]), a0[i]);
                        }
                    } else {
                        for (int c = 0; c < C; c++) {
                            const v16 u0 = v16_maskz_load(k0, ub + (size_t)c * M + m0);
                            for (int i = 0; i < 8; i++) a0[i] = v16_fmadd(u0, v16_set1(v[(size_t)i * C + c]), a0[i]);
                        }
                    }
                    for (int i = 0; i < n; i++) v16_mask_store(mb + (size_t)(t0 + i) * ML + (m0 - m_lo), k0, a0[i]);
                }
            }
        }
    }
#endif
}

// y rows 2·th0 + a for the block's tiles: Aᵀ m A 16 output channels per vector into
// channels-last rows yt [2·rows][2·TW][ML], then per output row back to NCHW with
// y = act(· + bias[m] + residual) on 16 columns per vector.
static void winograd_output_cl(const kiln_conv_geometry *s, int TW, const float *Mt, size_t ms, int ML, int m_lo, int th0, int rows,
                               const float *bias, const float *residual, int act, float alpha, float lo, float hi, float *yt, float *y) {
    const int Wy = 2 * TW;
    const size_t plane = (size_t)s->OH * s->OW;
    for (int th = 0; th < rows; th++) {
        float *r0 = yt + (size_t)2 * th * Wy * ML, *r1 = r0 + (size_t)Wy * ML;
        for (int tw = 0; tw < TW; tw++) {
            const float *p = Mt + (size_t)(th * TW + tw) * ML;
            for (int m0 = 0; m0 < ML; m0 += 16) {
                const m16 k = lanes(ML - m0);
                v16 s0[4], s1[4];
                for (int j = 0; j < 4; j++) {
                    const v16 p0 = v16_maskz_load(k, p + (0 * 4 + j) * ms + m0), p1 = v16_maskz_load(k, p + (1 * 4 + j) * ms + m0);
                    const v16 p2 = v16_maskz_load(k, p + (2 * 4 + j) * ms + m0), p3 = v16_maskz_load(k, p + (3 * 4 + j) * ms + m0);
                    s0[j] = v16_add(v16_add(p0, p1), p2);
                    s1[j] = v16_sub(v16_sub(p1, p2), p3);
                }
                v16_mask_store(r0 + (size_t)(2 * tw) * ML + m0, k, v16_add(v16_add(s0[0], s0[1]), s0[2]));
                v16_mask_store(r0 + (size_t)(2 * tw + 1) * ML + m0, k, v16_sub(v16_sub(s0[1], s0[2]), s0[3]));
                v16_mask_store(r1 + (size_t)(2 * tw) * ML + m0, k, v16_add(v16_add(s1[0], s1[1]), s1[2]));
                v16_mask_store(r1 + (size_t)(2 * tw + 1) * ML + m0, k, v16_sub(v16_sub(s1[1], s1[2]), s1[3]));
            }
        }
    }
    const v16 zero = v16_zero();
    for (int a = 0; a < 2 * rows; a++) {
        const int oh = 2 * th0 + a;
        if (oh >= s->OH) break;
        const float *src = yt + (size_t)a * Wy * ML;
        for (int ow0 = 0; ow0 < s->OW; ow0 += 16) {
            const int cols = s->OW - ow0 < 16 ? s->OW - ow0 : 16;
            const m16 ck = lanes(cols);
            for (int m0 = 0; m0 < ML; m0 += 16) {
                const int mm = ML - m0 < 16 ? ML - m0 : 16;
                const m16 mk = lanes(mm);
                v16 r[16];
                for (int i = 0; i < 16; i++) r[i] = i < cols ? v16_maskz_load(mk, src + (size_t)(ow0 + i) * ML + m0) : zero;
                v16_transpose(r);
                for (int j = 0; j < mm; j++) {
                    const int m = m_lo + m0 + j;
                    const size_t at = (size_t)m * plane + (size_t)oh * s->OW + ow0;
                    v16 v = r[j];
                    if (bias) v = v16_add(v, v16_set1(bias[m]));
                    if (residual) v = v16_add(v, v16_maskz_load(ck, residual + at));
                    v = activate16(v, cols, act, alpha, lo, hi);
                    v16_mask_store(y + at, ck, v);
                }
            }
        }
    }
}

// The tile layout (wide rows): eight tiles of a tile row per vector, NCHW throughout.

// Lanes l of a 16-float load at column `start` that fall inside [0, W): the rest read as zero
// padding (masked lanes are not accessed).
static inline m16 row_mask(int start, int W) {
    const int lo = start < 0 ? -start : 0;
    const int hi = W - start < 16 ? W - start : 16;
    if (hi <= lo) return 0;
    return (m16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

// V = Bᵀ d B for tile rows [th0, th1) of channel plane xc [H][W], straight from the
// unpadded input, into V [16][C][Tpad] (planes xs floats apart) at tile th·TW + tw − tbase. Eight tiles of a tile row
// at once: a 16-float load at column 2·j0 − PW holds columns 0 and 1 of each tile's patch
// (even and odd lanes), the load two columns on holds columns 2 and 3.
static void winograd_input_tiles(const float *xc, int H, int W, int PH, int PW, int th0, int th1, int TW, size_t xs, int c,
                                  int Tpad, int tbase, float *V) {
    for (int th = th0; th < th1; th++) {
        for (int j0 = 0; j0 < TW; j0 += 8) {
            const int start = 2 * j0 - PW;
            const m16 m0 = row_mask(start, W), m1 = row_mask(start + 2, W);
            const m8 keep = TW - j0 >= 8 ? 0xFF : (m8)((1u << (TW - j0)) - 1u);
            v8 e[4][4];
            for (int r = 0; r < 4; r++) {
                const int ih = 2 * th + r - PH;
                if (ih < 0 || ih >= H) {
                    for (int k = 0; k < 4; k++) e[r][k] = _mm256_setzero_ps();
                    continue;
                }
                const float *row = xc + (size_t)ih * W + start;
                const v16 z0 = v16_maskz_load(m0, row), z1 = v16_maskz_load(m1, row + 2);
                const v8 a = v16_even(z0), b = v16_odd(z0), cc = v16_even(z1), d = v16_odd(z1);
                e[r][0] = _mm256_sub_ps(a, cc);
                e[r][1] = _mm256_add_ps(b, cc);
                e[r][2] = _mm256_sub_ps(cc, b);
                e[r][3] = _mm256_sub_ps(b, d);
            }
            const size_t t = (size_t)th * TW + j0 - tbase;
            for (int k = 0; k < 4; k++) {
                v8_mask_store(V + (0 * 4 + k) * xs + (size_t)c * Tpad + t, keep, _mm256_sub_ps(e[0][k], e[2][k]));
                v8_mask_store(V + (1 * 4 + k) * xs + (size_t)c * Tpad + t, keep, _mm256_add_ps(e[1][k], e[2][k]));
                v8_mask_store(V + (2 * 4 + k) * xs + (size_t)c * Tpad + t, keep, _mm256_sub_ps(e[2][k], e[1][k]));
                v8_mask_store(V + (3 * 4 + k) * xs + (size_t)c * Tpad + t, keep, _mm256_sub_ps(e[1][k], e[3][k]));
            }
        }
    }
}

// Mx[ξ][m][t] = Σ_c U[ξ][c][m] V[ξ][c][t] for output-channel blocks [mb0, mb1) and tiles
// [0, T): 8 output channels × 32 tiles in registers, then 16 (the last chunk masked).
static void winograd_multiply_tiles(const float *packed, const float *V, size_t vs, int C, int M, int mb0, int mb1, int Tpad, int T,
                                    float *Mx, size_t ms) {
#if KILN_LEVEL == KILN_LEVEL_AVX2
    // The packed GEMM's product (4 × 24 tiles at AVX2) per ξ: U packed like its weights, V's
    // rows Tpad apart, no epilogue.
    const kiln_act none = {KILN_ACT_NONE, 0, 0, 0};
    for (int xi = 0; xi < 16; xi++) {
        conv_gemm_ld(packed + (size_t)xi * (M / 8) * C * 8, V + xi * vs, C, T, (size_t)Tpad, mb0, mb1, NULL, NULL, (size_t)Tpad, none,
                     Mx + xi * ms, NULL);
    }
#else
    for (int xi = 0; xi < 16; xi++) {
        for (int mb = mb0; mb < mb1; mb++) {
            const float *u = packed + ((size_t)xi * (M / 8) + mb) * C * 8;
            const float *vb = V + xi * vs;
            float *mx = Mx + xi * ms + (size_t)mb * 8 * Tpad;
            int t = 0;
            for (; t + 32 <= T; t += 32) {
                v16 a0[8], a1[8];
                for (int i = 0; i < 8; i++) { a0[i] = v16_zero(); a1[i] = v16_zero(); }
                for (int c = 0; c < C; c++) {
                    const v16 x0 = v16_load(vb + (size_t)c * Tpad + t), x1 = v16_load(vb + (size_t)c * Tpad + t + 16);
                    const float *uc = u + (size_t)c * 8;
                    for (int i = 0; i < 8; i++) {
                        const v16 b = v16_set1(uc[i]);
                        a0[i] = v16_fmadd(x0, b, a0[i]);
                        a1[i] = v16_fmadd(x1, b, a1[i]);
                    }
                }
                for (int i = 0; i < 8; i++) {
                    v16_store(mx + (size_t)i * Tpad + t, a0[i]);
                    v16_store(mx + (size_t)i * Tpad + t + 16, a1[i]);
                }
            }
            for (; t < T; t += 16) {
                const m16 mask = lanes(T - t);
                v16 a0[8];
                for (int i = 0; i < 8; i++) a0[i] = v16_zero();
                for (int c = 0; c < C; c++) {
                    const v16 x0 = v16_maskz_load(mask, vb + (size_t)c * Tpad + t);
                    const float *uc = u + (size_t)c * 8;
                    for (int i = 0; i < 8; i++) a0[i] = v16_fmadd(x0, v16_set1(uc[i]), a0[i]);
                }
                for (int i = 0; i < 8; i++) v16_mask_store(mx + (size_t)i * Tpad + t, mask, a0[i]);
            }
        }
    }
#endif
}

static void winograd_output_tiles(const float *Mx, size_t xs, int m, int Tpad, int th0, int th1, int tbase, int TW, int OH, int OW,
                            float b, const float *rm, int act, float alpha, float lo, float hi, float *ym) {
    const float *base = Mx + (size_t)m * Tpad - tbase;  // ξ planes xs floats apart
    // Eight tiles at once; the two outputs of a tile row interleave into 16 columns. Lanes of
    // tiles past the row's end fall past OW and are not stored.
    const v16 bv = v16_set1(b);
    for (int th = th0; th < th1; th++) {
        for (int j0 = 0; j0 < TW; j0 += 8) {
            const float *p = base + (size_t)th * TW + j0;
            v8 s0[4], s1[4];
            for (int k = 0; k < 4; k++) {
                const v8 p0 = _mm256_loadu_ps(p + k * xs), p1 = _mm256_loadu_ps(p + (4 + k) * xs);
                const v8 p2 = _mm256_loadu_ps(p + (8 + k) * xs), p3 = _mm256_loadu_ps(p + (12 + k) * xs);
                s0[k] = _mm256_add_ps(_mm256_add_ps(p0, p1), p2);
                s1[k] = _mm256_sub_ps(_mm256_sub_ps(p1, p2), p3);
            }
            v8 o[4];
            o[0] = _mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), s0[2]);
            o[1] = _mm256_sub_ps(_mm256_sub_ps(s0[1], s0[2]), s0[3]);
            o[2] = _mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), s1[2]);
            o[3] = _mm256_sub_ps(_mm256_sub_ps(s1[1], s1[2]), s1[3]);
            const int col = 2 * j0;
            const int valid = OW - col < 16 ? OW - col : 16;
            const m16 mask = (m16)((1u << valid) - 1u);
            for (int i = 0; i < 2; i++) {
                const int oh = 2 * th + i;
                if (oh >= OH) break;
                v16 v = v16_interleave(o[2 * i], o[2 * i + 1]);
                v = v16_add(v, bv);
                const size_t k = (size_t)oh * OW + col;
                if (rm) v = v16_add(v, v16_maskz_load(mask, rm + k));
                v = activate16(v, valid, act, alpha, lo, hi);
                v16_mask_store(ym + k, mask, v);
            }
        }
    }
}
#else
// The portable path: the padded plane of one channel, columns then rows transformed per
// tile row into V [16][C][T]; Mx [16][M][T] = U·V; Y = Aᵀ m A per output channel.
static void winograd_input(const float *xp, int Wp, int th0, int th1, int TW, int C, int c, int T, float *E, float *V) {
    for (int r = 2 * th0; r < 2 * th1 + 2; r++) {
        const float *row = xp + (size_t)r * Wp;
        float *e0 = E + ((size_t)r * 4 + 0) * TW, *e1 = e0 + TW, *e2 = e1 + TW, *e3 = e2 + TW;
        for (int t = 0; t < TW; t++) {
            const float a = row[2 * t], b = row[2 * t + 1], cc = row[2 * t + 2], d = row[2 * t + 3];
            e0[t] = a - cc;
            e1[t] = b + cc;
            e2[t] = cc - b;
            e3[t] = b - d;
        }
    }
    for (int th = th0; th < th1; th++) {
        for (int k = 0; k < 4; k++) {
            const float *r0 = E + ((size_t)(2 * th + 0) * 4 + k) * TW;
            const float *r1 = E + ((size_t)(2 * th + 1) * 4 + k) * TW;
            const float *r2 = E + ((size_t)(2 * th + 2) * 4 + k) * TW;
            const float *r3 = E + ((size_t)(2 * th + 3) * 4 + k) * TW;
            const size_t t = (size_t)(th - th0) * TW;
            float *v0 = V + ((size_t)(0 * 4 + k) * C + c) * T + t;
            float *v1 = V + ((size_t)(1 * 4 + k) * C + c) * T + t;
            float *v2 = V + ((size_t)(2 * 4 + k) * C + c) * T + t;
            float *v3 = V + ((size_t)(3 * 4 + k) * C + c) * T + t;
            for (int j = 0; j < TW; j++) {
                v0[j] = r0[j] - r2[j];
                v1[j] = r1[j] + r2[j];
                v2[j] = r2[j] - r1[j];
                v3[j] = r1[j] - r3[j];
            }
        }
    }
}

static void winograd_multiply(const float *U, const float *V, int C, int M, int m_lo, int m_hi, int T, float *Mx) {
    for (int xi = 0; xi < 16; xi++) {
        for (int m = m_lo; m < m_hi; m++) {
            float *mx = Mx + ((size_t)xi * M + m) * T;
            for (int t = 0; t < T; t++) mx[t] = 0.0f;
            for (int c = 0; c < C; c++) {
                const float u = U[((size_t)xi * C + c) * M + m];
                const float *v = V + ((size_t)xi * C + c) * T;
                for (int t = 0; t < T; t++) mx[t] += u * v[t];
            }
        }
    }
}

static void winograd_output(const float *Mx, int M, int m, int T, int th0, int th1, int TW, int OH, int OW,
                            float b, const float *rm, int act, float alpha, float lo, float hi, float *ym) {
    const float *base = Mx + (size_t)m * T;
    const size_t xs = (size_t)M * T;  // stride between ξ planes
    float o[4][TW > 0 ? TW : 1];
    for (int th = th0; th < th1; th++) {
        const float *p[16];
        for (int xi = 0; xi < 16; xi++) p[xi] = base + xi * xs + (th - th0) * TW;
        for (int t = 0; t < TW; t++) {
            float s0[4], s1[4];
            for (int k = 0; k < 4; k++) {
                s0[k] = p[k][t] + p[4 + k][t] + p[8 + k][t];
                s1[k] = p[4 + k][t] - p[8 + k][t] - p[12 + k][t];
            }
            o[0][t] = s0[0] + s0[1] + s0[2];
            o[1][t] = s0[1] - s0[2] - s0[3];
            o[2][t] = s1[0] + s1[1] + s1[2];
            o[3][t] = s1[1] - s1[2] - s1[3];
        }
        for (int i = 0; i < 2; i++) {
            const int oh = 2 * th + i;
            if (oh >= OH) break;
            float *row = ym + (size_t)oh * OW;
            const float *ev = o[2 * i], *od = o[2 * i + 1];
            const int full = OW / 2;
            for (int t = 0; t < full; t++) {
                row[2 * t] = ev[t] + b;
                row[2 * t + 1] = od[t] + b;
            }
            if (OW & 1) row[OW - 1] = ev[full] + b;
            if (rm) {
                const float *rr = rm + (size_t)oh * OW;
                for (int j = 0; j < OW; j++) row[j] += rr[j];
            }
            if (act != KILN_ACT_NONE) {
                for (int j = 0; j < OW; j++) row[j] = apply_act(row[j], act, alpha, lo, hi);
            }
        }
    }
}
#endif

#if KILN_SIMD
// Tile rows [th_begin, th_end) and output channels [m_lo, m_hi) in the tile layout.
static void winograd_block_tiles(const kiln_conv_geometry *s, int TW, const float *x, const float *packed, int th_begin, int th_end,
                                 int mb_begin, int mb_end, const float *bias, const float *residual, int act, float alpha,
                                 float lo, float hi, float *scratch, float *y) {
    const int R = winograd_block_rows(TW), Tpad = winograd_tpad(TW);
    const size_t vs = (size_t)s->C * Tpad + 16, ms = (size_t)s->M * Tpad + 16, plane = (size_t)s->OH * s->OW;
    float *V = scratch, *Mx = V + 16 * vs + WINOGRAD_MX_SKEW;
    for (int b0 = th_begin; b0 < th_end; b0 += R) {
        const int b1 = b0 + R < th_end ? b0 + R : th_end, tbase = b0 * TW;
        for (int c = 0; c < s->C; c++)
            winograd_input_tiles(x + (size_t)c * s->H * s->W, s->H, s->W, s->PH, s->PW, b0, b1, TW, vs, c, Tpad, tbase, V);
        winograd_multiply_tiles(packed, V, vs, s->C, s->M, mb_begin, mb_end, Tpad, (b1 - b0) * TW, Mx, ms);
        for (int m = mb_begin * 8; m < mb_end * 8; m++) {
            winograd_output_tiles(Mx, ms, m, Tpad, b0, b1, tbase, TW, s->OH, s->OW, bias ? bias[m] : 0.0f,
                                  residual ? residual + (size_t)m * plane : NULL, act, alpha, lo, hi, y + (size_t)m * plane);
        }
    }
}

// The same channels-last.
static void winograd_block_cl(const kiln_conv_geometry *s, int TW, const float *x, const float *packed, int th_begin, int th_end,
                              int m_lo, int m_hi, const float *bias, const float *residual, int act, float alpha,
                              float lo, float hi, float *scratch, float *y) {
    const int R = winograd_block_rows(TW), C = s->C, ML = m_hi - m_lo, Tv = (R * TW + 15) / 16 * 16;
    const size_t vs = (size_t)Tv * C + 16, ms = (size_t)Tv * ML + 16;
    float *xt = scratch, *Vt = xt + (size_t)(2 * R + 2) * (2 * TW + 2) * C, *Mt = Vt + 16 * vs;
    float *yt = Mt + 16 * ((size_t)Tv * s->M + 16);
    for (int b0 = th_begin; b0 < th_end; b0 += R) {
        const int b1 = b0 + R < th_end ? b0 + R : th_end, T = (b1 - b0) * TW, T8 = (T + 7) / 8 * 8;
        winograd_rows_cl(s, TW, x, b0, b1, xt);
        winograd_input_cl(xt, C, TW, b1 - b0, Vt, vs, 0);
        // The multiply runs whole groups of 8 tiles: the rows past the block are zero.
        for (int xi = 0; xi < 16 && T8 > T; xi++) memset(Vt + xi * vs + (size_t)T * C, 0, sizeof(float) * (T8 - T) * C);
        winograd_multiply_cl(Vt, vs, packed, C, s->M, m_lo, m_hi, T8, Mt, ms);
        winograd_output_cl(s, TW, Mt, ms, ML, m_lo, b0, b1 - b0, bias, residual, act, alpha, lo, hi, yt, y);
    }
}
#endif

static void winograd_block(kiln_conv_geometry g, const float *x, const float *packed, int th_begin, int th_end,
                           int mb_begin, int mb_end, const float *bias, const float *residual, kiln_act a, float *scratch,
                           float *y) {
    const kiln_conv_geometry *s = &g;
    KILN_ACT_LOCALS(a);
    int TH, TW, Hp, Wp;
    winograd_dims(s->H, s->W, s->PH, s->PW, s->PHE, s->PWE, s->OH, s->OW, &TH, &TW, &Hp, &Wp);
    if (th_end > TH) th_end = TH;
#if KILN_SIMD
    (void)Hp; (void)Wp;
    if (winograd_channels_last(TW, s->C, s->M))
        winograd_block_cl(s, TW, x, packed, th_begin, th_end, mb_begin * 8, mb_end * 8, bias, residual, act, alpha, lo, hi, scratch, y);
    else
        winograd_block_tiles(s, TW, x, packed, th_begin, th_end, mb_begin, mb_end, bias, residual, act, alpha, lo, hi, scratch, y);
#else
    const int R = winograd_block_rows(TW), T = R * TW;
    float *xp = scratch;                              // [Hp][Wp]
    float *E = xp + (size_t)Hp * Wp;                  // [Hp][4][TW]
    float *V = E + (size_t)4 * Hp * TW;               // [16][C][T]
    float *Mx = V + (size_t)16 * s->C * T;            // [16][M][T]
    const size_t plane = (size_t)s->OH * s->OW;
    // The zero border of the padded plane is cleared once; the interior is copied per channel
    // and block (the portable path favours simplicity).
    memset(xp, 0, sizeof(float) * Hp * Wp);
    for (int b0 = th_begin; b0 < th_end; b0 += R) {
        const int b1 = b0 + R < th_end ? b0 + R : th_end;
        for (int c = 0; c < s->C; c++) {
            const float *xc = x + (size_t)c * s->H * s->W;
            for (int h = 0; h < s->H; h++)
                memcpy(xp + (size_t)(h + s->PH) * Wp + s->PW, xc + (size_t)h * s->W, sizeof(float) * s->W);
            winograd_input(xp, Wp, b0, b1, TW, s->C, c, T, E, V);
        }
        winograd_multiply(packed, V, s->C, s->M, mb_begin * 8, mb_end * 8, T, Mx);
        for (int m = mb_begin * 8; m < mb_end * 8; m++) {
            winograd_output(Mx, s->M, m, T, b0, b1, TW, s->OH, s->OW, bias ? bias[m] : 0.0f,
                            residual ? residual + (size_t)m * plane : NULL, act, alpha, lo, hi, y + (size_t)m * plane);
        }
    }
#endif
}
