// The optimizer update.

static void sgd(const float *p, const float *g, const float *v, size_t n, float lr, float momentum, float wd, int nesterov,
              float *p_next, float *v_next) {
    for (size_t i = 0; i < n; i++) {
        const float gi = g[i] + wd * p[i];
        const float vi = momentum * v[i] + gi;
        v_next[i] = vi;
        p_next[i] = p[i] - lr * (nesterov ? gi + momentum * vi : vi);
    }
}
