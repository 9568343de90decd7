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

#endif
