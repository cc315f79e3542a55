// The types Kiln's C kernels share with their Swift callers.
#ifndef KILN_TYPES_H
#define KILN_TYPES_H

#include <stddef.h>
#include <stdint.h>

enum kiln_activation { KILN_ACT_NONE = 0, KILN_ACT_RELU = 1, KILN_ACT_LEAKY_RELU = 2, KILN_ACT_CLIP = 3,
                       KILN_ACT_SIGMOID = 4, KILN_ACT_HARDSWISH = 5, KILN_ACT_GELU = 6, KILN_ACT_GELU_TANH = 7,
                       KILN_ACT_ERF = 8, KILN_ACT_HARD_SIGMOID = 9, KILN_ACT_SQRT = 10, KILN_ACT_TANH = 11,
                       KILN_ACT_EXP = 12, KILN_ACT_LOG = 13, KILN_ACT_ABS = 14, KILN_ACT_NEG = 15,
                       KILN_ACT_RECIPROCAL = 16, KILN_ACT_ELU = 17, KILN_ACT_SOFTPLUS = 18, KILN_ACT_MISH = 19,
                       KILN_ACT_SWISH = 20, KILN_ACT_QUANTIZE_DEQUANTIZE = 21 };

/* Reductions of kiln_reduce_axis. */
enum kiln_reduce { KILN_REDUCE_SUM = 0, KILN_REDUCE_MEAN = 1, KILN_REDUCE_SUM_SQUARE = 2, KILN_REDUCE_L2 = 3,
                   KILN_REDUCE_MAX = 4, KILN_REDUCE_MIN = 5, KILN_REDUCE_L1 = 6 };

// An activation applied by an epilogue: kind (enum kiln_activation), LeakyRelu's and
// HardSigmoid's alpha, Clip's bounds (lo is HardSigmoid's beta). QuantizeDequantize:
// alpha·clamp(round_half_even(x / alpha), lo, hi), NaN → alpha·lo (alpha the scale, lo and hi the
// quantized range less the zero point).
typedef struct {
    int kind;
    float alpha, lo, hi;
} kiln_act;

// The geometry of a 2-D convolution or pooling window over one image (or one group): input
// C × H × W, output M × OH × OW, kernel KH × KW, strides, dilations, and padding at the start
// (PH top, PW left) and end (PHE bottom, PWE right) of each axis. Kernels that need only part
// of it read that part (pools ignore C and M).
typedef struct {
    int C, H, W;
    int M, OH, OW;
    int KH, KW, SH, SW, DH, DW;
    int PH, PW, PHE, PWE;
} kiln_conv_geometry;

// How a convolution runs (Compiler's ConvAlgorithm) and which of its passes a kernel serves.
enum kiln_conv_algorithm { KILN_CONV_GEMM_1X1 = 0, KILN_CONV_IM2COL = 1, KILN_CONV_DIRECT = 2, KILN_CONV_WINOGRAD = 3,
                           KILN_CONV_DEPTHWISE = 4, KILN_CONV_INT8 = 5,
                           KILN_CONV_BF16 = 6 };

// The largest window (KH·KW taps) the depthwise kernel takes.
#define KILN_DEPTHWISE_MAX_TAPS 256
enum kiln_conv_pass { KILN_CONV_FORWARD = 0, KILN_CONV_GRAD_DATA = 1, KILN_CONV_GRAD_WEIGHT = 2 };

// The per-thread scratch of a convolution kernel (kiln_conv_scratch), in floats: `total`,
// and where its parts start. Forward and data gradient: one part (im2col columns, the
// padded image, Winograd tiles). Weight gradient: a dW accumulator [M, C·KH·KW] at 0, then the `group` images'
// patches (or padded images, or Winograd's dU) at `second`, and dy's rows (or Winograd's
// transform space) at `third`.
typedef struct {
    long total, second, third;
    int group;
} kiln_scratch_layout;

// One step of a fused elementwise chain: v = op(v, operand) or v = act(v).
typedef struct {
    int kind;          // 0..3: add, sub, mul, div with an operand; 10 + kiln_activation for activations
    int swap;          // operand op v instead of v op operand (Sub, Div)
    const float *operand;
    long period;       // operand broadcast: index (i / inner) % period; period 0: same shape
    long inner;
    float alpha, lo, hi;
} kiln_ew_op;

#endif
