// Every kernel family, compiled as one unit for the level KILN_LEVEL, and the table that
// exports them (see common.h).
#include "common.h"

#include "im2col.c"
#include "epilogue.c"
#include "pool.c"
#include "elementwise.c"
#include "reduce.c"
#include "direct.c"
#include "gemm.c"
#include "linear.c"
#include "winograd_common.h"
#include "winograd_forward.c"
#include "winograd_wgrad.c"
#include "batchnorm.c"
#include "optimizer.c"
#include "scratch.c"
#include "table.c"
