/* adam.c: torch.optim.Adam (PyTorch 1.13 single-tensor path, amsgrad off, maximize off) with
 * float32 rounding placed exactly where PyTorch's CPU kernels round.
 * Not AdamW and not the foreach path: decay is L2 added to the gradient, one tensor at a time. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim/groups.h"
#include "relate/optim.h"

#define ADAM_TENSORS 2 /* exp_avg, exp_avg_sq */

relate_status relate_adam_init(relate_adam *opt, const relate_param_group *groups, int ngroups,
                               double beta1, double beta2, double eps, relate_error *err)
{
    memset(opt, 0, sizeof *opt);
    /* torch.optim.Adam's own argument checks, negated so NaN fails too. */
    if (!(eps >= 0.0))
        return relate_error_set(err, RELATE_ERR_ARG, "invalid epsilon value: %g", eps);
    if (!(beta1 >= 0.0 && beta1 < 1.0))
        return relate_error_set(err, RELATE_ERR_ARG, "invalid beta parameter at index 0: %g", beta1);
    if (!(beta2 >= 0.0 && beta2 < 1.0))
        return relate_error_set(err, RELATE_ERR_ARG, "invalid beta parameter at index 1: %g", beta2);
    relate_status st = relate_optim_copy_groups(groups, ngroups, &opt->groups, &opt->nparams, err);
    if (st != RELATE_OK)
        return st;
    opt->ngroups = ngroups;
    float *reserve;
    size_t reserve_floats;
    opt->state = relate_optim_alloc_state(opt->groups, ngroups, opt->nparams, sizeof *opt->state,
                                          ADAM_TENSORS, &reserve, &reserve_floats);
    if (!opt->state) {
        relate_adam_free(opt);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for Adam state");
    }
    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    return RELATE_OK;
}

/* The scalars of one tensor update, already rounded to float the way PyTorch converts a Python
 * number when it meets a float32 tensor. */
typedef struct adam_scalars {
    float wd, beta1, one_minus_beta1, beta2, one_minus_beta2, bc2_sqrt, eps, neg_step_size;
    int has_wd;
} adam_scalars;

/* PyTorch's sequence, one fused pass:
 *   grad = grad.add(param, alpha=wd)             add kernel: fma(param, wd, grad)
 *   exp_avg.mul_(b1).add_(grad, alpha=1-b1)      mul, then fma(grad, 1-b1, exp_avg)
 *   exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1-b2)   mul, then fma((1-b2)*grad, grad, v)
 *   denom = (exp_avg_sq.sqrt() / bc2_sqrt).add_(eps)
 *   param.addcdiv_(exp_avg, denom, value=-step_size)      param + (s*exp_avg)/denom
 * The fmas are the ones PyTorch 1.13's vectorised and scalar CPU kernels both perform; the
 * build is ISO C (no implicit contraction), so every other operation rounds separately.
 * sqrtf keeps this loop scalar (errno handling; -fno-math-errno would vectorise it, ~3.5x on
 * this loop), which costs ~30 ms per step on resnet34's 21.8M parameters: noise beside a
 * forward/backward pass. */
static void adam_update(float *restrict p, const float *restrict grad, float *restrict m,
                        float *restrict v, int64_t n, adam_scalars s)
{
#pragma omp parallel for simd schedule(static) if (n >= RELATE_OPTIM_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float g = s.has_wd ? fmaf(p[i], s.wd, grad[i]) : grad[i];
        float mi = fmaf(g, s.one_minus_beta1, m[i] * s.beta1);
        float vi = fmaf(s.one_minus_beta2 * g, g, v[i] * s.beta2);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / s.bc2_sqrt + s.eps;
        p[i] = p[i] + s.neg_step_size * mi / denom;
    }
}

void relate_adam_step(relate_adam *opt)
{
    float *reserve = relate_optim_reserve(opt->state, opt->nparams, sizeof *opt->state);
    size_t slot = 0;
    int k = 0;
    for (int gi = 0; gi < opt->ngroups; gi++) {
        const relate_param_group *grp = &opt->groups[gi];
        for (int j = 0; j < grp->count; j++, k++) {
            relate_param *prm = grp->params[j];
            relate_adam_state *st = &opt->state[k];
            size_t nslot = relate_optim_slot_floats(prm);
            float *mine = reserve + slot;
            slot += ADAM_TENSORS * nslot;
            if (!relate_optim_owns_state(prm) || prm->frozen || !prm->grad || !prm->data)
                continue;
            /* PyTorch creates the state (zeros) at a parameter's first step, not before. */
            if (!st->exp_avg) {
                st->exp_avg = mine;
                memset(st->exp_avg, 0, (size_t)prm->numel * sizeof(float));
            }
            if (!st->exp_avg_sq) {
                st->exp_avg_sq = mine + nslot;
                memset(st->exp_avg_sq, 0, (size_t)prm->numel * sizeof(float));
            }
            st->step++;
            /* Python arithmetic on floats, i.e. double, as in _single_tensor_adam. */
            double step = (double)st->step;
            double bias_correction1 = 1.0 - pow(opt->beta1, step);
            double bias_correction2 = 1.0 - pow(opt->beta2, step);
            double step_size = grp->lr / bias_correction1;
            adam_scalars s = {
                .wd = (float)grp->weight_decay,
                .has_wd = grp->weight_decay != 0.0,
                .beta1 = (float)opt->beta1,
                .one_minus_beta1 = (float)(1.0 - opt->beta1),
                .beta2 = (float)opt->beta2,
                .one_minus_beta2 = (float)(1.0 - opt->beta2),
                .bc2_sqrt = (float)sqrt(bias_correction2),
                .eps = (float)opt->eps,
                .neg_step_size = (float)(-step_size),
            };
            adam_update(prm->data, prm->grad, st->exp_avg, st->exp_avg_sq, prm->numel, s);
        }
    }
}

void relate_adam_free(relate_adam *opt)
{
    if (opt->state) {
        float *reserve = relate_optim_reserve(opt->state, opt->nparams, sizeof *opt->state);
        size_t floats = relate_optim_reserve_floats(opt->groups, opt->ngroups, ADAM_TENSORS);
        for (int k = 0; k < opt->nparams; k++) {
            relate_optim_free_tensor(opt->state[k].exp_avg, reserve, floats);
            relate_optim_free_tensor(opt->state[k].exp_avg_sq, reserve, floats);
        }
        free(opt->state);
    }
    relate_optim_free_groups(opt->groups, opt->ngroups);
    memset(opt, 0, sizeof *opt);
}
