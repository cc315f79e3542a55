// Register-only loops that measure the CPU's arithmetic peak for `kiln peak`: independent
// accumulators (more than the instruction's latency × issue width), no memory traffic. Each
// loop is compiled for its instruction set (target attributes) and chosen by CPUID at run
// time, so one binary measures what the CPU has.
#include "kiln_kernels.h"

#include <immintrin.h>

// Keeps the compiler from folding a loop-invariant product out of the loop.
#define KILN_OPAQUE(v) __asm__ volatile("" : "+x"(v))

__attribute__((target("avx512f"))) static double fp32_avx512(long n) {
    __m512 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(0.001f * (float)i);
    __m512 x = _mm512_set1_ps(0.9999f);
    const __m512 y = _mm512_set1_ps(1e-6f);
    for (long k = 0; k < n; k++) {
        KILN_OPAQUE(x);
        for (int i = 0; i < 12; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
    }
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    return (double)n * 12 * 16 * 2 + (_mm512_reduce_add_ps(s) == 12345.0f);
}

__attribute__((target("avx2,fma"))) static double fp32_avx2(long n) {
    __m256 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm256_set1_ps(0.001f * (float)i);
    __m256 x = _mm256_set1_ps(0.9999f);
    const __m256 y = _mm256_set1_ps(1e-6f);
    for (long k = 0; k < n; k++) {
        KILN_OPAQUE(x);
        for (int i = 0; i < 12; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
    }
    __m256 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm256_add_ps(s, a[i]);
    return (double)n * 12 * 8 * 2 + (_mm256_cvtss_f32(s) == 12345.0f);
}

static double fp32_sse2(long n) {
    __m128 a[8];
    for (int i = 0; i < 8; i++) a[i] = _mm_set1_ps(0.001f * (float)i);
    __m128 x = _mm_set1_ps(0.9999f);
    const __m128 y = _mm_set1_ps(1e-6f);
    for (long k = 0; k < n; k++) {
        KILN_OPAQUE(x);
        for (int i = 0; i < 8; i++) a[i] = _mm_add_ps(_mm_mul_ps(a[i], x), y);
    }
    __m128 s = a[0];
    for (int i = 1; i < 8; i++) s = _mm_add_ps(s, a[i]);
    return (double)n * 8 * 4 * 2 + (_mm_cvtss_f32(s) == 12345.0f);
}

// vpdpbusd: 16 lanes × 4 uint8·int8 products summed into int32.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static double int8_vnni512(long n) {
    __m512i a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_epi32(i);
    __m512i x = _mm512_set1_epi8(3);
    const __m512i w = _mm512_set1_epi8(-2);
    for (long k = 0; k < n; k++) {
        KILN_OPAQUE(x);
        for (int i = 0; i < 12; i++) a[i] = _mm512_dpbusd_epi32(a[i], x, w);
    }
    __m512i s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_epi32(s, a[i]);
    return (double)n * 12 * 64 * 2 + (_mm512_reduce_add_epi32(s) == 12345);
}

// Without VNNI: vpmaddubsw (pairs of uint8·int8 into int16) then vpmaddwd by 1 (pairs into
// int32) and vpaddd — what int8 GEMMs on AVX2 do.
__attribute__((target("avx2"))) static double int8_avx2(long n) {
    __m256i a[8];
    for (int i = 0; i < 8; i++) a[i] = _mm256_set1_epi32(i);
    const __m256i w = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
    for (long k = 0; k < n; k++) {
        __m256i x[8];
        for (int i = 0; i < 8; i++) {
            x[i] = _mm256_set1_epi8(3);
            KILN_OPAQUE(x[i]);
        }
        for (int i = 0; i < 8; i++) a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(_mm256_maddubs_epi16(x[i], w), one));
    }
    __m256i s = a[0];
    for (int i = 1; i < 8; i++) s = _mm256_add_epi32(s, a[i]);
    return (double)n * 8 * 32 * 2 + (_mm256_extract_epi32(s, 0) == 12345);
}

// vdpbf16ps: 16 lanes × 2 bf16 products summed into f32.
__attribute__((target("avx512f,avx512bf16"))) static double bf16_avx512(long n) {
    __m512 a[12];
    for (int i = 0; i < 12; i++) a[i] = _mm512_set1_ps(0.001f * (float)i);
    __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(0.5f), _mm512_set1_ps(0.25f));
    const __m512bh w = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-6f), _mm512_set1_ps(1e-6f));
    for (long k = 0; k < n; k++) {
        KILN_OPAQUE(x);
        for (int i = 0; i < 12; i++) a[i] = _mm512_dpbf16_ps(a[i], x, w);
    }
    __m512 s = a[0];
    for (int i = 1; i < 12; i++) s = _mm512_add_ps(s, a[i]);
    return (double)n * 12 * 32 * 2 + (_mm512_reduce_add_ps(s) == 12345.0f);
}

double kiln_peak_run(int kind, long iterations, const char **how) {
    __builtin_cpu_init();
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    switch (kind) {
    case KILN_PEAK_FP32:
        if (avx512) { *how = "AVX-512 vfmadd (16 floats)"; return fp32_avx512(iterations); }
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { *how = "AVX2 vfmadd (8 floats)"; return fp32_avx2(iterations); }
        *how = "SSE2 mulps + addps (4 floats)";
        return fp32_sse2(iterations);
    case KILN_PEAK_INT8:
        if (avx512 && __builtin_cpu_supports("avx512vnni")) { *how = "AVX-512 VNNI vpdpbusd (64 uint8·int8)"; return int8_vnni512(iterations); }
        if (__builtin_cpu_supports("avx2")) { *how = "AVX2 vpmaddubsw + vpmaddwd (32 uint8·int8)"; return int8_avx2(iterations); }
        *how = "no 8-bit dot product instruction";
        return 0;
    case KILN_PEAK_BF16:
        if (avx512 && __builtin_cpu_supports("avx512bf16")) { *how = "AVX-512 BF16 vdpbf16ps (32 bf16 pairs)"; return bf16_avx512(iterations); }
        *how = "no bf16 dot product instruction (bf16 values compute as f32)";
        return 0;
    default:
        *how = "unknown kind";
        return 0;
    }
}
