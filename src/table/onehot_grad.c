/* onehot_grad.c - the backward twin of tokemb_lookup_onehot: grad_table += onehot(ids)^T x grad_out
 * through cblas_sgemm (the Linear view of the embedding backward), in chunks of tokens so the one-hot
 * scratch stays bounded (the same chunking as the forward). */
#include "table/table.h"

#include <cblas.h>

static size_t tk_onehot_grad_chunk(size_t rows, size_t n) {
    size_t c = ((size_t)1 << 20) / rows;
    if (c < 1) c = 1;
    if (c > n) c = n;
    return c;
}

int32_t tokemb_lookup_onehot_backward(const tokemb_table *t, const int64_t *ids, size_t n, const float *grad_out,
                                      float *grad_table) {
    static const char fn[] = "tokemb_lookup_onehot_backward";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (n == 0) return TOKEMB_OK;
    if (!ids) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: ids is NULL with n = %zu", fn, n);
    if (!grad_out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_out is NULL with n = %zu", fn, n);
    if (!grad_table) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_table is NULL", fn);
    size_t total;
    if (tk_mul_overflow(n, (size_t)t->dim, &total) || tk_mul_overflow(total, sizeof(float), &total) ||
        tk_mul_overflow((size_t)t->rows, (size_t)t->dim, &total) || tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: n = %zu or rows = %lld rows of %lld floats overflows", fn, n,
                        (long long)t->rows, (long long)t->dim);
    if (t->rows > (int64_t)INT32_MAX || t->dim > (int64_t)INT32_MAX)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: BLAS dimensions are limited to 2^31-1 (rows %lld, dim %lld)", fn,
                        (long long)t->rows, (long long)t->dim);
    if ((st = tk_check_ids(fn, ids, 8, n, t->rows))) return st;
    const size_t rows = (size_t)t->rows, dim = (size_t)t->dim;
    const size_t chunk = tk_onehot_grad_chunk(rows, n);
    float *onehot = (float *)tk_calloc(chunk * rows, sizeof(float));
    if (!onehot) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu x %zu one-hot scratch", fn, chunk, rows);
    uint32_t *counts = NULL;
    if (t->scale_grad_by_freq) {
        counts = (uint32_t *)tk_calloc(rows, sizeof(uint32_t));
        if (!counts) {
            tk_free(onehot);
            return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu counts", fn, rows);
        }
        for (size_t i = 0; i < n; i++) counts[ids[i]]++;
    }
    for (size_t i0 = 0; i0 < n; i0 += chunk) {
        size_t m = n - i0 < chunk ? n - i0 : chunk;
        for (size_t i = 0; i < m; i++) {
            int64_t id = ids[i0 + i];
            if (id == t->padding_idx) continue; /* padding rows receive nothing */
            onehot[i * rows + (size_t)id] = counts ? (float)(1.0 / (double)counts[id]) : 1.0f;
        }
        /* C[rows][dim] = 1 * A^T B + 1 * C with A = onehot[m][rows], B = grad_out chunk [m][dim] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)rows, (int)dim, (int)m, 1.0f, onehot, (int)rows,
                    grad_out + i0 * dim, (int)dim, 1.0f, grad_table, (int)dim);
        for (size_t i = 0; i < m; i++) onehot[i * rows + (size_t)ids[i0 + i]] = 0.0f;
    }
    tk_free(counts);
    tk_free(onehot);
    return TOKEMB_OK;
}
