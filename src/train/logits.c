/* logits.c - the tied output head (GPT-2 weight tying): logits = hidden x W^T and its backward, through
 * cblas_sgemm on the table's own storage. */
#include "table/table.h"

#include <cblas.h>

static int32_t tk_check_logits(const char *fn, const tokemb_table *t, const float *hidden, size_t n) {
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (t->dtype != TOKEMB_F32)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: the sgemm path needs F32 storage (dtype %d)", fn, (int)t->dtype);
    if (t->rows > (int64_t)INT32_MAX || t->dim > (int64_t)INT32_MAX || t->row_stride > (int64_t)INT32_MAX ||
        n > (size_t)INT32_MAX)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: BLAS dimensions are limited to 2^31-1 (n %zu, rows %lld, dim %lld)",
                        fn, n, (long long)t->rows, (long long)t->dim);
    size_t a, b;
    if (tk_mul_overflow(n, (size_t)t->rows, &a) || tk_mul_overflow(a, sizeof(float), &a) ||
        tk_mul_overflow(n, (size_t)t->dim, &b) || tk_mul_overflow(b, sizeof(float), &b))
        return tk_error(TOKEMB_OVERFLOW, "%s: n = %zu x rows = %lld logits overflows", fn, n, (long long)t->rows);
    if (n > 0 && !hidden) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: hidden is NULL with n = %zu", fn, n);
    return TOKEMB_OK;
}

int32_t tokemb_logits(const tokemb_table *t, const float *hidden, size_t n, float *logits) {
    static const char fn[] = "tokemb_logits";
    int32_t st = tk_check_logits(fn, t, hidden, n);
    if (st) return st;
    if (n == 0) return TOKEMB_OK;
    if (!logits) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: logits is NULL with n = %zu", fn, n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)t->rows, (int)t->dim, 1.0f, hidden, (int)t->dim,
                (const float *)t->data, (int)t->row_stride, 0.0f, logits, (int)t->rows);
    return TOKEMB_OK;
}

int32_t tokemb_logits_backward(const tokemb_table *t, const float *hidden, size_t n, const float *grad_logits,
                               float *grad_hidden, float *grad_table) {
    static const char fn[] = "tokemb_logits_backward";
    int32_t st = tk_check_logits(fn, t, hidden, n);
    if (st) return st;
    if (!grad_hidden && !grad_table)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_hidden and grad_table are both NULL", fn);
    if (n == 0) return TOKEMB_OK;
    if (!grad_logits) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_logits is NULL with n = %zu", fn, n);
    size_t tb;
    if (grad_table &&
        (tk_mul_overflow((size_t)t->rows, (size_t)t->dim, &tb) || tk_mul_overflow(tb, sizeof(float), &tb)))
        return tk_error(TOKEMB_OVERFLOW, "%s: grad_table size overflows", fn);
    const int rows = (int)t->rows, dim = (int)t->dim;
    if (grad_hidden) /* [n][dim] = G[n][rows] x W[rows][dim] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, dim, rows, 1.0f, grad_logits, rows,
                    (const float *)t->data, (int)t->row_stride, 0.0f, grad_hidden, dim);
    if (grad_table) /* [rows][dim] += G^T[rows][n] x H[n][dim] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, rows, dim, (int)n, 1.0f, grad_logits, rows, hidden, dim,
                    1.0f, grad_table, dim);
    return TOKEMB_OK;
}
