// Kiln's fast CPU kernels in C. The list of kernels, with what each computes, is
// kiln_kernel_list.h; this header declares them as kiln_NAME. Each is compiled at three
// instruction-set levels — portable C (any x86-64), AVX2 + FMA, AVX-512 — and the best level
// the CPU supports is chosen once at start-up (CPUID), unless KILN_ISA names one.
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include "kiln_kernel_list.h"
#include "kiln_types.h"

#define KILN_DECLARE(ret, name, params, args) ret kiln_##name params;
KILN_KERNEL_LIST(KILN_DECLARE)
#undef KILN_DECLARE

// Instruction-set levels: 0 portable, 1 avx2 (AVX2 + FMA + F16C), 2 avx512 (F, DQ, BW, VL).
enum kiln_isa_level { KILN_ISA_PORTABLE = 0, KILN_ISA_AVX2 = 1, KILN_ISA_AVX512 = 2 };
// The level the kernels run at: the best this CPU supports, or the one KILN_ISA
// (portable|avx2|avx512) asks for when the CPU supports it.
int kiln_isa_level(void);
// Its name ("portable", "avx2", "avx512").
const char *kiln_isa_name(void);
// The best level this CPU (and its operating system's register saving) supports.
int kiln_isa_best(void);
// NULL, or why KILN_ISA could not be honoured (an unknown name, or a level this CPU lacks);
// the kernels then run at the best level.
const char *kiln_isa_error(void);

// Register-only loops measuring the CPU's arithmetic peak (`kiln peak`): fp32 multiply-adds,
// uint8·int8 dot products, bf16 dot products, each with the widest instructions the CPU has.
enum kiln_peak_kind { KILN_PEAK_FP32 = 0, KILN_PEAK_INT8 = 1, KILN_PEAK_BF16 = 2 };
// Runs `iterations` of the loop of `kind` and returns the operations done (a multiply-add
// counts 2), or 0 when the CPU has no instruction for it; *how names the instructions.
double kiln_peak_run(int kind, long iterations, const char **how);

// A small thread pool for the executor: workers spin briefly between parallel steps (a
// kernel call is often tens of microseconds, shorter than waking a sleeping thread) and
// then block. kiln_pool_run calls fn(ctx, task) for task in [0, tasks) across the calling
// thread and the workers, and returns when all are done.
typedef struct kiln_pool kiln_pool;
kiln_pool *kiln_pool_create(int threads);
void kiln_pool_destroy(kiln_pool *pool);
void kiln_pool_run(kiln_pool *pool, int tasks, void (*fn)(void *ctx, int task), void *ctx);

#endif
