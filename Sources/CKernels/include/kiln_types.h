// The types Kiln's C kernels share with their Swift callers.
#ifndef KILN_TYPES_H
#define KILN_TYPES_H

#include <stddef.h>

enum kiln_activation { KILN_ACT_NONE = 0, KILN_ACT_RELU = 1, KILN_ACT_LEAKY_RELU = 2, KILN_ACT_CLIP = 3,
                       KILN_ACT_SIGMOID = 4, KILN_ACT_HARDSWISH = 5 };

// An activation applied by an epilogue: kind (enum kiln_activation), LeakyRelu's alpha,
// Clip's bounds.
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
