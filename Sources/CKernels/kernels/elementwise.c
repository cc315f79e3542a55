// Elementwise kernels, fused chains, index maps and the ReLU gradient.

static void gather_map(const float *x, const int *map, size_t n, float fill, float *y) {
    for (size_t k = 0; k < n; k++) y[k] = map[k] >= 0 ? x[map[k]] : fill;
}

static void binary(const float *a, const float *b, float *y, size_t n, int op, size_t b_period, size_t inner) {
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

static void scale_shift(const float *x, float *y, int C, int P, const float *scale, const float *shift) {
    for (int c = 0; c < C; c++) {
        const float s = scale[c], t = shift[c];
        const float *xc = x + (size_t)c * P;
        float *yc = y + (size_t)c * P;
        for (int p = 0; p < P; p++) yc[p] = xc[p] * s + t;
    }
}

static void softmax_rows(const float *x, float *y, int rows, int n, int log_softmax) {
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
            if (op->period == 0) {
                // A same-shape operand: one vectorisable loop per operation.
                const float *o = op->operand + b0;
                switch (op->kind * 2 + (op->swap ? 1 : 0)) {
                case 0: case 1: for (size_t j = 0; j < len; j++) v[j] = v[j] + o[j]; break;
                case 2: for (size_t j = 0; j < len; j++) v[j] = v[j] - o[j]; break;
                case 3: for (size_t j = 0; j < len; j++) v[j] = o[j] - v[j]; break;
                case 4: case 5: for (size_t j = 0; j < len; j++) v[j] = v[j] * o[j]; break;
                case 6: for (size_t j = 0; j < len; j++) v[j] = v[j] / o[j]; break;
                default: for (size_t j = 0; j < len; j++) v[j] = o[j] / v[j]; break;
                }
                continue;
            }
            for (size_t j = 0; j < len; j++) {
                const size_t i = b0 + j;
                const float o = op->operand[(i / op->inner) % op->period];
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


static void relu_grad(const float *dy, const float *y, size_t n, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

static void relu_grad_sum(const float *a, const float *b, const float *y, size_t n, float *dx) {
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? a[i] + b[i] : 0.0f;
}

static void scatter_add_map(const float *dy, const int *map, size_t n, float *dx) {
    for (size_t k = 0; k < n; k++) if (map[k] >= 0) dx[map[k]] += dy[k];
}
