#include "kiln_kernels.h"

#include <math.h>
#include <string.h>

void kiln_im2col(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                 int DH, int DW, int OH, int OW, float *col) {
    const int P = OH * OW;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (size_t)c * H * W;
        for (int kh = 0; kh < KH; kh++) {
            for (int kw = 0; kw < KW; kw++) {
                float *row = col + ((size_t)(c * KH + kh) * KW + kw) * P;
                for (int oh = 0; oh < OH; oh++) {
                    const int ih = oh * SH - PH + kh * DH;
                    float *out = row + (size_t)oh * OW;
                    if (ih < 0 || ih >= H) {
                        memset(out, 0, sizeof(float) * OW);
                        continue;
                    }
                    const float *xr = xc + (size_t)ih * W;
                    const int off = kw * DW - PW;
                    if (SW == 1) {
                        // Valid range of ow: 0 <= ow + off < W.
                        int lo = off < 0 ? -off : 0;
                        int hi = W - off;
                        if (hi > OW) hi = OW;
                        if (lo > OW) lo = OW;
                        for (int ow = 0; ow < lo; ow++) out[ow] = 0.0f;
                        if (hi > lo) memcpy(out + lo, xr + lo + off, sizeof(float) * (hi - lo));
                        for (int ow = hi > lo ? hi : lo; ow < OW; ow++) out[ow] = 0.0f;
                    } else {
                        for (int ow = 0; ow < OW; ow++) {
                            const int iw = ow * SW + off;
                            out[ow] = (iw >= 0 && iw < W) ? xr[iw] : 0.0f;
                        }
                    }
                }
            }
        }
    }
}

static inline float apply_act(float v, int act, float alpha, float lo, float hi) {
    switch (act) {
    case KILN_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case KILN_ACT_LEAKY_RELU: return v >= 0.0f ? v : alpha * v;
    case KILN_ACT_CLIP: return v < lo ? lo : (v > hi ? hi : v);
    case KILN_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case KILN_ACT_HARDSWISH: {
        float t = v / 6.0f + 0.5f;
        t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
        return v * t;
    }
    default: return v;
    }
}

void kiln_epilogue(float *y, int M, int P, const float *bias, const float *residual, int act,
                   float alpha, float lo, float hi) {
    for (int m = 0; m < M; m++) {
        float *row = y + (size_t)m * P;
        const float b = bias ? bias[m] : 0.0f;
        const float *r = residual ? residual + (size_t)m * P : NULL;
        if (act == KILN_ACT_RELU) {
            if (r) {
                for (int p = 0; p < P; p++) { float v = row[p] + b + r[p]; row[p] = v > 0.0f ? v : 0.0f; }
            } else {
                for (int p = 0; p < P; p++) { float v = row[p] + b; row[p] = v > 0.0f ? v : 0.0f; }
            }
        } else if (act == KILN_ACT_NONE) {
            if (r) { for (int p = 0; p < P; p++) row[p] += b + r[p]; }
            else if (b != 0.0f) { for (int p = 0; p < P; p++) row[p] += b; }
        } else {
            for (int p = 0; p < P; p++) row[p] = apply_act(row[p] + b + (r ? r[p] : 0.0f), act, alpha, lo, hi);
        }
    }
}

void kiln_epilogue_rows(float *y, int R, int N, const float *bias, int bias_per_row, const float *residual,
                        int act, float alpha, float lo, float hi) {
    for (int i = 0; i < R; i++) {
        float *row = y + (size_t)i * N;
        const float *r = residual ? residual + (size_t)i * N : NULL;
        for (int j = 0; j < N; j++) {
            float b = bias ? (bias_per_row ? bias[i] : bias[j]) : 0.0f;
            row[j] = apply_act(row[j] + b + (r ? r[j] : 0.0f), act, alpha, lo, hi);
        }
    }
}

void kiln_activation(const float *x, float *y, size_t n, int act, float alpha, float lo, float hi) {
    if (act == KILN_ACT_RELU) {
        for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
        return;
    }
    for (size_t i = 0; i < n; i++) y[i] = apply_act(x[i], act, alpha, lo, hi);
}

void kiln_maxpool2d(const float *x, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int PHE, int PWE,
                    int DH, int DW, int OH, int OW, float *y) {
    (void)PHE; (void)PWE;
    for (int oh = 0; oh < OH; oh++) {
        const int ih0 = oh * SH - PH;
        const int rows_inside = ih0 >= 0 && ih0 + (KH - 1) * DH < H;
        for (int ow = 0; ow < OW; ow++) {
            const int iw0 = ow * SW - PW;
            float best = -INFINITY;
            if (rows_inside && iw0 >= 0 && iw0 + (KW - 1) * DW < W) {
                // The whole window is inside the image: no bounds checks.
                for (int kh = 0; kh < KH; kh++) {
                    const float *r = x + (size_t)(ih0 + kh * DH) * W + iw0;
                    for (int kw = 0; kw < KW; kw++) {
                        const float v = r[kw * DW];
                        best = (v > best || v != v) ? v : best;
                    }
                }
                y[(size_t)oh * OW + ow] = best;
                continue;
            }
            int any = 0;
            for (int kh = 0; kh < KH; kh++) {
                const int ih = ih0 + kh * DH;
                if (ih < 0 || ih >= H) continue;
                for (int kw = 0; kw < KW; kw++) {
                    const int iw = iw0 + kw * DW;
                    if (iw < 0 || iw >= W) continue;
                    const float v = x[(size_t)ih * W + iw];
                    if (!any || v > best || v != v) { best = v; any = 1; }
                }
            }
            y[(size_t)oh * OW + ow] = best;
        }
    }
}

void kiln_avgpool2d(const float *x, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int PHE, int PWE,
                    int DH, int DW, int OH, int OW, int include_pad, float *y) {
    for (int oh = 0; oh < OH; oh++) {
        for (int ow = 0; ow < OW; ow++) {
            float sum = 0.0f;
            int valid = 0, padded = 0;
            for (int kh = 0; kh < KH; kh++) {
                const int ih = oh * SH - PH + kh * DH;
                const int in_padded_h = ih >= -PH && ih < H + PHE;
                for (int kw = 0; kw < KW; kw++) {
                    const int iw = ow * SW - PW + kw * DW;
                    if (in_padded_h && iw >= -PW && iw < W + PWE) padded++;
                    if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                    sum += x[(size_t)ih * W + iw];
                    valid++;
                }
            }
            const int n = include_pad ? padded : valid;
            y[(size_t)oh * OW + ow] = n > 0 ? sum / (float)n : 0.0f;
        }
    }
}

void kiln_global_avgpool(const float *x, int planes, int size, float *y) {
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * size;
        float s = 0.0f;
        for (int i = 0; i < size; i++) s += xp[i];
        y[p] = s / (float)size;
    }
}

void kiln_gather_map(const float *x, const int *map, size_t n, float fill, float *y) {
    for (size_t k = 0; k < n; k++) y[k] = map[k] >= 0 ? x[map[k]] : fill;
}

void kiln_binary(const float *a, const float *b, float *y, size_t n, int op, size_t b_period, size_t inner) {
    if (b_period == 0) {  // same shape
        switch (op) {
        case 0: for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i]; break;
        case 1: for (size_t i = 0; i < n; i++) y[i] = a[i] - b[i]; break;
        case 2: for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i]; break;
        default: for (size_t i = 0; i < n; i++) y[i] = a[i] / b[i]; break;
        }
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const float bv = b[(i / inner) % b_period];
        switch (op) {
        case 0: y[i] = a[i] + bv; break;
        case 1: y[i] = a[i] - bv; break;
        case 2: y[i] = a[i] * bv; break;
        default: y[i] = a[i] / bv; break;
        }
    }
}

void kiln_scale_shift(const float *x, float *y, int C, int P, const float *scale, const float *shift) {
    for (int c = 0; c < C; c++) {
        const float s = scale[c], t = shift[c];
        const float *xc = x + (size_t)c * P;
        float *yc = y + (size_t)c * P;
        for (int p = 0; p < P; p++) yc[p] = xc[p] * s + t;
    }
}

void kiln_softmax_rows(const float *x, float *y, int rows, int n, int log_softmax) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        float mx = -INFINITY;
        for (int i = 0; i < n; i++) if (xr[i] > mx) mx = xr[i];
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += exp((double)xr[i] - mx);
        if (log_softmax) {
            const float l = (float)log(sum);
            for (int i = 0; i < n; i++) yr[i] = xr[i] - mx - l;
        } else {
            for (int i = 0; i < n; i++) yr[i] = (float)(exp((double)xr[i] - mx) / sum);
        }
    }
}

typedef float kiln_v16 __attribute__((vector_size(64)));

static inline kiln_v16 load16(const float *p) {
    kiln_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

int kiln_conv_shift_plane(int H, int W, int KH, int KW, int PH, int PW, int PHE, int PWE) {
    const int Hp = H + PH + PHE, Wp = W + PW + PWE;
    (void)KH;
    return Hp * Wp + 32 + KW + 16;
}

void kiln_conv_shift_pad(const float *x, int C, int H, int W, int PH, int PW, int PHE, int PWE, int plane, float *xp) {
    const int Wp = W + PW + PWE;
    (void)PHE;
    for (int c = 0; c < C; c++) {
        float *dst = xp + (size_t)c * plane;
        memset(dst, 0, sizeof(float) * plane);
        const float *src = x + (size_t)c * H * W;
        for (int h = 0; h < H; h++) memcpy(dst + (size_t)(h + PH) * Wp + PW, src + (size_t)h * W, sizeof(float) * W);
    }
}

void kiln_conv_shift_pack(const float *w, int M, int C, int KH, int KW, float *packed) {
    const int T = KH * KW;
    for (int m = 0; m < M; m++)
        for (int c = 0; c < C; c++)
            for (int t = 0; t < T; t++)
                packed[(((size_t)(m / 8) * C + c) * T + t) * 8 + (m % 8)] = w[((size_t)m * C + c) * T + t];
}

void kiln_conv_shift(const float *xp, int C, int plane, int Wp, int KH, int KW, int OH, int OW,
                     const float *packed, int mb_begin, int mb_end, const float *bias, const float *residual,
                     int act, float alpha, float lo, float hi, float *y) {
    const int T = KH * KW;
    const int Q = OH * Wp;  // outputs on the padded grid
    int shift[64];
    for (int kh = 0, t = 0; kh < KH; kh++)
        for (int kw = 0; kw < KW; kw++, t++) shift[t] = kh * Wp + kw;
    float tile[8][32];
    for (int mb = mb_begin; mb < mb_end; mb++) {
        const float *wb = packed + (size_t)mb * C * T * 8;
        for (int q0 = 0; q0 < Q; q0 += 32) {
            kiln_v16 a0[8], a1[8];
            for (int i = 0; i < 8; i++) { a0[i] = (kiln_v16){0}; a1[i] = (kiln_v16){0}; }
#define KILN_FMA(i) a0[i] += x0 * wt[i]; a1[i] += x1 * wt[i];
#define KILN_TAP(off, t) { const kiln_v16 x0 = load16(xc + (off)), x1 = load16(xc + (off) + 16); const float *wt = wc + (t) * 8; \
                           KILN_FMA(0) KILN_FMA(1) KILN_FMA(2) KILN_FMA(3) KILN_FMA(4) KILN_FMA(5) KILN_FMA(6) KILN_FMA(7) }
            if (KH == 3 && KW == 3) {
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
                            for (int j = 0; j < valid; j++) dst[j] = dst[j] > 0.0f ? dst[j] : 0.0f;
                        } else if (act != KILN_ACT_NONE) {
                            for (int j = 0; j < valid; j++) dst[j] = apply_act(dst[j], act, alpha, lo, hi);
                        }
                    }
                }
                q += run;
            }
        }
    }
}

void kiln_elementwise_chain(const float *x, float *y, size_t n, const kiln_ew_op *ops, int count) {
    enum { BLOCK = 2048 };
    for (size_t b0 = 0; b0 < n; b0 += BLOCK) {
        const size_t len = n - b0 < BLOCK ? n - b0 : BLOCK;
        float *v = y + b0;
        if (v != x + b0) memcpy(v, x + b0, sizeof(float) * len);
        for (int k = 0; k < count; k++) {
            const kiln_ew_op *op = &ops[k];
            if (op->kind >= 10) {
                kiln_activation(v, v, len, op->kind - 10, op->alpha, op->lo, op->hi);
                continue;
            }
            for (size_t j = 0; j < len; j++) {
                const size_t i = b0 + j;
                const float o = op->period == 0 ? op->operand[i] : op->operand[(i / op->inner) % op->period];
                const float a = op->swap ? o : v[j], c = op->swap ? v[j] : o;
                switch (op->kind) {
                case 0: v[j] = a + c; break;
                case 1: v[j] = a - c; break;
                case 2: v[j] = a * c; break;
                default: v[j] = a / c; break;
                }
            }
        }
    }
}

void kiln_winograd_pack(const float *w, int M, int C, float *packed) {
    for (int m = 0; m < M; m++) {
        for (int c = 0; c < C; c++) {
            const float *g = w + ((size_t)m * C + c) * 9;
            float t[4][3];  // G g: 4×3
            for (int j = 0; j < 3; j++) {
                t[0][j] = g[0 * 3 + j];
                t[1][j] = 0.5f * (g[0 * 3 + j] + g[1 * 3 + j] + g[2 * 3 + j]);
                t[2][j] = 0.5f * (g[0 * 3 + j] - g[1 * 3 + j] + g[2 * 3 + j]);
                t[3][j] = g[2 * 3 + j];
            }
            for (int i = 0; i < 4; i++) {
                float u[4];  // (G g) Gᵀ: row i
                u[0] = t[i][0];
                u[1] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
                u[2] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
                u[3] = t[i][2];
                for (int k = 0; k < 4; k++) {
                    const int xi = i * 4 + k;
                    packed[(((size_t)xi * (M / 8) + m / 8) * C + c) * 8 + (m % 8)] = u[k];
                }
            }
        }
    }
}

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

int kiln_winograd_scratch(int C, int M, int H, int W, int PH, int PW, int PHE, int PWE, int OH, int OW) {
    int TH, TW, Hp, Wp;
    winograd_dims(H, W, PH, PW, PHE, PWE, OH, OW, &TH, &TW, &Hp, &Wp);
    const int T = TH * TW, Tpad = (T + 31) / 32 * 32;
    // padded plane (one channel at a time) + row transforms + V + Mx
    return Hp * Wp + 4 * Hp * TW + 16 * C * Tpad + 16 * M * Tpad + 64;
}

void kiln_winograd_conv(const float *x, int C, int H, int W, int PH, int PW, int PHE, int PWE, int OH, int OW,
                        const float *packed, int M, const float *bias, const float *residual,
                        int act, float alpha, float lo, float hi, float *scratch, float *y) {
    int TH, TW, Hp, Wp;
    winograd_dims(H, W, PH, PW, PHE, PWE, OH, OW, &TH, &TW, &Hp, &Wp);
    const int T = TH * TW, Tpad = (T + 31) / 32 * 32;
    float *xp = scratch;                       // [Hp][Wp]
    float *E = xp + (size_t)Hp * Wp;           // [Hp][4][TW]: the column transform of each row
    float *V = E + (size_t)4 * Hp * TW;        // [16][C][Tpad]
    float *Mx = V + (size_t)16 * C * Tpad;     // [16][M][Tpad]

    // Input transform, channel by channel: V = Bᵀ d B, columns first (per padded row), then rows.
    for (int c = 0; c < C; c++) {
        memset(xp, 0, sizeof(float) * Hp * Wp);
        const float *xc = x + (size_t)c * H * W;
        for (int h = 0; h < H; h++) memcpy(xp + (size_t)(h + PH) * Wp + PW, xc + (size_t)h * W, sizeof(float) * W);
        for (int r = 0; r < Hp; r++) {
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
        for (int th = 0; th < TH; th++) {
            for (int k = 0; k < 4; k++) {
                const float *r0 = E + ((size_t)(2 * th + 0) * 4 + k) * TW;
                const float *r1 = E + ((size_t)(2 * th + 1) * 4 + k) * TW;
                const float *r2 = E + ((size_t)(2 * th + 2) * 4 + k) * TW;
                const float *r3 = E + ((size_t)(2 * th + 3) * 4 + k) * TW;
                float *v0 = V + ((size_t)(0 * 4 + k) * C + c) * Tpad + th * TW;
                float *v1 = V + ((size_t)(1 * 4 + k) * C + c) * Tpad + th * TW;
                float *v2 = V + ((size_t)(2 * 4 + k) * C + c) * Tpad + th * TW;
                float *v3 = V + ((size_t)(3 * 4 + k) * C + c) * Tpad + th * TW;
                for (int t = 0; t < TW; t++) {
                    v0[t] = r0[t] - r2[t];
                    v1[t] = r1[t] + r2[t];
                    v2[t] = r2[t] - r1[t];
                    v3[t] = r1[t] - r3[t];
                }
            }
        }
        for (int xi = 0; xi < 16; xi++) {
            float *v = V + ((size_t)xi * C + c) * Tpad;
            for (int t = T; t < Tpad; t++) v[t] = 0.0f;
        }
    }

    // Mx[ξ][m][t] = Σ_c U[ξ][m][c] V[ξ][c][t]: 8 channels × 32 tiles in registers.
    const int MB = M / 8;
    for (int xi = 0; xi < 16; xi++) {
        for (int mb = 0; mb < MB; mb++) {
            const float *u = packed + ((size_t)xi * MB + mb) * C * 8;
            for (int t0 = 0; t0 < Tpad; t0 += 32) {
                kiln_v16 a0[8], a1[8];
                for (int i = 0; i < 8; i++) { a0[i] = (kiln_v16){0}; a1[i] = (kiln_v16){0}; }
                const float *vb = V + (size_t)xi * C * Tpad + t0;
                for (int c = 0; c < C; c++) {
                    const kiln_v16 x0 = load16(vb + (size_t)c * Tpad);
                    const kiln_v16 x1 = load16(vb + (size_t)c * Tpad + 16);
                    const float *uc = u + c * 8;
#define KILN_WFMA(i) a0[i] += x0 * uc[i]; a1[i] += x1 * uc[i];
                    KILN_WFMA(0) KILN_WFMA(1) KILN_WFMA(2) KILN_WFMA(3) KILN_WFMA(4) KILN_WFMA(5) KILN_WFMA(6) KILN_WFMA(7)
#undef KILN_WFMA
                }
                for (int i = 0; i < 8; i++) {
                    float *dst = Mx + ((size_t)xi * M + mb * 8 + i) * Tpad + t0;
                    memcpy(dst, &a0[i], 64);
                    memcpy(dst + 16, &a1[i], 64);
                }
            }
        }
    }

    // Output transform Y = Aᵀ m A (Aᵀ = [[1,1,1,0],[0,1,−1,−1]]) and the epilogue, a row of
    // tiles at a time so the loops over tiles run on contiguous memory.
    float o[4][TW > 0 ? TW : 1];
    for (int m = 0; m < M; m++) {
        const float b = bias ? bias[m] : 0.0f;
        float *ym = y + (size_t)m * OH * OW;
        const float *rm = residual ? residual + (size_t)m * OH * OW : NULL;
        const float *base = Mx + (size_t)m * Tpad;
        const size_t xs = (size_t)M * Tpad;  // stride between ξ planes
        for (int th = 0; th < TH; th++) {
            const float *p[16];
            for (int xi = 0; xi < 16; xi++) p[xi] = base + xi * xs + th * TW;
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
                const float *even = o[2 * i], *odd = o[2 * i + 1];
                const int full = OW / 2;
                for (int t = 0; t < full; t++) {
                    row[2 * t] = even[t] + b;
                    row[2 * t + 1] = odd[t] + b;
                }
                if (OW & 1) row[OW - 1] = even[full] + b;
                if (rm) {
                    const float *rr = rm + (size_t)oh * OW;
                    for (int j = 0; j < OW; j++) row[j] += rr[j];
                }
                if (act == KILN_ACT_RELU) {
                    for (int j = 0; j < OW; j++) row[j] = row[j] > 0.0f ? row[j] : 0.0f;
                } else if (act != KILN_ACT_NONE) {
                    for (int j = 0; j < OW; j++) row[j] = apply_act(row[j], act, alpha, lo, hi);
                }
            }
        }
    }
}
