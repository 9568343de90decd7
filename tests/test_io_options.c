/* test_io_options.c - the option entries added for the gensim-style word API: tokemb_vectors_load_ex
 * (limit, unicode policies with Python's decode results as the expected words, format detection),
 * tokemb_nearest_ex (progress, cancellation, all-zero rows scored NaN and ranked last) and the
 * safetensors metadata (tokemb_safetensors_save_ex / tokemb_safetensors_metadata). */
#define _GNU_SOURCE
#include "tk_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_test_files.h"

static void write_str(const char *path, const char *s, size_t n) { tk_write_file(path, s, n); }

/* word i of v equals the n bytes at w */
static void expect_word(const tokemb_vocab *v, int64_t i, const char *w, size_t n) {
    size_t len = 0;
    const char *got = tokemb_vocab_word(v, i, &len);
    assert_non_null(got);
    assert_int_equal(len, n);
    assert_memory_equal(got, w, n);
}

/* Expected words: Python's bytes.decode('utf-8', 'replace' / 'ignore') of the raw words. */
static void test_unicode_policies(void **state) {
    (void)state;
    static const char text[] = "5 2\n"
                               "ab\xff"
                               "cd 1 2\n"
                               "x\xe2\x82y 3 4\n"
                               "\xe0\x80z 5 6\n"
                               "\xf0\x9f\x98 7 8\n"
                               "\xed\xa0\x80q 9 10\n";
    const char *p = tk_tmp("bad.vec");
    write_str(p, text, sizeof text - 1);
    tokemb_table *t = NULL;
    tokemb_vocab *v = NULL;
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_vectors_load_ex(p, TOKEMB_VECTORS_WORD2VEC_TEXT, 0, 0, NULL, NULL, &t, &v),
                     "not valid UTF-8 (unicode errors 'ignore' or 'replace' accept such words)");
    TK_OK(
        tokemb_vectors_load_ex(p, TOKEMB_VECTORS_WORD2VEC_TEXT, 0, TOKEMB_VECTORS_UNICODE_REPLACE, NULL, NULL, &t, &v));
    assert_int_equal(tokemb_vocab_size(v), 5);
    expect_word(v, 0,
                "ab\xef\xbf\xbd"
                "cd",
                7);
    expect_word(v, 1, "x\xef\xbf\xbdy", 5);
    expect_word(v, 2, "\xef\xbf\xbd\xef\xbf\xbdz", 7);
    expect_word(v, 3, "\xef\xbf\xbd", 3);
    expect_word(v, 4, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbdq", 10);
    assert_true(tokemb_table_data(t)[9] == 10.0f);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    TK_OK(tokemb_vectors_load_ex(p, TOKEMB_VECTORS_AUTO, 0, TOKEMB_VECTORS_UNICODE_IGNORE, NULL, NULL, &t, &v));
    assert_int_equal(tokemb_vocab_size(v), 5);
    expect_word(v, 0, "abcd", 4);
    expect_word(v, 1, "xy", 2);
    expect_word(v, 2, "z", 1);
    expect_word(v, 3, "", 0); /* gensim keeps the empty word too */
    expect_word(v, 4, "q", 1);
    assert_int_equal(tokemb_vocab_find(v, "", 0), 3);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    /* binary words follow the same policy */
    char bin[64];
    size_t n = (size_t)snprintf(bin, sizeof bin, "2 1\n");
    const float f[2] = {1.5f, -2.0f};
    memcpy(bin + n, "w\xff ", 3);
    memcpy(bin + n + 3, &f[0], 4);
    memcpy(bin + n + 7, "\nw ", 3);
    memcpy(bin + n + 10, &f[1], 4);
    p = tk_tmp("bad.bin");
    write_str(p, bin, n + 14);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_vectors_load_ex(p, TOKEMB_VECTORS_AUTO, 0, 0, NULL, NULL, &t, &v), "UTF-8");
    TK_OK(tokemb_vectors_load_ex(p, TOKEMB_VECTORS_AUTO, 0, TOKEMB_VECTORS_UNICODE_IGNORE, NULL, NULL, &t, &v));
    assert_int_equal(tokemb_vocab_size(v), 1); /* "w\xff" -> "w", then "w" repeats it: first kept */
    assert_true(tokemb_table_data(t)[0] == 1.5f);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
}

static void test_limit_and_detection(void **state) {
    (void)state;
    static const char glove[] = "a 1 2\nb 3 4\nc 5 6\n";
    static const char vec[] = "3 2\na 1 2\nb 3 4\nc 5 6\n";
    static const char vec_junk[] = "3 2\na 1 2\nb 3 4\nnot a vector line at all\n";
    tokemb_table *t = NULL;
    tokemb_vocab *v = NULL;
    const char *files[3] = {tk_tmp("g.txt"), tk_tmp("v.vec"), tk_tmp("j.vec")};
    write_str(files[0], glove, sizeof glove - 1);
    write_str(files[1], vec, sizeof vec - 1);
    write_str(files[2], vec_junk, sizeof vec_junk - 1);
    for (int k = 0; k < 2; k++) {
        TK_OK(tokemb_vectors_load_ex(files[k], TOKEMB_VECTORS_AUTO, 0, 0, NULL, NULL, &t, &v));
        assert_int_equal(tokemb_table_rows(t), 3);
        assert_int_equal(tokemb_table_dim(t), 2);
        assert_true(tokemb_table_data(t)[5] == 6.0f);
        tokemb_table_free(t);
        tokemb_vocab_free(v);
        TK_OK(tokemb_vectors_load_ex(files[k], TOKEMB_VECTORS_AUTO, 2, 0, NULL, NULL, &t, &v));
        assert_int_equal(tokemb_table_rows(t), 2);
        assert_int_equal(tokemb_vocab_find(v, "c", 1), -1);
        tokemb_table_free(t);
        tokemb_vocab_free(v);
    }
    /* what follows the limit is not read (gensim reads only `limit` lines) */
    TK_EXPECT_STATUS(TOKEMB_FORMAT,
                     tokemb_vectors_load_ex(files[2], TOKEMB_VECTORS_WORD2VEC_TEXT, 0, 0, NULL, NULL, &t, &v),
                     "vector 2");
    TK_OK(tokemb_vectors_load_ex(files[2], TOKEMB_VECTORS_WORD2VEC_TEXT, 2, 0, NULL, NULL, &t, &v));
    assert_int_equal(tokemb_table_rows(t), 2);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    /* a limit above the count reads everything */
    TK_OK(tokemb_vectors_load_ex(files[1], TOKEMB_VECTORS_WORD2VEC_TEXT, 99, 0, NULL, NULL, &t, &v));
    assert_int_equal(tokemb_table_rows(t), 3);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    /* a binary file is detected as binary: save one and read it back */
    tokemb_table *b = NULL;
    tokemb_vocab *bv = NULL;
    TK_OK(tokemb_table_create(2, 3, TOKEMB_F32, &b));
    for (int i = 0; i < 6; i++) tokemb_table_data(b)[i] = (float)i * 0.25f - 0.5f;
    TK_OK(tokemb_vocab_create(&bv));
    TK_OK(tokemb_vocab_add(bv, "x", 1, NULL));
    TK_OK(tokemb_vocab_add(bv, "y", 1, NULL));
    TK_OK(tokemb_vectors_save(b, bv, tk_tmp("b.bin"), TOKEMB_VECTORS_WORD2VEC_BINARY));
    TK_OK(tokemb_vectors_load_ex(tk_tmp("b.bin"), TOKEMB_VECTORS_AUTO, 0, 0, NULL, NULL, &t, &v));
    assert_memory_equal(tokemb_table_data(t), tokemb_table_data(b), 6 * sizeof(float));
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    tokemb_table_free(b);
    tokemb_vocab_free(bv);
}

typedef struct {
    int calls, cancel_at;
    uint64_t last, total;
    int monotone;
} nn_prog;

static int32_t nn_progress(void *user, uint64_t done, uint64_t total) {
    nn_prog *p = (nn_prog *)user;
    if (done < p->last) p->monotone = 0;
    p->last = done;
    p->total = total;
    return ++p->calls == p->cancel_at;
}

static void test_nearest_ex(void **state) {
    (void)state;
    enum { R = 5000, D = 8, N = 300, K = 4 };
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(R, D, TOKEMB_F32, &t));
    float *w = tokemb_table_data(t);
    uint64_t s = 12345;
    for (int i = 0; i < R * D; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
    }
    float *q = (float *)malloc(sizeof(float) * N * D);
    int64_t *ids = (int64_t *)malloc(sizeof(int64_t) * N * K), *ids2 = (int64_t *)malloc(sizeof(int64_t) * N * K);
    float *sc = (float *)malloc(sizeof(float) * N * K), *sc2 = (float *)malloc(sizeof(float) * N * K);
    memcpy(q, w, sizeof(float) * N * D);
    nn_prog p = {0, 0, 0, 0, 1};
    TK_OK(tokemb_nearest_ex(t, q, N, K, TOKEMB_METRIC_COSINE, NULL, nn_progress, &p, ids, sc));
    TK_OK(tokemb_nearest(t, q, N, K, TOKEMB_METRIC_COSINE, NULL, ids2, sc2));
    assert_memory_equal(ids, ids2, sizeof(int64_t) * N * K);
    assert_memory_equal(sc, sc2, sizeof(float) * N * K);
    /* the start call, 3 row-norm blocks (2048, 2048, 904), 2 query blocks (256 + 44) x 3 row blocks */
    assert_int_equal(p.calls, 1 + 3 + 2 * 3);
    assert_int_equal(p.total, (uint64_t)N * R);
    assert_int_equal(p.last, (uint64_t)N * R);
    assert_true(p.monotone);
    nn_prog c = {0, 3, 0, 0, 1}; /* DOT: no norms; start, then 2 blocks of 256 x 2048 pairs */
    TK_EXPECT_STATUS(TOKEMB_CANCELLED, tokemb_nearest_ex(t, q, N, K, TOKEMB_METRIC_DOT, NULL, nn_progress, &c, ids, sc),
                     "cancelled by the progress callback after 1048576 of 1500000 pairs");
    assert_int_equal(c.calls, 3);
    nn_prog c0 = {0, 1, 0, 0, 1};
    TK_EXPECT_STATUS(TOKEMB_CANCELLED,
                     tokemb_nearest_ex(t, q, N, K, TOKEMB_METRIC_DOT, NULL, nn_progress, &c0, ids, sc),
                     "before scoring");
    nn_prog cn = {0, 3, 0, 0, 1};
    TK_EXPECT_STATUS(TOKEMB_CANCELLED,
                     tokemb_nearest_ex(t, q, N, K, TOKEMB_METRIC_COSINE, NULL, nn_progress, &cn, ids, sc),
                     "while computing row norms");
    /* all-zero rows score NaN under cosine and come after every row with a number (gensim: 0/0) */
    memset(w + 7 * D, 0, sizeof(float) * D);
    memset(w + 4000 * D, 0, sizeof(float) * D);
    float *all = (float *)malloc(sizeof(float) * R);
    int64_t *aid = (int64_t *)malloc(sizeof(int64_t) * R);
    TK_OK(tokemb_nearest_ex(t, q + 3 * D, 1, R, TOKEMB_METRIC_COSINE, NULL, NULL, NULL, aid, all));
    for (int i = 0; i < R - 2; i++) {
        assert_false(isnan(all[i]));
        assert_true(aid[i] != 7 && aid[i] != 4000);
    }
    assert_true(isnan(all[R - 2]) && isnan(all[R - 1]));
    assert_int_equal(aid[R - 2], 7); /* NaN ties by lower id */
    assert_int_equal(aid[R - 1], 4000);
    assert_true(all[R - 3] < 0.0f); /* a negatively correlated row still ranks above the zero rows */
    /* dot product: a zero row scores exactly 0 */
    TK_OK(tokemb_nearest_ex(t, q + 3 * D, 1, R, TOKEMB_METRIC_DOT, NULL, NULL, NULL, aid, all));
    for (int i = 0; i < R; i++)
        if (aid[i] == 7) assert_true(all[i] == 0.0f);
    free(all);
    free(aid);
    free(q);
    free(ids);
    free(ids2);
    free(sc);
    free(sc2);
    tokemb_table_free(t);
}

static void test_safetensors_metadata(void **state) {
    (void)state;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(2, 3, TOKEMB_F32, &t));
    const tokemb_table *tabs[1] = {t};
    const char *names[1] = {"weight"};
    const char *keys[3] = {"format", "quote\"and\\slash", "\xc3\xbc"};
    const char *vals[3] = {"pt", "line\nbreak\ttab", ""};
    const char *p = tk_tmp("m.safetensors");
    TK_OK(tokemb_safetensors_save_ex(tabs, names, 1, keys, vals, 3, p));
    size_t n = 0, need = 0;
    TK_OK(tokemb_safetensors_metadata(p, NULL, 0, &n, &need));
    assert_int_equal(n, 3);
    size_t expect = 0;
    for (int i = 0; i < 3; i++) expect += strlen(keys[i]) + strlen(vals[i]) + 2;
    assert_int_equal(need, expect);
    char buf[128];
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_safetensors_metadata(p, buf, need - 1, &n, &need), "smaller");
    TK_OK(tokemb_safetensors_metadata(p, buf, sizeof buf, &n, &need));
    const char *c = buf;
    for (int i = 0; i < 3; i++) {
        assert_string_equal(c, keys[i]);
        c += strlen(c) + 1;
        assert_string_equal(c, vals[i]);
        c += strlen(c) + 1;
    }
    /* the tensor is unchanged by the metadata */
    size_t nn = 0;
    TK_OK(tokemb_safetensors_names(p, buf, sizeof buf, &nn, &need));
    assert_int_equal(nn, 1);
    assert_string_equal(buf, "weight");
    /* no metadata: zero pairs; save_ex with n_meta 0 equals save */
    TK_OK(tokemb_safetensors_save_ex(tabs, names, 1, NULL, NULL, 0, tk_tmp("a.safetensors")));
    TK_OK(tokemb_safetensors_save(tabs, names, 1, tk_tmp("b.safetensors")));
    TK_OK(tokemb_safetensors_metadata(tk_tmp("a.safetensors"), buf, sizeof buf, &n, &need));
    assert_int_equal(n, 0);
    assert_int_equal(need, 0);
    /* bad metadata: nothing written */
    const char *dup[2] = {"k", "k"};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_safetensors_save_ex(tabs, names, 1, dup, vals, 2, tk_tmp("x")),
                     "meta_keys[1] repeats meta_keys[0] 'k'");
    const char *badu[1] = {"\xff"};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_safetensors_save_ex(tabs, names, 1, keys, badu, 1, tk_tmp("x")),
                     "meta_values[0] is not valid UTF-8");
    const char *nul[1] = {NULL};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_safetensors_save_ex(tabs, names, 1, nul, vals, 1, tk_tmp("x")),
                     "meta_keys[0] is NULL");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_safetensors_save_ex(tabs, names, 1, NULL, vals, 1, tk_tmp("x")),
                     "meta_keys is NULL");
    FILE *f = fopen(tk_tmp("x"), "rb");
    assert_null(f);
    /* a non-string metadata value is a format error */
    static const char js[] =
        "{\"__metadata__\":{\"n\":3},\"w\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[0,4]}}";
    char file[256];
    uint64_t hl = sizeof js - 1;
    memcpy(file, &hl, 8);
    memcpy(file + 8, js, hl);
    memset(file + 8 + hl, 0, 4);
    tk_write_file(tk_tmp("n.safetensors"), file, 8 + hl + 4);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_metadata(tk_tmp("n.safetensors"), NULL, 0, &n, &need),
                     "a string value in __metadata__");
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unicode_policies),
        cmocka_unit_test(test_limit_and_detection),
        cmocka_unit_test(test_nearest_ex),
        cmocka_unit_test(test_safetensors_metadata),
    };
    return cmocka_run_group_tests(tests, tk_tmp_group_setup, tk_tmp_group_teardown);
}
