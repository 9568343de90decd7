/* gather_dtype.c - the gather for compact storage (F16, BF16, Q8_ROW): each referenced row is
 * decoded straight into the float32 output (dequantised on the fly, no scratch). The decoder is chosen
 * once per call; rows a few ids ahead are prefetched (random rows are latency-bound). */
#include "kernels/convert.h"
#include "kernels/simd.h"

#define TK_PF_AHEAD 8
#define TK_PF_CAP 512 /* bytes of a row prefetched */

TK_ALWAYS_INLINE void tk_gather_dtype_body(const tk_row_decoder_fn dec, const uint8_t *base, size_t row_bytes,
                                           const void *ids, int id_width, size_t n, size_t dim, float *out,
                                           size_t out_stride, size_t pf_bytes) {
    for (size_t i = 0; i < n; i++) {
        if (i + TK_PF_AHEAD < n)
            tk_prefetch_bytes(base + (size_t)tk_id_at(ids, id_width, i + TK_PF_AHEAD) * row_bytes, pf_bytes, 0);
        dec(base + (size_t)tk_id_at(ids, id_width, i) * row_bytes, dim, out + i * out_stride);
    }
}

void tk_gather_dtype(int32_t dtype, const void *table, size_t row_bytes, const void *ids, int id_width, size_t n,
                     size_t dim, float *out, size_t out_stride) {
    const tk_row_decoder_fn dec = tk_row_decoder(dtype);
    size_t pf_bytes = tk_dtype_row_bytes(dtype, dim); /* bytes of a row that are read */
    if (pf_bytes > TK_PF_CAP) pf_bytes = TK_PF_CAP;
    /* one loop per id width, so the width test is not in the loop */
    if (id_width == 8)
        tk_gather_dtype_body(dec, (const uint8_t *)table, row_bytes, ids, 8, n, dim, out, out_stride, pf_bytes);
    else tk_gather_dtype_body(dec, (const uint8_t *)table, row_bytes, ids, 4, n, dim, out, out_stride, pf_bytes);
}
