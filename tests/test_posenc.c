/* test_posenc.c - absolute and relative encoders: sinusoidal golden vectors (reference doc 1.6) and a
 * float64 evaluation (<= 1 ulp) for all layouts and odd dims, learned encode, the fused input embedding
 * and its backward against direct computation, ALiBi slopes against the get_slopes rule and the bias
 * forms, T5 buckets against the reference tables, Shaw indices, and bad input (nothing written). */
#include "tk_test.h"

#include <math.h>
#include <stdlib.h>

static uint32_t ulp_dist(float a, float b) {
    if (a == b) return 0;
    int32_t ia, ib;
    memcpy(&ia, &a, 4);
    memcpy(&ib, &b, 4);
    if ((ia < 0) != (ib < 0)) return (uint32_t)(abs(ia & 0x7fffffff) + abs(ib & 0x7fffffff));
    return (uint32_t)abs(ia - ib);
}

static tokemb_posenc *mk_sin(int64_t d, int32_t layout) {
    tokemb_posenc *pe = NULL;
    TK_OK(tokemb_posenc_create_sinusoidal(d, 10000.0, layout, &pe));
    return pe;
}

static void test_sinusoidal_golden(void **state) {
    (void)state;
    static const float want[3][8] = {
        {0.84147096f, 0.5403023f, 0.09983341f, 0.9950042f, 0.00999983f, 0.99995f, 0.001f, 0.9999995f},
        {0.84147096f, 0.09983341f, 0.00999983f, 0.001f, 0.5403023f, 0.9950042f, 0.99995f, 0.9999995f},
        {0.84147096f, 0.04639922f, 0.00215443f, 0.0001f, 0.5403023f, 0.998923f, 0.9999977f, 1.0f}};
    for (int l = 0; l < 3; l++) {
        tokemb_posenc *pe = mk_sin(8, l);
        float out[16];
        int64_t pos[2] = {0, 1};
        TK_OK(tokemb_posenc_encode(pe, pos, 2, out));
        for (int k = 0; k < 8; k++) {
            assert_true(fabsf(out[8 + k] - want[l][k]) <= 1e-6f * fabsf(want[l][k]) + 1e-8f);
            /* position 0: sin 0 = 0, cos 0 = 1 */
            int is_cos = l == 0 ? (k & 1) : k >= 4;
            assert_true(out[k] == (is_cos ? 1.0f : 0.0f));
        }
        tokemb_posenc_free(pe);
    }
}

/* float64 evaluation of each layout (the seed article's numpy recipe for INTERLEAVED) */
static double ref_value(int layout, int64_t d, int64_t p, int64_t k) {
    double P = (double)p;
    if (layout == 0) {
        double a = P * (1.0 / pow(10000.0, (double)(2 * (k / 2)) / (double)d));
        return (k & 1) ? cos(a) : sin(a);
    }
    if (layout == 1) {
        int64_t c = (d + 1) / 2;
        return k < c ? sin(P / pow(10000.0, (double)(2 * k) / (double)d))
                     : cos(P / pow(10000.0, (double)(2 * (k - c)) / (double)d));
    }
    int64_t h = d / 2;
    if (k >= 2 * h) return 0.0;
    int64_t i = k < h ? k : k - h;
    double w = exp(-(double)i * (log(10000.0) / (double)(h > 1 ? h - 1 : 1)));
    return k < h ? sin(P * w) : cos(P * w);
}

static void test_sinusoidal_float64(void **state) {
    (void)state;
    const int64_t dims[] = {1, 2, 3, 7, 8, 64, 511, 512};
    const int64_t pos[] = {0, 1, 2, 9, 100, 511, 4096, 100000, 1234567, -7, (int64_t)1 << 40};
    enum { NP = sizeof pos / sizeof pos[0] };
    uint32_t worst = 0;
    for (int l = 0; l < 3; l++)
        for (size_t di = 0; di < sizeof dims / sizeof dims[0]; di++) {
            int64_t d = dims[di];
            if (l == 2 && d < 2) continue;
            tokemb_posenc *pe = mk_sin(d, l);
            assert_int_equal(tokemb_posenc_dim(pe), d);
            float *out = malloc(sizeof(float) * NP * (size_t)d);
            TK_OK(tokemb_posenc_encode(pe, pos, NP, out));
            for (int t = 0; t < NP; t++)
                for (int64_t k = 0; k < d; k++) {
                    float r = (float)ref_value(l, d, pos[t], k);
                    uint32_t u = ulp_dist(out[t * d + k], r);
                    if (u > worst) worst = u;
                    if (u > 1)
                        fail_msg("layout %d d %lld p %lld k %lld: %.9g vs %.9g", l, (long long)d, (long long)pos[t],
                                 (long long)k, (double)out[t * d + k], (double)r);
                }
            if (l == 2 && (d & 1)) /* t2t/fairseq: zero column appended */
                for (int t = 0; t < NP; t++) assert_true(out[t * d + d - 1] == 0.0f);
            free(out);
            tokemb_posenc_free(pe);
        }
    assert_true(worst <= 1);
}

/* The seed article: positional_encoding(10, 512) has shape (1, 10, 512); row 0 alternates 0, 1. */
static void test_seed_shape(void **state) {
    (void)state;
    tokemb_posenc *pe = mk_sin(512, TOKEMB_INTERLEAVED);
    int64_t pos[10];
    for (int i = 0; i < 10; i++) pos[i] = i;
    float *out = malloc(sizeof(float) * 10 * 512);
    TK_OK(tokemb_posenc_encode(pe, pos, 10, out));
    for (int k = 0; k < 512; k++) assert_true(out[k] == ((k & 1) ? 1.0f : 0.0f));
    assert_true(out[9 * 512 + 0] == (float)sin(9.0));
    assert_true(out[9 * 512 + 1] == (float)cos(9.0));
    free(out);
    tokemb_posenc_free(pe);
}

static void test_learned(void **state) {
    (void)state;
    tokemb_posenc *pe = NULL;
    TK_OK(tokemb_posenc_create_learned(6, 4, &pe));
    tokemb_table *t = tokemb_posenc_table(pe);
    assert_non_null(t);
    assert_int_equal(tokemb_table_rows(t), 6);
    assert_int_equal(tokemb_table_dim(t), 4);
    TK_OK(tokemb_table_init_normal(t, 0, 0.0, 0.02));
    const float *w = tokemb_table_data(t);
    int64_t pos[3] = {5, 0, 2};
    float out[12];
    TK_OK(tokemb_posenc_encode(pe, pos, 3, out));
    for (int i = 0; i < 3; i++) assert_memory_equal(out + 4 * i, w + 4 * pos[i], 16);
    tk_fill_sentinel(out, 12);
    uint64_t ck = tk_checksum(out, sizeof out);
    int64_t bad[2] = {1, 6};
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_posenc_encode(pe, bad, 2, out),
                     "position 6 at index 1 is outside [0, 6)");
    bad[1] = -1;
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_posenc_encode(pe, bad, 2, out), "position -1");
    assert_int_equal(tk_checksum(out, sizeof out), ck);
    tokemb_posenc_free(pe);
}

static void test_embed(void **state) {
    (void)state;
    enum { V = 7, D = 6, B = 2, S = 3 };
    tokemb_table *tok = NULL;
    TK_OK(tokemb_table_create(V, D, TOKEMB_F32, &tok));
    TK_OK(tokemb_table_init_normal(tok, 123, 0.0, 1.0));
    const float *E = tokemb_table_data(tok);
    int64_t ids[B * S] = {1, 4, 4, 0, 6, 2};
    float out[B * S * D], pe_rows[S * D];
    const float scale = sqrtf((float)D);
    /* sinusoidal, start_pos 5 */
    tokemb_posenc *sp = mk_sin(D, TOKEMB_INTERLEAVED);
    int64_t pos[S] = {5, 6, 7};
    TK_OK(tokemb_posenc_encode(sp, pos, S, pe_rows));
    TK_OK(tokemb_embed(tok, sp, ids, B, S, 5, scale, out));
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++)
            for (int k = 0; k < D; k++) {
                float want = scale * E[ids[b * S + s] * D + k] + pe_rows[s * D + k];
                assert_true(out[(b * S + s) * D + k] == want);
            }
    /* learned, GPT-2 style scale 1 */
    tokemb_posenc *lp = NULL;
    TK_OK(tokemb_posenc_create_learned(8, D, &lp));
    TK_OK(tokemb_table_init_normal(tokemb_posenc_table(lp), 7, 0.0, 0.01));
    const float *W = tokemb_table_data(tokemb_posenc_table(lp));
    TK_OK(tokemb_embed(tok, lp, ids, B, S, 5, 1.0f, out));
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++)
            for (int k = 0; k < D; k++)
                assert_true(out[(b * S + s) * D + k] == E[ids[b * S + s] * D + k] + W[(5 + s) * D + k]);
    /* no PE */
    TK_OK(tokemb_embed(tok, NULL, ids, B, S, 0, 2.0f, out));
    for (int i = 0; i < B * S * D; i++) assert_true(out[i] == 2.0f * E[ids[i / D] * D + i % D]);

    /* errors: nothing written */
    tk_fill_sentinel(out, B * S * D);
    uint64_t ck = tk_checksum(out, sizeof out);
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_embed(tok, lp, ids, B, S, 6, 1.0f, out),
                     "position 8 (start_pos 6 + seq 3) is outside [0, 8)");
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_embed(tok, lp, ids, B, S, -1, 1.0f, out), "position -1");
    int64_t badids[B * S] = {1, 4, 4, 0, 7, 2};
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_embed(tok, sp, badids, B, S, 0, 1.0f, out), "token id 7 at index 4");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_embed(tok, sp, ids, B, S, 0, NAN, out), "scale");
    tokemb_posenc *wrong = mk_sin(D + 1, 0), *rope = NULL;
    TK_OK(tokemb_posenc_create_rope(D, D, 1e4, 0, &rope));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_embed(tok, wrong, ids, B, S, 0, 1.0f, out), "dim 7");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_embed(tok, rope, ids, B, S, 0, 1.0f, out), "RoPE");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_embed(NULL, sp, ids, B, S, 0, 1.0f, out), "NULL");
    assert_int_equal(tk_checksum(out, sizeof out), ck);

    /* max_norm: same renormalisation as lookup */
    tokemb_table *tok2 = NULL;
    TK_OK(tokemb_table_create(V, D, TOKEMB_F32, &tok2));
    TK_OK(tokemb_table_init_normal(tok2, 123, 0.0, 1.0));
    TK_OK(tokemb_table_set_param_f64(tok, TOKEMB_MAX_NORM, 1.0));
    TK_OK(tokemb_table_set_param_f64(tok2, TOKEMB_MAX_NORM, 1.0));
    float ref[B * S * D];
    TK_OK(tokemb_lookup(tok2, ids, B * S, ref));
    TK_OK(tokemb_embed(tok, NULL, ids, B, S, 0, 1.0f, out));
    assert_memory_equal(out, ref, sizeof out);
    assert_memory_equal(tokemb_table_data(tok), tokemb_table_data(tok2), sizeof(float) * V * D);

    tokemb_posenc_free(wrong);
    tokemb_posenc_free(rope);
    tokemb_posenc_free(sp);
    tokemb_posenc_free(lp);
    tokemb_table_free(tok);
    tokemb_table_free(tok2);
}

static void test_embed_backward(void **state) {
    (void)state;
    enum { V = 5, D = 3, B = 2, S = 3, L = 6 };
    tokemb_table *tok = NULL;
    TK_OK(tokemb_table_create(V, D, TOKEMB_F32, &tok));
    tokemb_posenc *lp = NULL;
    TK_OK(tokemb_posenc_create_learned(L, D, &lp));
    int64_t ids[B * S] = {2, 0, 2, 4, 2, 1};
    float g[B * S * D];
    for (int i = 0; i < B * S * D; i++) g[i] = 0.1f * (float)(i + 1) - 0.7f;
    float gt[V * D] = {0}, gp[L * D] = {0};
    const float scale = 1.7f;
    TK_OK(tokemb_embed_backward(tok, lp, ids, B, S, 2, scale, g, gt, gp));
    float wt[V * D] = {0}, wp[L * D] = {0};
    for (int i = 0; i < B * S; i++)
        for (int k = 0; k < D; k++) wt[ids[i] * D + k] += scale * g[i * D + k];
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++)
            for (int k = 0; k < D; k++) wp[(2 + s) * D + k] += g[(b * S + s) * D + k];
    assert_memory_equal(gt, wt, sizeof gt);
    assert_memory_equal(gp, wp, sizeof gp);
    /* padding row gets nothing; scale_grad_by_freq divides by the count (id 2 appears 3 times) */
    TK_OK(tokemb_table_set_param(tok, TOKEMB_PADDING_IDX, 4));
    TK_OK(tokemb_table_set_param(tok, TOKEMB_SCALE_GRAD_BY_FREQ, 1));
    memset(gt, 0, sizeof gt);
    TK_OK(tokemb_embed_backward(tok, NULL, ids, B, S, 0, 1.0f, g, gt, NULL));
    for (int k = 0; k < D; k++) {
        assert_true(gt[4 * D + k] == 0.0f);
        float w2 = 0;
        for (int i = 0; i < B * S; i++)
            if (ids[i] == 2) w2 = fmaf((float)(1.0 / 3.0), g[i * D + k], w2); /* torch's AVX2 build fuses */
        assert_true(gt[2 * D + k] == w2);
        assert_true(gt[1 * D + k] == g[5 * D + k]);
    }
    /* errors */
    tokemb_posenc *sp = mk_sin(D, 0);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_embed_backward(tok, sp, ids, B, S, 0, 1.0f, g, gt, gp), "grad_pe");
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_embed_backward(tok, lp, ids, B, S, 4, 1.0f, g, gt, gp),
                     "outside [0, 6)");
    tokemb_posenc_free(sp);
    tokemb_posenc_free(lp);
    tokemb_table_free(tok);
}

/* official get_slopes, recursively, in double */
static void ref_slopes(int n, double *out) {
    int c = 1;
    while (c * 2 <= n) c *= 2;
    double start = pow(2.0, -pow(2.0, -(log2((double)c) - 3)));
    for (int h = 0; h < c; h++) out[h] = pow(start, h + 1);
    if (c < n) {
        double *big = malloc(sizeof(double) * 2 * (size_t)c);
        ref_slopes(2 * c, big);
        for (int j = 0; j < n - c; j++) out[c + j] = big[2 * j];
        free(big);
    }
}

static void test_alibi(void **state) {
    (void)state;
    const int ns[] = {1, 2, 3, 4, 5, 6, 7, 8, 12, 16, 20, 24, 32, 40, 64, 80, 96, 112, 128};
    for (size_t t = 0; t < sizeof ns / sizeof ns[0]; t++) {
        tokemb_posenc *pe = NULL;
        TK_OK(tokemb_posenc_create_alibi(ns[t], &pe));
        float s[128];
        double r[128];
        TK_OK(tokemb_posenc_alibi_slopes(pe, s));
        ref_slopes(ns[t], r);
        for (int h = 0; h < ns[t]; h++)
            if (ulp_dist(s[h], (float)r[h]) > 0) fail_msg("n %d head %d: %.9g vs %.9g", ns[t], h, (double)s[h], r[h]);
        tokemb_posenc_free(pe);
    }
    tokemb_posenc *pe = NULL;
    TK_OK(tokemb_posenc_create_alibi(3, &pe));
    float s3[3];
    TK_OK(tokemb_posenc_alibi_slopes(pe, s3));
    assert_true(s3[0] == 0.0625f && s3[1] == 0.00390625f && s3[2] == 0.25f);
    tokemb_posenc_free(pe);

    /* H 2 (slopes 1/16, 1/256), queries at 2..4, keys 0..4 */
    TK_OK(tokemb_posenc_create_alibi(2, &pe));
    float b[2 * 3 * 5];
    TK_OK(tokemb_posenc_attn_bias(pe, 3, 5, 2, b));
    const float row0[5] = {-0.125f, -0.0625f, -0.0f, -INFINITY, -INFINITY};
    for (int j = 0; j < 5; j++) assert_true(b[j] == row0[j]);
    assert_true(signbit(b[2]));
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++) {
                double m = h == 0 ? 1.0 / 16 : 1.0 / 256;
                int d = 2 + i - j;
                float want = d < 0 ? -INFINITY : (float)(-m * d);
                assert_true(b[(h * 3 + i) * 5 + j] == want);
            }
    int64_t c = -1;
    TK_OK(tokemb_posenc_get_param(pe, TOKEMB_ALIBI_CAUSAL, &c));
    assert_int_equal(c, 1);
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ALIBI_CAUSAL, 0));
    TK_OK(tokemb_posenc_attn_bias(pe, 3, 5, 2, b));
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++) {
                double m = h == 0 ? 1.0 / 16 : 1.0 / 256;
                assert_true(b[(h * 3 + i) * 5 + j] == (float)(-m * abs(2 + i - j)));
            }
    /* max_bias 16 (MPT alibi_bias_max): slopes 2^(-16(h+1)/2) */
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ALIBI_MAX_BIAS, 16.0));
    TK_OK(tokemb_posenc_alibi_slopes(pe, s3));
    assert_true(s3[0] == 1.0f / 256 && s3[1] == 1.0f / 65536);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param_f64(pe, TOKEMB_ALIBI_MAX_BIAS, NAN),
                     "not finite");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param(pe, TOKEMB_ALIBI_CAUSAL, 3), "0 or 1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_attn_bias(pe, 3, 5, 2, NULL), "out is NULL");
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_posenc_attn_bias(pe, 3, 5, INT64_MIN, b), "q_offset");
    int32_t bk[4];
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_buckets(pe, 2, 2, 0, bk), "not available");
    tokemb_posenc_free(pe);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_alibi(0, &pe), "n_heads = 0");
}

/* The reference doc's bucket tables (default 32 buckets, max_distance 128). */
static int ref_bucket(int bidir, int rel) {
    static const int bi_edges[] = {8, 12, 16, 23, 32, 46, 64, 91}; /* first n of buckets 8..15 */
    static const int ca_edges[] = {16, 19, 21, 24, 27, 31, 35, 40, 46, 52, 59, 67, 77, 87, 99, 113}; /* 16..31 */
    if (bidir) {
        int n = abs(rel), ret = rel > 0 ? 16 : 0;
        if (n < 8) return ret + n;
        int b = 7;
        for (int k = 0; k < 8; k++)
            if (n >= bi_edges[k]) b = 8 + k;
        return ret + b;
    }
    int n = rel < 0 ? -rel : 0;
    if (n < 16) return n;
    int b = 15;
    for (int k = 0; k < 16; k++)
        if (n >= ca_edges[k]) b = 16 + k;
    return b;
}

static void test_t5(void **state) {
    (void)state;
    for (int bidir = 0; bidir < 2; bidir++) {
        tokemb_posenc *pe = NULL;
        TK_OK(tokemb_posenc_create_t5(2, 32, 128, bidir, &pe));
        /* one query at position 200, keys 0..400: rel = -200 .. 200 */
        int32_t bk[401];
        TK_OK(tokemb_posenc_buckets(pe, 1, 401, 200, bk));
        for (int j = 0; j <= 400; j++)
            if (bk[j] != ref_bucket(bidir, j - 200))
                fail_msg("bidir %d rel %d: %d vs %d", bidir, j - 200, bk[j], ref_bucket(bidir, j - 200));
        if (bidir) {
            static const int ex[21] = {8, 8, 8, 7, 6, 5, 4, 3, 2, 1, 0, 17, 18, 19, 20, 21, 22, 23, 24, 24, 24};
            for (int r = -10; r <= 10; r++) assert_int_equal(bk[200 + r], ex[r + 10]);
            for (int j = 0; j <= 400; j++) assert_int_not_equal(bk[j], 16);
        }
        /* bias from the table, and its gradient */
        tokemb_table *t = tokemb_posenc_table(pe);
        TK_OK(tokemb_table_init_normal(t, 3, 0.0, 1.0));
        const float *w = tokemb_table_data(t);
        float bias[2 * 3 * 4];
        int32_t b34[12];
        TK_OK(tokemb_posenc_attn_bias(pe, 3, 4, 1, bias));
        TK_OK(tokemb_posenc_buckets(pe, 3, 4, 1, b34));
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 12; i++) assert_true(bias[h * 12 + i] == w[b34[i] * 2 + h]);
        float g[24], gt[64] = {0}, want[64] = {0};
        for (int i = 0; i < 24; i++) g[i] = (float)i * 0.25f - 1.0f;
        TK_OK(tokemb_posenc_attn_bias_backward(pe, 3, 4, 1, g, gt));
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 12; i++) want[b34[i] * 2 + h] += g[h * 12 + i];
        assert_memory_equal(gt, want, sizeof gt);
        tokemb_posenc_free(pe);
    }
    tokemb_posenc *pe = (tokemb_posenc *)(uintptr_t)1;
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_t5(0, 32, 128, 1, &pe), "n_heads = 0");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_t5(2, 2, 128, 1, &pe), "num_buckets = 2");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_t5(2, 32, 8, 1, &pe), "max_distance = 8");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_t5(2, 32, 128, 2, &pe), "bidirectional = 2");
    assert_ptr_equal(pe, (tokemb_posenc *)(uintptr_t)1);
}

static void test_shaw(void **state) {
    (void)state;
    tokemb_posenc *pe = NULL;
    TK_OK(tokemb_posenc_create_shaw(2, 3, &pe));
    assert_int_equal(tokemb_table_rows(tokemb_posenc_table(pe)), 5);
    /* t2t _generate_relative_positions_matrix(3, 5, 2): range_q = last 3 key positions (q_offset 2) */
    int32_t idx[15];
    TK_OK(tokemb_posenc_buckets(pe, 3, 5, 2, idx));
    static const int32_t want[15] = {0, 1, 2, 3, 4, 0, 0, 1, 2, 3, 0, 0, 0, 1, 2};
    assert_memory_equal(idx, want, sizeof want);
    tokemb_table *t = tokemb_posenc_table(pe);
    TK_OK(tokemb_table_init_uniform(t, 1, -1.0, 1.0));
    const float *w = tokemb_table_data(t);
    float e[15 * 3];
    TK_OK(tokemb_posenc_shaw_embed(pe, 3, 5, 2, e));
    for (int i = 0; i < 15; i++) assert_memory_equal(e + 3 * i, w + 3 * want[i], 12);
    float g[45], gt[15] = {0}, wg[15] = {0};
    for (int i = 0; i < 45; i++) g[i] = (float)(i % 7) - 3.0f;
    TK_OK(tokemb_posenc_shaw_embed_backward(pe, 3, 5, 2, g, gt));
    for (int i = 0; i < 15; i++)
        for (int c = 0; c < 3; c++) wg[want[i] * 3 + c] += g[i * 3 + c];
    assert_memory_equal(gt, wg, sizeof gt);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_shaw_embed_backward(pe, 3, 5, 2, g, NULL), "grad_table");
    float ab[4];
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_attn_bias(pe, 1, 1, 0, ab), "not available");
    tokemb_posenc_free(pe);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_shaw(0, 3, &pe), "max_distance = 0");
}

static void test_bad_input(void **state) {
    (void)state;
    tokemb_posenc *pe = (tokemb_posenc *)(uintptr_t)1;
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_sinusoidal(0, 1e4, 0, &pe), "dim = 0");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_sinusoidal(-3, 1e4, 0, &pe), "dim = -3");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_sinusoidal(8, 0.0, 0, &pe), "base = 0");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_sinusoidal(8, NAN, 0, &pe), "base");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_sinusoidal(8, 1e4, 3, &pe), "unknown layout 3");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_sinusoidal(1, 1e4, TOKEMB_CONCAT_T2T, &pe),
                     "CONCAT_T2T");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_learned(0, 4, &pe), "max_len = 0");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_learned(4, 0, &pe), "dim = 0");
    assert_ptr_equal(pe, (tokemb_posenc *)(uintptr_t)1);
    pe = mk_sin(4, TOKEMB_CONCAT);
    float out[8];
    tk_fill_sentinel(out, 8);
    uint64_t ck = tk_checksum(out, sizeof out);
    int64_t pos[2] = {0, ((int64_t)1 << 53) + 1};
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_posenc_encode(pe, pos, 2, out), "index 1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_encode(pe, NULL, 2, out), "positions is NULL");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_encode(pe, pos, 2, NULL), "out is NULL");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_encode(NULL, pos, 2, out), "NULL");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, 1), "RoPE");
    assert_int_equal(tk_checksum(out, sizeof out), ck);
    assert_null(tokemb_posenc_table(pe));
    TK_OK(tokemb_posenc_encode(pe, NULL, 0, NULL));
    tokemb_posenc *rope = NULL;
    TK_OK(tokemb_posenc_create_rope(4, 4, 1e4, 0, &rope));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_encode(rope, pos, 1, out), "RoPE");
    float x[4] = {1, 2, 3, 4};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_rope_apply(pe, x, 1, 1, pos), "not a RoPE");
    tokemb_posenc_free(rope);
    tokemb_posenc_free(pe);
}

/* Thread count never changes the bits (encode and embed run on tk_parallel_for). */
static void test_threads_bitwise(void **state) {
    (void)state;
    enum { N = 3000, D = 40, V = 50 };
    tokemb_posenc *pe = mk_sin(D, TOKEMB_CONCAT_T2T);
    tokemb_table *tok = NULL;
    TK_OK(tokemb_table_create(V, D, TOKEMB_F32, &tok));
    TK_OK(tokemb_table_init_uniform(tok, 5, -1.0, 1.0));
    int64_t *pos = malloc(sizeof(int64_t) * N), *ids = malloc(sizeof(int64_t) * N);
    float *a = malloc(sizeof(float) * N * D), *b = malloc(sizeof(float) * N * D);
    for (int i = 0; i < N; i++) pos[i] = (int64_t)i * 7 - 100, ids[i] = (i * 13) % V;
    TK_OK(tokemb_set_num_threads(1));
    TK_OK(tokemb_posenc_encode(pe, pos, N, a));
    TK_OK(tokemb_set_num_threads(3));
    TK_OK(tokemb_posenc_encode(pe, pos, N, b));
    assert_memory_equal(a, b, sizeof(float) * N * D);
    TK_OK(tokemb_embed(tok, pe, ids, 3, N / 3, 11, 2.5f, b));
    TK_OK(tokemb_set_num_threads(1));
    TK_OK(tokemb_embed(tok, pe, ids, 3, N / 3, 11, 2.5f, a));
    TK_OK(tokemb_set_num_threads(0));
    assert_memory_equal(a, b, sizeof(float) * N * D);
    free(pos);
    free(ids);
    free(a);
    free(b);
    tokemb_table_free(tok);
    tokemb_posenc_free(pe);
}

/* A table too large for the learned / Shaw encoders is an OVERFLOW reported under the encoder's name. */
static void test_encoder_table_overflow(void **state) {
    (void)state;
    tokemb_posenc *pe = NULL;
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_posenc_create_learned(INT64_MAX / 2, 4, &pe),
                     "tokemb_posenc_create_learned: the encoder's");
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_posenc_create_shaw(1 << 30, INT64_MAX / 8, &pe),
                     "tokemb_posenc_create_shaw: the encoder's");
    assert_null(pe);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sinusoidal_golden),
        cmocka_unit_test(test_sinusoidal_float64),
        cmocka_unit_test(test_seed_shape),
        cmocka_unit_test(test_learned),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_embed_backward),
        cmocka_unit_test(test_encoder_table_overflow),
        cmocka_unit_test(test_alibi),
        cmocka_unit_test(test_t5),
        cmocka_unit_test(test_shaw),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_threads_bitwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
