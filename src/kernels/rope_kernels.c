/* rope_kernels.c - the RoPE rotation kernel (portable C). A SIMD variant can be added here behind
 * tk_cpu_isa() as long as it keeps the same per-element float32 operations (no FMA contraction), so
 * every variant gives the same bits. */
#include "rope_kernels.h"
#include "common/common.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* AVX2 variant (added by the performance pass): 8 pairs per step. Every output is the same two float32
 * products and one add/sub as the portable loop (no FMA), so the bits are identical.
 * NEOX: the a and b halves are contiguous vectors. GPTJ: pairs are interleaved [a0 b0 a1 b1 ...]; with
 * C = [c0 c0 c1 c1 ...], S likewise and v' = v with each pair swapped, addsub(v*C, v'*S) gives
 * a*c - b*s in even and b*c + a*s in odd lanes; the backward negates S (exact), giving a*c + b*s and
 * b*c - a*s. */
__attribute__((target("avx2"))) static void tk_rope_avx2(float *x, size_t n_heads, size_t head_stride, int layout,
                                                         size_t half, size_t pair0, size_t n_pairs, const float *cos,
                                                         const float *sin, int backward) {
    for (size_t h = 0; h < n_heads; h++) {
        if (layout == 0) {
            float *va = x + h * head_stride + pair0, *vb = va + half;
            size_t k = 0;
            for (; k + 8 <= n_pairs; k += 8) {
                __m256 a = _mm256_loadu_ps(va + k), b = _mm256_loadu_ps(vb + k);
                __m256 c = _mm256_loadu_ps(cos + k), s = _mm256_loadu_ps(sin + k);
                __m256 ac = _mm256_mul_ps(a, c), bs = _mm256_mul_ps(b, s);
                __m256 bc = _mm256_mul_ps(b, c), as = _mm256_mul_ps(a, s);
                if (!backward) {
                    _mm256_storeu_ps(va + k, _mm256_sub_ps(ac, bs));
                    _mm256_storeu_ps(vb + k, _mm256_add_ps(bc, as));
                } else {
                    _mm256_storeu_ps(va + k, _mm256_add_ps(ac, bs));
                    _mm256_storeu_ps(vb + k, _mm256_sub_ps(bc, as));
                }
            }
            for (; k < n_pairs; k++) {
                float a = va[k], b = vb[k], c = cos[k], s = sin[k];
                if (!backward) {
                    va[k] = a * c - b * s;
                    vb[k] = b * c + a * s;
                } else {
                    va[k] = a * c + b * s;
                    vb[k] = b * c - a * s;
                }
            }
        } else {
            float *v = x + h * head_stride + 2 * pair0;
            const __m256 neg = _mm256_set1_ps(-0.0f);
            size_t k = 0;
            for (; k + 4 <= n_pairs; k += 4) {
                __m128 c4 = _mm_loadu_ps(cos + k), s4 = _mm_loadu_ps(sin + k);
                __m256 c = _mm256_set_m128(_mm_unpackhi_ps(c4, c4), _mm_unpacklo_ps(c4, c4));
                __m256 s = _mm256_set_m128(_mm_unpackhi_ps(s4, s4), _mm_unpacklo_ps(s4, s4));
                if (backward) s = _mm256_xor_ps(s, neg);
                __m256 a = _mm256_loadu_ps(v + 2 * k);
                __m256 sw = _mm256_permute_ps(a, 0xB1);
                _mm256_storeu_ps(v + 2 * k, _mm256_addsub_ps(_mm256_mul_ps(a, c), _mm256_mul_ps(sw, s)));
            }
            for (; k < n_pairs; k++) {
                float a = v[2 * k], b = v[2 * k + 1], c = cos[k], s = sin[k];
                if (!backward) {
                    v[2 * k] = a * c - b * s;
                    v[2 * k + 1] = b * c + a * s;
                } else {
                    v[2 * k] = a * c + b * s;
                    v[2 * k + 1] = b * c - a * s;
                }
            }
        }
    }
}
#define TK_ROPE_AVX2 1
#else
#define TK_ROPE_AVX2 0
#endif

static void tk_rope_portable(float *x, size_t n_heads, size_t head_stride, int layout, size_t half, size_t pair0,
                             size_t n_pairs, const float *cos, const float *sin, int backward);

void tk_rope_rotate_f32(float *x, size_t n_heads, size_t head_stride, int layout, size_t half, size_t pair0,
                        size_t n_pairs, const float *cos, const float *sin, int backward) {
#if TK_ROPE_AVX2
    if (tk_cpu_isa() >= TK_ISA_AVX2) {
        tk_rope_avx2(x, n_heads, head_stride, layout, half, pair0, n_pairs, cos, sin, backward);
        return;
    }
#endif
    tk_rope_portable(x, n_heads, head_stride, layout, half, pair0, n_pairs, cos, sin, backward);
}

static void tk_rope_portable(float *x, size_t n_heads, size_t head_stride, int layout, size_t half, size_t pair0,
                        size_t n_pairs, const float *cos, const float *sin, int backward) {
    const size_t ia = layout == 0 ? 1 : 2;    /* index step of the first element of consecutive pairs */
    const size_t ib = layout == 0 ? half : 1; /* offset of the second element from the first */
    for (size_t h = 0; h < n_heads; h++) {
        float *v = x + h * head_stride + pair0 * ia;
        if (!backward) {
            for (size_t k = 0; k < n_pairs; k++) {
                float a = v[k * ia], b = v[k * ia + ib], c = cos[k], s = sin[k];
                v[k * ia] = a * c - b * s;
                v[k * ia + ib] = b * c + a * s;
            }
        } else {
            for (size_t k = 0; k < n_pairs; k++) {
                float a = v[k * ia], b = v[k * ia + ib], c = cos[k], s = sin[k];
                v[k * ia] = a * c + b * s;
                v[k * ia + ib] = b * c - a * s;
            }
        }
    }
}
