// Elementwise kernels, fused chains, index maps and the ReLU gradient.

static void gather_map(const float *x, const int *map, size_t n, float fill, float *y) {
    for (size_t k = 0; k < n; k++) y[k] = map[k] >= 0 ? x[map[k]] : fill;
}

static void gather_runs(const float *x, const int *map, size_t runs, size_t len, float fill, float *y) {
    for (size_t k = 0; k < runs; k++, y += len) {
        if (map[k] >= 0) {
            memcpy(y, x + map[k], sizeof(float) * len);
        } else {
            for (size_t j = 0; j < len; j++) y[j] = fill;
        }
    }
}

static void binary(const float *a, const float *b, float *y, size_t n, int op, size_t b_period, size_t inner) {
    // b's value changes every `inner` elements and repeats every `period` of those: runs of
    // one b value (inner > 1), or runs where b is read in order (inner = 1); each run one
    // vectorisable loop.
#define KILN_BINARY_LOOPS(A, B)                                                      \
    switch (op) {                                                                    \
    case 0: for (size_t j = 0; j < len; j++) yr[j] = (A) + (B); break;               \
    case 1: for (size_t j = 0; j < len; j++) yr[j] = (A) - (B); break;               \
    case 2: for (size_t j = 0; j < len; j++) yr[j] = (A) * (B); break;               \
    default: for (size_t j = 0; j < len; j++) yr[j] = (A) / (B); break;              \
    }
    if (b_period == 0) {  // same shape
        const size_t len = n;
        const float *ar = a, *br = b;
        float *yr = y;
        KILN_BINARY_LOOPS(ar[j], br[j])
        return;
    }
    if (b_period == 1) {  // a scalar
        const size_t len = n;
        const float *ar = a, bv = b[0];
        float *yr = y;
        KILN_BINARY_LOOPS(ar[j], bv)
        return;
    }
    if (inner == 1) {
        for (size_t i0 = 0; i0 < n; i0 += b_period) {
            const size_t len = n - i0 < b_period ? n - i0 : b_period;
            const float *ar = a + i0, *br = b;
            float *yr = y + i0;
            KILN_BINARY_LOOPS(ar[j], br[j])
        }
        return;
    }
    for (size_t i0 = 0, blk = 0; i0 < n; i0 += inner, blk++) {
        const size_t len = n - i0 < inner ? n - i0 : inner;
        const float *ar = a + i0, bv = b[blk % b_period];
        float *yr = y + i0;
        KILN_BINARY_LOOPS(ar[j], bv)
    }
#undef KILN_BINARY_LOOPS
}

static void scale_shift(const float *x, float *y, int C, int P, const float *scale, const float *shift) {
    for (int c = 0; c < C; c++) {
        const float s = scale[c], t = shift[c];
        const float *xc = x + (size_t)c * P;
        float *yc = y + (size_t)c * P;
        for (int p = 0; p < P; p++) yc[p] = xc[p] * s + t;
    }
}

static void softmax_rows(const float *x, float *y, int rows, int n, int log_softmax) {
    // Three passes over a row: the maximum, e^(x − max) (stored, and summed in 16 lanes), the
    // scaling; sixteen values at a time, the tail through a padded copy.
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        // The maximum (NaN wins: it then fills the row, as e^NaN does).
        kiln_v16 m16 = splat16(-INFINITY);
        int i = 0;
        for (; i + 16 <= n; i += 16) {
            const kiln_v16 v = load16(xr + i);
            m16 = select16((v > m16) | (v != v), v, m16);
        }
        float mx = -INFINITY;
        for (int j = 0; j < 16; j++) mx = m16[j] > mx || m16[j] != m16[j] ? m16[j] : mx;
        for (; i < n; i++) mx = xr[i] > mx || xr[i] != xr[i] ? xr[i] : mx;
        kiln_v16 sum = splat16(0.0f);
        i = 0;
        for (; i + 16 <= n; i += 16) {
            const kiln_v16 e = exp16(load16(xr + i) - mx);
            if (!log_softmax) store16(yr + i, e);
            sum += e;
        }
        float tail = 0.0f;
        if (i < n) {
            float tmp[16];
            for (int j = 0; j < 16; j++) tmp[j] = i + j < n ? xr[i + j] - mx : -INFINITY;
            store16(tmp, exp16(load16(tmp)));
            for (int j = 0; i + j < n; j++) {
                if (!log_softmax) yr[i + j] = tmp[j];
                tail += tmp[j];
            }
        }
        float total = tail;
        for (int j = 0; j < 16; j++) total += sum[j];
        if (log_softmax) {
            const float l = logf(total);
            for (int j = 0; j < n; j++) yr[j] = xr[j] - mx - l;
        } else {
            const float inv = 1.0f / total;
            for (int j = 0; j < n; j++) yr[j] *= inv;
        }
    }
}

static void elementwise_chain_range(const float *x, float *y, size_t begin, size_t end, const kiln_ew_op *ops, int count) {
    enum { BLOCK = 2048 };
    for (size_t b0 = begin; b0 < end; b0 += BLOCK) {
        const size_t len = end - b0 < BLOCK ? end - b0 : BLOCK;
        float *v = y + b0;
        if (v != x + b0) memcpy(v, x + b0, sizeof(float) * len);
        for (int k = 0; k < count; k++) {
            const kiln_ew_op *op = &ops[k];
            if (op->kind >= 10) {
                activation(v, v, len, (kiln_act){op->kind - 10, op->alpha, op->lo, op->hi});
                continue;
            }
            // v[t] = v[t] op O (or O op v[t] when swapped) for t < run: O an array operand
            // (O(t) = o[t]) or one value.
#define KILN_CHAIN_RUN(w, run, O)                                                           \
    switch (op->kind * 2 + (op->swap ? 1 : 0)) {                                              \
    case 0: case 1: for (size_t t = 0; t < (run); t++) (w)[t] = (w)[t] + (O); break;          \
    case 2: for (size_t t = 0; t < (run); t++) (w)[t] = (w)[t] - (O); break;                  \
    case 3: for (size_t t = 0; t < (run); t++) (w)[t] = (O) - (w)[t]; break;                  \
    case 4: case 5: for (size_t t = 0; t < (run); t++) (w)[t] = (w)[t] * (O); break;          \
    case 6: for (size_t t = 0; t < (run); t++) (w)[t] = (w)[t] / (O); break;                  \
    default: for (size_t t = 0; t < (run); t++) (w)[t] = (O) / (w)[t]; break;                 \
    }
            if (op->period == 0) {
                // A same-shape operand: one vectorisable loop per operation.
                const float *o = op->operand + b0;
                KILN_CHAIN_RUN(v, len, o[t])
                continue;
            }
            // A broadcast operand, in runs: one value for `inner` elements, or (inner = 1) values
            // read in order up to the end of the period; one vectorisable loop per run.
            const size_t period = (size_t)op->period, inner = (size_t)op->inner;
            for (size_t j = 0; j < len;) {
                const size_t i = b0 + j;
                float *w = v + j;
                if (inner == 1 && period > 1) {
                    const size_t start = i % period, run = period - start < len - j ? period - start : len - j;
                    const float *o = op->operand + start;
                    KILN_CHAIN_RUN(w, run, o[t])
                    j += run;
                } else {
                    const size_t step = period == 1 ? len - j : inner - i % inner;
                    const size_t run = step < len - j ? step : len - j;
                    const float o = op->operand[period == 1 ? 0 : (i / inner) % period];
                    KILN_CHAIN_RUN(w, run, o)
                    j += run;
                }
            }
#undef KILN_CHAIN_RUN
        }
    }
}


static void relu_grad(const float *dy, const float *y, size_t n, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

static void relu_grad_sum(const float *a, const float *b, const float *y, size_t n, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? a[i] + b[i] : 0.0f;
}

static void scatter_add_map(const float *dy, const int *map, size_t n, float *dx) {
    for (size_t k = 0; k < n; k++) if (map[k] >= 0) dx[map[k]] += dy[k];
}
