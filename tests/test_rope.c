/* test_rope.c - RoPE: golden vectors of both layouts (reference doc 3.2), partial rotary, properties
 * (norm, inverse, relative position, permutation equivalence, p = 0), precision at large positions
 * against a long-double evaluation (and the float32 angle of transformers / ggml losing it), every
 * scaling variant's inv_freq and attention factor against worked examples and transformers' test
 * snapshots, strided layout, and bad input. */
#include "tk_test.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

static tokemb_posenc *mk_rope(int64_t hd, int64_t r, double base, int32_t layout) {
    tokemb_posenc *pe = NULL;
    TK_OK(tokemb_posenc_create_rope(hd, r, base, layout, &pe));
    return pe;
}

static void expect_close(const float *got, const double *want, size_t n, double rtol, double atol) {
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= atol + rtol * fabs(want[i])))
            fail_msg("index %zu: got %.9g want %.9g", i, (double)got[i], want[i]);
}

static void test_golden_vectors(void **state) {
    (void)state;
    static const double neox8[] = {-1.69559254, 0.13755174, 2.7886816,  3.97598204,
                                   -4.80884247, 6.32305935, 7.08683674, 8.01196398};
    static const double gptj8[] = {-1.27223251, -1.83886499, 1.68392864, 4.70790658,
                                   4.81777717,  6.1472777,   6.97596854, 8.02096397};
    static const double neox4[] = {-1.41335252, 1.87911807, -2.82885748, 4.05819114, 5, 6, 7, 8};
    static const double gptj4[] = {-1.27223251, -1.83886499, 2.8786681, 4.08818664, 5, 6, 7, 8};
    const double *want[4] = {neox8, gptj8, neox4, gptj4};
    const int64_t rd[4] = {8, 8, 4, 4};
    const int32_t lay[4] = {TOKEMB_NEOX, TOKEMB_GPTJ, TOKEMB_NEOX, TOKEMB_GPTJ};
    for (int c = 0; c < 4; c++) {
        tokemb_posenc *pe = mk_rope(8, rd[c], 10000.0, lay[c]);
        float x[8];
        for (int i = 0; i < 8; i++) x[i] = (float)(i + 1);
        int64_t p = 3;
        TK_OK(tokemb_rope_apply(pe, x, 1, 1, &p));
        expect_close(x, want[c], 8, 2e-7, 2e-7);
        if (rd[c] == 4) /* pass-through dims bit-identical */
            for (int i = 4; i < 8; i++) assert_true(x[i] == (float)(i + 1));
        tokemb_posenc_free(pe);
    }
}

static void fill(float *x, size_t n, uint64_t seed) {
    uint64_t s = seed;
    for (size_t i = 0; i < n; i++) x[i] = (float)((double)(tk_rand(&s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

static void test_properties(void **state) {
    (void)state;
    enum { HD = 16, H = 3, T = 5 };
    for (int lay = 0; lay < 2; lay++) {
        tokemb_posenc *pe = mk_rope(HD, 12, 10000.0, lay);
        float x[T * H * HD], y[T * H * HD];
        fill(x, T * H * HD, 7 + (uint64_t)lay);
        memcpy(y, x, sizeof x);
        int64_t pos[T] = {0, 1, 17, 4095, 100000};
        TK_OK(tokemb_rope_apply(pe, y, T, H, pos));
        for (int t = 0; t < T; t++)
            for (int h = 0; h < H; h++) {
                const float *a = x + (t * H + h) * HD, *b = y + (t * H + h) * HD;
                if (pos[t] == 0)
                    for (int k = 0; k < HD; k++) assert_true(a[k] == b[k]); /* p = 0: identity (cos 1, sin 0) */
                for (int k = 12; k < HD; k++) assert_true(a[k] == b[k]);
                double na = 0, nb = 0;
                for (int k = 0; k < 12; k++) na += (double)a[k] * a[k], nb += (double)b[k] * b[k];
                assert_true(fabs(na - nb) < 1e-5 * na + 1e-6);
            }
        /* backward (rotation by -theta) undoes forward */
        TK_OK(tokemb_rope_apply_backward(pe, y, T, H, pos));
        for (int i = 0; i < T * H * HD; i++) assert_true(fabsf(x[i] - y[i]) < 2e-6f);
        tokemb_posenc_free(pe);
    }
}

static double dotf(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void test_relative_property(void **state) {
    (void)state;
    enum { HD = 64 };
    tokemb_posenc *pe = mk_rope(HD, HD, 10000.0, TOKEMB_NEOX);
    float q[HD], k[HD];
    fill(q, HD, 1);
    fill(k, HD, 2);
    double ref = 0;
    int64_t pairs[4][2] = {{0, 5}, {10, 15}, {1000, 1005}, {77777, 77782}};
    for (int c = 0; c < 4; c++) {
        float qq[HD], kk[HD];
        memcpy(qq, q, sizeof q);
        memcpy(kk, k, sizeof k);
        TK_OK(tokemb_rope_apply(pe, qq, 1, 1, &pairs[c][0]));
        TK_OK(tokemb_rope_apply(pe, kk, 1, 1, &pairs[c][1]));
        double d = dotf(qq, kk, HD);
        if (c == 0) ref = d;
        else assert_true(fabs(d - ref) < 1e-5);
    }
    /* and it differs for another offset */
    float qq[HD], kk[HD];
    memcpy(qq, q, sizeof q);
    memcpy(kk, k, sizeof k);
    int64_t a = 0, b = 6;
    TK_OK(tokemb_rope_apply(pe, qq, 1, 1, &a));
    TK_OK(tokemb_rope_apply(pe, kk, 1, 1, &b));
    assert_true(fabs(dotf(qq, kk, HD) - ref) > 1e-3);
    tokemb_posenc_free(pe);
}

/* GPTJ(x) = P^-1 NEOX(P x), P = gather even channels then odd channels (within the rotary dims). */
static void test_layout_permutation(void **state) {
    (void)state;
    enum { HD = 10, R = 8 };
    tokemb_posenc *nx = mk_rope(HD, R, 500.0, TOKEMB_NEOX), *gj = mk_rope(HD, R, 500.0, TOKEMB_GPTJ);
    float x[HD], px[HD], g[HD];
    fill(x, HD, 9);
    for (int i = 0; i < R / 2; i++) px[i] = x[2 * i], px[R / 2 + i] = x[2 * i + 1];
    for (int i = R; i < HD; i++) px[i] = x[i];
    memcpy(g, x, sizeof x);
    int64_t p = 123;
    TK_OK(tokemb_rope_apply(nx, px, 1, 1, &p));
    TK_OK(tokemb_rope_apply(gj, g, 1, 1, &p));
    for (int i = 0; i < R / 2; i++) {
        assert_true(g[2 * i] == px[i]);
        assert_true(g[2 * i + 1] == px[R / 2 + i]);
    }
    tokemb_posenc_free(nx);
    tokemb_posenc_free(gj);
}

/* Angles at positions up to 2^24: tokemb's cos/sin equal the long-double evaluation to float32
 * rounding (<= 1 ulp), while transformers' float32 path (float32 inv_freq x float32 position) and
 * ggml-CPU's iterative float32 theta are off by far more. */
static void test_precision_large_positions(void **state) {
    (void)state;
    enum { R = 128, HALF = R / 2 };
    tokemb_posenc *pe = mk_rope(R, R, 10000.0, TOKEMB_NEOX);
    const int64_t pos[] = {4095, 131071, 1000003, 16777215, 16777216};
    const size_t np = sizeof pos / sizeof pos[0];
    float cs[5 * HALF], sn[5 * HALF];
    TK_OK(tokemb_posenc_rope_cos_sin(pe, pos, np, cs, sn));
    double worst_hf = 0, worst_ggml = 0;
    for (size_t t = 0; t < np; t++) {
        float theta_ggml = (float)pos[t], scale_ggml = powf(10000.0f, -2.0f / R);
        for (int i = 0; i < HALF; i++) {
            long double phi = (long double)pos[t] * powl(10000.0L, -(long double)(2 * i) / R);
            float rc = (float)cosl(phi), rs = (float)sinl(phi);
            float c = cs[t * HALF + i], s = sn[t * HALF + i];
            /* within 1 ulp of the correctly rounded value, or 1e-9 absolute near a zero of cos/sin (there
             * the exact angle's own double rounding, ~p*1e-16 rad, exceeds the tiny value's ulp) */
            if ((fabsf(c - rc) > nextafterf(fabsf(rc), INFINITY) - fabsf(rc) && fabsl(c - cosl(phi)) > 1e-9L) ||
                (fabsf(s - rs) > nextafterf(fabsf(rs), INFINITY) - fabsf(rs) && fabsl(s - sinl(phi)) > 1e-9L))
                fail_msg("p=%lld i=%d: cos %.9g vs %.9g, sin %.9g vs %.9g", (long long)pos[t], i, (double)c, (double)rc,
                         (double)s, (double)rs);
            /* transformers: inv_freq = 1/(base ** (arange(0,r,2).float()/r)) in float32; freqs = inv * p */
            float inv32 = 1.0f / powf(10000.0f, (float)(2 * i) / (float)R);
            float ang32 = inv32 * (float)pos[t];
            double ehf = fabs((double)cosf(ang32) - (double)cosl(phi));
            if (ehf > worst_hf) worst_hf = ehf;
            double eg = fabs((double)cosf(theta_ggml) - (double)cosl(phi));
            if (eg > worst_ggml) worst_ggml = eg;
            theta_ggml *= scale_ggml;
        }
    }
    /* the float32 references lose whole digits at these positions; tokemb does not */
    assert_true(worst_hf > 1e-2);
    assert_true(worst_ggml > 1e-2);
    tokemb_posenc_free(pe);
}

static void test_attention_factor_applied(void **state) {
    (void)state;
    tokemb_posenc *pe = mk_rope(8, 8, 10000.0, TOKEMB_NEOX);
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_ATTN_FACTOR, 2.0));
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int64_t p = 0;
    TK_OK(tokemb_rope_apply(pe, x, 1, 1, &p));
    for (int i = 0; i < 8; i++) assert_true(x[i] == 2.0f * (float)(i + 1));
    tokemb_posenc_free(pe);
}

static void get_inv(tokemb_posenc *pe, double *inv, size_t n, double *A) {
    TK_OK(tokemb_posenc_rope_inv_freq(pe, inv, n, A));
}

/* transformers tests/utils/test_modeling_rope_utils.py snapshots (dim 128, base 1e4, L 2048), 5 digits */
static const double yarn_snap[64] = {
    1.0000e+00, 8.6596e-01, 7.4989e-01, 6.4938e-01, 5.6234e-01, 4.8697e-01, 4.2170e-01, 3.6517e-01,
    3.1623e-01, 2.7384e-01, 2.3714e-01, 2.0535e-01, 1.7783e-01, 1.5399e-01, 1.3335e-01, 1.1548e-01,
    1.0000e-01, 8.3479e-02, 6.9590e-02, 5.7925e-02, 4.8136e-02, 3.9931e-02, 3.3061e-02, 2.7315e-02,
    2.2515e-02, 1.8512e-02, 1.5177e-02, 1.2403e-02, 1.0101e-02, 8.1924e-03, 6.6143e-03, 5.3120e-03,
    4.2400e-03, 3.3599e-03, 2.6396e-03, 2.0520e-03, 1.5746e-03, 1.1882e-03, 8.7713e-04, 6.2810e-04,
    4.3007e-04, 2.7384e-04, 2.3714e-04, 2.0535e-04, 1.7783e-04, 1.5399e-04, 1.3335e-04, 1.1548e-04,
    1.0000e-04, 8.6596e-05, 7.4989e-05, 6.4938e-05, 5.6234e-05, 4.8697e-05, 4.2170e-05, 3.6517e-05,
    3.1623e-05, 2.7384e-05, 2.3714e-05, 2.0535e-05, 1.7783e-05, 1.5399e-05, 1.3335e-05, 1.1548e-05};
static const double llama3_snap[10] = {1.0730e-02, 7.7785e-03, 5.6009e-03, 3.9991e-03, 2.8248e-03,
                                       1.9675e-03, 1.3449e-03, 8.9549e-04, 5.7363e-04, 3.4539e-04};

static void test_scaling_snapshots(void **state) {
    (void)state;
    double inv[64], def[64], A;
    tokemb_posenc *pe = mk_rope(128, 128, 10000.0, TOKEMB_NEOX);
    get_inv(pe, def, 64, &A);
    assert_true(A == 1.0);
    assert_true(def[0] == 1.0 && fabs(def[63] / 1.1548e-04 - 1) < 1e-4);
    /* linear */
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_LINEAR));
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_FACTOR, 10.0));
    get_inv(pe, inv, 64, &A);
    for (int i = 0; i < 64; i++) assert_true(fabs(inv[i] - def[i] / 10.0) <= 1e-16 * def[i]);
    /* yarn factor 10, L0 2048 */
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_YARN));
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_ORIGINAL_MAX_POS, 2048));
    get_inv(pe, inv, 64, &A);
    for (int i = 0; i < 64; i++)
        if (fabs(inv[i] / yarn_snap[i] - 1) > 6e-5)
            fail_msg("yarn inv_freq[%d] = %.6g vs %.5g", i, inv[i], yarn_snap[i]);
    assert_true(fabs(A - 1.2302585092994046) < 1e-12);
    /* llama3 factor 10, L0 2048, alpha 1, beta 4 */
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_LLAMA3));
    get_inv(pe, inv, 64, &A);
    for (int i = 0; i < 64; i++) {
        double w = i <= 30 ? def[i] : i >= 41 ? def[i] / 10 : llama3_snap[i - 31];
        if (fabs(inv[i] / w - 1) > (i <= 30 || i >= 41 ? 1e-15 : 6e-5))
            fail_msg("llama3 inv_freq[%d] = %.6g vs %.6g", i, inv[i], w);
    }
    /* dynamic factor 10, seq_len 16384 > 2048 */
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_DYNAMIC));
    get_inv(pe, inv, 64, &A);
    for (int i = 0; i < 64; i++) assert_true(inv[i] == def[i]); /* no length given yet: original base */
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SEQ_LEN, 16384));
    get_inv(pe, inv, 64, &A);
    assert_true(inv[0] == 1.0);
    assert_true(fabs(inv[1] / 8.0931e-01 - 1) < 6e-5 && fabs(inv[2] / 6.5498e-01 - 1) < 6e-5);
    assert_true(fabs(inv[63] / 1.6265e-06 - 1) < 6e-5);
    tokemb_posenc_free(pe);
}

static void test_scaling_worked_examples(void **state) {
    (void)state;
    double inv[64], def[64], A;
    /* yarn dim 128, base 1e4, L0 4096, s 16: (low, high) = (20, 46), A = 1.277259 */
    tokemb_posenc *pe = mk_rope(128, 128, 10000.0, TOKEMB_GPTJ);
    get_inv(pe, def, 64, &A);
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_YARN));
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_ORIGINAL_MAX_POS, 4096));
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_FACTOR, 16.0));
    get_inv(pe, inv, 64, &A);
    assert_true(fabs(A - 1.277259) < 1e-6);
    for (int i = 0; i <= 20; i++) assert_true(inv[i] == def[i]);
    for (int i = 46; i < 64; i++) assert_true(fabs(inv[i] - def[i] / 16) <= 1e-15 * def[i]);
    double ramp = (30.0 - 20.0) / 26.0; /* i = 30 inside the ramp */
    assert_true(fabs(inv[30] - (def[30] / 16 * ramp + def[30] * (1 - ramp))) < 1e-15);
    /* DeepSeek style mscale / mscale_all_dim, then an explicit factor */
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_MSCALE, 0.707));
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_MSCALE_ALL_DIM, 1.0));
    get_inv(pe, NULL, 0, &A);
    assert_true(fabs(A - (0.1 * 0.707 * log(16.0) + 1) / (0.1 * log(16.0) + 1)) < 1e-15);
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_ATTN_FACTOR, 1.5));
    get_inv(pe, NULL, 0, &A);
    assert_true(A == 1.5);
    tokemb_posenc_free(pe);

    /* gpt-oss: head 64, base 150000, L0 4096, s 32, truncate 0 -> fractional (8.0928, 17.398), A 1.346574 */
    pe = mk_rope(64, 64, 150000.0, TOKEMB_NEOX);
    get_inv(pe, def, 32, &A);
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_YARN));
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_ORIGINAL_MAX_POS, 4096));
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_FACTOR, 32.0));
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_TRUNCATE, 0));
    get_inv(pe, inv, 32, &A);
    assert_true(fabs(A - 1.346574) < 1e-6);
    const double lo = 8.092779115512402, hi = 17.39802450158856;
    for (int i = 0; i < 32; i++) {
        double r = ((double)i - lo) / (hi - lo);
        r = r < 0 ? 0 : r > 1 ? 1 : r;
        double w = def[i] / 32 * r + def[i] * (1 - r);
        assert_true(fabs(inv[i] - w) <= 1e-13 * def[i]);
    }
    tokemb_posenc_free(pe);

    /* llama 3.1: base 5e5, r 128, s 8, L0 8192 -> per-pair divisors */
    pe = mk_rope(128, 128, 500000.0, TOKEMB_NEOX);
    get_inv(pe, def, 64, &A);
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_LLAMA3));
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_ORIGINAL_MAX_POS, 8192));
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_FACTOR, 8.0));
    get_inv(pe, inv, 64, &A);
    static const double mid[6] = {1.207484, 1.553415, 2.026313, 2.694530, 3.684253, 5.257327};
    for (int i = 0; i < 64; i++) {
        double d = def[i] / inv[i];
        double w = i <= 28 ? 1 : i >= 35 ? 8 : mid[i - 29];
        if (fabs(d - w) > 1e-6) fail_msg("llama3.1 divisor %d = %.7f vs %.6f", i, d, w);
    }
    tokemb_posenc_free(pe);

    /* dynamic: s 2, L 8192, Lmax 4096, r 128 -> base' = 30527.74 */
    pe = mk_rope(128, 128, 10000.0, TOKEMB_NEOX);
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_DYNAMIC));
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_ORIGINAL_MAX_POS, 4096));
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_FACTOR, 2.0));
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SEQ_LEN, 8192));
    get_inv(pe, inv, 64, &A);
    double bprime = pow(inv[1], -64.0); /* inv[1] = base'^(-2/128) */
    assert_true(fabs(bprime - 30527.74) < 0.01);
    tokemb_posenc_free(pe);

    /* longrope: Phi-3-mini-128k A = 1.190238; short factors below L0, long above */
    pe = mk_rope(8, 8, 10000.0, TOKEMB_NEOX);
    get_inv(pe, def, 4, &A);
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_LONGROPE));
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_ORIGINAL_MAX_POS, 4096));
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_FACTOR, 131072.0 / 4096.0));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_rope_inv_freq(pe, inv, 4, &A), "set_longrope_factors");
    const double sf[4] = {1.0, 1.5, 2.0, 3.0}, lf[4] = {2.0, 4.0, 8.0, 16.0};
    TK_OK(tokemb_posenc_rope_set_longrope_factors(pe, sf, lf, 4));
    get_inv(pe, inv, 4, &A);
    assert_true(fabs(A - 1.190238) < 1e-6);
    for (int i = 0; i < 4; i++) assert_true(fabs(inv[i] - def[i] / sf[i]) <= 1e-15 * def[i]);
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SEQ_LEN, 4097));
    get_inv(pe, inv, 4, &A);
    for (int i = 0; i < 4; i++) assert_true(fabs(inv[i] - def[i] / lf[i]) <= 1e-15 * def[i]);
    tokemb_posenc_free(pe);
}

/* The strided [batch][heads][seq][dim] variant equals the contiguous one on transposed data. */
static void test_strided(void **state) {
    (void)state;
    enum { B = 2, H = 3, S = 4, D = 6 };
    tokemb_posenc *pe = mk_rope(D, 4, 10000.0, TOKEMB_GPTJ);
    float bhsd[B * H * S * D], bshd[B * S * H * D];
    fill(bhsd, B * H * S * D, 5);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int s = 0; s < S; s++)
                memcpy(bshd + ((b * S + s) * H + h) * D, bhsd + ((b * H + h) * S + s) * D, D * sizeof(float));
    int64_t pos[B * S] = {0, 1, 2, 3, 7, 8, 9, 10};
    TK_OK(tokemb_posenc_rope_apply_strided(pe, bhsd, B, H, S, H * S * D, S * D, D, pos, 0));
    TK_OK(tokemb_rope_apply(pe, bshd, B * S, H, pos));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int s = 0; s < S; s++)
                assert_memory_equal(bshd + ((b * S + s) * H + h) * D, bhsd + ((b * H + h) * S + s) * D,
                                    D * sizeof(float));
    TK_OK(tokemb_posenc_rope_apply_strided(pe, bhsd, B, H, S, H * S * D, S * D, D, pos, 1));
    TK_OK(tokemb_rope_apply_backward(pe, bshd, B * S, H, pos));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int s = 0; s < S; s++)
                assert_memory_equal(bshd + ((b * S + s) * H + h) * D, bhsd + ((b * H + h) * S + s) * D,
                                    D * sizeof(float));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_rope_apply_strided(pe, bhsd, B, H, S, -1, S * D, D, pos, 0),
                     "strides");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_rope_apply_strided(pe, bhsd, B, H, S, 1, 1, 1, pos, 2),
                     "backward = 2");
    tokemb_posenc_free(pe);
}

/* Thread count never changes the bits. */
static void test_threads_bitwise(void **state) {
    (void)state;
    enum { T = 600, H = 4, D = 32 };
    tokemb_posenc *pe = mk_rope(D, D, 10000.0, TOKEMB_NEOX);
    float *a = malloc(sizeof(float) * T * H * D), *b = malloc(sizeof(float) * T * H * D);
    int64_t pos[T];
    for (int i = 0; i < T; i++) pos[i] = i * 37;
    fill(a, (size_t)T * H * D, 3);
    memcpy(b, a, sizeof(float) * T * H * D);
    TK_OK(tokemb_set_num_threads(1));
    TK_OK(tokemb_rope_apply(pe, a, T, H, pos));
    TK_OK(tokemb_set_num_threads(3));
    TK_OK(tokemb_rope_apply(pe, b, T, H, pos));
    TK_OK(tokemb_set_num_threads(0));
    assert_memory_equal(a, b, sizeof(float) * T * H * D);
    free(a);
    free(b);
    tokemb_posenc_free(pe);
}

static void test_bad_input(void **state) {
    (void)state;
    tokemb_posenc *pe = (tokemb_posenc *)(uintptr_t)0x1;
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_rope(0, 0, 1e4, 0, &pe), "head_dim = 0");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_rope(8, 5, 1e4, 0, &pe), "rotary_dim = 5");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_rope(8, 10, 1e4, 0, &pe), "rotary_dim = 10");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_rope(8, 8, 0.0, 0, &pe), "base = 0");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_rope(8, 8, -2.0, 0, &pe), "base = -2");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_rope(8, 8, NAN, 0, &pe), "base");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_rope(8, 8, 1e4, 2, &pe), "layout 2");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_create_rope(8, 8, 1e4, 0, NULL), "out is NULL");
    assert_ptr_equal(pe, (tokemb_posenc *)(uintptr_t)0x1);

    pe = mk_rope(8, 8, 1e4, TOKEMB_NEOX);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, 6),
                     "unknown RoPE scaling 6");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_FACTOR, NAN), "not finite");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_FACTOR, INFINITY),
                     "not finite");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_FACTOR, 0.0), "> 0");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_BETA_FAST, NAN),
                     "not finite");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_ATTN_FACTOR, -1.0), ">= 0");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param(pe, TOKEMB_ROPE_FACTOR, 2), "double");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param(pe, TOKEMB_ALIBI_CAUSAL, 0), "ALiBi");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param(pe, 999, 0), "unknown parameter 999");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_set_param(pe, TOKEMB_ROPE_TRUNCATE, 2), "0 or 1");
    int64_t v = -5;
    TK_OK(tokemb_posenc_get_param(pe, TOKEMB_ROPE_SCALING, &v));
    assert_int_equal(v, TOKEMB_ROPE_SCALING_NONE);
    double fv = 0;
    TK_OK(tokemb_posenc_get_param_f64(pe, TOKEMB_ROPE_FACTOR, &fv));
    assert_true(fv == 1.0);

    float x[16], y[16];
    fill(x, 16, 4);
    memcpy(y, x, sizeof x);
    int64_t pos[2] = {3, -1};
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_rope_apply(pe, x, 2, 1, pos), "position -1 at index 1");
    assert_memory_equal(x, y, sizeof x);
    pos[1] = ((int64_t)1 << 53) + 1;
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_rope_apply_backward(pe, x, 2, 1, pos), "index 1");
    pos[1] = 4;
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_rope_apply(pe, NULL, 2, 1, pos), "x is NULL");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_rope_apply(pe, x, 2, 1, NULL), "positions is NULL");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_rope_apply(pe, x, 2, 0, pos), "n_heads");
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_rope_apply(pe, x, 2, SIZE_MAX / 4, pos), "overflows");
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_posenc_rope_apply_strided(pe, x, 2, 1, 2, INT64_MAX, 8, 8, pos, 0),
                     "overflows");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_rope_apply(NULL, x, 2, 1, pos), "NULL");
    /* inconsistent scaling configurations are caught at use, nothing written */
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_YARN));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_rope_apply(pe, x, 2, 1, pos), "ORIGINAL_MAX_POS");
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_ORIGINAL_MAX_POS, 64));
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_BETA_SLOW, 40.0));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_rope_apply(pe, x, 2, 1, pos), "beta_fast");
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_LLAMA3));
    TK_OK(tokemb_posenc_set_param_f64(pe, TOKEMB_ROPE_LOW_FREQ_FACTOR, 8.0));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_rope_apply(pe, x, 2, 1, pos), "high_freq_factor");
    assert_memory_equal(x, y, sizeof x);
    double f2[3] = {1, 1, 1}, bad[4] = {1, NAN, 1, 1}, ok4[4] = {1, 1, 1, 1};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_rope_set_longrope_factors(pe, f2, f2, 3), "n = 3");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_rope_set_longrope_factors(pe, bad, ok4, 4),
                     "short_factor[1]");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_posenc_rope_set_longrope_factors(pe, ok4, bad, 4),
                     "long_factor[1]");
    tokemb_posenc_free(pe);
    /* dynamic with r = 2 has no finite exponent r/(r-2) */
    pe = mk_rope(2, 2, 1e4, TOKEMB_NEOX);
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_DYNAMIC));
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_ORIGINAL_MAX_POS, 4));
    TK_OK(tokemb_posenc_set_param(pe, TOKEMB_ROPE_SEQ_LEN, 8));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_rope_apply(pe, x, 1, 1, pos), "rotary_dim > 2");
    tokemb_posenc_free(pe);
    tokemb_posenc_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_vectors),
        cmocka_unit_test(test_properties),
        cmocka_unit_test(test_relative_property),
        cmocka_unit_test(test_layout_permutation),
        cmocka_unit_test(test_precision_large_positions),
        cmocka_unit_test(test_attention_factor_applied),
        cmocka_unit_test(test_scaling_snapshots),
        cmocka_unit_test(test_scaling_worked_examples),
        cmocka_unit_test(test_strided),
        cmocka_unit_test(test_threads_bitwise),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
