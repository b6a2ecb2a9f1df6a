/* sgd.c: torch.optim.SGD (PyTorch 1.13 single-tensor path, maximize off): L2 decay, momentum
 * with dampening, Nesterov, with float32 rounding where PyTorch's CPU kernels round.
 * Not a learning-rate schedule: the caller sets each group's lr (see schedule.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "optim/groups.h"
#include "relate/optim.h"

relate_status relate_sgd_init(relate_sgd *opt, const relate_param_group *groups, int ngroups,
                              double momentum, double dampening, bool nesterov, relate_error *err)
{
    memset(opt, 0, sizeof *opt);
    if (!(momentum >= 0.0))
        return relate_error_set(err, RELATE_ERR_ARG, "invalid momentum value: %g", momentum);
    if (isnan(dampening))
        return relate_error_set(err, RELATE_ERR_ARG, "invalid dampening value: %g", dampening);
    if (nesterov && (momentum <= 0.0 || dampening != 0.0))
        return relate_error_set(err, RELATE_ERR_ARG,
                                "Nesterov momentum requires a momentum and zero dampening");
    relate_status st = relate_optim_copy_groups(groups, ngroups, &opt->groups, &opt->nparams, err);
    if (st != RELATE_OK)
        return st;
    opt->ngroups = ngroups;
    float *reserve;
    size_t reserve_floats;
    /* Without momentum SGD keeps no state; the empty reserve still carries the state array. */
    opt->state = relate_optim_alloc_state(opt->groups, ngroups, opt->nparams, sizeof *opt->state,
                                          momentum != 0.0, &reserve, &reserve_floats);
    if (!opt->state) {
        relate_sgd_free(opt);
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for SGD state");
    }
    opt->momentum = momentum;
    opt->dampening = dampening;
    opt->nesterov = nesterov;
    return RELATE_OK;
}

typedef struct sgd_scalars {
    float wd, momentum, one_minus_dampening, neg_lr;
    int has_wd, first, nesterov;
} sgd_scalars;

/* PyTorch's sequence, one fused pass (fma wherever its add kernel takes an alpha):
 *   d_p = grad.add(param, alpha=wd)
 *   buf = clone(d_p) the first time, else buf.mul_(momentum).add_(d_p, alpha=1-dampening)
 *   d_p = d_p.add(buf, alpha=momentum) with Nesterov, else buf
 *   param.add_(d_p, alpha=-lr) */
static void sgd_update(float *restrict p, const float *restrict grad, float *restrict buf,
                       int64_t n, sgd_scalars s)
{
    if (!buf) {
#pragma omp parallel for simd schedule(static) if (n >= RELATE_OPTIM_PAR_MIN)
        for (int64_t i = 0; i < n; i++) {
            float d = s.has_wd ? fmaf(p[i], s.wd, grad[i]) : grad[i];
            p[i] = fmaf(d, s.neg_lr, p[i]);
        }
        return;
    }
#pragma omp parallel for simd schedule(static) if (n >= RELATE_OPTIM_PAR_MIN)
    for (int64_t i = 0; i < n; i++) {
        float d = s.has_wd ? fmaf(p[i], s.wd, grad[i]) : grad[i];
        float b = s.first ? d : fmaf(d, s.one_minus_dampening, buf[i] * s.momentum);
        buf[i] = b;
        d = s.nesterov ? fmaf(b, s.momentum, d) : b;
        p[i] = fmaf(d, s.neg_lr, p[i]);
    }
}

void relate_sgd_step(relate_sgd *opt)
{
    float *reserve = relate_optim_reserve(opt->state, opt->nparams, sizeof *opt->state);
    size_t slot = 0;
    int k = 0;
    bool use_momentum = opt->momentum != 0.0;
    for (int gi = 0; gi < opt->ngroups; gi++) {
        const relate_param_group *grp = &opt->groups[gi];
        for (int j = 0; j < grp->count; j++, k++) {
            relate_param *prm = grp->params[j];
            relate_sgd_state *st = &opt->state[k];
            float *mine = reserve + slot;
            if (use_momentum)
                slot += relate_optim_slot_floats(prm);
            if (!relate_optim_owns_state(prm) || prm->frozen || !prm->grad || !prm->data)
                continue;
            sgd_scalars s = {
                .wd = (float)grp->weight_decay,
                .has_wd = grp->weight_decay != 0.0,
                .momentum = (float)opt->momentum,
                .one_minus_dampening = (float)(1.0 - opt->dampening),
                .neg_lr = (float)(-grp->lr),
                .nesterov = opt->nesterov,
            };
            if (use_momentum && !st->momentum_buffer) {
                /* The clone of the first step overwrites the whole slot: no zeroing needed. */
                st->momentum_buffer = mine;
                s.first = 1;
            }
            sgd_update(prm->data, prm->grad, use_momentum ? st->momentum_buffer : NULL, prm->numel, s);
        }
    }
}

void relate_sgd_free(relate_sgd *opt)
{
    if (opt->state) {
        float *reserve = relate_optim_reserve(opt->state, opt->nparams, sizeof *opt->state);
        size_t floats = relate_optim_reserve_floats(opt->groups, opt->ngroups, opt->momentum != 0.0);
        for (int k = 0; k < opt->nparams; k++)
            relate_optim_free_tensor(opt->state[k].momentum_buffer, reserve, floats);
        free(opt->state);
    }
    relate_optim_free_groups(opt->groups, opt->ngroups);
    memset(opt, 0, sizeof *opt);
}
