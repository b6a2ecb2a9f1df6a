/* relation_head_avx512.c: the relation head's passes (relation_head_body.h) built for AVX-512
 * (CMakeLists.txt gives this file -mavx512f -mavx512vl -mavx512bw -mavx512dq and 512-bit
 * vectors). relation_head.c calls them only where relate_kernels_isa() says the CPU has it. */
#define RH_FN(name) relate_relation_head_##name##_avx512
/* 32 vector registers: the scatter keeps its 128-column dbias1 sums in 16 of them. */
#define RH_SPAN_REGS 1
#include "kernels/relation_head_body.h"

