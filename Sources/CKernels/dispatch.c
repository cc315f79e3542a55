// The level the kernels run at, chosen once at start-up, and the public kiln_NAME functions,
// each a call through that level's table.
#include "kiln_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const kiln_kernel_table kiln_kernels_portable;
extern const kiln_kernel_table kiln_kernels_avx2;
extern const kiln_kernel_table kiln_kernels_avx512;

static const kiln_kernel_table *const levels[] = {&kiln_kernels_portable, &kiln_kernels_avx2, &kiln_kernels_avx512};
static const kiln_kernel_table *active = &kiln_kernels_portable;
static int active_level = KILN_ISA_PORTABLE;
static const char *isa_error = NULL;
static char isa_message[160];

int kiln_isa_best(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    // __builtin_cpu_supports also checks that the OS saves the vector registers (XGETBV).
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2"))
        return KILN_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return KILN_ISA_AVX2;
#endif
    return KILN_ISA_PORTABLE;
}

__attribute__((constructor)) static void kiln_isa_select(void) {
    const int best = kiln_isa_best();
    int level = best;
    const char *asked = getenv("KILN_ISA");
    if (asked && *asked) {
        int wanted = -1;
        for (int i = 0; i < 3; i++)
            if (strcmp(asked, levels[i]->level) == 0) wanted = i;
        if (wanted < 0) {
            snprintf(isa_message, sizeof isa_message, "KILN_ISA=%.40s is not a level (portable, avx2, avx512)", asked);
            isa_error = isa_message;
        } else if (wanted > best) {
            snprintf(isa_message, sizeof isa_message, "KILN_ISA=%s: this CPU supports only %s", asked, levels[best]->level);
            isa_error = isa_message;
        } else {
            level = wanted;
        }
    }
    active_level = level;
    active = levels[level];
}

int kiln_isa_level(void) { return active_level; }
const char *kiln_isa_name(void) { return active->level; }
const char *kiln_isa_error(void) { return isa_error; }

#define KILN_CALL_void(name, args) active->name args;
#define KILN_CALL_int(name, args) return active->name args;
#define KILN_CALL_float(name, args) return active->name args;
#define KILN_CALL_size_t(name, args) return active->name args;
#define KILN_CALL_kiln_scratch_layout(name, args) return active->name args;
#define KILN_DEFINE(ret, name, params, args) ret kiln_##name params { KILN_CALL_##ret(name, args) }
KILN_KERNEL_LIST(KILN_DEFINE)
