/* cpu.c - CPU feature probe, once per process. The library is compiled for baseline x86-64;
 * kernels with AVX2 / AVX-512 variants pick one through tk_cpu_isa(). TOKEMB_ISA=portable|avx2|avx512
 * in the environment caps the choice (for tests and benchmarks). */
#include "common/common.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#endif
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static atomic_int tk_isa_cached = -1;

static int tk_probe_isa(void) {
    int isa = TK_ISA_PORTABLE;
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    /* F16C: CPUID.1:ECX bit 29 (clang's __builtin_cpu_supports does not know "f16c") */
    unsigned a, b, c, d;
    const int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) isa = TK_ISA_AVX2;
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

static atomic_int tk_intel_cached = -1;

int tk_cpu_is_intel(void) {
    int v = atomic_load_explicit(&tk_intel_cached, memory_order_relaxed);
    if (v < 0) {
        v = 0;
#if defined(__x86_64__) || defined(__i386__)
        unsigned a, b, c, d;
        __cpuid(0, a, b, c, d);
        v = b == 0x756e6547u && d == 0x49656e69u && c == 0x6c65746eu; /* "GenuineIntel" */
#endif
        atomic_store_explicit(&tk_intel_cached, v, memory_order_relaxed);
    }
    return v;
}

size_t tk_cpu_memcpy_min_bytes(void) { return tk_cpu_is_intel() ? 2048 : 4096; }

/* ---- cache sizes (sysfs) -------------------------------------------------------------------------- */

static atomic_size_t tk_l2_cached, tk_llc_cached;

static size_t tk_sysfs_cache(int level, size_t fallback) {
    size_t best = 0;
    for (int idx = 0; idx < 8; idx++) {
        char path[96], buf[32];
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", idx);
        FILE *f = fopen(path, "r");
        if (!f) break;
        int lv = 0;
        if (fscanf(f, "%d", &lv) != 1) lv = 0;
        fclose(f);
        if (lv != level) continue;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", idx);
        f = fopen(path, "r");
        if (!f) continue;
        if (fgets(buf, sizeof buf, f)) {
            char *end = NULL;
            size_t v = (size_t)strtoull(buf, &end, 10);
            if (end && *end == 'K') v <<= 10;
            else if (end && *end == 'M') v <<= 20;
            if (v > best) best = v;
        }
        fclose(f);
    }
    return best ? best : fallback;
}

size_t tk_cache_l2_bytes(void) {
    size_t v = atomic_load_explicit(&tk_l2_cached, memory_order_relaxed);
    if (!v) {
        v = tk_sysfs_cache(2, (size_t)1 << 20);
        atomic_store_explicit(&tk_l2_cached, v, memory_order_relaxed);
    }
    return v;
}

size_t tk_cache_llc_bytes(void) {
    size_t v = atomic_load_explicit(&tk_llc_cached, memory_order_relaxed);
    if (!v) {
        v = tk_sysfs_cache(3, (size_t)32 << 20);
        atomic_store_explicit(&tk_llc_cached, v, memory_order_relaxed);
    }
    return v;
}
