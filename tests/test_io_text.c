/* test_io_text.c - word2vec binary/text and GloVe files with tokemb_vocab: round trips, gensim's
 * duplicate rule, strict UTF-8, truncated and lying files, progress and cancellation. */
#define _GNU_SOURCE
#include "tk_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "tk_test_files.h"

static int setup(void **state) {
    (void)state;
    (void)tk_tmp_dir();
    return 0;
}
static int teardown(void **state) {
    (void)state;
    return tk_tmp_cleanup();
}

static const char *words[5] = {"king", "queen", "\xc3\xa9t\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac", "a"};

static void test_vocab_basics(void **state) {
    (void)state;
    tokemb_vocab *v = NULL;
    TK_OK(tokemb_vocab_create(&v));
    int64_t id = -7;
    for (int i = 0; i < 5; i++) {
        TK_OK(tokemb_vocab_add(v, words[i], strlen(words[i]), &id));
        assert_int_equal(id, i);
    }
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_vocab_add(v, "queen", 5, &id), "already has id 1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_vocab_add(v, "ab\xc3", 3, &id), "not valid UTF-8 (byte 2");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_vocab_add(v, "\xed\xa0\x80", 3, &id), "UTF-8");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_vocab_add(v, "", 0, &id), "empty");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_vocab_add(v, "a\0b", 3, &id), "NUL");
    assert_int_equal(tokemb_vocab_size(v), 5);
    assert_int_equal(tokemb_vocab_find(v, "queen", 5), 1);
    assert_int_equal(tokemb_vocab_find(v, "quee", 4), -1);
    assert_int_equal(tokemb_vocab_find(v, "kingdom", 4), 0); /* length-delimited */
    size_t len = 0;
    assert_string_equal(tokemb_vocab_word(v, 3, &len), words[3]);
    assert_int_equal(len, 6);
    assert_null(tokemb_vocab_word(v, 5, &len));
    assert_null(tokemb_vocab_word(v, -1, NULL));
    /* growth past the initial capacity keeps every mapping */
    char w[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(w, sizeof w, "w%d", i);
        TK_OK(tokemb_vocab_add(v, w, strlen(w), &id));
        assert_int_equal(id, 5 + i);
    }
    for (int i = 0; i < 5000; i += 37) {
        snprintf(w, sizeof w, "w%d", i);
        assert_int_equal(tokemb_vocab_find(v, w, strlen(w)), 5 + i);
    }
    tokemb_vocab_free(v);
    tokemb_vocab_free(NULL);
    assert_int_equal(tokemb_vocab_size(NULL), -1);
}

static void make_model(tokemb_table **t, tokemb_vocab **v) {
    TK_OK(tokemb_table_create(5, 3, TOKEMB_F32, t));
    TK_OK(tokemb_table_init_normal(*t, 9, 0.0, 1.0));
    float *d = tokemb_table_data(*t);
    d[0] = 1e-30f; /* awkward values survive text round trips */
    d[1] = -3.4028235e38f;
    d[2] = 0.1f;
    d[3] = 1.17549435e-38f;
    d[4] = 16777217.0f;
    TK_OK(tokemb_vocab_create(v));
    for (int i = 0; i < 5; i++) TK_OK(tokemb_vocab_add(*v, words[i], strlen(words[i]), NULL));
}

static void test_vectors_roundtrip(void **state) {
    (void)state;
    tokemb_table *t, *l;
    tokemb_vocab *v, *lv;
    make_model(&t, &v);
    const char *names[3] = {"m.bin", "m.txt", "m.glove"};
    for (int32_t f = 0; f < 3; f++) {
        TK_OK(tokemb_vectors_save(t, v, tk_tmp(names[f]), f));
        TK_OK(tokemb_vectors_load(tk_tmp(names[f]), f, NULL, NULL, &l, &lv));
        assert_int_equal(tokemb_table_rows(l), 5);
        assert_int_equal(tokemb_table_dim(l), 3);
        assert_memory_equal(tokemb_table_data(l), tokemb_table_data(t), 15 * sizeof(float));
        for (int i = 0; i < 5; i++) assert_string_equal(tokemb_vocab_word(lv, i, NULL), words[i]);
        tokemb_table_free(l);
        tokemb_vocab_free(lv);
    }
    /* the text files look like gensim's */
    char buf[512];
    FILE *fp = fopen(tk_tmp("m.txt"), "rb");
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    assert_true(strncmp(buf, "5 3\nking 1e-30 -3.4028235e+38 0.1\n", 34) == 0);
    /* save errors */
    tokemb_vocab *bad;
    TK_OK(tokemb_vocab_create(&bad));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_vectors_save(t, bad, tk_tmp("x"), 0), "0 words but the table 5");
    for (int i = 0; i < 4; i++) TK_OK(tokemb_vocab_add(bad, words[i], strlen(words[i]), NULL));
    TK_OK(tokemb_vocab_add(bad, "two words", 9, NULL));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_vectors_save(t, bad, tk_tmp("x"), 1),
                     "word 4 contains whitespace");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_vectors_save(t, v, tk_tmp("x"), 3), "unknown format 3");
    assert_int_equal(access(tk_tmp("x"), F_OK), -1);
    tokemb_vocab_free(bad);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
}

static void test_duplicates_like_gensim(void **state) {
    (void)state;
    const char *txt = "4 2\na 1 2\nb 3 4\na 5 6\nc 7 8\n";
    tk_write_file(tk_tmp("dup.txt"), txt, strlen(txt));
    tokemb_table *t;
    tokemb_vocab *v;
    TK_OK(tokemb_vectors_load(tk_tmp("dup.txt"), TOKEMB_VECTORS_WORD2VEC_TEXT, NULL, NULL, &t, &v));
    assert_int_equal(tokemb_table_rows(t), 3); /* gensim: first kept, matrix shrunk */
    assert_int_equal(tokemb_vocab_size(v), 3);
    const float want[6] = {1, 2, 3, 4, 7, 8};
    assert_memory_equal(tokemb_table_data(t), want, sizeof want);
    assert_int_equal(tokemb_vocab_find(v, "c", 1), 2);
    int64_t ids[1] = {2};
    float out[2];
    TK_OK(tokemb_lookup(t, ids, 1, out));
    assert_true(out[0] == 7 && out[1] == 8);
    ids[0] = 3;
    TK_EXPECT_STATUS(TOKEMB_OUT_OF_RANGE, tokemb_lookup(t, ids, 1, out), "outside [0, 3)");
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    /* fastText .vec: trailing space before the newline; GloVe with CRLF */
    const char *vec = "2 3\n</s> 0.1 0.2 0.3 \nthe -1 -2 -3 \n";
    tk_write_file(tk_tmp("ft.vec"), vec, strlen(vec));
    TK_OK(tokemb_vectors_load(tk_tmp("ft.vec"), TOKEMB_VECTORS_WORD2VEC_TEXT, NULL, NULL, &t, &v));
    assert_true(tokemb_table_data(t)[2] == 0.3f && tokemb_table_data(t)[5] == -3.0f);
    assert_string_equal(tokemb_vocab_word(v, 0, NULL), "</s>");
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    const char *glove = "x 1.5 2\r\ny 3 4e1\r\n\r\n";
    tk_write_file(tk_tmp("g.txt"), glove, strlen(glove));
    TK_OK(tokemb_vectors_load(tk_tmp("g.txt"), TOKEMB_VECTORS_GLOVE, NULL, NULL, &t, &v));
    assert_int_equal(tokemb_table_rows(t), 2);
    assert_true(tokemb_table_data(t)[0] == 1.5f && tokemb_table_data(t)[3] == 40.0f);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
}

static void expect_load_error(const char *content, size_t n, int32_t format, int32_t status, const char *needle) {
    tk_write_file(tk_tmp("bad"), content, n);
    tokemb_table *t = (tokemb_table *)(uintptr_t)1;
    tokemb_vocab *v = (tokemb_vocab *)(uintptr_t)1;
    TK_EXPECT_STATUS(status, tokemb_vectors_load(tk_tmp("bad"), format, NULL, NULL, &t, &v), needle);
    assert_ptr_equal(t, (tokemb_table *)(uintptr_t)1);
    assert_ptr_equal(v, (tokemb_vocab *)(uintptr_t)1);
}
#define BAD(s, f, st, needle) expect_load_error(s, sizeof(s) - 1, f, st, needle)

static void test_vectors_bad_input(void **state) {
    (void)state;
    const int32_t B = TOKEMB_VECTORS_WORD2VEC_BINARY, T = TOKEMB_VECTORS_WORD2VEC_TEXT, G = TOKEMB_VECTORS_GLOVE;
    BAD("", T, TOKEMB_FORMAT, "empty");
    BAD("2 2", T, TOKEMB_FORMAT, "byte 3: expected a newline ending the header");
    BAD("2 x\n", T, TOKEMB_FORMAT, "byte 2: expected the header line");
    BAD("0 2\n", T, TOKEMB_FORMAT, "both must be >= 1");
    BAD("1000000000 300\na 1\n", T, TOKEMB_FORMAT, "lying header");
    BAD("99999999999999999999 3\n", B, TOKEMB_FORMAT, "too large");
    BAD("2 1\nabcdefgh 1\n", T, TOKEMB_FORMAT, "byte 15: expected vector 1 of 2, found the end");
    BAD("1 2\na 1\n", T, TOKEMB_FORMAT, "vector 0 has 1 values, expected 2");
    BAD("1 2\na 1 2 3\n", T, TOKEMB_FORMAT, "byte 10: vector 0: expected the end of the line");
    BAD("1 2\na 1 zz\n", T, TOKEMB_FORMAT, "byte 8: vector 0: expected a decimal number");
    BAD("1 2\na 1  2\n", T, TOKEMB_FORMAT, "byte 8: vector 0: expected a decimal number");
    BAD("1 2\n\xff 1 2\n", T, TOKEMB_FORMAT, "byte 4: vector 0: the line is not valid UTF-8");
    BAD("1 2\na 1 2\nextra\n", T, TOKEMB_FORMAT, "byte 10: expected the end of the file after 1 vectors");
    BAD("1 2\n 1 2\n", T, TOKEMB_FORMAT, "the word is empty");
    BAD("a 1 2\nb 1\n", G, TOKEMB_FORMAT, "vector 1 has 1 values, expected 2");
    BAD("a\n", G, TOKEMB_FORMAT, "first line holds no values");
    BAD(" \n\n", G, TOKEMB_FORMAT, "only whitespace");
    BAD("1 2\nab\xc3"
        "\x28 \x00\x00\x80\x3f\x00\x00\x00\x40",
        B, TOKEMB_FORMAT, "byte 6: vector 0: the word is not valid UTF-8");
    BAD("2 1\nab \x00\x00\x80\x3f"
        "cd \x00\x00",
        B, TOKEMB_FORMAT, "vector 1 needs 4 bytes of float32, only 2 remain");
    BAD("2 1\nab \x00\x00\x80\x3f\ncd\x00\x00", B, TOKEMB_FORMAT,
        "byte 12: expected a word ending in ' ' for vector 1");
    BAD("3 1\nab \x00\x00\x80\x3f\n", B, TOKEMB_FORMAT, "3 vectors of dim 1 need at least 18 bytes, but only 8 follow");
    BAD("2 1\nab \x00\x00\x80\x3f\ncdefg", B, TOKEMB_FORMAT,
        "byte 12: expected a word ending in ' ' for vector 1 of 2");
    tokemb_table *t;
    tokemb_vocab *v;
    TK_EXPECT_STATUS(TOKEMB_IO, tokemb_vectors_load(tk_tmpdir, T, NULL, NULL, &t, &v), "is a directory");
    TK_EXPECT_STATUS(TOKEMB_IO, tokemb_vectors_load(tk_tmp("nothing"), T, NULL, NULL, &t, &v), "cannot open");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_vectors_load(tk_tmp("bad"), 7, NULL, NULL, &t, &v),
                     "unknown format 7");
    /* binary: leading newlines before words are skipped (C tool), and the final one */
    const char bin[] = "2 1\nab \x00\x00\x80\x3f\ncd \x00\x00\x00\x40\n";
    tk_write_file(tk_tmp("ok.bin"), bin, sizeof bin - 1);
    TK_OK(tokemb_vectors_load(tk_tmp("ok.bin"), B, NULL, NULL, &t, &v));
    assert_true(tokemb_table_data(t)[0] == 1.0f && tokemb_table_data(t)[1] == 2.0f);
    assert_string_equal(tokemb_vocab_word(v, 1, NULL), "cd");
    tokemb_table_free(t);
    tokemb_vocab_free(v);
}

typedef struct {
    int calls;
    uint64_t last, total;
    int cancel_at;
} prog_state;

static int32_t progress(void *user, uint64_t done, uint64_t total) {
    prog_state *p = (prog_state *)user;
    if (done < p->last) fail_msg("progress went backwards");
    p->calls++;
    p->last = done;
    p->total = total;
    return p->calls == p->cancel_at;
}

static void test_progress_and_cancel(void **state) {
    (void)state;
    /* a ~10 MB GloVe file */
    const char *p = tk_tmp("big.glove");
    FILE *f = fopen(p, "wb");
    for (int i = 0; i < 200000; i++) fprintf(f, "w%d 0.25 -1.5 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18\n", i);
    long size = ftell(f);
    fclose(f);
    prog_state ps = {0, 0, 0, 0};
    tokemb_table *t;
    tokemb_vocab *v;
    TK_OK(tokemb_vectors_load(p, TOKEMB_VECTORS_GLOVE, progress, &ps, &t, &v));
    assert_true(ps.calls >= 3);
    assert_int_equal(ps.last, (uint64_t)size);
    assert_int_equal(ps.total, (uint64_t)size);
    assert_int_equal(tokemb_table_rows(t), 200000);
    assert_int_equal(tokemb_vocab_find(v, "w199999", 7), 199999);
    assert_true(tokemb_table_data(t)[18 * 199999 + 1] == -1.5f);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    prog_state cancel = {0, 0, 0, 2};
    t = (tokemb_table *)(uintptr_t)1;
    TK_EXPECT_STATUS(TOKEMB_CANCELLED, tokemb_vectors_load(p, TOKEMB_VECTORS_GLOVE, progress, &cancel, &t, &v),
                     "cancelled by the progress callback");
    assert_ptr_equal(t, (tokemb_table *)(uintptr_t)1);
    assert_int_equal(cancel.calls, 2);
    assert_string_equal(tokemb_status_string(TOKEMB_CANCELLED), "cancelled");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vocab_basics),           cmocka_unit_test(test_vectors_roundtrip),
        cmocka_unit_test(test_duplicates_like_gensim), cmocka_unit_test(test_vectors_bad_input),
        cmocka_unit_test(test_progress_and_cancel),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
