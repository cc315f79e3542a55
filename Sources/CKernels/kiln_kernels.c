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
        for (int ow = 0; ow < OW; ow++) {
            float best = -INFINITY;
            int any = 0;
            for (int kh = 0; kh < KH; kh++) {
                const int ih = oh * SH - PH + kh * DH;
                if (ih < 0 || ih >= H) continue;
                for (int kw = 0; kw < KW; kw++) {
                    const int iw = ow * SW - PW + kw * DW;
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
            for (int c = 0; c < C; c++) {
                const float *xc = xp + (size_t)c * plane + q0;
                const float *wc = wb + (size_t)c * T * 8;
                for (int t = 0; t < T; t++) {
                    const kiln_v16 x0 = load16(xc + shift[t]);
                    const kiln_v16 x1 = load16(xc + shift[t] + 16);
                    const float *wt = wc + t * 8;
#define KILN_FMA(i) a0[i] += x0 * wt[i]; a1[i] += x1 * wt[i];
                    KILN_FMA(0) KILN_FMA(1) KILN_FMA(2) KILN_FMA(3) KILN_FMA(4) KILN_FMA(5) KILN_FMA(6) KILN_FMA(7)
#undef KILN_FMA
                }
            }
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
