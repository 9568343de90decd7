/* train_kernels.h - kernels of the training path (gradient scatter-add, bag reductions, optimizer row
 * updates). Pure loops over already-validated data: no error reporting; the callers own all memory.
 * Declared apart from kernels.h so the training engineer's kernels do not collide with others' edits. */
#ifndef TOKEMB_TRAIN_KERNELS_H
#define TOKEMB_TRAIN_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/* ---- radix_sort.c ----------------------------------------------------------------------------- */
/* Stable LSD radix sort of the positions i < n whose id (ids of id_width 4 or 8 bytes, all in
 * [0, rows)) differs from `skip_id` (-1: keep all), by id. Writes the m kept positions in sorted order
 * to pos[0..m) and their ids to key[0..m); tmp_pos / tmp_key are scratch of n entries each. Returns m.
 * Equal ids keep input order (stability), which is what makes every per-row sum run in input order. */
size_t tk_sort_ids(const void *ids, int id_width, size_t n, int64_t rows, int64_t skip_id, uint64_t *key, size_t *pos,
                   uint64_t *tmp_key, size_t *tmp_pos);

/* Segments of a sorted key array: seg[0..u] with seg[0] = 0, seg[u] = m, key constant on each
 * [seg[s], seg[s+1]). Returns u. seg needs m+1 entries. */
size_t tk_segments(const uint64_t *key, size_t m, size_t *seg);

/* ---- segsum.c --------------------------------------------------------------------------------- */
/* Segmented row sum: for every segment s and column c,
 *     dst_s[c] = (zero_first ? +0.0f : dst_s[c]) (+) sum over j in segment s, in order, of contribution_j[c]
 * where contribution_j = src[src_row(pos[j])], src_row(p) = src_map ? src_map[p] : p, and each step is
 *     acc = acc + g                                   (no scale),
 *     acc = fmaf(s_j, g, acc)   s_j = pos_scale[pos[j]] if pos_scale, else (float)(1.0 / segment length).
 * dst_s = dst + (dst_by_key ? key[seg[s]] : s) * dst_stride. Parallel over (segment, column block)
 * units with a work-balanced static partition; every output element is produced by one thread in the
 * fixed order above, so results are bitwise identical for any thread count. */
typedef struct {
    const float *src;
    size_t src_stride;
    const size_t *src_map;  /* optional, indexed by position */
    const float *pos_scale; /* optional, indexed by position */
    int scale_by_count;     /* multiply by 1/count (count = segment length) */
    const uint64_t *key;
    const size_t *pos;
    const size_t *seg;
    size_t n_seg;
    size_t dim;
    float *dst;
    size_t dst_stride;
    int dst_by_key;
    int zero_first;
    const size_t *inv; /* optional: inv[p] = 1 + segment of position p (0: in no segment), p < n_pos */
    size_t n_pos;
} tk_segsum_args;
/* With `inv` the call runs on the calling thread in input order (position by position, the same bits);
 * callers supply it when tk_segsum_inorder_wanted(m, n_seg, dim) says that order is the faster one. */
void tk_segsum_f32(const tk_segsum_args *a);
int tk_segsum_inorder_wanted(size_t m, size_t n_seg, size_t dim);

/* ---- bags.c (kernels) ------------------------------------------------------------------------- */
/* Forward of bags [b0, b1): out[b] for mode 0 SUM, 1 MEAN, 2 MAX (torch's EmbeddingBag forward;
 * `pad` < 0 means no padding). Rows of storage dtype `dtype` (F32, F16, BF16, Q8_ROW) start every
 * row_bytes bytes of table and are decoded as tk_row_decode does. psw (SUM only) may be NULL; fused
 * selects fmaf(w, x, acc) (torch's fast path, no padding) rather than acc + w*x (generic path). `near`:
 * the column blocks prefetch rows into L1 instead of L2 (no effect on the result). */
void tk_bags_forward(const void *table, size_t row_bytes, int32_t dtype, size_t dim, const void *ids, int id_width,
                     const int64_t *offsets, size_t b0, size_t b1, int mode, const float *psw, int fused, int64_t pad,
                     int near, float *out);
/* MAX backward on columns [c0, c1): for each bag in order and each column, recompute the argmax row
 * (first strictly greater, as the forward) and add grad_out[b][c] to grad_table[argmax][c]. */
void tk_bags_max_backward_f32(const float *table, size_t row_stride, size_t dim, const void *ids, int id_width,
                              const int64_t *offsets, size_t n_bags, int64_t pad, const float *grad_out,
                              float *grad_table, size_t c0, size_t c1);

/* ---- optim kernels (optim_rows.c) ------------------------------------------------------------- */
/* One fused row update per unique row; rows[u] is row id, g + u*dim its summed gradient. */
enum { TK_OPT_SGD = 0, TK_OPT_ROWWISE_ADAGRAD = 1, TK_OPT_ADAGRAD = 2, TK_OPT_SPARSE_ADAM = 3 };
typedef struct {
    int kind;
    float *w;
    size_t w_stride, dim;
    const uint64_t *rows; /* unique row ids, or NULL: row = rows_i64[u] */
    const int64_t *rows_i64;
    const float *g;
    size_t g_stride;
    float *s1; /* adagrad sum [rows][dim] / adam exp_avg / rowwise accumulators [rows] */
    float *s2; /* adam exp_avg_sq */
    float lr_f, wd_f, eps_f, one_minus_b1, one_minus_b2, neg_step_f, neg_clr_f;
} tk_optim_args;
void tk_optim_rows_f32(const tk_optim_args *a, size_t u0, size_t u1);

#endif
