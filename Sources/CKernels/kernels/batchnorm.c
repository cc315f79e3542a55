// Training-mode BatchNormalization, forward and backward, and channel sums.


// Σ of channel c of x [N, C, inner]: f32 within an image's plane, f64 across images.
// Reductions over a plane with 32 independent partial sums (two 16-float vectors): a single
// accumulator would make every add wait for the previous one (without -ffast-math the
// compiler may not reorder the sum itself).
static inline float hsum16(kiln_v16 v) {
    float s = 0;
    for (int i = 0; i < 16; i++) s += v[i];
    return s;
}

static float plane_sum(const float *p, int n) {
    kiln_v16 a = {0}, b = {0};
    int k = 0;
    for (; k + 32 <= n; k += 32) { a += load16(p + k); b += load16(p + k + 16); }
    float t = hsum16(a + b);
    for (; k < n; k++) t += p[k];
    return t;
}

static float plane_centered_squares(const float *p, int n, float mu) {
    kiln_v16 a = {0}, b = {0};
    int k = 0;
    for (; k + 32 <= n; k += 32) {
        const kiln_v16 d0 = load16(p + k) - mu, d1 = load16(p + k + 16) - mu;
        a += d0 * d0;
        b += d1 * d1;
    }
    float t = hsum16(a + b);
    for (; k < n; k++) { const float d = p[k] - mu; t += d * d; }
    return t;
}

// Σ g and Σ g·(p − mu) over a plane, with g masked by r > 0 when r is given.
static void plane_grad_sums(const float *g, const float *p, const float *r, int n, float mu, float *sg, float *sgx) {
    kiln_v16 a = {0}, b = {0};
    const kiln_v16 zero = {0};
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        kiln_v16 gk = load16(g + k);
        if (r) {
            const kiln_i16 keep = load16(r + k) > zero;  // lanes of −1 where r > 0, else 0
            gk = (kiln_v16)(keep & (kiln_i16)gk);
        }
        a += gk;
        b += gk * (load16(p + k) - mu);
    }
    float t = hsum16(a), u = hsum16(b);
    for (; k < n; k++) {
        const float gk = r ? g[k] * (float)(r[k] > 0.0f) : g[k];
        t += gk;
        u += gk * (p[k] - mu);
    }
    *sg = t;
    *sgx = u;
}

static double channel_sum(const float *x, int N, int C, int inner, int c) {
    double s = 0;
    for (int n = 0; n < N; n++) s += plane_sum(x + ((size_t)n * C + c) * inner, inner);
    return s;
}

static void channel_sums(const float *x, int N, int C, int inner, int c_begin, int c_end, float *sums) {
    for (int c = c_begin; c < c_end; c++) sums[c] = (float)channel_sum(x, N, C, inner, c);
}

// Channel c of y = x·a + b (ReLU'd when relu ≠ 0).
static void normalise_channel(const float *x, int N, int C, int inner, int c, float a, float b, int relu, float *y) {
    for (int n = 0; n < N; n++) {
        const float *p = x + ((size_t)n * C + c) * inner;
        float *o = y + ((size_t)n * C + c) * inner;
        if (relu) {
            for (int k = 0; k < inner; k++) { const float v = p[k] * a + b; o[k] = v < 0.0f ? 0.0f : v; }
        } else {
            for (int k = 0; k < inner; k++) o[k] = p[k] * a + b;
        }
    }
}

// Channel c of BatchNorm's dx over m values from Σ dy and Σ dy·x̂ (dy masked by relu_out > 0).
static void channel_dx(const float *dy, const float *x, int N, int C, int inner, int c, float scale, float mu, float inv,
                       const float *relu_out, float m, float sumDy, float sumDyXhat, float *dx) {
    const float k0 = scale * inv / m;
    for (int n = 0; n < N; n++) {
        const float *g = dy + ((size_t)n * C + c) * inner, *p = x + ((size_t)n * C + c) * inner;
        float *o = dx + ((size_t)n * C + c) * inner;
        if (relu_out) {
            const float *r = relu_out + ((size_t)n * C + c) * inner;
            for (int k = 0; k < inner; k++) {
                const float gk = g[k] * (float)(r[k] > 0.0f);
                o[k] = k0 * (m * gk - sumDy - (p[k] - mu) * inv * sumDyXhat);
            }
        } else {
            for (int k = 0; k < inner; k++) o[k] = k0 * (m * g[k] - sumDy - (p[k] - mu) * inv * sumDyXhat);
        }
    }
}

static void batchnorm_train(const float *x, int N, int C, int inner, const float *scale, const float *bias,
                          const float *run_mean, const float *run_var, float eps, float momentum, int relu, int c_begin, int c_end,
                          float *y, float *mean, float *invstd, float *next_mean, float *next_var) {
    const double count = (double)N * inner;
    for (int c = c_begin; c < c_end; c++) {
        const float mu = (float)(channel_sum(x, N, C, inner, c) / count);
        double q = 0;
        for (int n = 0; n < N; n++) q += plane_centered_squares(x + ((size_t)n * C + c) * inner, inner, mu);
        const double var = q / count;
        const float inv = (float)(1.0 / sqrt(var + eps));
        const float a = inv * scale[c];
        normalise_channel(x, N, C, inner, c, a, bias[c] - mu * a, relu, y);
        mean[c] = mu;
        invstd[c] = inv;
        next_mean[c] = momentum * run_mean[c] + (1 - momentum) * mu;
        const double unbiased = count > 1 ? var * count / (count - 1) : var;
        next_var[c] = (float)(momentum * run_var[c] + (1 - momentum) * unbiased);
    }
}

static void batchnorm_grad(const float *dy, const float *x, int N, int C, int inner, const float *scale, const float *mean,
                         const float *invstd, const float *relu_out, int c_begin, int c_end, float *dx, float *dscale, float *dbias) {
    const float m = (float)N * inner;
    for (int c = c_begin; c < c_end; c++) {
        const float mu = mean[c], inv = invstd[c];
        double sdy = 0, sdyx = 0;
        for (int n = 0; n < N; n++) {
            const size_t o = ((size_t)n * C + c) * inner;
            float t, u;
            plane_grad_sums(dy + o, x + o, relu_out ? relu_out + o : NULL, inner, mu, &t, &u);
            sdy += t;
            sdyx += u;
        }
        const float sumDy = (float)sdy, sumDyXhat = (float)(sdyx * inv);
        dbias[c] = sumDy;
        dscale[c] = sumDyXhat;
        channel_dx(dy, x, N, C, inner, c, scale[c], mu, inv, relu_out, m, sumDy, sumDyXhat, dx);
    }
}

// The same forward and backward in pieces, for BatchNorm synchronised across the ranks of a
// data-parallel job: each rank's partial sums (reduced across ranks by the caller), then the
// normalisation with the job's statistics. With one rank the pieces give what batchnorm_train
// and batchnorm_grad give.

// sums[c] = Σ x over channel c (center NULL), or Σ (x − center[c])², f64 across planes.
static void batchnorm_partial_sums(const float *x, int N, int C, int inner, const float *center, int c_begin, int c_end, double *sums) {
    for (int c = c_begin; c < c_end; c++) {
        if (!center) { sums[c] = channel_sum(x, N, C, inner, c); continue; }
        double q = 0;
        for (int n = 0; n < N; n++) q += plane_centered_squares(x + ((size_t)n * C + c) * inner, inner, center[c]);
        sums[c] = q;
    }
}

// y = (x − mean)·invstd·scale + bias (ReLU'd when relu ≠ 0), as batchnorm_train computes it.
static void batchnorm_apply(const float *x, int N, int C, int inner, const float *scale, const float *bias, const float *mean,
                            const float *invstd, int relu, int c_begin, int c_end, float *y) {
    for (int c = c_begin; c < c_end; c++) {
        const float a = invstd[c] * scale[c];
        normalise_channel(x, N, C, inner, c, a, bias[c] - mean[c] * a, relu, y);
    }
}

// sums[2c] = Σ dy, sums[2c + 1] = Σ dy·(x − mean[c]) over channel c (dy masked by relu_out > 0
// when given), f64 across planes.
static void batchnorm_grad_partial_sums(const float *dy, const float *x, int N, int C, int inner, const float *mean,
                                        const float *relu_out, int c_begin, int c_end, double *sums) {
    for (int c = c_begin; c < c_end; c++) {
        double sdy = 0, sdyx = 0;
        for (int n = 0; n < N; n++) {
            const size_t o = ((size_t)n * C + c) * inner;
            float t, u;
            plane_grad_sums(dy + o, x + o, relu_out ? relu_out + o : NULL, inner, mean[c], &t, &u);
            sdy += t;
            sdyx += u;
        }
        sums[2 * c] = sdy;
        sums[2 * c + 1] = sdyx;
    }
}

// dx from the job's sums (sum_dy = Σ dy, sum_dyxhat = Σ dy·x̂) over m values per channel.
static void batchnorm_grad_apply(const float *dy, const float *x, int N, int C, int inner, const float *scale, const float *mean,
                                 const float *invstd, const float *relu_out, float m, const float *sum_dy, const float *sum_dyxhat,
                                 int c_begin, int c_end, float *dx) {
    for (int c = c_begin; c < c_end; c++) {
        const float mu = mean[c], inv = invstd[c], sumDy = sum_dy[c], sumDyXhat = sum_dyxhat[c];
        channel_dx(dy, x, N, C, inner, c, scale[c], mu, inv, relu_out, m, sumDy, sumDyXhat, dx);
    }
}

// Instance and group normalisation: each of `rows` runs of cpg·inner values (one image's
// group of cpg channels, inner values each) normalised by its own statistics, then channel c
// — run r holds channels ((first + r) mod groups)·cpg … + cpg − 1 (first: the index of x's
// first run in the whole tensor) — scaled by scale[c] plus bias[c].
static void groupnorm_rows(const float *x, int rows, int first, int groups, int cpg, int inner, const float *scale, const float *bias,
                           float eps, float *y) {
    const int n = cpg * inner;
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        const float mu = plane_sum(xr, n) / (float)n;
        const float inv = 1.0f / sqrtf(plane_centered_squares(xr, n, mu) / (float)n + eps);
        for (int k = 0; k < cpg; k++) {
            const int c = ((first + r) % groups) * cpg + k;
            const float s = inv * scale[c], t = bias[c] - mu * s;
            const float *xc = xr + (size_t)k * inner;
            float *yc = yr + (size_t)k * inner;
            for (int i = 0; i < inner; i++) yc[i] = xc[i] * s + t;
        }
    }
}

// LayerNormalization over each of `rows` runs of n values: y = (x − mean)·(var + ε)^−½ ·
// scale + bias (scale and bias [n]; bias may be NULL), the statistics by the plane sums above.
static void layernorm_rows(const float *x, int rows, int n, const float *scale, const float *bias, float eps, float *y) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * n;
        float *yr = y + (size_t)r * n;
        const float mu = plane_sum(xr, n) / (float)n;
        const float inv = 1.0f / sqrtf(plane_centered_squares(xr, n, mu) / (float)n + eps);
        if (bias) {
            for (int k = 0; k < n; k++) yr[k] = (xr[k] - mu) * inv * scale[k] + bias[k];
        } else {
            for (int k = 0; k < n; k++) yr[k] = (xr[k] - mu) * inv * scale[k];
        }
    }
}
