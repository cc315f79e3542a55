// Depthwise convolution: one input channel per group (C groups, M = C·mult output channels,
// output channel m reads input channel m / mult), any kernel size, stride, dilation and
// padding. Each input plane is copied once into a zero-padded scratch plane whose rows are
// stored as SW phases (phase r holds the padded columns r, r + SW, r + 2·SW, …), so every tap
// of every stride is a contiguous run: out[oy][ox..ox+15] += w[t] · phase[ox + shift(t)].
// Sixteen outputs of four rows at a time (four independent accumulators), written once with
// bias, residual and activation. Written on the generic 16-float vector, so every level
// vectorises it with its own registers.

// Floats per phase of a padded row: the phase's columns and a vector's slack, so the last
// vector of a row reads zeros, never the next phase.
static int depthwise_row_length(kiln_conv_geometry g) {
    const int Wp = g.W + g.PW + g.PWE;
    return (Wp + g.SW - 1) / g.SW + 16;
}

static int depthwise_scratch(kiln_conv_geometry g) {
    return (g.H + g.PH + g.PHE) * g.SW * depthwise_row_length(g) + 16;
}

// Padded rows [r_begin, r_end) of one plane x [H, W] in the phased, zero-padded form (row r
// at xp's row r − r_begin).
static void depthwise_pad(const float *x, kiln_conv_geometry g, int r_begin, int r_end, float *xp) {
    KILN_GEOMETRY_LOCALS(g);
    const int L = depthwise_row_length(g);
    for (int r = r_begin; r < r_end; r++) {
        float *row = xp + (size_t)(r - r_begin) * SW * L;
        const int iy = r - PH;
        if (iy < 0 || iy >= H) {
            memset(row, 0, sizeof(float) * SW * L);
            continue;
        }
        const float *src = x + (size_t)iy * W;
        if (SW == 1) {
            memset(row, 0, sizeof(float) * PW);
            memcpy(row + PW, src, sizeof(float) * W);
            memset(row + PW + W, 0, sizeof(float) * (L - PW - W));
            continue;
        }
        for (int ph = 0; ph < SW; ph++) {
            float *dst = row + (size_t)ph * L;
            // Columns j·SW + ph − PW inside the row for j in [lo, hi); zeros around them.
            int lo = (PW - ph + SW - 1) / SW, hi = (W - 1 + PW - ph) / SW + 1;
            if (lo < 0) lo = 0;
            if (hi > L) hi = L;
            if (hi < lo) hi = lo;
            for (int j = 0; j < lo; j++) dst[j] = 0.0f;
            int j = lo;
            if (SW == 2) {
                // Sixteen at a time: the even lanes of 32 consecutive inputs (all inside the row).
                for (; j + 16 <= hi && (j + 15) * 2 + ph - PW + 1 < W; j += 16) {
                    const float *at = src + (j * 2 + ph - PW);
                    const kiln_v16 a = load16(at), b = load16(at + 16);
                    store16(dst + j, __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30));
                }
            }
            for (; j < hi; j++) dst[j] = src[j * SW + ph - PW];
            for (j = hi; j < L; j++) dst[j] = 0.0f;
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

// Output channels [m_begin, m_end) and rows [oy_begin, oy_end) of one image y [M, OH, OW];
// w [M, KH·KW]; scratch of depthwise_scratch(g) floats. bias and residual [M, OH, OW] may be
// NULL.
static void conv_depthwise(const float *x, kiln_conv_geometry g, const float *w, int m_begin, int m_end, int oy_begin, int oy_end,
                           const float *bias, const float *residual, kiln_act a, float *scratch, float *y) {
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
    for (int m = m_begin; m < m_end; m++) {
        const int c = m / mult;
        if (c != padded) {
            depthwise_pad(x + (size_t)c * H * W, g, r_begin, r_end, scratch);
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
                        store16(yo, act16(v, act, alpha, lo, hi));
                    } else {
                        float tmp[16] = {0};
                        if (rm) {
                            memcpy(tmp, rm + (size_t)(oy + r) * OW + ox, sizeof(float) * n);
                            v += load16(tmp);
                        }
                        store16(tmp, act16(v, act, alpha, lo, hi));
                        memcpy(yo, tmp, sizeof(float) * n);
                    }
                }
            }
        }
    }
}
