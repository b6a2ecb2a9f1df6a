/* bench_deepinfomax.c: the time of one deepinfomax training step (relate_method_step: conv4 forward with
 * its local map, the loss of spec 3.4, backward, Adam) with the fused local term and with the literal
 * one, and of the fused local term alone; bench_deepinfomax_torch.py times the reference's step.
 * Not a test and not a training run: synthetic N(0,1) images.
 *
 * usage: relate_bench_deepinfomax [BATCH [IMAGE_SIZE [STEPS [LITERAL_STEPS]]]]   (defaults 128 32 5 2)
 * prints per path: relate deepinfomax B S <path> step_ms <median> min <min> - peak_arena_mib <m>
 * and: relate deepinfomax B S fused local_fwd_bwd_ms <median> (the fused op on y W_y + b0 and M alone) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench_common.h"
#include "relate/graph.h"
#include "relate/method.h"
#include "relate/rng.h"

static void fill_normal(float *x, size_t n, uint32_t stream)
{
    relate_rng rng;
    relate_rng_init(&rng, 1, stream, 0, RELATE_PURPOSE_TEST);
    for (size_t i = 0; i < n; i++)
        x[i] = (float)relate_rng_normal(&rng);
}

static int time_steps(bool fused, int B, int S, int steps, float *images)
{
    relate_method_config cfg = relate_method_defaults();
    cfg.method = "deepinfomax";
    cfg.factorised_head = fused;
    relate_method *m;
    relate_error err = {0};
    if (relate_method_create(&m, &cfg, &err) != RELATE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    relate_graph *g = relate_graph_create();
    relate_batch batch = {.number = 0, .size = B, .views = 1, .side = S, .images = images};
    double *t = malloc(sizeof(double) * (size_t)steps);
    const int warmup = 1;
    for (int it = 0; it < warmup + steps; it++) {
        relate_step_result r;
        batch.number = it;
        double t0 = bench_now();
        if (relate_method_step(m, g, &batch, &r, &err) != RELATE_OK) {
            fprintf(stderr, "step: %s\n", err.msg);
            return 1;
        }
        if (it >= warmup)
            t[it - warmup] = bench_now() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, bench_cmp_double);
    printf("relate deepinfomax %d %d %s step_ms %.1f min %.1f - peak_arena_mib %.0f\n", B, S,
           fused ? "fused" : "literal", t[steps / 2] * 1e3, t[0] * 1e3,
           (double)relate_graph_peak_bytes(g) / (1024.0 * 1024.0));
    free(t);
    relate_graph_destroy(g);
    relate_method_free(m);
    return 0;
}

/* The fused op alone: M [B, 8, S, S], yb [B, 256] and the discriminator's c0 (M part), c1, c2. */
static void time_local(int B, int S, int steps)
{
    const int MC = 8, C = 256;
    relate_params p;
    relate_params_init(&p);
    relate_param *in[7] = {
        relate_params_add(&p, "M", RELATE_PARAM, 4, (int64_t[]){B, MC, S, S}),
        relate_params_add(&p, "w_m", RELATE_PARAM, 2, (int64_t[]){C, MC}),
        relate_params_add(&p, "yb", RELATE_PARAM, 2, (int64_t[]){B, C}),
        relate_params_add(&p, "w1", RELATE_PARAM, 2, (int64_t[]){C, C}),
        relate_params_add(&p, "b1", RELATE_PARAM, 1, (int64_t[]){C}),
        relate_params_add(&p, "w2", RELATE_PARAM, 2, (int64_t[]){1, C}),
        relate_params_add(&p, "b2", RELATE_PARAM, 1, (int64_t[]){1}),
    };
    relate_error err = {0};
    if (relate_params_finalize(&p, &err) != RELATE_OK)
        return;
    for (int i = 0; i < 7; i++) {
        fill_normal(in[i]->data, (size_t)in[i]->numel, 10 + (uint32_t)i);
        for (int64_t j = 0; i > 0 && j < in[i]->numel; j++)
            in[i]->data[j] *= i == 1 ? 0.35f : 0.06f;
    }
    relate_graph *g = relate_graph_create();
    double *t = malloc(sizeof(double) * (size_t)steps);
    for (int it = 0; it < 1 + steps; it++) {
        relate_graph_reset(g);
        relate_params_zero_grad(&p);
        double t0 = bench_now();
        relate_tensor *x[7];
        for (int i = 0; i < 7; i++)
            x[i] = relate_param_tensor(g, in[i]);
        relate_tensor *l = relate_infomax_local_loss(g, x[0], x[1], x[2], x[3], x[4], x[5], x[6]);
        if (!l || relate_graph_backward(g, l) != RELATE_OK) {
            fprintf(stderr, "%s\n", relate_graph_error(g)->msg);
            return;
        }
        if (it >= 1)
            t[it - 1] = bench_now() - t0;
    }
    qsort(t, (size_t)steps, sizeof *t, bench_cmp_double);
    printf("relate deepinfomax %d %d fused local_fwd_bwd_ms %.1f min %.1f\n", B, S, t[steps / 2] * 1e3, t[0] * 1e3);
    free(t);
    relate_graph_destroy(g);
    relate_params_free(&p);
}

int main(int argc, char **argv)
{
    const int B = argc > 1 ? atoi(argv[1]) : 128, S = argc > 2 ? atoi(argv[2]) : 32;
    const int steps = argc > 3 ? atoi(argv[3]) : 5, lsteps = argc > 4 ? atoi(argv[4]) : 2;
    if (B < 2 || S < 4 || steps < 1) {
        fprintf(stderr, "usage: %s [BATCH >= 2 [IMAGE_SIZE >= 4 [STEPS >= 1 [LITERAL_STEPS]]]]\n", argv[0]);
        return 2;
    }
    float *images = malloc((size_t)B * 3 * S * S * sizeof *images);
    fill_normal(images, (size_t)B * 3 * S * S, 1);
    int rc = time_steps(true, B, S, steps, images);
    time_local(B, S, steps);
    if (!rc && lsteps > 0)
        rc = time_steps(false, B, S, lsteps, images);
    free(images);
    return rc;
}
