/* test_grad.c - tokemb_grad_accumulate / _coalesce / _onehot: golden sums in input order, padding,
 * scale_grad_by_freq (fused), untouched rows, thread-count invariance, multi-pass radix sort, errors. */
#include "tk_test.h"

#include <math.h>
#include <stdlib.h>

static float frand(uint64_t *s) { return (float)((double)(tk_rand(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0); }

/* Reference: sequential loop in input order (what torch's embedding_dense_backward computes). */
static void ref_dense(const int64_t *ids, size_t n, const float *g, size_t rows, size_t dim, int64_t pad, int sgbf,
                      float *out) {
    uint32_t *cnt = calloc(rows, sizeof *cnt);
    for (size_t i = 0; i < n; i++) cnt[ids[i]]++;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == pad) continue;
        float s = (float)(1.0 / (double)cnt[ids[i]]);
        for (size_t c = 0; c < dim; c++) {
            float *d = out + (size_t)ids[i] * dim + c;
            *d = sgbf ? fmaf(s, g[i * dim + c], *d) : *d + g[i * dim + c];
        }
    }
    free(cnt);
}

static void test_golden_padding(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(4, 2, TOKEMB_F32, &t));
    TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, 0));
    const int64_t ids[5] = {3, 1, 3, 0, 1};
    const float g[10] = {1e8f, 1, 1, 2, -1e8f, 3, 5, 5, 1, 4};
    float out[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    TK_OK(tokemb_grad_accumulate(t, ids, 5, g, out));
    /* row 3: (0 + 1e8) + -1e8 = 0 ; col 1: 1 + 3 = 4 ; row 1: 1 + 1 = 2, 2 + 4 = 6 ; row 0 (padding): 0 */
    const float expect[8] = {0, 0, 2, 6, 0, 0, 0, 4};
    assert_memory_equal(out, expect, sizeof expect);
    /* order matters: 1 + 1e8 - 1e8 in input order is 0 in float (1e8 + 1 rounds to 1e8) */
    const int64_t ids2[3] = {2, 2, 2};
    const float g2[6] = {1, 0, 1e8f, 0, -1e8f, 0};
    float out2[8] = {0};
    TK_OK(tokemb_grad_accumulate(t, ids2, 3, g2, out2));
    assert_true(out2[4] == 0.0f);
    tokemb_table_free(t);
}

/* The coalesced rows start from +0.0f as torch's zeroed dense gradient does: a single -0.0f contribution
 * gives +0.0f, with and without scale_grad_by_freq (the first step is 0 + g, not a copy of g). */
static void test_coalesce_signed_zero(void **state) {
    (void)state;
    for (int sgbf = 0; sgbf < 2; sgbf++) {
        tokemb_table *t = NULL;
        TK_OK(tokemb_table_create(4, 3, TOKEMB_F32, &t));
        TK_OK(tokemb_table_set_param(t, TOKEMB_SCALE_GRAD_BY_FREQ, sgbf));
        const int64_t ids[3] = {2, 1, 2};
        const float g[9] = {-0.0f, 1.5f, -0.0f, -0.0f, -2.0f, 0.25f, -0.0f, 3.0f, 0.0f};
        float dense[12] = {0}, rows[9];
        int64_t uid[3];
        size_t nu = 0;
        ref_dense(ids, 3, g, 4, 3, -1, sgbf, dense);
        TK_OK(tokemb_grad_coalesce(t, ids, 3, g, uid, rows, &nu));
        assert_int_equal(nu, 2);
        assert_int_equal(uid[0], 1);
        assert_int_equal(uid[1], 2);
        assert_memory_equal(rows, dense + 3, 6 * sizeof(float));
        assert_false(signbit(rows[0])); /* 0 + (-0) = +0 */
        tokemb_table_free(t);
    }
}

static void test_sgbf_fused(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(3, 1, TOKEMB_F32, &t));
    TK_OK(tokemb_table_set_param(t, TOKEMB_SCALE_GRAD_BY_FREQ, 1));
    const int64_t ids[4] = {1, 1, 1, 2};
    const float g[4] = {0.1f, 0.7f, 1.3f, 5.0f};
    float out[3] = {0, 0, 0};
    TK_OK(tokemb_grad_accumulate(t, ids, 4, g, out));
    float s = (float)(1.0 / 3.0), e = 0.0f;
    for (int i = 0; i < 3; i++) e = fmaf(s, g[i], e);
    assert_true(out[1] == e);
    assert_true(out[2] == 5.0f);
    assert_true(out[0] == 0.0f);
    tokemb_table_free(t);
}

/* Random Zipf-like ids: untouched rows keep their sentinel bytes, all thread counts agree, coalesce equals
 * dense, int32 equals int64, large vocabularies (multi-pass radix) work. */
static void check_random(size_t rows, size_t dim, size_t n, int64_t pad, int sgbf, uint64_t seed) {
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create((int64_t)rows, (int64_t)dim, TOKEMB_F32, &t));
    if (pad >= 0) TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, pad));
    TK_OK(tokemb_table_set_param(t, TOKEMB_SCALE_GRAD_BY_FREQ, sgbf));
    uint64_t s = seed;
    int64_t *ids = malloc(n * sizeof *ids);
    int32_t *ids32 = malloc(n * sizeof *ids32);
    float *g = malloc(n * dim * sizeof *g);
    for (size_t i = 0; i < n; i++) {
        uint64_t r = tk_rand(&s);
        ids[i] = (int64_t)((r % 7 == 0) ? (r >> 8) % rows : (r >> 8) % 16 * (rows / 16)); /* hot rows + tail */
        ids32[i] = (int32_t)ids[i];
    }
    for (size_t i = 0; i < n * dim; i++) g[i] = frand(&s);
    float *ref = calloc(rows * dim, sizeof *ref);
    ref_dense(ids, n, g, rows, dim, pad, sgbf, ref);
    float *out = malloc(rows * dim * sizeof *out);
    uint8_t *touched = calloc(rows, 1);
    for (size_t i = 0; i < n; i++)
        if (ids[i] != pad) touched[ids[i]] = 1;
    const int threads[4] = {1, 2, 3, 8};
    for (int k = 0; k < 4; k++) {
        TK_OK(tokemb_set_num_threads(threads[k]));
        tk_fill_sentinel(out, rows * dim);
        for (size_t r = 0; r < rows; r++)
            if (touched[r]) memset(out + r * dim, 0, dim * sizeof(float));
        if (k == 3) TK_OK(tokemb_grad_accumulate_i32(t, ids32, n, g, out));
        else TK_OK(tokemb_grad_accumulate(t, ids, n, g, out));
        for (size_t r = 0; r < rows; r++) {
            if (touched[r]) assert_memory_equal(out + r * dim, ref + r * dim, dim * sizeof(float));
            else {
                float sent[64];
                tk_fill_sentinel(sent, dim < 64 ? dim : 64);
                assert_memory_equal(out + r * dim, sent, (dim < 64 ? dim : 64) * sizeof(float));
            }
        }
    }
    int64_t *uid = malloc(n * sizeof *uid);
    float *urows = malloc(n * dim * sizeof *urows);
    size_t expect_u = 0;
    for (size_t r = 0; r < rows; r++) expect_u += touched[r];
    for (int k = 0; k < 4; k++) { /* dim >= 256: input order at 1 thread, segments at more */
        size_t u = 0;
        TK_OK(tokemb_set_num_threads(threads[k]));
        if (k == 3) TK_OK(tokemb_grad_coalesce_i32(t, ids32, n, g, uid, urows, &u));
        else TK_OK(tokemb_grad_coalesce(t, ids, n, g, uid, urows, &u));
        assert_int_equal(u, expect_u);
        for (size_t q = 0; q < u; q++) {
            if (q) assert_true(uid[q] > uid[q - 1]);
            assert_true(touched[uid[q]]);
            assert_memory_equal(urows + q * dim, ref + (size_t)uid[q] * dim, dim * sizeof(float));
        }
    }
    TK_OK(tokemb_set_num_threads(0));
    free(ids), free(ids32), free(g), free(ref), free(out), free(touched), free(uid), free(urows);
    tokemb_table_free(t);
}

static void test_random_small(void **state) {
    (void)state;
    check_random(100, 3, 1000, -1, 0, 1);
    check_random(100, 3, 1000, 5, 1, 2);
    check_random(1000, 300, 4000, 0, 0, 3); /* column blocks + several parts; input order at 1 thread */
    check_random(1000, 300, 4000, 5, 1, 6); /* the same with scale_grad_by_freq */
    check_random(40, 1024, 150, -1, 1, 7);  /* one part at any thread count: input order */
}

static void test_random_large_vocab(void **state) {
    (void)state;
    check_random((size_t)1 << 23, 1, 50000, 7, 0, 4); /* 23-bit ids: 3 radix passes */
    check_random(128256, 16, 30000, -1, 1, 5);
}

static void test_onehot_distinct_equals_dense(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(50, 5, TOKEMB_F32, &t));
    int64_t ids[20];
    float g[100], a[250], b[250];
    uint64_t s = 9;
    for (int i = 0; i < 20; i++) ids[i] = (i * 7) % 50;
    for (int i = 0; i < 100; i++) g[i] = frand(&s);
    for (int i = 0; i < 250; i++) a[i] = b[i] = frand(&s);
    TK_OK(tokemb_lookup_onehot_backward(t, ids, 20, g, a));
    TK_OK(tokemb_grad_accumulate(t, ids, 20, g, b));
    assert_memory_equal(a, b, sizeof a);
    tokemb_table_free(t);
}

static void test_errors_unchanged(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(10, 2, TOKEMB_F32, &t));
    const int64_t ids[3] = {1, -1, 2};
    const int32_t ids32[3] = {1, 2, 10};
    float g[6] = {1, 1, 1, 1, 1, 1}, buf[20];
    tk_fill_sentinel(buf, 20);
    uint64_t before = tk_checksum(buf, sizeof buf);
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_grad_accumulate(t, ids, 3, g, buf), "-1 at index 1");
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_grad_accumulate_i32(t, ids32, 3, g, buf), "10 at index 2");
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup_onehot_backward(t, ids, 3, g, buf), "index 1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_grad_accumulate(NULL, ids, 3, g, buf), "NULL");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_grad_accumulate(t, ids, 3, NULL, buf), "grad_out");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_grad_accumulate(t, ids, 3, g, NULL), "grad_table");
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_grad_accumulate(t, ids, SIZE_MAX / 2, g, buf), "overflows");
    assert_int_equal(tk_checksum(buf, sizeof buf), before);
    int64_t uid[3] = {-9, -9, -9};
    size_t u = 77;
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_grad_coalesce(t, ids, 3, g, uid, buf, &u), "index 1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_grad_coalesce(t, ids, 3, g, uid, buf, NULL), "n_unique");
    assert_int_equal(u, 77);
    assert_true(uid[0] == -9);
    assert_int_equal(tk_checksum(buf, sizeof buf), before);
    TK_OK(tokemb_grad_accumulate(t, NULL, 0, NULL, NULL));
    TK_OK(tokemb_grad_coalesce(t, NULL, 0, NULL, NULL, NULL, &u));
    assert_int_equal(u, 0);
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_padding),       cmocka_unit_test(test_sgbf_fused),
        cmocka_unit_test(test_coalesce_signed_zero), cmocka_unit_test(test_random_small),
        cmocka_unit_test(test_random_large_vocab),   cmocka_unit_test(test_onehot_distinct_equals_dense),
        cmocka_unit_test(test_errors_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
