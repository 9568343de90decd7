/* rope_kernels.h - the RoPE kernels: cos/sin of one position and the rotation; pure loops over
 * already-validated data. */
#ifndef TOKEMB_ROPE_KERNELS_H
#define TOKEMB_ROPE_KERNELS_H

#include <stddef.h>

/* c[k] = (float)(A*cos(p*inv[k])), s[k] = (float)(A*sin(p*inv[k])) for k < n, the angle p*inv[k] one
 * correctly rounded double product. On AVX2+FMA hardware a vectorised double sincos (Cody-Waite
 * reduction by pi/2 with fused multiply-adds, degree-13/14 minimax polynomials, |error| <~ 2e-16)
 * replaces libm for every angle up to 2^30 rad; beyond that (or without AVX2) libm's cos/sin.
 * Before the single float rounding both are within a few double ulps of the exact value, so the floats
 * agree with libm's except when the exact value sits within ~1e-16 of a float rounding boundary. Every
 * value depends only on (p, inv[k], A) and the ISA level: the same for any thread count and any k
 * grouping. */
void tk_rope_cos_sin_f32(const double *inv, double A, double p, size_t n, float *c, float *s);

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
