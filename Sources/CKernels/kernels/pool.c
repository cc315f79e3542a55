// Pooling over one plane.

static inline float max_nan(float best, float v) { return (v > best || v != v) ? v : best; }

static void maxpool2d(const float *x, kiln_conv_geometry g, float *y) {
    KILN_GEOMETRY_LOCALS(g);
    enum { ROW = 4096, SLACK = 64 };
    // The row's column maxima, then -inf past its end: what the last vector of a row reads
    // past W (a right-hand padding column, or past the last window) takes no part in a max.
    float colmax[W <= ROW ? W + SLACK : 1];
    if (W <= ROW) for (int i = 0; i < SLACK; i++) colmax[W + i] = -INFINITY;
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
            int ow = 0;
            if (KW == 3 && SW == 2 && DW == 1) {
                // The common 3-wide, stride-2 window sixteen outputs at a time: its columns
                // 2·ow − PW + {0, 1, 2} are the even and odd lanes of 32 values and the even lanes
                // of the 32 two further on, taken in the same order as below (NaN wins).
                ow = (PW + 1) / 2;  // outputs before this one have a column in the padding
                for (int o = 0; o < ow && o < OW; o++) {
                    const int iw0 = o * 2 - PW;
                    float best = -INFINITY;
                    int any = 0;
                    for (int kw = 0; kw < 3; kw++) {
                        const int iw = iw0 + kw;
                        if (iw < 0 || iw >= W) continue;
                        best = any ? max_nan(best, colmax[iw]) : colmax[iw];
                        any = 1;
                    }
                    yr[o] = best;
                }
                // Up to the last output (small planes too: 13 outputs are one vector), reading
                // at most 2·OW − PW + 32 ≤ W + PWE + 30 columns: within the -inf slack.
                for (; ow < OW && 2 * OW - PW + 32 <= W + SLACK; ow += 16) {
                    const float *c = colmax + (ow * 2 - PW);
                    const kiln_v16 a = load16(c), b = load16(c + 16), d = load16(c + 2), e = load16(c + 18);
                    const kiln_v16 t0 = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                    const kiln_v16 t1 = __builtin_shufflevector(a, b, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
                    const kiln_v16 t2 = __builtin_shufflevector(d, e, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
                    kiln_v16 best = t0;
                    best = select16((t1 > best) | (t1 != t1), t1, best);
                    best = select16((t2 > best) | (t2 != t2), t2, best);
                    if (OW - ow >= 16) {
                        store16(yr + ow, best);
                    } else {
                        float tmp[16];
                        store16(tmp, best);
                        memcpy(yr + ow, tmp, sizeof(float) * (size_t)(OW - ow));
                    }
                }
            }
            for (; ow < OW; ow++) {
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

// Columns ow in [lo, hi) whose tap at offset `off` (ow·S + off) lies in [begin, end).
static inline void tap_range(int S, int off, int begin, int end, int OW, int *lo, int *hi) {
    int a = begin - off, b = end - 1 - off;  // ow·S in [a, b]
    *lo = a <= 0 ? 0 : (a + S - 1) / S;
    *hi = b < 0 ? 0 : b / S + 1;
    if (*hi > OW) *hi = OW;
    if (*lo > *hi) *lo = *hi;
}

// Sums of each output row's window taps accumulated tap by tap over runs of columns (the same
// order per output as a tap loop: kh outer, kw inner), then divided by the count, which is a
// product of a row count and a column count (both separable).
// Stride 1 along rows, no dilation (Inception's 3 × 3 pools of 35², 17² and 8² planes): per
// output row the window's input rows summed into a zero-padded row, then each output's KW
// consecutive sums, sixteen at a time, divided by its count.
static void avgpool2d_rows(const float *x, kiln_conv_geometry g, int include_pad, float *y) {
    KILN_GEOMETRY_LOCALS(g);
    const int Wp = W + PW + PWE;
    float sum[Wp + 16 + KW], count[OW + 16];
    for (int i = 0; i < Wp + 16 + KW; i++) sum[i] = 0.0f;
    for (int i = 0; i < OW + 16; i++) count[i] = 0.0f;
    // Each column's count of taps inside the input (or inside the padded input).
    for (int ow = 0; ow < OW; ow++) {
        int n = 0;
        for (int kw = 0; kw < KW; kw++) {
            const int iw = ow - PW + kw;
            n += include_pad ? iw >= -PW && iw < W + PWE : iw >= 0 && iw < W;
        }
        count[ow] = (float)n;
    }
    for (int oh = 0; oh < OH; oh++) {
        int rows = 0, first = 1;
        for (int kh = 0; kh < KH; kh++) {
            const int ih = oh * SH - PH + kh;
            rows += include_pad ? ih >= -PH && ih < H + PHE : ih >= 0 && ih < H;
            if (ih < 0 || ih >= H) continue;
            const float *row = x + (size_t)ih * W;
            float *dst = sum + PW;
            int i = 0;
            if (first) {
                for (; i + 16 <= W; i += 16) store16(dst + i, load16(row + i));
                for (; i < W; i++) dst[i] = row[i];
                first = 0;
            } else {
                for (; i + 16 <= W; i += 16) store16(dst + i, load16(dst + i) + load16(row + i));
                for (; i < W; i++) dst[i] += row[i];
            }
        }
        float *yr = y + (size_t)oh * OW;
        if (first) {  // no input row in the window
            for (int ow = 0; ow < OW; ow++) yr[ow] = 0.0f;
            continue;
        }
        const kiln_v16 r = splat16((float)rows);
        int ow = 0;
        for (; ow < OW; ow += 16) {
            kiln_v16 acc = load16(sum + ow);
            for (int kw = 1; kw < KW; kw++) acc += load16(sum + ow + kw);
            const kiln_v16 n = r * load16(count + ow);
            kiln_v16 v = select16(n > 0.0f, acc / select16(n > 0.0f, n, splat16(1.0f)), splat16(0.0f));
            if (OW - ow >= 16) {
                store16(yr + ow, v);
            } else {
                float tmp[16];
                store16(tmp, v);
                memcpy(yr + ow, tmp, sizeof(float) * (size_t)(OW - ow));
            }
        }
    }
}

static void avgpool2d(const float *x, kiln_conv_geometry g, int include_pad, float *y) {
    KILN_GEOMETRY_LOCALS(g);
    if (SW == 1 && DW == 1 && DH == 1 && W + PW + PWE <= 4096 && OW == W + PW + PWE - KW + 1) {
        avgpool2d_rows(x, g, include_pad, y);
        return;
    }
    enum { CHUNK = 256 };
    float acc[CHUNK];
    int cols[CHUNK];
    for (int c0 = 0; c0 < OW; c0 += CHUNK) {
        const int c1 = OW - c0 < CHUNK ? OW : c0 + CHUNK;
        // Each column's count of taps inside the input (or inside the padded input).
        for (int ow = c0; ow < c1; ow++) {
            int n = 0;
            for (int kw = 0; kw < KW; kw++) {
                const int iw = ow * SW - PW + kw * DW;
                n += include_pad ? iw >= -PW && iw < W + PWE : iw >= 0 && iw < W;
            }
            cols[ow - c0] = n;
        }
        for (int oh = 0; oh < OH; oh++) {
            int rows = 0;
            for (int kh = 0; kh < KH; kh++) {
                const int ih = oh * SH - PH + kh * DH;
                rows += include_pad ? ih >= -PH && ih < H + PHE : ih >= 0 && ih < H;
            }
            for (int j = 0; j < c1 - c0; j++) acc[j] = 0.0f;
            for (int kh = 0; kh < KH; kh++) {
                const int ih = oh * SH - PH + kh * DH;
                if (ih < 0 || ih >= H) continue;
                const float *row = x + (size_t)ih * W;
                for (int kw = 0; kw < KW; kw++) {
                    const int off = kw * DW - PW;
                    int lo, hi;
                    tap_range(SW, off, 0, W, OW, &lo, &hi);
                    if (lo < c0) lo = c0;
                    if (hi > c1) hi = c1;
                    if (SW == 1) {
                        for (int ow = lo; ow < hi; ow++) acc[ow - c0] += row[ow + off];
                    } else {
                        for (int ow = lo; ow < hi; ow++) acc[ow - c0] += row[ow * SW + off];
                    }
                }
            }
            float *yr = y + (size_t)oh * OW;
            for (int ow = c0; ow < c1; ow++) {
                const int n = rows * cols[ow - c0];
                yr[ow] = n > 0 ? acc[ow - c0] / (float)n : 0.0f;
            }
        }
    }
}

// Each plane summed in 16-lane partial sums, two vectors a step (one float accumulator is
// a chain of dependent adds, 4 cycles each: squeeze-excitation's pools of 112 × 112 planes
// took 7 % of EfficientNet-B0's time that way).
static void global_avgpool(const float *x, int planes, int size, float *y) {
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * size;
        kiln_v16 a0 = splat16(0.0f), a1 = splat16(0.0f);
        int i = 0;
        for (; i + 32 <= size; i += 32) {
            a0 += load16(xp + i);
            a1 += load16(xp + i + 16);
        }
        for (; i + 16 <= size; i += 16) a0 += load16(xp + i);
        a0 += a1;
        float s = 0.0f;
        for (int j = 0; j < 16; j++) s += a0[j];
        for (; i < size; i++) s += xp[i];
        y[p] = s / (float)size;
    }
}
