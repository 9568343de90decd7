/* segsum.c - segmented row sums over (id, position)-sorted contributions: the second half of the
 * deterministic scatter-add. Each output element is one running sum over its segment in sorted
 * (= input) order, computed by exactly one thread, so any thread count gives the same bits.
 *
 * Work is split into units (segment, column block of TK_SEG_CB floats) - splitting columns keeps a hot
 * (Zipf head) row from serialising the whole call without changing any sum's order - and the units are
 * cut into parts of roughly equal work, weight(segment) = length + 1 per block. A call that runs as one part
 * over long rows may instead take the contributions in input order (tk_segsum_inorder_wanted). */
#include "train_kernels.h"
#include "common/common.h"

#include <math.h>

#define TK_SEG_CB 256u
#define TK_ALWAYS_INLINE static inline __attribute__((always_inline))

typedef struct {
    const tk_segsum_args *a;
    size_t nb;    /* column blocks per segment */
    size_t parts; /* number of parts */
    size_t total; /* total weight (m + n_seg) * nb */
} tk_segsum_plan;

/* One contribution g (w floats) into d: the first of its segment from +0.0f (kept in registers: no zero
 * fill and no read of d; the same bits as adding to a zeroed row, -0.0f + 0.0f = +0.0f), otherwise onto d. */
TK_ALWAYS_INLINE void tk_segsum_step(float *d, const float *g, size_t w, int first, int scaled, float sj) {
    if (first) {
        if (scaled)
            for (size_t c = 0; c < w; c++) d[c] = fmaf(sj, g[c], 0.0f);
        else
            for (size_t c = 0; c < w; c++) d[c] = g[c] + 0.0f;
    } else if (scaled) {
        for (size_t c = 0; c < w; c++) d[c] = fmaf(sj, g[c], d[c]);
    } else {
        for (size_t c = 0; c < w; c++) d[c] = d[c] + g[c];
    }
}

/* The scale shared by a segment of `len` contributions (1/len with scale_by_count); pos_scale overrides it. */
TK_ALWAYS_INLINE float tk_segsum_count_scale(const tk_segsum_args *a, size_t len) {
    return a->scale_by_count ? (float)(1.0 / (double)len) : 1.0f;
}

/* Segment s, columns [c0, c1): its contributions in sorted order. */
TK_ALWAYS_INLINE void tk_segsum_unit_body(const tk_segsum_args *a, size_t s, size_t c0, size_t c1) {
    const size_t b = a->seg[s], e = a->seg[s + 1];
    float *d = a->dst + (a->dst_by_key ? (size_t)a->key[b] : s) * a->dst_stride + c0;
    const int scaled = a->pos_scale != NULL || a->scale_by_count;
    const float cs = tk_segsum_count_scale(a, e - b);
    for (size_t j = b; j < e; j++) {
        const size_t p = a->pos[j];
        const float *g = a->src + (a->src_map ? a->src_map[p] : p) * a->src_stride + c0;
        tk_segsum_step(d, g, c1 - c0, j == b && a->zero_first, scaled, a->pos_scale ? a->pos_scale[p] : cs);
    }
}

/* Every segment whole, contributions taken in input (position) order: the source is read front to back
 * and each destination row receives its contributions in ascending position, which is the sorted order
 * within its segment, so the bits equal tk_segsum_unit_body's. */
TK_ALWAYS_INLINE void tk_segsum_inorder_body(const tk_segsum_args *a) {
    const int scaled = a->pos_scale != NULL || a->scale_by_count;
    for (size_t p = 0; p < a->n_pos; p++) {
        const size_t s1 = a->inv[p];
        if (!s1) continue;
        const size_t b = a->seg[s1 - 1], e = a->seg[s1];
        float *d = a->dst + (a->dst_by_key ? (size_t)a->key[b] : s1 - 1) * a->dst_stride;
        const float *g = a->src + (a->src_map ? a->src_map[p] : p) * a->src_stride;
        tk_segsum_step(d, g, a->dim, a->zero_first && a->pos[b] == p, scaled,
                       a->pos_scale ? a->pos_scale[p] : tk_segsum_count_scale(a, e - b));
    }
}

static void tk_segsum_unit_portable(const tk_segsum_args *a, size_t s, size_t c0, size_t c1) {
    tk_segsum_unit_body(a, s, c0, c1);
}
static void tk_segsum_inorder_portable(const tk_segsum_args *a) { tk_segsum_inorder_body(a); }

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) static void tk_segsum_unit_avx2(const tk_segsum_args *a, size_t s, size_t c0,
                                                                    size_t c1) {
    tk_segsum_unit_body(a, s, c0, c1);
}
__attribute__((target("avx2,fma"))) static void tk_segsum_inorder_avx2(const tk_segsum_args *a) {
    tk_segsum_inorder_body(a);
}
#define TK_SEG_HAVE_AVX2 1
#else
#define TK_SEG_HAVE_AVX2 0
#endif

/* Units ahead whose source block (first contribution) is prefetched: rows are read in sorted-id order,
 * i.e. at random places of the gradient, where the hardware prefetcher only starts after a few misses.
 * 8 units = two 4 KiB rows at D=1024: 1.07x (0.77-1.38) with new ids each call (gradient in DRAM),
 * 1.03x with the same ids, paired A/B at 1 thread. */
#define TK_SEG_PF 8u

static inline void tk_segsum_prefetch(const tk_segsum_plan *pl, size_t u) {
    const tk_segsum_args *a = pl->a;
    size_t s = u / pl->nb, c0 = (u % pl->nb) * TK_SEG_CB, c1 = c0 + TK_SEG_CB < a->dim ? c0 + TK_SEG_CB : a->dim;
    size_t p = a->pos[a->seg[s]];
    const float *g = a->src + (a->src_map ? a->src_map[p] : p) * a->src_stride;
    for (size_t c = c0; c < c1; c += 16) __builtin_prefetch(g + c);
}

/* First unit (s * nb + block) whose work starts at or after weight w. */
static size_t tk_segsum_unit_at(const tk_segsum_plan *pl, size_t w) {
    const tk_segsum_args *a = pl->a;
    if (w >= pl->total) return a->n_seg * pl->nb;
    size_t q = w / pl->nb;        /* weight in segment units: seg[s] + s <= q */
    size_t lo = 0, hi = a->n_seg; /* largest s in [0, n_seg) with seg[s] + s <= q */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (a->seg[mid] + mid <= q) lo = mid;
        else hi = mid;
    }
    size_t s = lo;
    size_t start = (a->seg[s] + s) * pl->nb;
    size_t len1 = a->seg[s + 1] - a->seg[s] + 1;
    size_t blk = (w - start) / len1;
    if (blk > pl->nb) blk = pl->nb;
    return s * pl->nb + blk;
}

static void tk_segsum_parts(void *ctx, size_t k0, size_t k1) {
    const tk_segsum_plan *pl = (const tk_segsum_plan *)ctx;
    const tk_segsum_args *a = pl->a;
    const int avx2 = TK_SEG_HAVE_AVX2 && tk_cpu_isa() >= TK_ISA_AVX2;
    for (size_t k = k0; k < k1; k++) {
        /* weight boundaries k*total/parts without overflow: total <= (2n) * nb fits comfortably */
        size_t u0 = tk_segsum_unit_at(pl, (size_t)(((unsigned __int128)pl->total * k) / pl->parts));
        size_t u1 = tk_segsum_unit_at(pl, (size_t)(((unsigned __int128)pl->total * (k + 1)) / pl->parts));
        for (size_t u = u0; u < u1; u++) {
            size_t s = u / pl->nb, blk = u % pl->nb;
            size_t c0 = blk * TK_SEG_CB, c1 = c0 + TK_SEG_CB < a->dim ? c0 + TK_SEG_CB : a->dim;
            if (u + TK_SEG_PF < u1) tk_segsum_prefetch(pl, u + TK_SEG_PF);
#if TK_SEG_HAVE_AVX2
            if (avx2) {
                tk_segsum_unit_avx2(a, s, c0, c1);
                continue;
            }
#endif
            (void)avx2;
            tk_segsum_unit_portable(a, s, c0, c1);
        }
    }
}

/* Rows of TK_SEG_INORDER_DIM floats and more are summed in input order when the call runs as one part:
 * reading the source front to back instead of at the rows' sorted places measured 1.17x (D = 1024) and
 * 1.39x (D = 256, 65,536 ids) with the gradient in DRAM and 0.99-1.01x with it in cache; rows under
 * 256 floats lost up to 13 % with 65,536 ids (the scattered destination writes and the inverse map),
 * and with several parts the column split lost to the segment partition (docs/performance.md,
 * "Tuning record"). */
#define TK_SEG_INORDER_DIM 256u
#define TK_SEG_MIN_WORK 65536u /* floats touched below which a call is one part */

int tk_segsum_inorder_wanted(size_t m, size_t n_seg, size_t dim) {
    return dim >= TK_SEG_INORDER_DIM && ((m + n_seg) * dim < TK_SEG_MIN_WORK || tokemb_get_num_threads() == 1);
}

void tk_segsum_f32(const tk_segsum_args *a) {
    if (a->n_seg == 0 || a->dim == 0) return;
    if (a->inv) {
#if TK_SEG_HAVE_AVX2
        if (tk_cpu_isa() >= TK_ISA_AVX2) {
            tk_segsum_inorder_avx2(a);
            return;
        }
#endif
        tk_segsum_inorder_portable(a);
        return;
    }
    tk_segsum_plan pl;
    pl.a = a;
    pl.nb = (a->dim + TK_SEG_CB - 1) / TK_SEG_CB;
    size_t m = a->seg[a->n_seg];
    pl.total = (m + a->n_seg) * pl.nb;
    size_t work = (m + a->n_seg) * a->dim; /* floats touched */
    size_t nt = (size_t)tokemb_get_num_threads();
    size_t parts = work < TK_SEG_MIN_WORK ? 1 : nt * 4;
    size_t units = a->n_seg * pl.nb;
    if (parts > units) parts = units;
    pl.parts = parts;
    tk_parallel_for(parts, 1, tk_segsum_parts, &pl);
}
