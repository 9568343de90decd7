/* gather.c - the F32 row gather kernel: out[i] = table[ids[i]], with portable, AVX2 and AVX-512 variants
 * selected at run time through tk_cpu_isa().
 *
 * Every variant is a pure copy (loads and stores of the same 32-bit patterns), so all of them give
 * bit-identical output, NaN payloads and -0.0 included. What differs is only how fast they move bytes:
 *  - software prefetch with a byte budget in flight (TK_PF_BUDGET, see below; whole-row prefetch of
 *    4 KiB+ rows many rows ahead overflows L1 and hurts);
 *  - dims 1..16 have fixed-size copies (the compiler emits 4..64-byte moves), four tokens per iteration
 *    so four independent index and row loads are in flight;
 *  - larger rows use 4x-unrolled vector loops with an overlapping last vector instead of a scalar tail,
 *    rows of 2 KiB (Intel) or 4 KiB and more glibc's memcpy (see tk_copy_avx2);
 *  - optional non-temporal stores (TK_GATHER_NT) bypass the cache for large outputs, then sfence;
 *  - 32-bit ids are read as 32-bit (half the index traffic), not widened in a copy.
 * The library is compiled for baseline x86-64; the SIMD bodies use __attribute__((target)). */
#include "kernels/kernels.h"
#include "kernels/simd.h"

/* Software prefetch budget per thread: rows are prefetched `ahead` = min(16, TK_PF_BUDGET / row) rows
 * ahead (at least 1), each only up to its first TK_PF_ROW_CAP bytes (the hardware prefetcher follows the
 * rest of a long row), so at most TK_PF_BUDGET bytes are in flight whatever the row length
 * (measurements: docs/performance.md, "Tuning record"). */
#define TK_PF_BUDGET 8192u
#define TK_PF_ROW_CAP 1024u
#define TK_PF_MAX_ROWS 16u

/* Prefetch plan for a row of `bytes`: rows ahead and bytes prefetched per row (0: no prefetch). Rows of
 * one cache line or less from a table that fits the LLC are not prefetched: out-of-order execution
 * already overlaps those loads, and the extra id load + prefetch per token cost 15 % (lookup D = 16,
 * 8 MiB table: 0.84-0.87x index_select with the prefetch, 1.01-1.03x without; from DRAM the prefetch
 * still wins, 20.2 vs 21.7 ns/token; docs/performance.md, "Tuning record"). */
TK_ALWAYS_INLINE void tk_pf_plan(size_t bytes, unsigned flags, size_t *ahead, size_t *pf_bytes) {
    if ((flags & TK_GATHER_NO_PREFETCH) || (bytes <= 64 && (flags & TK_GATHER_PF_NEAR))) {
        *ahead = 0;
        *pf_bytes = 0;
        return;
    }
    size_t r = bytes < 64 ? 64 : bytes;
    size_t d = TK_PF_BUDGET / r;
    if (d > TK_PF_MAX_ROWS) d = TK_PF_MAX_ROWS;
    if (d < 1) d = 1;
    *ahead = d;
    *pf_bytes = bytes < TK_PF_ROW_CAP ? bytes : TK_PF_ROW_CAP;
}

/* Prefetch into L1 when the table fits the last-level cache (TK_GATHER_PF_NEAR), into L2 otherwise. */
#define TK_PF(p) tk_prefetch(p, near)

/* ---- row copies ---------------------------------------------------------------------------------- */

TK_ALWAYS_INLINE void tk_copy_portable(float *d, const float *s, size_t dim, size_t mc) {
    (void)mc;
    memcpy(d, s, dim * sizeof(float));
}

#if TK_X86
/* Non-temporal copy, SSE2 (baseline): 4-byte movnti up to a 16-byte boundary, movntps, movnti tail. */
TK_ALWAYS_INLINE void tk_copy_nt_portable(float *d, const float *s, size_t dim) {
    size_t c = 0;
    for (; c < dim && ((uintptr_t)(d + c) & 15u); c++) tk_stream_f32(d + c, s + c);
    for (; c + 4 <= dim; c += 4) _mm_stream_ps(d + c, _mm_loadu_ps(s + c));
    for (; c < dim; c++) tk_stream_f32(d + c, s + c);
}

/* Rows of `mc` floats and more go to memcpy: glibc's `rep movsb` path (ERMS/FSRM) writes whole lines
 * without reading them first, which regular vector stores cannot. mc = tk_cpu_memcpy_min_bytes() / 4:
 * 2 KiB rows on Intel (16- and 64-token calls at D = 768 went from 1.20x / 0.92x index_select with the
 * vector loop to 1.40x / 1.08x, large lookups unchanged), 4 KiB elsewhere (docs/performance.md,
 * "Tuning record"). */
TK_TARGET(avx2) TK_ALWAYS_INLINE void tk_copy_avx2(float *d, const float *s, size_t dim, size_t mc) {
    if (dim < 8 || dim >= mc) {
        memcpy(d, s, dim * sizeof(float));
        return;
    }
    size_t c = 0;
    for (; c + 32 <= dim; c += 32) {
        __m256 a = _mm256_loadu_ps(s + c), b = _mm256_loadu_ps(s + c + 8);
        __m256 e = _mm256_loadu_ps(s + c + 16), f = _mm256_loadu_ps(s + c + 24);
        _mm256_storeu_ps(d + c, a);
        _mm256_storeu_ps(d + c + 8, b);
        _mm256_storeu_ps(d + c + 16, e);
        _mm256_storeu_ps(d + c + 24, f);
    }
    for (; c + 8 <= dim; c += 8) _mm256_storeu_ps(d + c, _mm256_loadu_ps(s + c));
    if (c < dim) _mm256_storeu_ps(d + dim - 8, _mm256_loadu_ps(s + dim - 8)); /* overlapping last vector */
}

TK_TARGET(avx2) TK_ALWAYS_INLINE void tk_copy_nt_avx2(float *d, const float *s, size_t dim) {
    size_t c = 0;
    for (; c < dim && ((uintptr_t)(d + c) & 31u); c++) tk_stream_f32(d + c, s + c);
    for (; c + 32 <= dim; c += 32) {
        __m256 a = _mm256_loadu_ps(s + c), b = _mm256_loadu_ps(s + c + 8);
        __m256 e = _mm256_loadu_ps(s + c + 16), f = _mm256_loadu_ps(s + c + 24);
        _mm256_stream_ps(d + c, a);
        _mm256_stream_ps(d + c + 8, b);
        _mm256_stream_ps(d + c + 16, e);
        _mm256_stream_ps(d + c + 24, f);
    }
    for (; c + 8 <= dim; c += 8) _mm256_stream_ps(d + c, _mm256_loadu_ps(s + c));
    for (; c < dim; c++) tk_stream_f32(d + c, s + c);
}

TK_TARGET(avx512) TK_ALWAYS_INLINE void tk_copy_avx512(float *d, const float *s, size_t dim, size_t mc) {
    if (dim >= mc) {
        memcpy(d, s, dim * sizeof(float));
        return;
    }
    size_t c = 0;
    for (; c + 64 <= dim; c += 64) {
        __m512 a = _mm512_loadu_ps(s + c), b = _mm512_loadu_ps(s + c + 16);
        __m512 e = _mm512_loadu_ps(s + c + 32), f = _mm512_loadu_ps(s + c + 48);
        _mm512_storeu_ps(d + c, a);
        _mm512_storeu_ps(d + c + 16, b);
        _mm512_storeu_ps(d + c + 32, e);
        _mm512_storeu_ps(d + c + 48, f);
    }
    for (; c + 16 <= dim; c += 16) _mm512_storeu_ps(d + c, _mm512_loadu_ps(s + c));
    if (c < dim) {
        __mmask16 m = (__mmask16)((1u << (dim - c)) - 1u);
        _mm512_mask_storeu_ps(d + c, m, _mm512_maskz_loadu_ps(m, s + c));
    }
}

TK_TARGET(avx512) TK_ALWAYS_INLINE void tk_copy_nt_avx512(float *d, const float *s, size_t dim) {
    size_t c = 0;
    for (; c < dim && ((uintptr_t)(d + c) & 63u); c++) tk_stream_f32(d + c, s + c);
    for (; c + 16 <= dim; c += 16) _mm512_stream_ps(d + c, _mm512_loadu_ps(s + c));
    for (; c < dim; c++) tk_stream_f32(d + c, s + c);
}
#else
#define tk_copy_nt_portable tk_copy_portable
#endif

/* ---- the kernel body, instantiated once per (ISA, id type) ---------------------------------------- */

/* Fixed-size rows, 4 tokens per iteration. D is a constant after inlining. */
#define TK_SMALL_CASE(D)                                                                            \
    case D: {                                                                                       \
        size_t i = 0;                                                                               \
        for (; i + 4 <= n; i += 4) {                                                                \
            if (ahead && i + ahead + 4 <= n) {                                                      \
                TK_PF(table + (size_t)id[i + ahead] * rs);                                          \
                TK_PF(table + (size_t)id[i + ahead + 1] * rs);                                      \
                TK_PF(table + (size_t)id[i + ahead + 2] * rs);                                      \
                TK_PF(table + (size_t)id[i + ahead + 3] * rs);                                      \
            }                                                                                       \
            const float *s0 = table + (size_t)id[i] * rs, *s1 = table + (size_t)id[i + 1] * rs;     \
            const float *s2 = table + (size_t)id[i + 2] * rs, *s3 = table + (size_t)id[i + 3] * rs; \
            float *o = out + i * os;                                                                \
            memcpy(o, s0, (D) * sizeof(float));                                                     \
            memcpy(o + os, s1, (D) * sizeof(float));                                                \
            memcpy(o + 2 * os, s2, (D) * sizeof(float));                                            \
            memcpy(o + 3 * os, s3, (D) * sizeof(float));                                            \
        }                                                                                           \
        for (; i < n; i++) memcpy(out + i * os, table + (size_t)id[i] * rs, (D) * sizeof(float));   \
        return;                                                                                     \
    }

/* tk_gather_<isa>_<IDT>: the gather with the ISA's row copies, for ids of type IDT. */
#define TK_DEFINE_GATHER(isa, IDT)                                                                            \
    TK_TARGET(isa)                                                                                            \
    static void tk_gather_##isa##_##IDT(const float *table, size_t rs, const IDT *id, size_t n, size_t dim,   \
                                        float *out, size_t os, unsigned flags) {                              \
        size_t ahead, pfb;                                                                                    \
        const int near = (flags & TK_GATHER_PF_NEAR) != 0;                                                    \
        tk_pf_plan(dim * sizeof(float), flags, &ahead, &pfb);                                                 \
        if (flags & TK_GATHER_NT) {                                                                           \
            for (size_t i = 0; i < n; i++) {                                                                  \
                if (ahead && i + ahead < n) tk_prefetch_bytes(table + (size_t)id[i + ahead] * rs, pfb, near); \
                tk_copy_nt_##isa(out + i * os, table + (size_t)id[i] * rs, dim);                              \
            }                                                                                                 \
            TK_SFENCE();                                                                                      \
            return;                                                                                           \
        }                                                                                                     \
        switch (dim) {                                                                                        \
            TK_SMALL_CASE(1)                                                                                  \
            TK_SMALL_CASE(2)                                                                                  \
            TK_SMALL_CASE(3)                                                                                  \
            TK_SMALL_CASE(4)                                                                                  \
            TK_SMALL_CASE(5)                                                                                  \
            TK_SMALL_CASE(6)                                                                                  \
            TK_SMALL_CASE(7)                                                                                  \
            TK_SMALL_CASE(8)                                                                                  \
            TK_SMALL_CASE(12)                                                                                 \
            TK_SMALL_CASE(16)                                                                                 \
        default: break;                                                                                       \
        }                                                                                                     \
        const size_t mc = tk_cpu_memcpy_min_bytes() / sizeof(float);                                          \
        for (size_t i = 0; i < n; i++) {                                                                      \
            if (ahead && i + ahead < n) tk_prefetch_bytes(table + (size_t)id[i + ahead] * rs, pfb, near);     \
            tk_copy_##isa(out + i * os, table + (size_t)id[i] * rs, dim, mc);                                 \
        }                                                                                                     \
    }

/* tk_gather_f32_<isa>: the variant for 32- or 64-bit ids. */
#define TK_DEFINE_GATHER_F32(isa, _)                                                                             \
    TK_DEFINE_GATHER(isa, int64_t)                                                                               \
    TK_DEFINE_GATHER(isa, int32_t)                                                                               \
    void tk_gather_f32_##isa(const float *table, size_t row_stride, const void *ids, int id_width, size_t n,     \
                             size_t dim, float *out, size_t out_stride, unsigned flags) {                        \
        if (id_width == 8)                                                                                       \
            tk_gather_##isa##_int64_t(table, row_stride, (const int64_t *)ids, n, dim, out, out_stride, flags);  \
        else tk_gather_##isa##_int32_t(table, row_stride, (const int32_t *)ids, n, dim, out, out_stride, flags); \
    }
TK_PER_ISA(TK_DEFINE_GATHER_F32, _)

void tk_gather_f32_ex(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                      float *out, size_t out_stride, unsigned flags) {
    TK_ISA_PICK(tk_gather_f32, tk_cpu_isa())(table, row_stride, ids, id_width, n, dim, out, out_stride, flags);
}

void tk_gather_f32(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                   float *out, size_t out_stride) {
    tk_gather_f32_ex(table, row_stride, ids, id_width, n, dim, out, out_stride, 0u);
}

/* ---- id validation scan ------------------------------------------------------------------------- */

#define TK_IDS_BLOCK 2048u

/* 1 if any id of the block is outside [0, lim): one unsigned compare per id catches negatives too
 * (vectorised by the compiler in the AVX2 variant). */
#define TK_DEFINE_IDS_SCAN(isa, _)                                                              \
    TK_TARGET(isa) static int tk_ids_scan_i64_##isa(const int64_t *p, size_t n, uint64_t lim) { \
        uint64_t bad = 0;                                                                       \
        for (size_t k = 0; k < n; k++) bad |= (uint64_t)((uint64_t)p[k] >= lim);                \
        return bad != 0;                                                                        \
    }                                                                                           \
    TK_TARGET(isa) static int tk_ids_scan_i32_##isa(const int32_t *p, size_t n, uint32_t lim) { \
        uint32_t bad = 0;                                                                       \
        for (size_t k = 0; k < n; k++) bad |= (uint32_t)((uint32_t)p[k] >= lim);                \
        return bad != 0;                                                                        \
    }
TK_PER_ISA_AVX2(TK_DEFINE_IDS_SCAN, _)

size_t tk_ids_first_bad(const void *ids, int id_width, size_t n, int64_t rows) {
    if (rows <= 0) return n ? 0 : n;
    const int isa = tk_cpu_isa();
    /* int32 ids against rows >= 2^31: every non-negative int32 is valid, so compare with 2^31 */
    const uint32_t lim32 = rows >= ((int64_t)1 << 31) ? (uint32_t)1 << 31 : (uint32_t)rows;
    for (size_t i = 0; i < n; i += TK_IDS_BLOCK) {
        size_t m = n - i < TK_IDS_BLOCK ? n - i : TK_IDS_BLOCK;
        int bad;
        if (id_width == 8) {
            const int64_t *p = (const int64_t *)ids + i;
            bad = TK_ISA_PICK_AVX2(tk_ids_scan_i64, isa)(p, m, (uint64_t)rows);
        } else {
            const int32_t *p = (const int32_t *)ids + i;
            bad = TK_ISA_PICK_AVX2(tk_ids_scan_i32, isa)(p, m, lim32);
        }
        if (bad)
            for (size_t k = i; k < i + m; k++) {
                int64_t id = tk_id_at(ids, id_width, k);
                if (id < 0 || id >= rows) return k;
            }
    }
    return n;
}
