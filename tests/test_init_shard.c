/* test_init_shard.c - torch-exact initialisation of a part of a table without drawing the whole
 * random stream (src/kernels/rng_torch.c: MT19937 jump-ahead; tokemb_table_init_normal_shard).
 *
 *  - the engine: Berlekamp-Massey finds a degree-19937 characteristic polynomial; a jump by k equals
 *    k plain draws (k from 0 to 2^26, from block boundaries and from inside a block); jumps compose
 *    (2^32 + 2^32 + 17 = 2^33 + 17, 2^40); the C++ standard's check value (the 10000th output of
 *    std::mt19937 with the default seed 5489 is 4123659995) reached by a jump;
 *  - the fill: every part (row blocks, round-robin rows, column slices, the tail refill, tensors of
 *    fewer than 16 values) equals the same positions of the full fill, bit for bit, whether every gap
 *    is jumped, none is, or the library chooses;
 *  - far parts against torch: rows of torch.manual_seed(7); nn.Embedding(2^20 + 3, 67) (70 million
 *    values: the middle row and the last row, inside the tail refill) recorded from torch 1.13.1;
 *  - a jump of about 8.8e9 draws (a [2^27 + 3, 67] table, never materialised) equals two chained ones;
 *  - the public function: equal to tokemb_table_init_normal's rows, strided tables, padding, errors.
 *
 * The kernel translation unit is compiled into this test (its engine is internal to the library). */
#define _GNU_SOURCE /* M_PI in the included kernel, as the library is built */
#include "tk_test.h"

#include "../src/kernels/rng_torch.c"

#include <stdlib.h>

static void ensure_poly(void) { pthread_once(&tk_mt_poly_once, tk_mt_poly_compute); }

static void test_characteristic_polynomial(void **state) {
    (void)state;
    ensure_poly();
    assert_true(tk_mt_poly_ok);
    assert_true(tk_mt_poly[0] & 1u);                                   /* F is invertible: p(0) = 1 */
    assert_true(tk_mt_poly[TK_MT_DEG >> 6] >> (TK_MT_DEG & 63) == 1u); /* monic, degree 19937 */
    /* C++ [rand.predef]: the 10000th output of a default-constructed std::mt19937 is 4123659995 */
    tk_mt g;
    tk_mt_seed(&g, 5489u);
    tk_mt_jump(&g, 9999);
    assert_int_equal(tk_mt_next(&g), 4123659995u);
}

static void expect_same_stream(tk_mt *a, tk_mt *b, const char *what, uint64_t k) {
    for (int j = 0; j < 2000; j++) {
        uint32_t x = tk_mt_next(a), y = tk_mt_next(b);
        if (x != y) fail_msg("%s k = %llu: output %d differs (%08x vs %08x)", what, (unsigned long long)k, j, x, y);
    }
}

static void test_jump_equals_advance(void **state) {
    (void)state;
    ensure_poly();
    const uint64_t ks[] = {0,    1,    2,     396,   397,   623,    624,     625,
                           1247, 1248, 19936, 19937, 19938, 100003, 1234567, (UINT64_C(1) << 26) + 12345};
    const uint64_t seeds[] = {0, 123, 0xffffffffu};
    for (size_t si = 0; si < 3; si++)
        for (size_t ki = 0; ki < sizeof ks / sizeof *ks; ki++) {
            uint64_t k = ks[ki];
            tk_mt a, b;
            tk_mt_seed(&a, seeds[si]);
            tk_mt_seed(&b, seeds[si]);
            for (uint64_t j = 0; j < k; j++) tk_mt_next(&a);
            tk_mt_jump(&b, k);
            expect_same_stream(&a, &b, "jump from the seed", k);
            /* from inside a block: tk_mt_skip aligns to the block end, then jumps (forced) */
            if (k > 2000) continue;
            for (int pre = 1; pre < 1300; pre += 311) {
                tk_mt_seed(&a, seeds[si]);
                tk_mt_seed(&b, seeds[si]);
                for (int j = 0; j < pre; j++) {
                    tk_mt_next(&a);
                    tk_mt_next(&b);
                }
                for (uint64_t j = 0; j < k; j++) tk_mt_next(&a);
                tk_mt_jump_min = 1;
                tk_mt_skip(&b, k);
                tk_mt_jump_min = UINT64_C(1) << 22;
                expect_same_stream(&a, &b, "skip from inside a block", k);
            }
        }
}

static void test_jumps_compose(void **state) {
    (void)state;
    ensure_poly();
    tk_mt a, b;
    tk_mt_seed(&a, 42);
    tk_mt_seed(&b, 42);
    tk_mt_jump(&a, (UINT64_C(1) << 33) + 17);
    tk_mt_jump(&b, UINT64_C(1) << 32);
    tk_mt_jump(&b, (UINT64_C(1) << 32) + 17);
    expect_same_stream(&a, &b, "2^32 + (2^32 + 17)", UINT64_C(1) << 33);
    tk_mt_seed(&a, 42);
    tk_mt_seed(&b, 42);
    tk_mt_jump(&a, UINT64_C(1) << 40);
    for (int i = 0; i < 8; i++) tk_mt_jump(&b, UINT64_C(1) << 37);
    expect_same_stream(&a, &b, "8 x 2^37", UINT64_C(1) << 40);
}

/* every part of a [V, D] fill against the full fill, under a forced jump policy */
static void check_parts(uint64_t V, uint64_t D, uint64_t seed) {
    const uint64_t n = V * D;
    float *full = malloc((size_t)n * sizeof *full), *part = malloc((size_t)(V * (D + 2)) * sizeof *part);
    assert_non_null(full);
    assert_non_null(part);
    tk_torch_normal_f32(full, (size_t)n, seed, 0.25, 1.5);
    const uint64_t steps[] = {1, 2, 3, 7};
    for (size_t si = 0; si < 4; si++)
        for (uint64_t r0 = 0; r0 < V; r0 += 1 + V / 5) {
            uint64_t step = steps[si], max_rows = (V - 1 - r0) / step + 1;
            for (uint64_t c0 = 0; c0 < D; c0 += 1 + D / 3) {
                uint64_t dim = D - c0 > 5 && c0 > 0 ? D - c0 - 3 : D - c0;
                tk_fill_sentinel(part, (size_t)(V * (D + 2)));
                tk_torch_normal_f32_part(part, (size_t)dim + 2, (size_t)max_rows, (size_t)dim, V, D, r0, step, c0, seed,
                                         0.25, 1.5);
                for (uint64_t l = 0; l < max_rows; l++) {
                    const float *want = full + (r0 + l * step) * D + c0, *got = part + l * (dim + 2);
                    if (memcmp(want, got, (size_t)dim * sizeof(float)) != 0)
                        fail_msg("[%llu, %llu] seed %llu: row %llu (row0 %llu step %llu col0 %llu dim %llu) differs",
                                 (unsigned long long)V, (unsigned long long)D, (unsigned long long)seed,
                                 (unsigned long long)(r0 + l * step), (unsigned long long)r0, (unsigned long long)step,
                                 (unsigned long long)c0, (unsigned long long)dim);
                }
            }
        }
    free(full);
    free(part);
}

static void test_parts_equal_full_fill(void **state) {
    (void)state;
    ensure_poly();
    const uint64_t shapes[][2] = {{1, 1},   {1, 5},    {3, 5},   {2, 7},  {6, 3},    {1, 16},   {16, 1},
                                  {17, 1},  {4, 9},    {2, 8},   {5, 16}, {10, 10},  {100, 37}, {33, 64},
                                  {7, 130}, {250, 17}, {1, 100}, {2, 33}, {1000, 3}, {129, 31}};
    const uint64_t policies[] = {1, UINT64_C(1) << 22, UINT64_MAX};
    for (size_t p = 0; p < 3; p++) {
        tk_mt_jump_min = policies[p];
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) check_parts(shapes[s][0], shapes[s][1], 123 + s);
    }
    tk_mt_jump_min = UINT64_C(1) << 22;
}

/* torch 1.13.1: torch.manual_seed(7); w = nn.Embedding(2**20 + 3, 67).weight (n % 16 = 9) */
#define FAR_V ((INT64_C(1) << 20) + 3)
#define FAR_D 67
static const struct {
    int64_t row;
    uint32_t head[8], tail[8];
    uint64_t fnv;
} far_rows[] = {
    {524290,
     {0x3fbf16ab, 0xbee0fbfe, 0xbf31314f, 0x3e0b8470, 0x401cc1f6, 0xbf977b37, 0x3f91b3e0, 0xbf3a5dbf},
     {0xbe030196, 0xbf92794f, 0x3f71806a, 0x3e5f346a, 0xbfb8a679, 0xbdb70070, 0x3e261aed, 0xbebc2e94},
     0x2070848af1b0e1e1ull},
    {1048578,
     {0x3ee437f5, 0xbfb21d9e, 0xbe6519ae, 0x3eedb5c9, 0xbed7ee51, 0x3f34278a, 0x3f96bb4d, 0x3e1b750b},
     {0x3ebb8db4, 0xc00491b3, 0x3f5eeb5a, 0x3f814bd1, 0xbea31a76, 0x3fcfafaa, 0xbf6a8521, 0x3d7b7dde},
     0x6201ed86efe5a9fdull},
};

static void expect_far_row(const float *row, size_t k) {
    uint32_t bits[FAR_D];
    memcpy(bits, row, sizeof bits);
    for (int c = 0; c < 8; c++) {
        assert_int_equal(bits[c], far_rows[k].head[c]);
        assert_int_equal(bits[FAR_D - 8 + c], far_rows[k].tail[c]);
    }
    assert_true(tk_checksum(row, sizeof bits) == far_rows[k].fnv);
}

static void test_far_rows_match_torch(void **state) {
    (void)state;
    for (size_t k = 0; k < 2; k++) {
        tokemb_table *t = NULL;
        TK_OK(tokemb_table_create(1, FAR_D, TOKEMB_F32, &t));
        TK_OK(tokemb_table_init_normal_shard(t, 7, 0.0, 1.0, FAR_V, FAR_D, far_rows[k].row, 1, 0));
        expect_far_row(tokemb_table_data(t), k);
        tokemb_table_free(t);
        /* the slow reference: the kernel advancing through all 3.5e7 / 7e7 draws */
        float row[FAR_D];
        tk_mt_jump_min = UINT64_MAX;
        tk_torch_normal_f32_part(row, FAR_D, 1, FAR_D, FAR_V, FAR_D, (uint64_t)far_rows[k].row, 1, 0, 7, 0.0, 1.0);
        tk_mt_jump_min = UINT64_C(1) << 22;
        expect_far_row(row, k);
    }
    /* both rows in one call (row_step), and a column slice of the last one */
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(2, FAR_D, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal_shard(t, 7, 0.0, 1.0, FAR_V, FAR_D, far_rows[0].row,
                                         far_rows[1].row - far_rows[0].row, 0));
    expect_far_row(tokemb_table_data(t), 0);
    expect_far_row(tokemb_table_data(t) + FAR_D, 1);
    tokemb_table_free(t);
    TK_OK(tokemb_table_create(1, 8, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal_shard(t, 7, 0.0, 1.0, FAR_V, FAR_D, far_rows[1].row, 1, FAR_D - 8));
    assert_memory_equal(tokemb_table_data(t), far_rows[1].tail, 8 * sizeof(float));
    tokemb_table_free(t);
}

/* A [2^27 + 3, 67] table (8.8e9 values, never materialised): its middle and last rows reached by one
 * jump from the seed equal the same rows reached by a chain of jumps through other rows. */
static void test_very_far_rows_compose(void **state) {
    (void)state;
    const uint64_t V = (UINT64_C(1) << 27) + 3, D = 67, last = V - 1, mid = V / 2 + 5;
    float direct[2][67], chained[3][67];
    tk_torch_normal_f32_part(direct[0], D, 1, D, V, D, mid, 1, 0, 99, 0.0, 1.0);
    tk_torch_normal_f32_part(direct[1], D, 1, D, V, D, last, 1, 0, 99, 0.0, 1.0);
    const uint64_t step = (last - 1000) / 2; /* rows 1000, 1000 + step, last */
    tk_torch_normal_f32_part(chained[0], D, 3, D, V, D, 1000, step, 0, 99, 0.0, 1.0);
    assert_memory_equal(direct[1], chained[2], sizeof direct[1]);
    tk_torch_normal_f32_part(chained[0], D, 2, D, V, D, mid - 12345, 12345, 0, 99, 0.0, 1.0);
    assert_memory_equal(direct[0], chained[1], sizeof direct[0]);
    /* values of a standard normal, not an all-zero state */
    int nonzero = 0;
    for (int c = 0; c < 67; c++) nonzero += direct[1][c] != 0.0f && direct[1][c] > -7.0f && direct[1][c] < 7.0f;
    assert_int_equal(nonzero, 67);
}

static void test_api_equals_full_init(void **state) {
    (void)state;
    const int64_t V = 37, D = 21;
    tokemb_table *full = NULL;
    TK_OK(tokemb_table_create(V, D, TOKEMB_F32, &full));
    TK_OK(tokemb_table_init_normal(full, 2024, -0.5, 0.02));
    const float *f = tokemb_table_data(full);
    for (int64_t P = 1; P <= 4; P++)
        for (int64_t r = 0; r < P; r++) {
            /* round-robin rows r, r + P, ... */
            int64_t nr = (V - r + P - 1) / P;
            tokemb_table *s = NULL;
            TK_OK(tokemb_table_create(nr, D, TOKEMB_F32, &s));
            TK_OK(tokemb_table_init_normal_shard(s, 2024, -0.5, 0.02, V, D, r, P, 0));
            for (int64_t l = 0; l < nr; l++)
                assert_memory_equal(tokemb_table_data(s) + l * D, f + (r + l * P) * D, D * sizeof(float));
            tokemb_table_free(s);
            /* column slice r of P */
            int64_t c0 = D * r / P, c1 = D * (r + 1) / P;
            TK_OK(tokemb_table_create(V, c1 - c0, TOKEMB_F32, &s));
            TK_OK(tokemb_table_init_normal_shard(s, 2024, -0.5, 0.02, V, D, 0, 1, c0));
            for (int64_t g = 0; g < V; g++)
                assert_memory_equal(tokemb_table_data(s) + g * (c1 - c0), f + g * D + c0, (c1 - c0) * sizeof(float));
            tokemb_table_free(s);
        }
    /* a strided wrap: gaps untouched; the table's own padding row (a local index) zeroed */
    float buf[5 * 24];
    tk_fill_sentinel(buf, 5 * 24);
    tokemb_table *w = NULL;
    TK_OK(tokemb_table_wrap(buf, 5, D, 24, TOKEMB_F32, 0, &w));
    TK_OK(tokemb_table_set_param(w, TOKEMB_PADDING_IDX, 1));
    TK_OK(tokemb_table_init_normal_shard(w, 2024, -0.5, 0.02, V, D, 30, 1, 0));
    for (int64_t l = 0; l < 5; l++) {
        if (l == 1) {
            for (int64_t c = 0; c < D; c++) assert_true(buf[24 + c] == 0.0f);
        } else {
            assert_memory_equal(buf + l * 24, f + (30 + l) * D, D * sizeof(float));
        }
        uint32_t gap;
        memcpy(&gap, buf + l * 24 + D, 4);
        assert_int_equal(gap, 0x7fc0beefu);
    }
    tokemb_table_free(w);
    tokemb_table_free(full);
}

static void test_api_errors_leave_table(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(4, 6, TOKEMB_F32, &t));
    float *d = tokemb_table_data(t);
    tk_fill_sentinel(d, 24);
    uint64_t sum = tk_checksum(d, 24 * sizeof(float));
#define BAD(st, call, needle)                                   \
    do {                                                        \
        TK_EXPECT_STATUS(st, call, needle);                     \
        assert_true(tk_checksum(d, 24 * sizeof(float)) == sum); \
    } while (0)
    BAD(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_normal_shard(NULL, 1, 0, 1, 10, 6, 0, 1, 0), "NULL");
    BAD(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_normal_shard(t, 1, 0, -1, 10, 6, 0, 1, 0), "std = -1");
    BAD(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_normal_shard(t, 1, NAN, 1, 10, 6, 0, 1, 0), "mean = nan");
    BAD(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_normal_shard(t, 1, 0, 1, 0, 6, 0, 1, 0), "global shape [0, 6]");
    BAD(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_normal_shard(t, 1, 0, 1, 10, 0, 0, 1, 0), "global shape [10, 0]");
    BAD(TOKEMB_OVERFLOW, tokemb_table_init_normal_shard(t, 1, 0, 1, INT64_C(1) << 40, INT64_C(1) << 30, 0, 1, 0),
        "more than 2^62");
    BAD(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_normal_shard(t, 1, 0, 1, 10, 6, -1, 1, 0), "row0 = -1");
    BAD(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_normal_shard(t, 1, 0, 1, 10, 6, 10, 1, 0), "row0 = 10");
    BAD(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_normal_shard(t, 1, 0, 1, 10, 6, 0, 0, 0), "row_step = 0");
    BAD(TOKEMB_OUT_OF_RANGE, tokemb_table_init_normal_shard(t, 1, 0, 1, 10, 6, 7, 1, 0), "last global row 9");
    BAD(TOKEMB_OUT_OF_RANGE, tokemb_table_init_normal_shard(t, 1, 0, 1, 10, 6, 1, 3, 0), "rows 1 + l * 3");
    BAD(TOKEMB_OUT_OF_RANGE, tokemb_table_init_normal_shard(t, 1, 0, 1, 10, 8, 0, 1, 3), "columns [3, 3 + 6)");
    BAD(TOKEMB_OUT_OF_RANGE, tokemb_table_init_normal_shard(t, 1, 0, 1, 10, 6, 0, 1, -1), "columns [-1");
    TK_OK(tokemb_table_init_normal_shard(t, 1, 0, 1, 10, 6, 6, 1, 0)); /* rows 6..9: the last fit */
    TK_OK(tokemb_table_init_normal_shard(t, 1, 0, 1, 10, 6, 0, 3, 0)); /* rows 0, 3, 6, 9 */
    tokemb_table_free(t);
    float buf[12] = {0};
    tokemb_table *ro = NULL, *q = NULL;
    TK_OK(tokemb_table_wrap(buf, 2, 6, 6, TOKEMB_F32, TOKEMB_WRAP_READONLY, &ro));
    TK_EXPECT_STATUS(TOKEMB_READ_ONLY, tokemb_table_init_normal_shard(ro, 1, 0, 1, 10, 6, 0, 1, 0), "read-only");
    tokemb_table_free(ro);
    TK_OK(tokemb_table_create(2, 6, TOKEMB_BF16, &q));
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_table_init_normal_shard(q, 1, 0, 1, 10, 6, 0, 1, 0), "F32");
    tokemb_table_free(q);
#undef BAD
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_characteristic_polynomial),
        cmocka_unit_test(test_jump_equals_advance),
        cmocka_unit_test(test_jumps_compose),
        cmocka_unit_test(test_parts_equal_full_fill),
        cmocka_unit_test(test_far_rows_match_torch),
        cmocka_unit_test(test_very_far_rows_compose),
        cmocka_unit_test(test_api_equals_full_init),
        cmocka_unit_test(test_api_errors_leave_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
