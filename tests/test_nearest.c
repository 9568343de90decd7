/* test_nearest.c - tokemb_nearest / tokemb_nearest_ids against a float64 brute force: ordering,
 * scores, exclusion, dot metric, compact dtypes, errors. gensim's most_similar is compared in
 * tests/python/test_nearest_gensim.py. */
#include "tk_test.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

enum { ROWS = 3000, DIM = 24, K = 10 };

static float *make(tokemb_table **t) {
    TK_OK(tokemb_table_create(ROWS, DIM, TOKEMB_F32, t));
    TK_OK(tokemb_table_init_normal(*t, 77, 0.0, 1.0));
    return tokemb_table_data(*t);
}

/* float64 reference: score of row r for query q */
static double ref_score(const float *w, const float *q, int metric) {
    double dot = 0, nw = 0, nq = 0;
    for (int c = 0; c < DIM; c++) {
        dot += (double)w[c] * q[c];
        nw += (double)w[c] * w[c];
        nq += (double)q[c] * q[c];
    }
    return metric == TOKEMB_METRIC_DOT ? dot : dot / sqrt(nw * nq);
}

static void check_topk(const float *W, const float *q, int metric, int64_t exclude, const int64_t *ids,
                       const float *scores, size_t k) {
    /* every returned score matches the reference, in non-increasing order, and no row outside the
     * result beats the k-th by more than float noise */
    double kth = INFINITY;
    for (size_t j = 0; j < k; j++) {
        assert_true(ids[j] >= 0 && ids[j] < ROWS && ids[j] != exclude);
        double r = ref_score(W + ids[j] * DIM, q, metric);
        if (fabs(r - scores[j]) > 1e-5 * (1 + fabs(r))) fail_msg("score %zu: %g vs ref %g", j, (double)scores[j], r);
        if (j > 0) assert_true(scores[j] <= scores[j - 1]);
        for (size_t i = 0; i < j; i++) assert_true(ids[i] != ids[j]);
        kth = r;
    }
    for (int64_t r = 0; r < ROWS; r++) {
        if (r == exclude) continue;
        bool in = false;
        for (size_t j = 0; j < k; j++) in |= ids[j] == r;
        if (!in && ref_score(W + r * DIM, q, metric) > kth + 1e-5)
            fail_msg("row %lld missing from the top %zu", (long long)r, k);
    }
}

static void test_nearest_vectors_and_ids(void **state) {
    (void)state;
    tokemb_table *t;
    const float *W = make(&t);
    float q[5 * DIM];
    uint64_t s = 3;
    for (int i = 0; i < 5 * DIM; i++) q[i] = (float)((double)(tk_rand(&s) % 20001) / 10000.0 - 1.0);
    int64_t ids[5 * K];
    float sc[5 * K];
    for (int metric = 0; metric < 2; metric++) {
        TK_OK(tokemb_nearest(t, q, 5, K, metric, NULL, ids, sc));
        for (int i = 0; i < 5; i++) check_topk(W, q + i * DIM, metric, -1, ids + i * K, sc + i * K, K);
        /* one query alone gives the same answer as in the batch */
        int64_t one[K];
        float one_s[K];
        TK_OK(tokemb_nearest(t, q + 3 * DIM, 1, K, metric, NULL, one, one_s));
        assert_memory_equal(one, ids + 3 * K, sizeof one);
    }
    /* queries by id exclude themselves when asked (gensim most_similar(word)) */
    const int64_t qids[4] = {0, 17, 2999, 17};
    TK_OK(tokemb_nearest_ids(t, qids, 4, K, TOKEMB_METRIC_COSINE, 1, ids, sc));
    for (int i = 0; i < 4; i++) check_topk(W, W + qids[i] * DIM, 0, qids[i], ids + i * K, sc + i * K, K);
    assert_memory_equal(ids + K, ids + 3 * K, K * sizeof(int64_t));
    TK_OK(tokemb_nearest_ids(t, qids, 1, 3, TOKEMB_METRIC_COSINE, 0, ids, sc));
    assert_int_equal(ids[0], 0); /* itself, cosine 1 */
    assert_true(fabsf(sc[0] - 1.0f) < 1e-6f);
    /* explicit exclude list; out_scores may be NULL */
    const int64_t ex[2] = {-1, 5};
    TK_OK(tokemb_nearest(t, W + 5 * DIM, 1, 2, TOKEMB_METRIC_COSINE, ex + 1, ids, NULL));
    assert_true(ids[0] != 5 && ids[1] != 5);
    /* k = rows with exclusion leaves one empty slot */
    tokemb_table *small;
    float sw[6] = {1, 0, 0, 1, 1, 1};
    TK_OK(tokemb_table_wrap(sw, 3, 2, 2, TOKEMB_F32, TOKEMB_WRAP_READONLY, &small));
    int64_t qi = 0, sid[3];
    float ss[3];
    TK_OK(tokemb_nearest_ids(small, &qi, 1, 3, TOKEMB_METRIC_DOT, 1, sid, ss));
    assert_int_equal(sid[0], 2); /* dot 1, then row 1 dot 0 */
    assert_int_equal(sid[1], 1);
    assert_int_equal(sid[2], -1);
    assert_true(isinf(ss[2]) && ss[2] < 0);
    tokemb_table_free(small);
    tokemb_table_free(t);
}

static void test_nearest_compact_and_errors(void **state) {
    (void)state;
    tokemb_table *t, *h;
    make(&t);
    TK_OK(tokemb_table_convert(t, TOKEMB_F16, &h));
    float *Wh = malloc((size_t)ROWS * DIM * sizeof(float));
    TK_OK(tokemb_table_read_rows(h, 0, ROWS, Wh));
    int64_t ids[K];
    float sc[K];
    const int64_t q = 42;
    TK_OK(tokemb_nearest_ids(h, &q, 1, K, TOKEMB_METRIC_COSINE, 1, ids, sc));
    check_topk(Wh, Wh + q * DIM, 0, q, ids, sc, K);
    free(Wh);
    int64_t keep[K];
    for (int i = 0; i < K; i++) keep[i] = 1000 + i;
    memcpy(ids, keep, sizeof keep);
    float qv[DIM] = {0};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_nearest(t, qv, 1, 0, 0, NULL, ids, sc), "k = 0");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_nearest(t, qv, 1, ROWS + 1, 0, NULL, ids, sc), "k = 3001");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_nearest(t, qv, 1, K, 2, NULL, ids, sc), "unknown metric 2");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_nearest(t, NULL, 1, K, 0, NULL, ids, sc), "queries is NULL");
    const int64_t bad_ex = ROWS;
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_nearest(t, qv, 1, K, 0, &bad_ex, ids, sc), "exclude_ids[0] = 3000");
    const int64_t bad_id[2] = {3, -1};
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_nearest_ids(t, bad_id, 2, K, 0, 1, ids, sc), "index 1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_nearest_ids(t, bad_id, 1, K, 0, 2, ids, sc), "exclude_self");
    assert_memory_equal(ids, keep, sizeof keep);
    /* a zero query scores 0 everywhere (cosine) */
    TK_OK(tokemb_nearest(t, qv, 1, 3, TOKEMB_METRIC_COSINE, NULL, ids, sc));
    assert_true(sc[0] == 0.0f && ids[0] == 0 && ids[1] == 1 && ids[2] == 2);
    tokemb_table_free(h);
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nearest_vectors_and_ids),
        cmocka_unit_test(test_nearest_compact_and_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
