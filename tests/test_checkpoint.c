/* Sharded checkpoints in the core (src/io/checkpoint.c): shards written with tokemb_safetensors_save,
 * the index with tokemb_checkpoint_save_index; the whole table and strided regions read back equal
 * the original bit for bit for row blocks, round-robin and column bands; bad layouts, corrupt indexes
 * and missing or mismatched shards fail with the status and a message naming the file and byte. */
#define _GNU_SOURCE
#include "tk_test.h"
#include "tk_test_files.h"

#include <stdlib.h>
#include <sys/stat.h>

enum { V = 37, D = 6 };
static float ref[V * D];

static void fill_ref(void) {
    for (int g = 0; g < V; g++)
        for (int c = 0; c < D; c++) ref[g * D + c] = (float)(g * 131 + c * 7 % 97) / 13.0f - 20.0f;
}

/* Writes the shard `name` holding rule (r0, step, rn) x cols (c0, cn) of ref as tensor "weight". */
static void write_shard(const char *name, const int64_t *l) {
    float *buf = malloc((size_t)(l[2] * l[4]) * sizeof *buf);
    for (int64_t i = 0; i < l[2]; i++)
        for (int64_t c = 0; c < l[4]; c++) buf[i * l[4] + c] = ref[(l[0] + i * l[1]) * D + l[3] + c];
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_wrap(buf, l[2], l[4], l[4], TOKEMB_F32, TOKEMB_WRAP_READONLY, &t));
    const tokemb_table *ts[1] = {t};
    const char *nm[1] = {"weight"};
    TK_OK(tokemb_safetensors_save(ts, nm, 1, tk_tmp(name)));
    tokemb_table_free(t);
    free(buf);
}

/* Writes every shard and the index; returns the index path. */
static const char *write_ckpt(const char *index, size_t n, const char *const *files, const int64_t *layout) {
    for (size_t k = 0; k < n; k++) write_shard(files[k], layout + 5 * k);
    const char *p = tk_tmp(index);
    TK_OK(tokemb_checkpoint_save_index(p, V, D, 7, n, files, layout));
    return p;
}

static void expect_whole(const char *p) {
    tokemb_table *t = NULL;
    TK_OK(tokemb_checkpoint_load(p, &t));
    assert_int_equal(tokemb_table_rows(t), V);
    assert_int_equal(tokemb_table_dim(t), D);
    assert_memory_equal(tokemb_table_data(t), ref, sizeof ref);
    tokemb_table_free(t);
    /* a strided region across files and column bands */
    float out[6 * 3], want[6 * 3];
    for (int i = 0; i < 6; i++)
        for (int c = 0; c < 3; c++) want[i * 3 + c] = ref[(3 + 5 * i) * D + 1 + c];
    TK_OK(tokemb_checkpoint_read(p, 3, 5, 6, 1, 3, out));
    assert_memory_equal(out, want, sizeof want);
    int64_t rows = 0, dim = 0, gen = 0;
    size_t nf = 0;
    TK_OK(tokemb_checkpoint_info(p, &rows, &dim, &gen, &nf));
    assert_int_equal(rows, V);
    assert_int_equal(dim, D);
    assert_int_equal(gen, 7);
}

static void test_layouts(void **state) {
    (void)state;
    fill_ref();
    /* three row blocks */
    const char *fa[] = {"a1.safetensors", "a2.safetensors", "a3.safetensors"};
    const int64_t la[] = {0, 1, 13, 0, D, 13, 1, 13, 0, D, 26, 1, 11, 0, D};
    expect_whole(write_ckpt("a.index.json", 3, fa, la));
    /* round-robin over 4 files (37 rows: 10, 9, 9, 9) */
    const char *fb[] = {"b1.safetensors", "b2.safetensors", "b3.safetensors", "b4.safetensors"};
    const int64_t lb[] = {0, 4, 10, 0, D, 1, 4, 9, 0, D, 2, 4, 9, 0, D, 3, 4, 9, 0, D};
    expect_whole(write_ckpt("b.index.json", 4, fb, lb));
    /* column bands [0, 2) as two row blocks and [2, 6) round-robin over 3 files, listed out of order */
    const char *fc[] = {"c5.safetensors", "c1.safetensors", "c3.safetensors", "c2.safetensors", "c4.safetensors"};
    const int64_t lc[] = {2, 3, 12, 2, 4, 0, 1, 20, 0, 2, 0, 3, 13, 2, 4, 20, 1, 17, 0, 2, 1, 3, 12, 2, 4};
    const char *pc = write_ckpt("c.index.json", 5, fc, lc);
    expect_whole(pc);
    size_t n = 0, need = 0;
    TK_OK(tokemb_checkpoint_files(pc, NULL, 0, &n, &need));
    assert_int_equal(n, 5);
    char names[128];
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_files(pc, names, need - 1, &n, &need), "smaller");
    TK_OK(tokemb_checkpoint_files(pc, names, sizeof names, &n, &need));
    assert_string_equal(names, "c5.safetensors");
    assert_string_equal(names + 15, "c1.safetensors");
    /* every single row and column of the round-robin band, one call each */
    for (int g = 0; g < V; g++) {
        float row[D];
        TK_OK(tokemb_checkpoint_read(pc, g, 1, 1, 0, D, row));
        assert_memory_equal(row, ref + g * D, sizeof row);
    }
    float col[V];
    TK_OK(tokemb_checkpoint_read(pc, 0, 1, V, 4, 1, col));
    for (int g = 0; g < V; g++) assert_true(col[g] == ref[g * D + 4]);
    float none = 42.0f;
    TK_OK(tokemb_checkpoint_read(pc, 0, 1, 0, 0, D, NULL));
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_read(pc, 30, 4, 3, 0, D, &none), "is not a region");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_read(pc, 0, 1, 1, 4, 3, &none), "is not a region");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_read(pc, 0, 0, 1, 0, D, &none), "is not a region");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_read(pc, 0, 1, 1, 0, D, NULL), "out is NULL");
    assert_true(none == 42.0f);
}

/* Wide rows (> the 4 MiB scratch): columns are read straight from each row. */
static void test_wide_rows(void **state) {
    (void)state;
    const int64_t W = (int64_t)1 << 21, R = 3; /* 8 MiB rows */
    float *a = malloc((size_t)(R * W) * sizeof *a), *b = malloc((size_t)(R * 4) * sizeof *b);
    for (int64_t i = 0; i < R * W; i++) a[i] = (float)(i % 1000003);
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_wrap(a, R, W, W, TOKEMB_F32, TOKEMB_WRAP_READONLY, &t));
    const tokemb_table *ts[1] = {t};
    const char *nm[1] = {"weight"};
    TK_OK(tokemb_safetensors_save(ts, nm, 1, tk_tmp("w.safetensors")));
    const char *files[1] = {"w.safetensors"};
    const int64_t l[5] = {0, 1, R, 0, W};
    TK_OK(tokemb_checkpoint_save_index(tk_tmp("w.index.json"), R, W, 0, 1, files, l));
    TK_OK(tokemb_checkpoint_read(tk_tmp("w.index.json"), 0, 1, R, W - 4, 4, b));
    for (int64_t i = 0; i < R; i++)
        for (int c = 0; c < 4; c++) assert_true(b[i * 4 + c] == a[i * W + W - 4 + c]);
    tokemb_table_free(t);
    free(a);
    free(b);
}

static void test_bad_layouts(void **state) {
    (void)state;
    const char *p = tk_tmp("bad.index.json");
    const char *f2[] = {"x1", "x2"};
    static const struct {
        int64_t l[10];
        const char *needle;
    } bad[] = {
        {{0, 1, 20, 0, D, 19, 1, 18, 0, D}, "files[1]: rows from 19 overlap at row 19"},
        {{0, 1, 20, 0, D, 21, 1, 16, 0, D}, "leave a gap at row 20"},
        {{0, 1, 20, 0, D, 20, 1, 16, 0, D}, "end at row 36, not 37"},
        {{0, 1, 20, 0, D, 20, 1, 18, 0, D}, "files[1]: rows [20, 1, 18] run outside"},
        {{0, 2, 19, 0, D, 1, 2, 17, 0, D}, "break the round-robin over 2 files"},
        {{0, 1, V, 0, 3, 0, 1, V, 2, 4}, "overlap at column 2"},
        {{0, 1, V, 0, 2, 0, 1, V, 3, 3}, "leave a gap at column 2"},
        {{0, 3, 13, 0, D, 1, 1, 24, 0, D}, "a strided file needs every file"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_save_index(p, V, D, 0, 2, f2, bad[i].l),
                         bad[i].needle);
    const int64_t one[] = {0, 1, V, 0, D};
    const char *slash[] = {"sub/x"}, *dot[] = {".x"}, *quote[] = {"a\"b"};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_save_index(p, V, D, 0, 1, slash, one), "no '/'");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_save_index(p, V, D, 0, 1, dot, one), "'.'");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_save_index(p, V, D, 0, 1, quote, one), "0x22 at 1");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_save_index(p, V, D, -1, 1, dot, one), "generation");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_checkpoint_save_index(p, V, D, 0, 0, dot, one), "n_files is 0");
    struct stat sb;
    assert_int_not_equal(stat(p, &sb), 0); /* nothing written */
    assert_int_equal(tk_tmp_count(".tokemb-"), 0);
}

/* Writes `text` as an index over one shard "s.safetensors" of the whole table. */
static const char *index_text(const char *text) {
    const char *p = tk_tmp("t.index.json");
    tk_write_file(p, text, strlen(text));
    return p;
}

#define HEAD "{\"format\": \"tokemb.checkpoint\", \"version\": 1, \"generation\": 0, \"dtype\": \"F32\", "

static void test_corrupt_index(void **state) {
    (void)state;
    fill_ref();
    const int64_t l[5] = {0, 1, V, 0, D};
    write_shard("s.safetensors", l);
    tokemb_table *t = (tokemb_table *)(uintptr_t)0x1;
    char good[512];
    snprintf(good, sizeof good,
             HEAD "\"shape\": [%d, %d], \"files\": [{\"file\": \"s.safetensors\", \"tensor\": \"weight\", \"rows\": "
                  "[0, 1, %d], \"cols\": [0, %d]}]}\n",
             V, D, V, D);
    TK_OK(tokemb_checkpoint_load(index_text(good), &t));
    assert_memory_equal(tokemb_table_data(t), ref, sizeof ref);
    tokemb_table_free(t);
    t = (tokemb_table *)(uintptr_t)0x1;
    char bad[600];
    /* truncated: the message names the index and the byte where it ended */
    memcpy(bad, good, 60);
    bad[60] = 0;
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(index_text(bad), &t), "t.index.json' byte 60: expected");
    snprintf(bad, sizeof bad, HEAD "\"shape\": [%d, %d], \"files\": [], \"x\": 1}", V, D);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(index_text(bad), &t), "at least one file entry");
    snprintf(bad, sizeof bad, HEAD "\"shape\": [%d, %d], \"shape\": [1, 1]}", V, D);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(index_text(bad), &t), "byte 97: repeated key 'shape'");
    snprintf(bad, sizeof bad, HEAD "\"shape\": [%d, %d], \"weight_map\": {}}", V, D);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(index_text(bad), &t), "unknown key 'weight_map'");
    snprintf(bad, sizeof bad, HEAD "\"shape\": [%d, %d]}", V, D);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(index_text(bad), &t), "lacks the key 'files'");
    snprintf(bad, sizeof bad, HEAD "\"shape\": [%d, -%d]}", V, D);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(index_text(bad), &t), "byte 93: expected a non-negative");
    snprintf(bad, sizeof bad, "%s", good);
    memcpy(strstr(bad, "F32"), "F16", 3);
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_checkpoint_load(index_text(bad), &t), "'F16' where tokemb reads only");
    snprintf(bad, sizeof bad, "%s", good);
    memcpy(strstr(bad, "\"version\": 1"), "\"version\": 2", 12);
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_checkpoint_load(index_text(bad), &t), "version 2");
    snprintf(bad, sizeof bad, "%s", good);
    memcpy(strstr(bad, "s.safetensors"), "/.safetensors", 13);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(index_text(bad), &t), "no '/'");
    /* the layout is validated as the writer's, with the entry's index byte */
    snprintf(bad, sizeof bad,
             HEAD "\"shape\": [%d, %d], \"files\": [{\"file\": \"s.safetensors\", \"tensor\": \"weight\", \"rows\": "
                  "[0, 1, %d], \"cols\": [0, %d]}]}",
             V + 1, D, V, D);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(index_text(bad), &t),
                     "byte 107: the row blocks of cols [0, 6] end at row 37, not 38");
    snprintf(bad, sizeof bad,
             HEAD "\"shape\": [%d, %d], \"files\": [{\"file\": \"s.safetensors\", \"rows\": [0, 1, %d], \"cols\": "
                  "[0, %d]}]}",
             V, D, V, D);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(index_text(bad), &t), "lacks 'tensor'");
    snprintf(bad, sizeof bad, "%s trailing", good);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(index_text(bad), &t), "the end of the file");
    TK_EXPECT_STATUS(TOKEMB_IO, tokemb_checkpoint_load(tk_tmp("none.index.json"), &t), "No such file");
    assert_ptr_equal(t, (tokemb_table *)(uintptr_t)0x1);
}

static void test_bad_shards(void **state) {
    (void)state;
    fill_ref();
    const char *f[] = {"m1.safetensors", "m2.safetensors"};
    const int64_t l[] = {0, 1, 20, 0, D, 20, 1, 17, 0, D};
    const char *p = write_ckpt("m.index.json", 2, f, l);
    tokemb_table *t = (tokemb_table *)(uintptr_t)0x1;
    /* missing shard: named, with the index byte of its entry; the rows of the first shard still read */
    remove(tk_tmp("m2.safetensors"));
    TK_EXPECT_STATUS(TOKEMB_IO, tokemb_checkpoint_load(p, &t), "No such file or directory (shard '");
    float rows[20 * D];
    TK_OK(tokemb_checkpoint_read(p, 0, 1, 20, 0, D, rows)); /* only m1 is opened */
    assert_memory_equal(rows, ref, sizeof rows);
    /* a shard of another shape */
    const int64_t wrong[5] = {20, 1, 16, 0, D};
    write_shard("m2.safetensors", wrong);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(p, &t), "is F32 of 2 dimensions [16, 6], but index");
    /* a truncated shard: the core's safetensors checks */
    write_shard("m2.safetensors", l + 5);
    assert_int_equal(truncate(tk_tmp("m2.safetensors"), 100), 0);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(p, &t), "lie outside the 28 data bytes");
    assert_non_null(strstr(tokemb_last_error(), "m2.safetensors' of index"));
    /* a shard without the tensor */
    float z[D] = {0};
    tokemb_table *o = NULL;
    TK_OK(tokemb_table_wrap(z, 1, D, D, TOKEMB_F32, TOKEMB_WRAP_READONLY, &o));
    const tokemb_table *ts[1] = {o};
    const char *nm[1] = {"other"};
    TK_OK(tokemb_safetensors_save(ts, nm, 1, tk_tmp("m2.safetensors")));
    tokemb_table_free(o);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_checkpoint_load(p, &t), "holds no tensor 'weight'");
    assert_ptr_equal(t, (tokemb_table *)(uintptr_t)0x1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layouts),       cmocka_unit_test(test_wide_rows),  cmocka_unit_test(test_bad_layouts),
        cmocka_unit_test(test_corrupt_index), cmocka_unit_test(test_bad_shards),
    };
    return cmocka_run_group_tests(tests, tk_tmp_group_setup, tk_tmp_group_teardown);
}
