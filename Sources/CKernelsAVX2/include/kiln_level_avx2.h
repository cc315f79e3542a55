// The avx2 level's kernel table (dispatch.c chooses among the levels).
#include "../../CKernels/include/kiln_kernel_list.h"
extern const kiln_kernel_table kiln_kernels_avx2;
