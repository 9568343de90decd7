/* rope_kernels.c - the RoPE rotation kernel (portable C). A SIMD variant can be added here behind
 * tk_cpu_isa() as long as it keeps the same per-element float32 operations (no FMA contraction), so
 * every variant gives the same bits. */
#include "rope_kernels.h"

void tk_rope_rotate_f32(float *x, size_t n_heads, size_t head_stride, int layout, size_t half, size_t pair0,
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
