/* cpu_isa.c: the vector instruction set relate's own kernels dispatch to at run time, so one
 * x86-64-v3 binary uses AVX-512 where the CPU has it. Not the kernels: each one that has an
 * AVX-512 build asks relate_kernels_isa() and calls it. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

static atomic_int g_isa_cap = -1; /* -1: RELATE_ISA not read yet */

static relate_isa cpu_isa(void)
{
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    /* The AVX-512 builds use F, VL, BW and DQ (x86-64-v4): every AVX-512 CPU since Skylake-SP. */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq"))
        return RELATE_ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return RELATE_ISA_AVX2;
#endif
    return RELATE_ISA_NONE;
}

relate_isa relate_kernels_isa(void)
{
    int cap = atomic_load(&g_isa_cap);
    if (cap < 0) {
        const char *v = getenv("RELATE_ISA");
        cap = v && strcmp(v, "avx2") == 0 ? RELATE_ISA_AVX2 : RELATE_ISA_AVX512;
        atomic_store(&g_isa_cap, cap);
    }
    const relate_isa have = cpu_isa();
    return (int)have < cap ? have : (relate_isa)cap;
}

const char *relate_kernels_isa_name(void)
{
    static const char *const names[] = {"none", "avx2", "avx512"};
    return names[relate_kernels_isa()];
}

int relate_kernels_cap_isa(const char *isa)
{
    if (strcmp(isa, "avx2") == 0)
        atomic_store(&g_isa_cap, RELATE_ISA_AVX2);
    else if (strcmp(isa, "avx512") == 0)
        atomic_store(&g_isa_cap, RELATE_ISA_AVX512);
    else
        return -1;
    return 0;
}
