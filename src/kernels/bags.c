/* bags.c (kernels) - EmbeddingBag reductions: SUM / MEAN / MAX forward per bag, MAX backward per column
 * block. Numerics follow torch 1.13's CPU kernels (see docs/training.md): bags summed left to right
 * from +0.0, weighted sums fused (fast path) or multiply-then-add (generic path, padding set), MEAN a
 * true division by the non-padding count, MAX keeps the first of equal values. */
#include "kernels/convert.h"
#include "kernels/simd.h"
#include "kernels/train_kernels.h"

#include <math.h>
#include <string.h>

/* ---- forward: one bag kernel over F32 / F16 / BF16 / Q8_ROW rows ---------------------------------
 * Rows start every row_bytes bytes of `table` and are read in their storage dtype (only the compact bytes
 * come from memory). F16 / BF16 widen exactly, so their bags equal the same bags over the float32 rows a
 * lookup returns. Q8_ROW follows torch: MAX compares the dequantised rows of a lookup ((float)q * scale
 * + bias, two roundings, as embedding_bag_byte_unpack), while SUM / MEAN accumulate as torch's
 * embedding_bag_byte_rowwise_offsets, acc = fmaf(w*scale, q, acc + w*bias) per element (w = 1 without
 * per-sample weights; torch's non-FBGEMM fallback evaluates that fma in double, which can differ only when
 * the exact sum needs more than 53 bits and then rounds onto a float tie), then / count for MEAN.
 * `dt` is a compile-time constant in every instantiation below. */

/* The SUM / MEAN step's scale and bias of Q8_ROW row r at bag position j: w*scale and w*bias (torch). */
TK_ALWAYS_INLINE void tk_bag_q8_sb(const uint8_t *r, size_t dim, const float *psw, size_t j, float *ws, float *wb) {
    tk_q8_scale_bias(r, dim, ws, wb);
    if (psw) {
        *ws = psw[j] * *ws;
        *wb = psw[j] * *wb;
    }
}

/* Element c of a row as stored, widened to float (Q8_ROW: the code). */
TK_ALWAYS_INLINE float tk_bag_raw(const uint8_t *r, size_t c, int dt) {
    uint16_t h;
    float x;
    switch (dt) {
    case TOKEMB_F16: memcpy(&h, r + 2 * c, 2); return tk_f16_to_f32(h);
    case TOKEMB_BF16: memcpy(&h, r + 2 * c, 2); return tk_bf16_to_f32(h);
    case TOKEMB_Q8_ROW: return (float)r[c];
    default: memcpy(&x, r + 4 * c, 4); return x;
    }
}

/* Element c of a row as a lookup returns it (Q8_ROW dequantised as tk_row_decode). */
TK_ALWAYS_INLINE float tk_bag_elem(const uint8_t *r, size_t c, int dt, float qs, float qb) {
    if (dt == TOKEMB_Q8_ROW) return tk_q8_value(r[c], qs, qb);
    return tk_bag_raw(r, c, dt);
}

TK_ALWAYS_INLINE void tk_bag_one(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids, int idw, size_t s,
                                 size_t e, int mode, const float *psw, int fused, int64_t pad, float *o) {
    float qs = 0.0f, qb = 0.0f;
    memset(o, 0, dim * sizeof(float));
    if (mode == 2) {
        int first = 1;
        for (size_t j = s; j < e; j++) {
            int64_t id = tk_id_at(ids, idw, j);
            if (id == pad) continue;
            const uint8_t *r = base + (size_t)id * rb;
            if (dt == TOKEMB_Q8_ROW) tk_q8_scale_bias(r, dim, &qs, &qb);
            if (first) {
                for (size_t c = 0; c < dim; c++) o[c] = tk_bag_elem(r, c, dt, qs, qb);
                first = 0;
            } else {
                for (size_t c = 0; c < dim; c++) {
                    const float x = tk_bag_elem(r, c, dt, qs, qb);
                    if (x > o[c]) o[c] = x;
                }
            }
        }
        return;
    }
    size_t cnt = 0;
    for (size_t j = s; j < e; j++) {
        int64_t id = tk_id_at(ids, idw, j);
        if (id == pad) continue;
        cnt++;
        const uint8_t *r = base + (size_t)id * rb;
        if (dt == TOKEMB_Q8_ROW) {
            tk_bag_q8_sb(r, dim, psw, j, &qs, &qb);
            for (size_t c = 0; c < dim; c++) o[c] = fmaf(qs, (float)r[c], o[c] + qb);
        } else if (psw) {
            const float w = psw[j];
            if (fused)
                for (size_t c = 0; c < dim; c++) o[c] = fmaf(w, tk_bag_raw(r, c, dt), o[c]);
            else
                for (size_t c = 0; c < dim; c++) o[c] = o[c] + w * tk_bag_raw(r, c, dt);
        } else {
            for (size_t c = 0; c < dim; c++) o[c] = o[c] + tk_bag_raw(r, c, dt);
        }
    }
    if (mode == 1) {
        const float dv = (float)(cnt > 0 ? cnt : 1);
        for (size_t c = 0; c < dim; c++) o[c] = o[c] / dv;
    }
}

TK_ALWAYS_INLINE void tk_bags_portable_dt(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids, int idw,
                                          const int64_t *off, size_t b0, size_t b1, int mode, const float *psw,
                                          int fused, int64_t pad, float *out) {
    for (size_t b = b0; b < b1; b++)
        tk_bag_one(base, rb, dt, dim, ids, idw, (size_t)off[b], (size_t)off[b + 1], mode, psw, fused, pad,
                   out + b * dim);
}

static void tk_bags_portable(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids, int idw,
                             const int64_t *off, size_t b0, size_t b1, int mode, const float *psw, int fused,
                             int64_t pad, float *out) {
    switch (dt) {
    case TOKEMB_F16:
        tk_bags_portable_dt(base, rb, TOKEMB_F16, dim, ids, idw, off, b0, b1, mode, psw, fused, pad, out);
        break;
    case TOKEMB_BF16:
        tk_bags_portable_dt(base, rb, TOKEMB_BF16, dim, ids, idw, off, b0, b1, mode, psw, fused, pad, out);
        break;
    case TOKEMB_Q8_ROW:
        tk_bags_portable_dt(base, rb, TOKEMB_Q8_ROW, dim, ids, idw, off, b0, b1, mode, psw, fused, pad, out);
        break;
    default: tk_bags_portable_dt(base, rb, TOKEMB_F32, dim, ids, idw, off, b0, b1, mode, psw, fused, pad, out);
    }
}

#if TK_X86
/* Rows ahead to prefetch for a column block of `cols` elements: about 4 KiB of the block's bytes in flight,
 * at least 4 rows and at most 16 (32 for Q8_ROW). Measured choice, see docs/performance.md (Bags). */
#define TK_BAG_PF_BYTES 4096u
TK_ALWAYS_INLINE size_t tk_bag_pf_ahead(size_t cols, int dt) {
    const size_t bytes = cols * tk_dtype_size(dt);
    const size_t a = TK_BAG_PF_BYTES / bytes, most = dt == TOKEMB_Q8_ROW ? 32u : 16u;
    return a < 4 ? 4 : a > most ? most : a;
}

/* Prefetch `cols` elements of row r from column c (and Q8_ROW's scale/bias line) into L2 (TK_PF_LOC), or
 * into L1 with `near` (the caller's choice: an Intel CPU and a table that fits the LLC; on AMD L1 was
 * measured and rejected, docs/performance.md "Tuning record"). */
TK_ALWAYS_INLINE void tk_bag_pf(const uint8_t *r, size_t c, size_t cols, int dt, size_t dim, int near) {
    const size_t esz = tk_dtype_size(dt);
    const uint8_t *p = r + c * esz;
    tk_prefetch_bytes(p, cols * esz, near); /* unrolled: cols and esz are constants */
    if (dt != TOKEMB_F32) /* compact rows need not start on a line: the block's last byte may be on one more */
        tk_prefetch(p + cols * esz - 1, near);
    if (dt == TOKEMB_Q8_ROW) tk_prefetch(r + dim, near);
}

/* tk_bags_avx2 and tk_bags_avx512: the register-accumulating template, once per ISA */
#define TK_VISA avx2
#include "kernels/bags_simd.h"
#undef TK_VISA
#define TK_VISA avx512
#include "kernels/bags_simd.h"
#undef TK_VISA
#endif

void tk_bags_forward(const void *table, size_t row_bytes, int32_t dtype, size_t dim, const void *ids, int id_width,
                     const int64_t *offsets, size_t b0, size_t b1, int mode, const float *psw, int fused, int64_t pad,
                     int near, float *out) {
    const uint8_t *base = (const uint8_t *)table;
#if TK_X86
    const int isa = tk_cpu_isa();
    if ((mode == 0 || mode == 1) && isa >= TK_ISA_AVX2) {
        /* AVX-512 for the compact dtypes, whose decode is compute-bound; float32 bags are memory-bound and
         * stay on the AVX2 blocks (docs/performance.md, "Tuning record"). Rows of 4, 8 and 16 elements
         * (F32, F16, Q8_ROW; no weights or fused ones) take the small-row path of bags_simd.h: one zmm for
         * 16, the AVX2 instantiation's xmm / ymm for 4 and 8. */
        const int small = (dim == 4 || dim == 8 || dim == 16) && dtype != TOKEMB_BF16 && (!psw || fused);
        if (isa >= TK_ISA_AVX512 && (small ? dim == 16 : dtype != TOKEMB_F32))
            tk_bags_avx512(base, row_bytes, dtype, dim, ids, id_width, offsets, b0, b1, mode == 1, psw, fused, pad,
                           near, out);
        else
            tk_bags_avx2(base, row_bytes, dtype, dim, ids, id_width, offsets, b0, b1, mode == 1, psw, fused, pad, near,
                         out);
        return;
    }
#endif
    (void)near;
    tk_bags_portable(base, row_bytes, dtype, dim, ids, id_width, offsets, b0, b1, mode, psw, fused, pad, out);
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
                int64_t id = tk_id_at(ids, id_width, j);
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
