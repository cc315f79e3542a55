#ifndef KILN_WINOGRAD_COMMON_H
#define KILN_WINOGRAD_COMMON_H

// Winograd F(2×2, 3×3) (Lavin & Gray, 2016). A 2×2 output tile is Aᵀ [Σ_c U[c] ⊙ V[c]] A with
// U = G g Gᵀ (the 4×4 transformed kernel) and V = Bᵀ d B (the 4×4 input patch transformed):
// 16 products per tile instead of 36. ξ = 4·i + k indexes the 4×4 transformed entries.
//   Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]], G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]],
//   Aᵀ = [[1,1,1,0],[0,1,−1,−1]].
// Work goes a block of tile rows (~KILN_WINOGRAD_TILES tiles) at a time, so the transformed
// data stays in cache between the phases. The vector path has two layouts, chosen per
// convolution (winograd_channels_last) and with the weights packed to match:
// - tiles (wide rows): eight tiles of a tile row per vector, NCHW throughout — V [16][C][T],
//   Mx [16][M][T], the output transform writing two interleaved rows;
// - channels-last (short rows, whose 8-tile vectors the tile layout fills only partly): the
//   block's input rows turned channels-last, transformed 16 channels per vector into
//   Vt [16][T][C], multiplied by U [16][C][M] into Mt [16][T][M], transformed back 16 output
//   channels per vector and turned back to NCHW rows as the epilogue is applied. Both
//   transposes touch the untransformed data (a quarter of the transformed).
// The weight gradient always uses the channels-last form. The vector paths run at the AVX2 and AVX-512
// levels (simd.h); the portable path is scalar.

// The forward's vector path: channels-last where tile rows are short (the tile layout fills
// its 8-tile vectors only partly) and the transformed weights stay in L2; tiles otherwise.
// The packing follows the same rule, so pack and run must be at the same level.
#if KILN_SIMD
static int winograd_channels_last(int TW, int C, int M) { return TW < 8 && (size_t)16 * C * M <= ((size_t)1 << 18); }
#endif

static void winograd_dims(int H, int W, int PH, int PW, int PHE, int PWE, int OH, int OW,
                          int *TH, int *TW, int *Hp, int *Wp) {
    *TH = (OH + 1) / 2;
    *TW = (OW + 1) / 2;
    // The padded input must cover every tile's 4×4 patch: 2·T + 2 rows and columns.
    int hp = H + PH + PHE, wp = W + PW + PWE;
    if (hp < 2 * *TH + 2) hp = 2 * *TH + 2;
    if (wp < 2 * *TW + 2) wp = 2 * *TW + 2;
    *Hp = hp;
    *Wp = wp;
}

// Tile rows per block: a block's transformed data should stay in cache between the phases;
// about KILN_WINOGRAD_TILES tiles per block (one row when rows are wider).
#ifndef KILN_WINOGRAD_TILES
#define KILN_WINOGRAD_TILES 64
#endif
static int winograd_block_rows(int TW) { return TW >= KILN_WINOGRAD_TILES ? 1 : KILN_WINOGRAD_TILES / TW; }

// The tile layout: V [16][C][Tpad] and Mx [16][M][Tpad] per block, Tpad with slack for the
// 8-tile loads past a row's last tile; each plane one cache line longer than its data and Mx
// a further 17 lines on (WINOGRAD_MX_SKEW floats), so that neither the 16 planes nor V and Mx
// fall on the same cache sets whatever the sizes.
#define WINOGRAD_MX_SKEW 272
static int winograd_tpad(int TW) { return (winograd_block_rows(TW) * TW + 15) / 16 * 16 + 16; }
static size_t winograd_tile_scratch(int C, int M, int TW) {
    const size_t Tpad = winograd_tpad(TW);
    return 16 * (C * Tpad + 16) + WINOGRAD_MX_SKEW + 16 * (M * Tpad + 16) + 64;
}

// Floats of the vector path's per-block buffers (forward: output rows; weight gradient: dy
// rows), and the portable path's.
static size_t winograd_vector_scratch(int C, int M, int TW) {
    const size_t R = winograd_block_rows(TW), T = R * TW, Tv = (T + 15) / 16 * 16;
    // xt [2R + 2][2TW + 2][C], Vt [16][Tv·C + 16], Mt [16][Tv·M + 16], rows [2R][2TW][M]
    return (2 * R + 2) * (2 * TW + 2) * C + 16 * (Tv * C + 16) + 16 * (Tv * M + 16) + 2 * R * 2 * TW * M + 64;
}

static size_t winograd_portable_scratch(int C, int M, int TW, int Hp, int Wp) {
    const size_t T = (size_t)winograd_block_rows(TW) * TW;
    // padded plane [Hp][Wp], column transforms [Hp][4][TW], V [16][C][T], Mx [16][M][T]
    return (size_t)Hp * Wp + 4 * (size_t)Hp * TW + 16 * (size_t)C * T + 16 * (size_t)M * T + 64;
}


#if KILN_SIMD
// dst[i·K + k] = src[k·ks + i] for channels k < K and positions i < n (one row of K planes
// to channels-last).
static void rows_to_channels_last(const float *src, size_t ks, int K, int n, float *dst) {
    for (int i0 = 0; i0 < n; i0 += 16) {
        const m16 in = lanes(n - i0);
        const int rows = n - i0 < 16 ? n - i0 : 16;
        for (int k0 = 0; k0 < K; k0 += 16) {
            const int kk = K - k0 < 16 ? K - k0 : 16;
            v16 r[16];
            for (int k = 0; k < 16; k++) r[k] = k < kk ? v16_maskz_load(in, src + (k0 + k) * ks + i0) : v16_zero();
            v16_transpose(r);
            for (int i = 0; i < rows; i++) v16_mask_store(dst + (size_t)(i0 + i) * K + k0, lanes(kk), r[i]);
        }
    }
}

// The input rows of tile rows [th0, th1) of image x [C][H][W], channels-last and zero-padded:
// xt [2·(th1 − th0) + 2][2·TW + 2][C], row r = input row 2·th0 − PH + r, column j = input
// column j − PW.
static void winograd_rows_cl(const kiln_conv_geometry *s, int TW, const float *x, int th0, int th1, float *xt) {
    const int C = s->C, Wt = 2 * TW + 2;
    const size_t inPlane = (size_t)s->H * s->W;
    const int r0 = 2 * th0 - s->PH, rows = 2 * (th1 - th0) + 2;
    for (int r = 0; r < rows; r++) {
        float *dst = xt + (size_t)r * Wt * C;
        const int ih = r0 + r;
        if (ih < 0 || ih >= s->H) { memset(dst, 0, sizeof(float) * Wt * C); continue; }
        memset(dst, 0, sizeof(float) * s->PW * C);
        rows_to_channels_last(x + (size_t)ih * s->W, inPlane, C, s->W, dst + (size_t)s->PW * C);
        memset(dst + (size_t)(s->PW + s->W) * C, 0, sizeof(float) * (Wt - s->PW - s->W) * C);
    }
}

// Vt[ξ][t][c] = (Bᵀ d B)[ξ] for the tiles of `rows` tile rows of xt, tile t = toff + row·TW + tw.
static void winograd_input_cl(const float *xt, int C, int TW, int rows, float *Vt, size_t vs, int toff) {
    const int Wt = 2 * TW + 2;
    for (int th = 0; th < rows; th++) {
        const float *xr = xt + (size_t)2 * th * Wt * C;
        for (int tw = 0; tw < TW; tw++) {
            const size_t t = (size_t)toff + th * TW + tw;
            for (int c0 = 0; c0 < C; c0 += 16) {
                const m16 k = lanes(C - c0);
                v16 e[4][4];
                for (int r = 0; r < 4; r++) {  // d Bᵀ... each row's four columns
                    const float *p = xr + ((size_t)r * Wt + 2 * tw) * C + c0;
                    const v16 p0 = v16_maskz_load(k, p), p1 = v16_maskz_load(k, p + C);
                    const v16 p2 = v16_maskz_load(k, p + 2 * C), p3 = v16_maskz_load(k, p + 3 * C);
                    e[r][0] = v16_sub(p0, p2);
                    e[r][1] = v16_add(p1, p2);
                    e[r][2] = v16_sub(p2, p1);
                    e[r][3] = v16_sub(p1, p3);
                }
                float *v = Vt + t * C + c0;
                for (int j = 0; j < 4; j++) {  // then the rows
                    v16_mask_store(v + (0 * 4 + j) * vs, k, v16_sub(e[0][j], e[2][j]));
                    v16_mask_store(v + (1 * 4 + j) * vs, k, v16_add(e[1][j], e[2][j]));
                    v16_mask_store(v + (2 * 4 + j) * vs, k, v16_sub(e[2][j], e[1][j]));
                    v16_mask_store(v + (3 * 4 + j) * vs, k, v16_sub(e[1][j], e[3][j]));
                }
            }
        }
    }
}
#endif

#endif
