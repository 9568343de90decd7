/* kernels/rng_torch.h - torch's CPU default generator (rng_torch.c). Not part of the public ABI. */
#ifndef TOKEMB_RNG_TORCH_H
#define TOKEMB_RNG_TORCH_H

#include <stddef.h>
#include <stdint.h>

/* ---- rng_torch.c: torch's CPU default generator --------------------------------------------- */
/* Fills x[0..n) exactly as torch.manual_seed(seed); tensor.normal_(mean, std) / uniform_(lo, hi)
 * on a contiguous float32 tensor of n elements (AVX2-build numerics). */
void tk_torch_normal_f32(float *x, size_t n, uint64_t seed, double mean, double std);
void tk_torch_uniform_f32(float *x, size_t n, uint64_t seed, double lo, double hi);
/* The elements of the same fill of a contiguous [grows, gdim] tensor (n = grows * gdim) at global rows
 * row0 + l * row_step (l < rows) and columns [col0, col0 + dim), written to out + l * ld: bitwise equal
 * to the full fill's values there, without drawing the whole stream (MT19937 jump-ahead over long
 * gaps, plain advancing over short ones). The caller checks the ranges lie inside the tensor. */
void tk_torch_normal_f32_part(float *out, size_t ld, size_t rows, size_t dim, uint64_t grows, uint64_t gdim,
                              uint64_t row0, uint64_t row_step, uint64_t col0, uint64_t seed, double mean, double std);

#endif
