/* common/cpu.h - CPU features and cache sizes, probed once (cpu.c). The only runtime header a kernel
 * needs for dispatch. Not part of the public ABI. */
#ifndef TOKEMB_CPU_H
#define TOKEMB_CPU_H

#include <stddef.h>

/* ---- cpu.c: CPU features, probed once (the library's only CPU probe) ---------------------- */
/* ISA levels, each including the one below: AVX2 = AVX2 + FMA + F16C; AVX512 = AVX-512 F, BW, VL, DQ.
 * The kernels' target attributes (kernels/simd.h) match these sets. */
enum { TK_ISA_PORTABLE = 0, TK_ISA_AVX2 = 1, TK_ISA_AVX512 = 2, TK_ISA_COUNT = 3 };
/* The highest level this CPU (and the OS's saved vector state) supports, capped by the environment
 * variable TOKEMB_ISA=portable|avx2|avx512. Cached after the first call. */
int tk_cpu_isa(void);
/* 1 on a GenuineIntel CPU (cpuid), else 0; probed once. Only for tuning choices measured per vendor. */
int tk_cpu_is_intel(void);
/* The smallest row (bytes) a gather copies with memcpy (glibc's `rep movsb`, which writes whole lines
 * without reading them) instead of vector loads and stores: 2 KiB on Intel, 4 KiB elsewhere (AMD's
 * `rep movsb` was slower at 1-2 KiB rows). Probed once (docs/performance.md, "Tuning record"). */
size_t tk_cpu_memcpy_min_bytes(void);
/* Data cache sizes of CPU 0 in bytes (sysfs, probed once; fallbacks 1 MiB / 32 MiB). */
size_t tk_cache_l2_bytes(void);
size_t tk_cache_llc_bytes(void);

#endif
