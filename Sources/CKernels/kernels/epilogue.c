// Epilogues (bias, residual, activation on a kernel's output) and activations.

static void activation(const float *x, float *y, size_t n, kiln_act a);

static void epilogue(float *y, int M, int P, const float *bias, const float *residual, kiln_act a) {
    KILN_ACT_LOCALS(a);
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
            for (int p = 0; p < P; p++) row[p] += b + (r ? r[p] : 0.0f);
            activation(row, row, (size_t)P, a);
        }
    }
}

static void epilogue_rows(float *y, int R, int N, const float *bias, int bias_per_row, const float *residual, kiln_act a) {
    KILN_ACT_LOCALS(a);
    for (int i = 0; i < R; i++) {
        float *row = y + (size_t)i * N;
        const float *r = residual ? residual + (size_t)i * N : NULL;
        for (int j = 0; j < N; j++) row[j] += (bias ? (bias_per_row ? bias[i] : bias[j]) : 0.0f) + (r ? r[j] : 0.0f);
        if (act != KILN_ACT_NONE) activation(row, row, (size_t)N, a);
    }
}

static void activation(const float *x, float *y, size_t n, kiln_act a) {
    KILN_ACT_LOCALS(a);
    if (act == KILN_ACT_RELU) {
        for (size_t i = 0; i < n; i++) y[i] = x[i] < 0.0f ? 0.0f : x[i];
        return;
    }
    // Sixteen at a time on the vector rule, the tail through a padded copy (the same rule, so a
    // value's result does not depend on where it lies).
    size_t i = 0;
    for (; i + 16 <= n; i += 16) store16(y + i, act16(load16(x + i), act, alpha, lo, hi));
    if (i < n) {
        float tmp[16] = {0};
        memcpy(tmp, x + i, sizeof(float) * (n - i));
        store16(tmp, act16(load16(tmp), act, alpha, lo, hi));
        memcpy(y + i, tmp, sizeof(float) * (n - i));
    }
}

static float apply_activation(float v, kiln_act a) { return apply_act(v, a.kind, a.alpha, a.lo, a.hi); }

static int has_nonfinite(const float *x, size_t n) {
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
