// The kernels compiled for the portable level (-march=x86-64; see Sources/CKernels/kernels/common.h).
#define KILN_LEVEL 0
#define KILN_LEVEL_NAME portable
#include "../CKernels/kernels/kernels.c"
