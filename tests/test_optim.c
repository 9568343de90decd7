/* test_optim.c - fused sparse optimizers: selection and hyper-parameter validation, golden first
 * steps, only referenced rows change, frozen / read-only refusal, thread-count invariance, state
 * lifetime (freed with the table). The torch.optim comparisons are in tests/python/test_optim_torch.py. */
#include "tk_test.h"

#include <math.h>
#include <stdlib.h>

static tokemb_table *make_table(int64_t rows, int64_t dim) {
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &t));
    float *d = tokemb_table_data(t);
    for (int64_t i = 0; i < rows * dim; i++) d[i] = (float)(i % 13) * 0.25f - 1.0f;
    return t;
}

static void test_select_and_params(void **state) {
    (void)state;
    tokemb_table *t = make_table(4, 2);
    double v = 0;
    assert_int_equal(tokemb_optim_step_count(t), -1);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_optim_set_param_f64(t, TOKEMB_OPTIM_LR, 0.1), "no optimizer");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_optim_select(t, 9), "kind 9");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_optim_select(NULL, 0), "NULL");
    TK_OK(tokemb_optim_select(t, TOKEMB_OPTIM_SPARSE_ADAM));
    assert_int_equal(tokemb_optim_step_count(t), 0);
    TK_OK(tokemb_optim_get_param_f64(t, TOKEMB_OPTIM_LR, &v));
    assert_true(v == 1e-3);
    TK_OK(tokemb_optim_get_param_f64(t, TOKEMB_OPTIM_BETA2, &v));
    assert_true(v == 0.999);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_optim_set_param_f64(t, TOKEMB_OPTIM_BETA1, 1.0), "1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_optim_set_param_f64(t, TOKEMB_OPTIM_LR, NAN), "nan");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_optim_set_param_f64(t, TOKEMB_OPTIM_WEIGHT_DECAY, 0.1),
                     "does not apply");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_optim_set_param_f64(t, 499, 0.1), "unknown");
    TK_OK(tokemb_optim_get_param_f64(t, TOKEMB_OPTIM_BETA1, &v));
    assert_true(v == 0.9);
    TK_OK(tokemb_optim_select(t, TOKEMB_OPTIM_ADAGRAD));
    TK_OK(tokemb_optim_get_param_f64(t, TOKEMB_OPTIM_EPS, &v));
    assert_true(v == 1e-10);
    tokemb_table_free(t);
}

static void test_sgd_golden_and_untouched(void **state) {
    (void)state;
    tokemb_table *t = make_table(5, 3);
    float before[15];
    memcpy(before, tokemb_table_data(t), sizeof before);
    TK_OK(tokemb_optim_select(t, TOKEMB_OPTIM_SGD));
    TK_OK(tokemb_optim_set_param_f64(t, TOKEMB_OPTIM_LR, 0.5));
    TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, 4));
    const int64_t ids[4] = {1, 3, 1, 4};
    const float g[12] = {1, 2, 3, 4, 5, 6, 1, 1, 1, 9, 9, 9};
    TK_OK(tokemb_optim_step(t, ids, 4, g));
    const float *d = tokemb_table_data(t);
    for (int c = 0; c < 3; c++) {
        assert_true(d[3 + c] == before[3 + c] - 0.5f * (g[c] + g[6 + c]));
        assert_true(d[9 + c] == before[9 + c] - 0.5f * g[3 + c]);
    }
    assert_memory_equal(d, before, 3 * sizeof(float));           /* row 0 */
    assert_memory_equal(d + 6, before + 6, 3 * sizeof(float));   /* row 2 */
    assert_memory_equal(d + 12, before + 12, 3 * sizeof(float)); /* padding row 4 */
    assert_int_equal(tokemb_optim_step_count(t), 1);
    tokemb_table_free(t);
}

static void test_adam_first_step(void **state) {
    (void)state;
    /* the first SparseAdam step moves each element by about lr * sign(g) */
    tokemb_table *t = make_table(3, 4);
    float before[12];
    memcpy(before, tokemb_table_data(t), sizeof before);
    TK_OK(tokemb_optim_select(t, TOKEMB_OPTIM_SPARSE_ADAM));
    TK_OK(tokemb_optim_set_param_f64(t, TOKEMB_OPTIM_LR, 0.01));
    const int64_t ids[1] = {2};
    const float g[4] = {3, -0.5f, 1e-3f, -7};
    TK_OK(tokemb_optim_step(t, ids, 1, g));
    const float *d = tokemb_table_data(t);
    for (int c = 0; c < 4; c++) {
        /* m = 0.1 g, v = 0.001 g^2, step = lr sqrt(0.001) / 0.1: update = lr g / (|g| + eps / sqrt(0.001)) */
        double expect = before[8 + c] - 0.01 * g[c] / (fabs(g[c]) + 1e-8 / sqrt(0.001));
        assert_true(fabs(d[8 + c] - expect) < 1e-6);
    }
    assert_memory_equal(d, before, 8 * sizeof(float));
    tokemb_table_free(t);
}

static void test_refusals_leave_table(void **state) {
    (void)state;
    tokemb_table *t = make_table(4, 2);
    const int64_t ids[2] = {0, 3}, bad[2] = {0, 4};
    const float g[4] = {1, 1, 1, 1};
    uint64_t h = tk_checksum(tokemb_table_data(t), 8 * sizeof(float));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_optim_step(t, ids, 2, g), "no optimizer");
    TK_OK(tokemb_optim_select(t, TOKEMB_OPTIM_ROWWISE_ADAGRAD));
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_optim_step(t, bad, 2, g), "4 at index 1");
    TK_OK(tokemb_table_set_param(t, TOKEMB_FROZEN, 1));
    TK_EXPECT_STATUS(TOKEMB_READ_ONLY, tokemb_optim_step(t, ids, 2, g), "frozen");
    TK_EXPECT_STATUS(TOKEMB_READ_ONLY, tokemb_optim_step_coalesced(t, ids, 2, g), "frozen");
    assert_int_equal(tk_checksum(tokemb_table_data(t), 8 * sizeof(float)), h);
    assert_int_equal(tokemb_optim_step_count(t), 0);
    TK_OK(tokemb_table_set_param(t, TOKEMB_FROZEN, 0));
    TK_OK(tokemb_optim_step(t, ids, 2, g));
    assert_int_equal(tokemb_optim_step_count(t), 1);
    tokemb_table_free(t); /* frees the row-wise accumulators too (checked by ASan/valgrind runs) */

    float mem[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tokemb_table *r = NULL;
    TK_OK(tokemb_table_wrap(mem, 4, 2, 2, TOKEMB_F32, TOKEMB_WRAP_READONLY, &r));
    TK_OK(tokemb_optim_select(r, TOKEMB_OPTIM_SGD));
    TK_EXPECT_STATUS(TOKEMB_READ_ONLY, tokemb_optim_step(r, ids, 2, g), "read-only");
    const float same[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(mem, same, sizeof mem);
    tokemb_table_free(r);
}

static void test_threads_invariant(void **state) {
    (void)state;
    const int64_t rows = 2000, dim = 40;
    const size_t n = 3000;
    int64_t *ids = malloc(n * sizeof *ids);
    float *g = malloc(n * (size_t)dim * sizeof *g);
    uint64_t s = 5;
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)(tk_rand(&s) % 300);
    for (size_t i = 0; i < n * (size_t)dim; i++) g[i] = (float)(tk_rand(&s) % 2001) / 1000.0f - 1.0f;
    for (int kind = 0; kind < 4; kind++) {
        tokemb_table *a = make_table(rows, dim), *b = make_table(rows, dim);
        TK_OK(tokemb_optim_select(a, kind));
        TK_OK(tokemb_optim_select(b, kind));
        for (int step = 0; step < 3; step++) {
            TK_OK(tokemb_set_num_threads(1));
            TK_OK(tokemb_optim_step(a, ids, n, g));
            TK_OK(tokemb_set_num_threads(6));
            TK_OK(tokemb_optim_step(b, ids, n, g));
        }
        assert_memory_equal(tokemb_table_data(a), tokemb_table_data(b), (size_t)(rows * dim) * sizeof(float));
        tokemb_table_free(a);
        tokemb_table_free(b);
    }
    TK_OK(tokemb_set_num_threads(0));
    free(ids);
    free(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_and_params), cmocka_unit_test(test_sgd_golden_and_untouched),
        cmocka_unit_test(test_adam_first_step),   cmocka_unit_test(test_refusals_leave_table),
        cmocka_unit_test(test_threads_invariant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
