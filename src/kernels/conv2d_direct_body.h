/* conv2d_direct_body.h: the per-image forward loops of the direct stem convolution, written once
 * for a vector width and included by conv2d_direct.c once per instruction set (AVX2 + FMA with 8 lanes,
 * AVX-512 with 16). Not a header to include anywhere else: it defines static functions.
 *
 * The includer defines VLANES, VEC, VTARGET (a target attribute string), the operations
 * VZERO(), VLOADU(p), VBCAST(p), VFMA(a, b, c) = a * b + c fused, VSTOREU(p, v), and
 * SUFFIX(name), which names this instance's functions; the end of this file undefines them all,
 * so the next instance starts clean. */

#define DB_INLINE static inline __attribute__((always_inline, target(VTARGET)))
#define DB_FUNC static __attribute__((target(VTARGET)))

/* Output row oy of channels o0..o0+3, vectors v..v+xv-1 (xv = 1 or 2): each output is the sum
 * over (ic, ky, kx), in that order, of w * x, one FMA per term from zero. That order does not
 * depend on the vector width, so both instruction sets give the same bits. */
DB_INLINE void SUFFIX(forward_vectors)(float *const out[OC_BLOCK], const float *xp, const float *w0, int v, int xv,
                                       int oy, const relate_conv2d_dims *d, const direct_geom *g)
{
    const size_t wstride = (size_t)d->c * 9; /* between output channels' weights */
    VEC acc[OC_BLOCK][2];
#pragma GCC unroll 4
    for (int j = 0; j < OC_BLOCK; j++)
        acc[j][0] = acc[j][1] = VZERO();
    for (int ic = 0; ic < d->c; ic++)
        for (int ky = 0; ky < 3; ky++) {
            const float *row = xp + ic * g->xplane + (size_t)(oy + ky) * g->wp + (size_t)v * VLANES;
            const float *wk = w0 + (size_t)ic * 9 + ky * 3;
#pragma GCC unroll 3
            for (int kx = 0; kx < 3; kx++) {
                const VEC x0 = VLOADU(row + kx);
                const VEC x1 = xv > 1 ? VLOADU(row + VLANES + kx) : x0;
#pragma GCC unroll 4
                for (int j = 0; j < OC_BLOCK; j++) {
                    const VEC wv = VBCAST(wk + j * wstride + kx);
                    acc[j][0] = VFMA(wv, x0, acc[j][0]);
                    if (xv > 1)
                        acc[j][1] = VFMA(wv, x1, acc[j][1]);
                }
            }
        }
#pragma GCC unroll 4
    for (int j = 0; j < OC_BLOCK; j++) {
        VSTOREU(out[j] + (size_t)v * VLANES, acc[j][0]);
        if (xv > 1)
            VSTOREU(out[j] + (size_t)(v + 1) * VLANES, acc[j][1]);
    }
}

/* One image: y [o, h, w] from its padded copy. A width that is not a whole number of vectors is
 * computed into `rows` (OC_BLOCK rows of nv vectors) and copied. */
DB_FUNC void SUFFIX(forward_image)(float *y, const float *xp, const float *w, const relate_conv2d_dims *d,
                                   const direct_geom *g, float *rows)
{
    for (int o0 = 0; o0 < d->o; o0 += OC_BLOCK) {
        const float *w0 = w + (size_t)o0 * d->c * 9;
        for (int oy = 0; oy < d->h; oy++) {
            float *out[OC_BLOCK];
            for (int j = 0; j < OC_BLOCK; j++)
                out[j] = g->whole ? y + ((size_t)(o0 + j) * d->h + oy) * d->w : rows + (size_t)j * g->dyrow;
            int v = 0;
            for (; v + 2 <= g->nv; v += 2)
                SUFFIX(forward_vectors)(out, xp, w0, v, 2, oy, d, g);
            if (v < g->nv)
                SUFFIX(forward_vectors)(out, xp, w0, v, 1, oy, d, g);
            if (!g->whole)
                for (int j = 0; j < OC_BLOCK; j++)
                    memcpy(y + ((size_t)(o0 + j) * d->h + oy) * d->w, out[j], sizeof(float) * (size_t)d->w);
        }
    }
}

#undef DB_INLINE
#undef DB_FUNC
#undef VLANES
#undef VEC
#undef VTARGET
#undef VZERO
#undef VLOADU
#undef VBCAST
#undef VFMA
#undef VSTOREU
#undef SUFFIX
