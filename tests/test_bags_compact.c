/* test_bags_compact.c - pooled bags over F16 / BF16 tables equal the same bags over the float32 rows those
 * tables decode to (tokemb_table_read_rows), bit for bit, in every mode, with padding and per-sample
 * weights. Q8_ROW MAX does too; Q8_ROW SUM / MEAN equal a naive loop of torch's embedding_bag_byte step
 * fmaf(w*scale, q, acc + w*bias) over the stored codes (tests/python/test_storage_torch.py checks torch
 * itself). Gradients and the bag backward keep requiring F32. */
#include "tk_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 97
#define DIM 37
#define N 300
#define BAGS 41

/* Bytes of one stored row (row_stride = dim) */
static size_t row_bytes(int32_t dtype, size_t dim) { return dtype == TOKEMB_Q8_ROW ? dim + 8 : 2 * dim; }

/* A compact table over a buffer the test owns (so the stored bytes can be read), filled from f32. */
static tokemb_table *compact_of(tokemb_table *f32, int32_t dtype, uint8_t **buf) {
    const int64_t rows = tokemb_table_rows(f32), dim = tokemb_table_dim(f32);
    *buf = calloc((size_t)rows, row_bytes(dtype, (size_t)dim));
    assert_non_null(*buf);
    tokemb_table *c = NULL;
    TK_OK(tokemb_table_wrap(*buf, rows, dim, dtype == TOKEMB_Q8_ROW ? dim + 8 : dim, dtype, 0, &c));
    TK_OK(tokemb_table_write_rows(c, 0, (size_t)rows, tokemb_table_data(f32)));
    return c;
}

/* Q8_ROW SUM / MEAN as torch's embedding_bag_byte_rowwise_offsets, padding skipped and not counted. */
static void q8_bags_ref(const uint8_t *buf, size_t dim, const int64_t *ids, const int64_t *offsets, size_t nb,
                        int32_t mode, const float *w, int64_t pad, float *out) {
    for (size_t b = 0; b < nb; b++) {
        float *o = out + b * dim;
        size_t cnt = 0;
        for (size_t c = 0; c < dim; c++) o[c] = 0.0f;
        for (int64_t j = offsets[b]; j < offsets[b + 1]; j++) {
            if (ids[j] == pad) continue;
            cnt++;
            const uint8_t *row = buf + (size_t)ids[j] * (dim + 8);
            float sc, bi;
            memcpy(&sc, row + dim, 4);
            memcpy(&bi, row + dim + 4, 4);
            if (w) {
                sc = w[j] * sc;
                bi = w[j] * bi;
            }
            for (size_t c = 0; c < dim; c++) o[c] = fmaf(sc, (float)row[c], o[c] + bi);
        }
        if (mode == TOKEMB_MEAN)
            for (size_t c = 0; c < dim; c++) o[c] = o[c] / (float)(cnt ? cnt : 1);
    }
}

/* The expected bags: over the decoded float32 table, or torch's Q8_ROW accumulation for SUM / MEAN. */
static void expected_bags(int32_t dtype, const uint8_t *buf, tokemb_table *dec, size_t dim, const int64_t *ids,
                          size_t n, const int64_t *offsets, size_t nb, int32_t mode, const float *w, int64_t pad,
                          float *out) {
    if (dtype == TOKEMB_Q8_ROW && mode != TOKEMB_MAX) q8_bags_ref(buf, dim, ids, offsets, nb, mode, w, pad, out);
    else TK_OK(tokemb_lookup_bags(dec, ids, n, offsets, nb, mode, w, out));
}

static void check_dtype(int32_t dtype, int64_t pad) {
    tokemb_table *f32 = NULL, *c = NULL, *dec = NULL;
    uint8_t *buf = NULL;
    TK_OK(tokemb_table_create(ROWS, DIM, TOKEMB_F32, &f32));
    TK_OK(tokemb_table_init_normal(f32, 5, 0.0, 1.0));
    c = compact_of(f32, dtype, &buf);
    float *decoded = malloc(sizeof(float) * ROWS * DIM);
    assert_non_null(decoded);
    TK_OK(tokemb_table_read_rows(c, 0, ROWS, decoded));
    TK_OK(tokemb_table_wrap(decoded, ROWS, DIM, DIM, TOKEMB_F32, TOKEMB_WRAP_READONLY, &dec));
    const int64_t tpad = pad == TOKEMB_NO_PADDING ? -1 : pad;
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
    for (int b = 1; b < BAGS; b++)
        if (offsets[b] > N) offsets[b] = N;
    offsets[BAGS] = N;
    static float a[BAGS * DIM], r[BAGS * DIM];
    for (int32_t mode = TOKEMB_SUM; mode <= TOKEMB_MAX; mode++) {
        TK_OK(tokemb_lookup_bags(c, ids, N, offsets, BAGS, mode, NULL, a));
        expected_bags(dtype, buf, dec, DIM, ids, N, offsets, BAGS, mode, NULL, tpad, r);
        assert_memory_equal(a, r, sizeof a);
    }
    TK_OK(tokemb_lookup_bags(c, ids, N, offsets, BAGS, TOKEMB_SUM, w, a));
    expected_bags(dtype, buf, dec, DIM, ids, N, offsets, BAGS, TOKEMB_SUM, w, tpad, r);
    assert_memory_equal(a, r, sizeof a);
    if (dtype == TOKEMB_Q8_ROW) { /* torch's accumulation is not the sum of the dequantised rows, but close */
        TK_OK(tokemb_lookup_bags(dec, ids, N, offsets, BAGS, TOKEMB_SUM, NULL, r));
        TK_OK(tokemb_lookup_bags(c, ids, N, offsets, BAGS, TOKEMB_SUM, NULL, a));
        for (size_t i = 0; i < BAGS * DIM; i++) assert_true(fabsf(a[i] - r[i]) <= 1e-5f * 15.0f * 4.0f);
    }

    /* training paths keep requiring F32; max_norm too */
    static float g[BAGS * DIM], gt[ROWS * DIM];
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED,
                     tokemb_lookup_bags_backward(c, ids, N, offsets, BAGS, TOKEMB_SUM, NULL, g, gt, NULL), "F32");
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_grad_accumulate(c, ids, N, gt, gt), "gradients need F32");
    TK_OK(tokemb_table_set_param_f64(c, TOKEMB_MAX_NORM, 1.0));
    tk_fill_sentinel(a, BAGS * DIM);
    uint64_t before = tk_checksum(a, sizeof a);
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_lookup_bags(c, ids, N, offsets, BAGS, TOKEMB_SUM, NULL, a), "max_norm");
    assert_true(tk_checksum(a, sizeof a) == before);
    free(decoded);
    tokemb_table_free(dec);
    tokemb_table_free(c);
    free(buf);
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

/* Wide rows (every column block width and a tail), long and empty bags, per-sample weights, 1-3 threads:
 * the compact kernels give the expected bags whatever the thread split. */
static void test_bags_wide_threads(void **state) {
    (void)state;
    enum { R = 50, D = 2048 + 37, NB = 120 };
    tokemb_table *f32 = NULL, *c = NULL, *dec = NULL;
    TK_OK(tokemb_table_create(R, D, TOKEMB_F32, &f32));
    TK_OK(tokemb_table_init_normal(f32, 9, 0.0, 1.0));
    for (int32_t dtype = TOKEMB_F16; dtype <= TOKEMB_Q8_ROW; dtype++) {
        uint8_t *buf = NULL;
        c = compact_of(f32, dtype, &buf);
        float *decoded = malloc(sizeof(float) * R * D);
        assert_non_null(decoded);
        TK_OK(tokemb_table_read_rows(c, 0, R, decoded));
        TK_OK(tokemb_table_wrap(decoded, R, D, D, TOKEMB_F32, TOKEMB_WRAP_READONLY, &dec));
        int64_t offsets[NB + 1];
        uint64_t s = 5;
        offsets[0] = 0;
        for (int b = 1; b <= NB; b++) /* lengths 0..45, one bag of 70 */
            offsets[b] = offsets[b - 1] + (b == 60 ? 70 : (int64_t)(tk_rand(&s) % 46));
        const size_t n = (size_t)offsets[NB];
        int64_t *ids = malloc(n * sizeof *ids);
        float *w = malloc(n * sizeof *w), *a = malloc(sizeof(float) * NB * D), *r = malloc(sizeof(float) * NB * D);
        assert_true(ids && w && a && r);
        for (size_t i = 0; i < n; i++) {
            ids[i] = (int64_t)(tk_rand(&s) % R);
            w[i] = (float)(tk_rand(&s) % 1000) / 250.0f - 2.0f;
        }
        for (int32_t mode = TOKEMB_SUM; mode <= TOKEMB_MAX + 1; mode++) {
            const int32_t m = mode > TOKEMB_MAX ? TOKEMB_SUM : mode;
            const float *psw = mode > TOKEMB_MAX ? w : NULL;
            expected_bags(dtype, buf, dec, D, ids, n, offsets, NB, m, psw, -1, r);
            for (int32_t th = 1; th <= 3; th++) {
                TK_OK(tokemb_set_num_threads(th));
                tk_fill_sentinel(a, NB * D);
                TK_OK(tokemb_lookup_bags(c, ids, n, offsets, NB, m, psw, a));
                assert_memory_equal(a, r, sizeof(float) * NB * D);
            }
        }
        TK_OK(tokemb_set_num_threads(0));
        free(ids);
        free(w);
        free(a);
        free(r);
        free(decoded);
        tokemb_table_free(dec);
        tokemb_table_free(c);
        free(buf);
    }
    tokemb_table_free(f32);
}

/* A huge n_bags is an overflow found before offsets[] is read (the array here has 2 entries). */
static void test_bags_huge_n_bags(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(4, 8, TOKEMB_F32, &t));
    const int64_t ids[1] = {1}, offsets[2] = {0, 1};
    float out[8];
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_lookup_bags(t, ids, 1, offsets, SIZE_MAX / 2, TOKEMB_SUM, NULL, out),
                     "overflows");
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bags_f16),         cmocka_unit_test(test_bags_bf16),
        cmocka_unit_test(test_bags_q8),          cmocka_unit_test(test_bags_wide_threads),
        cmocka_unit_test(test_bags_huge_n_bags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
