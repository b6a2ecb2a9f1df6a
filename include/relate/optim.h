/* relate/optim.h: SGD and Adam with torch.optim's exact update rules (PyTorch 1.13
 * single-tensor path, which matches the 1.4 formulas of spec 3.9), parameter groups and the
 * reference's step decays.
 * Not a scheduler framework: a decay is a function of the epoch that the caller applies.
 *
 *   relate_param_group groups[2] = {
 *       {.params = bb_params, .count = nbb, .lr = 1e-3f},
 *       {.params = head_params, .count = nhead, .lr = 1e-3f}};
 *   relate_adam adam;
 *   relate_adam_init(&adam, groups, 2, 0.9, 0.999, 1e-8, &err);
 *   ... backward ...
 *   relate_adam_step(&adam);
 */
#ifndef RELATE_OPTIM_H
#define RELATE_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "relate/params.h"
#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A group of RELATE_PARAM entries with its own hyper-parameters. The optimizer copies the
 * pointer array; the params themselves stay owned by their store. */
typedef struct relate_param_group {
    relate_param **params;
    int count;
    double lr;
    double weight_decay; /* L2 added to the gradient, as torch.optim does */
} relate_param_group;

/* Per-parameter state, in the same order as the flattened groups (PyTorch's ids 0..N-1). */
typedef struct relate_adam_state {
    int64_t step;       /* 0: never stepped (no state entry in a PyTorch state dict) */
    float *exp_avg;     /* allocated at the first step, like PyTorch's lazy state */
    float *exp_avg_sq;
} relate_adam_state;

typedef struct relate_adam {
    relate_param_group *groups;
    int ngroups;
    double beta1, beta2, eps;
    relate_adam_state *state; /* one per parameter, groups flattened in order */
    int nparams;
} relate_adam;

relate_status relate_adam_init(relate_adam *opt, const relate_param_group *groups, int ngroups,
                               double beta1, double beta2, double eps, relate_error *err);
/* One update of every parameter that has a gradient block (frozen ones are skipped). */
void relate_adam_step(relate_adam *opt);
void relate_adam_free(relate_adam *opt);

typedef struct relate_sgd_state {
    float *momentum_buffer; /* NULL until the first step with momentum != 0 */
} relate_sgd_state;

typedef struct relate_sgd {
    relate_param_group *groups;
    int ngroups;
    double momentum, dampening;
    bool nesterov;
    relate_sgd_state *state;
    int nparams;
} relate_sgd;

relate_status relate_sgd_init(relate_sgd *opt, const relate_param_group *groups, int ngroups,
                              double momentum, double dampening, bool nesterov, relate_error *err);
void relate_sgd_step(relate_sgd *opt);
void relate_sgd_free(relate_sgd *opt);

/* The reference's step decay: the learning-rate factor (0.1 per milestone passed) at the start
 * of `epoch` for milestones floor(0.5*total) and floor(0.75*total). `standard` passes its
 * --epochs; finetuning passes the reference's hard-coded 200 (so 100 epochs never decay). */
double relate_step_decay_factor(int epoch, int total_epochs);
/* Sets every group's lr to base_lr[g] * factor. */
void relate_groups_set_lr(relate_param_group *groups, int ngroups, const double *base_lr,
                          double factor);

#ifdef __cplusplus
}
#endif
#endif
