/* grad.c - gradients of the lookup: dense scatter-add into a caller buffer and the coalesced (sparse)
 * form. Both sort (id, position) with a stable radix sort and sum each row's contributions in input
 * order (torch's embedding_dense_backward order), parallel over rows; cost O(n*dim + n*passes),
 * never O(rows*dim). */
#include "train/train.h"

#include <string.h>

int32_t tk_sorted_build(const char *fn, const void *ids, int id_width, size_t n, int64_t rows, int64_t skip_id,
                        tk_sorted *s) {
    memset(s, 0, sizeof *s);
    /* key, pos, tmp_key, tmp_pos: n each; seg: n + 1 (all 8 bytes) */
    if (n > (SIZE_MAX / 8 - 1) / 5)
        return tk_error(TOKEMB_OVERFLOW, "%s: sort scratch for n = %zu ids overflows", fn, n);
    size_t bytes = (5 * n + 1) * 8;
    unsigned char *mem = (unsigned char *)tk_malloc(bytes ? bytes : 8);
    if (!mem)
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu bytes of sort scratch for %zu ids", fn, bytes, n);
    s->mem = mem;
    s->key = (uint64_t *)mem;
    s->pos = (size_t *)(mem + 8 * n);
    uint64_t *tk = (uint64_t *)(mem + 16 * n);
    size_t *tp = (size_t *)(mem + 24 * n);
    s->seg = (size_t *)(mem + 32 * n);
    s->m = tk_sort_ids(ids, id_width, n, rows, skip_id, s->key, s->pos, tk, tp);
    s->u = tk_segments(s->key, s->m, s->seg);
    s->n = n;
    s->spare = tk;
    return TOKEMB_OK;
}

void tk_sorted_inverse(tk_sorted *s) {
    s->inv = (size_t *)s->spare;
    memset(s->inv, 0, s->n * sizeof(size_t));
    for (size_t k = 0; k < s->u; k++)
        for (size_t j = s->seg[k]; j < s->seg[k + 1]; j++) s->inv[s->pos[j]] = k + 1;
}

void tk_sorted_free(tk_sorted *s) {
    tk_free(s->mem);
    s->mem = NULL;
}

int32_t tk_check_grad_args(const char *fn, const tokemb_table *t, const void *ids, int id_width, size_t n,
                           const float *grad_out) {
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (n == 0) return TOKEMB_OK;
    if (!ids) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: ids is NULL with n = %zu", fn, n);
    if (!grad_out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_out is NULL with n = %zu", fn, n);
    if (t->dtype != TOKEMB_F32)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: gradients need F32 storage (dtype %d)", fn, (int)t->dtype);
    size_t total;
    if (tk_mul_overflow(n, (size_t)t->dim, &total) || tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: n = %zu rows of %lld floats overflows", fn, n, (long long)t->dim);
    return tk_check_ids(fn, ids, id_width, n, t->rows);
}

int32_t tk_grad_accumulate_impl(const char *fn, const tokemb_table *t, const void *ids, int idw, size_t n,
                                const float *grad_out, float *grad_table) {
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (n == 0) return TOKEMB_OK;
    if (!grad_table) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_table is NULL", fn);
    size_t total;
    if (tk_mul_overflow((size_t)t->rows, (size_t)t->dim, &total) || tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: grad_table of %lld x %lld floats overflows", fn, (long long)t->rows,
                        (long long)t->dim);
    if ((st = tk_check_grad_args(fn, t, ids, idw, n, grad_out))) return st;
    tk_sorted s;
    if ((st = tk_sorted_build(fn, ids, idw, n, t->rows, t->padding_idx, &s))) return st;
    tk_segsum_args a = tk_segsum_over(&s, t, grad_out, grad_table);
    a.scale_by_count = t->scale_grad_by_freq;
    a.dst_by_key = 1;
    tk_segsum_f32(&a);
    tk_sorted_free(&s);
    return TOKEMB_OK;
}

int32_t tokemb_grad_accumulate(const tokemb_table *t, const int64_t *ids, size_t n, const float *grad_out,
                               float *grad_table) {
    return tk_grad_accumulate_impl("tokemb_grad_accumulate", t, ids, 8, n, grad_out, grad_table);
}

int32_t tokemb_grad_accumulate_i32(const tokemb_table *t, const int32_t *ids, size_t n, const float *grad_out,
                                   float *grad_table) {
    return tk_grad_accumulate_impl("tokemb_grad_accumulate_i32", t, ids, 4, n, grad_out, grad_table);
}

int32_t tk_coalesce(const char *fn, const tokemb_table *t, const void *ids, int idw, size_t n, const float *grad_out,
                    int64_t *out_ids, float *out_rows, size_t *n_unique) {
    tk_sorted s;
    int32_t st = tk_sorted_build(fn, ids, idw, n, t->rows, t->padding_idx, &s);
    if (st) return st;
    for (size_t k = 0; k < s.u; k++) out_ids[k] = (int64_t)s.key[s.seg[k]];
    tk_segsum_args a = tk_segsum_over(&s, t, grad_out, out_rows);
    a.scale_by_count = t->scale_grad_by_freq;
    a.zero_first = 1;
    tk_segsum_f32(&a);
    *n_unique = s.u;
    tk_sorted_free(&s);
    return TOKEMB_OK;
}

static int32_t tk_grad_coalesce_impl(const char *fn, const tokemb_table *t, const void *ids, int idw, size_t n,
                                     const float *grad_out, int64_t *out_ids, float *out_rows, size_t *n_unique) {
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (!n_unique) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: n_unique is NULL", fn);
    if (n > 0 && !out_ids) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out_ids is NULL with n = %zu", fn, n);
    if (n > 0 && !out_rows) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out_rows is NULL with n = %zu", fn, n);
    if ((st = tk_check_grad_args(fn, t, ids, idw, n, grad_out))) return st;
    if (n == 0) {
        *n_unique = 0;
        return TOKEMB_OK;
    }
    return tk_coalesce(fn, t, ids, idw, n, grad_out, out_ids, out_rows, n_unique);
}

int32_t tokemb_grad_coalesce(const tokemb_table *t, const int64_t *ids, size_t n, const float *grad_out,
                             int64_t *out_ids, float *out_rows, size_t *n_unique) {
    return tk_grad_coalesce_impl("tokemb_grad_coalesce", t, ids, 8, n, grad_out, out_ids, out_rows, n_unique);
}

int32_t tokemb_grad_coalesce_i32(const tokemb_table *t, const int32_t *ids, size_t n, const float *grad_out,
                                 int64_t *out_ids, float *out_rows, size_t *n_unique) {
    return tk_grad_coalesce_impl("tokemb_grad_coalesce_i32", t, ids, 4, n, grad_out, out_ids, out_rows, n_unique);
}
