/* rope_kernels.h - the RoPE rotation kernel: a pure loop over already-validated data. */
#ifndef TOKEMB_ROPE_KERNELS_H
#define TOKEMB_ROPE_KERNELS_H

#include <stddef.h>

/* Rotates pairs [pair0, pair0 + n_pairs) of n_heads head vectors in place; head h starts at
 * x + h*head_stride and its values are contiguous. half = rotary_dim / 2. Pairing:
 * layout 0 (NEOX) pair i = (x[i], x[i + half]); layout 1 (GPTJ) pair i = (x[2i], x[2i + 1]).
 * cos[k], sin[k] belong to pair pair0 + k. Float32 arithmetic, no fused multiply-add (it matches torch's
 * q*cos + rotate_half(q)*sin for the same cos/sin bit for bit):
 *   forward:  (a, b) -> (a*c - b*s, b*c + a*s)
 *   backward: (a, b) -> (a*c + b*s, b*c - a*s)      (the transpose: rotation by -theta) */
void tk_rope_rotate_f32(float *x, size_t n_heads, size_t head_stride, int layout, size_t half, size_t pair0,
                        size_t n_pairs, const float *cos, const float *sin, int backward);

#endif
