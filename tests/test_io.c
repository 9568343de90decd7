/* test_io.c - npy and safetensors files: round trips (copy and mmap), atomic saves, and hostile
 * input (truncated, lying headers, unknown dtypes, Fortran order, empty files, directories). */
#define _GNU_SOURCE
#include "tk_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
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

static size_t read_file(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static tokemb_table *make_f32(int64_t rows, int64_t dim, uint64_t seed) {
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, seed, 0.0, 1.0));
    return t;
}

/* A v1 npy file with the given header dict text and `data_bytes` bytes of data. */
static void write_npy(const char *path, const char *dict, size_t data_bytes, int version) {
    unsigned char buf[4096];
    size_t pre = version == 1 ? 10 : 12, dl = strlen(dict);
    size_t total = pre + dl + 1, padded = (total + 63) / 64 * 64, hl = padded - pre;
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)version;
    buf[7] = 0;
    if (version == 1) {
        buf[8] = (unsigned char)(hl & 0xff);
        buf[9] = (unsigned char)(hl >> 8);
    } else {
        buf[8] = (unsigned char)(hl & 0xff);
        buf[9] = (unsigned char)(hl >> 8);
        buf[10] = 0;
        buf[11] = 0;
    }
    memcpy(buf + pre, dict, dl);
    memset(buf + pre + dl, ' ', hl - dl - 1);
    buf[pre + hl - 1] = '\n';
    for (size_t i = 0; i < data_bytes; i++) buf[padded + i] = (unsigned char)(i * 7);
    tk_write_file(path, buf, padded + data_bytes);
}

static void test_npy_roundtrip_and_mmap(void **state) {
    (void)state;
    tokemb_table *t = make_f32(5, 7, 42), *a = NULL, *b = NULL;
    const char *p = tk_tmp("a.npy");
    TK_OK(tokemb_npy_save(t, p));
    unsigned char raw[1024];
    size_t n = read_file(p, raw, sizeof raw);
    assert_int_equal(n, 128 + 5 * 7 * 4);
    assert_memory_equal(raw, "\x93NUMPY\x01\x00", 8);
    assert_int_equal(raw[8] | (raw[9] << 8), 118);
    assert_non_null(strstr((char *)raw + 10, "'descr': '<f4', 'fortran_order': False, 'shape': (5, 7), }"));
    assert_int_equal(raw[127], '\n');
    assert_memory_equal(raw + 128, tokemb_table_data(t), 140);
    TK_OK(tokemb_npy_load(p, &a));
    assert_int_equal(tokemb_table_rows(a), 5);
    assert_int_equal(tokemb_table_dim(a), 7);
    assert_memory_equal(tokemb_table_data(a), tokemb_table_data(t), 140);
    TK_OK(tokemb_npy_mmap(p, &b));
    assert_memory_equal(tokemb_table_data(b), tokemb_table_data(t), 140);
    const float src[7] = {0};
    TK_EXPECT_STATUS(TOKEMB_READ_ONLY, tokemb_table_write_rows(b, 0, 1, src), "read-only");
    int64_t ids[3] = {4, 0, 2};
    float o1[21], o2[21];
    TK_OK(tokemb_lookup(a, ids, 3, o1));
    TK_OK(tokemb_lookup(b, ids, 3, o2));
    assert_memory_equal(o1, o2, sizeof o1);
    tokemb_table_free(b); /* unmaps */
    tokemb_table_free(a);

    /* F16 round trip and a v2 header written by hand */
    tokemb_table *h = NULL;
    TK_OK(tokemb_table_convert(t, TOKEMB_F16, &h));
    TK_OK(tokemb_npy_save(h, tk_tmp("h.npy")));
    TK_OK(tokemb_npy_load(tk_tmp("h.npy"), &a));
    assert_int_equal(tokemb_table_dtype(a), TOKEMB_F16);
    float r1[35], r2[35];
    TK_OK(tokemb_table_read_rows(a, 0, 5, r1));
    TK_OK(tokemb_table_read_rows(h, 0, 5, r2));
    assert_memory_equal(r1, r2, sizeof r1);
    tokemb_table_free(a);
    write_npy(tk_tmp("v2.npy"), "{'shape': (3,2), 'fortran_order': False, 'descr': '<f4'}", 24, 2);
    TK_OK(tokemb_npy_mmap(tk_tmp("v2.npy"), &a));
    assert_int_equal(tokemb_table_rows(a), 3);
    assert_int_equal(tokemb_table_dim(a), 2);
    tokemb_table_free(a);
    tokemb_table_free(h);
    tokemb_table_free(t);
}

static void test_npy_bad_input(void **state) {
    (void)state;
    tokemb_table *t = (tokemb_table *)(uintptr_t)0x1;
    TK_EXPECT_STATUS(TOKEMB_IO, tokemb_npy_load(tk_tmp("missing.npy"), &t), "cannot open");
    TK_EXPECT_STATUS(TOKEMB_IO, tokemb_npy_load(tk_tmpdir, &t), "is a directory");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_npy_load(NULL, &t), "path is NULL");
    tk_write_file(tk_tmp("empty.npy"), "", 0);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_npy_load(tk_tmp("empty.npy"), &t), "empty");
    tk_write_file(tk_tmp("junk.npy"), "hello world", 11);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_npy_load(tk_tmp("junk.npy"), &t), "byte 0: expected the npy magic");
    /* header dicts that must be refused, with the data bytes that follow them and the message's words; the
     * lying header's shape promises more than the file holds, ovf's byte count overflows (checked by mmap) */
    static const struct {
        const char *dict;
        size_t data;
        int mmap;
        const char *msg;
    } bad[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (3, 2), }", 24, 0, "Fortran order"},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (3, 2), }", 24, 0, "big-endian"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (3, 2), }", 48, 0, "'<f8' is not supported"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 1), }", 24, 0, "3 dimensions"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000), }", 24, 0,
         "needs 4000000000 data bytes from byte 128"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 8), }", 24, 1, "overflows"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", 23, 0, "has 23"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), 'x': 1}", 24, 0, "unexpected or repeated key 'x'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (3; 2), }", 24, 0,
         "expected ',' or ')' in the shape tuple, found ';'"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_npy(tk_tmp("bad.npy"), bad[i].dict, bad[i].data, 1);
        const int32_t st =
            bad[i].mmap ? tokemb_npy_mmap(tk_tmp("bad.npy"), &t) : tokemb_npy_load(tk_tmp("bad.npy"), &t);
        tk_expect_status(st, TOKEMB_FORMAT, bad[i].dict, bad[i].msg); /* names the header on failure */
    }
    /* preamble header length beyond the file */
    unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0xff, 0x7f, '{', '}'};
    tk_write_file(tk_tmp("hl.npy"), pre, sizeof pre);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_npy_load(tk_tmp("hl.npy"), &t), "runs past the end");
    assert_ptr_equal(t, (tokemb_table *)(uintptr_t)0x1);
}

static void test_save_atomic(void **state) {
    (void)state;
    tokemb_table *t = make_f32(4, 3, 7), *bf = NULL;
    const char *p = tk_tmp("keep.npy");
    TK_OK(tokemb_npy_save(t, p));
    unsigned char before[512], after[512];
    size_t nb = read_file(p, before, sizeof before);
    size_t entries = tk_tmp_count("");
    /* a failed save (BF16 cannot be npy) leaves the old file and no temp file */
    TK_OK(tokemb_table_convert(t, TOKEMB_BF16, &bf));
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_npy_save(bf, p), "convert the table");
    TK_EXPECT_STATUS(TOKEMB_IO, tokemb_npy_save(t, tk_tmp("nodir/x.npy")), "cannot create a temp file");
    TK_EXPECT_STATUS(TOKEMB_IO, tokemb_npy_save(t, tk_tmpdir), "is a directory");
    assert_int_equal(tk_tmp_count(""), entries);
    size_t na = read_file(p, after, sizeof after);
    assert_int_equal(na, nb);
    assert_memory_equal(before, after, nb);
    /* a successful save replaces the file */
    tokemb_table *t2 = make_f32(4, 3, 8), *l = NULL;
    TK_OK(tokemb_npy_save(t2, p));
    assert_int_equal(tk_tmp_count(""), entries);
    TK_OK(tokemb_npy_load(p, &l));
    assert_memory_equal(tokemb_table_data(l), tokemb_table_data(t2), 48);
    tokemb_table_free(l);
    tokemb_table_free(t2);
    tokemb_table_free(bf);
    tokemb_table_free(t);
}

static void test_safetensors_roundtrip(void **state) {
    (void)state;
    tokemb_table *a = make_f32(6, 4, 1), *b0 = make_f32(3, 5, 2), *b = NULL, *l = NULL;
    TK_OK(tokemb_table_convert(b0, TOKEMB_BF16, &b));
    const tokemb_table *ts[2] = {a, b};
    const char *names[2] = {"model.embed_tokens.weight", "transformer.wte.\"w\"\\\xc3\xa9"};
    const char *p = tk_tmp("m.safetensors");
    TK_OK(tokemb_safetensors_save(ts, names, 2, p));
    size_t n = 0, need = 0;
    TK_OK(tokemb_safetensors_names(p, NULL, 0, &n, &need));
    assert_int_equal(n, 2);
    assert_int_equal(need, strlen(names[0]) + strlen(names[1]) + 2);
    char buf[128];
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_safetensors_names(p, buf, 3, &n, &need), "smaller than");
    TK_OK(tokemb_safetensors_names(p, buf, sizeof buf, &n, &need));
    assert_string_equal(buf, names[0]);
    assert_string_equal(buf + strlen(names[0]) + 1, names[1]);
    TK_OK(tokemb_safetensors_load(p, names[0], &l));
    assert_int_equal(tokemb_table_dtype(l), TOKEMB_F32);
    assert_memory_equal(tokemb_table_data(l), tokemb_table_data(a), 6 * 4 * 4);
    tokemb_table_free(l);
    TK_OK(tokemb_safetensors_mmap(p, names[1], &l));
    assert_int_equal(tokemb_table_dtype(l), TOKEMB_BF16);
    assert_int_equal(tokemb_table_rows(l), 3);
    float r1[15], r2[15];
    TK_OK(tokemb_table_read_rows(l, 0, 3, r1));
    TK_OK(tokemb_table_read_rows(b, 0, 3, r2));
    assert_memory_equal(r1, r2, sizeof r1);
    tokemb_table_free(l);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_safetensors_load(p, "nope", &l), "no tensor named 'nope'");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_safetensors_load(p, NULL, &l), "holds 2 tensors");
    /* save errors leave nothing behind */
    size_t entries = tk_tmp_count("");
    const char *dup[2] = {"x", "x"};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_safetensors_save(ts, dup, 2, tk_tmp("d.st")), "repeats");
    const char *bad[1] = {"\xff"};
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_safetensors_save(ts, bad, 1, tk_tmp("d.st")), "UTF-8");
    assert_int_equal(tk_tmp_count(""), entries);
    tokemb_table_free(a);
    tokemb_table_free(b0);
    tokemb_table_free(b);
}

static void write_st(const char *path, const char *json, size_t data_bytes, int64_t hl_override) {
    unsigned char buf[4096];
    size_t jl = strlen(json);
    uint64_t hl = hl_override >= 0 ? (uint64_t)hl_override : jl;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(hl >> (8 * i));
    memcpy(buf + 8, json, jl);
    memset(buf + 8 + jl, 0x3f, data_bytes);
    tk_write_file(path, buf, 8 + jl + data_bytes);
}

static void test_safetensors_bad_input(void **state) {
    (void)state;
    tokemb_table *t = (tokemb_table *)(uintptr_t)0x1;
    const char *p = tk_tmp("bad.st");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, -1);
    tokemb_table *ok = NULL;
    TK_OK(tokemb_safetensors_load(p, NULL, &ok)); /* the control case is valid */
    tokemb_table_free(ok);
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 15, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "outside the 15 data bytes");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,16]}}", 16, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "span 16 bytes but shape x F32 needs 24");
    write_st(p, "{\"w\":{\"dtype\":\"Q4\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "unknown dtype 'Q4'");
    write_st(p, "{\"w\":{\"dtype\":\"I32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, -1);
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_safetensors_load(p, "w", &t), "dtype I32");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "1 dimensions");
    write_st(
        p,
        "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}",
        16, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "repeated tensor name 'w'");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2.0],\"data_offsets\":[0,16]}}", 16, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "no fraction");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999,2],\"data_offsets\":[0,16]}}", 16, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "below 2^63");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}", 16, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "overflows");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}", 16, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "expected ',' or '}' after a tensor");
    write_st(p, "{\"w\\ud800\":{}}", 0, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "low surrogate");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 16, 1000);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t),
                     "byte 0: safetensors header length 1000 runs past");
    tk_write_file(p, "\x01\x00", 2);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "truncated");
    write_st(p, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16],\"x\":1}}", 16, -1);
    TK_EXPECT_STATUS(TOKEMB_FORMAT, tokemb_safetensors_load(p, "w", &t), "unknown key 'x'");
    write_st(
        p, "{\"__metadata__\":{\"format\":\"pt\"},\"w\":{\"shape\":[1,2],\"dtype\":\"F16\",\"data_offsets\":[0,4]}}  ",
        4, -1);
    TK_EXPECT_STATUS(TOKEMB_UNSUPPORTED, tokemb_safetensors_mmap(p, "w", &t), "starts at byte 97, not 2-byte aligned");
    TK_OK(tokemb_safetensors_load(p, "w", &ok)); /* the copy has no alignment need */
    assert_int_equal(tokemb_table_dtype(ok), TOKEMB_F16);
    tokemb_table_free(ok);
    TK_EXPECT_STATUS(TOKEMB_IO, tokemb_safetensors_load(tk_tmpdir, "w", &t), "directory");
    TK_EXPECT_STATUS(TOKEMB_IO, tokemb_safetensors_mmap(tk_tmp("none.st"), "w", &t), "No such file");
    assert_ptr_equal(t, (tokemb_table *)(uintptr_t)0x1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_npy_roundtrip_and_mmap),
        cmocka_unit_test(test_npy_bad_input),
        cmocka_unit_test(test_save_atomic),
        cmocka_unit_test(test_safetensors_roundtrip),
        cmocka_unit_test(test_safetensors_bad_input),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
