#include "kiln_kernels.h"

#include <math.h>
#include <string.h>

void kiln_im2col(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                 int DH, int DW, int OH, int OW, float *col) {
    kiln_im2col_rows(x, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, 0, C * KH, col);
}

void kiln_im2col_rows(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                      int DH, int DW, int OH, int OW, int r_begin, int r_end, float *col) {
    kiln_im2col_rows_ld(x, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW, r_begin, r_end, OH * OW, col);
}

// Rows r_begin..r_end of (channel, kernel row) pairs, output rows [oh_begin, oh_end), rows of
// col `ld` floats apart.
static void im2col_core(const float *x, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int DH, int DW, int OW,
                        int r_begin, int r_end, int oh_begin, int oh_end, int ld, float *col) {
    const int P = ld;
    for (int r = r_begin; r < r_end; r++) {
        const int c = r / KH, kh = r % KH;
        const float *xc = x + (size_t)c * H * W;
        for (int kw = 0; kw < KW; kw++) {
            float *row = col + ((size_t)(c * KH + kh) * KW + kw) * P;
            for (int oh = oh_begin; oh < oh_end; oh++) {
                const int ih = oh * SH - PH + kh * DH;
                float *out = row + (size_t)(oh - oh_begin) * OW;
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
                    // Valid range of ow: 0 <= ow·SW + off < W.
                    int lo = off < 0 ? (-off + SW - 1) / SW : 0;
                    int hi = off < W ? (W - off + SW - 1) / SW : 0;
                    if (hi > OW) hi = OW;
                    if (lo > hi) lo = hi;
                    for (int ow = 0; ow < lo; ow++) out[ow] = 0.0f;
                    const float *src = xr + off;
                    if (SW == 2) {
                        for (int ow = lo; ow < hi; ow++) out[ow] = src[2 * ow];
                    } else {
                        for (int ow = lo; ow < hi; ow++) out[ow] = src[ow * SW];
                    }
                    for (int ow = hi; ow < OW; ow++) out[ow] = 0.0f;
                }
            }
        }
    }
}

void kiln_im2col_rows_ld(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                         int DH, int DW, int OH, int OW, int r_begin, int r_end, int ld, float *col) {
    (void)C;
    im2col_core(x, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OW, r_begin, r_end, 0, OH, ld, col);
}

void kiln_im2col_out_rows(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                          int DH, int DW, int OW, int oh_begin, int oh_end, float *col) {
    im2col_core(x, H, W, KH, KW, SH, SW, PH, PW, DH, DW, OW, 0, C * KH, oh_begin, oh_end, (oh_end - oh_begin) * OW, col);
}

static inline float apply_act(float v, int act, float alpha, float lo, float hi) {
    switch (act) {
    case KILN_ACT_RELU: return v < 0.0f ? 0.0f : v;  // NaN stays NaN, as ONNX's Relu
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
                for (int p = 0; p < P; p++) { float v = row[p] + b + r[p]; row[p] = v < 0.0f ? 0.0f : v; }
            } else {
                for (int p = 0; p < P; p++) { float v = row[p] + b; row[p] = v < 0.0f ? 0.0f : v; }
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
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        return;
    }
    for (size_t i = 0; i < n; i++) y[i] = apply_act(x[i], act, alpha, lo, hi);
}

float kiln_apply_activation(float v, int act, float alpha, float lo, float hi) { return apply_act(v, act, alpha, lo, hi); }

int kiln_has_nonfinite(const float *x, size_t n) {
    // x · 0 is ±0 for every finite x and NaN for ±inf and NaN, so the sums stay zero unless
    // one is not finite. Sixteen independent sums: one vector add per 16 floats, in order.
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        for (int j = 0; j < 16; j++) acc[j] += x[i + j] * 0.0f;
    }
    for (; i < n; i++) acc[0] += x[i] * 0.0f;
    float total = 0.0f;
    for (int j = 0; j < 16; j++) total += acc[j];
    return total != 0.0f || total != total;
}

static inline float max_nan(float best, float v) { return (v > best || v != v) ? v : best; }

void kiln_maxpool2d(const float *x, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int PHE, int PWE,
                    int DH, int DW, int OH, int OW, float *y) {
    (void)PHE; (void)PWE;
    enum { ROW = 4096 };
    float colmax[W <= ROW ? W : 1];
    for (int oh = 0; oh < OH; oh++) {
        const int ih0 = oh * SH - PH;
        if (W <= ROW) {
            // Max over the window's rows first (one vectorisable pass along the row), then over
            // each window's columns. Padding takes no part; NaN wins, as in the reference.
            int rows = 0;
            for (int kh = 0; kh < KH; kh++) {
                const int ih = ih0 + kh * DH;
                if (ih < 0 || ih >= H) continue;
                const float *r = x + (size_t)ih * W;
                if (rows++ == 0) {
                    memcpy(colmax, r, sizeof(float) * W);
                } else {
                    for (int iw = 0; iw < W; iw++) colmax[iw] = max_nan(colmax[iw], r[iw]);
                }
            }
            float *yr = y + (size_t)oh * OW;
            if (rows == 0) {
                for (int ow = 0; ow < OW; ow++) yr[ow] = -INFINITY;
                continue;
            }
            for (int ow = 0; ow < OW; ow++) {
                const int iw0 = ow * SW - PW;
                float best = -INFINITY;
                if (iw0 >= 0 && iw0 + (KW - 1) * DW < W) {
                    for (int kw = 0; kw < KW; kw++) best = max_nan(best, colmax[iw0 + kw * DW]);
                } else {
                    int any = 0;
                    for (int kw = 0; kw < KW; kw++) {
                        const int iw = iw0 + kw * DW;
                        if (iw < 0 || iw >= W) continue;
                        best = any ? max_nan(best, colmax[iw]) : colmax[iw];
                        any = 1;
                    }
                }
                yr[ow] = best;
            }
            continue;
        }
        for (int ow = 0; ow < OW; ow++) {
            const int iw0 = ow * SW - PW;
            float best = -INFINITY;
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
                            for (int j = 0; j < valid; j++) dst[j] = dst[j] < 0.0f ? 0.0f : dst[j];
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
    kiln_elementwise_chain_range(x, y, 0, n, ops, count);
}

void kiln_elementwise_chain_range(const float *x, float *y, size_t begin, size_t end, const kiln_ew_op *ops, int count) {
    enum { BLOCK = 2048 };
    for (size_t b0 = begin; b0 < end; b0 += BLOCK) {
        const size_t len = end - b0 < BLOCK ? end - b0 : BLOCK;
        float *v = y + b0;
        if (v != x + b0) memcpy(v, x + b0, sizeof(float) * len);
        for (int k = 0; k < count; k++) {
            const kiln_ew_op *op = &ops[k];
            if (op->kind >= 10) {
                kiln_activation(v, v, len, op->kind - 10, op->alpha, op->lo, op->hi);
                continue;
            }
            if (op->period == 0) {
                // A same-shape operand: one vectorisable loop per operation.
                const float *o = op->operand + b0;
                switch (op->kind * 2 + (op->swap ? 1 : 0)) {
                case 0: case 1: for (size_t j = 0; j < len; j++) v[j] = v[j] + o[j]; break;
                case 2: for (size_t j = 0; j < len; j++) v[j] = v[j] - o[j]; break;
                case 3: for (size_t j = 0; j < len; j++) v[j] = o[j] - v[j]; break;
                case 4: case 5: for (size_t j = 0; j < len; j++) v[j] = v[j] * o[j]; break;
                case 6: for (size_t j = 0; j < len; j++) v[j] = v[j] / o[j]; break;
                default: for (size_t j = 0; j < len; j++) v[j] = o[j] / v[j]; break;
                }
                continue;
            }
            for (size_t j = 0; j < len; j++) {
                const size_t i = b0 + j;
                const float o = op->operand[(i / op->inner) % op->period];
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

// ---------------------------------------------------------------------------------------
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
// The weight gradient always uses the channels-last form. The portable path is scalar.

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define KILN_WINOGRAD_VECTOR 1
#endif

#ifdef KILN_WINOGRAD_VECTOR
// The forward's vector path: channels-last where tile rows are short (the tile layout fills
// its 8-tile vectors only partly) and the transformed weights stay in L2; tiles otherwise.
static int winograd_channels_last(int TW, int C, int M) { return TW < 8 && (size_t)16 * C * M <= ((size_t)1 << 18); }
#endif

// U = G g Gᵀ for every (m, c) of w [M, C, 3, 3], or with `flip` for the data gradient's
// convolution (g rotated by 180°, w's channel axes exchanged). Packed for the path the
// convolution (output width OW) takes: [16][C][M] channels-last, [16][M/8][C][8] for tiles.
static void winograd_pack_any(const float *w, int M, int C, int OW, int flip, float *packed) {
    // Output channels of the packed convolution: M (forward) or C (flipped: the data gradient
    // of w, a convolution from M channels to C).
    const int PM = flip ? C : M, PC = flip ? M : C;
#ifdef KILN_WINOGRAD_VECTOR
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

void kiln_winograd_pack(const float *w, int M, int C, int OW, float *packed) { winograd_pack_any(w, M, C, OW, 0, packed); }

void kiln_winograd_pack_flipped(const float *w, int M, int C, int OW, float *packed) {
    // The data gradient of a 3×3 stride-1 convolution is the convolution of dy with the
    // kernel rotated by 180° and its channel axes swapped: g[c][m] = rot180(w[m][c]).
    winograd_pack_any(w, M, C, OW, 1, packed);
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

int kiln_winograd_scratch(int C, int M, int H, int W, int PH, int PW, int PHE, int PWE, int OH, int OW) {
    int TH, TW, Hp, Wp;
    winograd_dims(H, W, PH, PW, PHE, PWE, OH, OW, &TH, &TW, &Hp, &Wp);
    const size_t v = winograd_vector_scratch(C, M, TW), p = winograd_portable_scratch(C, M, TW, Hp, Wp);
    const size_t t = winograd_tile_scratch(C, M, TW), most = v > p ? v : p;
    return (int)(most > t ? most : t);
}

int kiln_winograd_tile_rows(const kiln_winograd_shape *s) { return (s->OH + 1) / 2; }

#ifdef KILN_WINOGRAD_VECTOR
// Rows 0..15 of a 16×16 block (r[i] = row i) transposed in registers.
static inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

// The activation on the first n lanes of v (ReLU vectorised, the others lane by lane).
static inline __m512 activate16(__m512 v, int n, int act, float alpha, float lo, float hi) {
    // max_ps returns its second operand when either is NaN: zero first keeps a NaN.
    if (act == KILN_ACT_RELU) return _mm512_max_ps(_mm512_setzero_ps(), v);
    if (act == KILN_ACT_NONE) return v;
    float tmp[16];
    _mm512_storeu_ps(tmp, v);
    for (int j = 0; j < n; j++) tmp[j] = apply_act(tmp[j], act, alpha, lo, hi);
    return _mm512_loadu_ps(tmp);
}

static inline __mmask16 lanes(int n) { return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1u); }

// dst[i·K + k] = src[k·ks + i] for channels k < K and positions i < n (one row of K planes
// to channels-last).
static void rows_to_channels_last(const float *src, size_t ks, int K, int n, float *dst) {
    for (int i0 = 0; i0 < n; i0 += 16) {
        const __mmask16 in = lanes(n - i0);
        const int rows = n - i0 < 16 ? n - i0 : 16;
        for (int k0 = 0; k0 < K; k0 += 16) {
            const int kk = K - k0 < 16 ? K - k0 : 16;
            __m512 r[16];
            for (int k = 0; k < 16; k++) r[k] = k < kk ? _mm512_maskz_loadu_ps(in, src + (k0 + k) * ks + i0) : _mm512_setzero_ps();
            transpose16(r);
            for (int i = 0; i < rows; i++) _mm512_mask_storeu_ps(dst + (size_t)(i0 + i) * K + k0, lanes(kk), r[i]);
        }
    }
}

// The input rows of tile rows [th0, th1) of image x [C][H][W], channels-last and zero-padded:
// xt [2·(th1 − th0) + 2][2·TW + 2][C], row r = input row 2·th0 − PH + r, column j = input
// column j − PW.
static void winograd_rows_cl(const kiln_winograd_shape *s, int TW, const float *x, int th0, int th1, float *xt) {
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
                const __mmask16 k = lanes(C - c0);
                __m512 e[4][4];
                for (int r = 0; r < 4; r++) {  // d Bᵀ... each row's four columns
                    const float *p = xr + ((size_t)r * Wt + 2 * tw) * C + c0;
                    const __m512 p0 = _mm512_maskz_loadu_ps(k, p), p1 = _mm512_maskz_loadu_ps(k, p + C);
                    const __m512 p2 = _mm512_maskz_loadu_ps(k, p + 2 * C), p3 = _mm512_maskz_loadu_ps(k, p + 3 * C);
                    e[r][0] = _mm512_sub_ps(p0, p2);
                    e[r][1] = _mm512_add_ps(p1, p2);
                    e[r][2] = _mm512_sub_ps(p2, p1);
                    e[r][3] = _mm512_sub_ps(p1, p3);
                }
                float *v = Vt + t * C + c0;
                for (int j = 0; j < 4; j++) {  // then the rows
                    _mm512_mask_storeu_ps(v + (0 * 4 + j) * vs, k, _mm512_sub_ps(e[0][j], e[2][j]));
                    _mm512_mask_storeu_ps(v + (1 * 4 + j) * vs, k, _mm512_add_ps(e[1][j], e[2][j]));
                    _mm512_mask_storeu_ps(v + (2 * 4 + j) * vs, k, _mm512_sub_ps(e[2][j], e[1][j]));
                    _mm512_mask_storeu_ps(v + (3 * 4 + j) * vs, k, _mm512_sub_ps(e[1][j], e[3][j]));
                }
            }
        }
    }
}

// Mt[ξ][t][m − m_lo] = Σ_c Vt[ξ][t][c] · U[ξ][c][m] for tiles [0, T) (a multiple of 8 with
// zero rows past the block) and output channels [m_lo, m_hi): 8 tiles × 32 output channels
// in registers (16 × 16 when 16 channels remain), Vt broadcast, U the vector operand.
static void winograd_multiply_cl(const float *Vt, size_t vs, const float *U, int C, int M, int m_lo, int m_hi, int T,
                                 float *Mt, size_t ms) {
    const int ML = m_hi - m_lo;
    for (int xi = 0; xi < 16; xi++) {
        const float *vb = Vt + xi * vs, *ub = U + (size_t)xi * C * M;
        float *mb = Mt + xi * ms;
        for (int m0 = m_lo; m0 < m_hi; m0 += 32) {
            const int rem = m_hi - m0;
            const __mmask16 k0 = lanes(rem);
            if (rem > 16) {
                const __mmask16 k1 = lanes(rem - 16);
                for (int t0 = 0; t0 < T; t0 += 8) {
                    __m512 a0[8], a1[8];
                    for (int i = 0; i < 8; i++) { a0[i] = _mm512_setzero_ps(); a1[i] = _mm512_setzero_ps(); }
                    const float *v = vb + (size_t)t0 * C;
                    for (int c = 0; c < C; c++) {
                        const __m512 u0 = _mm512_maskz_loadu_ps(k0, ub + (size_t)c * M + m0);
                        const __m512 u1 = _mm512_maskz_loadu_ps(k1, ub + (size_t)c * M + m0 + 16);
                        for (int i = 0; i < 8; i++) {
                            const __m512 b = _mm512_set1_ps(v[(size_t)i * C + c]);
                            a0[i] = _mm512_fmadd_ps(u0, b, a0[i]);
                            a1[i] = _mm512_fmadd_ps(u1, b, a1[i]);
                        }
                    }
                    for (int i = 0; i < 8; i++) {
                        _mm512_mask_storeu_ps(mb + (size_t)(t0 + i) * ML + (m0 - m_lo), k0, a0[i]);
                        _mm512_mask_storeu_ps(mb + (size_t)(t0 + i) * ML + (m0 - m_lo) + 16, k1, a1[i]);
                    }
                }
            } else {
                for (int t0 = 0; t0 < T; t0 += 16) {
                    const int n = T - t0 < 16 ? 8 : 16;
                    __m512 a0[16];
                    for (int i = 0; i < 16; i++) a0[i] = _mm512_setzero_ps();
                    const float *v = vb + (size_t)t0 * C;
                    if (n == 16) {
                        for (int c = 0; c < C; c++) {
                            const __m512 u0 = _mm512_maskz_loadu_ps(k0, ub + (size_t)c * M + m0);
                            for (int i = 0; i < 16; i++) a0[i] = _mm512_fmadd_ps(u0, _mm512_set1_ps(v[(size_t)i * C + c]), a0[i]);
                        }
                    } else {
                        for (int c = 0; c < C; c++) {
                            const __m512 u0 = _mm512_maskz_loadu_ps(k0, ub + (size_t)c * M + m0);
                            for (int i = 0; i < 8; i++) a0[i] = _mm512_fmadd_ps(u0, _mm512_set1_ps(v[(size_t)i * C + c]), a0[i]);
                        }
                    }
                    for (int i = 0; i < n; i++) _mm512_mask_storeu_ps(mb + (size_t)(t0 + i) * ML + (m0 - m_lo), k0, a0[i]);
                }
            }
        }
    }
}

// y rows 2·th0 + a for the block's tiles: Aᵀ m A 16 output channels per vector into
// channels-last rows yt [2·rows][2·TW][ML], then per output row back to NCHW with
// y = act(· + bias[m] + residual) on 16 columns per vector.
static void winograd_output_cl(const kiln_winograd_shape *s, int TW, const float *Mt, size_t ms, int ML, int m_lo, int th0, int rows,
                               const float *bias, const float *residual, int act, float alpha, float lo, float hi, float *yt, float *y) {
    const int Wy = 2 * TW;
    const size_t plane = (size_t)s->OH * s->OW;
    for (int th = 0; th < rows; th++) {
        float *r0 = yt + (size_t)2 * th * Wy * ML, *r1 = r0 + (size_t)Wy * ML;
        for (int tw = 0; tw < TW; tw++) {
            const float *p = Mt + (size_t)(th * TW + tw) * ML;
            for (int m0 = 0; m0 < ML; m0 += 16) {
                const __mmask16 k = lanes(ML - m0);
                __m512 s0[4], s1[4];
                for (int j = 0; j < 4; j++) {
                    const __m512 p0 = _mm512_maskz_loadu_ps(k, p + (0 * 4 + j) * ms + m0), p1 = _mm512_maskz_loadu_ps(k, p + (1 * 4 + j) * ms + m0);
                    const __m512 p2 = _mm512_maskz_loadu_ps(k, p + (2 * 4 + j) * ms + m0), p3 = _mm512_maskz_loadu_ps(k, p + (3 * 4 + j) * ms + m0);
                    s0[j] = _mm512_add_ps(_mm512_add_ps(p0, p1), p2);
                    s1[j] = _mm512_sub_ps(_mm512_sub_ps(p1, p2), p3);
                }
                _mm512_mask_storeu_ps(r0 + (size_t)(2 * tw) * ML + m0, k, _mm512_add_ps(_mm512_add_ps(s0[0], s0[1]), s0[2]));
                _mm512_mask_storeu_ps(r0 + (size_t)(2 * tw + 1) * ML + m0, k, _mm512_sub_ps(_mm512_sub_ps(s0[1], s0[2]), s0[3]));
                _mm512_mask_storeu_ps(r1 + (size_t)(2 * tw) * ML + m0, k, _mm512_add_ps(_mm512_add_ps(s1[0], s1[1]), s1[2]));
                _mm512_mask_storeu_ps(r1 + (size_t)(2 * tw + 1) * ML + m0, k, _mm512_sub_ps(_mm512_sub_ps(s1[1], s1[2]), s1[3]));
            }
        }
    }
    const __m512 zero = _mm512_setzero_ps();
    for (int a = 0; a < 2 * rows; a++) {
        const int oh = 2 * th0 + a;
        if (oh >= s->OH) break;
        const float *src = yt + (size_t)a * Wy * ML;
        for (int ow0 = 0; ow0 < s->OW; ow0 += 16) {
            const int cols = s->OW - ow0 < 16 ? s->OW - ow0 : 16;
            const __mmask16 ck = lanes(cols);
            for (int m0 = 0; m0 < ML; m0 += 16) {
                const int mm = ML - m0 < 16 ? ML - m0 : 16;
                const __mmask16 mk = lanes(mm);
                __m512 r[16];
                for (int i = 0; i < 16; i++) r[i] = i < cols ? _mm512_maskz_loadu_ps(mk, src + (size_t)(ow0 + i) * ML + m0) : zero;
                transpose16(r);
                for (int j = 0; j < mm; j++) {
                    const int m = m_lo + m0 + j;
                    const size_t at = (size_t)m * plane + (size_t)oh * s->OW + ow0;
                    __m512 v = r[j];
                    if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[m]));
                    if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(ck, residual + at));
                    v = activate16(v, cols, act, alpha, lo, hi);
                    _mm512_mask_storeu_ps(y + at, ck, v);
                }
            }
        }
    }
}

// The tile layout (wide rows): eight tiles of a tile row per vector, NCHW throughout.

// Lanes l of a 16-float load at column `start` that fall inside [0, W): the rest read as zero
// padding (masked lanes are not accessed).
static inline __mmask16 row_mask(int start, int W) {
    const int lo = start < 0 ? -start : 0;
    const int hi = W - start < 16 ? W - start : 16;
    if (hi <= lo) return 0;
    return (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
}

// V = Bᵀ d B for tile rows [th0, th1) of channel plane xc [H][W], straight from the
// unpadded input, into V [16][C][Tpad] (planes xs floats apart) at tile th·TW + tw − tbase. Eight tiles of a tile row
// at once: a 16-float load at column 2·j0 − PW holds columns 0 and 1 of each tile's patch
// (even and odd lanes), the load two columns on holds columns 2 and 3.
static void winograd_input_tiles(const float *xc, int H, int W, int PH, int PW, int th0, int th1, int TW, size_t xs, int c,
                                  int Tpad, int tbase, float *V) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0);
    for (int th = th0; th < th1; th++) {
        for (int j0 = 0; j0 < TW; j0 += 8) {
            const int start = 2 * j0 - PW;
            const __mmask16 m0 = row_mask(start, W), m1 = row_mask(start + 2, W);
            const __mmask8 keep = TW - j0 >= 8 ? 0xFF : (__mmask8)((1u << (TW - j0)) - 1u);
            __m256 e[4][4];
            for (int r = 0; r < 4; r++) {
                const int ih = 2 * th + r - PH;
                if (ih < 0 || ih >= H) {
                    for (int k = 0; k < 4; k++) e[r][k] = _mm256_setzero_ps();
                    continue;
                }
                const float *row = xc + (size_t)ih * W + start;
                const __m512 z0 = _mm512_maskz_loadu_ps(m0, row), z1 = _mm512_maskz_loadu_ps(m1, row + 2);
                const __m256 a = _mm512_castps512_ps256(_mm512_permutexvar_ps(even, z0));
                const __m256 b = _mm512_castps512_ps256(_mm512_permutexvar_ps(odd, z0));
                const __m256 cc = _mm512_castps512_ps256(_mm512_permutexvar_ps(even, z1));
                const __m256 d = _mm512_castps512_ps256(_mm512_permutexvar_ps(odd, z1));
                e[r][0] = _mm256_sub_ps(a, cc);
                e[r][1] = _mm256_add_ps(b, cc);
                e[r][2] = _mm256_sub_ps(cc, b);
                e[r][3] = _mm256_sub_ps(b, d);
            }
            const size_t t = (size_t)th * TW + j0 - tbase;
            for (int k = 0; k < 4; k++) {
                _mm256_mask_storeu_ps(V + (0 * 4 + k) * xs + (size_t)c * Tpad + t, keep, _mm256_sub_ps(e[0][k], e[2][k]));
                _mm256_mask_storeu_ps(V + (1 * 4 + k) * xs + (size_t)c * Tpad + t, keep, _mm256_add_ps(e[1][k], e[2][k]));
                _mm256_mask_storeu_ps(V + (2 * 4 + k) * xs + (size_t)c * Tpad + t, keep, _mm256_sub_ps(e[2][k], e[1][k]));
                _mm256_mask_storeu_ps(V + (3 * 4 + k) * xs + (size_t)c * Tpad + t, keep, _mm256_sub_ps(e[1][k], e[3][k]));
            }
        }
    }
}

// Mx[ξ][m][t] = Σ_c U[ξ][c][m] V[ξ][c][t] for output-channel blocks [mb0, mb1) and tiles
// [0, T): 8 output channels × 32 tiles in registers, then 16 (the last chunk masked).
static void winograd_multiply_tiles(const float *packed, const float *V, size_t vs, int C, int M, int mb0, int mb1, int Tpad, int T,
                                    float *Mx, size_t ms) {
    for (int xi = 0; xi < 16; xi++) {
        for (int mb = mb0; mb < mb1; mb++) {
            const float *u = packed + ((size_t)xi * (M / 8) + mb) * C * 8;
            const float *vb = V + xi * vs;
            float *mx = Mx + xi * ms + (size_t)mb * 8 * Tpad;
            int t = 0;
            for (; t + 32 <= T; t += 32) {
                __m512 a0[8], a1[8];
                for (int i = 0; i < 8; i++) { a0[i] = _mm512_setzero_ps(); a1[i] = _mm512_setzero_ps(); }
                for (int c = 0; c < C; c++) {
                    const __m512 x0 = _mm512_loadu_ps(vb + (size_t)c * Tpad + t), x1 = _mm512_loadu_ps(vb + (size_t)c * Tpad + t + 16);
                    const float *uc = u + (size_t)c * 8;
                    for (int i = 0; i < 8; i++) {
                        const __m512 b = _mm512_set1_ps(uc[i]);
                        a0[i] = _mm512_fmadd_ps(x0, b, a0[i]);
                        a1[i] = _mm512_fmadd_ps(x1, b, a1[i]);
                    }
                }
                for (int i = 0; i < 8; i++) {
                    _mm512_storeu_ps(mx + (size_t)i * Tpad + t, a0[i]);
                    _mm512_storeu_ps(mx + (size_t)i * Tpad + t + 16, a1[i]);
                }
            }
            for (; t < T; t += 16) {
                const __mmask16 mask = lanes(T - t);
                __m512 a0[8];
                for (int i = 0; i < 8; i++) a0[i] = _mm512_setzero_ps();
                for (int c = 0; c < C; c++) {
                    const __m512 x0 = _mm512_maskz_loadu_ps(mask, vb + (size_t)c * Tpad + t);
                    const float *uc = u + (size_t)c * 8;
                    for (int i = 0; i < 8; i++) a0[i] = _mm512_fmadd_ps(x0, _mm512_set1_ps(uc[i]), a0[i]);
                }
                for (int i = 0; i < 8; i++) _mm512_mask_storeu_ps(mx + (size_t)i * Tpad + t, mask, a0[i]);
            }
        }
    }
}

static void winograd_output_tiles(const float *Mx, size_t xs, int m, int Tpad, int th0, int th1, int tbase, int TW, int OH, int OW,
                            float b, const float *rm, int act, float alpha, float lo, float hi, float *ym) {
    const float *base = Mx + (size_t)m * Tpad - tbase;  // ξ planes xs floats apart
    // Eight tiles at once; the two outputs of a tile row interleave into 16 columns. Lanes of
    // tiles past the row's end fall past OW and are not stored.
    const __m512i mix = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512 bv = _mm512_set1_ps(b);
    for (int th = th0; th < th1; th++) {
        for (int j0 = 0; j0 < TW; j0 += 8) {
            const float *p = base + (size_t)th * TW + j0;
            __m256 s0[4], s1[4];
            for (int k = 0; k < 4; k++) {
                const __m256 p0 = _mm256_loadu_ps(p + k * xs), p1 = _mm256_loadu_ps(p + (4 + k) * xs);
                const __m256 p2 = _mm256_loadu_ps(p + (8 + k) * xs), p3 = _mm256_loadu_ps(p + (12 + k) * xs);
                s0[k] = _mm256_add_ps(_mm256_add_ps(p0, p1), p2);
                s1[k] = _mm256_sub_ps(_mm256_sub_ps(p1, p2), p3);
            }
            __m256 o[4];
            o[0] = _mm256_add_ps(_mm256_add_ps(s0[0], s0[1]), s0[2]);
            o[1] = _mm256_sub_ps(_mm256_sub_ps(s0[1], s0[2]), s0[3]);
            o[2] = _mm256_add_ps(_mm256_add_ps(s1[0], s1[1]), s1[2]);
            o[3] = _mm256_sub_ps(_mm256_sub_ps(s1[1], s1[2]), s1[3]);
            const int col = 2 * j0;
            const int valid = OW - col < 16 ? OW - col : 16;
            const __mmask16 mask = (__mmask16)((1u << valid) - 1u);
            for (int i = 0; i < 2; i++) {
                const int oh = 2 * th + i;
                if (oh >= OH) break;
                __m512 v = _mm512_permutex2var_ps(_mm512_castps256_ps512(o[2 * i]), mix, _mm512_castps256_ps512(o[2 * i + 1]));
                v = _mm512_add_ps(v, bv);
                const size_t k = (size_t)oh * OW + col;
                if (rm) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, rm + k));
                v = activate16(v, valid, act, alpha, lo, hi);
                _mm512_mask_storeu_ps(ym + k, mask, v);
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

#ifdef KILN_WINOGRAD_VECTOR
// Tile rows [th_begin, th_end) and output channels [m_lo, m_hi) in the tile layout.
static void winograd_block_tiles(const kiln_winograd_shape *s, int TW, const float *x, const float *packed, int th_begin, int th_end,
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
static void winograd_block_cl(const kiln_winograd_shape *s, int TW, const float *x, const float *packed, int th_begin, int th_end,
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

void kiln_winograd_block(const kiln_winograd_shape *s, const float *x, const float *packed, int th_begin, int th_end,
                         int mb_begin, int mb_end, const float *bias, const float *residual, int act, float alpha,
                         float lo, float hi, float *scratch, float *y) {
    int TH, TW, Hp, Wp;
    winograd_dims(s->H, s->W, s->PH, s->PW, s->PHE, s->PWE, s->OH, s->OW, &TH, &TW, &Hp, &Wp);
    if (th_end > TH) th_end = TH;
#ifdef KILN_WINOGRAD_VECTOR
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

void kiln_winograd_conv(const float *x, int C, int H, int W, int PH, int PW, int PHE, int PWE, int OH, int OW,
                        const float *packed, int M, const float *bias, const float *residual,
                        int act, float alpha, float lo, float hi, float *scratch, float *y) {
    const kiln_winograd_shape s = {C, H, W, PH, PW, PHE, PWE, OH, OW, M};
    kiln_winograd_block(&s, x, packed, 0, kiln_winograd_tile_rows(&s), 0, M / 8, bias, residual, act, alpha, lo, hi, scratch, y);
}

// ---------------------------------------------------------------------------------------
// Winograd F(2×2, 3×3) weight gradient. The forward is y_tile = Aᵀ [Σ_c (G g Gᵀ) ⊙ (Bᵀ d B)] A,
// so its adjoint in the weights is dg = Gᵀ [Σ_tiles (Bᵀ d B) ⊙ (A dy_tile Aᵀ)] G: the forward's
// input transform, dy's 2×2 tiles spread to 4×4 by A, 16 products summed over tiles
// (dU[ξ][c][m], 16/36 of direct convolution's multiply-adds), and G on the 4×4 sums at the end.
// The vector path turns x's and dy's rows channels-last a block at a time (as the forward),
// so both transforms run 16 channels per vector and write Vt [16][T][C] and Dt [16][T][M],
// the layout the 16 products want.

int kiln_winograd_wgrad_scratch(const kiln_winograd_shape *s) {
    int TH, TW, Hp, Wp;
    winograd_dims(s->H, s->W, s->PH, s->PW, s->PHE, s->PWE, s->OH, s->OW, &TH, &TW, &Hp, &Wp);
    // xt, Vt, Dt (as Mt) and dy's rows (as the forward's output rows).
    return (int)winograd_vector_scratch(s->C, s->M, TW);
}

#ifdef KILN_WINOGRAD_VECTOR
// Dt[ξ][t][m] = (A dy Aᵀ)[ξ] for the tiles of tile rows [th0, th1) of dy [M][OH][OW], tile
// t = toff + (th − th0)·TW + tw: dy's rows channels-last into dyt [2·rows][2·TW][M] (zero
// past OH and OW) first.
static void wgrad_dy_cl(const kiln_winograd_shape *s, int TW, const float *dy, int th0, int th1, float *dyt, float *Dt, size_t ds,
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
                const __mmask16 k = lanes(M - m0);
                __m512 q[2][4];
                for (int a = 0; a < 2; a++) {  // each row times Aᵀ's columns
                    const float *p = dr + ((size_t)a * Wd + 2 * tw) * M + m0;
                    const __m512 d0 = _mm512_maskz_loadu_ps(k, p), d1 = _mm512_maskz_loadu_ps(k, p + M);
                    q[a][0] = d0;
                    q[a][1] = _mm512_add_ps(d0, d1);
                    q[a][2] = _mm512_sub_ps(d0, d1);
                    q[a][3] = _mm512_sub_ps(_mm512_setzero_ps(), d1);
                }
                float *d = Dt + t * M + m0;
                for (int j = 0; j < 4; j++) {  // then A on the left
                    _mm512_mask_storeu_ps(d + (0 * 4 + j) * ds, k, q[0][j]);
                    _mm512_mask_storeu_ps(d + (1 * 4 + j) * ds, k, _mm512_add_ps(q[0][j], q[1][j]));
                    _mm512_mask_storeu_ps(d + (2 * 4 + j) * ds, k, _mm512_sub_ps(q[0][j], q[1][j]));
                    _mm512_mask_storeu_ps(d + (3 * 4 + j) * ds, k, _mm512_sub_ps(_mm512_setzero_ps(), q[1][j]));
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
                const __mmask16 k0 = lanes(rem);
                if (rem > 16) {
                    const __mmask16 k1 = lanes(rem - 16);
                    __m512 a0[8], a1[8];
                    for (int j = 0; j < 8; j++) {
                        a0[j] = _mm512_maskz_loadu_ps(k0, u + (size_t)(c0 + j) * M + m0);
                        a1[j] = _mm512_maskz_loadu_ps(k1, u + (size_t)(c0 + j) * M + m0 + 16);
                    }
                    for (int t = 0; t < T; t++) {
                        const __m512 d0 = _mm512_maskz_loadu_ps(k0, db + (size_t)t * M + m0);
                        const __m512 d1 = _mm512_maskz_loadu_ps(k1, db + (size_t)t * M + m0 + 16);
                        const float *v = vb + (size_t)t * C + c0;
                        for (int j = 0; j < 8; j++) {
                            const __m512 b = _mm512_set1_ps(v[j]);
                            a0[j] = _mm512_fmadd_ps(d0, b, a0[j]);
                            a1[j] = _mm512_fmadd_ps(d1, b, a1[j]);
                        }
                    }
                    for (int j = 0; j < 8; j++) {
                        _mm512_mask_storeu_ps(u + (size_t)(c0 + j) * M + m0, k0, a0[j]);
                        _mm512_mask_storeu_ps(u + (size_t)(c0 + j) * M + m0 + 16, k1, a1[j]);
                    }
                } else {
                    __m512 a0[8];
                    for (int j = 0; j < 8; j++) a0[j] = _mm512_maskz_loadu_ps(k0, u + (size_t)(c0 + j) * M + m0);
                    for (int t = 0; t < T; t++) {
                        const __m512 d0 = _mm512_maskz_loadu_ps(k0, db + (size_t)t * M + m0);
                        const float *v = vb + (size_t)t * C + c0;
                        for (int j = 0; j < 8; j++) a0[j] = _mm512_fmadd_ps(d0, _mm512_set1_ps(v[j]), a0[j]);
                    }
                    for (int j = 0; j < 8; j++) _mm512_mask_storeu_ps(u + (size_t)(c0 + j) * M + m0, k0, a0[j]);
                }
            }
        }
    }
}
#endif

void kiln_winograd_wgrad_accumulate(const kiln_winograd_shape *s, const float *x, const float *dy, int G, float *dU, float *scratch) {
    int TH, TW, Hp, Wp;
    winograd_dims(s->H, s->W, s->PH, s->PW, s->PHE, s->PWE, s->OH, s->OW, &TH, &TW, &Hp, &Wp);
    const int C = s->C, M = s->M;
    const size_t inImage = (size_t)C * s->H * s->W, outPlane = (size_t)s->OH * s->OW;
    const int rowsTotal = G * TH;
#ifdef KILN_WINOGRAD_VECTOR
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

void kiln_winograd_wgrad_finish(const float *dU, int M, int C, float *dw) {
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

// ---------------------------------------------------------------------------------------
// Convolution as a matrix product with the epilogue fused into the store.

#ifdef KILN_WINOGRAD_VECTOR
// Stores 8 rows × 16 columns (lanes in `mask`) of accumulators with y = act(acc + bias + residual).
static inline void gemm_store16(const __m512 *acc, int m0, int n, size_t ldy, __mmask16 mask, const float *bias,
                                const float *residual, int act, float alpha, float lo, float hi, float *y) {
    for (int i = 0; i < 8; i++) {
        const size_t k = (size_t)(m0 + i) * ldy + n;
        __m512 v = acc[i];
        if (bias) v = _mm512_add_ps(v, _mm512_set1_ps(bias[m0 + i]));
        if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, residual + k));
        v = activate16(v, 16, act, alpha, lo, hi);
        _mm512_mask_storeu_ps(y + k, mask, v);
    }
}
#endif

void kiln_conv_gemm(const float *packed, const float *b, int K, int N, int mb_begin, int mb_end, const float *bias,
                    const float *residual, int act, float alpha, float lo, float hi, float *y) {
    kiln_conv_gemm_ld(packed, b, K, N, mb_begin, mb_end, bias, residual, N, act, alpha, lo, hi, y);
}

void kiln_conv_gemm_ld(const float *packed, const float *b, int K, int N, int mb_begin, int mb_end, const float *bias,
                       const float *residual, size_t ldy, int act, float alpha, float lo, float hi, float *y) {
#ifdef KILN_WINOGRAD_VECTOR
    // Column chunks outside, channel blocks inside: a chunk of B (K × 32 floats) is read from
    // memory once and stays in cache for every block of 8 output channels.
    int n0 = 0;
    for (; n0 + 32 <= N; n0 += 32) {
        for (int mb = mb_begin; mb < mb_end; mb++) {
            const float *u = packed + (size_t)mb * K * 8;
            __m512 a0[8], a1[8];
            for (int i = 0; i < 8; i++) { a0[i] = _mm512_setzero_ps(); a1[i] = _mm512_setzero_ps(); }
            const float *bk = b + n0;
            for (int k = 0; k < K; k++, bk += N) {
                const __m512 x0 = _mm512_loadu_ps(bk), x1 = _mm512_loadu_ps(bk + 16);
                const float *uk = u + (size_t)k * 8;
                for (int i = 0; i < 8; i++) {
                    const __m512 w = _mm512_set1_ps(uk[i]);
                    a0[i] = _mm512_fmadd_ps(x0, w, a0[i]);
                    a1[i] = _mm512_fmadd_ps(x1, w, a1[i]);
                }
            }
            gemm_store16(a0, mb * 8, n0, ldy, 0xFFFF, bias, residual, act, alpha, lo, hi, y);
            gemm_store16(a1, mb * 8, n0 + 16, ldy, 0xFFFF, bias, residual, act, alpha, lo, hi, y);
        }
    }
    // The rest of the row 16 columns at a time, the last masked.
    for (; n0 < N; n0 += 16) {
        const int valid = N - n0 < 16 ? N - n0 : 16;
        const __mmask16 mask = (__mmask16)((1u << valid) - 1u);
        for (int mb = mb_begin; mb < mb_end; mb++) {
            const float *u = packed + (size_t)mb * K * 8;
            __m512 a0[8];
            for (int i = 0; i < 8; i++) a0[i] = _mm512_setzero_ps();
            const float *bk = b + n0;
            for (int k = 0; k < K; k++, bk += N) {
                const __m512 x0 = _mm512_maskz_loadu_ps(mask, bk);
                const float *uk = u + (size_t)k * 8;
                for (int i = 0; i < 8; i++) a0[i] = _mm512_fmadd_ps(x0, _mm512_set1_ps(uk[i]), a0[i]);
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
                const float *bk = b + (size_t)k * N;
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

void kiln_col2im_rows(const float *col, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                      int DH, int DW, int OH, int OW, int c_begin, int c_end, float *x) {
    (void)C;
    const int P = OH * OW;
    memset(x + (size_t)c_begin * H * W, 0, sizeof(float) * (size_t)(c_end - c_begin) * H * W);
    for (int c = c_begin; c < c_end; c++) {
        float *xc = x + (size_t)c * H * W;
        for (int kh = 0; kh < KH; kh++) {
            for (int kw = 0; kw < KW; kw++) {
                const float *row = col + ((size_t)(c * KH + kh) * KW + kw) * P;
                for (int oh = 0; oh < OH; oh++) {
                    const int ih = oh * SH - PH + kh * DH;
                    if (ih < 0 || ih >= H) continue;
                    float *xr = xc + (size_t)ih * W;
                    const float *src = row + (size_t)oh * OW;
                    const int off = kw * DW - PW;
                    if (SW == 1) {
                        int lo = off < 0 ? -off : 0, hi = W - off;
                        if (hi > OW) hi = OW;
                        for (int ow = lo; ow < hi; ow++) xr[ow + off] += src[ow];
                    } else {
                        for (int ow = 0; ow < OW; ow++) {
                            const int iw = ow * SW + off;
                            if (iw >= 0 && iw < W) xr[iw] += src[ow];
                        }
                    }
                }
            }
        }
    }
}

// Σ of channel c of x [N, C, inner]: f32 within an image's plane, f64 across images.
// Reductions over a plane with 32 independent partial sums (two 16-float vectors): a single
// accumulator would make every add wait for the previous one (without -ffast-math the
// compiler may not reorder the sum itself).
typedef int kiln_i16 __attribute__((vector_size(64)));

static inline float hsum16(kiln_v16 v) {
    float s = 0;
    for (int i = 0; i < 16; i++) s += v[i];
    return s;
}

static float plane_sum(const float *p, int n) {
    kiln_v16 a = {0}, b = {0};
    int k = 0;
    for (; k + 32 <= n; k += 32) { a += load16(p + k); b += load16(p + k + 16); }
    float t = hsum16(a + b);
    for (; k < n; k++) t += p[k];
    return t;
}

static float plane_centered_squares(const float *p, int n, float mu) {
    kiln_v16 a = {0}, b = {0};
    int k = 0;
    for (; k + 32 <= n; k += 32) {
        const kiln_v16 d0 = load16(p + k) - mu, d1 = load16(p + k + 16) - mu;
        a += d0 * d0;
        b += d1 * d1;
    }
    float t = hsum16(a + b);
    for (; k < n; k++) { const float d = p[k] - mu; t += d * d; }
    return t;
}

// Σ g and Σ g·(p − mu) over a plane, with g masked by r > 0 when r is given.
static void plane_grad_sums(const float *g, const float *p, const float *r, int n, float mu, float *sg, float *sgx) {
    kiln_v16 a = {0}, b = {0};
    const kiln_v16 zero = {0};
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        kiln_v16 gk = load16(g + k);
        if (r) {
            const kiln_i16 keep = load16(r + k) > zero;  // lanes of −1 where r > 0, else 0
            gk = (kiln_v16)(keep & (kiln_i16)gk);
        }
        a += gk;
        b += gk * (load16(p + k) - mu);
    }
    float t = hsum16(a), u = hsum16(b);
    for (; k < n; k++) {
        const float gk = r ? g[k] * (float)(r[k] > 0.0f) : g[k];
        t += gk;
        u += gk * (p[k] - mu);
    }
    *sg = t;
    *sgx = u;
}

static double channel_sum(const float *x, int N, int C, int inner, int c) {
    double s = 0;
    for (int n = 0; n < N; n++) s += plane_sum(x + ((size_t)n * C + c) * inner, inner);
    return s;
}

void kiln_channel_sums(const float *x, int N, int C, int inner, int c_begin, int c_end, float *sums) {
    for (int c = c_begin; c < c_end; c++) sums[c] = (float)channel_sum(x, N, C, inner, c);
}

void kiln_batchnorm_train(const float *x, int N, int C, int inner, const float *scale, const float *bias,
                          const float *run_mean, const float *run_var, float eps, float momentum, int relu, int c_begin, int c_end,
                          float *y, float *mean, float *invstd, float *next_mean, float *next_var) {
    const double count = (double)N * inner;
    for (int c = c_begin; c < c_end; c++) {
        const float mu = (float)(channel_sum(x, N, C, inner, c) / count);
        double q = 0;
        for (int n = 0; n < N; n++) q += plane_centered_squares(x + ((size_t)n * C + c) * inner, inner, mu);
        const double var = q / count;
        const float inv = (float)(1.0 / sqrt(var + eps));
        const float a = inv * scale[c], b = bias[c] - mu * a;
        for (int n = 0; n < N; n++) {
            const float *p = x + ((size_t)n * C + c) * inner;
            float *o = y + ((size_t)n * C + c) * inner;
            if (relu) {
                for (int k = 0; k < inner; k++) { const float v = p[k] * a + b; o[k] = v < 0.0f ? 0.0f : v; }
            } else {
                for (int k = 0; k < inner; k++) o[k] = p[k] * a + b;
            }
        }
        mean[c] = mu;
        invstd[c] = inv;
        next_mean[c] = momentum * run_mean[c] + (1 - momentum) * mu;
        const double unbiased = count > 1 ? var * count / (count - 1) : var;
        next_var[c] = (float)(momentum * run_var[c] + (1 - momentum) * unbiased);
    }
}

void kiln_batchnorm_grad(const float *dy, const float *x, int N, int C, int inner, const float *scale, const float *mean,
                         const float *invstd, const float *relu_out, int c_begin, int c_end, float *dx, float *dscale, float *dbias) {
    const float m = (float)N * inner;
    for (int c = c_begin; c < c_end; c++) {
        const float mu = mean[c], inv = invstd[c];
        double sdy = 0, sdyx = 0;
        for (int n = 0; n < N; n++) {
            const size_t o = ((size_t)n * C + c) * inner;
            float t, u;
            plane_grad_sums(dy + o, x + o, relu_out ? relu_out + o : NULL, inner, mu, &t, &u);
            sdy += t;
            sdyx += u;
        }
        const float sumDy = (float)sdy, sumDyXhat = (float)(sdyx * inv);
        dbias[c] = sumDy;
        dscale[c] = sumDyXhat;
        const float k0 = scale[c] * inv / m;
        for (int n = 0; n < N; n++) {
            const float *g = dy + ((size_t)n * C + c) * inner, *p = x + ((size_t)n * C + c) * inner;
            float *o = dx + ((size_t)n * C + c) * inner;
            if (relu_out) {
                const float *r = relu_out + ((size_t)n * C + c) * inner;
                for (int k = 0; k < inner; k++) {
                    const float gk = g[k] * (float)(r[k] > 0.0f);
                    o[k] = k0 * (m * gk - sumDy - (p[k] - mu) * inv * sumDyXhat);
                }
            } else {
                for (int k = 0; k < inner; k++) o[k] = k0 * (m * g[k] - sumDy - (p[k] - mu) * inv * sumDyXhat);
            }
        }
    }
}

void kiln_relu_grad(const float *dy, const float *y, size_t n, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void kiln_relu_grad_sum(const float *a, const float *b, const float *y, size_t n, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? a[i] + b[i] : 0.0f;
}

void kiln_sgd(const float *p, const float *g, const float *v, size_t n, float lr, float momentum, float wd, int nesterov,
              float *p_next, float *v_next) {
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * p[i];
        const float vi = momentum * v[i] + gi;
        v_next[i] = vi;
        p_next[i] = p[i] - lr * (nesterov ? gi + momentum * vi : vi);
    }
}

void kiln_scatter_add_map(const float *dy, const int *map, size_t n, float *dx) {
    for (size_t k = 0; k < n; k++) if (map[k] >= 0) dx[map[k]] += dy[k];
}

void kiln_weight_grad(const float *dy, const float *col, int M, int K, int P, int m_begin, int m_end, float *dw) {
    // Patches as rows are the shifted-row case with one image, one tap and no padding.
    kiln_weight_grad_shift(dy, col, 1, M, K, 1, 1, P, P, P, m_begin, m_end, dw);
}

void kiln_pad_rows(const float *dy, int M, int OH, int OW, int Wp, float *dyp) {
    for (int m = 0; m < M; m++) {
        for (int oh = 0; oh < OH; oh++) {
            float *dst = dyp + ((size_t)m * OH + oh) * Wp;
            memcpy(dst, dy + ((size_t)m * OH + oh) * OW, sizeof(float) * OW);
            for (int j = OW; j < Wp; j++) dst[j] = 0.0f;
        }
    }
}

void kiln_weight_grad_shift(const float *dyp, const float *xp, int G, int M, int C, int KH, int KW, int Wp, int Q, int plane,
                            int m_begin, int m_end, float *dw) {
    const int T = KH * KW, K = C * T;
    // Row k = (c, kh, kw) of the (virtual) patch matrix of image g is xp_g[c] shifted by
    // kh·Wp + kw; dy sits on the same padded grid with zero junk columns.
#define KILN_XROW(g, k) (xp + ((size_t)(g) * C + (k) / T) * plane + ((k) % T) / KW * Wp + ((k) % T) % KW)
#ifdef KILN_WINOGRAD_VECTOR
    const int m4 = m_begin + (m_end - m_begin) / 4 * 4;
    int k0 = 0;
    for (; k0 + 4 <= K; k0 += 4) {
        for (int m0 = m_begin; m0 < m4; m0 += 4) {
            __m512 acc[4][4];
            for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = _mm512_setzero_ps();
            for (int g = 0; g < G; g++) {
                const float *a0 = dyp + ((size_t)g * M + m0) * Q;
                const float *b0 = KILN_XROW(g, k0), *b1 = KILN_XROW(g, k0 + 1), *b2 = KILN_XROW(g, k0 + 2), *b3 = KILN_XROW(g, k0 + 3);
                for (int q = 0; q < Q; q += 16) {
                    const __mmask16 mask = Q - q >= 16 ? 0xFFFF : (__mmask16)((1u << (Q - q)) - 1u);
                    __m512 a[4], b[4];
                    for (int i = 0; i < 4; i++) a[i] = _mm512_maskz_loadu_ps(mask, a0 + (size_t)i * Q + q);
                    b[0] = _mm512_maskz_loadu_ps(mask, b0 + q);
                    b[1] = _mm512_maskz_loadu_ps(mask, b1 + q);
                    b[2] = _mm512_maskz_loadu_ps(mask, b2 + q);
                    b[3] = _mm512_maskz_loadu_ps(mask, b3 + q);
                    for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) acc[i][j] = _mm512_fmadd_ps(a[i], b[j], acc[i][j]);
                }
            }
            for (int i = 0; i < 4; i++) for (int j = 0; j < 4; j++) dw[(size_t)(m0 + i) * K + k0 + j] += _mm512_reduce_add_ps(acc[i][j]);
        }
    }
    for (int m = m_begin; m < m_end; m++) {
        for (int k = m < m4 ? k0 : 0; k < K; k++) {
            __m512 acc = _mm512_setzero_ps();
            for (int g = 0; g < G; g++) {
                const float *a = dyp + ((size_t)g * M + m) * Q, *b = KILN_XROW(g, k);
                for (int q = 0; q < Q; q += 16) {
                    const __mmask16 mask = Q - q >= 16 ? 0xFFFF : (__mmask16)((1u << (Q - q)) - 1u);
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mask, a + q), _mm512_maskz_loadu_ps(mask, b + q), acc);
                }
            }
            dw[(size_t)m * K + k] += _mm512_reduce_add_ps(acc);
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
