// Depthwise convolution: one input channel per group (C groups, M = C·mult output channels,
// output channel m reads input channel m / mult), any kernel size, stride, dilation and
// padding. Each input plane is copied once into a zero-padded scratch plane whose rows are
// stored as SW phases (phase r holds the padded columns r, r + SW, r + 2·SW, …), so every tap
// of every stride is a contiguous run: out[oy][ox..ox+15] += w[t] · phase[ox + shift(t)].
// Sixteen outputs of four rows at a time (four independent accumulators), written once with
// bias, residual and activation. Written on the generic 16-float vector, so every level
// vectorises it with its own registers.

// The activation, with the common ones (none, ReLU, ReLU6) inline: act16 itself is a call.
static inline __attribute__((always_inline)) kiln_v16 depthwise_act(kiln_v16 v, int act, float alpha, float lo, float hi) {
    if (act == KILN_ACT_NONE) return v;
    if (act == KILN_ACT_RELU) return select16(v < 0.0f, splat16(0.0f), v);
    if (act == KILN_ACT_CLIP) return select16(v < lo, splat16(lo), select16(v > hi, splat16(hi), v));
    return act16(v, act, alpha, lo, hi);
}

// Floats per phase of a padded row: the phase's columns and a vector's slack, so the last
// vector of a row reads zeros, never the next phase.
static int depthwise_row_length(kiln_conv_geometry g) {
    const int Wp = g.W + g.PW + g.PWE;
    return (Wp + g.SW - 1) / g.SW + 16;
}

// Small planes take the channel-blocked path below: one input channel per output channel,
// at most 1,024 outputs and 4,096 padded inputs per plane (where the plane-by-plane path's
// per-plane work dominates and short rows leave lanes idle). Measured on Zen 2, one thread,
// 3×3: [384, 14, 14] 98 → 62 µs, [960, 7, 7] 121 → 54, [576, 14, 14] stride 2 186 → 53,
// [144, 28, 28] 105 → 90, [144, 56, 56] stride 2 260 → 191; the 56×56 and 112×112 outputs
// ran slower on it (355 → 410, 260 → 399) and stay on planes.
static int depthwise_small_planes(kiln_conv_geometry g) {
    const int Hp = g.H + g.PH + g.PHE, Wp = g.W + g.PW + g.PWE;
    return g.OH * g.OW <= 1024 && Hp * Wp <= 4096;
}
static int depthwise_by_channels(kiln_conv_geometry g) { return g.M == g.C && depthwise_small_planes(g); }

static int depthwise_scratch(kiln_conv_geometry g) {
    const int planes = (g.H + g.PH + g.PHE) * g.SW * depthwise_row_length(g) + 16;
    // Sized by the planes alone: callers plan it from one group's geometry (C = 1).
    if (!depthwise_small_planes(g)) return planes;
    const int flat = g.H * g.W > g.OH * g.OW ? g.H * g.W : g.OH * g.OW;
    const int blocked = ((g.H + g.PH + g.PHE) * (g.W + g.PW + g.PWE) + g.KH * g.KW + flat) * 16 + 16;
    return blocked > planes ? blocked : planes;
}

// 8 rows of 8 floats (src, rows src_stride apart) transposed into 8 rows of 8 (dst, rows
// dst_stride apart): dst[p][c] = src[c][p]. Three rounds of shuffles on the generic 8-float
// vector (unpack, pairs, halves), so every level has it.
typedef float kiln_v8 __attribute__((vector_size(32)));
static inline void depthwise_transpose8(const float *src, size_t src_stride, float *dst, size_t dst_stride) {
    kiln_v8 r[8];
    for (int i = 0; i < 8; i++) memcpy(&r[i], src + (size_t)i * src_stride, sizeof r[i]);
    kiln_v8 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = __builtin_shufflevector(r[i], r[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
        t[i + 1] = __builtin_shufflevector(r[i], r[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
        u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
        u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
    }
    for (int p = 0; p < 4; p++) {
        const kiln_v8 lo = __builtin_shufflevector(u[p], u[p + 4], 0, 1, 2, 3, 8, 9, 10, 11);
        const kiln_v8 hi = __builtin_shufflevector(u[p], u[p + 4], 4, 5, 6, 7, 12, 13, 14, 15);
        memcpy(dst + (size_t)p * dst_stride, &lo, sizeof lo);
        memcpy(dst + (size_t)(p + 4) * dst_stride, &hi, sizeof hi);
    }
}

// Channels [c0, c0 + n) of planes `count` floats long (plane k at src + k·plane) interleaved
// into dst[q][16] (lane c − c0), or back (to_planes): eight channels by eight values at a time
// through depthwise_transpose8, the rest one by one.
static void depthwise_interleave(float *planes, size_t plane, int n, int count, float *dst, int to_planes) {
    for (int h = 0; h < n; h += 8) {
        const int lanes = n - h < 8 ? n - h : 8;
        int q = 0;
        if (lanes == 8) {
            for (; q + 8 <= count; q += 8) {
                if (to_planes) depthwise_transpose8(dst + (size_t)q * 16 + h, 16, planes + (size_t)h * plane + q, plane);
                else depthwise_transpose8(planes + (size_t)h * plane + q, plane, dst + (size_t)q * 16 + h, 16);
            }
        }
        for (int c = 0; c < lanes; c++) {
            float *pc = planes + (size_t)(h + c) * plane;
            for (int j = q; j < count; j++) {
                if (to_planes) pc[j] = dst[(size_t)j * 16 + h + c];
                else dst[(size_t)j * 16 + h + c] = pc[j];
            }
        }
    }
}

// The channel-blocked path: sixteen channels at a time, vectorised across them. The block's
// input rows are interleaved [pixel][16 channels] (transposes), then laid out padded,
// [row][column][16], in scratch (zeros in the padding); each output pixel is
// Σ_t w_t[16] · x_tap[16] (four pixels of a row at once, four independent chains) into a
// [pixel][16] tile, which goes back to the output planes by transposes; the residual and the
// activation then on the planes.
static void conv_depthwise_channels(const float *x, size_t x_plane, int x_row0, kiln_conv_geometry g, const float *w, int m_begin,
                                    int m_end, int oy_begin, int oy_end, const float *bias, const float *residual, kiln_act a,
                                    float *scratch, float *y) {
    KILN_GEOMETRY_LOCALS(g);
    KILN_ACT_LOCALS(a);
    const int Wp = W + PW + PWE, T = KH * KW;
    const int r_begin = oy_begin * SH, r_end = (oy_end - 1) * SH + (KH - 1) * DH + 1;  // padded rows read
    int iy0 = r_begin - PH, iy1 = r_end - PH;  // the input rows among them
    if (iy0 < 0) iy0 = 0;
    if (iy1 > H) iy1 = H;
    const size_t rows = (size_t)(r_end - r_begin), rowv = (size_t)Wp * 16;
    float *xp = scratch, *wv = xp + rows * rowv, *flat = wv + (size_t)T * 16;
    const int out_count = (oy_end - oy_begin) * OW;
    // The padding stays zero from block to block: only the interior is rewritten (lanes
    // past a short last block keep an earlier block's values, never written back).
    memset(xp, 0, sizeof(float) * rows * rowv);
    for (int c0 = m_begin; c0 < m_end; c0 += 16) {
        const int n = m_end - c0 < 16 ? m_end - c0 : 16;
        if (iy1 > iy0) {
            depthwise_interleave((float *)x + (size_t)c0 * x_plane + (size_t)(iy0 - x_row0) * W, x_plane, n, (iy1 - iy0) * W, flat, 0);
            for (int iy = iy0; iy < iy1; iy++) {
                float *dst = xp + (size_t)(iy + PH - r_begin) * rowv + (size_t)PW * 16;
                const float *src = flat + (size_t)(iy - iy0) * W * 16;
                for (int ix = 0; ix < W; ix++) store16(dst + (size_t)ix * 16, load16(src + (size_t)ix * 16));
            }
        }
        float bb[16] = {0};
        for (int c = 0; c < n; c++) {
            for (int t = 0; t < T; t++) wv[t * 16 + c] = w[(size_t)(c0 + c) * T + t];
            bb[c] = bias ? bias[c0 + c] : 0.0f;
        }
        for (int c = n; c < 16; c++) for (int t = 0; t < T; t++) wv[t * 16 + c] = 0.0f;
        const kiln_v16 bv = load16(bb);
        const size_t step = (size_t)SW * 16;
        for (int oy = oy_begin; oy < oy_end; oy++) {
            const float *row0 = xp + (size_t)(oy * SH - r_begin) * rowv;
            float *tile = flat + (size_t)(oy - oy_begin) * OW * 16;
            int ox = 0;
            for (; ox + 4 <= OW; ox += 4) {
                kiln_v16 a0 = bv, a1 = bv, a2 = bv, a3 = bv;
                for (int ky = 0; ky < KH; ky++) {
                    const float *rk = row0 + (size_t)ky * DH * rowv + (size_t)ox * step;
                    for (int kx = 0; kx < KW; kx++) {
                        const kiln_v16 wt = load16(wv + (ky * KW + kx) * 16);
                        const float *p = rk + (size_t)kx * DW * 16;
                        a0 += wt * load16(p);
                        a1 += wt * load16(p + step);
                        a2 += wt * load16(p + 2 * step);
                        a3 += wt * load16(p + 3 * step);
                    }
                }
                store16(tile + (size_t)ox * 16, a0);
                store16(tile + (size_t)(ox + 1) * 16, a1);
                store16(tile + (size_t)(ox + 2) * 16, a2);
                store16(tile + (size_t)(ox + 3) * 16, a3);
            }
            for (; ox < OW; ox++) {
                kiln_v16 a0 = bv;
                for (int ky = 0; ky < KH; ky++) {
                    const float *rk = row0 + (size_t)ky * DH * rowv + (size_t)ox * step;
                    for (int kx = 0; kx < KW; kx++) a0 += load16(wv + (ky * KW + kx) * 16) * load16(rk + (size_t)kx * DW * 16);
                }
                store16(tile + (size_t)ox * 16, a0);
            }
        }
        if (!residual && act != KILN_ACT_NONE)
            for (int q = 0; q < out_count; q++) store16(flat + (size_t)q * 16, depthwise_act(load16(flat + (size_t)q * 16), act, alpha, lo, hi));
        float *yb = y + (size_t)c0 * OH * OW + (size_t)oy_begin * OW;
        depthwise_interleave(yb, (size_t)OH * OW, n, out_count, flat, 1);
        if (residual) {
            for (int c = 0; c < n; c++) {
                float *yc = yb + (size_t)c * OH * OW;
                const float *rc = residual + (size_t)(c0 + c) * OH * OW + (size_t)oy_begin * OW;
                int q = 0;
                for (; q + 16 <= out_count; q += 16) store16(yc + q, depthwise_act(load16(yc + q) + load16(rc + q), act, alpha, lo, hi));
                for (; q < out_count; q++) yc[q] = apply_act(yc[q] + rc[q], act, alpha, lo, hi);
            }
        }
    }
}

// Padded rows [r_begin, r_end) of one plane x [H, W] in the phased, zero-padded form (row r
// at xp's row r − r_begin). Only the values of x are written: the zeros around them are the
// same for every plane, written once by the caller (memset of the rows' SW·L floats each).
static void depthwise_pad(const float *x, int x_row0, kiln_conv_geometry g, int r_begin, int r_end, float *xp) {
    KILN_GEOMETRY_LOCALS(g);
    const int L = depthwise_row_length(g);
    for (int r = r_begin; r < r_end; r++) {
        float *row = xp + (size_t)(r - r_begin) * SW * L;
        const int iy = r - PH;
        if (iy < 0 || iy >= H) continue;
        const float *src = x + (size_t)(iy - x_row0) * W;
        if (SW == 1) {
            float *dst = row + PW;
            for (int j = 0; j < W; j++) dst[j] = src[j];
            continue;
        }
        for (int ph = 0; ph < SW; ph++) {
            float *dst = row + (size_t)ph * L;
            // Columns j·SW + ph − PW inside the row for j in [lo, hi); zeros around them.
            int lo = (PW - ph + SW - 1) / SW, hi = (W - 1 + PW - ph) / SW + 1;
            if (lo < 0) lo = 0;
            if (hi > L) hi = L;
            if (hi < lo) hi = lo;
            int j = lo;
            if (SW == 2) {
                // Sixteen at a time: the even lanes of 32 consecutive inputs (all inside the row).
                for (; j + 16 <= hi && (j + 15) * 2 + ph - PW + 1 < W; j += 16) {
                    const float *at = src + (j * 2 + ph - PW);
                    const kiln_v16 a = load16(at), b = load16(at + 16);
                    store16(dst + j, __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
                }
                // The rest (fewer than 16): the phase's last 16 inputs of the row, the last at
                // `end`, from two loads that stay inside the row; those outputs overlap ones
                // already written, with the same values.
                const int end = (W - 1 - ph + PW) % 2 ? W - 2 : W - 1;
                if (j < hi && end >= 30) {
                    const kiln_v16 a = load16(src + end - 30), b = load16(src + end - 15);
                    store16(dst + (end - 30 - ph + PW) / 2,
                            __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 17, 19, 21, 23, 25, 27, 29, 31));
                    j = hi;
                }
            }
            for (; j < hi; j++) dst[j] = src[j * SW + ph - PW];
        }
    }
}

// R rows (R ≤ 4, a constant once inlined) of 16 outputs: acc[r] += Σ_t w[t] · base[r·rs + off[t] …].
static inline __attribute__((always_inline)) void depthwise_taps(const float *base, const int *off, const float *w, int T,
                                                                  size_t rs, int R, kiln_v16 acc[4]) {
    for (int t = 0; t < T; t++) {
        const kiln_v16 wt = splat16(w[t]);
        const float *p = base + off[t];
        acc[0] += load16(p) * wt;
        if (R > 1) acc[1] += load16(p + rs) * wt;
        if (R > 2) acc[2] += load16(p + 2 * rs) * wt;
        if (R > 3) acc[3] += load16(p + 3 * rs) * wt;
    }
}

// As conv_depthwise, with the input planes x_plane floats apart and holding the rows from
// x_row0 on (only the rows the output rows [oy_begin, oy_end) read need to be there): a band
// of an input computed just before, as the fused 1×1 → depthwise step does.
static void conv_depthwise_rows(const float *x, size_t x_plane, int x_row0, kiln_conv_geometry g, const float *w, int m_begin, int m_end,
                                int oy_begin, int oy_end, const float *bias, const float *residual, kiln_act a, float *scratch, float *y) {
    if (depthwise_by_channels(g)) {
        conv_depthwise_channels(x, x_plane, x_row0, g, w, m_begin, m_end, oy_begin, oy_end, bias, residual, a, scratch, y);
        return;
    }
    KILN_GEOMETRY_LOCALS(g);
    KILN_ACT_LOCALS(a);
    const int mult = M / C, L = depthwise_row_length(g), T = KH * KW;
    const size_t row = (size_t)SW * L;  // floats per padded row
    const size_t rs = (size_t)SH * row; // between the inputs of consecutive output rows
    // Where tap t starts for output (0, 0): its padded row, its phase, its shift in the phase.
    int off[KILN_DEPTHWISE_MAX_TAPS];
    for (int ky = 0, t = 0; ky < KH; ky++)
        for (int kx = 0; kx < KW; kx++, t++) off[t] = (int)((size_t)ky * DH * row) + (kx * DW) % SW * L + (kx * DW) / SW;
    if (oy_end <= oy_begin) return;
    // The padded rows the output rows read.
    const int r_begin = oy_begin * SH, r_end = (oy_end - 1) * SH + (KH - 1) * DH + 1;
    int padded = -1;
    memset(scratch, 0, sizeof(float) * (size_t)(r_end - r_begin) * row);
    for (int m = m_begin; m < m_end; m++) {
        const int c = m / mult;
        if (c != padded) {
            depthwise_pad(x + (size_t)c * x_plane, x_row0, g, r_begin, r_end, scratch);
            padded = c;
        }
        const float *wm = w + (size_t)m * T;
        const float b = bias ? bias[m] : 0.0f;
        float *ym = y + (size_t)m * OH * OW;
        const float *rm = residual ? residual + (size_t)m * OH * OW : NULL;
        for (int oy = oy_begin; oy < oy_end; oy += 4) {
            const int R = oy_end - oy < 4 ? oy_end - oy : 4;
            for (int ox = 0; ox < OW; ox += 16) {
                kiln_v16 acc[4] = {splat16(b), splat16(b), splat16(b), splat16(b)};
                const float *base = scratch + (size_t)(oy - oy_begin) * rs + ox;
                if (R == 4) depthwise_taps(base, off, wm, T, rs, 4, acc);
                else for (int r = 0; r < R; r++) depthwise_taps(base + r * rs, off, wm, T, rs, 1, &acc[r]);
                const int n = OW - ox < 16 ? OW - ox : 16;
                for (int r = 0; r < R; r++) {
                    float *yo = ym + (size_t)(oy + r) * OW + ox;
                    kiln_v16 v = acc[r];
                    if (n == 16) {
                        if (rm) v += load16(rm + (size_t)(oy + r) * OW + ox);
                        store16(yo, depthwise_act(v, act, alpha, lo, hi));
                    } else {
                        float tmp[16] = {0};
                        if (rm) {
                            memcpy(tmp, rm + (size_t)(oy + r) * OW + ox, sizeof(float) * n);
                            v += load16(tmp);
                        }
                        store16(tmp, depthwise_act(v, act, alpha, lo, hi));
                        memcpy(yo, tmp, sizeof(float) * n);
                    }
                }
            }
        }
    }
}

// Output channels [m_begin, m_end) and rows [oy_begin, oy_end) of one image y [M, OH, OW];
// w [M, KH·KW]; scratch of depthwise_scratch(g) floats. bias and residual [M, OH, OW] may be
// NULL.
static void conv_depthwise(const float *x, kiln_conv_geometry g, const float *w, int m_begin, int m_end, int oy_begin, int oy_end,
                           const float *bias, const float *residual, kiln_act a, float *scratch, float *y) {
    conv_depthwise_rows(x, (size_t)g.H * g.W, 0, g, w, m_begin, m_end, oy_begin, oy_end, bias, residual, a, scratch, y);
}
