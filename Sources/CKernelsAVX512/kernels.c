// The kernels compiled for the avx512 level (-march=x86-64-v4; see Sources/CKernels/kernels/common.h).
#define KILN_LEVEL 2
#define KILN_LEVEL_NAME avx512
#include "../CKernels/kernels/kernels.c"
