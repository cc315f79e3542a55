// im2col and its adjoint col2im: a convolution's input patches as the columns of a matrix.

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

static void im2col_rows_ld(const float *x, kiln_conv_geometry g, int r_begin, int r_end, int ld, float *col) {
    im2col_core(x, g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.DH, g.DW, g.OW, r_begin, r_end, 0, g.OH, ld, col);
}

static void im2col_rows(const float *x, kiln_conv_geometry g, int r_begin, int r_end, float *col) {
    im2col_rows_ld(x, g, r_begin, r_end, g.OH * g.OW, col);
}

static void im2col(const float *x, kiln_conv_geometry g, float *col) { im2col_rows(x, g, 0, g.C * g.KH, col); }

static void im2col_out_rows(const float *x, kiln_conv_geometry g, int oh_begin, int oh_end, float *col) {
    im2col_core(x, g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.DH, g.DW, g.OW, 0, g.C * g.KH, oh_begin, oh_end,
                (oh_end - oh_begin) * g.OW, col);
}

static void col2im_rows(const float *col, kiln_conv_geometry g, int c_begin, int c_end, float *x) {
    KILN_GEOMETRY_LOCALS(g);
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
