/* test_bags.c - tokemb_lookup_bags and its backward: golden values per mode, padding and empty bags,
 * MAX ties, fused vs unfused weights, offsets validation (message and untouched output), max_norm,
 * thread-count invariance. */
#include "tk_test.h"

#include <math.h>
#include <stdlib.h>

static tokemb_table *table_from(const float *w, int64_t rows, int64_t dim) {
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &t));
    TK_OK(tokemb_table_write_rows(t, 0, (size_t)rows, w));
    return t;
}

static void test_modes_golden(void **state) {
    (void)state;
    const float w[8] = {1, 2, 3, -4, 5, 6, 3, 7}; /* rows: (1,2) (3,-4) (5,6) (3,7) */
    tokemb_table *t = table_from(w, 4, 2);
    const int64_t ids[6] = {0, 1, 3, 2, 2, 1};
    const int64_t offs[5] = {0, 3, 3, 5, 6}; /* bags {0,1,3}, {}, {2,2}, {1} */
    float out[8];
    TK_OK(tokemb_lookup_bags(t, ids, 6, offs, 4, TOKEMB_SUM, NULL, out));
    const float sum[8] = {7, 5, 0, 0, 10, 12, 3, -4};
    assert_memory_equal(out, sum, sizeof sum);
    TK_OK(tokemb_lookup_bags(t, ids, 6, offs, 4, TOKEMB_MEAN, NULL, out));
    const float mean[8] = {7.0f / 3.0f, 5.0f / 3.0f, 0, 0, 5, 6, 3, -4};
    assert_memory_equal(out, mean, sizeof mean);
    TK_OK(tokemb_lookup_bags(t, ids, 6, offs, 4, TOKEMB_MAX, NULL, out));
    const float mx[8] = {3, 7, 0, 0, 5, 6, 3, -4};
    assert_memory_equal(out, mx, sizeof mx);
    /* padding row 1 excluded from sums and the mean's count; an all-padding bag is zero */
    TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, 1));
    TK_OK(tokemb_lookup_bags(t, ids, 6, offs, 4, TOKEMB_MEAN, NULL, out));
    const float meanp[8] = {2, 4.5f, 0, 0, 5, 6, 0, 0};
    assert_memory_equal(out, meanp, sizeof meanp);
    TK_OK(tokemb_lookup_bags(t, ids, 6, offs, 4, TOKEMB_MAX, NULL, out));
    const float mxp[8] = {3, 7, 0, 0, 5, 6, 0, 0};
    assert_memory_equal(out, mxp, sizeof mxp);
    tokemb_table_free(t);
}

static void test_weighted_fused_or_not(void **state) {
    (void)state;
    /* values where fmaf(w, x, acc) and acc + w*x differ */
    const float x = 1.0f + 0x1p-12f, wgt = 1.0f + 0x1p-12f, acc0 = -1.0f;
    const float w[4] = {acc0, 0, x, 0};
    tokemb_table *t = table_from(w, 2, 2);
    const int64_t ids[2] = {0, 1};
    const float psw[2] = {1.0f, wgt};
    const int64_t offs[2] = {0, 2};
    float out[2];
    TK_OK(tokemb_lookup_bags(t, ids, 2, offs, 1, TOKEMB_SUM, psw, out));
    assert_true(out[0] == fmaf(wgt, x, fmaf(1.0f, acc0, 0.0f)));
    assert_true(out[0] != (acc0 + wgt * x));
    TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, 0)); /* generic path: multiply then add */
    const int64_t ids2[3] = {1, 0, 1};
    const float psw2[3] = {1.0f, 3.0f, wgt};
    const int64_t offs2[2] = {0, 3};
    float acc = 0.0f;
    acc = acc + 1.0f * x;
    acc = acc + wgt * x;
    TK_OK(tokemb_lookup_bags(t, ids2, 3, offs2, 1, TOKEMB_SUM, psw2, out));
    assert_true(out[0] == acc);
    tokemb_table_free(t);
}

static void test_validation(void **state) {
    (void)state;
    const float w[6] = {1, 2, 3, 4, 5, 6};
    tokemb_table *t = table_from(w, 3, 2);
    const int64_t ids[4] = {0, 1, 2, 0};
    float out[6];
    tk_fill_sentinel(out, 6);
    uint64_t h = tk_checksum(out, sizeof out);
    const int64_t o1[4] = {1, 2, 3, 4}, o2[4] = {0, 3, 2, 4}, o3[4] = {0, 1, 2, 3}, o4[4] = {0, 1, 2, 9};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_bags(t, ids, 4, o1, 3, 0, NULL, out), "offsets[0] = 1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_bags(t, ids, 4, o2, 3, 0, NULL, out), "offsets[2] = 2");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_bags(t, ids, 4, o3, 3, 0, NULL, out), "offsets[3] = 3");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_bags(t, ids, 4, o4, 3, 0, NULL, out), "offsets[3] = 9");
    const int64_t ok_offs[4] = {0, 1, 2, 4}, bad_ids[4] = {0, 1, 3, 0};
    const float psw[4] = {1, 1, 1, 1};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_bags(t, ids, 4, ok_offs, 3, 3, NULL, out), "mode 3");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_bags(t, ids, 4, ok_offs, 3, 1, psw, out), "SUM");
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup_bags(t, bad_ids, 4, ok_offs, 3, 0, NULL, out), "index 2");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_bags(t, ids, 4, NULL, 3, 0, NULL, out), "offsets");
    assert_int_equal(tk_checksum(out, sizeof out), h);
    float gt[6];
    tk_fill_sentinel(gt, 6);
    uint64_t hg = tk_checksum(gt, sizeof gt);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_bags_backward(t, ids, 4, o2, 3, 0, NULL, out, gt, NULL),
                     "offsets[2]");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_bags_backward(t, ids, 4, ok_offs, 3, 1, NULL, out, gt, out),
                     "SUM");
    TK_OK(tokemb_table_set_param(t, TOKEMB_SCALE_GRAD_BY_FREQ, 1));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT,
                     tokemb_lookup_bags_backward(t, ids, 4, ok_offs, 3, 2, NULL, out, gt, NULL), "MAX");
    assert_int_equal(tk_checksum(gt, sizeof gt), hg);
    const int64_t zero[1] = {0};
    TK_OK(tokemb_lookup_bags(t, NULL, 0, zero, 0, 0, NULL, NULL));
    /* max_norm on a read-only wrap refuses */
    float mem[6] = {3, 4, 0, 1, 0, 0};
    tokemb_table *r = NULL;
    TK_OK(tokemb_table_wrap(mem, 3, 2, 2, TOKEMB_F32, TOKEMB_WRAP_READONLY, &r));
    TK_OK(tokemb_table_set_param_f64(r, TOKEMB_MAX_NORM, 1.0));
    TK_EXPECT_STATUS(TOKEMB_READ_ONLY, tokemb_lookup_bags(r, ids, 4, ok_offs, 3, 0, NULL, out), NULL);
    assert_int_equal(tk_checksum(out, sizeof out), h);
    tokemb_table_free(r);
    tokemb_table_free(t);
}

static void test_max_norm_applies(void **state) {
    (void)state;
    const float w[4] = {3, 4, 0.5f, 0};
    tokemb_table *t = table_from(w, 2, 2);
    TK_OK(tokemb_table_set_param_f64(t, TOKEMB_MAX_NORM, 1.0));
    const int64_t ids[2] = {0, 1}, offs[2] = {0, 2};
    float out[2];
    TK_OK(tokemb_lookup_bags(t, ids, 2, offs, 1, TOKEMB_SUM, NULL, out));
    float sc = (float)(1.0 / (5.0 + 1e-7));
    assert_true(out[0] == 3 * sc + 0.5f && out[1] == 4 * sc);
    tokemb_table_free(t);
}

/* Forward and backward at 1 and 5 threads, every mode, padding set: the same bits. At dim >= 256 the
 * 1-thread backward sums in input order and the 5-thread one by segments. */
static void check_threads_invariant(size_t dim) {
    const size_t rows = 500, nb = 300;
    uint64_t s = 3;
    float *w = malloc(rows * dim * sizeof *w);
    for (size_t i = 0; i < rows * dim; i++) w[i] = (float)(tk_rand(&s) % 2001) / 1000.0f - 1.0f;
    tokemb_table *t = table_from(w, (int64_t)rows, (int64_t)dim);
    TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, 4));
    int64_t offs[301];
    offs[0] = 0;
    for (size_t b = 0; b < nb; b++) offs[b + 1] = offs[b] + (int64_t)(tk_rand(&s) % 9);
    size_t n = (size_t)offs[nb];
    int64_t *ids = malloc(n * sizeof *ids);
    float *psw = malloc(n * sizeof *psw), *go = malloc(nb * dim * sizeof *go);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)(tk_rand(&s) % 40), psw[i] = (float)(tk_rand(&s) % 7) / 3.0f;
    for (size_t i = 0; i < nb * dim; i++) go[i] = (float)(tk_rand(&s) % 1001) / 77.0f;
    float *o1 = malloc(nb * dim * 4), *o2 = malloc(nb * dim * 4), *g1 = calloc(rows * dim, 4),
          *g2 = calloc(rows * dim, 4);
    float *p1 = malloc(n * 4), *p2 = malloc(n * 4);
    for (int mode = 0; mode < 3; mode++) {
        const float *pw = mode == 0 ? psw : NULL;
        TK_OK(tokemb_set_num_threads(1));
        TK_OK(tokemb_lookup_bags(t, ids, n, offs, nb, mode, pw, o1));
        TK_OK(tokemb_lookup_bags_backward(t, ids, n, offs, nb, mode, pw, go, g1, mode == 0 ? p1 : NULL));
        TK_OK(tokemb_set_num_threads(5));
        TK_OK(tokemb_lookup_bags(t, ids, n, offs, nb, mode, pw, o2));
        TK_OK(tokemb_lookup_bags_backward(t, ids, n, offs, nb, mode, pw, go, g2, mode == 0 ? p2 : NULL));
        assert_memory_equal(o1, o2, nb * dim * 4);
        assert_memory_equal(g1, g2, rows * dim * 4);
        if (mode == 0) assert_memory_equal(p1, p2, n * 4);
        for (size_t c = 0; c < dim; c++) assert_true(g1[4 * dim + c] == 0.0f); /* padding row */
    }
    TK_OK(tokemb_set_num_threads(0));
    free(w), free(ids), free(psw), free(go), free(o1), free(o2), free(g1), free(g2), free(p1), free(p2);
    tokemb_table_free(t);
}

static void test_threads_invariant(void **state) {
    (void)state;
    check_threads_invariant(70);
    check_threads_invariant(300);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_modes_golden),      cmocka_unit_test(test_weighted_fused_or_not),
        cmocka_unit_test(test_validation),        cmocka_unit_test(test_max_norm_applies),
        cmocka_unit_test(test_threads_invariant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
