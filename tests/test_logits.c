/* test_logits.c - the tied output head: logits = hidden x W^T and its backward against float64 loops
 * (BLAS order differs from the loop, so within a float32 rounding bound), errors. */
#include "tk_test.h"

#include <math.h>
#include <stdlib.h>

static void test_logits_and_backward(void **state) {
    (void)state;
    const int64_t rows = 37, dim = 19;
    const size_t n = 11;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, 7, 0.0, 1.0));
    const float *W = tokemb_table_data(t);
    uint64_t s = 11;
    float *h = malloc(n * dim * 4), *lg = malloc(n * rows * 4), *gl = malloc(n * rows * 4);
    float *gh = malloc(n * dim * 4), *gt = malloc(rows * dim * 4);
    for (size_t i = 0; i < n * (size_t)dim; i++) h[i] = (float)(tk_rand(&s) % 2001) / 1000.0f - 1.0f;
    for (size_t i = 0; i < n * (size_t)rows; i++) gl[i] = (float)(tk_rand(&s) % 2001) / 1000.0f - 1.0f;
    for (size_t i = 0; i < (size_t)(rows * dim); i++) gt[i] = 0.5f;
    TK_OK(tokemb_logits(t, h, n, lg));
    TK_OK(tokemb_logits_backward(t, h, n, gl, gh, gt));
    for (size_t i = 0; i < n; i++)
        for (int64_t r = 0; r < rows; r++) {
            double acc = 0, mag = 0;
            for (int64_t c = 0; c < dim; c++) {
                acc += (double)h[i * dim + c] * W[r * dim + c];
                mag += fabs((double)h[i * dim + c] * W[r * dim + c]);
            }
            assert_true(fabs(lg[i * rows + r] - acc) <= mag * dim * 0x1p-24 + 1e-30);
        }
    for (size_t i = 0; i < n; i++)
        for (int64_t c = 0; c < dim; c++) {
            double acc = 0, mag = 0;
            for (int64_t r = 0; r < rows; r++) {
                acc += (double)gl[i * rows + r] * W[r * dim + c];
                mag += fabs((double)gl[i * rows + r] * W[r * dim + c]);
            }
            assert_true(fabs(gh[i * dim + c] - acc) <= mag * rows * 0x1p-24 + 1e-30);
        }
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < dim; c++) {
            double acc = 0.5, mag = 0.5;
            for (size_t i = 0; i < n; i++) {
                acc += (double)gl[i * rows + r] * h[i * dim + c];
                mag += fabs((double)gl[i * rows + r] * h[i * dim + c]);
            }
            assert_true(fabs(gt[r * dim + c] - acc) <= mag * (double)(n + 1) * 0x1p-24 + 1e-30);
        }
    /* errors leave outputs untouched */
    uint64_t c1 = tk_checksum(lg, n * rows * 4), c2 = tk_checksum(gt, rows * dim * 4);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_logits(t, NULL, n, lg), "hidden");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_logits(t, h, n, NULL), "logits");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_logits_backward(t, h, n, gl, NULL, NULL), "both NULL");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_logits_backward(t, h, n, NULL, NULL, gt), "grad_logits");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_logits(NULL, h, n, lg), "NULL");
    assert_int_equal(tk_checksum(lg, n * rows * 4), c1);
    assert_int_equal(tk_checksum(gt, rows * dim * 4), c2);
    TK_OK(tokemb_logits(t, NULL, 0, NULL));
    free(h), free(lg), free(gl), free(gh), free(gt);
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_logits_and_backward)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
