/* nearest.c - nearest neighbours over a table's rows: cosine or dot-product top-k for query vectors
 * (tokemb_nearest) or for rows of the table itself (tokemb_nearest_ids), scored in blocks through
 * cblas_sgemm (queries x row-block^T) with bounded scratch, then a per-query top-k heap. Cosine is
 * scored as gensim's most_similar does: dot(row, q/|q|) / |row|; an all-zero row scores NaN (gensim's
 * 0/0), which ranks after every number, so zero rows are never ranked above a real neighbour.
 * tokemb_nearest_ex reports progress (scored query x row pairs) after every block and can cancel. */
#include "table/table.h"
#include "table/storage.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define TK_NN_QBLOCK 256u  /* queries per block */
#define TK_NN_RBLOCK 2048u /* table rows per block */

typedef struct {
    float s;
    int64_t id;
} tk_hit;

/* a ranks before b: higher score first (NaN last), then lower id */
static bool tk_hit_better(tk_hit a, tk_hit b) {
    bool an = isnan(a.s), bn = isnan(b.s);
    if (an != bn) return bn;
    if (!an && a.s != b.s) return a.s > b.s;
    return a.id < b.id;
}

/* min-heap on "better": h[0] is the worst kept hit */
static void tk_heap_sift_down(tk_hit *h, size_t n, size_t i) {
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && tk_hit_better(h[w], h[l])) w = l;
        if (r < n && tk_hit_better(h[w], h[r])) w = r;
        if (w == i) return;
        tk_hit x = h[i];
        h[i] = h[w];
        h[w] = x;
        i = w;
    }
}

static void tk_heap_push(tk_hit *h, size_t *n, size_t k, tk_hit x) {
    if (*n < k) {
        size_t i = (*n)++;
        h[i] = x;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!tk_hit_better(h[p], h[i])) break;
            tk_hit y = h[p];
            h[p] = h[i];
            h[i] = y;
            i = p;
        }
    } else if (tk_hit_better(x, h[0])) {
        h[0] = x;
        tk_heap_sift_down(h, *n, 0);
    }
}

static double tk_norm2(const float *x, size_t d) {
    double acc = 0.0;
    for (size_t c = 0; c < d; c++) acc += (double)x[c] * (double)x[c];
    return sqrt(acc);
}

/* Core: queries either given (q != NULL, [n][dim]) or taken from table rows ids[n]. */
static int32_t tk_nearest_impl(const char *fn, const tokemb_table *t, const float *q, const int64_t *qids, size_t n,
                               size_t k, int32_t metric, const int64_t *exclude, tokemb_progress_fn progress,
                               void *user, int64_t *out_ids, float *out_scores) {
    const size_t d = (size_t)t->dim, rows = (size_t)t->rows;
    const size_t qb = n < TK_NN_QBLOCK ? n : TK_NN_QBLOCK, rb = rows < TK_NN_RBLOCK ? rows : TK_NN_RBLOCK;
    const bool f32 = t->dtype == TOKEMB_F32;
    size_t qbytes, sbytes, wbytes, hbytes;
    if (tk_mul_overflow(qb, d * sizeof(float), &qbytes) || tk_mul_overflow(qb * rb, sizeof(float), &sbytes) ||
        tk_mul_overflow(rb, d * sizeof(float), &wbytes) || tk_mul_overflow(qb, k * sizeof(tk_hit), &hbytes))
        return tk_error(TOKEMB_OVERFLOW, "%s: scratch size overflows (k = %zu, dim = %zu)", fn, k, d);
    float *Q = (float *)tk_malloc(qbytes), *S = (float *)tk_malloc(sbytes);
    float *W = f32 ? NULL : (float *)tk_malloc(wbytes);
    float *rnorm = (float *)tk_malloc(rows * sizeof(float));
    tk_hit *H = (tk_hit *)tk_malloc(hbytes);
    size_t *hn = (size_t *)tk_malloc(qb * sizeof(size_t));
    int32_t st = TOKEMB_OK;
    if (!Q || !S || (!f32 && !W) || !rnorm || !H || !hn) {
        st =
            tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the scoring scratch (%zu + %zu bytes)", fn, qbytes, sbytes);
        goto done;
    }
    const uint64_t total = (uint64_t)n * (uint64_t)rows;
    uint64_t done = 0;
    if (progress && progress(user, 0, total) != 0) {
        st = tk_error(TOKEMB_CANCELLED, "%s: cancelled by the progress callback before scoring", fn);
        goto done;
    }
    /* row norms (cosine) */
    if (metric == TOKEMB_METRIC_COSINE) {
        for (size_t r0 = 0; r0 < rows; r0 += rb) {
            size_t nb = rows - r0 < rb ? rows - r0 : rb;
            for (size_t r = 0; r < nb; r++) {
                const float *w;
                if (f32) {
                    w = tk_row_f32(t, (int64_t)(r0 + r));
                } else {
                    tk_row_read_f32(t, (int64_t)(r0 + r), W);
                    w = W;
                }
                rnorm[r0 + r] = (float)tk_norm2(w, d);
            }
            if (progress && progress(user, 0, total) != 0) { /* a huge table: stay cancellable */
                st = tk_error(TOKEMB_CANCELLED, "%s: cancelled by the progress callback while computing row norms", fn);
                goto done;
            }
        }
    }
    for (size_t q0 = 0; q0 < n; q0 += qb) {
        const size_t nq = n - q0 < qb ? n - q0 : qb;
        for (size_t i = 0; i < nq; i++) {
            float *qi = Q + i * d;
            if (q) memcpy(qi, q + (q0 + i) * d, d * sizeof(float));
            else tk_row_read_f32(t, qids[q0 + i], qi);
            if (metric == TOKEMB_METRIC_COSINE) {
                float nrm = (float)tk_norm2(qi, d);
                if (nrm > 0)
                    for (size_t c = 0; c < d; c++) qi[c] /= nrm;
            }
            hn[i] = 0;
        }
        for (size_t r0 = 0; r0 < rows; r0 += rb) {
            const size_t nb = rows - r0 < rb ? rows - r0 : rb;
            const float *Wb;
            size_t ldw;
            if (f32) {
                Wb = tk_row_f32(t, (int64_t)r0);
                ldw = (size_t)t->row_stride;
            } else {
                for (size_t r = 0; r < nb; r++) tk_row_read_f32(t, (int64_t)(r0 + r), W + r * d);
                Wb = W;
                ldw = d;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)nq, (blasint)nb, (blasint)d, 1.0f, Q,
                        (blasint)d, Wb, (blasint)ldw, 0.0f, S, (blasint)nb);
            for (size_t i = 0; i < nq; i++) {
                const int64_t ex = exclude ? exclude[q0 + i] : -1;
                tk_hit *h = H + i * k;
                for (size_t r = 0; r < nb; r++) {
                    const int64_t id = (int64_t)(r0 + r);
                    if (id == ex) continue;
                    float s = S[i * nb + r];
                    if (metric == TOKEMB_METRIC_COSINE) s = rnorm[r0 + r] > 0 ? s / rnorm[r0 + r] : NAN;
                    tk_hit x = {s, id};
                    tk_heap_push(h, &hn[i], k, x);
                }
            }
            done += (uint64_t)nq * nb;
            if (progress && progress(user, done, total) != 0) {
                st = tk_error(TOKEMB_CANCELLED, "%s: cancelled by the progress callback after %llu of %llu pairs", fn,
                              (unsigned long long)done, (unsigned long long)total);
                goto done;
            }
        }
        /* heap -> sorted output, best first; unfilled slots get id -1 and -inf */
        for (size_t i = 0; i < nq; i++) {
            tk_hit *h = H + i * k;
            size_t m = hn[i];
            for (size_t j = m; j-- > 0;) { /* pop the worst into the back: h[0..m) ends best first */
                tk_hit worst = h[0];
                h[0] = h[j];
                tk_heap_sift_down(h, j, 0);
                h[j] = worst;
            }
            for (size_t j = 0; j < k; j++) {
                int64_t id = -1;
                float s = -INFINITY;
                if (j < m) {
                    id = h[j].id;
                    s = h[j].s;
                }
                out_ids[(q0 + i) * k + j] = id;
                if (out_scores) out_scores[(q0 + i) * k + j] = s;
            }
        }
    }
done:
    tk_free(Q);
    tk_free(S);
    tk_free(W);
    tk_free(rnorm);
    tk_free(H);
    tk_free(hn);
    return st;
}

static int32_t tk_nearest_check(const char *fn, const tokemb_table *t, size_t n, size_t k, int32_t metric,
                                const int64_t *out_ids) {
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (metric != TOKEMB_METRIC_COSINE && metric != TOKEMB_METRIC_DOT)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown metric %d (cosine 0, dot 1)", fn, (int)metric);
    if (k == 0 || k > (uint64_t)t->rows)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: k = %zu must lie in [1, rows = %lld]", fn, k, (long long)t->rows);
    if (n > 0 && !out_ids) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out_ids is NULL", fn);
    size_t nk;
    if (tk_mul_overflow(n, k, &nk) || tk_mul_overflow(nk, sizeof(int64_t), &nk))
        return tk_error(TOKEMB_OVERFLOW, "%s: n = %zu x k = %zu results overflow", fn, n, k);
    if ((uint64_t)t->dim > INT32_MAX || (uint64_t)t->row_stride > INT32_MAX)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: dim %lld exceeds the BLAS interface's int range", fn,
                        (long long)t->dim);
    return TOKEMB_OK;
}

static int32_t tk_nearest_queries(const char *fn, const tokemb_table *t, const float *queries, size_t n_queries,
                                  size_t k, int32_t metric, const int64_t *exclude_ids, tokemb_progress_fn progress,
                                  void *user, int64_t *out_ids, float *out_scores) {
    int32_t st = tk_nearest_check(fn, t, n_queries, k, metric, out_ids);
    if (st) return st;
    if (n_queries == 0) return TOKEMB_OK;
    if (!queries) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: queries is NULL with n_queries = %zu", fn, n_queries);
    size_t qn;
    if (tk_mul_overflow(n_queries, (size_t)t->dim, &qn) || tk_mul_overflow(qn, sizeof(float), &qn))
        return tk_error(TOKEMB_OVERFLOW, "%s: n_queries = %zu x dim overflows", fn, n_queries);
    if (exclude_ids)
        for (size_t i = 0; i < n_queries; i++)
            if (exclude_ids[i] < -1 || exclude_ids[i] >= t->rows)
                return tk_error(TOKEMB_OUT_OF_RANGE, "%s: exclude_ids[%zu] = %lld is outside [-1, %lld)", fn, i,
                                (long long)exclude_ids[i], (long long)t->rows);
    return tk_nearest_impl(fn, t, queries, NULL, n_queries, k, metric, exclude_ids, progress, user, out_ids,
                           out_scores);
}

int32_t tokemb_nearest(const tokemb_table *t, const float *queries, size_t n_queries, size_t k, int32_t metric,
                       const int64_t *exclude_ids, int64_t *out_ids, float *out_scores) {
    return tk_nearest_queries("tokemb_nearest", t, queries, n_queries, k, metric, exclude_ids, NULL, NULL, out_ids,
                              out_scores);
}

int32_t tokemb_nearest_ex(const tokemb_table *t, const float *queries, size_t n_queries, size_t k, int32_t metric,
                          const int64_t *exclude_ids, tokemb_progress_fn progress, void *user, int64_t *out_ids,
                          float *out_scores) {
    return tk_nearest_queries("tokemb_nearest_ex", t, queries, n_queries, k, metric, exclude_ids, progress, user,
                              out_ids, out_scores);
}

int32_t tokemb_nearest_ids(const tokemb_table *t, const int64_t *ids, size_t n, size_t k, int32_t metric,
                           int32_t exclude_self, int64_t *out_ids, float *out_scores) {
    static const char fn[] = "tokemb_nearest_ids";
    int32_t st = tk_nearest_check(fn, t, n, k, metric, out_ids);
    if (st) return st;
    if (exclude_self != 0 && exclude_self != 1)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: exclude_self takes 0 or 1, got %d", fn, (int)exclude_self);
    if (n == 0) return TOKEMB_OK;
    if (!ids) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: ids is NULL with n = %zu", fn, n);
    if ((st = tk_check_ids(fn, ids, 8, n, t->rows))) return st;
    return tk_nearest_impl(fn, t, NULL, ids, n, k, metric, exclude_self ? ids : NULL, NULL, NULL, out_ids, out_scores);
}
