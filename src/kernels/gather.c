/* gather.c - the row gather kernel. */
#include "kernels.h"

#include <string.h>

void tk_gather_f32(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                   float *out, size_t out_stride) {
    const size_t bytes = dim * sizeof(float);
    if (id_width == 8) {
        const int64_t *id = (const int64_t *)ids;
        for (size_t i = 0; i < n; i++) memcpy(out + i * out_stride, table + (size_t)id[i] * row_stride, bytes);
    } else {
        const int32_t *id = (const int32_t *)ids;
        for (size_t i = 0; i < n; i++) memcpy(out + i * out_stride, table + (size_t)id[i] * row_stride, bytes);
    }
}
