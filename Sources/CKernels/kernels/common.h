// What every kernel family shares: the level this copy is compiled for, the public types,
// the activation rule of the epilogues and a generic 16-float vector.
//
// The family files in this folder are compiled once per instruction-set level, each time
// into one translation unit (Sources/CKernelsPortable, CKernelsAVX2, CKernelsAVX512 include
// kernels.c with KILN_LEVEL set and their own -march). Every function here is static; the
// level's table (table.c) is the only symbol each copy exports, and dispatch.c calls through
// the table chosen at start-up.
#ifndef KILN_KERNELS_COMMON_H
#define KILN_KERNELS_COMMON_H

#include "../include/kiln_kernel_list.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define KILN_LEVEL_PORTABLE 0
#define KILN_LEVEL_AVX2 1
#define KILN_LEVEL_AVX512 2
#define KILN_STRINGIFY2(x) #x
#define KILN_STRINGIFY(x) KILN_STRINGIFY2(x)

#ifndef KILN_LEVEL
#error "KILN_LEVEL must be set by the including level (CKernelsPortable, CKernelsAVX2, CKernelsAVX512)"
#endif

// The vector kernels (Winograd, the packed GEMM, the shifted weight gradient) at AVX2 and
// AVX-512; the portable level runs their scalar forms.
#if KILN_LEVEL >= KILN_LEVEL_AVX2
#define KILN_SIMD 1
#include "simd.h"
#endif

// The fields of a kiln_conv_geometry as local constants, so kernels read as the formulas do.
#define KILN_GEOMETRY_LOCALS(g)                                                                              \
    const int C = (g).C, H = (g).H, W = (g).W, M = (g).M, OH = (g).OH, OW = (g).OW, KH = (g).KH, KW = (g).KW; \
    const int SH = (g).SH, SW = (g).SW, DH = (g).DH, DW = (g).DW, PH = (g).PH, PW = (g).PW;                  \
    const int PHE = (g).PHE, PWE = (g).PWE;                                                                   \
    (void)C; (void)H; (void)W; (void)M; (void)OH; (void)OW; (void)KH; (void)KW; (void)SH; (void)SW;          \
    (void)DH; (void)DW; (void)PH; (void)PW; (void)PHE; (void)PWE

// A kiln_act's fields as the locals the activation code uses.
#define KILN_ACT_LOCALS(a)                                            \
    const int act = (a).kind;                                         \
    const float alpha = (a).alpha, lo = (a).lo, hi = (a).hi;          \
    (void)act; (void)alpha; (void)lo; (void)hi

// A generic vector of 16 floats (the compiler maps it onto the level's registers: one zmm,
// two ymm or four xmm), for kernels whose plain loops the compiler does not vectorise well.
typedef float kiln_v16 __attribute__((vector_size(64)));
typedef int kiln_i16 __attribute__((vector_size(64)));

static inline kiln_v16 load16(const float *p) {
    kiln_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void store16(float *p, kiln_v16 v) { memcpy(p, &v, sizeof v); }

// The activation rule on 16 values at once (every level).
static inline kiln_v16 act16(kiln_v16 v, int act, float alpha, float lo, float hi);

// Vector math on the generic vector (every level): exp, erf and the activations built on them.
// Polynomial coefficients fitted for Kiln by least squares (relative error, Chebyshev-spaced
// points) against the C library's erf/erfc in double precision: erf(x) = x·P(x²) for
// |x| < 1, erfc(a) = exp(−a²)·R(1/a) for a ≥ 1. Max error measured: 2.4 ulp (erf), 7e-7
// relative (erfc).
static inline kiln_v16 splat16(float a) { return (kiln_v16){0} + a; }
static inline kiln_v16 select16(kiln_i16 m, kiln_v16 a, kiln_v16 b) {
    return (kiln_v16)(((kiln_i16)a & m) | ((kiln_i16)b & ~m));
}
static inline kiln_v16 abs16(kiln_v16 x) { return (kiln_v16)((kiln_i16)x & 0x7fffffff); }
static inline kiln_v16 copysign16(kiln_v16 magnitude, kiln_v16 sign) {
    return (kiln_v16)(((kiln_i16)magnitude & 0x7fffffff) | ((kiln_i16)sign & (int)0x80000000));
}

// e^r for |r| ≤ ln 2 / 2: the Taylor series to r⁷ (error < 6e-9).
static inline kiln_v16 exp_series16(kiln_v16 r) {
    kiln_v16 p = splat16(1.0f / 5040.0f);
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    return p * r + 1.0f;
}

// e^x: x = n·ln 2 + r with |r| ≤ ln 2 / 2, e^r by its series, 2^n applied as two factors so
// that results down to the subnormals and up to overflow are right; NaN stays NaN.
static inline kiln_v16 exp16(kiln_v16 x) {
    x = select16(x < -104.0f, splat16(-104.0f), x);
    x = select16(x > 89.0f, splat16(89.0f), x);
    const float magic = 12582912.0f;  // 1.5 · 2^23: adding it rounds to an integer
    const kiln_v16 n = (x * 1.44269504088896341f + magic) - magic;
    const kiln_v16 r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
    const kiln_v16 p = exp_series16(r);
    const kiln_i16 ni = __builtin_convertvector(n, kiln_i16);
    const kiln_i16 n1 = ni >> 1, n2 = ni - n1;
    return p * (kiln_v16)((n1 + 127) << 23) * (kiln_v16)((n2 + 127) << 23);
}

// erf(z) and 1 + erf(z) (the latter without cancellation for negative z: erfc(|z|)).
// erf(z) / z for |z| < 1, as P(z²).
static inline kiln_v16 erf_series16(kiln_v16 s) {
    kiln_v16 p = splat16(7.898066542111337e-05f);
    p = p * s - 0.0008024311973713338f;
    p = p * s + 0.005190048832446337f;
    p = p * s - 0.026854805648326874f;
    p = p * s + 0.11283612251281738f;
    p = p * s - 0.3761262893676758f;
    return p * s + 1.128379225730896f;
}
// erfc(a)·e^(a²) for a ≥ 1, as R(u), u = 1/a.
static inline kiln_v16 erfc_tail16(kiln_v16 u) {
    kiln_v16 q = splat16(0.032063789665699005f);
    q = q * u - 0.18718473613262177f;
    q = q * u + 0.45619118213653564f;
    q = q * u - 0.5614756345748901f;
    q = q * u + 0.2593049108982086f;
    q = q * u + 0.2187761664390564f;
    q = q * u - 0.37169697880744934f;
    q = q * u + 0.01960456557571888f;
    q = q * u + 0.5618856549263f;
    return q * u + 0.0001146724316640757f;
}

static inline void erf16(kiln_v16 z, kiln_v16 *erf, kiln_v16 *one_plus) {
    const kiln_v16 a = abs16(z), s = z * z;
    const kiln_v16 small = z * erf_series16(s);
    const kiln_v16 q = erfc_tail16(1.0f / select16(a < 1.0f, splat16(1.0f), a));
    const kiln_v16 c = exp16(-s) * q;  // erfc(|z|)
    const kiln_i16 is_small = a < 1.0f;
    *erf = select16(is_small, small, copysign16(1.0f - c, z));
    *one_plus = select16(is_small, 1.0f + small, select16(z > 0.0f, 2.0f - c, c));
}

// GELU, 0.5·x·(1 + erf(z)) with z = x/√2: erf16's two branches (the series below |z| = 1,
// erfc(|z|) = e^(−z²)·q(1/|z|) above), with what GELU lets go — the final product by x
// carries a NaN, so the clamps need not keep one; e^(−z²) is scaled by one power of two,
// z² clamped to 88 so that 2^n stays normal or becomes exactly 0 (n = −127, below 1.2e-38:
// then GELU(−∞) is −∞·0, NaN, as onnxruntime has it) — 7 % faster than through erf16.
static inline kiln_v16 gelu16(kiln_v16 x) {
    const kiln_v16 z = x * 0.70710678118654752f, a = abs16(z), s = z * z;
    const kiln_v16 q = erfc_tail16(1.0f / __builtin_elementwise_max(a, splat16(1.0f)));
    // e^(−s), s in [0, 88]: −s = n·ln 2 + r, exp16's series, 2^n in one factor.
    const kiln_v16 t = -__builtin_elementwise_min(s, splat16(88.0f));
    const float magic = 12582912.0f;
    const kiln_v16 n = (t * 1.44269504088896341f + magic) - magic;
    const kiln_v16 r = (t - n * 0.693145751953125f) - n * 1.428606765330187e-06f;
    const kiln_v16 c = exp_series16(r) * (kiln_v16)((__builtin_convertvector(n, kiln_i16) + 127) << 23) * q;  // erfc(|z|)
    const kiln_v16 one_plus = select16(a < 1.0f, 1.0f + z * erf_series16(s), select16(z > 0.0f, 2.0f - c, c));
    return 0.5f * x * one_plus;
}
// The tanh form: 0.5·x·(1 + tanh(t)) = x / (1 + e^(−2t)), t = √(2/π)·(x + 0.044715·x³).
static inline kiln_v16 gelu_tanh16(kiln_v16 x) {
    const kiln_v16 t = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return x / (1.0f + exp16(-2.0f * t));
}
static inline kiln_v16 sigmoid16(kiln_v16 x) { return 1.0f / (1.0f + exp16(-x)); }

static inline float gelu1(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f)); }
static inline float gelu_tanh1(float x) {
    return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
}

static inline float apply_act(float v, int act, float alpha, float lo, float hi) {
    switch (act) {
    case KILN_ACT_RELU: return v < 0.0f ? 0.0f : v;  // NaN stays NaN, as ONNX's Relu
    case KILN_ACT_LEAKY_RELU: return v >= 0.0f ? v : alpha * v;
    case KILN_ACT_CLIP: return v < lo ? lo : (v > hi ? hi : v);
    case KILN_ACT_SIGMOID: return 1.0f / (1.0f + expf(-v));
    case KILN_ACT_HARDSWISH: {
        float t = v / 6.0f + 0.5f;
        t = t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
        return v * t;
    }
    case KILN_ACT_GELU: return gelu1(v);
    case KILN_ACT_GELU_TANH: return gelu_tanh1(v);
    case KILN_ACT_ERF: return erff(v);
    case KILN_ACT_HARD_SIGMOID: {
        const float t = alpha * v + lo;  // lo holds HardSigmoid's beta
        return t != t ? t : (t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t));
    }
    case KILN_ACT_SQRT: return sqrtf(v);
    case KILN_ACT_TANH: return tanhf(v);
    case KILN_ACT_EXP: return expf(v);
    case KILN_ACT_LOG: return logf(v);
    case KILN_ACT_ABS: return fabsf(v);
    case KILN_ACT_NEG: return -v;
    case KILN_ACT_RECIPROCAL: return 1.0f / v;
    case KILN_ACT_ELU: return v >= 0.0f || v != v ? v : alpha * expm1f(v);
    case KILN_ACT_SOFTPLUS: return v > 20.0f ? v : log1pf(expf(v));
    case KILN_ACT_MISH: return v * tanhf(v > 20.0f ? v : log1pf(expf(v)));
    case KILN_ACT_SWISH: return v / (1.0f + expf(-alpha * v));
    case KILN_ACT_QUANTIZE_DEQUANTIZE: {
        const float q = nearbyintf(v / alpha);  // the default rounding mode: half to even
        return alpha * (q != q ? lo : (q < lo ? lo : (q > hi ? hi : q)));
    }
    default: return v;
    }
}

static inline kiln_v16 act16(kiln_v16 v, int act, float alpha, float lo, float hi) {
    switch (act) {
    case KILN_ACT_RELU: return select16(v < 0.0f, splat16(0.0f), v);  // NaN stays NaN
    case KILN_ACT_LEAKY_RELU: return select16(v >= 0.0f, v, alpha * v);
    case KILN_ACT_CLIP: return select16(v < lo, splat16(lo), select16(v > hi, splat16(hi), v));
    case KILN_ACT_SIGMOID: return sigmoid16(v);
    case KILN_ACT_SWISH: return v / (1.0f + exp16(-alpha * v));  // SiLU when alpha is 1
    case KILN_ACT_HARDSWISH: {
        kiln_v16 t = v * (1.0f / 6.0f) + 0.5f;
        t = select16(t < 0.0f, splat16(0.0f), select16(t > 1.0f, splat16(1.0f), t));
        return v * t;
    }
    case KILN_ACT_GELU: return gelu16(v);
    case KILN_ACT_GELU_TANH: return gelu_tanh16(v);
    case KILN_ACT_ERF: {
        kiln_v16 e, one_plus;
        erf16(v, &e, &one_plus);
        return e;
    }
    case KILN_ACT_HARD_SIGMOID: {
        const kiln_v16 t = alpha * v + lo;
        return select16(t < 0.0f, splat16(0.0f), select16(t > 1.0f, splat16(1.0f), t));
    }
    case KILN_ACT_EXP: return exp16(v);
    case KILN_ACT_ABS: return abs16(v);
    case KILN_ACT_NEG: return -v;
    case KILN_ACT_RECIPROCAL: return 1.0f / v;
    case KILN_ACT_QUANTIZE_DEQUANTIZE: {
        const kiln_v16 q = __builtin_elementwise_roundeven(v / alpha);
        return alpha * select16(q == q, select16(q < lo, splat16(lo), select16(q > hi, splat16(hi), q)), splat16(lo));
    }
    case KILN_ACT_NONE: return v;
    default:
        // The rest lane by lane on the C library's functions.
        for (int j = 0; j < 16; j++) v[j] = apply_act(v[j], act, alpha, lo, hi);
        return v;
    }
}

#if KILN_SIMD
// The activation on v (the first n lanes are the ones kept).
static inline v16 activate16(v16 v, int n, int act, float alpha, float lo, float hi) {
    (void)n;
    // max returns its second operand when either is NaN: zero first keeps a NaN.
    if (act == KILN_ACT_RELU) return v16_max(v16_zero(), v);
    if (act == KILN_ACT_NONE) return v;
    // Clip (ReLU6) and HardSwish in registers, v the second operand of min and max so that
    // a NaN stays NaN.
    if (act == KILN_ACT_CLIP) return v16_min(v16_set1(hi), v16_max(v16_set1(lo), v));
    if (act == KILN_ACT_HARDSWISH) {
        const v16 t = v16_fmadd(v, v16_set1(1.0f / 6.0f), v16_set1(0.5f));
        return v16_mul(v, v16_min(v16_set1(1.0f), v16_max(v16_zero(), t)));
    }
    if (act == KILN_ACT_QUANTIZE_DEQUANTIZE) {
        // v16_max(q, lo) is lo where q is NaN.
        const v16 q = v16_round_even(v16_div(v, v16_set1(alpha)));
        return v16_mul(v16_set1(alpha), v16_min(v16_set1(hi), v16_max(q, v16_set1(lo))));
    }
    kiln_v16 g;
    memcpy(&g, &v, sizeof g);
    g = act16(g, act, alpha, lo, hi);
    memcpy(&v, &g, sizeof g);
    return v;
}
#endif


#endif
