/* relate/graph.h: tensors, the per-step arena and the reverse-mode tape.
 * Not a general tensor library: tensors are dense float32, contiguous, at most 4-D, and live
 * only until relate_graph_reset; there are no broadcasting rules beyond what each op states.
 *
 * Methods are written as forward code. Every op allocates its output in the graph's arena and,
 * when an input needs a gradient, records a backward step on the tape;
 * relate_graph_backward(g, loss) walks the tape in reverse and accumulates into parameter
 * gradients. An op given a NULL input returns NULL; an op given shapes that do not fit records
 * an error (relate_graph_status) and returns NULL, so a forward pass is checked once at the end.
 *
 *   relate_graph *g = relate_graph_create();
 *   relate_tensor *x = relate_tensor_wrap(g, 4, (int64_t[]){n, 3, 32, 32}, images);
 *   relate_tensor *y = relate_backbone_forward(g, &bb, x, true);
 *   relate_tensor *loss = relate_mean(g, relate_mul(g, y, y));
 *   if (!loss || relate_graph_backward(g, loss) != RELATE_OK) puts(relate_graph_error(g)->msg);
 *   relate_graph_reset(g);   // next step reuses the same memory
 */
#ifndef RELATE_GRAPH_H
#define RELATE_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relate/params.h"
#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct relate_tensor {
    int ndim;
    int64_t shape[RELATE_MAX_DIMS];
    int64_t numel;
    float *data;
    float *grad;          /* allocated (zeroed) when the backward pass first reaches it */
    bool requires_grad;
    relate_param *param;  /* set for views of parameters: grad then aliases param->grad */
    /* [N,C,H,W] stored in oneDNN's nChw16c layout (C a multiple of 16; see relate_to_blocked16),
     * its gradient too. Only the ops that say so take such a tensor; the others fail the step. */
    bool blocked16;
} relate_tensor;

typedef struct relate_graph relate_graph;

relate_graph *relate_graph_create(void);
void relate_graph_destroy(relate_graph *g);
/* Releases every tensor of the step, clears the tape and the error. */
void relate_graph_reset(relate_graph *g);
relate_status relate_graph_status(const relate_graph *g);
const relate_error *relate_graph_error(const relate_graph *g);
/* Records an error on the graph (first one wins); returns NULL for convenient `return`. */
void *relate_graph_fail(relate_graph *g, relate_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* When false, ops record nothing (inference); default true. */
void relate_graph_set_grad_enabled(relate_graph *g, bool enabled);
/* By default a backward pass hands the gradient of each op output back for reuse as soon as the
 * op's backward step has run, so after relate_graph_backward only leaf tensors (inputs made with
 * relate_tensor_new/wrap, parameters) still hold gradients. keep=true keeps every gradient until
 * the reset (for tests that inspect intermediate gradients). */
void relate_graph_keep_grads(relate_graph *g, bool keep);
/* Data-parallel training (relate/dist.h): when on, each process's tensors hold its share of the
 * batch, and batch norm in training mode computes its statistics, and their gradients, over
 * every process's share (synchronised batch norm), so the N processes compute what one computes
 * on the whole batch. Every process must then run the same ops in the same order. Default off;
 * relate_graph_reset keeps the setting. */
void relate_graph_set_sync_batch(relate_graph *g, bool on);
bool relate_graph_sync_batch(const relate_graph *g);
/* Called by the backward pass for each parameter as soon as its gradient is final, that is once
 * every op that reads the parameter has run its backward step: once per parameter (of those made
 * into tensors with a gradient since the reset) and backward pass, in the order the gradients
 * complete, which is the same for every graph that records the same ops. Data-parallel training
 * starts summing gradients over the processes there, while the backward pass goes on. NULL: none
 * (the default). relate_graph_reset keeps the setting. */
typedef void (*relate_grad_ready_fn)(void *ctx, relate_param *p);
void relate_graph_on_grad_ready(relate_graph *g, relate_grad_ready_fn fn, void *ctx);
/* The arena's high-water mark: the peak memory of a step's activations and gradients. */
size_t relate_graph_peak_bytes(const relate_graph *g);
/* The work done since the last reset, for benchmarks' floors: FLOPs of the matrix products
 * (convolutions, linear layers, matmuls; forward and backward, 2 per multiply-add) and the bytes
 * of those layers' outputs (each written once by any implementation that does not recompute). */
void relate_graph_work(const relate_graph *g, double *flops, double *layer_bytes);
/* Scratch memory from the step's arena (freed by reset). */
void *relate_graph_alloc(relate_graph *g, size_t bytes);

/* A new tensor with uninitialised data. */
relate_tensor *relate_tensor_new(relate_graph *g, int ndim, const int64_t *shape);
relate_tensor *relate_tensor_zeros(relate_graph *g, int ndim, const int64_t *shape);
/* Wraps caller-owned data (not copied; must outlive the step); never requires a gradient. */
relate_tensor *relate_tensor_wrap(relate_graph *g, int ndim, const int64_t *shape, float *data);
/* A view of a parameter: its gradient accumulates into param->grad unless param->frozen. */
relate_tensor *relate_param_tensor(relate_graph *g, relate_param *p);

/* "[8, 3, 32, 32]": a tensor's shape for messages; returns buf. */
const char *relate_shape_str(const relate_tensor *t, char *buf, size_t size);

/* Threads of the compute kernels (OpenMP and OpenBLAS); results are deterministic for a given
 * count. */
void relate_set_threads(int n);
int relate_get_threads(void);

/* Runs the backward pass from a scalar (numel 1) tensor, seeding its gradient with 1. */
relate_status relate_graph_backward(relate_graph *g, relate_tensor *loss);
/* The backward pass of scale * loss (the value of loss is unchanged): a data-parallel process's
 * share of a loss that every process computes (scale 1/N), whose summed gradients are then the
 * loss's own. */
relate_status relate_graph_backward_scaled(relate_graph *g, relate_tensor *loss, float scale);

/* ---- ops (each matches the named PyTorch function; shapes in brackets) ---- */
/* F.conv2d(x [N,C,H,W], w [O,C,KH,KW], stride, padding), no bias. */
relate_tensor *relate_conv2d(relate_graph *g, relate_tensor *x, relate_tensor *w, int stride, int pad);
/* F.batch_norm over x [N,C] or [N,C,H,W]. training: batch statistics, updates running stats and
 * *num_batches_tracked (each may be NULL); eval: running statistics. */
relate_tensor *relate_batch_norm(relate_graph *g, relate_tensor *x, relate_tensor *gamma,
                                 relate_tensor *beta, float *running_mean, float *running_var,
                                 int64_t *num_batches_tracked, bool training, float momentum,
                                 float eps);
/* relate_relu(relate_add(relate_batch_norm(...), residual)) in one op (residual NULL: no add; relu
 * false: no ReLU), with the same values and gradients. The backbones' conv-BN-ReLU and residual
 * block ends: neither the normalised tensor nor the sum is stored, and the output is written in the
 * same pass as the normalisation. */
relate_tensor *relate_batch_norm_act(relate_graph *g, relate_tensor *x, relate_tensor *gamma,
                                     relate_tensor *beta, float *running_mean, float *running_var,
                                     int64_t *num_batches_tracked, bool training, float momentum, float eps,
                                     relate_tensor *residual, bool relu);
/* relate_avg_pool2d(relate_relu(relate_batch_norm(x, training = true)), 2, 2, 0) in one op: the
 * full-size activation is neither stored nor written (conv4's block tail). Same values and
 * gradients as the composed ops, up to the order of the statistics' double sums. */
relate_tensor *relate_batch_norm_relu_pool2(relate_graph *g, relate_tensor *x, relate_tensor *gamma,
                                            relate_tensor *beta, float *running_mean, float *running_var,
                                            int64_t *num_batches_tracked, float momentum, float eps);
/* relate_batch_norm_relu_pool2(relate_conv2d(x, w, stride, pad), ...) in one op for an image stem,
 * whose input needs no gradient: the backward pass makes batch norm's input gradient one image
 * at a time and hands it straight to the convolution's weight gradient, so that gradient (as
 * large as the convolution's output) is never stored. Fused where relate's direct stem kernel
 * runs the shape; elsewhere, and without gradients or with synchronised batch norm, the composed
 * ops. The same bits either way. */
relate_tensor *relate_conv2d_bn_relu_pool2(relate_graph *g, relate_tensor *x, relate_tensor *w, int stride, int pad,
                                           relate_tensor *gamma, relate_tensor *beta, float *running_mean,
                                           float *running_var, int64_t *num_batches_tracked, float momentum,
                                           float eps);
/* relate_conv2d(relate_relu(relate_batch_norm(x, training = true)), w, stride, pad) in one op that
 * does not keep the batch norm's output: it lives in the step's workspace while the convolution
 * runs, and the backward pass recomputes it from x and the saved statistics (the same float
 * expressions, so the same bits as the composed ops, which it falls back to without gradients or
 * with synchronised batch norm). A ResNet block's first activation, saved per block. */
relate_tensor *relate_bn_relu_conv2d(relate_graph *g, relate_tensor *x, relate_tensor *gamma, relate_tensor *beta,
                                     float *running_mean, float *running_var, int64_t *num_batches_tracked,
                                     float momentum, float eps, relate_tensor *w, int stride, int pad);
/* The nChw16c layout (relate_tensor.blocked16), in which the backbones keep their activations in
 * training (a ResNet's blocks, conv4's layers 2-4) so that oneDNN's convolutions read and write
 * them without reorders. relate_conv2d takes a blocked x where oneDNN runs the shape in that
 * layout (channel counts that are multiples of 16; otherwise the step fails with a message), and
 * y is then blocked; relate_batch_norm_act (training, without synchronised statistics; a residual
 * must be blocked too), relate_batch_norm_relu_pool2 and relate_bn_relu_conv2d take a blocked x
 * and give a blocked output. The values are those of the NCHW ops up to the order of batch norm's
 * double sums. Conversions, with their gradients: */
relate_tensor *relate_to_blocked16(relate_graph *g, relate_tensor *x);   /* [N,C,H,W], C % 16 == 0 */
/* relate_to_blocked16(relate_conv2d(x, w, stride, pad)) without the conversion: x NCHW with any
 * channel count, y nChw16c (conv4's second layer, whose input has 8 channels). */
relate_tensor *relate_conv2d_to_blocked16(relate_graph *g, relate_tensor *x, relate_tensor *w, int stride, int pad);
relate_tensor *relate_from_blocked16(relate_graph *g, relate_tensor *x); /* back to NCHW */
relate_tensor *relate_relu(relate_graph *g, relate_tensor *x);
relate_tensor *relate_leaky_relu(relate_graph *g, relate_tensor *x, float slope);
relate_tensor *relate_sigmoid(relate_graph *g, relate_tensor *x);
relate_tensor *relate_avg_pool2d(relate_graph *g, relate_tensor *x, int k, int stride, int pad);
relate_tensor *relate_max_pool2d(relate_graph *g, relate_tensor *x, int k, int stride, int pad);
/* AdaptiveAvgPool2d(1) then flatten: [N,C,H,W] -> [N,C]. */
relate_tensor *relate_global_avg_pool(relate_graph *g, relate_tensor *x);
/* F.linear(x [N,in], w [out,in], b [out] or NULL) -> [N,out]. */
relate_tensor *relate_linear(relate_graph *g, relate_tensor *x, relate_tensor *w, relate_tensor *b);
/* Same-shape element-wise ops. */
relate_tensor *relate_add(relate_graph *g, relate_tensor *a, relate_tensor *b);
relate_tensor *relate_mul(relate_graph *g, relate_tensor *a, relate_tensor *b);
relate_tensor *relate_maximum(relate_graph *g, relate_tensor *a, relate_tensor *b);
relate_tensor *relate_scale(relate_graph *g, relate_tensor *x, float alpha);
relate_tensor *relate_exp(relate_graph *g, relate_tensor *x);
relate_tensor *relate_log(relate_graph *g, relate_tensor *x);
/* Reductions over all elements to a scalar [1]. */
relate_tensor *relate_sum(relate_graph *g, relate_tensor *x);
relate_tensor *relate_mean(relate_graph *g, relate_tensor *x);
/* torch.cat([a, b], dim) for dim 0 (any rank, equal trailing dims) or dim 1 (2-D). */
relate_tensor *relate_concat(relate_graph *g, relate_tensor *a, relate_tensor *b, int dim);
/* x[start : start+count] along dim 0. */
relate_tensor *relate_slice_rows(relate_graph *g, relate_tensor *x, int64_t start, int64_t count);
/* x[:, start : start+count] of a 2-D tensor. */
relate_tensor *relate_slice_cols(relate_graph *g, relate_tensor *x, int64_t start, int64_t count);
/* Data-parallel training: x is this process's share of a batch laid out as `blocks` blocks (views)
 * of rows[rank] rows; the result is the whole batch on every process, block k holding process
 * 0's rows of it, then process 1's, and so on: what one process would hold. Its backward sums the
 * processes' gradients of the result (each computed from a loss scaled by 1/N) and gives x the
 * rows that are its own. Every process must call it at the same point of its step. */
relate_tensor *relate_gather_shards(relate_graph *g, relate_tensor *x, int blocks, const int *rows, int nranks,
                                    int rank);
/* torch.roll(x, shift, dims=0). */
relate_tensor *relate_roll_rows(relate_graph *g, relate_tensor *x, int64_t shift);
/* Same data, new shape of equal numel. */
relate_tensor *relate_reshape(relate_graph *g, relate_tensor *x, int ndim, const int64_t *shape);
/* op(a) @ op(b) for 2-D tensors. */
relate_tensor *relate_matmul(relate_graph *g, relate_tensor *a, relate_tensor *b, bool trans_a,
                             bool trans_b);
/* Pair rows: y[p] = a[ia[p]] + b[ib[p]] (+ bias), or with max=true torch.maximum(a[ia[p]],
 * b[ib[p]]) (+ bias), for p < rows: [rows, C] from a [Na, C] and b [Nb, C] (a and b may be the same
 * tensor). relationnet's pairs without materialising them per layer. The index lists are copied. */
relate_tensor *relate_pair_rows(relate_graph *g, relate_tensor *a, const int32_t *ia, relate_tensor *b,
                                const int32_t *ib, int64_t rows, relate_tensor *bias, bool max);
/* relationnet's relation head over pair rows in one op: logits [rows, 1] =
 * Linear(C, 1)(LeakyReLU(BatchNorm1d(pair_rows(a, ia, b, ib, bias1)))), batch norm in training mode
 * (updates the running statistics and num_batches_tracked). The same function as composing
 * relate_pair_rows, relate_batch_norm, relate_leaky_relu and relate_linear, but it stores only the
 * [rows, C] pre-norm tensor and recomputes the rest in the backward pass (less memory, fewer
 * passes over it). The index lists are copied. */
typedef struct relate_relation_head_layers {
    relate_tensor *bias1;              /* [C]: linear1's bias */
    relate_tensor *gamma, *beta;       /* [C]: bn1 */
    float *running_mean, *running_var; /* [C]: bn1's buffers */
    int64_t *num_batches_tracked;      /* may be NULL */
    relate_tensor *w2, *b2;            /* [1, C] and [1]: linear2 */
    float momentum, eps, slope;
} relate_relation_head_layers;
relate_tensor *relate_relation_head(relate_graph *g, relate_tensor *a, const int32_t *ia, relate_tensor *b,
                                    const int32_t *ib, int64_t rows, const relate_relation_head_layers *l);
relate_tensor *relate_log_softmax(relate_graph *g, relate_tensor *x);
/* F.normalize(x [N,C], p=2, dim=1, eps). */
relate_tensor *relate_l2_normalize(relate_graph *g, relate_tensor *x, float eps);
/* F.cross_entropy(logits [N,C], targets, weight=weights or NULL): scalar. */
relate_tensor *relate_cross_entropy(relate_graph *g, relate_tensor *logits, const int32_t *targets,
                                    const float *weights);
/* F.binary_cross_entropy_with_logits(x, t) (mean); t is a constant of x's shape. */
relate_tensor *relate_bce_with_logits(relate_graph *g, relate_tensor *x, const float *targets);
/* The sigmoid focal loss of spec 3.1.5 (mean). */
relate_tensor *relate_focal_loss(relate_graph *g, relate_tensor *x, const float *targets,
                                 float alpha, float gamma);
/* simclr's loss (spec 3.2, the reference's -log of the mean ratio) on z [N, C], N even, rows 2n and
 * 2n+1 the two views of image n: S = cosine matrix (norm products clamped at eps), E = exp(S/tau),
 * q_r = E[partner(r), r] / (sum_a E[a, r] - exp(1/tau)), loss = -log(mean_r q_r). Scalar. */
relate_tensor *relate_simclr_loss(relate_graph *g, relate_tensor *z, float tau, float eps);
/* ---- Deep InfoMax (spec 3.4; src/autograd/ops_infomax.c) ---- */
/* x [N,C,H,W] -> [N*H*W, C], row n*H*W + p = x[n, :, p] (x.permute(0,2,3,1).reshape(-1, C)). */
relate_tensor *relate_nchw_to_rows(relate_graph *g, relate_tensor *x);
/* x [N,C] -> [N*reps, C], row i*reps + r = x[i]: y broadcast to every position of its image. */
relate_tensor *relate_repeat_rows(relate_graph *g, relate_tensor *x, int64_t reps);
/* F.softplus(x, beta, threshold); and alpha * x + beta (e.g. 1.0 - x). */
relate_tensor *relate_softplus(relate_graph *g, relate_tensor *x, float beta, float threshold);
relate_tensor *relate_scale_shift(relate_graph *g, relate_tensor *x, float alpha, float beta);
/* The local term mean(softplus(T(M'))) + mean(softplus(-T(M))) with 1x1 convolutions c0 (split as
 * W_M M + yb, yb = W_y y + b0 per image), c1 (w1 [C1,C0], b1) and c2 (w2 [C1], b2 [1]) over
 * M [B,C,H,W], M'[n] = M[(n+1) mod B], without building [M || y]: scalar. */
relate_tensor *relate_infomax_local_loss(relate_graph *g, relate_tensor *m, relate_tensor *w_m, relate_tensor *yb,
                                         relate_tensor *w1, relate_tensor *b1, relate_tensor *w2, relate_tensor *b2);

#ifdef __cplusplus
}
#endif
#endif
