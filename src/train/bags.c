/* bags.c - pooled lookups (torch's EmbeddingBag) and their backward: SUM / MEAN / MAX over CSR offsets,
 * per_sample_weights for SUM, padding excluded from reductions and counts, empty bags give zeros. */
#include "train/train.h"
#include "table/storage.h"

#include <string.h>

/* Validates mode, offsets (length n_bags + 1: offsets[0] == 0, non-decreasing, offsets[n_bags] == n). */
static int32_t tk_check_bags(const char *fn, const tokemb_table *t, const void *ids, int idw, size_t n,
                             const int64_t *offsets, size_t n_bags, int32_t mode, const float *psw, bool need_f32) {
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (mode < TOKEMB_SUM || mode > TOKEMB_MAX)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown bag mode %d (SUM 0, MEAN 1, MAX 2)", fn, (int)mode);
    if (psw && mode != TOKEMB_SUM)
        return tk_error(TOKEMB_INVALID_ARGUMENT,
                        "%s: per_sample_weights are only supported for mode SUM (got mode %d), as torch", fn,
                        (int)mode);
    if (!offsets) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: offsets is NULL", fn);
    if (n > 0 && !ids) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: ids is NULL with n = %zu", fn, n);
    /* sizes first: a huge n_bags must not make us read past a short offsets array */
    size_t total;
    if (n_bags == SIZE_MAX || tk_mul_overflow(n_bags, (size_t)t->dim, &total) ||
        tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: n_bags = %zu rows of %lld floats overflows", fn, n_bags,
                        (long long)t->dim);
    if (offsets[0] != 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: offsets[0] = %lld must be 0", fn, (long long)offsets[0]);
    for (size_t b = 1; b <= n_bags; b++)
        if (offsets[b] < offsets[b - 1])
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: offsets[%zu] = %lld is smaller than offsets[%zu] = %lld", fn,
                            b, (long long)offsets[b], b - 1, (long long)offsets[b - 1]);
    if ((uint64_t)offsets[n_bags] != (uint64_t)n)
        return tk_error(TOKEMB_INVALID_ARGUMENT,
                        "%s: offsets[%zu] = %lld must equal n = %zu (the last offset ends the last bag)", fn, n_bags,
                        (long long)offsets[n_bags], n);
    if (need_f32 && t->dtype != TOKEMB_F32)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: the bag backward needs F32 storage (dtype %d)", fn, (int)t->dtype);
    return tk_check_ids(fn, ids, idw, n, t->rows);
}

typedef struct {
    const tokemb_table *t;
    const void *ids;
    int idw;
    const int64_t *offsets;
    int mode;
    const float *psw;
    float *out;
    int near; /* prefetch rows into L1 (tk_bags_near) */
} tk_bags_ctx;

/* Bag rows are prefetched into L1 when the CPU is Intel and the table fits the last-level cache:
 * there bags D = 64 / 128 / 256 ran at 1.02 / 0.86 / 0.90 of memcpy against 0.77 / 0.63 / 0.77 with L2
 * prefetches (tokemb-bench), and D = 64 / 128 at 0.97 / 1.00x torch's embedding_bag against 0.72 /
 * 0.79x; on AMD L1 was slower (docs/performance.md, "Tuning record"). */
static int tk_bags_near(const tokemb_table *t) {
    return tk_cpu_is_intel() && (double)t->rows * (double)tk_row_bytes(t) <= (double)tk_cache_llc_bytes();
}

static void tk_bags_range(void *p, size_t b0, size_t b1) {
    const tk_bags_ctx *c = (const tk_bags_ctx *)p;
    const tokemb_table *t = c->t;
    tk_bags_forward(t->data, tk_row_bytes(t), t->dtype, (size_t)t->dim, c->ids, c->idw, c->offsets, b0, b1, c->mode,
                    c->psw, t->padding_idx < 0, t->padding_idx, c->near, c->out);
}

static int32_t tk_lookup_bags_impl(const char *fn, tokemb_table *t, const void *ids, int idw, size_t n,
                                   const int64_t *offsets, size_t n_bags, int32_t mode, const float *psw, float *out) {
    int32_t st = tk_check_bags(fn, t, ids, idw, n, offsets, n_bags, mode, psw, false);
    if (st) return st;
    if (n_bags == 0) return TOKEMB_OK;
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL with n_bags = %zu", fn, n_bags);
    if (t->max_norm > 0 && n > 0) {
        if (t->dtype != TOKEMB_F32)
            return tk_error(TOKEMB_UNSUPPORTED, "%s: max_norm needs F32 storage (dtype %d)", fn, (int)t->dtype);
        if ((st = tk_check_writable(fn, t))) return st;
        if ((st = tk_renorm(fn, t, ids, idw, n))) return st;
    }
    /* F16 / BF16 / Q8_ROW rows are decoded on the fly by the kernel: only the compact bytes are read */
    tk_bags_ctx ctx = {t, ids, idw, offsets, mode, psw, out, tk_bags_near(t)};
    size_t per_bag = (size_t)t->dim * (1 + n / n_bags);
    size_t grain = (size_t)65536 / (per_bag ? per_bag : 1);
    tk_parallel_for(n_bags, grain ? grain : 1, tk_bags_range, &ctx);
    return TOKEMB_OK;
}

int32_t tokemb_lookup_bags(tokemb_table *t, const int64_t *ids, size_t n, const int64_t *offsets, size_t n_bags,
                           int32_t mode, const float *per_sample_weights, float *out) {
    return tk_lookup_bags_impl("tokemb_lookup_bags", t, ids, 8, n, offsets, n_bags, mode, per_sample_weights, out);
}

int32_t tokemb_lookup_bags_i32(tokemb_table *t, const int32_t *ids, size_t n, const int64_t *offsets, size_t n_bags,
                               int32_t mode, const float *per_sample_weights, float *out) {
    return tk_lookup_bags_impl("tokemb_lookup_bags_i32", t, ids, 4, n, offsets, n_bags, mode, per_sample_weights, out);
}

/* ---- backward ---------------------------------------------------------------------------------- */

typedef struct {
    const tokemb_table *t;
    const void *ids;
    int idw;
    const int64_t *offsets;
    size_t n_bags;
    const float *grad_out;
    float *grad_table;
    const size_t *bag_of;
    float *grad_psw;
} tk_bagbw_ctx;

static void tk_bagbw_max_range(void *p, size_t k0, size_t k1) {
    const tk_bagbw_ctx *c = (const tk_bagbw_ctx *)p;
    const size_t dim = (size_t)c->t->dim;
    size_t c0 = k0 * 64, c1 = k1 * 64 < dim ? k1 * 64 : dim;
    tk_bags_max_backward_f32((const float *)c->t->data, (size_t)c->t->row_stride, dim, c->ids, c->idw, c->offsets,
                             c->n_bags, c->t->padding_idx, c->grad_out, c->grad_table, c0, c1);
}

static void tk_bagbw_psw_range(void *p, size_t j0, size_t j1) {
    const tk_bagbw_ctx *c = (const tk_bagbw_ctx *)p;
    const tokemb_table *t = c->t;
    const size_t dim = (size_t)t->dim;
    for (size_t j = j0; j < j1; j++) {
        int64_t id = tk_id_at(c->ids, c->idw, j);
        if (id == t->padding_idx) {
            c->grad_psw[j] = 0.0f;
            continue;
        }
        const float *g = c->grad_out + c->bag_of[j] * dim;
        const float *w = tk_row_f32(t, id);
        double acc = 0.0;
        for (size_t d = 0; d < dim; d++) acc += (double)g[d] * (double)w[d];
        c->grad_psw[j] = (float)acc;
    }
}

static int32_t tk_grad_bags_impl(const char *fn, const tokemb_table *t, const void *ids, int idw, size_t n,
                                 const int64_t *offsets, size_t n_bags, int32_t mode, const float *psw,
                                 const float *grad_out, float *grad_table, float *grad_psw) {
    int32_t st = tk_check_bags(fn, t, ids, idw, n, offsets, n_bags, mode, psw, true);
    if (st) return st;
    if (grad_psw && mode != TOKEMB_SUM)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_per_sample_weights needs mode SUM (got mode %d)", fn,
                        (int)mode);
    if (mode == TOKEMB_MAX && t->scale_grad_by_freq)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: mode MAX does not support scale_grad_by_freq (as torch)", fn);
    if (n == 0 || n_bags == 0) return TOKEMB_OK;
    if (!grad_out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_out is NULL", fn);
    if (!grad_table) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: grad_table is NULL", fn);
    size_t total;
    if (tk_mul_overflow((size_t)t->rows, (size_t)t->dim, &total) || tk_mul_overflow(total, sizeof(float), &total))
        return tk_error(TOKEMB_OVERFLOW, "%s: grad_table of %lld x %lld floats overflows", fn, (long long)t->rows,
                        (long long)t->dim);
    if (n > SIZE_MAX / (sizeof(size_t) + sizeof(float)))
        return tk_error(TOKEMB_OVERFLOW, "%s: scratch for n = %zu overflows", fn, n);
    /* bag of every position, and the bag's non-padding count */
    size_t *bag_of = (size_t *)tk_malloc(n * sizeof(size_t));
    float *scale = (float *)tk_malloc(n * sizeof(float));
    if (!bag_of || !scale) {
        tk_free(bag_of);
        tk_free(scale);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate scratch for n = %zu", fn, n);
    }
    tk_sorted s = {0};
    if (mode != TOKEMB_MAX && (st = tk_sorted_build(fn, ids, idw, n, t->rows, t->padding_idx, &s))) {
        tk_free(bag_of);
        tk_free(scale);
        return st;
    }
    /* validated: write from here on */
    for (size_t b = 0; b < n_bags; b++) {
        size_t cnt = 0;
        for (size_t j = (size_t)offsets[b]; j < (size_t)offsets[b + 1]; j++) {
            bag_of[j] = b;
            if (tk_id_at(ids, idw, j) != t->padding_idx) cnt++;
        }
        if (mode == TOKEMB_MEAN) /* 1/n_bag factor later; keep the count in scale for now */
            for (size_t j = (size_t)offsets[b]; j < (size_t)offsets[b + 1]; j++) scale[j] = (float)cnt;
    }
    tk_bagbw_ctx ctx = {t, ids, idw, offsets, n_bags, grad_out, grad_table, bag_of, grad_psw};
    if (mode == TOKEMB_MAX) {
        tk_parallel_for(((size_t)t->dim + 63) / 64, 1, tk_bagbw_max_range, &ctx);
    } else {
        int need_scale = psw || t->scale_grad_by_freq || mode == TOKEMB_MEAN;
        if (need_scale) {
            /* torch's scale: double, psw, then / count (id frequency), then / bag size (mean), cast to float */
            for (size_t k = 0; k < s.u; k++) {
                size_t cnt = s.seg[k + 1] - s.seg[k];
                for (size_t q = s.seg[k]; q < s.seg[k + 1]; q++) {
                    size_t j = s.pos[q];
                    double sc = psw ? (double)psw[j] : 1.0;
                    if (t->scale_grad_by_freq) sc /= (double)cnt;
                    if (mode == TOKEMB_MEAN && scale[j] != 0.0f) sc /= (double)scale[j];
                    scale[j] = (float)sc;
                }
            }
        }
        tk_segsum_args a = tk_segsum_over(&s, t, grad_out, grad_table);
        a.src_map = bag_of;
        a.pos_scale = need_scale ? scale : NULL;
        a.dst_by_key = 1;
        tk_segsum_f32(&a);
        tk_sorted_free(&s);
    }
    if (grad_psw) tk_parallel_for(n, 64, tk_bagbw_psw_range, &ctx);
    tk_free(bag_of);
    tk_free(scale);
    return TOKEMB_OK;
}

int32_t tokemb_lookup_bags_backward(const tokemb_table *t, const int64_t *ids, size_t n, const int64_t *offsets,
                                    size_t n_bags, int32_t mode, const float *per_sample_weights, const float *grad_out,
                                    float *grad_table, float *grad_per_sample_weights) {
    return tk_grad_bags_impl("tokemb_lookup_bags_backward", t, ids, 8, n, offsets, n_bags, mode, per_sample_weights,
                             grad_out, grad_table, grad_per_sample_weights);
}

int32_t tokemb_lookup_bags_backward_i32(const tokemb_table *t, const int32_t *ids, size_t n, const int64_t *offsets,
                                        size_t n_bags, int32_t mode, const float *per_sample_weights,
                                        const float *grad_out, float *grad_table, float *grad_per_sample_weights) {
    return tk_grad_bags_impl("tokemb_lookup_bags_backward_i32", t, ids, 4, n, offsets, n_bags, mode, per_sample_weights,
                             grad_out, grad_table, grad_per_sample_weights);
}
