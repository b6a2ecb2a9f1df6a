/* graph_internal.h: what op implementations need from the graph core (tape, arena, grads).
 * Not public: users see relate/graph.h only. */
#ifndef RELATE_AUTOGRAD_GRAPH_INTERNAL_H
#define RELATE_AUTOGRAD_GRAPH_INTERNAL_H

#include "base/arena.h"
#include "relate/graph.h"

typedef void (*relate_backward_fn)(relate_graph *g, void *ctx);

typedef struct relate_tape_node {
    relate_backward_fn fn;
    void *ctx;
} relate_tape_node;

struct relate_graph {
    relate_arena arena;
    relate_tape_node *tape;
    int tape_count, tape_cap;
    relate_error err;
    bool grad_enabled;
    void *workspace;       /* transient scratch shared by every op call (see relate_graph_workspace) */
    size_t workspace_size;
};

/* Output tensor of an op: shape given, requires_grad if any listed input requires it. */
relate_tensor *relate_op_output(relate_graph *g, int ndim, const int64_t *shape,
                                relate_tensor *in0, relate_tensor *in1);
/* Appends a backward step (only when out->requires_grad). ctx must live in the arena. */
void relate_op_record(relate_graph *g, relate_backward_fn fn, void *ctx);
/* Copies ctx (size bytes) into the arena and records fn with the copy; NULL when out of
 * memory (the graph then holds the error). */
void *relate_op_save(relate_graph *g, relate_backward_fn fn, const void *ctx, size_t size);
/* The gradient buffer of t, allocated zeroed on first use; NULL if t needs no gradient. */
float *relate_grad_of(relate_graph *g, relate_tensor *t);
/* Scratch that is only needed during one kernel call (im2col columns, reorders): one buffer per
 * graph, grown to the largest request and reused, so it does not pile up in the step arena.
 * Valid until the next call. Records NOMEM on the graph when it fails. */
void *relate_graph_workspace(relate_graph *g, size_t bytes);
/* Arena allocation that records NOMEM on the graph when it fails. */
void *relate_graph_scratch(relate_graph *g, size_t bytes);

#endif
