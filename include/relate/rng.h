/* relate/rng.h: counter-based random numbers (Philox4x32-10).
 * Not a global generator: every draw is a pure function of (seed, stream, position), so results
 * never depend on which thread asks first.
 *
 *   relate_rng r;
 *   relate_rng_init(&r, seed, epoch, sample_index, RELATE_PURPOSE_AUGMENT);
 *   float u = relate_rng_uniform(&r);
 */
#ifndef RELATE_RNG_H
#define RELATE_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Purposes keep independent uses of one seed on separate streams. */
enum {
    RELATE_PURPOSE_INIT = 1,    /* parameter initialisation */
    RELATE_PURPOSE_SHUFFLE = 2, /* per-epoch sample order */
    RELATE_PURPOSE_AUGMENT = 3, /* data augmentation (data issue packs view into `a`/`b`) */
    RELATE_PURPOSE_METHOD = 4,  /* method-internal draws (e.g. Deep InfoMax prior samples) */
    RELATE_PURPOSE_TEST = 5     /* tests and benchmarks */
};

typedef struct relate_rng {
    uint32_t key[2];
    uint32_t ctr[4]; /* ctr[0] counts blocks; ctr[1..3] name the stream */
    uint32_t buf[4];
    int pos;         /* next unused word of buf; 4 = empty */
} relate_rng;

/* The raw Philox4x32-10 block function. */
void relate_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

void relate_rng_init(relate_rng *r, uint64_t seed, uint32_t a, uint32_t b, uint32_t c);
uint32_t relate_rng_u32(relate_rng *r);
/* Uniform in [0, 1) with 24 random bits (exactly representable in float). */
float relate_rng_uniform(relate_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double relate_rng_uniform_f64(relate_rng *r);
/* Standard normal by Box-Muller on two 53-bit uniforms. */
double relate_rng_normal(relate_rng *r);
/* Uniform integer in [0, n) without modulo bias; n > 0. */
uint32_t relate_rng_below(relate_rng *r, uint32_t n);

#ifdef __cplusplus
}
#endif
#endif
