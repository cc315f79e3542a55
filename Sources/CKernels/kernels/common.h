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
    default: return v;
    }
}

#if KILN_SIMD
// The activation on the first n lanes of v (ReLU vectorised, the others lane by lane).
static inline v16 activate16(v16 v, int n, int act, float alpha, float lo, float hi) {
    // max returns its second operand when either is NaN: zero first keeps a NaN.
    if (act == KILN_ACT_RELU) return v16_max(v16_zero(), v);
    if (act == KILN_ACT_NONE) return v;
    float tmp[16];
    v16_store(tmp, v);
    for (int j = 0; j < n; j++) tmp[j] = apply_act(tmp[j], act, alpha, lo, hi);
    return v16_load(tmp);
}
#endif

// A generic vector of 16 floats (the compiler maps it onto the level's registers: one zmm,
// two ymm or four xmm), for kernels whose plain loops the compiler does not vectorise well.
typedef float kiln_v16 __attribute__((vector_size(64)));
typedef int kiln_i16 __attribute__((vector_size(64)));

static inline kiln_v16 load16(const float *p) {
    kiln_v16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

#endif
