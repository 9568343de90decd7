/* common/cpu.h - CPU features and cache sizes, probed once (cpu.c). The only runtime header a kernel
 * needs for dispatch. Not part of the public ABI. */
#ifndef TOKEMB_CPU_H
#define TOKEMB_CPU_H

#include <stddef.h>

/* ---- cpu.c: CPU features, probed once -------------------------------------------------- */
enum { TK_ISA_PORTABLE = 0, TK_ISA_AVX2 = 1, TK_ISA_AVX512 = 2 };
int tk_cpu_isa(void);
/* Data cache sizes of CPU 0 in bytes (sysfs, probed once; fallbacks 1 MiB / 32 MiB). */
size_t tk_cache_l2_bytes(void);
size_t tk_cache_llc_bytes(void);

#endif
