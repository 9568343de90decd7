/* storage.c - the row codec of the API layer: a table row read as / written from float32 in any storage
 * dtype (the conversions themselves are kernels/convert.c). Only the codec: nothing here creates tables. */
#include "table/storage.h"

#include "kernels/convert.h"

#include <math.h>
#include <string.h>

void tk_row_read_f32(const tokemb_table *t, int64_t r, float *out) {
    tk_row_decode(t->dtype, tk_row_ptr(t, r), (size_t)t->dim, out);
}

void tk_row_write_f32(tokemb_table *t, int64_t r, const float *src) {
    tk_row_encode(t->dtype, src, (size_t)t->dim, tk_row_ptr(t, r));
}

size_t tk_first_nonfinite(const float *src, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(src[i])) return i;
    return n;
}
