/* test_storage.c - F16 / BF16 / Q8_ROW storage: conversion golden values (IEEE round-to-nearest-even
 * edge cases), lookups and row access on every dtype, Q8 error bounds, F32-only paths. Bitwise
 * comparisons against torch's .half()/.bfloat16() and FBGEMM's byte prepack are in
 * tests/python/test_storage_torch.py. */
#include "tk_test.h"

#include <math.h>
#include <stdlib.h>

/* Converts one float through a 1x1 table of `dtype` and returns the raw 16-bit pattern. */
static uint16_t enc16(int32_t dtype, float x) {
    uint16_t buf = 0xdead;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_wrap(&buf, 1, 1, 1, dtype, 0, &t));
    TK_OK(tokemb_table_write_rows(t, 0, 1, &x));
    tokemb_table_free(t);
    return buf;
}
static float dec16(int32_t dtype, uint16_t h) {
    tokemb_table *t = NULL;
    float x;
    TK_OK(tokemb_table_wrap(&h, 1, 1, 1, dtype, TOKEMB_WRAP_READONLY, &t));
    TK_OK(tokemb_table_read_rows(t, 0, 1, &x));
    tokemb_table_free(t);
    return x;
}

static void test_f16_golden(void **state) {
    (void)state;
    const struct {
        float x;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3c00},
        {-2.0f, 0xc000},
        {65504.0f, 0x7bff},
        {65519.99f, 0x7bff},
        {65520.0f, 0x7c00},
        {1e10f, 0x7c00},
        {-INFINITY, 0xfc00},
        {0x1p-14f, 0x0400},
        {0x1p-24f, 0x0001},
        {0x1p-25f, 0x0000},
        {0x1.8p-24f, 0x0002},
        {0x1.000002p-25f, 0x0001},
        {-0.0f, 0x8000},
        {1.0f + 0x1p-11f, 0x3c00}, /* tie -> even */
        {1.0f + 0x1.8p-10f, 0x3c02},
        /* tie -> even (up) */ {0.1f, 0x2e66},
        {0x1.ffcp-15f, 0x0400}, /* rounds up into the normals */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = enc16(TOKEMB_F16, cases[i].x);
        if (h != cases[i].h) fail_msg("f16(%a) = 0x%04x, expected 0x%04x", (double)cases[i].x, h, cases[i].h);
    }
    assert_true((enc16(TOKEMB_F16, NAN) & 0x7e00) == 0x7e00);
    /* every half decodes to a float that encodes back to it (NaNs aside) */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        float f = dec16(TOKEMB_F16, (uint16_t)h);
        if (enc16(TOKEMB_F16, f) != h) fail_msg("half 0x%04x -> %a does not round trip", h, (double)f);
    }
    assert_true(dec16(TOKEMB_F16, 0x0001) == 0x1p-24f);
    assert_true(dec16(TOKEMB_F16, 0x7bff) == 65504.0f);
}

static void test_bf16_golden(void **state) {
    (void)state;
    const struct {
        float x;
        uint16_t h;
    } cases[] = {
        {1.0f, 0x3f80},        {1.00390625f, 0x3f80}, /* tie -> even */
        {1.01171875f, 0x3f82},                        /* tie -> even (up) */
        {1.0039064f, 0x3f81},  {-3.0f, 0xc040},       {3.3895314e38f, 0x7f7f}, {3.4e38f, 0x7f80},
        {-0.0f, 0x8000},       {0x1p-133f, 0x0000}, /* smallest bf16 subnormal is 2^-133: exactly representable */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t h = enc16(TOKEMB_BF16, cases[i].x);
        uint16_t want = cases[i].h;
        if (cases[i].x == 0x1p-133f) want = 0x0001;
        if (h != want) fail_msg("bf16(%a) = 0x%04x, expected 0x%04x", (double)cases[i].x, h, want);
    }
    assert_true((enc16(TOKEMB_BF16, NAN) & 0x7fc0) == 0x7fc0);
    assert_true(dec16(TOKEMB_BF16, 0x3f80) == 1.0f);
}

static void test_lookup_every_dtype(void **state) {
    (void)state;
    const int64_t rows = 37, dim = 29;
    tokemb_table *f = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &f));
    TK_OK(tokemb_table_init_normal(f, 5, 0.0, 1.0));
    int64_t ids[50];
    int32_t ids32[50];
    uint64_t s = 7;
    for (int i = 0; i < 50; i++) ids32[i] = (int32_t)(ids[i] = (int64_t)(tk_rand(&s) % (uint64_t)rows));
    float *out = malloc(50 * dim * sizeof(float)), *out2 = malloc(50 * 40 * sizeof(float));
    float *row = malloc(dim * sizeof(float));
    for (int32_t dt = TOKEMB_F16; dt <= TOKEMB_Q8_ROW; dt++) {
        tokemb_table *c = NULL;
        TK_OK(tokemb_table_convert(f, dt, &c));
        assert_int_equal(tokemb_table_dtype(c), dt);
        TK_OK(tokemb_lookup(c, ids, 50, out));
        for (int i = 0; i < 50; i++) {
            TK_OK(tokemb_table_read_rows(c, ids[i], 1, row));
            assert_memory_equal(out + i * dim, row, dim * sizeof(float));
            const float *ref = tokemb_table_data(f) + ids[i] * dim;
            float lo = ref[0], hi = ref[0];
            for (int k = 1; k < dim; k++) lo = fminf(lo, ref[k]), hi = fmaxf(hi, ref[k]);
            for (int k = 0; k < dim; k++) {
                float err = fabsf(row[k] - ref[k]);
                float bound = dt == TOKEMB_F16    ? fabsf(ref[k]) * 0x1p-11f + 0x1p-25f
                              : dt == TOKEMB_BF16 ? fabsf(ref[k]) * 0x1p-8f
                                                  : (hi - lo) / 255.0f * 0.5f + 1e-6f * (fabsf(lo) + fabsf(hi));
                if (!(err <= bound))
                    fail_msg("dtype %d row %lld col %d: |%g - %g| > %g", dt, (long long)ids[i], k, (double)row[k],
                             (double)ref[k], (double)bound);
            }
        }
        /* int32 ids and a strided output give the same rows */
        tk_fill_sentinel(out2, 50 * 40);
        TK_OK(tokemb_lookup_strided(c, ids, 50, out2, 40));
        for (int i = 0; i < 50; i++) {
            assert_memory_equal(out2 + i * 40, out + i * dim, dim * sizeof(float));
            uint32_t sent;
            memcpy(&sent, out2 + i * 40 + dim, 4);
            assert_int_equal(sent, 0x7fc0beefu);
        }
        TK_OK(tokemb_lookup_i32(c, ids32, 50, out2));
        assert_memory_equal(out2, out, 50 * dim * sizeof(float));
        /* same bits for any thread count */
        TK_OK(tokemb_set_num_threads(1));
        TK_OK(tokemb_lookup(c, ids, 50, out2));
        assert_memory_equal(out2, out, 50 * dim * sizeof(float));
        TK_OK(tokemb_set_num_threads(0));
        /* F32-only paths say so */
        TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_table_init_uniform(c, 1, 0, 1), "needs F32");
        int64_t bad = rows;
        TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup(c, &bad, 1, out), "outside [0, 37)");
        TK_OK(tokemb_table_set_param_f64(c, TOKEMB_MAX_NORM, 1.0));
        TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_lookup(c, ids, 50, out), "max_norm renormalisation needs F32");
        /* and back to F32 */
        tokemb_table *back = NULL;
        TK_OK(tokemb_table_set_param_f64(c, TOKEMB_MAX_NORM, 0.0));
        TK_OK(tokemb_table_convert(c, TOKEMB_F32, &back));
        TK_OK(tokemb_lookup(back, ids, 50, out2));
        TK_OK(tokemb_lookup(c, ids, 50, out));
        assert_memory_equal(out2, out, 50 * dim * sizeof(float));
        tokemb_table_free(back);
        tokemb_table_free(c);
    }
    free(out);
    free(out2);
    free(row);
    tokemb_table_free(f);
}

static void test_q8_layout_and_writes(void **state) {
    (void)state;
    /* one row [-1, 0, 0.5, 3]: bias = -1, scale = 4/255, codes lrintf((x+1)*255/(4+1e-8)) */
    uint8_t buf[2 * 16];
    memset(buf, 0xaa, sizeof buf);
    tokemb_table *t = NULL;
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_wrap(buf, 2, 4, 11, TOKEMB_Q8_ROW, 0, &t), "dim + 8 = 12");
    TK_OK(tokemb_table_wrap(buf, 2, 4, 16, TOKEMB_Q8_ROW, 0, &t));
    const float src[4] = {-1.0f, 0.0f, 0.5f, 3.0f};
    TK_OK(tokemb_table_write_rows(t, 1, 1, src));
    const uint8_t *r = buf + 16;
    assert_int_equal(r[0], 0);
    assert_int_equal(r[1], 64); /* 63.75 */
    assert_int_equal(r[2], 96); /* 95.625 */
    assert_int_equal(r[3], 255);
    float scale, bias;
    memcpy(&scale, r + 4, 4);
    memcpy(&bias, r + 8, 4);
    assert_true(scale == 4.0f / 255.0f);
    assert_true(bias == -1.0f);
    assert_int_equal(buf[12], 0xaa); /* padding bytes of row 0 untouched */
    assert_int_equal(r[12], 0xaa);
    float back[4];
    TK_OK(tokemb_table_read_rows(t, 1, 1, back));
    for (int k = 0; k < 4; k++) assert_true(back[k] == (float)r[k] * scale + bias);
    const float nan_row[4] = {0, NAN, 0, 0};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_write_rows(t, 0, 1, nan_row), "src[0][1]");
    assert_int_equal(buf[0], 0xaa);
    tokemb_table_free(t);
    /* a constant row dequantises exactly */
    tokemb_table *c = NULL;
    TK_OK(tokemb_table_create(1, 5, TOKEMB_Q8_ROW, &c));
    const float k5[5] = {2.5f, 2.5f, 2.5f, 2.5f, 2.5f};
    TK_OK(tokemb_table_write_rows(c, 0, 1, k5));
    float o[5];
    int64_t id0 = 0;
    TK_OK(tokemb_lookup(c, &id0, 1, o));
    for (int k = 0; k < 5; k++) assert_true(o[k] == 2.5f);
    tokemb_table *f = NULL;
    const float inf_row[5] = {1, INFINITY, 0, 0, 0};
    TK_OK(tokemb_table_create(1, 5, TOKEMB_F32, &f));
    TK_OK(tokemb_table_write_rows(f, 0, 1, inf_row));
    tokemb_table *q = (tokemb_table *)(uintptr_t)1;
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_convert(f, TOKEMB_Q8_ROW, &q), "row 0 column 1");
    assert_ptr_equal(q, (tokemb_table *)(uintptr_t)1);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_convert(f, 9, &q), "unknown dtype 9");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_convert(NULL, 1, &q), "NULL");
    tokemb_table_free(f);
    tokemb_table_free(c);
}

/* tokemb_table_convert copies every table parameter: each parameter (found by walking the parameter block from
 * 100 until neither getter knows the id, so a new parameter is covered without editing this test) is set to a
 * value other than its default on the source, and every converted table must read that value back. */
static void test_convert_copies_every_param(void **state) {
    (void)state;
    tokemb_table *src = NULL, *fresh = NULL;
    TK_OK(tokemb_table_create(4, 3, TOKEMB_F32, &src));
    TK_OK(tokemb_table_create(4, 3, TOKEMB_F32, &fresh));
    int32_t params[32];
    int is_f64[32];
    int64_t want_i[32];
    double want_f[32];
    int n = 0;
    for (int32_t p = 100;; p++) {
        int64_t di;
        double df;
        if (tokemb_table_get_param(fresh, p, &di) == TOKEMB_OK) {
            /* the first candidate that differs from the default and is accepted */
            const int64_t cand[] = {1, 2, 0};
            int set = 0;
            for (size_t k = 0; k < 3 && !set; k++)
                if (cand[k] != di && tokemb_table_set_param(src, p, cand[k]) == TOKEMB_OK) {
                    want_i[n] = cand[k];
                    set = 1;
                }
            assert_true(set);
            is_f64[n] = 0;
        } else if (tokemb_table_get_param_f64(fresh, p, &df) == TOKEMB_OK) {
            const double v = df == 3.5 ? 1.5 : 3.5;
            TK_OK(tokemb_table_set_param_f64(src, p, v));
            want_f[n] = v;
            is_f64[n] = 1;
        } else {
            break;
        }
        params[n++] = p;
        assert_true(n < 32);
    }
    assert_int_equal(n, 6); /* 100..105 today: PADDING_IDX ... NONTEMPORAL */
    for (int32_t dt = TOKEMB_F32; dt <= TOKEMB_Q8_ROW; dt++) {
        tokemb_table *c = NULL;
        TK_OK(tokemb_table_convert(src, dt, &c));
        for (int k = 0; k < n; k++) {
            if (is_f64[k]) {
                double v = 0;
                TK_OK(tokemb_table_get_param_f64(c, params[k], &v));
                if (v != want_f[k])
                    fail_msg("dtype %d: parameter %d reads %g, source %g", (int)dt, (int)params[k], v, want_f[k]);
            } else {
                int64_t v = 0;
                TK_OK(tokemb_table_get_param(c, params[k], &v));
                if (v != want_i[k])
                    fail_msg("dtype %d: parameter %d reads %lld, source %lld", (int)dt, (int)params[k], (long long)v,
                             (long long)want_i[k]);
            }
        }
        tokemb_table_free(c);
    }
    tokemb_table_free(fresh);
    tokemb_table_free(src);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f16_golden),
        cmocka_unit_test(test_bf16_golden),
        cmocka_unit_test(test_lookup_every_dtype),
        cmocka_unit_test(test_q8_layout_and_writes),
        cmocka_unit_test(test_convert_copies_every_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
