/* data_parallel.h: the pieces of a data-parallel step (data_parallel.c, issue 12), used by the
 * stage-1 methods and by stage 2's finetuning. In one process each is the single-process step. */
#ifndef RELATE_METHODS_DATA_PARALLEL_H
#define RELATE_METHODS_DATA_PARALLEL_H

#include "relate/graph.h"
#include "relate/loader.h"
#include "relate/params.h"
#include "relate/status.h"

/* The whole batch's rows of x, this process's share of a batch laid out as `blocks` blocks (views)
 * of per_image rows per image, on every process; turns synchronised batch norm off for the rest of
 * the step, which every process computes on the whole batch. x itself in one process. */
relate_tensor *relate_dp_gather(relate_graph *g, relate_tensor *x, const relate_batch *b, int blocks, int per_image);
/* all[0..global_size) = the whole batch's per-image values (labels, dataset indices) of elem bytes,
 * from each process's mine[0..size). */
relate_status relate_dp_gather_per_image(const relate_batch *b, const void *mine, void *all, size_t elem,
                                         relate_error *err);
/* Back-propagates this process's 1/N share of the loss every process computed, then sums the
 * gradients of the stores' parameters over the processes (the same bits on each), ready for the
 * optimizer's step. */
relate_status relate_dp_backward(relate_graph *g, relate_tensor *loss, relate_params *const *stores, int nstores,
                                 relate_error *err);

#endif
