/* test_bags_compact.c - pooled bags over F16 / BF16 / Q8_ROW tables equal the same bags over the float32
 * rows those tables decode to (tokemb_table_read_rows), bit for bit, in every mode, with padding and
 * per-sample weights; gradients and the bag backward keep requiring F32. */
#include "tk_test.h"

#include <stdlib.h>

#define ROWS 97
#define DIM 37
#define N 300
#define BAGS 41

static void check_dtype(int32_t dtype, int64_t pad) {
    tokemb_table *f32 = NULL, *c = NULL, *dec = NULL;
    TK_OK(tokemb_table_create(ROWS, DIM, TOKEMB_F32, &f32));
    TK_OK(tokemb_table_init_normal(f32, 5, 0.0, 1.0));
    TK_OK(tokemb_table_convert(f32, dtype, &c));
    float *decoded = malloc(sizeof(float) * ROWS * DIM);
    assert_non_null(decoded);
    TK_OK(tokemb_table_read_rows(c, 0, ROWS, decoded));
    TK_OK(tokemb_table_wrap(decoded, ROWS, DIM, DIM, TOKEMB_F32, TOKEMB_WRAP_READONLY, &dec));
    if (pad != TOKEMB_NO_PADDING) {
        TK_OK(tokemb_table_set_param(c, TOKEMB_PADDING_IDX, pad));
        TK_OK(tokemb_table_set_param(dec, TOKEMB_PADDING_IDX, pad));
    }
    int64_t ids[N], offsets[BAGS + 1];
    float w[N];
    uint64_t s = 17;
    for (int i = 0; i < N; i++) {
        ids[i] = (int64_t)(tk_rand(&s) % ROWS);
        if (i % 7 == 0 && pad != TOKEMB_NO_PADDING) ids[i] = pad;
        w[i] = (float)(tk_rand(&s) % 1000) / 250.0f - 2.0f;
    }
    offsets[0] = 0;
    for (int b = 1; b < BAGS; b++) offsets[b] = offsets[b - 1] + (int64_t)(tk_rand(&s) % 15); /* some empty */
    if (offsets[BAGS - 1] > N) offsets[BAGS - 1] = N;
    for (int b = 1; b < BAGS; b++) if (offsets[b] > N) offsets[b] = N;
    offsets[BAGS] = N;
    static float a[BAGS * DIM], r[BAGS * DIM];
    for (int32_t mode = TOKEMB_BAG_SUM; mode <= TOKEMB_BAG_MAX; mode++) {
        TK_OK(tokemb_lookup_bags(c, ids, N, offsets, BAGS, mode, NULL, a));
        TK_OK(tokemb_lookup_bags(dec, ids, N, offsets, BAGS, mode, NULL, r));
        assert_memory_equal(a, r, sizeof a);
    }
    TK_OK(tokemb_lookup_bags(c, ids, N, offsets, BAGS, TOKEMB_BAG_SUM, w, a));
    TK_OK(tokemb_lookup_bags(dec, ids, N, offsets, BAGS, TOKEMB_BAG_SUM, w, r));
    assert_memory_equal(a, r, sizeof a);

    /* training paths keep requiring F32; max_norm too */
    static float g[BAGS * DIM], gt[ROWS * DIM];
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED,
                     tokemb_grad_accumulate_bags(c, ids, N, offsets, BAGS, TOKEMB_BAG_SUM, NULL, g, gt, NULL),
                     "F32");
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_grad_accumulate(c, ids, N, gt, gt), "gradients need F32");
    TK_OK(tokemb_table_set_param_f64(c, TOKEMB_MAX_NORM, 1.0));
    tk_fill_sentinel(a, BAGS * DIM);
    uint64_t before = tk_checksum(a, sizeof a);
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_lookup_bags(c, ids, N, offsets, BAGS, TOKEMB_BAG_SUM, NULL, a),
                     "max_norm");
    assert_true(tk_checksum(a, sizeof a) == before);
    free(decoded);
    tokemb_table_free(dec);
    tokemb_table_free(c);
    tokemb_table_free(f32);
}

static void test_bags_f16(void **state) {
    (void)state;
    check_dtype(TOKEMB_F16, TOKEMB_NO_PADDING);
    check_dtype(TOKEMB_F16, 3);
}
static void test_bags_bf16(void **state) {
    (void)state;
    check_dtype(TOKEMB_BF16, TOKEMB_NO_PADDING);
    check_dtype(TOKEMB_BF16, 0);
}
static void test_bags_q8(void **state) {
    (void)state;
    check_dtype(TOKEMB_Q8_ROW, TOKEMB_NO_PADDING);
    check_dtype(TOKEMB_Q8_ROW, ROWS - 1);
}

/* A huge n_bags is an overflow found before offsets[] is read (the array here has 2 entries). */
static void test_bags_huge_n_bags(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(4, 8, TOKEMB_F32, &t));
    const int64_t ids[1] = {1}, offsets[2] = {0, 1};
    float out[8];
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_lookup_bags(t, ids, 1, offsets, SIZE_MAX / 2, TOKEMB_BAG_SUM, NULL, out),
                     "overflows");
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bags_f16),
        cmocka_unit_test(test_bags_bf16),
        cmocka_unit_test(test_bags_q8),
        cmocka_unit_test(test_bags_huge_n_bags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
