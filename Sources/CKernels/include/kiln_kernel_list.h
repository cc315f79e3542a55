// Every kernel Kiln's C code provides, once: X(return type, name, (parameters), (arguments)).
// kiln_kernels.h turns the list into the public functions kiln_NAME, each level's table.c
// into its table of implementations, and dispatch.c into the functions that call the table
// chosen at start-up. Layout NCHW; every function works on one image, one plane or a range of
// rows, channels or elements so the Swift executor can spread work over threads. No
// allocation: callers pass scratch space, whose size the kernel reports.
#ifndef KILN_KERNEL_LIST_H
#define KILN_KERNEL_LIST_H

#include "kiln_types.h"

#define KILN_KERNEL_LIST(X) \
    /* --- im2col (kernels/im2col.c) ------------------------------------------------------ */ \
    /* Patches of one image x [C, H, W] as columns col [C·KH·KW, OH·OW]; padding reads zero. */ \
    X(void, im2col, (const float *x, kiln_conv_geometry g, float *col), (x, g, col)) \
    /* Only the rows of channel-and-kernel-row pairs r = c·KH + kh in [r_begin, r_end) (the */ \
    /* KW·P rows of col each pair fills), so threads can share one image. */ \
    X(void, im2col_rows, (const float *x, kiln_conv_geometry g, int r_begin, int r_end, float *col), \
      (x, g, r_begin, r_end, col)) \
    /* The same with rows `ld` floats apart (several images' columns side by side). */ \
    X(void, im2col_rows_ld, (const float *x, kiln_conv_geometry g, int r_begin, int r_end, int ld, float *col), \
      (x, g, r_begin, r_end, ld, col)) \
    /* The columns of output rows [oh_begin, oh_end) only: col [C·KH·KW, (oh_end − oh_begin)·OW] */ \
    /* (a panel that stays in cache for the product that follows). */ \
    X(void, im2col_out_rows, (const float *x, kiln_conv_geometry g, int oh_begin, int oh_end, float *col), \
      (x, g, oh_begin, oh_end, col)) \
    /* col [C·KH·KW, OH·OW] summed back into x [C, H, W] for channels [c_begin, c_end) */ \
    /* (cleared first): the adjoint of im2col. */ \
    X(void, col2im_rows, (const float *col, kiln_conv_geometry g, int c_begin, int c_end, float *x), \
      (col, g, c_begin, c_end, x)) \
    \
    /* --- epilogues and activations (kernels/epilogue.c) ---------------------------------- */ \
    /* y [M, P] (one image's output planes): y = act(y + bias[m] + residual) in place; bias */ \
    /* and residual may be NULL. */ \
    X(void, epilogue, (float *y, int M, int P, const float *bias, const float *residual, kiln_act act), \
      (y, M, P, bias, residual, act)) \
    /* Gemm outputs y [R, N]: bias per column (or per row), residual [R, N]. */ \
    X(void, epilogue_rows, (float *y, int R, int N, const float *bias, int bias_per_row, const float *residual, kiln_act act), \
      (y, R, N, bias, bias_per_row, residual, act)) \
    /* Elementwise activation over n values (y may equal x). */ \
    X(void, activation, (const float *x, float *y, size_t n, kiln_act act), (x, y, n, act)) \
    /* One value through the epilogues' activation rule. */ \
    X(float, apply_activation, (float v, kiln_act act), (v, act)) \
    /* Whether any of x[0..n) is NaN or ±inf. */ \
    X(int, has_nonfinite, (const float *x, size_t n), (x, n)) \
    \
    /* --- pooling (kernels/pool.c) --------------------------------------------------------- */ \
    /* One plane x [H, W] → y [OH, OW]. Max ignores padding (NaN wins); average divides by */ \
    /* the valid count, or by the count inside the padded input when include_pad. */ \
    X(void, maxpool2d, (const float *x, kiln_conv_geometry g, float *y), (x, g, y)) \
    X(void, avgpool2d, (const float *x, kiln_conv_geometry g, int include_pad, float *y), (x, g, include_pad, y)) \
    /* Mean of each of `planes` planes of `size` values. */ \
    X(void, global_avgpool, (const float *x, int planes, int size, float *y), (x, planes, size, y)) \
    \
    /* --- elementwise and data movement (kernels/elementwise.c) ---------------------------- */ \
    /* y[k] = x[map[k]], or `fill` where map[k] < 0 (Slice, Pad, Transpose, Gather as maps). */ \
    X(void, gather_map, (const float *x, const int *map, size_t n, float fill, float *y), (x, map, n, fill, y)) \
    /* The same by runs: y[k·len + j] = x[map[k] + j] for j < len, or `fill` where map[k] < 0. */ \
    X(void, gather_runs, (const float *x, const int *map, size_t runs, size_t len, float fill, float *y), (x, map, runs, len, fill, y)) \
    /* dx[map[k]] += dy[k] for map[k] ≥ 0 (gather_map's adjoint; dx cleared by the caller). */ \
    X(void, scatter_add_map, (const float *dy, const int *map, size_t n, float *dx), (dy, map, n, dx)) \
    /* Binary op over equal shapes, or b broadcast (b_period values, each repeated `inner` */ \
    /* times along the row-major order). op: 0 add, 1 sub, 2 mul, 3 div. */ \
    X(void, binary, (const float *a, const float *b, float *y, size_t n, int op, size_t b_period, size_t inner), \
      (a, b, y, n, op, b_period, inner)) \
    /* Inference BatchNormalization over one image x [C, P]: y = x·scale[c] + shift[c]. */ \
    X(void, scale_shift, (const float *x, float *y, int C, int P, const float *scale, const float *shift), \
      (x, y, C, P, scale, shift)) \
    /* Softmax or log-softmax of `rows` rows of `n` contiguous values. */ \
    X(void, softmax_rows, (const float *x, float *y, int rows, int n, int log_softmax), (x, y, rows, n, log_softmax)) \
    /* Reduction `kind` (enum kiln_reduce) of x [outer, len, inner] over its middle axis into */ \
    /* y [outer, inner] (kernels/reduce.c). */ \
    X(void, reduce_axis, (int kind, const float *x, int outer, int len, int inner, float *y), (kind, x, outer, len, inner, y)) \
    /* Softmax or log-softmax of x [outer, len, inner] along its middle axis. */ \
    X(void, softmax_axis, (const float *x, float *y, int outer, int len, int inner, int log_softmax), \
      (x, y, outer, len, inner, log_softmax)) \
    /* y[i] = chain(x[i]) for i in [begin, end), in blocks that stay in L1 (one pass). */ \
    X(void, elementwise_chain_range, (const float *x, float *y, size_t begin, size_t end, const kiln_ew_op *ops, int count), \
      (x, y, begin, end, ops, count)) \
    /* dx = dy where y > 0, else 0 (dx may equal dy). */ \
    X(void, relu_grad, (const float *dy, const float *y, size_t n, float *dx), (dy, y, n, dx)) \
    /* dx = a + b where y > 0, else 0 (a gradient sum fused into ReLU's backward). */ \
    X(void, relu_grad_sum, (const float *a, const float *b, const float *y, size_t n, float *dx), (a, b, y, n, dx)) \
    \
    /* --- direct convolution (kernels/direct.c) -------------------------------------------- */ \
    /* Stride 1, dilation 1, one group, M a multiple of 8. The input is copied into a */ \
    /* zero-padded image xp [C][plane] with row stride Wp = W + PW + PWE, so that every tap is */ \
    /* a constant shift of the output index q = oh·Wp + ow; outputs are computed on that grid */ \
    /* 32 at a time and the columns past OW dropped when stored. plane: floats per channel. */ \
    X(int, conv_shift_plane, (kiln_conv_geometry g), (g)) \
    X(void, conv_shift_pad, (const float *x, kiln_conv_geometry g, int plane, float *xp), (x, g, plane, xp)) \
    /* Weights [M, C, KH, KW] → packed [M/8][C·KH·KW][8] (also the packed GEMM's layout). */ \
    X(size_t, conv_shift_packed_size, (kiln_conv_geometry g), (g)) \
    X(void, conv_shift_pack, (const float *w, kiln_conv_geometry g, float *packed), (w, g, packed)) \
    /* Output channel blocks [mb_begin, mb_end) of one image y [M, OH, OW] with the epilogue. */ \
    X(void, conv_shift, (const float *xp, kiln_conv_geometry g, int plane, const float *packed, int mb_begin, int mb_end, \
                         const float *bias, const float *residual, kiln_act act, float *y), \
      (xp, g, plane, packed, mb_begin, mb_end, bias, residual, act, y)) \
    /* dy [M, OH, OW] → dyp [M, OH, Wp]: rows on a padded grid, the columns past OW zero. */ \
    X(void, pad_rows, (const float *dy, int M, int OH, int OW, int Wp, float *dyp), (dy, M, OH, OW, Wp, dyp)) \
    /* The weight gradient of a stride-1 convolution without patches: dw [M, C·KH·KW] += */ \
    /* Σ over G images of dyp_g [M, OH·Wp] · (xp_g shifted per tap), xp_g [C][plane] padded */ \
    /* by conv_shift_pad; output channels [m_begin, m_end). */ \
    X(void, weight_grad_shift, (const float *dyp, const float *xp, int G, kiln_conv_geometry g, int plane, int m_begin, \
                                int m_end, float *dw), \
      (dyp, xp, G, g, plane, m_begin, m_end, dw)) \
    \
    /* --- depthwise convolution (kernels/depthwise.c) -------------------------------------- */ \
    /* One input channel per group (M = C·mult; output m reads input channel m / mult), any */ \
    /* window, stride, dilation and padding, KH·KW ≤ KILN_DEPTHWISE_MAX_TAPS. Output channels */ \
    /* [m_begin, m_end) and rows [oy_begin, oy_end) of one image y [M, OH, OW] = act(conv + */ \
    /* bias[m] + residual); w [M, KH·KW]; scratch: depthwise_scratch(g) floats (one padded */ \
    /* input plane). */ \
    X(int, depthwise_scratch, (kiln_conv_geometry g), (g)) \
    X(void, conv_depthwise, (const float *x, kiln_conv_geometry g, const float *w, int m_begin, int m_end, int oy_begin, \
                             int oy_end, const float *bias, const float *residual, kiln_act act, float *scratch, float *y), \
      (x, g, w, m_begin, m_end, oy_begin, oy_end, bias, residual, act, scratch, y)) \
    /* The same with input planes x_plane floats apart holding rows x_row0 on (a band). */ \
    X(void, conv_depthwise_rows, (const float *x, size_t x_plane, int x_row0, kiln_conv_geometry g, const float *w, int m_begin, \
                                  int m_end, int oy_begin, int oy_end, const float *bias, const float *residual, kiln_act act, \
                                  float *scratch, float *y), \
      (x, x_plane, x_row0, g, w, m_begin, m_end, oy_begin, oy_end, bias, residual, act, scratch, y)) \
    \
    /* --- packed GEMM (kernels/gemm.c) ------------------------------------------------------ */ \
    /* y [M, N] = act(W · B + bias[m] + residual) for output-channel blocks [mb_begin, mb_end): */ \
    /* W packed by conv_shift_pack (C·KH·KW = K), B [K, N] row-major (im2col columns, or the */ \
    /* input itself for a 1×1 convolution; rows ldb apart, so a thread may take a range of */ \
    /* columns), residual [M, N] or NULL, rows of y and the residual ldy apart. pack: NULL, or */ \
    /* room for K·24 + 8 floats where B's column chunks are copied once and reused (AVX2). */ \
    X(void, conv_gemm_ld, (const float *packed, const float *b, int K, int N, size_t ldb, int mb_begin, int mb_end, \
                           const float *bias, const float *residual, size_t ldy, kiln_act act, float *y, float *pack), \
      (packed, b, K, N, ldb, mb_begin, mb_end, bias, residual, ldy, act, y, pack)) \
    /* dw [M, K] += dy [M, P] · colᵀ (col [K, P]) for output channels [m_begin, m_end). */ \
    X(void, weight_grad, (const float *dy, const float *col, int M, int K, int P, int m_begin, int m_end, float *dw), \
      (dy, col, M, K, P, m_begin, m_end, dw)) \
    \
    /* --- int8 convolution (kernels/int8.c) ------------------------------------------------ */ \
    /* One group; uint8 activations × int8 weights summed in int32 (AVX-512 VNNI where the CPU */ \
    /* has it: qconv_vnni). Weights q [M, K = C·KH·KW] packed in blocks of 8 rows. */ \
    X(size_t, qconv_packed_bytes, (int M, int K), (M, K)) \
    X(void, qconv_pack, (const int8_t *q, int M, int K, int8_t *packed), (q, M, K, packed)) \
    /* Channels [c_begin, c_end) of one image x [C, H, W] quantized, u = round(x / scale) + */ \
    /* zero clamped to [0, 255], into its zero-padded stride phases (qconv_source_bytes). */ \
    X(size_t, qconv_source_bytes, (kiln_conv_geometry g), (g)) \
    X(void, qconv_quantize, (const float *x, kiln_conv_geometry g, float scale, int zero, int c_begin, int c_end, \
                             uint8_t *source), (x, g, scale, zero, c_begin, c_end, source)) \
    /* The product's columns (OH rows of the phases' width; those past OW are not stored) and */ \
    /* the bytes of per-thread scratch qconv_gemm needs. */ \
    X(int, qconv_columns, (kiln_conv_geometry g), (g)) \
    X(size_t, qconv_chunk_bytes, (kiln_conv_geometry g), (g)) \
    /* y [M, OH·OW] = act((Σ_k q·u − offset[m]) · scale[m] + bias[m] + residual) for columns */ \
    /* [n_begin, n_end) and blocks [mb_begin, mb_end); offset[m] = zero · Σ_k q[m][k]. */ \
    X(void, qconv_gemm, (const int8_t *packed, const uint8_t *source, kiln_conv_geometry g, int n_begin, int n_end, \
                         int mb_begin, int mb_end, const float *scale, const int32_t *offset, const float *bias, \
                         const float *residual, kiln_act act, uint8_t *scratch, float *y), \
      (packed, source, g, n_begin, n_end, mb_begin, mb_end, scale, offset, bias, residual, act, scratch, y)) \
    /* 1 when qconv_gemm runs on VNNI here (faster than f32), 0 when on plain loops. */ \
    X(int, qconv_vnni, (void), ()) \
    \
    /* --- bf16 convolution (kernels/bf16.c) ------------------------------------------------ */ \
    /* One group; activations and weights rounded to bf16, products summed in f32 (AVX-512 */ \
    /* BF16 where the CPU has it: bconv_fast). The int8 kernel's layout with 16-bit elements */ \
    /* (qconv_columns gives the product's columns). */ \
    X(size_t, bconv_packed_bytes, (int M, int K), (M, K)) \
    X(void, bconv_pack, (const float *w, int M, int K, uint16_t *packed), (w, M, K, packed)) \
    X(size_t, bconv_source_bytes, (kiln_conv_geometry g), (g)) \
    X(void, bconv_convert, (const float *x, kiln_conv_geometry g, int c_begin, int c_end, uint16_t *source), \
      (x, g, c_begin, c_end, source)) \
    X(size_t, bconv_chunk_bytes, (kiln_conv_geometry g), (g)) \
    /* y [M, OH·OW] = act(Σ_k w·x + bias[m] + residual) for columns [n_begin, n_end) and blocks */ \
    /* [mb_begin, mb_end). */ \
    X(void, bconv_gemm, (const uint16_t *packed, const uint16_t *source, kiln_conv_geometry g, int n_begin, int n_end, \
                         int mb_begin, int mb_end, const float *bias, const float *residual, kiln_act act, uint8_t *scratch, \
                         float *y), \
      (packed, source, g, n_begin, n_end, mb_begin, mb_end, bias, residual, act, scratch, y)) \
    /* 1 when bconv_gemm runs on vdpbf16ps here, 0 when on plain loops. */ \
    X(int, bconv_fast, (void), ()) \
    \
    /* --- linear layers (kernels/linear.c) -------------------------------------------------- */ \
    /* W [K, N] (trans: [N, K]) → column panels of 32, packed[p][k][j] = W[k][32p + j], zero */ \
    /* past N. */ \
    X(size_t, linear_packed_size, (int K, int N), (K, N)) \
    X(void, linear_pack, (const float *w, int K, int N, int trans, float *packed), (w, K, N, trans, packed)) \
    /* y [R, N] = act(x [R, K] · W + bias[n] + residual [R, N]) for rows [r_begin, r_end) and */ \
    /* panels [p_begin, p_end); bias and residual may be NULL. */ \
    X(void, linear, (const float *x, int K, int N, const float *packed, int r_begin, int r_end, int p_begin, int p_end, \
                     const float *bias, const float *residual, kiln_act act, float *y), \
      (x, K, N, packed, r_begin, r_end, p_begin, p_end, bias, residual, act, y)) \
    /* Rows per register tile of `linear` (split rows between threads in multiples of it). */ \
    X(int, linear_tile_rows, (void), ()) \
    \
    /* --- Winograd F(2×2, 3×3) forward (kernels/winograd_forward.c) ------------------------ */ \
    /* 3×3 stride-1 convolutions, M a multiple of 8. Weights are transformed once, U = G g Gᵀ, */ \
    /* and packed for the path the convolution takes (which depends on OW and on the level: */ \
    /* pack and run at the same level). */ \
    X(size_t, winograd_packed_size, (kiln_conv_geometry g), (g)) \
    X(void, winograd_pack, (const float *w, kiln_conv_geometry g, float *packed), (w, g, packed)) \
    /* The data gradient's weights: g is the transposed convolution (C = the forward's M); */ \
    /* w [g.C, g.M, 3, 3] is the forward's weight, rotated by 180° with its channels swapped. */ \
    X(void, winograd_pack_flipped, (const float *w, kiln_conv_geometry g, float *packed), (w, g, packed)) \
    /* Floats of per-thread scratch; tile rows (two output rows each). */ \
    X(int, winograd_scratch, (kiln_conv_geometry g), (g)) \
    X(int, winograd_tile_rows, (kiln_conv_geometry g), (g)) \
    /* Tile rows [th_begin, th_end) and output channel blocks of 8 [mb_begin, mb_end) of one */ \
    /* image, with the epilogue y = act(conv + bias[m] + residual). */ \
    X(void, winograd_block, (kiln_conv_geometry g, const float *x, const float *packed, int th_begin, int th_end, \
                             int mb_begin, int mb_end, const float *bias, const float *residual, kiln_act act, \
                             float *scratch, float *y), \
      (g, x, packed, th_begin, th_end, mb_begin, mb_end, bias, residual, act, scratch, y)) \
    \
    /* --- Winograd weight gradient (kernels/winograd_wgrad.c) ------------------------------ */ \
    /* dU [16][C][M] += Σ over the tiles of G images of (Bᵀ x B)[ξ][c] · (A dy Aᵀ)[ξ][m], from */ \
    /* x [G][C][H][W] and dy [G][M][OH][OW] (g the forward's geometry; C a multiple of 8); */ \
    /* then winograd_wgrad_finish: dw [M][C][3][3] += Gᵀ dU G. */ \
    X(int, winograd_wgrad_scratch, (kiln_conv_geometry g), (g)) \
    X(void, winograd_wgrad_accumulate, (kiln_conv_geometry g, const float *x, const float *dy, int G, float *dU, float *scratch), \
      (g, x, dy, G, dU, scratch)) \
    X(void, winograd_wgrad_finish, (const float *dU, int M, int C, float *dw), (dU, M, C, dw)) \
    \
    /* --- Scratch of the convolution kernels (kernels/scratch.c) -------------------------- */ \
    /* One definition of each kernel's per-thread scratch: the compiler plans it, the runtime */ \
    /* carves it up. g: the convolution the kernel runs (one group's channels; for the */ \
    /* Winograd data gradient, the transposed convolution); batch: images of the step. */ \
    X(kiln_scratch_layout, conv_scratch, (kiln_conv_geometry g, int algorithm, int pass, int batch), (g, algorithm, pass, batch)) \
    \
    /* --- BatchNorm forward and backward, LayerNorm (kernels/batchnorm.c) ------------------ */ \
    /* LayerNormalization of `rows` runs of n values; scale and bias [n], bias may be NULL. */ \
    X(void, layernorm_rows, (const float *x, int rows, int n, const float *scale, const float *bias, float eps, float *y), \
      (x, rows, n, scale, bias, eps, y)) \
    /* InstanceNormalization (cpg 1) and GroupNormalization: `rows` runs of cpg·inner values, */ \
    /* each normalised, channel c of run r (((first + r) mod groups)·cpg + k) × scale[c] + bias[c]. */ \
    X(void, groupnorm_rows, (const float *x, int rows, int first, int groups, int cpg, int inner, const float *scale, \
                             const float *bias, float eps, float *y), (x, rows, first, groups, cpg, inner, scale, bias, eps, y)) \
    /* sums[c] = Σ over n and inner of x [N, C, inner], channels [c_begin, c_end). */ \
    X(void, channel_sums, (const float *x, int N, int C, int inner, int c_begin, int c_end, float *sums), \
      (x, N, C, inner, c_begin, c_end, sums)) \
    /* Training-mode BatchNorm over x [N, C, inner] for channels [c_begin, c_end): batch mean, */ \
    /* 1/√(var + ε), y, and running statistics momentum·running + (1 − momentum)·batch */ \
    /* (unbiased variance); relu ≠ 0 applies ReLU to y. */ \
    X(void, batchnorm_train, (const float *x, int N, int C, int inner, const float *scale, const float *bias, \
                              const float *run_mean, const float *run_var, float eps, float momentum, int relu, int c_begin, \
                              int c_end, float *y, float *mean, float *invstd, float *next_mean, float *next_var), \
      (x, N, C, inner, scale, bias, run_mean, run_var, eps, momentum, relu, c_begin, c_end, y, mean, invstd, next_mean, next_var)) \
    /* Its backward: dx, dscale, dbias for channels [c_begin, c_end); with relu_out (a ReLU's */ \
    /* output) dy counts only where relu_out > 0. */ \
    X(void, batchnorm_grad, (const float *dy, const float *x, int N, int C, int inner, const float *scale, const float *mean, \
                             const float *invstd, const float *relu_out, int c_begin, int c_end, float *dx, float *dscale, \
                             float *dbias), \
      (dy, x, N, C, inner, scale, mean, invstd, relu_out, c_begin, c_end, dx, dscale, dbias)) \
    /* BatchNorm in pieces, for statistics synchronised across ranks: partial sums (Σ x, or */ \
    /* Σ (x − center)² when center is given, f64), the normalisation from given statistics, */ \
    /* the backward's partial sums (sums[2c] = Σ dy, sums[2c + 1] = Σ dy·(x − mean)) and its dx */ \
    /* from the job's sums over m values per channel. */ \
    X(void, batchnorm_partial_sums, (const float *x, int N, int C, int inner, const float *center, int c_begin, int c_end, \
                                     double *sums), (x, N, C, inner, center, c_begin, c_end, sums)) \
    X(void, batchnorm_apply, (const float *x, int N, int C, int inner, const float *scale, const float *bias, const float *mean, \
                              const float *invstd, int relu, int c_begin, int c_end, float *y), \
      (x, N, C, inner, scale, bias, mean, invstd, relu, c_begin, c_end, y)) \
    X(void, batchnorm_grad_partial_sums, (const float *dy, const float *x, int N, int C, int inner, const float *mean, \
                                          const float *relu_out, int c_begin, int c_end, double *sums), \
      (dy, x, N, C, inner, mean, relu_out, c_begin, c_end, sums)) \
    X(void, batchnorm_grad_apply, (const float *dy, const float *x, int N, int C, int inner, const float *scale, const float *mean, \
                                   const float *invstd, const float *relu_out, float m, const float *sum_dy, const float *sum_dyxhat, \
                                   int c_begin, int c_end, float *dx), \
      (dy, x, N, C, inner, scale, mean, invstd, relu_out, m, sum_dy, sum_dyxhat, c_begin, c_end, dx)) \
    \
    /* --- optimizer (kernels/optimizer.c) -------------------------------------------------- */ \
    /* PyTorch's SGD: g = grad + wd·p; v' = momentum·v + g; p' = p − lr·(nesterov ? g + momentum·v' : v'). */ \
    X(void, sgd, (const float *p, const float *g, const float *v, size_t n, float lr, float momentum, float wd, int nesterov, \
                  float *p_next, float *v_next), \
      (p, g, v, n, lr, momentum, wd, nesterov, p_next, v_next))

// A level's implementations, one pointer per kernel.
#define KILN_TABLE_ENTRY(ret, name, params, args) ret (*name) params;
typedef struct kiln_kernel_table {
    const char *level;
    KILN_KERNEL_LIST(KILN_TABLE_ENTRY)
} kiln_kernel_table;
#undef KILN_TABLE_ENTRY

#endif
