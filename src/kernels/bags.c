/* bags.c (kernels) - EmbeddingBag reductions: SUM / MEAN / MAX forward per bag, MAX backward per column
 * block. Numerics follow torch 1.13's CPU kernels (see docs/training.md): bags summed left to right
 * from +0.0, weighted sums fused (fast path) or multiply-then-add (generic path, padding set), MEAN a
 * true division by the non-padding count, MAX keeps the first of equal values. */
#include "kernels.h"
#include "convert.h"
#include "train_kernels.h"
#include "common/common.h"

#include <math.h>
#include <string.h>

#define TK_ALWAYS_INLINE static inline __attribute__((always_inline))

static inline int64_t tk_bid(const void *ids, int w, size_t i) {
    return w == 8 ? ((const int64_t *)ids)[i] : (int64_t)((const int32_t *)ids)[i];
}

/* ---- forward: one bag kernel over F32 / F16 / BF16 / Q8_ROW rows ---------------------------------
 * Rows start every row_bytes bytes of `table` and are read in their storage dtype (only the compact bytes
 * come from memory). F16 / BF16 widen exactly, so their bags equal the same bags over the float32 rows a
 * lookup returns. Q8_ROW follows torch: MAX compares the dequantised rows of a lookup ((float)q * scale
 * + bias, two roundings, as embedding_bag_byte_unpack), while SUM / MEAN accumulate as torch's
 * embedding_bag_byte_rowwise_offsets, acc = fmaf(w*scale, q, acc + w*bias) per element (w = 1 without
 * per-sample weights; torch's non-FBGEMM fallback evaluates that fma in double, which can differ only when
 * the exact sum needs more than 53 bits and then rounds onto a float tie), then / count for MEAN.
 * `dt` is a compile-time constant in every instantiation below. */

/* Q8_ROW's scale and bias (the 8 bytes after the dim codes); zeros for the other dtypes. */
TK_ALWAYS_INLINE void tk_bag_qsb(const uint8_t *r, size_t dim, int dt, float *qs, float *qb) {
    *qs = *qb = 0.0f;
    if (dt == TOKEMB_Q8_ROW) {
        memcpy(qs, r + dim, 4);
        memcpy(qb, r + dim + 4, 4);
    }
}

/* The SUM / MEAN step's scale and bias of Q8_ROW row r at bag position j: w*scale and w*bias (torch). */
TK_ALWAYS_INLINE void tk_bag_q8_sb(const uint8_t *r, size_t dim, const float *psw, size_t j, float *ws, float *wb) {
    tk_bag_qsb(r, dim, TOKEMB_Q8_ROW, ws, wb);
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
    if (dt == TOKEMB_Q8_ROW) {
        const float p = (float)r[c] * qs;
        return p + qb;
    }
    return tk_bag_raw(r, c, dt);
}

TK_ALWAYS_INLINE void tk_bag_one(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids, int idw,
                                 size_t s, size_t e, int mode, const float *psw, int fused, int64_t pad, float *o) {
    float qs, qb;
    memset(o, 0, dim * sizeof(float));
    if (mode == 2) {
        int first = 1;
        for (size_t j = s; j < e; j++) {
            int64_t id = tk_bid(ids, idw, j);
            if (id == pad) continue;
            const uint8_t *r = base + (size_t)id * rb;
            tk_bag_qsb(r, dim, dt, &qs, &qb);
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
        int64_t id = tk_bid(ids, idw, j);
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

TK_ALWAYS_INLINE void tk_bags_portable_dt(const uint8_t *base, size_t rb, int dt, size_t dim, const void *ids,
                                          int idw, const int64_t *off, size_t b0, size_t b1, int mode,
                                          const float *psw, int fused, int64_t pad, float *out) {
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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Rows ahead to prefetch for a column block of `cols` elements: about 4 KiB of the block's bytes in flight,
 * at least 4 rows and at most 16 (32 for Q8_ROW). 16 rows of a 64-float F32 block is the tuned value;
 * small F32 blocks gain nothing from going further (D=16: 0.95x torch's speed at 16 rows, 0.85x at 32),
 * Q8_ROW's 128-code blocks do (32 rows against 16: 0.60-0.76x memcpy instead of 0.48-0.53x at D=256
 * from DRAM). */
#define TK_BAG_PF_BYTES 4096u
/* Bytes per stored element. */
static inline size_t tk_bag_esz(int dt) { return dt == TOKEMB_F32 ? 4u : dt == TOKEMB_Q8_ROW ? 1u : 2u; }
static inline size_t tk_bag_pf_ahead(size_t cols, int dt) {
    const size_t bytes = cols * tk_bag_esz(dt);
    const size_t a = TK_BAG_PF_BYTES / bytes, most = dt == TOKEMB_Q8_ROW ? 32u : 16u;
    return a < 4 ? 4 : a > most ? most : a;
}

/* Prefetch `cols` elements of row r from column c (and Q8_ROW's scale/bias line) into L2 (TK_PF_LOC).
 * Into L1 instead for tables that fit the last-level cache was measured and rejected: it only won when the
 * rows had just been read by another call on the same ids (compare_torch: D=64 0.95x torch's speed
 * against 0.70x), and lost in the memcpy-paired bench (D=32-64: 0.44-0.65x memcpy against 0.53-0.89x). */
TK_ALWAYS_INLINE void tk_bag_pf(const uint8_t *r, size_t c, size_t cols, int dt, size_t dim) {
    const size_t esz = tk_bag_esz(dt);
    const uint8_t *p = r + c * esz;
    for (size_t q = 0; q < cols * esz; q += 64) __builtin_prefetch(p + q, 0, TK_PF_LOC); /* unrolled: cols is constant */
    if (dt != TOKEMB_F32) /* compact rows need not start on a line: the block's last byte may be on one more */
        __builtin_prefetch(p + cols * esz - 1, 0, TK_PF_LOC);
    if (dt == TOKEMB_Q8_ROW) __builtin_prefetch(r + dim, 0, TK_PF_LOC);
}

/* AVX2 (+FMA, F16C): 8 floats a vector */
#define TK_V __m256
#define TK_VW 8
#define TK_VTARGET __attribute__((target("avx2,fma,f16c")))
#define TK_VFN(name) name##_avx2
#define TK_VZERO() _mm256_setzero_ps()
#define TK_VSET1(f) _mm256_set1_ps(f)
#define TK_VADD(a, b) _mm256_add_ps(a, b)
#define TK_VMUL(a, b) _mm256_mul_ps(a, b)
#define TK_VFMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define TK_VDIV(a, b) _mm256_div_ps(a, b)
#define TK_VLOADU(p) _mm256_loadu_ps(p)
#define TK_VSTOREU(p, v) _mm256_storeu_ps(p, v)
#define TK_VMASK8(rem) _mm256_cmpgt_epi32(_mm256_set1_epi32((int)(rem)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
#define TK_VMASKLOAD(p, rem) _mm256_maskload_ps(p, TK_VMASK8(rem))
#define TK_VMASKSTORE(p, rem, v) _mm256_maskstore_ps(p, TK_VMASK8(rem), v)
#define TK_VCVT_F16(x) _mm256_cvtph_ps(x)
#define TK_VCVT_BF16(x) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(x), 16))
#define TK_VCVT_Q8(x) _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(x))
#define TK_VLD_F16(p) TK_VCVT_F16(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define TK_VLD_BF16(p) TK_VCVT_BF16(_mm_loadu_si128((const __m128i *)(const void *)(p)))
#define TK_VLD_Q8(p) TK_VCVT_Q8(_mm_loadl_epi64((const __m128i *)(const void *)(p)))
#define TK_VPART(p, n) tk_part16(p, n)
/* The first n < 16 bytes at p, zeros beyond. */
static inline __m128i tk_part16(const uint8_t *p, size_t n) {
    uint8_t b[16] = {0};
    memcpy(b, p, n);
    __m128i x;
    memcpy(&x, b, 16);
    return x;
}
#include "bags_simd.h" /* undefines the TK_V* parameters */

/* AVX-512 (F, BW, VL): 16 floats a vector; on the Zen 4 VM it halves the instructions of the compute-bound
 * Q8_ROW decode (1.5x faster per row in cache; pooled D=256 16 ns against 21-25 ns per lookup). */
#define TK_V __m512
#define TK_VW 16
#define TK_VTARGET __attribute__((target("avx512f,avx512bw,avx512vl")))
#define TK_VFN(name) name##_avx512
#define TK_VZERO() _mm512_setzero_ps()
#define TK_VSET1(f) _mm512_set1_ps(f)
#define TK_VADD(a, b) _mm512_add_ps(a, b)
#define TK_VMUL(a, b) _mm512_mul_ps(a, b)
#define TK_VFMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define TK_VDIV(a, b) _mm512_div_ps(a, b)
#define TK_VLOADU(p) _mm512_loadu_ps(p)
#define TK_VSTOREU(p, v) _mm512_storeu_ps(p, v)
#define TK_VMASKLOAD(p, rem) _mm512_maskz_loadu_ps((__mmask16)((1u << (rem)) - 1u), p)
#define TK_VMASKSTORE(p, rem, v) _mm512_mask_storeu_ps(p, (__mmask16)((1u << (rem)) - 1u), v)
#define TK_VCVT_F16(x) _mm512_cvtph_ps(x)
#define TK_VCVT_BF16(x) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(x), 16))
#define TK_VCVT_Q8(x) _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm256_castsi256_si128(x)))
#define TK_VLD_F16(p) TK_VCVT_F16(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define TK_VLD_BF16(p) TK_VCVT_BF16(_mm256_loadu_si256((const __m256i *)(const void *)(p)))
#define TK_VLD_Q8(p) _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(p))))
#define TK_VPART(p, n) _mm256_maskz_loadu_epi8((__mmask32)((1ull << (n)) - 1u), p)
#include "bags_simd.h" /* undefines the TK_V* parameters */
#define TK_BAGS_SIMD 1
#else
#define TK_BAGS_SIMD 0
#endif

void tk_bags_forward(const void *table, size_t row_bytes, int32_t dtype, size_t dim, const void *ids, int id_width,
                     const int64_t *offsets, size_t b0, size_t b1, int mode, const float *psw, int fused, int64_t pad,
                     float *out) {
    const uint8_t *base = (const uint8_t *)table;
#if TK_BAGS_SIMD
    const int isa = tk_cpu_isa();
    if ((mode == 0 || mode == 1) && isa >= TK_ISA_AVX2 && (dtype != TOKEMB_F16 || tk_cpu_has_f16c())) {
        /* AVX-512 for the compact dtypes, whose decode is compute-bound; float32 bags are memory-bound and
         * measured 0.8-0.9x memcpy with 128-column zmm blocks against 1.0-1.15x with the AVX2 blocks */
        if (isa >= TK_ISA_AVX512 && dtype != TOKEMB_F32)
            tk_bags_avx512(base, row_bytes, dtype, dim, ids, id_width, offsets, b0, b1, mode == 1, psw, fused, pad, out);
        else tk_bags_avx2(base, row_bytes, dtype, dim, ids, id_width, offsets, b0, b1, mode == 1, psw, fused, pad, out);
        return;
    }
#endif
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
