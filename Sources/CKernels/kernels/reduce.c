// Reductions and softmax along one axis of a tensor seen as [outer, len, inner]: the axis
// (or a run of consecutive axes) of length len, inner the elements after it. inner = 1 is
// a row per output, vectorised along the row; inner > 1 vectorises across inner.

// One step of reduction `kind` (enum kiln_reduce); NaN propagates through max and min
// (once the accumulator is NaN, neither comparison replaces it).
__attribute__((always_inline)) static inline kiln_v16 reduce_step16(int kind, kiln_v16 acc, kiln_v16 v) {
    switch (kind) {
    case KILN_REDUCE_SUM_SQUARE: case KILN_REDUCE_L2: return acc + v * v;
    case KILN_REDUCE_L1: return acc + abs16(v);
    case KILN_REDUCE_MAX: return select16((v > acc) | (v != v), v, acc);
    case KILN_REDUCE_MIN: return select16((v < acc) | (v != v), v, acc);
    default: return acc + v;
    }
}

__attribute__((always_inline)) static inline float reduce_step1(int kind, float acc, float v) {
    switch (kind) {
    case KILN_REDUCE_SUM_SQUARE: case KILN_REDUCE_L2: return acc + v * v;
    case KILN_REDUCE_L1: return acc + fabsf(v);
    case KILN_REDUCE_MAX: return v > acc || v != v ? v : acc;
    case KILN_REDUCE_MIN: return v < acc || v != v ? v : acc;
    default: return acc + v;
    }
}

static inline float reduce_initial(int kind) {
    return kind == KILN_REDUCE_MAX ? -INFINITY : kind == KILN_REDUCE_MIN ? INFINITY : 0.0f;
}

static inline float reduce_finish(int kind, float acc, int len) {
    return kind == KILN_REDUCE_MEAN ? acc / (float)len : kind == KILN_REDUCE_L2 ? sqrtf(acc) : acc;
}

__attribute__((always_inline)) static inline void reduce_axis_kind(int kind, const float *x, int outer, int len, int inner, float *y) {
    const float init = reduce_initial(kind);
    if (inner == 1) {
        for (int o = 0; o < outer; o++) {
            const float *r = x + (size_t)o * len;
            kiln_v16 acc = splat16(init);
            int l = 0;
            for (; l + 16 <= len; l += 16) acc = reduce_step16(kind, acc, load16(r + l));
            float a = init;
            // Lane sums combine like the elements (the max of maxima, the sum of sums).
            for (int j = 0; j < 16; j++) a = kind == KILN_REDUCE_MAX || kind == KILN_REDUCE_MIN ? reduce_step1(kind, a, acc[j]) : a + acc[j];
            for (; l < len; l++) a = reduce_step1(kind, a, r[l]);
            y[o] = reduce_finish(kind, a, len);
        }
        return;
    }
    for (int o = 0; o < outer; o++) {
        const float *base = x + (size_t)o * len * inner;
        float *yo = y + (size_t)o * inner;
        int i = 0;
        for (; i + 16 <= inner; i += 16) {
            kiln_v16 acc = splat16(init);
            for (int l = 0; l < len; l++) acc = reduce_step16(kind, acc, load16(base + (size_t)l * inner + i));
            for (int j = 0; j < 16; j++) yo[i + j] = reduce_finish(kind, acc[j], len);
        }
        for (; i < inner; i++) {
            float a = init;
            for (int l = 0; l < len; l++) a = reduce_step1(kind, a, base[(size_t)l * inner + i]);
            yo[i] = reduce_finish(kind, a, len);
        }
    }
}

static void reduce_axis(int kind, const float *x, int outer, int len, int inner, float *y) {
    switch (kind) {  // one specialised loop per kind
    case KILN_REDUCE_MEAN: reduce_axis_kind(KILN_REDUCE_MEAN, x, outer, len, inner, y); break;
    case KILN_REDUCE_SUM_SQUARE: reduce_axis_kind(KILN_REDUCE_SUM_SQUARE, x, outer, len, inner, y); break;
    case KILN_REDUCE_L2: reduce_axis_kind(KILN_REDUCE_L2, x, outer, len, inner, y); break;
    case KILN_REDUCE_L1: reduce_axis_kind(KILN_REDUCE_L1, x, outer, len, inner, y); break;
    case KILN_REDUCE_MAX: reduce_axis_kind(KILN_REDUCE_MAX, x, outer, len, inner, y); break;
    case KILN_REDUCE_MIN: reduce_axis_kind(KILN_REDUCE_MIN, x, outer, len, inner, y); break;
    default: reduce_axis_kind(KILN_REDUCE_SUM, x, outer, len, inner, y); break;
    }
}

// Softmax (or log-softmax) along the middle axis of [outer, len, inner], inner > 1: sixteen
// columns at a time — the maximum (NaN wins), e^(x − max) stored and summed, the scaling.
static void softmax_axis(const float *x, float *y, int outer, int len, int inner, int log_softmax) {
    if (inner == 1) { softmax_rows(x, y, outer, len, log_softmax); return; }
    for (int o = 0; o < outer; o++) {
        const float *xo = x + (size_t)o * len * inner;
        float *yo = y + (size_t)o * len * inner;
        for (int i = 0; i < inner; i += 16) {
            const int w = inner - i < 16 ? inner - i : 16;
            float col[16];
            kiln_v16 m = splat16(-INFINITY), sum = splat16(0.0f);
            for (int l = 0; l < len; l++) {
                for (int j = 0; j < 16; j++) col[j] = j < w ? xo[(size_t)l * inner + i + j] : 0.0f;
                const kiln_v16 v = load16(col);
                m = select16((v > m) | (v != v), v, m);
            }
            for (int l = 0; l < len; l++) {
                for (int j = 0; j < 16; j++) col[j] = j < w ? xo[(size_t)l * inner + i + j] : 0.0f;
                const kiln_v16 e = exp16(load16(col) - m);
                sum += e;
                if (!log_softmax) { store16(col, e); for (int j = 0; j < w; j++) yo[(size_t)l * inner + i + j] = col[j]; }
            }
            float scale[16];
            for (int j = 0; j < 16; j++) scale[j] = log_softmax ? m[j] + logf(sum[j]) : 1.0f / sum[j];
            for (int l = 0; l < len; l++) {
                float *yr = yo + (size_t)l * inner + i;
                const float *xr = xo + (size_t)l * inner + i;
                if (log_softmax) { for (int j = 0; j < w; j++) yr[j] = xr[j] - scale[j]; }
                else { for (int j = 0; j < w; j++) yr[j] *= scale[j]; }
            }
        }
    }
}
