/* storage.c - compact storage dtypes: row access converting to/from float32 and
 * tokemb_table_convert (F32 -> F16/BF16 with round-to-nearest-even, Q8_ROW quantisation, and back). */
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

int32_t tokemb_table_convert(const tokemb_table *src, int32_t dtype, tokemb_table **out) {
    static const char fn[] = "tokemb_table_convert";
    int32_t st = tk_check_table(fn, src);
    if (st) return st;
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    if (tk_dtype_size(dtype) == 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown dtype %d (F32 0, F16 1, BF16 2, Q8_ROW 3)", fn, (int)dtype);
    const size_t d = (size_t)src->dim;
    float *row = (float *)tk_malloc(d * sizeof(float));
    if (!row) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate a %zu-float row buffer", fn, d);
    if (dtype == TOKEMB_Q8_ROW) {
        for (int64_t r = 0; r < src->rows; r++) {
            tk_row_read_f32(src, r, row);
            size_t c = tk_first_nonfinite(row, d);
            if (c < d) {
                const double bad = (double)row[c];
                tk_free(row);
                return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: row %lld column %zu holds %g; Q8_ROW needs finite values",
                                fn, (long long)r, c, bad);
            }
        }
    }
    tokemb_table *t = NULL;
    if ((st = tokemb_table_create(src->rows, src->dim, dtype, &t))) {
        tk_free(row);
        return st;
    }
    for (int64_t r = 0; r < src->rows; r++) {
        tk_row_read_f32(src, r, row);
        tk_row_write_f32(t, r, row);
    }
    tk_free(row);
    t->padding_idx = src->padding_idx;
    t->max_norm = src->max_norm;
    t->norm_type = src->norm_type;
    t->scale_grad_by_freq = src->scale_grad_by_freq;
    t->frozen = src->frozen;
    *out = t;
    return TOKEMB_OK;
}
