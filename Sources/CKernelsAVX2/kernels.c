// The kernels compiled for the avx2 level (-march=x86-64-v3; see Sources/CKernels/kernels/common.h).
#define KILN_LEVEL 1
#define KILN_LEVEL_NAME avx2
#include "../CKernels/kernels/kernels.c"
