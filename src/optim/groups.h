/* groups.h: what Adam and SGD share: validated private copies of the parameter groups and the
 * state storage reserved at init. Not public API: include/relate/optim.h is the contract. */
#ifndef RELATE_OPTIM_GROUPS_H
#define RELATE_OPTIM_GROUPS_H

#include <stddef.h>
#include <stdint.h>

#include "relate/optim.h"

/* Below this many elements one thread updates a tensor: a parallel region costs more than it
 * saves. The update is element-wise, so the result never depends on the thread count. */
#define RELATE_OPTIM_PAR_MIN 32768

/* Copies groups and their pointer arrays into *out, counting the parameters into *nparams.
 * Rejects what torch.optim rejects: no parameters at all, a parameter listed twice, a negative
 * (or NaN) lr or weight decay. */
relate_status relate_optim_copy_groups(const relate_param_group *groups, int ngroups,
                                       relate_param_group **out, int *nparams, relate_error *err);
void relate_optim_free_groups(relate_param_group *groups, int ngroups);

/* True for entries an optimizer may ever update (its state is reserved for these only). */
static inline int relate_optim_owns_state(const relate_param *p)
{
    return p->kind == RELATE_PARAM && p->numel > 0;
}

/* Floats of one state tensor's slot: numel rounded up to a 64-byte multiple, so every slot of
 * the reserve stays as aligned as the parameter blocks. */
static inline size_t relate_optim_slot_floats(const relate_param *p)
{
    return relate_optim_owns_state(p) ? ((size_t)p->numel + 15) / 16 * 16 : 0;
}

/* The per-parameter state array followed, in the same 64-byte aligned allocation, by a zeroed
 * reserve of `tensors_per_param` slots per parameter. Reserving at init keeps the (lazy) first
 * step from ever failing. Returns NULL when out of memory. *reserve receives the slot area. */
void *relate_optim_alloc_state(const relate_param_group *groups, int ngroups, int nparams,
                               size_t state_size, int tensors_per_param, float **reserve,
                               size_t *reserve_floats);

/* Floats in the reserve of alloc_state (recomputed at free time from the same groups). */
size_t relate_optim_reserve_floats(const relate_param_group *groups, int ngroups,
                                   int tensors_per_param);

/* Where alloc_state put the reserve, recomputed so the public structs need no extra field. */
float *relate_optim_reserve(void *state, int nparams, size_t state_size);

/* Frees a state tensor unless it lives in the reserve (a checkpoint loader may install its own
 * malloc'd buffers; those are released here too). */
void relate_optim_free_tensor(float *t, const float *reserve, size_t reserve_floats);

#endif
