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
 *    rows of 4 KiB and more glibc's memcpy (see TK_MEMCPY_MIN_DIM);
 *  - optional non-temporal stores (TK_GATHER_NT) bypass the cache for large outputs, then sfence;
 *  - 32-bit ids are read as 32-bit (half the index traffic), not widened in a copy.
 * The library is compiled for baseline x86-64; the SIMD bodies use __attribute__((target)). */
#include "kernels.h"
#include "common/common.h"

#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define TK_X86 1
#else
#define TK_X86 0
#endif

/* Software prefetch budget per thread: rows are prefetched `ahead` = min(16, TK_PF_BUDGET / row) rows
 * ahead (at least 1), each only up to its first TK_PF_ROW_CAP bytes (the hardware prefetcher follows the
 * rest of a long row), so at most TK_PF_BUDGET bytes are in flight whatever the row length. Tuned on the
 * Zen 3/4 VM with tokemb-bench (whole-row prefetch of 4 KiB rows 4 ahead was 10-20 % slower). */
#define TK_PF_BUDGET 8192u
#define TK_PF_ROW_CAP 1024u
#define TK_PF_MAX_ROWS 16u

#define TK_ALWAYS_INLINE static inline __attribute__((always_inline))

/* Prefetch plan for a row of `bytes`: rows ahead and bytes prefetched per row (0: no prefetch). */
TK_ALWAYS_INLINE void tk_pf_plan(size_t bytes, unsigned flags, size_t *ahead, size_t *pf_bytes) {
    if (flags & TK_GATHER_NO_PREFETCH) {
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
#define TK_PF(p) (near ? __builtin_prefetch(p, 0, 3) : __builtin_prefetch(p, 0, TK_PF_LOC))
TK_ALWAYS_INLINE void tk_pf_row(const float *row, size_t pf_bytes, int near) {
    const char *p = (const char *)row;
    for (size_t o = 0; o < pf_bytes; o += 64) TK_PF(p + o);
}

/* ---- row copies ---------------------------------------------------------------------------------- */

TK_ALWAYS_INLINE void tk_copy_portable(float *d, const float *s, size_t dim) { memcpy(d, s, dim * sizeof(float)); }

#if TK_X86
/* Non-temporal copy, SSE2 (baseline): 4-byte movnti up to a 16-byte boundary, movntps, movnti tail. */
TK_ALWAYS_INLINE void tk_copy_nt_sse2(float *d, const float *s, size_t dim) {
    size_t c = 0;
    while (c < dim && ((uintptr_t)(d + c) & 15u)) {
        int v;
        memcpy(&v, s + c, 4);
        _mm_stream_si32((int *)(d + c), v);
        c++;
    }
    for (; c + 4 <= dim; c += 4) _mm_stream_ps(d + c, _mm_loadu_ps(s + c));
    for (; c < dim; c++) {
        int v;
        memcpy(&v, s + c, 4);
        _mm_stream_si32((int *)(d + c), v);
    }
}

/* Rows of 4 KiB and more go to memcpy: glibc's `rep movsb` path (ERMS/FSRM) writes whole lines without
 * reading them first, which regular vector stores cannot (tokemb-bench, D = 1024-4096, cached stores:
 * 0.99-1.1x memcpy against 0.7-0.85x with the vector loop; at 1-2 KiB rows memcpy was slower). */
#define TK_MEMCPY_MIN_DIM 1024u

__attribute__((target("avx2"))) TK_ALWAYS_INLINE void tk_copy_avx2(float *d, const float *s, size_t dim) {
    if (dim < 8 || dim >= TK_MEMCPY_MIN_DIM) {
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

__attribute__((target("avx2"))) TK_ALWAYS_INLINE void tk_copy_nt_avx2(float *d, const float *s, size_t dim) {
    size_t c = 0;
    while (c < dim && ((uintptr_t)(d + c) & 31u)) {
        int v;
        memcpy(&v, s + c, 4);
        _mm_stream_si32((int *)(d + c), v);
        c++;
    }
    for (; c + 32 <= dim; c += 32) {
        __m256 a = _mm256_loadu_ps(s + c), b = _mm256_loadu_ps(s + c + 8);
        __m256 e = _mm256_loadu_ps(s + c + 16), f = _mm256_loadu_ps(s + c + 24);
        _mm256_stream_ps(d + c, a);
        _mm256_stream_ps(d + c + 8, b);
        _mm256_stream_ps(d + c + 16, e);
        _mm256_stream_ps(d + c + 24, f);
    }
    for (; c + 8 <= dim; c += 8) _mm256_stream_ps(d + c, _mm256_loadu_ps(s + c));
    for (; c < dim; c++) {
        int v;
        memcpy(&v, s + c, 4);
        _mm_stream_si32((int *)(d + c), v);
    }
}

__attribute__((target("avx512f"))) TK_ALWAYS_INLINE void tk_copy_avx512(float *d, const float *s, size_t dim) {
    if (dim >= TK_MEMCPY_MIN_DIM) {
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

__attribute__((target("avx512f"))) TK_ALWAYS_INLINE void tk_copy_nt_avx512(float *d, const float *s, size_t dim) {
    size_t c = 0;
    while (c < dim && ((uintptr_t)(d + c) & 63u)) {
        int v;
        memcpy(&v, s + c, 4);
        _mm_stream_si32((int *)(d + c), v);
        c++;
    }
    for (; c + 16 <= dim; c += 16) _mm512_stream_ps(d + c, _mm512_loadu_ps(s + c));
    for (; c < dim; c++) {
        int v;
        memcpy(&v, s + c, 4);
        _mm_stream_si32((int *)(d + c), v);
    }
}
#define TK_SFENCE() _mm_sfence()
#else
#define tk_copy_nt_sse2 tk_copy_portable
#define TK_SFENCE() ((void)0)
#endif

/* ---- the kernel body, instantiated once per (ISA, id type) ---------------------------------------- */

/* Fixed-size rows, 4 tokens per iteration. D is a constant after inlining. */
#define TK_SMALL_CASE(D)                                                                                       \
    case D: {                                                                                                  \
        size_t i = 0;                                                                                          \
        for (; i + 4 <= n; i += 4) {                                                                           \
            if (ahead && i + ahead + 4 <= n) {                                                                 \
                TK_PF(table + (size_t)id[i + ahead] * rs);                                                     \
                TK_PF(table + (size_t)id[i + ahead + 1] * rs);                                                 \
                TK_PF(table + (size_t)id[i + ahead + 2] * rs);                                                 \
                TK_PF(table + (size_t)id[i + ahead + 3] * rs);                                                 \
            }                                                                                                  \
            const float *s0 = table + (size_t)id[i] * rs, *s1 = table + (size_t)id[i + 1] * rs;                \
            const float *s2 = table + (size_t)id[i + 2] * rs, *s3 = table + (size_t)id[i + 3] * rs;            \
            float *o = out + i * os;                                                                           \
            memcpy(o, s0, (D) * sizeof(float));                                                                \
            memcpy(o + os, s1, (D) * sizeof(float));                                                           \
            memcpy(o + 2 * os, s2, (D) * sizeof(float));                                                       \
            memcpy(o + 3 * os, s3, (D) * sizeof(float));                                                       \
        }                                                                                                      \
        for (; i < n; i++) memcpy(out + i * os, table + (size_t)id[i] * rs, (D) * sizeof(float));              \
        return;                                                                                                \
    }

#define TK_DEFINE_GATHER(NAME, ATTR, IDT, COPY, COPY_NT)                                                       \
    ATTR static void NAME(const float *table, size_t rs, const IDT *id, size_t n, size_t dim, float *out,      \
                          size_t os, unsigned flags) {                                                         \
        size_t ahead, pfb;                                                                                     \
        const int near = (flags & TK_GATHER_PF_NEAR) != 0;                                                     \
        tk_pf_plan(dim * sizeof(float), flags, &ahead, &pfb);                                                  \
        if (flags & TK_GATHER_NT) {                                                                            \
            for (size_t i = 0; i < n; i++) {                                                                   \
                if (ahead && i + ahead < n) tk_pf_row(table + (size_t)id[i + ahead] * rs, pfb, near);                \
                COPY_NT(out + i * os, table + (size_t)id[i] * rs, dim);                                        \
            }                                                                                                  \
            TK_SFENCE();                                                                                       \
            return;                                                                                            \
        }                                                                                                      \
        switch (dim) {                                                                                         \
            TK_SMALL_CASE(1)                                                                                   \
            TK_SMALL_CASE(2)                                                                                   \
            TK_SMALL_CASE(3)                                                                                   \
            TK_SMALL_CASE(4)                                                                                   \
            TK_SMALL_CASE(5)                                                                                   \
            TK_SMALL_CASE(6)                                                                                   \
            TK_SMALL_CASE(7)                                                                                   \
            TK_SMALL_CASE(8)                                                                                   \
            TK_SMALL_CASE(12)                                                                                  \
            TK_SMALL_CASE(16)                                                                                  \
        default: break;                                                                                        \
        }                                                                                                      \
        for (size_t i = 0; i < n; i++) {                                                                       \
            if (ahead && i + ahead < n) tk_pf_row(table + (size_t)id[i + ahead] * rs, pfb, near);                    \
            COPY(out + i * os, table + (size_t)id[i] * rs, dim);                                               \
        }                                                                                                      \
    }

TK_DEFINE_GATHER(tk_gather_portable_i64, , int64_t, tk_copy_portable, tk_copy_nt_sse2)
TK_DEFINE_GATHER(tk_gather_portable_i32, , int32_t, tk_copy_portable, tk_copy_nt_sse2)

void tk_gather_f32_portable(const float *table, size_t row_stride, const void *ids, int id_width, size_t n,
                            size_t dim, float *out, size_t out_stride, unsigned flags) {
    if (id_width == 8) tk_gather_portable_i64(table, row_stride, (const int64_t *)ids, n, dim, out, out_stride, flags);
    else tk_gather_portable_i32(table, row_stride, (const int32_t *)ids, n, dim, out, out_stride, flags);
}

#if TK_X86
#define TK_AVX2 __attribute__((target("avx2")))
#define TK_AVX512 __attribute__((target("avx512f")))
TK_DEFINE_GATHER(tk_gather_avx2_i64, TK_AVX2, int64_t, tk_copy_avx2, tk_copy_nt_avx2)
TK_DEFINE_GATHER(tk_gather_avx2_i32, TK_AVX2, int32_t, tk_copy_avx2, tk_copy_nt_avx2)
TK_DEFINE_GATHER(tk_gather_avx512_i64, TK_AVX512, int64_t, tk_copy_avx512, tk_copy_nt_avx512)
TK_DEFINE_GATHER(tk_gather_avx512_i32, TK_AVX512, int32_t, tk_copy_avx512, tk_copy_nt_avx512)

void tk_gather_f32_avx2(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                        float *out, size_t out_stride, unsigned flags) {
    if (id_width == 8) tk_gather_avx2_i64(table, row_stride, (const int64_t *)ids, n, dim, out, out_stride, flags);
    else tk_gather_avx2_i32(table, row_stride, (const int32_t *)ids, n, dim, out, out_stride, flags);
}

void tk_gather_f32_avx512(const float *table, size_t row_stride, const void *ids, int id_width, size_t n,
                          size_t dim, float *out, size_t out_stride, unsigned flags) {
    if (id_width == 8) tk_gather_avx512_i64(table, row_stride, (const int64_t *)ids, n, dim, out, out_stride, flags);
    else tk_gather_avx512_i32(table, row_stride, (const int32_t *)ids, n, dim, out, out_stride, flags);
}
#endif

void tk_gather_f32_ex(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                      float *out, size_t out_stride, unsigned flags) {
#if TK_X86
    int isa = tk_cpu_isa();
    if (isa >= TK_ISA_AVX512) {
        tk_gather_f32_avx512(table, row_stride, ids, id_width, n, dim, out, out_stride, flags);
        return;
    }
    if (isa >= TK_ISA_AVX2) {
        tk_gather_f32_avx2(table, row_stride, ids, id_width, n, dim, out, out_stride, flags);
        return;
    }
#endif
    tk_gather_f32_portable(table, row_stride, ids, id_width, n, dim, out, out_stride, flags);
}

void tk_gather_f32(const float *table, size_t row_stride, const void *ids, int id_width, size_t n, size_t dim,
                   float *out, size_t out_stride) {
    tk_gather_f32_ex(table, row_stride, ids, id_width, n, dim, out, out_stride, 0u);
}

/* ---- id validation scan ------------------------------------------------------------------------- */

#define TK_IDS_BLOCK 2048u

/* 1 if any id of the block is outside [0, lim): one unsigned compare per id catches negatives too. */
#define TK_DEFINE_IDS_SCAN(NAME, ATTR)                                                                        \
    ATTR static int NAME##_i64(const int64_t *p, size_t n, uint64_t lim) {                                   \
        uint64_t bad = 0;                                                                                     \
        for (size_t k = 0; k < n; k++) bad |= (uint64_t)((uint64_t)p[k] >= lim);                              \
        return bad != 0;                                                                                      \
    }                                                                                                         \
    ATTR static int NAME##_i32(const int32_t *p, size_t n, uint32_t lim) {                                   \
        uint32_t bad = 0;                                                                                     \
        for (size_t k = 0; k < n; k++) bad |= (uint32_t)((uint32_t)p[k] >= lim);                              \
        return bad != 0;                                                                                      \
    }

TK_DEFINE_IDS_SCAN(tk_ids_scan_portable, )
#if TK_X86
TK_DEFINE_IDS_SCAN(tk_ids_scan_avx2, TK_AVX2)
#endif

size_t tk_ids_first_bad(const void *ids, int id_width, size_t n, int64_t rows) {
    if (rows <= 0) return n ? 0 : n;
#if TK_X86
    const int avx2 = tk_cpu_isa() >= TK_ISA_AVX2;
#else
    const int avx2 = 0;
#endif
    /* int32 ids against rows >= 2^31: every non-negative int32 is valid, so compare with 2^31 */
    const uint32_t lim32 = rows >= ((int64_t)1 << 31) ? (uint32_t)1 << 31 : (uint32_t)rows;
    for (size_t i = 0; i < n; i += TK_IDS_BLOCK) {
        size_t m = n - i < TK_IDS_BLOCK ? n - i : TK_IDS_BLOCK;
        int bad;
        if (id_width == 8) {
            const int64_t *p = (const int64_t *)ids + i;
#if TK_X86
            bad = avx2 ? tk_ids_scan_avx2_i64(p, m, (uint64_t)rows) : tk_ids_scan_portable_i64(p, m, (uint64_t)rows);
#else
            bad = tk_ids_scan_portable_i64(p, m, (uint64_t)rows);
#endif
        } else {
            const int32_t *p = (const int32_t *)ids + i;
#if TK_X86
            bad = avx2 ? tk_ids_scan_avx2_i32(p, m, lim32) : tk_ids_scan_portable_i32(p, m, lim32);
#else
            bad = tk_ids_scan_portable_i32(p, m, lim32);
#endif
        }
        if (bad)
            for (size_t k = i; k < i + m; k++) {
                int64_t id = id_width == 8 ? ((const int64_t *)ids)[k] : (int64_t)((const int32_t *)ids)[k];
                if (id < 0 || id >= rows) return k;
            }
    }
    return n;
}
