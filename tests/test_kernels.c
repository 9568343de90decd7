/* test_kernels.c - the ISA variants of the gather kernel against the portable one and a naive loop,
 * bitwise (every table bit pattern: NaN payloads, -0.0, subnormals), for all small-dim specialisations,
 * vector tails, strided and misaligned outputs, int32/int64 ids, non-temporal stores and prefetch
 * on/off; then thread-count independence and the NONTEMPORAL parameter through the public API.
 *
 * Also the bag SUM / MEAN kernel (src/kernels/bags.c, register accumulation on AVX2) and the RoPE
 * rotation (src/kernels/rope_kernels.c, AVX2 / AVX-512) against their portable paths and naive float
 * loops, and RoPE's vectorised double sincos against long double and libm.
 *
 * The kernel translation units are compiled into this test (the variants are internal symbols of the
 * library), with tk_cpu_isa() replaced by a stub so the dispatcher can be forced to each ISA. */
#define TOKEMB_EXPERIMENTAL /* TOKEMB_NONTEMPORAL */
#include "tk_test.h"
#include "tk_test_threads.h"

#include "../src/kernels/gather.c"
#include "../src/kernels/bags.c"
#include "../src/kernels/convert.c"
#include "../src/kernels/rope_kernels.c"

#include <math.h>
#include <stdlib.h>

static int forced_isa = TK_ISA_PORTABLE;
int tk_cpu_isa(void) { return forced_isa; }
static size_t forced_memcpy_min = 4096; /* bytes; the probe's values are 2048 (Intel) and 4096 */
size_t tk_cpu_memcpy_min_bytes(void) { return forced_memcpy_min; }

static int cpu_has(int isa) {
    __builtin_cpu_init();
    if (isa == TK_ISA_AVX2) return __builtin_cpu_supports("avx2");
    if (isa == TK_ISA_AVX512) return __builtin_cpu_supports("avx512f");
    return 1;
}

typedef void (*gather_fn)(const float *, size_t, const void *, int, size_t, size_t, float *, size_t, unsigned);

static void naive_gather(const float *table, size_t rs, const void *ids, int idw, size_t n, size_t dim, float *out,
                         size_t os) {
    for (size_t i = 0; i < n; i++) {
        int64_t id = idw == 8 ? ((const int64_t *)ids)[i] : ((const int32_t *)ids)[i];
        for (size_t c = 0; c < dim; c++) {
            uint32_t bits;
            memcpy(&bits, table + (size_t)id * rs + c, 4);
            memcpy(out + i * os + c, &bits, 4);
        }
    }
}

static void fill_bits(float *p, size_t n, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)tk_rand(s);
        switch (b % 11) {
        case 0: b = 0x80000000u; break;                           /* -0.0 */
        case 1: b = 0x7fc00000u | (b >> 12); break;               /* quiet NaN with payload */
        case 2: b = 0x7f800001u | ((b >> 10) & 0x3fffffu); break; /* signalling NaN */
        case 3: b &= 0x807fffffu; break;                          /* subnormal */
        default: break;
        }
        memcpy(p + i, &b, 4);
    }
}

static const size_t DIMS[] = {1,  2,  3,  4,  5,  6,  7,  8,   9,   11,  12,  13,  15,  16,  17,  20,   23,  24,
                              31, 32, 33, 40, 63, 64, 65, 100, 127, 128, 129, 255, 256, 257, 769, 1024, 2051};
static const size_t NS[] = {0, 1, 3, 4, 5, 17, 70};

/* Runs `fn` over every shape and option; each output (gaps and a guard band included) must equal the naive loop. */
static void check_variant(gather_fn fn, const char *name) {
    uint64_t s = 0x1234567ull;
    const size_t rows = 37;
    for (size_t di = 0; di < sizeof DIMS / sizeof DIMS[0]; di++) {
        size_t dim = DIMS[di];
        for (int strided = 0; strided < 2; strided++) {
            size_t rs = dim + (strided ? 3 : 0), os = dim + (strided ? 5 : 0);
            float *table = malloc(rows * rs * sizeof(float));
            assert_non_null(table);
            fill_bits(table, rows * rs, &s);
            for (size_t ni = 0; ni < sizeof NS / sizeof NS[0]; ni++) {
                size_t n = NS[ni];
                int64_t ids64[70];
                int32_t ids32[70];
                for (size_t i = 0; i < n; i++) ids32[i] = (int32_t)(ids64[i] = (int64_t)(tk_rand(&s) % rows));
                size_t cap = (n ? n : 1) * os + 64;
                float *want = malloc(cap * sizeof(float)), *got = malloc(cap * sizeof(float));
                assert_non_null(want);
                assert_non_null(got);
                for (int idw = 4; idw <= 8; idw += 4)
                    for (unsigned flags = 0; flags < 8; flags++)
                        for (size_t mis = 0; mis < 3; mis++) { /* output offset in floats: aligned or not */
                            const void *ids = idw == 8 ? (const void *)ids64 : (const void *)ids32;
                            tk_fill_sentinel(want, cap);
                            tk_fill_sentinel(got, cap);
                            naive_gather(table, rs, ids, idw, n, dim, want + mis, os);
                            fn(table, rs, ids, idw, n, dim, got + mis, os, flags);
                            if (memcmp(want, got, cap * sizeof(float)) != 0)
                                fail_msg(
                                    "%s: dim %zu n %zu row_stride %zu out_stride %zu id width %d flags %u offset %zu "
                                    "differs from the naive loop",
                                    name, dim, n, rs, os, idw, flags, mis);
                        }
                free(want);
                free(got);
            }
            free(table);
        }
    }
}

static void test_portable_matches_naive(void **state) {
    (void)state;
    check_variant(tk_gather_f32_portable, "portable");
}

static void test_avx2_matches_naive(void **state) {
    (void)state;
    if (!cpu_has(TK_ISA_AVX2)) skip();
    check_variant(tk_gather_f32_avx2, "avx2");
}

static void test_avx512_matches_naive(void **state) {
    (void)state;
    if (!cpu_has(TK_ISA_AVX512)) skip();
    check_variant(tk_gather_f32_avx512, "avx512");
}

/* the dispatcher, forced to each ISA, equals the portable variant */
static void test_dispatch_each_isa(void **state) {
    (void)state;
    uint64_t s = 99;
    const size_t rows = 300, dim = 77, n = 500;
    float *table = malloc(rows * dim * sizeof(float)), *a = malloc(n * dim * sizeof(float)),
          *b = malloc(n * dim * sizeof(float));
    int64_t *ids = malloc(n * sizeof(int64_t));
    assert_non_null(table);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(ids);
    fill_bits(table, rows * dim, &s);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)(tk_rand(&s) % rows);
    tk_gather_f32_portable(table, dim, ids, 8, n, dim, a, dim, 0);
    for (int isa = TK_ISA_PORTABLE; isa <= TK_ISA_AVX512; isa++) {
        if (!cpu_has(isa)) continue;
        forced_isa = isa;
        for (unsigned flags = 0; flags < 16; flags++) {
            forced_memcpy_min = flags & 8 ? 64 : 4096; /* rows of 308 bytes through memcpy, or vector copies */
            tk_fill_sentinel(b, n * dim);
            tk_gather_f32_ex(table, dim, ids, 8, n, dim, b, dim, flags & 7);
            if (memcmp(a, b, n * dim * sizeof(float)) != 0)
                fail_msg("isa %d flags %u memcpy from %zu bytes differs from portable", isa, flags & 7,
                         forced_memcpy_min);
        }
        forced_memcpy_min = 4096;
        tk_fill_sentinel(b, n * dim);
        tk_gather_f32(table, dim, ids, 8, n, dim, b, dim);
        assert_memory_equal(a, b, n * dim * sizeof(float));
    }
    forced_isa = TK_ISA_PORTABLE;
    free(table);
    free(a);
    free(b);
    free(ids);
}

/* Public API: lookups give the same bytes for 1, 2, 3 and 7 threads under every parallel-for backend
 * (tk_test_threads.h), int32 and int64 ids, strided output and every NONTEMPORAL setting, over batches large enough to be split across threads. */
static void test_lookup_thread_count_independence(void **state) {
    (void)state;
    static const int64_t dims[] = {3, 16, 64, 300};
    for (size_t di = 0; di < 4; di++) {
        const int64_t D = dims[di], V = 5000;
        /* at least 3 thread chunks of lookup.c's grain (512 KiB) */
        const size_t n = 3 * (((size_t)2 << 20) / ((size_t)D * 4)) + 17;
        tokemb_table *t = NULL;
        TK_OK(tokemb_table_create(V, D, TOKEMB_F32, &t));
        uint64_t s = 7 + di;
        fill_bits(tokemb_table_data(t), (size_t)(V * D), &s);
        int64_t *ids = malloc(n * sizeof(int64_t));
        int32_t *ids32 = malloc(n * sizeof(int32_t));
        float *want = malloc(n * (size_t)D * sizeof(float)), *got = malloc(n * ((size_t)D + 2) * sizeof(float));
        assert_non_null(ids);
        assert_non_null(ids32);
        assert_non_null(want);
        assert_non_null(got);
        for (size_t i = 0; i < n; i++) ids32[i] = (int32_t)(ids[i] = (int64_t)(tk_rand(&s) % (uint64_t)V));
        naive_gather(tokemb_table_data(t), (size_t)D, ids, 8, n, (size_t)D, want, (size_t)D);
        static const int32_t threads[] = {1, 2, 3, 7};
        for (int c = 0; c < 4 * TK_BACKENDS; c++) { /* every thread count under every backend */
            const int k = c % 4;
            tk_backend_set(c / 4);
            TK_OK(tokemb_set_num_threads(threads[k]));
            for (int64_t nt = 0; nt <= 2; nt++) {
                TK_OK(tokemb_table_set_param(t, TOKEMB_NONTEMPORAL, nt));
                tk_fill_sentinel(got, n * (size_t)D);
                TK_OK(tokemb_lookup(t, ids, n, got));
                if (memcmp(want, got, n * (size_t)D * sizeof(float)))
                    fail_msg("lookup D=%lld threads=%d %s nontemporal=%lld differs", (long long)D, threads[k],
                             tk_backend_names[c / 4], (long long)nt);
                tk_fill_sentinel(got, n * (size_t)D);
                TK_OK(tokemb_lookup_i32(t, ids32, n, got));
                if (memcmp(want, got, n * (size_t)D * sizeof(float)))
                    fail_msg("lookup_i32 D=%lld threads=%d %s nontemporal=%lld differs", (long long)D, threads[k],
                             tk_backend_names[c / 4], (long long)nt);
                tk_fill_sentinel(got, n * ((size_t)D + 2));
                TK_OK(tokemb_lookup_strided(t, ids, n, got, D + 2));
                for (size_t i = 0; i < n; i++) {
                    if (memcmp(want + i * (size_t)D, got + i * ((size_t)D + 2), (size_t)D * sizeof(float)))
                        fail_msg("strided lookup row %zu D=%lld threads=%d %s differs", i, (long long)D, threads[k],
                                 tk_backend_names[c / 4]);
                    uint32_t g0, g1;
                    memcpy(&g0, got + i * ((size_t)D + 2) + D, 4);
                    memcpy(&g1, got + i * ((size_t)D + 2) + D + 1, 4);
                    if (g0 != 0x7fc0beefu || g1 != 0x7fc0beefu) fail_msg("strided lookup wrote a gap at row %zu", i);
                }
            }
        }
        tk_backend_set(0);
        TK_OK(tokemb_set_num_threads(0));
        assert_true(atomic_load(&tk_hook_tasks) > 0); /* the hooks really ran the chunks */
        free(ids);
        free(ids32);
        free(want);
        free(got);
        tokemb_table_free(t);
    }
}

/* finite values, -0.0, subnormals and infinities (NaN payload propagation may legitimately depend on
 * the compiler's operand order of a commutative add, so NaN inputs are not used here) */
static void fill_finite(float *p, size_t n, uint64_t *s) {
    for (size_t i = 0; i < n; i++) {
        uint32_t b = (uint32_t)tk_rand(s);
        float v;
        switch (b % 13) {
        case 0: v = -0.0f; break;
        case 1:
            b &= 0x807fffffu;
            memcpy(&v, &b, 4);
            break;
        case 2:
            v = (b & 64) ? 1e30f * 1e30f : -1e30f * 1e30f;
            if (b & 128) v = 1.0f;
            break;
        default: v = (float)((int32_t)(b >> 8) - (1 << 23)) * (1.0f / (1 << 20)); break;
        }
        p[i] = v;
    }
}

/* bag SUM / MEAN (plain, fused and unfused weights, padding, empty bags) over F32, F16, BF16 and Q8_ROW rows
 * (strided): every ISA path equals the portable one bit for bit, and the plain SUM equals a naive
 * left-to-right float loop over the rows tk_row_decode returns (Q8_ROW: over torch's fmaf(scale, q,
 * acc + bias) steps) */
static void test_bag_sum_isa_bitwise(void **state) {
    (void)state;
    uint64_t s = 4242;
    const size_t rows = 50, nb = 13;
    static const size_t dims[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11,  12,  13,  14,  15,  16,
                                  17, 18, 19, 20, 31, 32, 33, 40, 64, 65, 100, 257, 512, 517, 1030};
    for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++)
        for (int32_t dt = TOKEMB_F32; dt <= TOKEMB_Q8_ROW; dt++) {
            const size_t dim = dims[di], rs = dim + (di & 1);
            const size_t rb = dt == TOKEMB_F32 ? rs * 4 : dt == TOKEMB_Q8_ROW ? dim + 8 + (di & 1) : 2 * rs;
            float *table = malloc(rows * rs * sizeof(float)), *dec = malloc(rows * dim * sizeof(float));
            uint8_t *enc = malloc(rows * rb);
            int64_t off[nb + 1], ids64[200];
            int32_t ids32[200];
            float psw[200];
            assert_true(table && dec && enc);
            fill_finite(table, rows * rs, &s);
            for (size_t r = 0; r < rows; r++) {
                if (dt == TOKEMB_F32) memcpy(enc + r * rb, table + r * rs, rb);
                else tk_row_encode(dt, table + r * rs, dim, enc + r * rb);
                tk_row_decode(dt, enc + r * rb, dim, dec + r * dim);
            }
            off[0] = 0;
            for (size_t b = 0; b < nb; b++) off[b + 1] = off[b] + (int64_t)(b % 5 == 2 ? 0 : tk_rand(&s) % 15);
            const size_t n = (size_t)off[nb];
            for (size_t i = 0; i < n; i++) {
                ids32[i] = (int32_t)(ids64[i] = (int64_t)(tk_rand(&s) % rows));
                psw[i] = (float)((int)(tk_rand(&s) % 2001) - 1000) / 256.0f;
            }
            float *ref = malloc(nb * dim * sizeof(float)), *got = malloc(nb * dim * sizeof(float));
            assert_non_null(ref);
            assert_non_null(got);
            for (int mode = 0; mode < 2; mode++)
                for (int wk = 0; wk < 3; wk++) { /* 0: no weights, 1: fused, 2: unfused */
                    if (mode == 1 && wk) continue;
                    for (int64_t pad = -1; pad < 2; pad += 2)
                        for (int idw = 4; idw <= 8; idw += 4) {
                            const void *ids = idw == 8 ? (const void *)ids64 : (const void *)ids32;
                            forced_isa = TK_ISA_PORTABLE;
                            tk_fill_sentinel(ref, nb * dim);
                            tk_bags_forward(enc, rb, dt, dim, ids, idw, off, 0, nb, mode, wk ? psw : NULL, wk == 1, pad,
                                            0, ref);
                            for (int isa = TK_ISA_AVX2; isa <= TK_ISA_AVX512; isa++) {
                                if (!cpu_has(isa)) continue;
                                forced_isa = isa;
                                tk_fill_sentinel(got, nb * dim);
                                tk_bags_forward(enc, rb, dt, dim, ids, idw, off, 0, nb, mode, wk ? psw : NULL, wk == 1,
                                                pad, isa == TK_ISA_AVX512, got); /* either prefetch level */
                                if (memcmp(ref, got, nb * dim * sizeof(float)))
                                    fail_msg("bags dtype %d dim %zu mode %d weights %d pad %lld idw %d: isa %d "
                                             "differs from portable",
                                             (int)dt, dim, mode, wk, (long long)pad, idw, isa);
                                /* the bags of a thread's chunk [b0, b1) equal the same bags of the whole call
                                 * (the small-row path groups bags from b0 and prefetches up to offsets[b1]) */
                                tk_fill_sentinel(got, nb * dim);
                                for (size_t b0 = 0, b1 = 3; b0 < nb; b0 = b1, b1 = b1 + 5 < nb ? b1 + 5 : nb)
                                    tk_bags_forward(enc, rb, dt, dim, ids, idw, off, b0, b1, mode, wk ? psw : NULL,
                                                    wk == 1, pad, 1, got);
                                if (memcmp(ref, got, nb * dim * sizeof(float)))
                                    fail_msg("bags dtype %d dim %zu mode %d weights %d pad %lld idw %d: isa %d in "
                                             "chunks differs from one call",
                                             (int)dt, dim, mode, wk, (long long)pad, idw, isa);
                            }
                            forced_isa = TK_ISA_PORTABLE;
                            if (mode == 0 && wk == 0 && pad < 0)
                                for (size_t b = 0; b < nb; b++)
                                    for (size_t c = 0; c < dim; c++) {
                                        float acc = 0.0f;
                                        for (int64_t j = off[b]; j < off[b + 1]; j++) {
                                            const uint8_t *row = enc + (size_t)ids64[j] * rb;
                                            if (dt == TOKEMB_Q8_ROW) { /* torch's embedding_bag_byte step */
                                                float sc, bi;
                                                memcpy(&sc, row + dim, 4);
                                                memcpy(&bi, row + dim + 4, 4);
                                                acc = fmaf(sc, (float)row[c], acc + bi);
                                            } else {
                                                acc = acc + dec[(size_t)ids64[j] * dim + c];
                                            }
                                        }
                                        if (memcmp(&acc, &ref[b * dim + c], 4))
                                            fail_msg("dtype %d bag %zu col %zu: %g, naive loop %g", (int)dt, b, c,
                                                     (double)ref[b * dim + c], (double)acc);
                                    }
                        }
                }
            free(ref);
            free(got);
            free(table);
            free(dec);
            free(enc);
        }
}

/* RoPE rotation, NEOX and GPTJ, forward and backward, partial pair ranges and strided heads: AVX2 equals
 * the portable loop bit for bit, and both equal the documented float32 formula */
static void test_rope_isa_bitwise(void **state) {
    (void)state;
    uint64_t s = 777;
    static const size_t halves[] = {1, 2, 3, 4, 5, 8, 12, 16, 17, 32, 64, 65, 100, 150};
    for (size_t hi = 0; hi < sizeof halves / sizeof halves[0]; hi++) {
        const size_t half = halves[hi], heads = 3, stride = 2 * half + 5;
        float *x0 = malloc(heads * stride * sizeof(float)), *a = malloc(heads * stride * sizeof(float)),
              *b = malloc(heads * stride * sizeof(float)), cs[150], sn[150];
        assert_non_null(x0);
        assert_non_null(a);
        assert_non_null(b);
        fill_finite(x0, heads * stride, &s);
        for (size_t k = 0; k < half; k++) {
            cs[k] = cosf((float)k * 0.37f + 0.1f);
            sn[k] = sinf((float)k * 0.37f + 0.1f);
        }
        for (int layout = 0; layout < 2; layout++)
            for (int bw = 0; bw < 2; bw++)
                for (size_t p0 = 0; p0 < half; p0 += (half > 4 ? 3 : 1)) {
                    const size_t np = half - p0;
                    memcpy(a, x0, heads * stride * sizeof(float));
                    forced_isa = TK_ISA_PORTABLE;
                    tk_rope_rotate_f32(a, heads, stride, layout, half, p0, np, cs, sn, bw);
                    for (size_t h = 0; h < heads; h++)
                        for (size_t k = 0; k < np; k++) {
                            size_t ia = layout == 0 ? p0 + k : 2 * (p0 + k), ib = layout == 0 ? ia + half : ia + 1;
                            float xa = x0[h * stride + ia], xb = x0[h * stride + ib], c = cs[k], sv = sn[k];
                            float ra = bw ? xa * c + xb * sv : xa * c - xb * sv;
                            float rb = bw ? xb * c - xa * sv : xb * c + xa * sv;
                            if (memcmp(&ra, &a[h * stride + ia], 4) || memcmp(&rb, &a[h * stride + ib], 4))
                                fail_msg(
                                    "rope portable half %zu layout %d bw %d head %zu pair %zu differs from the formula",
                                    half, layout, bw, h, p0 + k);
                        }
                    for (int isa = TK_ISA_AVX2; isa <= TK_ISA_AVX512; isa++) {
                        if (!cpu_has(isa)) continue;
                        forced_isa = isa;
                        memcpy(b, x0, heads * stride * sizeof(float));
                        tk_rope_rotate_f32(b, heads, stride, layout, half, p0, np, cs, sn, bw);
                        if (memcmp(a, b, heads * stride * sizeof(float)))
                            fail_msg("rope half %zu layout %d backward %d pair0 %zu: isa %d differs from portable",
                                     half, layout, bw, p0, isa);
                    }
                    forced_isa = TK_ISA_PORTABLE;
                }
        free(x0);
        free(a);
        free(b);
    }
}

/* the validation scan finds exactly the first id outside [0, rows) (negative, == rows, extremes), in any
 * block, on every ISA, for int64 and int32 ids (including rows beyond the int32 range) */
static size_t naive_first_bad(const void *ids, int w, size_t n, int64_t rows) {
    for (size_t i = 0; i < n; i++) {
        int64_t id = w == 8 ? ((const int64_t *)ids)[i] : ((const int32_t *)ids)[i];
        if (id < 0 || id >= rows) return i;
    }
    return n;
}

/* RoPE cos/sin (tk_rope_cos_sin_f32): the AVX2 sincos against long double at positions up to 2^24 and
 * beyond (within one float ulp of the correctly rounded value, or 1e-9 absolute near a zero where the
 * double angle's own rounding dominates), against libm (the portable path: at most a handful of
 * last-bit differences), angles above 2^30 rad equal to libm bit for bit, and every value independent
 * of how the pairs are grouped into calls. */
static void test_rope_cos_sin_accuracy(void **state) {
    (void)state;
    enum { HALF = 67 }; /* not a multiple of 4: the padded tail vector */
    double inv[HALF];
    for (int i = 0; i < HALF; i++) inv[i] = pow(10000.0, -(double)(2 * i) / (2 * HALF));
    inv[HALF - 1] = 3.7; /* a frequency above 1 */
    uint64_t s = 4242;
    float c[HALF], sn[HALF], cl[HALF], sl[HALF], c1[HALF], s1[HALF];
    size_t differ = 0, total = 0;
    for (int it = 0; it < 3000; it++) {
        double p;
        if (it < 1000) p = it;
        else if (it < 2900) p = floor(ldexp((double)(tk_rand(&s) >> 11), -53) * 16777216.0);
        else p = (double)((int64_t)1 << 40) + (double)(tk_rand(&s) >> 20); /* angles beyond 2^30 rad */
        double A = it % 7 == 0 ? 1.25 : 1.0;
        forced_isa = TK_ISA_PORTABLE;
        tk_rope_cos_sin_f32(inv, A, p, HALF, cl, sl);
        if (!cpu_has(TK_ISA_AVX2)) continue;
        forced_isa = TK_ISA_AVX2;
        tk_rope_cos_sin_f32(inv, A, p, HALF, c, sn);
        for (int k = 0; k < HALF; k++) { /* one pair at a time: the same bits */
            tk_rope_cos_sin_f32(inv + k, A, p, 1, c1 + k, s1 + k);
            if (memcmp(c1 + k, c + k, 4) || memcmp(s1 + k, sn + k, 4))
                fail_msg("p=%.17g k=%d: grouping changes bits", p, k);
        }
        for (int k = 0; k < HALF; k++) {
            double phi = p * inv[k];
            long double rc = (long double)A * cosl((long double)phi), rs = (long double)A * sinl((long double)phi);
            float fc = (float)rc, fs = (float)rs;
            if ((fabsf(c[k] - fc) > nextafterf(fabsf(fc), INFINITY) - fabsf(fc) && fabsl(c[k] - rc) > 1e-9L) ||
                (fabsf(sn[k] - fs) > nextafterf(fabsf(fs), INFINITY) - fabsf(fs) && fabsl(sn[k] - rs) > 1e-9L))
                fail_msg("p=%.17g k=%d: cos %.9g vs %.9g, sin %.9g vs %.9g", p, k, (double)c[k], (double)fc,
                         (double)sn[k], (double)fs);
            if (phi > 1073741824.0 && (memcmp(c + k, cl + k, 4) || memcmp(sn + k, sl + k, 4)))
                fail_msg("p=%.17g k=%d: angle beyond 2^30 must take libm's values", p, k);
            differ += (size_t)(memcmp(c + k, cl + k, 4) != 0) + (size_t)(memcmp(sn + k, sl + k, 4) != 0);
            total += 2;
        }
    }
    forced_isa = TK_ISA_PORTABLE;
    if (differ * 10000 > total) fail_msg("%zu of %zu values differ from libm's", differ, total);
}

static void test_ids_scan(void **state) {
    (void)state;
    enum { N = 5000 };
    static int64_t i64[N];
    static int32_t i32[N];
    uint64_t s = 31;
    static const int64_t rows_list[] = {1, 7, 50257, INT32_MAX, (int64_t)1 << 31, (int64_t)1 << 40};
    static const int64_t bad64[] = {-1, INT64_MIN, 0 /* = rows */, INT64_MAX};
    static const size_t where[] = {0, 1, 2047, 2048, 2049, 4999, N};
    for (int isa = TK_ISA_PORTABLE; isa <= TK_ISA_AVX512; isa++) {
        if (!cpu_has(isa)) continue;
        forced_isa = isa;
        for (size_t ri = 0; ri < sizeof rows_list / sizeof rows_list[0]; ri++) {
            const int64_t rows = rows_list[ri];
            const int64_t r32 = rows < INT32_MAX ? rows : INT32_MAX;
            for (size_t i = 0; i < N; i++) {
                i64[i] = (int64_t)(tk_rand(&s) % (uint64_t)rows);
                i32[i] = (int32_t)(tk_rand(&s) % (uint64_t)r32);
            }
            for (size_t wi = 0; wi < sizeof where / sizeof where[0]; wi++)
                for (size_t bi = 0; bi < 4; bi++) {
                    size_t at = where[wi];
                    int64_t save64 = 0;
                    int32_t save32 = 0;
                    if (at < N) {
                        save64 = i64[at];
                        save32 = i32[at];
                        i64[at] = bi == 2 ? rows : bad64[bi];
                        i32[at] = bi == 2 ? (rows <= INT32_MAX ? (int32_t)rows : -5) : (bi == 1 ? INT32_MIN : -1);
                        if (at + 3 < N) i64[at + 3] = -7; /* a later offender must not be reported */
                    }
                    assert_int_equal(tk_ids_first_bad(i64, 8, N, rows), naive_first_bad(i64, 8, N, rows));
                    assert_int_equal(tk_ids_first_bad(i32, 4, N, rows), naive_first_bad(i32, 4, N, rows));
                    if (at < N) {
                        assert_int_equal(tk_ids_first_bad(i64, 8, N, rows), at);
                        i64[at] = save64;
                        i32[at] = save32;
                        if (at + 3 < N) i64[at + 3] = 0;
                    }
                }
            assert_int_equal(tk_ids_first_bad(i64, 8, 0, rows), 0);
        }
    }
    forced_isa = TK_ISA_PORTABLE;
}

/* tokemb_use_host_openmp in a process without an OpenMP runtime (this test links none): refused with
 * a message saying what was looked for, and the pool keeps running the loops. */
static void test_host_openmp_absent(void **state) {
    (void)state;
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_use_host_openmp(), "no OpenMP runtime (libgomp*, libomp*, libiomp*)");
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(1000, 512, TOKEMB_F32, &t));
    const size_t n = 4096; /* 8 MiB of output: split across threads */
    int64_t *ids = malloc(n * sizeof *ids);
    float *out = malloc(n * 512 * sizeof *out);
    assert_non_null(ids);
    assert_non_null(out);
    float *w = tokemb_table_data(t);
    for (size_t i = 0; i < 1000 * 512; i++) w[i] = (float)i;
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)((i * 7919) % 1000);
    TK_OK(tokemb_set_num_threads(2));
    TK_OK(tokemb_lookup(t, ids, n, out));
    for (size_t i = 0; i < n; i++) assert_memory_equal(out + i * 512, w + ids[i] * 512, 512 * sizeof(float));
    TK_OK(tokemb_set_num_threads(0));
    free(ids);
    free(out);
    tokemb_table_free(t);
}

static void test_nontemporal_param(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(4, 8, TOKEMB_F32, &t));
    int64_t v = -1;
    TK_OK(tokemb_table_get_param(t, TOKEMB_NONTEMPORAL, &v));
    assert_int_equal(v, 2); /* default: auto */
    TK_OK(tokemb_table_set_param(t, TOKEMB_NONTEMPORAL, 0));
    TK_OK(tokemb_table_get_param(t, TOKEMB_NONTEMPORAL, &v));
    assert_int_equal(v, 0);
    TK_OK(tokemb_table_set_param(t, TOKEMB_NONTEMPORAL, 2));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_set_param(t, TOKEMB_NONTEMPORAL, 3), "nontemporal");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_set_param(t, TOKEMB_NONTEMPORAL, -1), "got -1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_set_param_f64(t, TOKEMB_NONTEMPORAL, 1.0), "int64");
    TK_OK(tokemb_table_get_param(t, TOKEMB_NONTEMPORAL, &v));
    assert_int_equal(v, 2);
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_portable_matches_naive),
        cmocka_unit_test(test_avx2_matches_naive),
        cmocka_unit_test(test_avx512_matches_naive),
        cmocka_unit_test(test_dispatch_each_isa),
        cmocka_unit_test(test_lookup_thread_count_independence),
        cmocka_unit_test(test_bag_sum_isa_bitwise),
        cmocka_unit_test(test_rope_isa_bitwise),
        cmocka_unit_test(test_rope_cos_sin_accuracy),
        cmocka_unit_test(test_ids_scan),
        cmocka_unit_test(test_nontemporal_param),
        cmocka_unit_test(test_host_openmp_absent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
