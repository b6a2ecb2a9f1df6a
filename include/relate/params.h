/* relate/params.h: named parameters and buffers of one module tree (one state dict).
 * Not a module system: modules keep pointers to the entries they registered; this store only
 * owns the memory, the names and the order.
 *
 * Every entry carries its PyTorch state-dict key from birth ("layer1.bn.running_var"); the
 * registration order is the state-dict order. Trainable values, their gradients and buffers
 * each live in one contiguous block, so zeroing gradients is one memset and an optimizer is
 * one loop.
 *
 *   relate_params p; relate_params_init(&p);
 *   relate_param *w = relate_params_add(&p, "linear1.weight", RELATE_PARAM, 2, (int64_t[]){256, 128});
 *   relate_params_finalize(&p, &err);      // now w->data and w->grad exist
 */
#ifndef RELATE_PARAMS_H
#define RELATE_PARAMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "relate/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RELATE_MAX_DIMS 4

typedef enum relate_param_kind {
    RELATE_PARAM,      /* trainable float32: has a gradient */
    RELATE_BUFFER_F32, /* float32 state such as running_mean */
    RELATE_BUFFER_I64  /* int64 state such as num_batches_tracked */
} relate_param_kind;

typedef struct relate_param {
    char *name;
    relate_param_kind kind;
    int ndim;
    int64_t shape[RELATE_MAX_DIMS];
    int64_t numel;
    float *data;   /* RELATE_PARAM and RELATE_BUFFER_F32 */
    float *grad;   /* RELATE_PARAM only */
    int64_t *i64;  /* RELATE_BUFFER_I64 only */
    bool frozen;   /* true: graphs treat it as a constant (no gradient is computed for it) */
} relate_param;

typedef struct relate_params {
    relate_param **items;
    int count, cap;
    float *param_block, *grad_block, *buffer_block;
    int64_t *i64_block;
    size_t param_floats, buffer_floats, i64_count;
    bool finalized;
} relate_params;

void relate_params_init(relate_params *p);
void relate_params_free(relate_params *p);
/* Registers an entry (before finalize). ndim 0 means a scalar. Returns NULL on a duplicate name
 * or after finalize (a programming error, reported through relate_params_finalize). */
relate_param *relate_params_add(relate_params *p, const char *name, relate_param_kind kind,
                                int ndim, const int64_t *shape);
/* Allocates the blocks (zero-filled) and points every entry into them. */
relate_status relate_params_finalize(relate_params *p, relate_error *err);
relate_param *relate_params_find(const relate_params *p, const char *name);
void relate_params_zero_grad(relate_params *p);
/* Sum of numel over RELATE_PARAM entries ("TOT trainable params"). */
int64_t relate_params_count_trainable(const relate_params *p);
void relate_params_set_frozen(relate_params *p, bool frozen);
/* Copies values (data and buffers, not gradients) between stores with identical names/shapes. */
relate_status relate_params_copy(relate_params *dst, const relate_params *src, relate_error *err);

#ifdef __cplusplus
}
#endif
#endif
