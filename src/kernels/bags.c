/* bags.c (kernels) - EmbeddingBag reductions: SUM / MEAN / MAX forward per bag, MAX backward per column
 * block. Numerics follow torch 1.13's CPU kernels (see docs/training.md): bags summed left to right
 * from +0.0, weighted sums fused (fast path) or multiply-then-add (generic path, padding set), MEAN a
 * true division by the non-padding count, MAX keeps the first of equal values. */
#include "train_kernels.h"
#include "../internal.h"

#include <math.h>
#include <string.h>

#define TK_ALWAYS_INLINE static inline __attribute__((always_inline))

static inline int64_t tk_bid(const void *ids, int w, size_t i) {
    return w == 8 ? ((const int64_t *)ids)[i] : (int64_t)((const int32_t *)ids)[i];
}

TK_ALWAYS_INLINE void tk_bag_one(const float *table, size_t rs, size_t dim, const void *ids, int idw, size_t s,
                                 size_t e, int mode, const float *psw, int fused, int64_t pad, float *o) {
    memset(o, 0, dim * sizeof(float));
    if (mode == 2) {
        int first = 1;
        for (size_t j = s; j < e; j++) {
            int64_t id = tk_bid(ids, idw, j);
            if (id == pad) continue;
            const float *x = table + (size_t)id * rs;
            if (first) {
                memcpy(o, x, dim * sizeof(float));
                first = 0;
            } else {
                for (size_t c = 0; c < dim; c++)
                    if (x[c] > o[c]) o[c] = x[c];
            }
        }
        return;
    }
    size_t cnt = 0;
    for (size_t j = s; j < e; j++) {
        int64_t id = tk_bid(ids, idw, j);
        if (id == pad) continue;
        cnt++;
        const float *x = table + (size_t)id * rs;
        if (psw) {
            const float w = psw[j];
            if (fused)
                for (size_t c = 0; c < dim; c++) o[c] = fmaf(w, x[c], o[c]);
            else
                for (size_t c = 0; c < dim; c++) o[c] = o[c] + w * x[c];
        } else {
            for (size_t c = 0; c < dim; c++) o[c] = o[c] + x[c];
        }
    }
    if (mode == 1) {
        const float dv = (float)(cnt > 0 ? cnt : 1);
        for (size_t c = 0; c < dim; c++) o[c] = o[c] / dv;
    }
}

static void tk_bags_portable(const float *table, size_t rs, size_t dim, const void *ids, int idw,
                             const int64_t *off, size_t b0, size_t b1, int mode, const float *psw, int fused,
                             int64_t pad, float *out) {
    for (size_t b = b0; b < b1; b++)
        tk_bag_one(table, rs, dim, ids, idw, (size_t)off[b], (size_t)off[b + 1], mode, psw, fused, pad, out + b * dim);
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* SUM / MEAN of one bag with the accumulators in registers (added by the performance pass): columns in
 * blocks of 64 floats (8 ymm accumulators, rows prefetched 16 ids ahead), then 32, 16, 8 and a masked
 * tail (below TK_BAG_ROWS_MIN_DIM columns), the bag's rows walked once per
 * block, the output written once.
 * Per column it performs exactly tk_bag_one's operations in the same order (+0.0 start, then acc + x,
 * fmaf(w, x, acc) or acc + w*x per row left to right, then / count), so the result is bitwise identical to
 * the portable path. `kind`: 0 plain, 1 fused weights, 2 multiply-then-add weights (a constant after
 * inlining). Rows of ids up to 8 positions ahead (within [s, e_all)) are prefetched for the block. */
#define TK_BAG_PF 8u
#define TK_BAG_PF64 16u
#define TK_BAG_PF_ROW 1024u
__attribute__((target("avx2,fma"))) TK_ALWAYS_INLINE __m256 tk_bag_acc(__m256 acc, __m256 x, __m256 w, int kind) {
    if (kind == 0) return _mm256_add_ps(acc, x);
    if (kind == 1) return _mm256_fmadd_ps(w, x, acc);
    return _mm256_add_ps(acc, _mm256_mul_ps(w, x));
}

__attribute__((target("avx2,fma"))) TK_ALWAYS_INLINE void tk_bag_sum_avx2(const float *table, size_t rs, size_t dim,
                                                                           const void *ids, int idw, size_t s, size_t e,
                                                                           size_t e_all, int mean, const float *psw,
                                                                           int kind, int64_t pad, float *o) {
    size_t cnt = 0;
    for (size_t j = s; j < e; j++) cnt += tk_bid(ids, idw, j) != pad;
    const __m256 dv = _mm256_set1_ps((float)(cnt > 0 ? cnt : 1));
    __m256 w = _mm256_setzero_ps();
    size_t c = 0;
    for (; c + 64 <= dim; c += 64) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        for (size_t j = s; j < e; j++) {
            if (j + TK_BAG_PF64 < e_all) {
                const char *p = (const char *)(table + (size_t)tk_bid(ids, idw, j + TK_BAG_PF64) * rs + c);
                __builtin_prefetch(p, 0, 3);
                __builtin_prefetch(p + 64, 0, 3);
                __builtin_prefetch(p + 128, 0, 3);
                __builtin_prefetch(p + 192, 0, 3);
            }
            int64_t id = tk_bid(ids, idw, j);
            if (id == pad) continue;
            const float *x = table + (size_t)id * rs + c;
            if (kind) w = _mm256_set1_ps(psw[j]);
            a0 = tk_bag_acc(a0, _mm256_loadu_ps(x), w, kind);
            a1 = tk_bag_acc(a1, _mm256_loadu_ps(x + 8), w, kind);
            a2 = tk_bag_acc(a2, _mm256_loadu_ps(x + 16), w, kind);
            a3 = tk_bag_acc(a3, _mm256_loadu_ps(x + 24), w, kind);
            a4 = tk_bag_acc(a4, _mm256_loadu_ps(x + 32), w, kind);
            a5 = tk_bag_acc(a5, _mm256_loadu_ps(x + 40), w, kind);
            a6 = tk_bag_acc(a6, _mm256_loadu_ps(x + 48), w, kind);
            a7 = tk_bag_acc(a7, _mm256_loadu_ps(x + 56), w, kind);
        }
        if (mean) {
            a0 = _mm256_div_ps(a0, dv);
            a1 = _mm256_div_ps(a1, dv);
            a2 = _mm256_div_ps(a2, dv);
            a3 = _mm256_div_ps(a3, dv);
            a4 = _mm256_div_ps(a4, dv);
            a5 = _mm256_div_ps(a5, dv);
            a6 = _mm256_div_ps(a6, dv);
            a7 = _mm256_div_ps(a7, dv);
        }
        _mm256_storeu_ps(o + c, a0);
        _mm256_storeu_ps(o + c + 8, a1);
        _mm256_storeu_ps(o + c + 16, a2);
        _mm256_storeu_ps(o + c + 24, a3);
        _mm256_storeu_ps(o + c + 32, a4);
        _mm256_storeu_ps(o + c + 40, a5);
        _mm256_storeu_ps(o + c + 48, a6);
        _mm256_storeu_ps(o + c + 56, a7);
    }
    for (; c + 32 <= dim; c += 32) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (size_t j = s; j < e; j++) {
            if (j + TK_BAG_PF < e_all) {
                const char *p = (const char *)(table + (size_t)tk_bid(ids, idw, j + TK_BAG_PF) * rs + c);
                __builtin_prefetch(p, 0, 3);
                __builtin_prefetch(p + 64, 0, 3);
            }
            int64_t id = tk_bid(ids, idw, j);
            if (id == pad) continue;
            const float *x = table + (size_t)id * rs + c;
            if (kind) w = _mm256_set1_ps(psw[j]);
            a0 = tk_bag_acc(a0, _mm256_loadu_ps(x), w, kind);
            a1 = tk_bag_acc(a1, _mm256_loadu_ps(x + 8), w, kind);
            a2 = tk_bag_acc(a2, _mm256_loadu_ps(x + 16), w, kind);
            a3 = tk_bag_acc(a3, _mm256_loadu_ps(x + 24), w, kind);
        }
        if (mean) {
            a0 = _mm256_div_ps(a0, dv);
            a1 = _mm256_div_ps(a1, dv);
            a2 = _mm256_div_ps(a2, dv);
            a3 = _mm256_div_ps(a3, dv);
        }
        _mm256_storeu_ps(o + c, a0);
        _mm256_storeu_ps(o + c + 8, a1);
        _mm256_storeu_ps(o + c + 16, a2);
        _mm256_storeu_ps(o + c + 24, a3);
    }
    for (; c + 16 <= dim; c += 16) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        for (size_t j = s; j < e; j++) {
            if (j + TK_BAG_PF < e_all)
                __builtin_prefetch(table + (size_t)tk_bid(ids, idw, j + TK_BAG_PF) * rs + c, 0, 3);
            int64_t id = tk_bid(ids, idw, j);
            if (id == pad) continue;
            const float *x = table + (size_t)id * rs + c;
            if (kind) w = _mm256_set1_ps(psw[j]);
            a0 = tk_bag_acc(a0, _mm256_loadu_ps(x), w, kind);
            a1 = tk_bag_acc(a1, _mm256_loadu_ps(x + 8), w, kind);
        }
        if (mean) {
            a0 = _mm256_div_ps(a0, dv);
            a1 = _mm256_div_ps(a1, dv);
        }
        _mm256_storeu_ps(o + c, a0);
        _mm256_storeu_ps(o + c + 8, a1);
    }
    for (; c + 8 <= dim; c += 8) {
        __m256 a0 = _mm256_setzero_ps();
        for (size_t j = s; j < e; j++) {
            int64_t id = tk_bid(ids, idw, j);
            if (id == pad) continue;
            if (kind) w = _mm256_set1_ps(psw[j]);
            a0 = tk_bag_acc(a0, _mm256_loadu_ps(table + (size_t)id * rs + c), w, kind);
        }
        if (mean) a0 = _mm256_div_ps(a0, dv);
        _mm256_storeu_ps(o + c, a0);
    }
    for (; c < dim; c += 8) {
        const size_t r = dim - c < 8 ? dim - c : 8;
        const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 a0 = _mm256_setzero_ps();
        for (size_t j = s; j < e; j++) {
            int64_t id = tk_bid(ids, idw, j);
            if (id == pad) continue;
            if (kind) w = _mm256_set1_ps(psw[j]);
            a0 = tk_bag_acc(a0, _mm256_maskload_ps(table + (size_t)id * rs + c, m), w, kind);
        }
        if (mean) a0 = _mm256_div_ps(a0, dv);
        if (r == 8) _mm256_storeu_ps(o + c, a0);
        else _mm256_maskstore_ps(o + c, m, a0);
    }
}

/* Long rows (dim >= TK_BAG_ROWS_MIN_DIM): the same per-column operations with the partial sums kept in the
 * output row (L1/L2-resident: at most 16 KiB at dim 4096), each table row read once front to back (a
 * sequential stream the hardware prefetcher follows) instead of one 128-byte slice per column block. */
#define TK_BAG_ROWS_MIN_DIM 512u
__attribute__((target("avx2,fma"))) TK_ALWAYS_INLINE void tk_bag_sum_rows_avx2(const float *table, size_t rs,
                                                                                size_t dim, const void *ids, int idw,
                                                                                size_t s, size_t e, size_t e_all,
                                                                                int mean, const float *psw, int kind,
                                                                                int64_t pad, float *o) {
    size_t cnt = 0;
    const size_t tail = dim & 7u, body = dim - tail;
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)tail), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const size_t pfb = dim * sizeof(float) < TK_BAG_PF_ROW ? dim * sizeof(float) : TK_BAG_PF_ROW;
    for (size_t c = 0; c < body; c += 8) _mm256_storeu_ps(o + c, _mm256_setzero_ps());
    if (tail) _mm256_maskstore_ps(o + body, m, _mm256_setzero_ps());
    __m256 w = _mm256_setzero_ps();
    for (size_t j = s; j < e; j++) {
        if (j + TK_BAG_PF < e_all) {
            const char *p = (const char *)(table + (size_t)tk_bid(ids, idw, j + TK_BAG_PF) * rs);
            for (size_t q = 0; q < pfb; q += 64) __builtin_prefetch(p + q, 0, 3);
        }
        int64_t id = tk_bid(ids, idw, j);
        if (id == pad) continue;
        cnt++;
        const float *x = table + (size_t)id * rs;
        if (kind) w = _mm256_set1_ps(psw[j]);
        size_t c = 0;
        for (; c + 32 <= body; c += 32) {
            _mm256_storeu_ps(o + c, tk_bag_acc(_mm256_loadu_ps(o + c), _mm256_loadu_ps(x + c), w, kind));
            _mm256_storeu_ps(o + c + 8, tk_bag_acc(_mm256_loadu_ps(o + c + 8), _mm256_loadu_ps(x + c + 8), w, kind));
            _mm256_storeu_ps(o + c + 16,
                             tk_bag_acc(_mm256_loadu_ps(o + c + 16), _mm256_loadu_ps(x + c + 16), w, kind));
            _mm256_storeu_ps(o + c + 24,
                             tk_bag_acc(_mm256_loadu_ps(o + c + 24), _mm256_loadu_ps(x + c + 24), w, kind));
        }
        for (; c < body; c += 8)
            _mm256_storeu_ps(o + c, tk_bag_acc(_mm256_loadu_ps(o + c), _mm256_loadu_ps(x + c), w, kind));
        if (tail)
            _mm256_maskstore_ps(o + body, m,
                                tk_bag_acc(_mm256_maskload_ps(o + body, m), _mm256_maskload_ps(x + body, m), w, kind));
    }
    if (mean) {
        const __m256 dv = _mm256_set1_ps((float)(cnt > 0 ? cnt : 1));
        for (size_t c = 0; c < body; c += 8) _mm256_storeu_ps(o + c, _mm256_div_ps(_mm256_loadu_ps(o + c), dv));
        if (tail) _mm256_maskstore_ps(o + body, m, _mm256_div_ps(_mm256_maskload_ps(o + body, m), dv));
    }
}

__attribute__((target("avx2,fma"))) static void tk_bags_avx2(const float *table, size_t rs, size_t dim,
                                                              const void *ids, int idw, const int64_t *off,
                                                              size_t b0, size_t b1, int mode, const float *psw,
                                                              int fused, int64_t pad, float *out) {
    if (mode == 0 || mode == 1) {
        const size_t e_all = (size_t)off[b1];
        const int mean = mode == 1;
        for (size_t b = b0; b < b1; b++) {
            const size_t s = (size_t)off[b], e = (size_t)off[b + 1];
            if (dim >= TK_BAG_ROWS_MIN_DIM) {
                if (!psw) tk_bag_sum_rows_avx2(table, rs, dim, ids, idw, s, e, e_all, mean, NULL, 0, pad, out + b * dim);
                else if (fused)
                    tk_bag_sum_rows_avx2(table, rs, dim, ids, idw, s, e, e_all, mean, psw, 1, pad, out + b * dim);
                else tk_bag_sum_rows_avx2(table, rs, dim, ids, idw, s, e, e_all, mean, psw, 2, pad, out + b * dim);
                continue;
            }
            if (!psw) tk_bag_sum_avx2(table, rs, dim, ids, idw, s, e, e_all, mean, NULL, 0, pad, out + b * dim);
            else if (fused) tk_bag_sum_avx2(table, rs, dim, ids, idw, s, e, e_all, mean, psw, 1, pad, out + b * dim);
            else tk_bag_sum_avx2(table, rs, dim, ids, idw, s, e, e_all, mean, psw, 2, pad, out + b * dim);
        }
        return;
    }
    for (size_t b = b0; b < b1; b++)
        tk_bag_one(table, rs, dim, ids, idw, (size_t)off[b], (size_t)off[b + 1], mode, psw, fused, pad, out + b * dim);
}
#define TK_BAGS_AVX2 1
#else
#define TK_BAGS_AVX2 0
#endif

void tk_bags_forward_f32(const float *table, size_t row_stride, size_t dim, const void *ids, int id_width,
                         const int64_t *offsets, size_t b0, size_t b1, int mode, const float *psw, int fused,
                         int64_t pad, float *out) {
#if TK_BAGS_AVX2
    if (tk_cpu_isa() >= TK_ISA_AVX2) {
        tk_bags_avx2(table, row_stride, dim, ids, id_width, offsets, b0, b1, mode, psw, fused, pad, out);
        return;
    }
#endif
    tk_bags_portable(table, row_stride, dim, ids, id_width, offsets, b0, b1, mode, psw, fused, pad, out);
}

#define TK_MAXBW_COLS 256u

void tk_bags_max_backward_f32(const float *table, size_t row_stride, size_t dim, const void *ids, int id_width,
                              const int64_t *offsets, size_t n_bags, int64_t pad, const float *grad_out,
                              float *grad_table, size_t c0, size_t c1) {
    float best[TK_MAXBW_COLS];
    size_t arg[TK_MAXBW_COLS];
    for (size_t cb = c0; cb < c1; cb += TK_MAXBW_COLS) {
        size_t ce = cb + TK_MAXBW_COLS < c1 ? cb + TK_MAXBW_COLS : c1, w = ce - cb;
        for (size_t b = 0; b < n_bags; b++) {
            int first = 1;
            for (size_t j = (size_t)offsets[b]; j < (size_t)offsets[b + 1]; j++) {
                int64_t id = tk_bid(ids, id_width, j);
                if (id == pad) continue;
                const float *x = table + (size_t)id * row_stride + cb;
                if (first) {
                    for (size_t c = 0; c < w; c++) {
                        best[c] = x[c];
                        arg[c] = (size_t)id;
                    }
                    first = 0;
                } else {
                    for (size_t c = 0; c < w; c++)
                        if (x[c] > best[c]) {
                            best[c] = x[c];
                            arg[c] = (size_t)id;
                        }
                }
            }
            if (first) continue; /* empty bag: no gradient */
            const float *g = grad_out + b * dim + cb;
            for (size_t c = 0; c < w; c++) {
                float *d = grad_table + arg[c] * dim + cb + c;
                *d = *d + g[c];
            }
        }
    }
}
