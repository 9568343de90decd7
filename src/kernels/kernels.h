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

#endif
