// Kiln's fast CPU kernels in C (compiled with -O3 and, unless KILN_PORTABLE is set, for the
// build machine's CPU). Layout NCHW; every function works on one image or one plane so the
// Swift executor can spread images over threads. No allocation: callers pass scratch space.
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include <stddef.h>

enum kiln_activation { KILN_ACT_NONE = 0, KILN_ACT_RELU = 1, KILN_ACT_LEAKY_RELU = 2, KILN_ACT_CLIP = 3,
                       KILN_ACT_SIGMOID = 4, KILN_ACT_HARDSWISH = 5 };

// Patches of one image x [C, H, W] as columns: col [C*KH*KW, OH*OW]; padding reads zero.
void kiln_im2col(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                 int DH, int DW, int OH, int OW, float *col);
// The rows of channel-and-kernel-row pairs r = c·KH + kh in [r_begin, r_end) only (the
// KW·P rows of col each pair fills), so threads can share one image.
void kiln_im2col_rows(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                      int DH, int DW, int OH, int OW, int r_begin, int r_end, float *col);
// The same with rows `ld` floats apart (several images' columns side by side).
void kiln_im2col_rows_ld(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                         int DH, int DW, int OH, int OW, int r_begin, int r_end, int ld, float *col);
// The columns of output rows [oh_begin, oh_end) only: col [C·KH·KW, (oh_end − oh_begin)·OW]
// (a panel that stays in cache for the product that follows).
void kiln_im2col_out_rows(const float *x, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                          int DH, int DW, int OW, int oh_begin, int oh_end, float *col);

// y [M, P] (one image's output planes): y = act(y + bias[m] + residual), in place.
// bias and residual may be NULL.
void kiln_epilogue(float *y, int M, int P, const float *bias, const float *residual, int act,
                   float alpha, float lo, float hi);

// Rows variant for Gemm outputs y [R, N]: bias per column, residual [R, N].
void kiln_epilogue_rows(float *y, int R, int N, const float *bias, int bias_per_row, const float *residual,
                        int act, float alpha, float lo, float hi);

// Elementwise activation over n values (y may equal x).
void kiln_activation(const float *x, float *y, size_t n, int act, float alpha, float lo, float hi);
/// One value through activation `act` (the epilogues' rule).
float kiln_apply_activation(float v, int act, float alpha, float lo, float hi);
/// Whether any of x[0..n) is NaN or ±inf.
int kiln_has_nonfinite(const float *x, size_t n);

// 2-D pooling over one plane x [H, W] → y [OH, OW]. Padding is ignored by max; average
// divides by the valid count, or by the count inside the padded input when include_pad.
void kiln_maxpool2d(const float *x, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int PHE, int PWE,
                    int DH, int DW, int OH, int OW, float *y);
void kiln_avgpool2d(const float *x, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int PHE, int PWE,
                    int DH, int DW, int OH, int OW, int include_pad, float *y);

// Mean of each of `planes` planes of `size` values.
void kiln_global_avgpool(const float *x, int planes, int size, float *y);

// y[k] = x[map[k]], or `fill` where map[k] < 0 (Slice, Pad, Transpose, Gather as index maps).
void kiln_gather_map(const float *x, const int *map, size_t n, float fill, float *y);

// Binary op over equal shapes, or b broadcast per channel (b_period values, each repeated
// `inner` times along the row-major order), or b a scalar. op: 0 add, 1 sub, 2 mul, 3 div.
void kiln_binary(const float *a, const float *b, float *y, size_t n, int op, size_t b_period, size_t inner);

// Inference BatchNormalization over one image x [C, P]: y = x·scale[c] + shift[c].
void kiln_scale_shift(const float *x, float *y, int C, int P, const float *scale, const float *shift);

// Softmax or log-softmax of `rows` rows of `n` contiguous values.
void kiln_softmax_rows(const float *x, float *y, int rows, int n, int log_softmax);


// Direct convolution, stride 1, dilation 1, one group, output channels in blocks of 8.
// The input is first copied into a zero-padded scratch image xp [C][plane] with row stride
// Wp = W + PW + PWE, so that every kernel tap is a constant shift of the output index
// q = oh·Wp + ow; outputs are computed on that grid in vectors of 32 and the columns past OW
// are dropped when stored.
// plane = kiln_conv_shift_plane(...) floats per channel.
int kiln_conv_shift_plane(int H, int W, int KH, int KW, int PH, int PW, int PHE, int PWE);
void kiln_conv_shift_pad(const float *x, int C, int H, int W, int PH, int PW, int PHE, int PWE, int plane, float *xp);
// Weights [M, C, KH, KW] → packed [M/8][C][KH·KW][8].
void kiln_conv_shift_pack(const float *w, int M, int C, int KH, int KW, float *packed);
// Output channel blocks [mb_begin, mb_end) of one image: y [M, OH, OW] (NCHW), with the
// epilogue y = act(conv + bias[m] + residual) applied as the block is stored.
void kiln_conv_shift(const float *xp, int C, int plane, int Wp, int KH, int KW, int OH, int OW,
                     const float *packed, int mb_begin, int mb_end, const float *bias, const float *residual,
                     int act, float alpha, float lo, float hi, float *y);

// One step of a fused elementwise chain: v = op(v, operand) or v = act(v).
typedef struct {
    int kind;          // 0..3: add, sub, mul, div with an operand; 10 + kiln_activation for activations
    int swap;          // operand op v instead of v op operand (Sub, Div)
    const float *operand;
    long period;       // operand broadcast: index (i / inner) % period; period 0: same shape
    long inner;
    float alpha, lo, hi;
} kiln_ew_op;

// y[i] = chain(x[i]) for n values, in blocks that stay in L1 (one pass over memory).
void kiln_elementwise_chain(const float *x, float *y, size_t n, const kiln_ew_op *ops, int count);
// The same over elements [begin, end) only (threads take ranges).
void kiln_elementwise_chain_range(const float *x, float *y, size_t begin, size_t end, const kiln_ew_op *ops, int count);

// Winograd F(2×2, 3×3) for 3×3 stride-1 convolutions (Lavin & Gray, 2016): 16 products per
// 2×2 outputs instead of 36. Weights are transformed once, U = G g Gᵀ, and packed for the
// path the convolution takes, which depends on its output width OW. A block of tile rows at a
// time: where rows are short, the input rows turned channels-last, transformed into
// Vt [16][T][C], 16 products Vt[ξ]·U[ξ] into Mt [16][T][M], Y = Aᵀ m A per tile, and the
// output rows turned back to NCHW; otherwise eight tiles of a row per vector, NCHW
// throughout. The epilogue y = act(conv + bias[m] + residual) is applied as y is stored.
// Scratch per thread: kiln_winograd_scratch(...) floats.
void kiln_winograd_pack(const float *w, int M, int C, int OW, float *packed);
int kiln_winograd_scratch(int C, int M, int H, int W, int PH, int PW, int PHE, int PWE, int OH, int OW);
void kiln_winograd_conv(const float *x, int C, int H, int W, int PH, int PW, int PHE, int PWE, int OH, int OW,
                        const float *packed, int M, const float *bias, const float *residual,
                        int act, float alpha, float lo, float hi, float *scratch, float *y);
// Part of one image: tile rows [th_begin, th_end) (each gives two output rows) and output
// channel blocks of 8 [mb_begin, mb_end). Threads can share an image by tile rows (no data
// shared but the input) or, when the transformed weights are large, by channel blocks (each
// reads only its part of them). scratch: kiln_winograd_scratch(...) floats of this thread's own.
typedef struct { int C, H, W, PH, PW, PHE, PWE, OH, OW, M; } kiln_winograd_shape;
int kiln_winograd_tile_rows(const kiln_winograd_shape *s);
void kiln_winograd_block(const kiln_winograd_shape *s, const float *x, const float *packed, int th_begin, int th_end,
                         int mb_begin, int mb_end, const float *bias, const float *residual, int act, float alpha,
                         float lo, float hi, float *scratch, float *y);

// Winograd F(2×2, 3×3) weight gradient of a 3×3 stride-1 convolution with geometry s (the
// forward's: x [C, H, W] → y [M, OH, OW]): dU [16][C][M] += Σ over the tiles of G images of
// (Bᵀ x B)[ξ][c] · (A dy Aᵀ)[ξ][m], from x [G][C][H][W] and dy [G][M][OH][OW]; C a multiple of 8.
// Then kiln_winograd_wgrad_finish: dw [M][C][3][3] += Gᵀ dU G.
// scratch: kiln_winograd_wgrad_scratch(s) floats of this thread's own.
int kiln_winograd_wgrad_scratch(const kiln_winograd_shape *s);
void kiln_winograd_wgrad_accumulate(const kiln_winograd_shape *s, const float *x, const float *dy, int G, float *dU, float *scratch);
void kiln_winograd_wgrad_finish(const float *dU, int M, int C, float *dw);

// A small thread pool for the executor: workers spin briefly between parallel steps (a
// kernel call is often tens of microseconds, shorter than waking a sleeping thread) and
// then block. kiln_pool_run calls fn(ctx, task) for task in [0, tasks) across the calling
// thread and the workers, and returns when all are done.
typedef struct kiln_pool kiln_pool;
kiln_pool *kiln_pool_create(int threads);
void kiln_pool_destroy(kiln_pool *pool);
void kiln_pool_run(kiln_pool *pool, int tasks, void (*fn)(void *ctx, int task), void *ctx);

// y [M, N] = act(W · B + bias[m] + residual) for output-channel blocks [mb_begin, mb_end):
// W packed [M/8][K][8] (kiln_conv_shift_pack with C·KH·KW = K), B [K, N] row-major (im2col
// columns, or the input itself for a 1×1 convolution), residual [M, N] or NULL.
void kiln_conv_gemm(const float *packed, const float *b, int K, int N, int mb_begin, int mb_end, const float *bias,
                    const float *residual, int act, float alpha, float lo, float hi, float *y);
// The same with rows of y and residual ldy floats apart (a panel of columns of a larger y).
void kiln_conv_gemm_ld(const float *packed, const float *b, int K, int N, int mb_begin, int mb_end, const float *bias,
                       const float *residual, size_t ldy, int act, float alpha, float lo, float hi, float *y);

// Training kernels (layout NCHW, f32).
// col [C·KH·KW, OH·OW] (im2col's layout) summed back into x [C, H, W] for channels
// [c_begin, c_end) (cleared first): the adjoint of kiln_im2col.
void kiln_col2im_rows(const float *col, int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                      int DH, int DW, int OH, int OW, int c_begin, int c_end, float *x);
// sums[c] = Σ over n and inner of x [N, C, inner], channels [c_begin, c_end).
void kiln_channel_sums(const float *x, int N, int C, int inner, int c_begin, int c_end, float *sums);
// Training-mode BatchNorm over x [N, C, inner] for channels [c_begin, c_end): batch mean,
// 1/√(var + ε), y, and running statistics momentum·running + (1 − momentum)·batch
// (unbiased variance); relu ≠ 0 applies ReLU to y.
void kiln_batchnorm_train(const float *x, int N, int C, int inner, const float *scale, const float *bias,
                          const float *run_mean, const float *run_var, float eps, float momentum, int relu, int c_begin, int c_end,
                          float *y, float *mean, float *invstd, float *next_mean, float *next_var);
// Its backward: dx, dscale, dbias for channels [c_begin, c_end); with relu_out (a ReLU's
// output) dy counts only where relu_out > 0.
void kiln_batchnorm_grad(const float *dy, const float *x, int N, int C, int inner, const float *scale, const float *mean,
                         const float *invstd, const float *relu_out, int c_begin, int c_end, float *dx, float *dscale, float *dbias);
// dx = dy where y > 0, else 0 (dx may equal dy).
void kiln_relu_grad(const float *dy, const float *y, size_t n, float *dx);
// dx = a + b where y > 0, else 0 (a gradient sum fused into ReLU's backward; dx may equal a or b).
void kiln_relu_grad_sum(const float *a, const float *b, const float *y, size_t n, float *dx);
// PyTorch's SGD: g = grad + wd·p; v' = momentum·v + g; p' = p − lr·(nesterov ? g + momentum·v' : v').
void kiln_sgd(const float *p, const float *g, const float *v, size_t n, float lr, float momentum, float wd, int nesterov,
              float *p_next, float *v_next);
// dx[map[k]] += dy[k] for map[k] ≥ 0 (the adjoint of kiln_gather_map; dx cleared by the caller).
void kiln_scatter_add_map(const float *dy, const int *map, size_t n, float *dx);

// Winograd-packed weights of the data gradient of a 3×3 stride-1 convolution with weights
// w [M, C, 3, 3]: the convolution of dy (M channels) by rot180(w) with channels swapped,
// giving C channels (C a multiple of 8) of width OW; as kiln_winograd_pack(…, C, M, OW, …).
void kiln_winograd_pack_flipped(const float *w, int M, int C, int OW, float *packed);

// dw [M, K] += dy [M, P] · colᵀ (col [K, P]) for output channels [m_begin, m_end): the
// weight gradient of a convolution from its output gradient and im2col patches.
void kiln_weight_grad(const float *dy, const float *col, int M, int K, int P, int m_begin, int m_end, float *dw);

// dy [M, OH, OW] → dyp [M, OH, Wp]: rows on a padded grid, the columns past OW zero.
void kiln_pad_rows(const float *dy, int M, int OH, int OW, int Wp, float *dyp);
// The weight gradient of a stride-1 convolution without patches: dw [M, C·KH·KW] +=
// Σ over G images of dyp_g [M, Q] · (xp_g shifted per tap), where xp_g [C][plane] is the
// image zero-padded by kiln_conv_shift_pad (row stride Wp) and Q = OH·Wp.
void kiln_weight_grad_shift(const float *dyp, const float *xp, int G, int M, int C, int KH, int KW, int Wp, int Q, int plane,
                            int m_begin, int m_end, float *dw);

#endif
