/* train_internal.h - helpers shared by the training-path API files (grad.c, bags.c, optim.c). */
#ifndef TOKEMB_TRAIN_INTERNAL_H
#define TOKEMB_TRAIN_INTERNAL_H

#include "table/table.h"
#include "kernels/train_kernels.h"

/* The (id, position)-sorted view of an id array: m kept entries (padding dropped), u segments. */
typedef struct {
    uint64_t *key;
    size_t *pos;
    size_t *seg; /* u + 1 entries */
    size_t *inv; /* n entries: inv[p] = 1 + segment of position p, 0 for a dropped (padding) position */
    size_t n, m, u;
    void *mem;
    void *spare; /* n * 8 bytes of the sort's scratch, free after the sort (tk_sorted_inverse writes there) */
} tk_sorted;

/* Sorts ids (already validated) dropping `skip_id` (-1 for none). Only fails with NO_MEMORY/OVERFLOW,
 * before anything is written. Free with tk_sorted_free. */
int32_t tk_sorted_build(const char *fn, const void *ids, int id_width, size_t n, int64_t rows, int64_t skip_id,
                        tk_sorted *s);
void tk_sorted_free(tk_sorted *s);
/* Fills s->inv (in the sort's scratch): position -> 1 + its segment, 0 for dropped positions. O(n). */
void tk_sorted_inverse(tk_sorted *s);

/* Segmented-sum arguments over the segments of `s`: rows of `src` ([*][dim], row stride dim) summed
 * per segment into `dst` (row stride dim); the caller sets the mode fields (dst_by_key, zero_first,
 * scale_by_count, src_map, pos_scale). */
/* Segmented-sum arguments over s (source rows src, destination dst, both t->dim wide); builds s's inverse
 * map when the kernel will sum in input order. */
static inline tk_segsum_args tk_segsum_over(tk_sorted *s, const tokemb_table *t, const float *src, float *dst) {
    tk_segsum_args a = {0};
    if (!s->inv && tk_segsum_inorder_wanted(s->m, s->u, (size_t)t->dim)) tk_sorted_inverse(s);
    a.src = src;
    a.src_stride = (size_t)t->dim;
    a.key = s->key;
    a.pos = s->pos;
    a.seg = s->seg;
    a.n_seg = s->u;
    a.dim = (size_t)t->dim;
    a.dst = dst;
    a.dst_stride = (size_t)t->dim;
    a.inv = s->inv;
    a.n_pos = s->n;
    return a;
}

/* Validation shared by the gradient entry points: t, ids, grad_out non-NULL when n > 0, n*dim fits,
 * ids in range. */
int32_t tk_check_grad_args(const char *fn, const tokemb_table *t, const void *ids, int id_width, size_t n,
                           const float *grad_out);

/* tokemb_grad_accumulate with errors reported under `fn` (id_width 4 or 8). */
int32_t tk_grad_accumulate_impl(const char *fn, const tokemb_table *t, const void *ids, int id_width, size_t n,
                                const float *grad_out, float *grad_table);

/* The coalesced gradient of (ids, grad_out) into caller buffers (out_ids[n], out_rows[n][dim]);
 * arguments already validated. */
int32_t tk_coalesce(const char *fn, const tokemb_table *t, const void *ids, int id_width, size_t n,
                    const float *grad_out, int64_t *out_ids, float *out_rows, size_t *n_unique);

#endif
