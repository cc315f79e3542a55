// Sixteen-float vectors for the AVX2 and AVX-512 levels: the vector kernels are written once
// against these operations. At the AVX-512 level a v16 is one zmm register and an m16 a mask
// register; at the AVX2 level a v16 is two ymm registers and an m16 a 16-bit lane mask turned
// into vmaskmov masks (masked-off lanes are not read or written at either level, so a load at
// the end of a buffer never touches memory past it). v8 is eight floats (one ymm) at both.
// Included only when KILN_SIMD is set (see isa.h).
#ifndef KILN_SIMD_H
#define KILN_SIMD_H

#include <immintrin.h>

typedef __m256 v8;

#if KILN_LEVEL >= KILN_LEVEL_AVX512

typedef __m512 v16;
typedef __mmask16 m16;
typedef __mmask8 m8;

static inline v16 v16_zero(void) { return _mm512_setzero_ps(); }
static inline v16 v16_set1(float a) { return _mm512_set1_ps(a); }
static inline v16 v16_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void v16_store(float *p, v16 v) { _mm512_storeu_ps(p, v); }
static inline v16 v16_maskz_load(m16 m, const float *p) { return _mm512_maskz_loadu_ps(m, p); }
static inline void v16_mask_store(float *p, m16 m, v16 v) { _mm512_mask_storeu_ps(p, m, v); }
static inline v16 v16_add(v16 a, v16 b) { return _mm512_add_ps(a, b); }
static inline v16 v16_sub(v16 a, v16 b) { return _mm512_sub_ps(a, b); }
static inline v16 v16_fmadd(v16 a, v16 b, v16 c) { return _mm512_fmadd_ps(a, b, c); }
// The second operand when either is NaN (x86's max rule): v16_max(0, v) keeps a NaN v.
static inline v16 v16_max(v16 a, v16 b) { return _mm512_max_ps(a, b); }
static inline v16 v16_min(v16 a, v16 b) { return _mm512_min_ps(a, b); }
static inline v16 v16_mul(v16 a, v16 b) { return _mm512_mul_ps(a, b); }
static inline v16 v16_div(v16 a, v16 b) { return _mm512_div_ps(a, b); }
// Rounded to the nearest integer, halves to even.
static inline v16 v16_round_even(v16 a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
static inline float v16_reduce_add(v16 v) { return _mm512_reduce_add_ps(v); }
// Lanes 0, 2, …, 14 and 1, 3, …, 15.
static inline v8 v16_even(v16 v) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, v));
}
static inline v8 v16_odd(v16 v) {
    const __m512i idx = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_castps512_ps256(_mm512_permutexvar_ps(idx, v));
}
// e0 o0 e1 o1 … e7 o7.
static inline v16 v16_interleave(v8 e, v8 o) {
    const __m512i mix = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    return _mm512_permutex2var_ps(_mm512_castps256_ps512(e), mix, _mm512_castps256_ps512(o));
}
static inline void v8_mask_store(float *p, m8 m, v8 v) { _mm256_mask_storeu_ps(p, m, v); }

// Rows 0..15 of a 16×16 block (r[i] = row i) transposed in registers.
static inline void v16_transpose(v16 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {
        r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
        r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
        r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
    }
    for (int i = 0; i < 4; i++) {
        t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
        t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xDD);
        t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
        t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xDD);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
        r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xDD);
        r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
        r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xDD);
    }
}

#else  // AVX2 + FMA

typedef struct { __m256 lo, hi; } v16;
typedef unsigned m16;
typedef unsigned m8;

// Lane i of the result is all ones when bit i of `bits` is set (vmaskmov's mask).
static inline __m256i mask_lanes8(unsigned bits) {
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)bits), bit), bit);
}
static inline v16 v16_zero(void) { return (v16){_mm256_setzero_ps(), _mm256_setzero_ps()}; }
static inline v16 v16_set1(float a) { const __m256 v = _mm256_set1_ps(a); return (v16){v, v}; }
static inline v16 v16_load(const float *p) { return (v16){_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8)}; }
static inline void v16_store(float *p, v16 v) { _mm256_storeu_ps(p, v.lo); _mm256_storeu_ps(p + 8, v.hi); }
// Each half whole, empty or masked: vmaskmovps is slow (a store is microcoded on Zen 2, ~10
// cycles), so a half that is all in or all out takes a plain load or store, or none.
static inline __m256 v8_maskz_load_bits(unsigned bits, const float *p) {
    if (bits == 0xFF) return _mm256_loadu_ps(p);
    if (bits == 0) return _mm256_setzero_ps();
    return _mm256_maskload_ps(p, mask_lanes8(bits));
}
static inline void v8_mask_store_bits(float *p, unsigned bits, __m256 v) {
    if (bits == 0xFF) _mm256_storeu_ps(p, v);
    else if (bits != 0) _mm256_maskstore_ps(p, mask_lanes8(bits), v);
}
static inline v16 v16_maskz_load(m16 m, const float *p) {
    if ((m & 0xFFFF) == 0xFFFF) return v16_load(p);
    return (v16){v8_maskz_load_bits(m & 0xFF, p), v8_maskz_load_bits((m >> 8) & 0xFF, p + 8)};
}
static inline void v16_mask_store(float *p, m16 m, v16 v) {
    if ((m & 0xFFFF) == 0xFFFF) { v16_store(p, v); return; }
    v8_mask_store_bits(p, m & 0xFF, v.lo);
    v8_mask_store_bits(p + 8, (m >> 8) & 0xFF, v.hi);
}
static inline v16 v16_add(v16 a, v16 b) { return (v16){_mm256_add_ps(a.lo, b.lo), _mm256_add_ps(a.hi, b.hi)}; }
static inline v16 v16_sub(v16 a, v16 b) { return (v16){_mm256_sub_ps(a.lo, b.lo), _mm256_sub_ps(a.hi, b.hi)}; }
static inline v16 v16_fmadd(v16 a, v16 b, v16 c) {
    return (v16){_mm256_fmadd_ps(a.lo, b.lo, c.lo), _mm256_fmadd_ps(a.hi, b.hi, c.hi)};
}
static inline v16 v16_max(v16 a, v16 b) { return (v16){_mm256_max_ps(a.lo, b.lo), _mm256_max_ps(a.hi, b.hi)}; }
static inline v16 v16_min(v16 a, v16 b) { return (v16){_mm256_min_ps(a.lo, b.lo), _mm256_min_ps(a.hi, b.hi)}; }
static inline v16 v16_mul(v16 a, v16 b) { return (v16){_mm256_mul_ps(a.lo, b.lo), _mm256_mul_ps(a.hi, b.hi)}; }
static inline v16 v16_div(v16 a, v16 b) { return (v16){_mm256_div_ps(a.lo, b.lo), _mm256_div_ps(a.hi, b.hi)}; }
static inline v16 v16_round_even(v16 a) {
    return (v16){_mm256_round_ps(a.lo, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                 _mm256_round_ps(a.hi, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)};
}
static inline float v16_reduce_add(v16 v) {
    const __m256 s = _mm256_add_ps(v.lo, v.hi);
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}
static inline v8 v16_even(v16 v) {
    // shuffle: lo0 lo2 hi0 hi2 | lo4 lo6 hi4 hi6; then the 64-bit pairs reordered.
    const __m256 s = _mm256_shuffle_ps(v.lo, v.hi, 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8));
}
static inline v8 v16_odd(v16 v) {
    const __m256 s = _mm256_shuffle_ps(v.lo, v.hi, 0xDD);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8));
}
static inline v16 v16_interleave(v8 e, v8 o) {
    const __m256 a = _mm256_unpacklo_ps(e, o), b = _mm256_unpackhi_ps(e, o);  // e0 o0 e1 o1 | e4 o4 e5 o5 …
    return (v16){_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31)};
}
static inline void v8_mask_store(float *p, m8 m, v8 v) {
    if ((m & 0xFF) == 0xFF) { _mm256_storeu_ps(p, v); return; }
    _mm256_maskstore_ps(p, mask_lanes8(m & 0xFF), v);
}

// An 8×8 block transposed in registers.
static inline void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

// The 16×16 block as four 8×8 blocks [A B; C D] → [Aᵀ Cᵀ; Bᵀ Dᵀ].
static inline void v16_transpose(v16 r[16]) {
    __m256 a[8], b[8], c[8], d[8];
    for (int i = 0; i < 8; i++) { a[i] = r[i].lo; b[i] = r[i].hi; c[i] = r[i + 8].lo; d[i] = r[i + 8].hi; }
    transpose8(a); transpose8(b); transpose8(c); transpose8(d);
    for (int i = 0; i < 8; i++) { r[i] = (v16){a[i], c[i]}; r[i + 8] = (v16){b[i], d[i]}; }
}

#endif

// The first n lanes (n ≤ 0: none, n ≥ 16: all).
static inline m16 lanes(int n) { return n >= 16 ? 0xFFFF : n <= 0 ? 0 : (m16)((1u << n) - 1u); }

#endif
