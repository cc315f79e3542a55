// Pooling over one plane.

static inline float max_nan(float best, float v) { return (v > best || v != v) ? v : best; }

static void maxpool2d(const float *x, kiln_conv_geometry g, float *y) {
    KILN_GEOMETRY_LOCALS(g);
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

static void avgpool2d(const float *x, kiln_conv_geometry g, int include_pad, float *y) {
    KILN_GEOMETRY_LOCALS(g);
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

static void global_avgpool(const float *x, int planes, int size, float *y) {
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * size;
        float s = 0.0f;
        for (int i = 0; i < size; i++) s += xp[i];
        y[p] = s / (float)size;
    }
}
