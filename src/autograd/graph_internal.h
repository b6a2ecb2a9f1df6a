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
    relate_tensor *out; /* the op's output: its gradient is dead once fn has run */
} relate_tape_node;

/* A gradient buffer whose tensor's backward step has run, kept for reuse within the step. */
typedef struct relate_free_grad {
    float *buf;
    size_t bytes;
} relate_free_grad;

struct relate_graph {
    relate_arena arena;
    relate_tape_node *tape;
    int tape_count, tape_cap;
    relate_error err;
    bool grad_enabled;
    void *workspace;       /* transient scratch shared by every op call (see relate_graph_workspace) */
    size_t workspace_size;
    double flops, layer_bytes; /* work of the step so far (relate_graph_work) */
    relate_tensor *last_out;   /* newest relate_op_output not yet claimed by a tape node */
    relate_free_grad *free_grads;
    int free_count, free_cap;
    bool keep_grads;           /* relate_graph_keep_grads */
    bool sync_batch;           /* relate_graph_set_sync_batch */
    /* Parameters made into tensors with a gradient this step, each with the tape position at the
     * time (every op that reads it is recorded at or after it), for relate_graph_on_grad_ready. */
    struct relate_param_use {
        relate_param *param;
        int tape_pos;
    } *uses;
    int use_count, use_cap;
    relate_grad_ready_fn grad_ready;
    void *grad_ready_ctx;
};

/* Output tensor of an op: shape given, requires_grad if any listed input requires it. NULL, with
 * the step failed, when an input is in the nChw16c layout: ops that take one say so and call
 * relate_op_output_layout, whose output is in the layout asked for. */
relate_tensor *relate_op_output(relate_graph *g, int ndim, const int64_t *shape,
                                relate_tensor *in0, relate_tensor *in1);
relate_tensor *relate_op_output_layout(relate_graph *g, int ndim, const int64_t *shape, relate_tensor *in0,
                                       relate_tensor *in1, bool blocked16);
/* Appends a backward step (only when out->requires_grad). ctx must live in the arena. The step's
 * output is taken to be the newest tensor made by relate_op_output since the previous step was
 * recorded (NULL if none): every op makes its output last and records once, so after the step
 * has run backward nothing reads that output's gradient and its buffer is reused. */
void relate_op_record(relate_graph *g, relate_backward_fn fn, void *ctx);
/* Copies ctx (size bytes) into the arena and records fn with the copy; NULL when out of
 * memory (the graph then holds the error). */
void *relate_op_save(relate_graph *g, relate_backward_fn fn, const void *ctx, size_t size);
/* The gradient buffer of t, allocated zeroed on first use; NULL if t needs no gradient. */
float *relate_grad_of(relate_graph *g, relate_tensor *t);
/* The same for a backward step that can store t's whole gradient instead of adding to it: on
 * first use the buffer is not zeroed and *store is set, and the step must then write every
 * element (a large gradient is written once instead of zeroed, read and written again). Once t
 * has a gradient, *store is false and the step adds as usual. */
float *relate_grad_to_write(relate_graph *g, relate_tensor *t, bool *store);
/* Scratch that is only needed during one kernel call (im2col columns, reorders): one buffer per
 * graph, grown to the largest request and reused, so it does not pile up in the step arena.
 * Valid until the next call. Records NOMEM on the graph when it fails. */
void *relate_graph_workspace(relate_graph *g, size_t bytes);
/* Adds to the step's work counters: an op's matrix-product FLOPs and the bytes of the layer
 * output it wrote (see relate_graph_work). */
static inline void relate_graph_count(relate_graph *g, double flops, double layer_bytes)
{
    g->flops += flops;
    g->layer_bytes += layer_bytes;
}
/* Arena allocation that records NOMEM on the graph when it fails. */
void *relate_graph_scratch(relate_graph *g, size_t bytes);

#endif
