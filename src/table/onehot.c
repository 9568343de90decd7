/* onehot.c - the Linear view of a lookup: one-hot rows times the table through cblas_sgemm. */
#include "table/table.h"

#include <cblas.h>
#include <string.h>

/* Tokens per chunk: the one-hot scratch block holds at most 2^24 floats (64 MiB), or one row if a
 * single one-hot row is larger. Every sgemm call re-packs the whole rows x dim table, so chunks must be
 * long for the packing to amortise (docs/performance.md, "Tuning record"). */
static size_t tk_onehot_chunk(size_t rows, size_t n) {
    size_t c = ((size_t)1 << 24) / rows;
    if (c < 1) c = 1;
    if (c > n) c = n;
    return c;
}

int32_t tokemb_lookup_onehot(const tokemb_table *t, const int64_t *ids, size_t n, float *out) {
    static const char fn[] = "tokemb_lookup_onehot";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (n == 0) return TOKEMB_OK;
    if (!ids) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: ids is NULL with n = %zu", fn, n);
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL with n = %zu", fn, n);
    size_t total;
    if (tk_mul_overflow(n, (size_t)t->dim, &total) || tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: n = %zu rows of %lld floats overflows", fn, n, (long long)t->dim);
    if (t->dtype != TOKEMB_F32)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: the sgemm path needs F32 storage (dtype %d)", fn, (int)t->dtype);
    if (t->rows > (int64_t)INT32_MAX || t->dim > (int64_t)INT32_MAX || t->row_stride > (int64_t)INT32_MAX)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: BLAS dimensions are limited to 2^31-1 (rows %lld, dim %lld)", fn,
                        (long long)t->rows, (long long)t->dim);
    if ((st = tk_check_ids(fn, ids, 8, n, t->rows))) return st;
    const size_t rows = (size_t)t->rows, dim = (size_t)t->dim;
    const size_t chunk = tk_onehot_chunk(rows, n);
    /* zeroed, 2 MiB aligned and huge-page advised when large (fewer page faults than calloc) */
    float *onehot = (float *)tk_aligned_alloc(chunk * rows * sizeof(float));
    if (!onehot) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu x %zu one-hot scratch", fn, chunk, rows);
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        for (size_t i = 0; i < m; i++) onehot[i * rows + (size_t)ids[i0 + i]] = 1.0f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)dim, (int)rows, 1.0f, onehot, (int)rows,
                    (const float *)t->data, (int)t->row_stride, 0.0f, out + i0 * dim, (int)dim);
        for (size_t i = 0; i < m; i++) onehot[i * rows + (size_t)ids[i0 + i]] = 0.0f;
    }
    tk_aligned_free(onehot);
    return TOKEMB_OK;
}
