/* groups.c: parameter-group copies and state reservation shared by Adam and SGD.
 * Not an optimizer: the update rules live in adam.c and sgd.c. */
#include "optim/groups.h"

#include <stdlib.h>
#include <string.h>

#define STATE_ALIGN 64

static size_t round_up(size_t n) { return (n + STATE_ALIGN - 1) / STATE_ALIGN * STATE_ALIGN; }

void relate_optim_free_groups(relate_param_group *groups, int ngroups)
{
    if (!groups)
        return;
    for (int g = 0; g < ngroups; g++)
        free(groups[g].params);
    free(groups);
}

relate_status relate_optim_copy_groups(const relate_param_group *groups, int ngroups,
                                       relate_param_group **out, int *nparams, relate_error *err)
{
    *out = NULL;
    *nparams = 0;
    if (ngroups <= 0 || !groups)
        return relate_error_set(err, RELATE_ERR_ARG, "optimizer got an empty parameter list");
    int total = 0;
    for (int g = 0; g < ngroups; g++) {
        const relate_param_group *src = &groups[g];
        if (src->count < 0 || (src->count > 0 && !src->params))
            return relate_error_set(err, RELATE_ERR_ARG, "parameter group %d is malformed", g);
        /* Written as negations so NaN is rejected too. */
        if (!(src->lr >= 0.0))
            return relate_error_set(err, RELATE_ERR_ARG, "invalid learning rate: %g", src->lr);
        if (!(src->weight_decay >= 0.0))
            return relate_error_set(err, RELATE_ERR_ARG, "invalid weight_decay value: %g",
                                    src->weight_decay);
        for (int i = 0; i < src->count; i++)
            if (!src->params[i])
                return relate_error_set(err, RELATE_ERR_ARG, "parameter group %d has a NULL entry", g);
        total += src->count;
    }
    if (total == 0)
        return relate_error_set(err, RELATE_ERR_ARG, "optimizer got an empty parameter list");
    /* A parameter in two places would be stepped twice per step; torch.optim refuses it. The
     * lists are a few hundred entries, so the quadratic scan costs nothing. */
    for (int g = 0; g < ngroups; g++)
        for (int i = 0; i < groups[g].count; i++)
            for (int h = g; h < ngroups; h++)
                for (int j = (h == g ? i + 1 : 0); j < groups[h].count; j++)
                    if (groups[g].params[i] == groups[h].params[j])
                        return relate_error_set(err, RELATE_ERR_ARG,
                                                "parameter '%s' appears more than once in the "
                                                "parameter groups",
                                                groups[g].params[i]->name ? groups[g].params[i]->name
                                                                          : "?");

    relate_param_group *copy = calloc((size_t)ngroups, sizeof *copy);
    if (!copy)
        return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for parameter groups");
    for (int g = 0; g < ngroups; g++) {
        copy[g] = groups[g];
        copy[g].params = NULL;
        if (groups[g].count > 0) {
            copy[g].params = malloc((size_t)groups[g].count * sizeof *copy[g].params);
            if (!copy[g].params) {
                relate_optim_free_groups(copy, ngroups);
                return relate_error_set(err, RELATE_ERR_NOMEM, "out of memory for parameter groups");
            }
            memcpy(copy[g].params, groups[g].params, (size_t)groups[g].count * sizeof *copy[g].params);
        }
    }
    *out = copy;
    *nparams = total;
    return RELATE_OK;
}

float *relate_optim_reserve(void *state, int nparams, size_t state_size)
{
    return (float *)((char *)state + round_up((size_t)nparams * state_size));
}

size_t relate_optim_reserve_floats(const relate_param_group *groups, int ngroups,
                                   int tensors_per_param)
{
    size_t floats = 0;
    for (int g = 0; g < ngroups; g++)
        for (int i = 0; i < groups[g].count; i++)
            floats += (size_t)tensors_per_param * relate_optim_slot_floats(groups[g].params[i]);
    return floats;
}

void *relate_optim_alloc_state(const relate_param_group *groups, int ngroups, int nparams,
                               size_t state_size, int tensors_per_param, float **reserve,
                               size_t *reserve_floats)
{
    size_t floats = relate_optim_reserve_floats(groups, ngroups, tensors_per_param);
    size_t head = round_up((size_t)nparams * state_size);
    size_t bytes = round_up(head + floats * sizeof(float));
    void *block = aligned_alloc(STATE_ALIGN, bytes);
    if (!block)
        return NULL;
    /* Only the state array is cleared here; a slot is zeroed when its parameter first steps,
     * so untouched pages of a large reserve are never faulted in. */
    memset(block, 0, head);
    *reserve = relate_optim_reserve(block, nparams, state_size);
    *reserve_floats = floats;
    return block;
}

void relate_optim_free_tensor(float *t, const float *reserve, size_t reserve_floats)
{
    uintptr_t a = (uintptr_t)t, lo = (uintptr_t)reserve, hi = (uintptr_t)(reserve + reserve_floats);
    if (t && (a < lo || a >= hi))
        free(t);
}
