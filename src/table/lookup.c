/* lookup.c - tokemb_lookup and its int32 / strided twins, with torch's max_norm renormalisation. */
#include "table/table.h"
#include "kernels/convert.h"
#include "kernels/kernels.h"
#include "table/storage.h"

#include <math.h>
#include <stdlib.h>

static int tk_cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double tk_row_norm(const float *row, size_t dim, double p) {
    double acc = 0.0;
    if (p == 2.0) {
        for (size_t c = 0; c < dim; c++) acc += (double)row[c] * (double)row[c];
        return sqrt(acc);
    }
    if (p == 1.0) {
        for (size_t c = 0; c < dim; c++) acc += fabs((double)row[c]);
        return acc;
    }
    if (isinf(p)) {
        for (size_t c = 0; c < dim; c++) acc = fmax(acc, fabs((double)row[c]));
        return acc;
    }
    for (size_t c = 0; c < dim; c++) acc += pow(fabs((double)row[c]), p);
    return pow(acc, 1.0 / p);
}

/* torch's embedding_renorm_: each distinct id once, ascending; ids already validated. The only
 * failure (the sorted copy) happens before any row changes. */
int32_t tk_renorm(const char *fn, tokemb_table *t, const void *ids, int idw, size_t n) {
    int64_t *sorted = (int64_t *)tk_malloc(n * sizeof(int64_t));
    if (!sorted) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu ids for max_norm", fn, n);
    for (size_t i = 0; i < n; i++) sorted[i] = tk_id_at(ids, idw, i);
    qsort(sorted, n, sizeof(int64_t), tk_cmp_i64);
    const size_t dim = (size_t)t->dim;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && sorted[i] == sorted[i - 1]) continue;
        float *row = tk_row_f32(t, sorted[i]);
        double norm = tk_row_norm(row, dim, t->norm_type);
        if (norm > t->max_norm) {
            float scale = (float)(t->max_norm / (norm + 1e-7));
            for (size_t c = 0; c < dim; c++) row[c] *= scale;
        }
    }
    tk_free(sorted);
    return TOKEMB_OK;
}

typedef struct {
    const tokemb_table *t;
    const void *ids;
    int idw;
    float *out;
    size_t out_stride;
    unsigned flags; /* TK_GATHER_* */
} tk_gather_ctx;

/* Tokens [b, e): float32 rows are copied, F16 / BF16 / Q8_ROW rows decoded (kernels/gather_dtype.c). */
static void tk_gather_range(void *p, size_t b, size_t e) {
    const tk_gather_ctx *c = (const tk_gather_ctx *)p;
    const tokemb_table *t = c->t;
    const char *ids = (const char *)c->ids + b * (size_t)c->idw;
    if (t->dtype == TOKEMB_F32)
        tk_gather_f32_ex((const float *)t->data, (size_t)t->row_stride, ids, c->idw, e - b, (size_t)t->dim,
                         c->out + b * c->out_stride, c->out_stride, c->flags);
    else
        tk_gather_dtype(t->dtype, t->data, tk_row_bytes(t), ids, c->idw, e - b, (size_t)t->dim,
                        c->out + b * c->out_stride, c->out_stride);
}

/* Rows per thread chunk: each chunk writes >= 512 KiB of output (~20 us), so handing a chunk to a
 * persistent worker (a few us) stays a small part of its work and calls below 512 KiB (a 64-token
 * decode step at D = 768 is 192 KiB) run on the calling thread. 2 MiB, sized for the old per-call
 * thread start, kept D = 4 lookups of 65,536 tokens on one thread: 0.81x index_select at 2 threads,
 * 1.56x with 512 KiB (docs/performance.md, "Tuning record"). */
static size_t tk_gather_grain(size_t dim) {
    size_t row = dim * sizeof(float);
    size_t g = ((size_t)512 << 10) / (row ? row : 1);
    return g ? g : 1;
}

/* Kernel options: non-temporal stores per TOKEMB_NONTEMPORAL (2: when the output exceeds the
 * last-level cache), no software prefetch when the whole table fits in L2, prefetch into L1 when it fits
 * the last-level cache (into L2 when it does not). Never changes results. */
static unsigned tk_gather_flags(const tokemb_table *t, size_t out_bytes) {
    unsigned f = 0;
    const double table_bytes = (double)t->rows * (double)tk_row_bytes(t);
    if (t->nontemporal == 1 || (t->nontemporal == 2 && out_bytes > tk_cache_llc_bytes())) f |= TK_GATHER_NT;
    if (table_bytes <= (double)tk_cache_l2_bytes()) f |= TK_GATHER_NO_PREFETCH;
    else if (table_bytes <= (double)tk_cache_llc_bytes()) f |= TK_GATHER_PF_NEAR;
    return f;
}

static int32_t tk_lookup_impl(const char *fn, tokemb_table *t, const void *ids, int idw, size_t n, float *out,
                              int64_t out_stride) {
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (out_stride < t->dim)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out_row_stride = %lld is smaller than dim = %lld", fn,
                        (long long)out_stride, (long long)t->dim);
    if (n == 0) return TOKEMB_OK;
    if (!ids) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: ids is NULL with n = %zu", fn, n);
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL with n = %zu", fn, n);
    size_t total;
    if ((uint64_t)out_stride > SIZE_MAX || tk_mul_overflow(n, (size_t)out_stride, &total) ||
        tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: n = %zu rows of %lld floats overflows", fn, n, (long long)out_stride);
    /* the bytes actually written: the last row ends after dim floats */
    if ((st = tk_check_no_overlap(fn, t, out, total - ((size_t)out_stride - (size_t)t->dim) * sizeof(float), "out")))
        return st;
    if (t->dtype != TOKEMB_F32 && t->max_norm > 0)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: max_norm renormalisation needs F32 storage (dtype %d)", fn,
                        (int)t->dtype);
    if ((st = tk_check_ids(fn, ids, idw, n, t->rows))) return st;
    if (t->max_norm > 0) {
        if ((st = tk_check_writable(fn, t))) return st;
        if ((st = tk_renorm(fn, t, ids, idw, n))) return st;
    }
    tk_gather_ctx ctx = {t, ids, idw, out, (size_t)out_stride, tk_gather_flags(t, total)};
    tk_parallel_for(n, tk_gather_grain((size_t)t->dim), tk_gather_range, &ctx);
    return TOKEMB_OK;
}

int32_t tokemb_lookup(tokemb_table *t, const int64_t *ids, size_t n, float *out) {
    return tk_lookup_impl("tokemb_lookup", t, ids, 8, n, out, t ? t->dim : 0);
}

int32_t tokemb_lookup_i32(tokemb_table *t, const int32_t *ids, size_t n, float *out) {
    return tk_lookup_impl("tokemb_lookup_i32", t, ids, 4, n, out, t ? t->dim : 0);
}

int32_t tokemb_lookup_strided(tokemb_table *t, const int64_t *ids, size_t n, float *out, int64_t out_row_stride) {
    return tk_lookup_impl("tokemb_lookup_strided", t, ids, 8, n, out, out_row_stride);
}
