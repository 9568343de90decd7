/* test_table.c - tables: create/wrap/free, parameters, row access, init golden values, errors. */
#include "tk_test.h"

#include <math.h>
#include <stdlib.h>

static void test_version_and_status(void **state) {
    (void)state;
    assert_int_equal(tokemb_version_number(), TOKEMB_VERSION_NUMBER);
    assert_string_equal(tokemb_version_string(), TOKEMB_VERSION_STRING);
    const int32_t codes[] = {TOKEMB_OK,     TOKEMB_INVALID_ARGUMENT, TOKEMB_OUT_OF_RANGE, TOKEMB_NO_MEMORY, TOKEMB_IO,
                             TOKEMB_FORMAT, TOKEMB_UNSUPPORTED,      TOKEMB_OVERFLOW,     TOKEMB_READ_ONLY};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        assert_int_equal(codes[i], -(int32_t)i); /* pinned values 0, -1, ..., -8 */
        assert_string_not_equal(tokemb_status_string(codes[i]), "unknown status");
    }
    assert_string_equal(tokemb_status_string(-99), "unknown status");
}

static void test_threads_setting(void **state) {
    (void)state;
    int32_t def = tokemb_get_num_threads();
    assert_true(def >= 1);
    TK_OK(tokemb_set_num_threads(3));
    assert_int_equal(tokemb_get_num_threads(), 3);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_set_num_threads(-1), "-1");
    assert_int_equal(tokemb_get_num_threads(), 3);
    TK_OK(tokemb_set_num_threads(0));
    assert_int_equal(tokemb_get_num_threads(), def);
}

static void test_create_errors(void **state) {
    (void)state;
    tokemb_table *t = (tokemb_table *)(uintptr_t)0x1; /* sentinel: must stay untouched */
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_create(0, 3, TOKEMB_F32, &t), "rows = 0");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_create(3, -1, TOKEMB_F32, &t), "dim = -1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_create(3, 3, 9, &t), "unknown dtype 9");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_create(3, 3, TOKEMB_F32, NULL), "out is NULL");
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_table_create(INT64_MAX / 2, 4, TOKEMB_F32, &t), "overflows");
    assert_ptr_equal(t, (tokemb_table *)(uintptr_t)0x1);
    tokemb_table_free(NULL);
}

static void test_create_zeroed_aligned(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(5, 7, TOKEMB_F32, &t));
    assert_int_equal(tokemb_table_rows(t), 5);
    assert_int_equal(tokemb_table_dim(t), 7);
    assert_int_equal(tokemb_table_row_stride(t), 7);
    assert_int_equal(tokemb_table_dtype(t), TOKEMB_F32);
    float *d = tokemb_table_data(t);
    assert_non_null(d);
    assert_int_equal((uintptr_t)d % 64, 0);
    for (int i = 0; i < 35; i++) assert_true(d[i] == 0.0f && !signbit(d[i]));
    tokemb_table_free(t);
    assert_int_equal(tokemb_table_rows(NULL), -1);
    assert_null(tokemb_table_data(NULL));
}

static void test_params(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(5, 3, TOKEMB_F32, &t));
    int64_t v = 0;
    double f = 0;
    TK_OK(tokemb_table_get_param(t, TOKEMB_PADDING_IDX, &v));
    assert_true(v == TOKEMB_NO_PADDING);
    TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, -1)); /* torch: Embedding(5,3,padding_idx=-1) -> 4 */
    TK_OK(tokemb_table_get_param(t, TOKEMB_PADDING_IDX, &v));
    assert_int_equal(v, 4);
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_table_set_param(t, TOKEMB_PADDING_IDX, 5), "padding_idx 5");
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_table_set_param(t, TOKEMB_PADDING_IDX, -6), "-6");
    TK_OK(tokemb_table_get_param(t, TOKEMB_PADDING_IDX, &v));
    assert_int_equal(v, 4); /* unchanged by the failures */
    TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, TOKEMB_NO_PADDING));
    TK_OK(tokemb_table_get_param(t, TOKEMB_PADDING_IDX, &v));
    assert_true(v == TOKEMB_NO_PADDING);

    TK_OK(tokemb_table_get_param_f64(t, TOKEMB_NORM_TYPE, &f));
    assert_true(f == 2.0);
    TK_OK(tokemb_table_set_param_f64(t, TOKEMB_MAX_NORM, 1.5));
    TK_OK(tokemb_table_get_param_f64(t, TOKEMB_MAX_NORM, &f));
    assert_true(f == 1.5);
    TK_OK(tokemb_table_set_param_f64(t, TOKEMB_MAX_NORM, -3));
    TK_OK(tokemb_table_get_param_f64(t, TOKEMB_MAX_NORM, &f));
    assert_true(f == 0.0);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_set_param_f64(t, TOKEMB_MAX_NORM, NAN), "NaN");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_set_param_f64(t, TOKEMB_NORM_TYPE, 0.0), "norm_type");
    TK_OK(tokemb_table_set_param_f64(t, TOKEMB_NORM_TYPE, INFINITY));

    for (int32_t p = TOKEMB_SCALE_GRAD_BY_FREQ; p <= TOKEMB_FROZEN; p++) {
        TK_OK(tokemb_table_set_param(t, p, 1));
        TK_OK(tokemb_table_get_param(t, p, &v));
        assert_int_equal(v, 1);
        TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_set_param(t, p, 2), "0 or 1, got 2");
        TK_OK(tokemb_table_get_param(t, p, &v));
        assert_int_equal(v, 1);
    }
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_set_param(t, 99, 0), "unknown table parameter 99");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_set_param(t, TOKEMB_MAX_NORM, 1), "double");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_set_param_f64(t, TOKEMB_FROZEN, 1), "int64");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_set_param(NULL, TOKEMB_FROZEN, 1), "NULL");
    tokemb_table_free(t);
}

/* torch.manual_seed(123); nn.Embedding(6, 3).weight, exact bits from torch 1.13.1 (AVX2 kernel), as
 * recorded in shared/reference/pytorch-semantics.md section 4.7. */
static const uint32_t seed123_6x3[18] = {0x3eacbbc9, 0xbe360b3b, 0xbe2d02e0, 0x3f6af29f, 0x3fca5d36, 0x3fa6887a,
                                         0x3fa33d12, 0xbe4dc6a6, 0xbe246ad5, 0xbecd8fd6, 0x3f77713c, 0xbf92f662,
                                         0xbf9455c8, 0x3ea6a423, 0xbf21aa56, 0xc035c276, 0xbf48ec26, 0xbfb46cdf};

static void test_init_normal_seed123(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(6, 3, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, 123, 0.0, 1.0));
    assert_memory_equal(tokemb_table_data(t), seed123_6x3, sizeof seed123_6x3);
    /* the printout of the seed article */
    assert_true(fabsf(tokemb_table_data(t)[0] - 0.3374f) < 5e-5f);
    assert_true(fabsf(tokemb_table_data(t)[1] + 0.1778f) < 5e-5f);
    assert_true(fabsf(tokemb_table_data(t)[2] + 0.1690f) < 5e-5f);
    /* seeds are truncated to 32 bits as torch does */
    float first[18];
    memcpy(first, tokemb_table_data(t), sizeof first);
    TK_OK(tokemb_table_init_normal(t, (1ull << 32) + 123, 0.0, 1.0));
    assert_memory_equal(tokemb_table_data(t), first, sizeof first);
    /* padding row zeroed after init */
    TK_OK(tokemb_table_set_param(t, TOKEMB_PADDING_IDX, 2));
    TK_OK(tokemb_table_init_normal(t, 123, 0.0, 1.0));
    for (int c = 0; c < 3; c++) assert_true(tokemb_table_data(t)[6 + c] == 0.0f);
    assert_memory_equal(tokemb_table_data(t), seed123_6x3, 6 * sizeof(float));
    assert_memory_equal(tokemb_table_data(t) + 9, seed123_6x3 + 9, 9 * sizeof(float));
    tokemb_table_free(t);
}

static void test_init_errors_leave_table(void **state) {
    (void)state;
    float buf[12];
    for (int i = 0; i < 12; i++) buf[i] = (float)i;
    tokemb_table *ro = NULL;
    TK_OK(tokemb_table_wrap(buf, 3, 4, 4, TOKEMB_F32, TOKEMB_WRAP_READONLY, &ro));
    TK_EXPECT_STATUS(TOKEMB_READ_ONLY, tokemb_table_init_normal(ro, 1, 0, 1), "read-only");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_normal(ro, 1, 0, -1), "std = -1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_uniform(ro, 1, 2, 1), "lo <= hi");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_init_normal(NULL, 1, 0, 1), "NULL");
    for (int i = 0; i < 12; i++) assert_true(buf[i] == (float)i);
    tokemb_table_free(ro);
}

/* A strided wrap is initialised as if it were the contiguous tensor, gaps untouched. */
static void test_init_strided_wrap(void **state) {
    (void)state;
    tokemb_table *c = NULL, *s = NULL;
    float buf[6 * 5];
    for (int i = 0; i < 30; i++) buf[i] = -7.0f;
    TK_OK(tokemb_table_create(6, 3, TOKEMB_F32, &c));
    TK_OK(tokemb_table_wrap(buf, 6, 3, 5, TOKEMB_F32, 0, &s));
    TK_OK(tokemb_table_init_normal(c, 123, 0.5, 2.0));
    TK_OK(tokemb_table_init_normal(s, 123, 0.5, 2.0));
    for (int r = 0; r < 6; r++) {
        assert_memory_equal(buf + 5 * r, tokemb_table_data(c) + 3 * r, 3 * sizeof(float));
        assert_true(buf[5 * r + 3] == -7.0f && buf[5 * r + 4] == -7.0f);
    }
    tokemb_table_free(c);
    tokemb_table_free(s);
}

static void test_wrap_and_rows(void **state) {
    (void)state;
    float buf[4 * 3];
    for (int i = 0; i < 12; i++) buf[i] = (float)i;
    tokemb_table *t = NULL;
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_wrap(buf, 4, 3, 2, TOKEMB_F32, 0, &t), "row_stride = 2");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_wrap(buf, 4, 3, 3, TOKEMB_F32, 4, &t), "flags");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_wrap(NULL, 4, 3, 3, TOKEMB_F32, 0, &t), "data is NULL");
    assert_null(t);
    TK_OK(tokemb_table_wrap(buf, 4, 3, 3, TOKEMB_F32, 0, &t));
    assert_ptr_equal(tokemb_table_data(t), buf);
    float rows[6];
    TK_OK(tokemb_table_read_rows(t, 2, 2, rows));
    for (int i = 0; i < 6; i++) assert_true(rows[i] == (float)(6 + i));
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_table_read_rows(t, 3, 2, rows), "rows [3, 3 + 2)");
    const float src[3] = {-1, -2, -3};
    TK_OK(tokemb_table_write_rows(t, 0, 1, src));
    assert_true(buf[0] == -1 && buf[2] == -3);
    tokemb_table_free(t); /* borrowed memory is not freed */
    assert_true(buf[11] == 11.0f);

    TK_OK(tokemb_table_wrap(buf, 4, 3, 3, TOKEMB_F32, TOKEMB_WRAP_READONLY, &t));
    TK_EXPECT_STATUS(TOKEMB_READ_ONLY, tokemb_table_write_rows(t, 0, 1, src), "read-only");
    tokemb_table_free(t);
}

/* Compact dtypes store and read back, but initialisation needs F32 (tests/test_storage.c has the rest). */
static void test_other_dtypes_init_unsupported(void **state) {
    (void)state;
    for (int32_t dt = TOKEMB_F16; dt <= TOKEMB_Q8_ROW; dt++) {
        tokemb_table *t = NULL;
        TK_OK(tokemb_table_create(3, 3, dt, &t));
        assert_int_equal(tokemb_table_dtype(t), dt);
        assert_null(tokemb_table_data(t));
        assert_int_equal(tokemb_table_row_stride(t), dt == TOKEMB_Q8_ROW ? 11 : 3);
        TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_table_init_normal(t, 1, 0, 1), "needs F32");
        float rows[9];
        TK_OK(tokemb_table_read_rows(t, 0, 3, rows));
        for (int i = 0; i < 9; i++) assert_true(rows[i] == 0.0f);
        tokemb_table_free(t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_and_status),
        cmocka_unit_test(test_threads_setting),
        cmocka_unit_test(test_create_errors),
        cmocka_unit_test(test_create_zeroed_aligned),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_init_normal_seed123),
        cmocka_unit_test(test_init_errors_leave_table),
        cmocka_unit_test(test_init_strided_wrap),
        cmocka_unit_test(test_wrap_and_rows),
        cmocka_unit_test(test_other_dtypes_init_unsupported),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
