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
