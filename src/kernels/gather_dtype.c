/* gather_dtype.c - the gather for compact storage (F16, BF16, Q8_ROW): each referenced row is
 * decoded straight into the float32 output (dequantised on the fly, no scratch). The decoder is chosen
 * once per call; rows a few ids ahead are prefetched (random rows are latency-bound). */
#include "convert.h"

#include "kernels.h"
#include "tokemb.h"

#define TK_PF_AHEAD 8
#define TK_PF_CAP 512 /* bytes of a row prefetched */

static inline void tk_prefetch_row(const uint8_t *p, size_t bytes) {
#if defined(__GNUC__)
    for (size_t o = 0; o < bytes && o < TK_PF_CAP; o += 64) __builtin_prefetch(p + o, 0, TK_PF_LOC);
#else
    (void)p;
    (void)bytes;
#endif
}

void tk_gather_dtype(int32_t dtype, const void *table, size_t row_bytes, const void *ids, int id_width, size_t n,
                     size_t dim, float *out, size_t out_stride) {
    const uint8_t *base = (const uint8_t *)table;
    const tk_row_decoder_fn dec = tk_row_decoder(dtype);
    const size_t used = dtype == TOKEMB_Q8_ROW ? dim + 8 : dim * 2; /* bytes of a row that are read */
    if (id_width == 8) {
        const int64_t *id = (const int64_t *)ids;
        for (size_t i = 0; i < n; i++) {
            if (i + TK_PF_AHEAD < n) tk_prefetch_row(base + (size_t)id[i + TK_PF_AHEAD] * row_bytes, used);
            dec(base + (size_t)id[i] * row_bytes, dim, out + i * out_stride);
        }
    } else {
        const int32_t *id = (const int32_t *)ids;
        for (size_t i = 0; i < n; i++) {
            if (i + TK_PF_AHEAD < n) tk_prefetch_row(base + (size_t)id[i + TK_PF_AHEAD] * row_bytes, used);
            dec(base + (size_t)id[i] * row_bytes, dim, out + i * out_stride);
        }
    }
}
