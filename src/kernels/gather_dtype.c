/* gather_dtype.c - the gather for compact storage (F16, BF16, Q8_ROW): each referenced row is
 * decoded straight into the float32 output (dequantised on the fly, no scratch). */
#include "convert.h"

void tk_gather_dtype(int32_t dtype, const void *table, size_t row_bytes, const void *ids, int id_width, size_t n,
                     size_t dim, float *out, size_t out_stride) {
    const uint8_t *base = (const uint8_t *)table;
    if (id_width == 8) {
        const int64_t *id = (const int64_t *)ids;
        for (size_t i = 0; i < n; i++) tk_row_decode(dtype, base + (size_t)id[i] * row_bytes, dim, out + i * out_stride);
    } else {
        const int32_t *id = (const int32_t *)ids;
        for (size_t i = 0; i < n; i++) tk_row_decode(dtype, base + (size_t)id[i] * row_bytes, dim, out + i * out_stride);
    }
}
