/* method_internal.h: the table each method fills in, and helpers the methods share.
 * Not public: include/relate/method.h is the contract. */
#ifndef RELATE_METHODS_METHOD_INTERNAL_H
#define RELATE_METHODS_METHOD_INTERNAL_H

#include "relate/method.h"
#include "methods/data_parallel.h"
#include "relate/optim.h"

struct relate_method_ops {
    const char *name;
    bool trains;
    bool drop_last;
    /* Builds heads and optimizer; the backbone exists already. */
    relate_status (*init)(relate_method *m, relate_error *err);
    void (*destroy)(relate_method *m);
    int (*views)(const relate_method *m);
    relate_pipeline (*pipeline)(const relate_method *m, const relate_dataset_info *info);
    relate_split_kind (*split)(const relate_method *m, const relate_dataset_info *info);
    relate_status (*epoch_begin)(relate_method *m, const relate_epoch_context *ctx, relate_error *err); /* may be NULL */
    void (*loader_setup)(relate_method *m, relate_loader_config *cfg);                                   /* may be NULL */
    relate_status (*step)(relate_method *m, relate_graph *g, const relate_batch *b, relate_step_result *r,
                          relate_error *err);
    relate_status (*save)(const relate_method *m, relate_ckpt_writer *w, relate_error *err);
    relate_status (*load)(relate_method *m, const relate_ckpt *c, relate_error *err);
    relate_linear_layer *(*classifier)(relate_method *m); /* may be NULL */
};

extern const relate_method_ops relate_method_relationnet;
extern const relate_method_ops relate_method_standard;
extern const relate_method_ops relate_method_randomweights;
extern const relate_method_ops relate_method_simclr;
extern const relate_method_ops relate_method_rotationnet;
extern const relate_method_ops relate_method_deepinfomax;
extern const relate_method_ops relate_method_deepcluster;

/* The RELATE_PARAM entries of a store in registration order (PyTorch's parameters() order),
 * malloc'd; *count receives their number. NULL when out of memory. */
relate_param **relate_collect_params(const relate_params *p, int *count);

/* Adam (betas 0.9/0.999, eps 1e-8) on the two groups every self-supervised method uses: the
 * backbone's parameters, then the head's, both at lr (spec 3, "groups (backbone; head)"). */
relate_status relate_backbone_head_adam(relate_adam *opt, const relate_params *backbone, const relate_params *head,
                                        double lr, relate_error *err);

/* The head streams of a seed: the reference re-seeds before building heads (spec 1.3 step 4), so
 * heads draw from their own stream, never from the backbone's. */
void relate_head_rng(relate_rng *r, uint64_t seed, uint32_t head_index);

/* Checks that c holds every key in `keys` (NULL-terminated) and names what is missing. */
relate_status relate_ckpt_require_keys(const relate_ckpt *c, const char *what, const char *const *keys,
                                       relate_error *err);

/* Fraction (in %) of logits whose rounded sigmoid equals the 0/1 target, over [begin, end). */
double relate_binary_accuracy(const float *logits, const float *targets, int64_t begin, int64_t end);

/* relationnet's head and loss on given features f [K*B, d] (tests compare them with PyTorch and
 * the factorised head with the literal one); *logits receives the [P] pair logits. */
relate_tensor *relate_relationnet_loss(relate_graph *g, relate_method *m, relate_tensor *f, int B,
                                       relate_tensor **logits, relate_error *err);
relate_params *relate_relationnet_head(relate_method *m);
const float *relate_relationnet_targets(const relate_method *m);

/* ---- simclr and rotationnet test hooks (tests/baselines_sr compares them with PyTorch) ---- */
/* simclr: out [2B, ...] rows 2n, 2n+1 = views [V0; V1] rows n, B + n; head + loss on features
 * f [2B, d] in that interleaved order (*z receives the [2B, 64] embeddings when non-NULL). */
void relate_simclr_interleave(float *out, const float *views, int B, size_t image_floats);
relate_tensor *relate_simclr_head_loss(relate_graph *g, relate_method *m, relate_tensor *f, relate_tensor **z);
relate_params *relate_simclr_head(relate_method *m);
/* rotationnet: out [4B, C, S, S] = [X; R1 X; R2 X; R3 X] (spec 3.3); classifier + mean CE on
 * features f [4B, d] against targets [0]*B, [1]*B, [2]*B, [3]*B. */
void relate_rotation_batch(float *out, const float *x, int B, int C, int S);
relate_tensor *relate_rotationnet_loss(relate_graph *g, relate_method *m, relate_tensor *f, int B,
                                       relate_tensor **logits);
relate_linear_layer *relate_rotationnet_classifier(relate_method *m);

/* ---- deepinfomax test hooks (tests/deepinfomax compares them with PyTorch) ---- */
/* L = LOCAL + PRIOR (spec 3.4) on features y [B, d], local map M [B, M_ch, H, W] and prior samples
 * u [B*d]; *local and *prior (nullable) receive the two terms. cfg.factorised_head selects the fused
 * local term (default) or the reference's literal concatenation. */
relate_tensor *relate_deepinfomax_loss(relate_graph *g, relate_method *m, relate_tensor *y, relate_tensor *M,
                                       const float *u, relate_tensor **local, relate_tensor **prior);
relate_params *relate_deepinfomax_discriminators(relate_method *m);
/* The u ~ U[0,1) of batch `batch_number` of `epoch` (count floats). */
void relate_deepinfomax_prior_samples(float *u, uint64_t seed, int epoch, int64_t batch_number, int64_t count);

#endif
