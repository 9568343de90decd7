/* test_lookup.c - gather, int32 ids, strided output, one-hot sgemm path, validation. */
#include "tk_test.h"

#include <math.h>
#include <stdlib.h>

static tokemb_table *make_table(int64_t rows, int64_t dim) {
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &t));
    float *d = tokemb_table_data(t);
    for (int64_t i = 0; i < rows * dim; i++) d[i] = (float)i * 0.5f - 3.0f;
    return t;
}

static void test_lookup_rows(void **state) {
    (void)state;
    tokemb_table *t = make_table(10, 4);
    const int64_t ids[5] = {2, 3, 5, 1, 2};
    const int32_t ids32[5] = {2, 3, 5, 1, 2};
    float out[5 * 4], out32[5 * 4];
    TK_OK(tokemb_lookup(t, ids, 5, out));
    TK_OK(tokemb_lookup_i32(t, ids32, 5, out32));
    for (int i = 0; i < 5; i++)
        for (int c = 0; c < 4; c++) assert_true(out[i * 4 + c] == (float)(ids[i] * 4 + c) * 0.5f - 3.0f);
    assert_memory_equal(out, out32, sizeof out);
    TK_OK(tokemb_lookup(t, NULL, 0, NULL)); /* n == 0: nothing to do */
    tokemb_table_free(t);
}

static void test_lookup_strided(void **state) {
    (void)state;
    tokemb_table *t = make_table(6, 3);
    const int64_t ids[3] = {5, 0, 4};
    float out[3 * 5];
    tk_fill_sentinel(out, 15);
    uint64_t gap_sum = 0;
    TK_OK(tokemb_lookup_strided(t, ids, 3, out, 5));
    for (int i = 0; i < 3; i++) {
        assert_memory_equal(out + 5 * i, tokemb_table_data(t) + 3 * ids[i], 3 * sizeof(float));
        gap_sum += tk_checksum(out + 5 * i + 3, 2 * sizeof(float));
    }
    float sentinel[2];
    tk_fill_sentinel(sentinel, 2);
    assert_true(gap_sum == 3 * tk_checksum(sentinel, sizeof sentinel));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_strided(t, ids, 3, out, 2), "out_row_stride = 2");
    tokemb_table_free(t);
}

static void test_lookup_errors_leave_output(void **state) {
    (void)state;
    tokemb_table *t = make_table(7, 2);
    float out[4 * 2];
    tk_fill_sentinel(out, 8);
    const uint64_t before = tk_checksum(out, sizeof out);
    const uint64_t table_before = tk_checksum(tokemb_table_data(t), 14 * sizeof(float));
    const int64_t bad_hi[4] = {0, 1, 6, 7};
    const int64_t bad_neg[4] = {-1, 1, 2, 3};
    const int32_t bad32[4] = {0, 1, 2, 70000};
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup(t, bad_hi, 4, out), "token id 7 at index 3 is outside [0, 7)");
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup(t, bad_neg, 4, out), "token id -1 at index 0");
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup_i32(t, bad32, 4, out), "token id 70000 at index 3");
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup_onehot(t, bad_hi, 4, out), "token id 7 at index 3");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup(NULL, bad_hi, 4, out), "table is NULL");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup(t, NULL, 4, out), "ids is NULL");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup(t, bad_hi, 4, NULL), "out is NULL");
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_lookup(t, bad_hi, SIZE_MAX / 4, out), "overflows");
    assert_true(tk_checksum(out, sizeof out) == before);
    assert_true(tk_checksum(tokemb_table_data(t), 14 * sizeof(float)) == table_before);
    tokemb_table_free(t);
}

/* Large calls check their ids in parallel ranges: the error still names the first bad id (the smallest
 * index any range found), for every thread count, and nothing is written. */
static void test_lookup_errors_many_ids(void **state) {
    (void)state;
    const size_t n = 200000;
    tokemb_table *t = make_table(7, 2);
    int64_t *ids = calloc(n, sizeof *ids);
    int32_t *ids32 = calloc(n, sizeof *ids32);
    float *out = malloc(n * 2 * sizeof *out);
    ids[150001] = 9, ids[70003] = -2, ids[199999] = 7; /* bad ids in different ranges */
    ids32[150001] = 9, ids32[70003] = 8;
    tk_fill_sentinel(out, n * 2);
    const uint64_t before = tk_checksum(out, n * 2 * sizeof *out);
    const int threads[4] = {1, 2, 3, 8};
    for (int k = 0; k < 4; k++) {
        TK_OK(tokemb_set_num_threads(threads[k]));
        TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup(t, ids, n, out), "token id -2 at index 70003 is outside");
        TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup_i32(t, ids32, n, out), "token id 8 at index 70003");
        ids[70003] = 0;
        TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup(t, ids, n, out), "token id 9 at index 150001");
        ids[70003] = -2;
        assert_true(tk_checksum(out, n * 2 * sizeof *out) == before);
    }
    TK_OK(tokemb_set_num_threads(0));
    free(ids), free(ids32), free(out);
    tokemb_table_free(t);
}

/* max_norm: the referenced rows above the limit are scaled by (float)(max_norm / (norm + 1e-7)). */
static void test_max_norm(void **state) {
    (void)state;
    float w[3 * 4] = {3, 3, 3, 3, 0.1f, 0.1f, 0.1f, 0.1f, 4, 0, 0, 3};
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_wrap(w, 3, 4, 4, TOKEMB_F32, 0, &t));
    TK_OK(tokemb_table_set_param_f64(t, TOKEMB_MAX_NORM, 1.0));
    const int64_t ids[3] = {0, 1, 0};
    float out[12];
    TK_OK(tokemb_lookup(t, ids, 3, out));
    /* reference section 1.5: row (3,3,3,3) with max_norm 1 -> 0.49999997 each */
    const float expect = 3.0f * (float)(1.0 / (6.0 + 1e-7));
    for (int c = 0; c < 4; c++) {
        assert_true(w[c] == expect);
        assert_true(out[c] == expect && out[8 + c] == expect);
        assert_true(w[4 + c] == 0.1f); /* norm 0.2 <= 1: untouched */
    }
    assert_true(fabsf(expect - 0.49999997f) == 0.0f);
    assert_true(w[8] == 4 && w[11] == 3); /* row 2 not referenced: untouched although its norm is 5 */

    float ro[4] = {5, 5, 5, 5};
    tokemb_table *r = NULL;
    TK_OK(tokemb_table_wrap(ro, 1, 4, 4, TOKEMB_F32, TOKEMB_WRAP_READONLY, &r));
    TK_OK(tokemb_table_set_param_f64(r, TOKEMB_MAX_NORM, 1.0));
    const int64_t zero = 0;
    TK_EXPECT_STATUS(TOKEMB_READ_ONLY, tokemb_lookup(r, &zero, 1, out), "read-only");
    assert_true(ro[0] == 5);
    tokemb_table_free(r);
    tokemb_table_free(t);
}

/* The one-hot sgemm path equals the gather bit for bit, across chunk boundaries. */
static void test_onehot_equals_gather(void **state) {
    (void)state;
    const int64_t rows = 3000, dim = 37; /* 2^20 / 3000 = 349 tokens per chunk */
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, 9, 0.0, 1.0));
    const size_t n = 1000;
    int64_t *ids = malloc(n * sizeof *ids);
    float *a = malloc(n * dim * sizeof *a), *b = malloc(n * dim * sizeof *b);
    assert_non_null(ids);
    assert_non_null(a);
    assert_non_null(b);
    uint64_t s = 99;
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)(tk_rand(&s) % (uint64_t)rows);
    TK_OK(tokemb_lookup(t, ids, n, a));
    TK_OK(tokemb_lookup_onehot(t, ids, n, b));
    assert_memory_equal(a, b, n * dim * sizeof(float));
    free(ids);
    free(a);
    free(b);
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_rows),
        cmocka_unit_test(test_lookup_strided),
        cmocka_unit_test(test_lookup_errors_leave_output),
        cmocka_unit_test(test_lookup_errors_many_ids),
        cmocka_unit_test(test_max_norm),
        cmocka_unit_test(test_onehot_equals_gather),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
