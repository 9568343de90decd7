/* kernels.h - pure loops over already-validated data. No error reporting, no allocation.
 * One generic kernel per operation; ISA variants are selected inside through tk_cpu_isa(). */
#ifndef TOKEMB_KERNELS_H
#define TOKEMB_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* out[i*out_stride + c] = table[id_i*row_stride + c] for i in [0, n), c in [0, dim).
 * ids are id_width (4 or 8) bytes wide and already in range. */
void tk_gather_f32(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                   float *out, size_t out_stride);

/* tk_gather_f32 with options: TK_GATHER_NT (non-temporal stores, then sfence), TK_GATHER_NO_PREFETCH
 * (the table is known to be L2-resident), TK_GATHER_PF_NEAR (it fits the last-level cache: prefetch into
 * L1 rather than L2). Every flag combination and ISA gives the same bytes. */
enum { TK_GATHER_NT = 1u, TK_GATHER_NO_PREFETCH = 2u, TK_GATHER_PF_NEAR = 4u };
void tk_gather_f32_ex(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                      float *out, size_t out_stride, unsigned flags);
/* Index of the first id outside [0, rows) (ids id_width = 4 or 8 bytes wide), or n if all are valid.
 * Branch-free blocks (vectorised on AVX2); the exact offender is searched only in a failing block. */
size_t tk_ids_first_bad(const void *ids, int id_width, size_t n, int64_t rows);
/* The ISA variants behind tk_gather_f32_ex (tests call them directly; the caller checks the CPU). */
void tk_gather_f32_portable(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                            float *out, size_t out_stride, unsigned flags);
void tk_gather_f32_avx2(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                        float *out, size_t out_stride, unsigned flags);
void tk_gather_f32_avx512(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                          float *out, size_t out_stride, unsigned flags);

#endif
