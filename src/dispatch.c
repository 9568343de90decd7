/* dispatch.c - CPU feature probe, once per process. The library is compiled for baseline x86-64;
 * kernels with AVX2 / AVX-512 variants pick one through tk_cpu_isa(). TOKEMB_ISA=portable|avx2|avx512
 * in the environment caps the choice (for tests and benchmarks). */
#include "internal.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_int tk_isa_cached = -1;

static int tk_probe_isa(void) {
    int isa = TK_ISA_PORTABLE;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) isa = TK_ISA_AVX2;
    if (isa == TK_ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        isa = TK_ISA_AVX512;
#endif
    const char *cap = getenv("TOKEMB_ISA");
    if (cap) {
        int want = isa;
        if (strcmp(cap, "portable") == 0) want = TK_ISA_PORTABLE;
        else if (strcmp(cap, "avx2") == 0) want = TK_ISA_AVX2;
        else if (strcmp(cap, "avx512") == 0) want = TK_ISA_AVX512;
        if (want < isa) isa = want;
    }
    return isa;
}

int tk_cpu_isa(void) {
    int v = atomic_load_explicit(&tk_isa_cached, memory_order_relaxed);
    if (v < 0) {
        v = tk_probe_isa();
        atomic_store_explicit(&tk_isa_cached, v, memory_order_relaxed);
    }
    return v;
}
