static int winograd_wgrad_scratch(kiln_conv_geometry g) {
    const kiln_conv_geometry *s = &g;
    int TH, TW, Hp, Wp;
    winograd_dims(s->H, s->W, s->PH, s->PW, s->PHE, s->PWE, s->OH, s->OW, &TH, &TW, &Hp, &Wp);
    // xt, Vt, Dt (as Mt) and dy's rows (as the forward's output rows).
    return (int)winograd_vector_scratch(s->C, s->M, TW);
}

#if KILN_SIMD
// Dt[ξ][t][m] = (A dy Aᵀ)[ξ] for the tiles of tile rows [th0, th1) of dy [M][OH][OW], tile
// t = toff + (th − th0)·TW + tw: dy's rows channels-last into dyt [2·rows][2·TW][M] (zero
// past OH and OW) first.
static void wgrad_dy_cl(const kiln_conv_geometry *s, int TW, const float *dy, int th0, int th1, float *dyt, float *Dt, size_t ds,
                        int toff) {
    const int M = s->M, Wd = 2 * TW;
    const size_t outPlane = (size_t)s->OH * s->OW;
    for (int a = 0; a < 2 * (th1 - th0); a++) {
        float *dst = dyt + (size_t)a * Wd * M;
        const int oh = 2 * th0 + a;
        if (oh >= s->OH) { memset(dst, 0, sizeof(float) * Wd * M); continue; }
        rows_to_channels_last(dy + (size_t)oh * s->OW, outPlane, M, s->OW, dst);
        memset(dst + (size_t)s->OW * M, 0, sizeof(float) * (Wd - s->OW) * M);
    }
    for (int th = th0; th < th1; th++) {
        const float *dr = dyt + (size_t)2 * (th - th0) * Wd * M;
        for (int tw = 0; tw < TW; tw++) {
            const size_t t = (size_t)toff + (th - th0) * TW + tw;
            for (int m0 = 0; m0 < M; m0 += 16) {
                const m16 k = lanes(M - m0);
                v16 q[2][4];
                for (int a = 0; a < 2; a++) {  // each row times Aᵀ's columns
                    const float *p = dr + ((size_t)a * Wd + 2 * tw) * M + m0;
                    const v16 d0 = v16_maskz_load(k, p), d1 = v16_maskz_load(k, p + M);
                    q[a][0] = d0;
                    q[a][1] = v16_add(d0, d1);
                    q[a][2] = v16_sub(d0, d1);
                    q[a][3] = v16_sub(v16_zero(), d1);
                }
                float *d = Dt + t * M + m0;
                for (int j = 0; j < 4; j++) {  // then A on the left
                    v16_mask_store(d + (0 * 4 + j) * ds, k, q[0][j]);
                    v16_mask_store(d + (1 * 4 + j) * ds, k, v16_add(q[0][j], q[1][j]));
                    v16_mask_store(d + (2 * 4 + j) * ds, k, v16_sub(q[0][j], q[1][j]));
                    v16_mask_store(d + (3 * 4 + j) * ds, k, v16_sub(v16_zero(), q[1][j]));
                }
            }
        }
    }
}

// dU[ξ][c][m] += Σ_t Vt[ξ][t][c] · Dt[ξ][t][m] over tiles [0, T): 8 channels × 32 (or 16)
// output channels in registers, Dt the vector operand, Vt broadcast.
static void wgrad_multiply(const float *Vt, size_t vs, const float *Dt, size_t ds, int C, int M, int T, float *dU) {
    for (int xi = 0; xi < 16; xi++) {
        const float *vb = Vt + xi * vs, *db = Dt + xi * ds;
        float *u = dU + (size_t)xi * C * M;
        for (int c0 = 0; c0 < C; c0 += 8) {
            for (int m0 = 0; m0 < M; m0 += 32) {
                const int rem = M - m0;
                const m16 k0 = lanes(rem);
                if (rem > 16) {
                    const m16 k1 = lanes(rem - 16);
                    v16 a0[8], a1[8];
                    for (int j = 0; j < 8; j++) {
                        a0[j] = v16_maskz_load(k0, u + (size_t)(c0 + j) * M + m0);
                        a1[j] = v16_maskz_load(k1, u + (size_t)(c0 + j) * M + m0 + 16);
                    }
                    for (int t = 0; t < T; t++) {
                        const v16 d0 = v16_maskz_load(k0, db + (size_t)t * M + m0);
                        const v16 d1 = v16_maskz_load(k1, db + (size_t)t * M + m0 + 16);
                        const float *v = vb + (size_t)t * C + c0;
                        for (int j = 0; j < 8; j++) {
                            const v16 b = v16_set1(v[j]);
                            a0[j] = v16_fmadd(d0, b, a0[j]);
                            a1[j] = v16_fmadd(d1, b, a1[j]);
                        }
                    }
                    for (int j = 0; j < 8; j++) {
                        v16_mask_store(u + (size_t)(c0 + j) * M + m0, k0, a0[j]);
                        v16_mask_store(u + (size_t)(c0 + j) * M + m0 + 16, k1, a1[j]);
                    }
                } else {
                    v16 a0[8];
                    for (int j = 0; j < 8; j++) a0[j] = v16_maskz_load(k0, u + (size_t)(c0 + j) * M + m0);
                    for (int t = 0; t < T; t++) {
                        const v16 d0 = v16_maskz_load(k0, db + (size_t)t * M + m0);
                        const float *v = vb + (size_t)t * C + c0;
                        for (int j = 0; j < 8; j++) a0[j] = v16_fmadd(d0, v16_set1(v[j]), a0[j]);
                    }
                    for (int j = 0; j < 8; j++) v16_mask_store(u + (size_t)(c0 + j) * M + m0, k0, a0[j]);
                }
            }
        }
    }
}
#endif

static void winograd_wgrad_accumulate(kiln_conv_geometry g, const float *x, const float *dy, int G, float *dU, float *scratch) {
    const kiln_conv_geometry *s = &g;
    int TH, TW, Hp, Wp;
    winograd_dims(s->H, s->W, s->PH, s->PW, s->PHE, s->PWE, s->OH, s->OW, &TH, &TW, &Hp, &Wp);
    const int C = s->C, M = s->M;
    const size_t inImage = (size_t)C * s->H * s->W, outPlane = (size_t)s->OH * s->OW;
    const int rowsTotal = G * TH;
#if KILN_SIMD
    // Blocks of R whole tile rows, possibly from several images.
    const int R = winograd_block_rows(TW);
    // Planes of Vt and Dt one cache line longer than their data, so that the 16 ξ planes do
    // not fall on the same cache sets when the block's size is a multiple of 1,024 floats.
    const int Tv = (R * TW + 15) / 16 * 16;
    const size_t vs = (size_t)Tv * C + 16, ds = (size_t)Tv * M + 16;
    float *xt = scratch, *Vt = xt + (size_t)(2 * R + 2) * (2 * TW + 2) * C, *Dt = Vt + 16 * vs, *dyt = Dt + 16 * ds;
    for (int r0 = 0; r0 < rowsTotal; r0 += R) {
        const int r1 = r0 + R < rowsTotal ? r0 + R : rowsTotal;
        // The block's rows image by image.
        for (int r = r0; r < r1;) {
            const int g = r / TH, th0 = r % TH, th1 = (r1 - g * TH) < TH ? r1 - g * TH : TH;
            winograd_rows_cl(s, TW, x + (size_t)g * inImage, th0, th1, xt);
            winograd_input_cl(xt, C, TW, th1 - th0, Vt, vs, (r - r0) * TW);
            wgrad_dy_cl(s, TW, dy + (size_t)g * M * outPlane, th0, th1, dyt, Dt, ds, (r - r0) * TW);
            r += th1 - th0;
        }
        wgrad_multiply(Vt, vs, Dt, ds, C, M, (r1 - r0) * TW, dU);
    }
#else
    (void)scratch;
    // Portable path: one tile at a time, scalar.
    for (int r = 0; r < rowsTotal; r++) {
        const int g = r / TH, th = r % TH;
        const float *xg = x + (size_t)g * inImage, *dyg = dy + (size_t)g * M * outPlane;
        for (int tw = 0; tw < TW; tw++) {
            for (int c = 0; c < C; c++) {
                float d[4][4], e[4][4], v[16];
                for (int i = 0; i < 4; i++) {
                    for (int j = 0; j < 4; j++) {
                        const int ih = 2 * th + i - s->PH, iw = 2 * tw + j - s->PW;
                        d[i][j] = ih >= 0 && ih < s->H && iw >= 0 && iw < s->W ? xg[((size_t)c * s->H + ih) * s->W + iw] : 0.0f;
                    }
                }
                for (int i = 0; i < 4; i++) {  // Bᵀ d B as in the forward: columns, then rows
                    e[i][0] = d[i][0] - d[i][2];
                    e[i][1] = d[i][1] + d[i][2];
                    e[i][2] = d[i][2] - d[i][1];
                    e[i][3] = d[i][1] - d[i][3];
                }
                for (int k = 0; k < 4; k++) {
                    v[0 * 4 + k] = e[0][k] - e[2][k];
                    v[1 * 4 + k] = e[1][k] + e[2][k];
                    v[2 * 4 + k] = e[2][k] - e[1][k];
                    v[3 * 4 + k] = e[1][k] - e[3][k];
                }
                for (int m = 0; m < M; m++) {
                    float q[2][2], rr[2][4];
                    for (int a = 0; a < 2; a++) {
                        for (int b = 0; b < 2; b++) {
                            const int oh = 2 * th + a, ow = 2 * tw + b;
                            q[a][b] = oh < s->OH && ow < s->OW ? dyg[(size_t)m * outPlane + (size_t)oh * s->OW + ow] : 0.0f;
                        }
                        rr[a][0] = q[a][0];
                        rr[a][1] = q[a][0] + q[a][1];
                        rr[a][2] = q[a][0] - q[a][1];
                        rr[a][3] = -q[a][1];
                    }
                    for (int k = 0; k < 4; k++) {
                        dU[((size_t)(0 * 4 + k) * C + c) * M + m] += v[0 * 4 + k] * rr[0][k];
                        dU[((size_t)(1 * 4 + k) * C + c) * M + m] += v[1 * 4 + k] * (rr[0][k] + rr[1][k]);
                        dU[((size_t)(2 * 4 + k) * C + c) * M + m] += v[2 * 4 + k] * (rr[0][k] - rr[1][k]);
                        dU[((size_t)(3 * 4 + k) * C + c) * M + m] += v[3 * 4 + k] * (-rr[1][k]);
                    }
                }
            }
        }
    }
#endif
}

static void winograd_wgrad_finish(const float *dU, int M, int C, float *dw) {
    for (int m = 0; m < M; m++) {
        for (int c = 0; c < C; c++) {
            float u[4][4], t[3][4];
            for (int xi = 0; xi < 16; xi++) u[xi / 4][xi % 4] = dU[((size_t)xi * C + c) * M + m];
            for (int k = 0; k < 4; k++) {  // Gᵀ u
                t[0][k] = u[0][k] + 0.5f * (u[1][k] + u[2][k]);
                t[1][k] = 0.5f * (u[1][k] - u[2][k]);
                t[2][k] = 0.5f * (u[1][k] + u[2][k]) + u[3][k];
            }
            float *g = dw + ((size_t)m * C + c) * 9;
            for (int a = 0; a < 3; a++) {  // (Gᵀ u) G
                g[a * 3 + 0] += t[a][0] + 0.5f * (t[a][1] + t[a][2]);
                g[a * 3 + 1] += 0.5f * (t[a][1] - t[a][2]);
                g[a * 3 + 2] += 0.5f * (t[a][1] + t[a][2]) + t[a][3];
            }
        }
    }
}
