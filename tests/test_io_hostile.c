/* test_io_hostile.c - hostile files (issue 15): loaders refuse FIFOs, directories and devices without
 * blocking; copy-mode loads survive a file that shrinks while they read it (TOKEMB_IO or a complete
 * load, never SIGBUS). */
#define _GNU_SOURCE
#include "tk_test.h"

#include <pthread.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tk_test_files.h"

/* Every path-taking loader, called on `path`; returns its status. */
static int32_t load_any(int which, const char *path) {
    tokemb_table *t = NULL;
    tokemb_vocab *v = NULL;
    char buf[64];
    size_t n = 0, need = 0;
    int32_t st;
    switch (which) {
    case 0: st = tokemb_npy_load(path, &t); break;
    case 1: st = tokemb_npy_mmap(path, &t); break;
    case 2: st = tokemb_safetensors_load(path, NULL, &t); break;
    case 3: st = tokemb_safetensors_mmap(path, NULL, &t); break;
    case 4: st = tokemb_safetensors_names(path, buf, sizeof buf, &n, &need); break;
    case 5: st = tokemb_safetensors_metadata(path, buf, sizeof buf, &n, &need); break;
    case 6: st = tokemb_vectors_load(path, TOKEMB_VECTORS_WORD2VEC_TEXT, NULL, NULL, &t, &v); break;
    case 7: st = tokemb_vectors_load(path, TOKEMB_VECTORS_GLOVE, NULL, NULL, &t, &v); break;
    case 8: st = tokemb_vectors_load(path, TOKEMB_VECTORS_WORD2VEC_BINARY, NULL, NULL, &t, &v); break;
    default: st = tokemb_vectors_load_ex(path, TOKEMB_VECTORS_AUTO, 3, 0, NULL, NULL, &t, &v); break;
    }
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    return st;
}
#define N_LOADERS 10

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_io_hostile: a loader blocked on a FIFO (alarm after 10 s)\n";
    (void)!write(2, msg, sizeof msg - 1);
    _exit(1);
}

/* Without O_NONBLOCK, open() of a FIFO waits for a writer forever: the alarm turns that into a failure. */
static void test_fifo_directory_device(void **state) {
    (void)state;
    signal(SIGALRM, on_alarm);
    const char *fifo = tk_tmp("fifo.npy");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    const char *dir = tk_tmp("adir");
    assert_int_equal(mkdir(dir, 0700), 0);
    for (int w = 0; w < N_LOADERS; w++) {
        alarm(10);
        TK_EXPECT_STATUS(TOKEMB_IO, load_any(w, fifo), "is not a regular file");
        TK_EXPECT_STATUS(TOKEMB_IO, load_any(w, dir), "is a directory");
        TK_EXPECT_STATUS(TOKEMB_IO, load_any(w, "/dev/zero"), "is not a regular file");
        alarm(0);
    }
    unlink(fifo);
    rmdir(dir);
}

/* A thread truncates a large file over and over while copy loads run: each load returns OK with the
 * whole, correct data or TOKEMB_IO naming the shrink; the process never gets SIGBUS. */
typedef struct {
    const char *path;
    off_t full, cut;
    atomic_int stop;
} shrink_ctx;

static void *shrinker(void *arg) {
    shrink_ctx *c = (shrink_ctx *)arg;
    while (!atomic_load(&c->stop)) {
        (void)!truncate(c->path, c->cut);
        usleep(200);
        (void)!truncate(c->path, c->full);
        usleep(200);
    }
    return NULL;
}

static void test_copy_load_of_a_shrinking_file(void **state) {
    (void)state;
    const int64_t rows = 4096, dim = 256; /* 4 MiB of data */
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, 3, 0.0, 1.0));
    const char *np = tk_tmp("shrink.npy"), *sp = tk_tmp("shrink.safetensors");
    TK_OK(tokemb_npy_save(t, np));
    const char *name = "w";
    const tokemb_table *tabs[1] = {t};
    TK_OK(tokemb_safetensors_save(tabs, &name, 1, sp));
    for (int fmt = 0; fmt < 2; fmt++) {
        const char *p = fmt ? sp : np;
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0);
        shrink_ctx c = {p, sb.st_size, 1024, 0};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, shrinker, &c), 0);
        int ok = 0, io = 0;
        for (int k = 0; k < 200; k++) {
            tokemb_table *l = NULL;
            int32_t st = fmt ? tokemb_safetensors_load(p, NULL, &l) : tokemb_npy_load(p, &l);
            if (st == TOKEMB_OK) {
                /* zeros from a truncate+extend race are legitimate file content; the shape must hold */
                assert_int_equal(tokemb_table_rows(l), rows);
                ok++;
            } else if (st == TOKEMB_IO || st == TOKEMB_FORMAT) {
                io++;
            } else {
                fail_msg("load during truncation returned %d: %s", (int)st, tokemb_last_error());
            }
            tokemb_table_free(l);
        }
        atomic_store(&c.stop, 1);
        pthread_join(th, NULL);
        assert_int_equal(ok + io, 200);
    }
    tokemb_table_free(t);
}

/* Truncating the file from the progress callback (after it was read) cannot touch the load: the text is
 * read into memory with read(), so the result is the file as it was. */
static int32_t truncate_cb(void *user, uint64_t done, uint64_t total) {
    (void)done;
    (void)total;
    (void)!truncate((const char *)user, 0);
    return 0;
}

static void test_vectors_truncated_from_callback(void **state) {
    (void)state;
    const char *p = tk_tmp("trunc.txt");
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fprintf(f, "3000 4\n");
    for (int i = 0; i < 3000; i++) fprintf(f, "w%d %d.5 1 2 3\n", i, i);
    fclose(f);
    tokemb_table *t = NULL;
    tokemb_vocab *v = NULL;
    TK_OK(tokemb_vectors_load(p, TOKEMB_VECTORS_WORD2VEC_TEXT, truncate_cb, (void *)p, &t, &v));
    assert_int_equal(tokemb_table_rows(t), 3000);
    assert_true(((const float *)tokemb_table_data(t))[4 * 2999] == 2999.5f);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
}

/* Q8_ROW dim + 8 overflows int64: the header promises TOKEMB_OVERFLOW, not a row_stride complaint. */
static void test_q8_dim_overflow(void **state) {
    (void)state;
    tokemb_table *t = (tokemb_table *)(uintptr_t)0x1;
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_table_create(1, INT64_MAX - 3, TOKEMB_Q8_ROW, &t), "overflows int64");
    assert_ptr_equal(t, (tokemb_table *)(uintptr_t)0x1);
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_table_create(1, INT64_MAX, TOKEMB_Q8_ROW, &t), "overflows");
    TK_EXPECT_STATUS(TOKEMB_OVERFLOW, tokemb_table_create(2, INT64_MAX / 2, TOKEMB_F32, &t), "overflows");
}

/* An output overlapping the table (lookup) or a source overlapping it (write_rows) is refused before
 * anything is written; buffers that merely touch the table's ends are fine. */
static void test_overlap_refused(void **state) {
    (void)state;
    static float buf[64];
    for (int i = 0; i < 64; i++) buf[i] = (float)i;
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_wrap(buf + 16, 8, 4, 4, TOKEMB_F32, 0, &t)); /* storage: buf[16..48) */
    const int64_t ids[4] = {7, 0, 3, 5};
    float before[64];
    memcpy(before, buf, sizeof buf);
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup(t, ids, 4, buf + 20), "overlaps the table storage");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup(t, ids, 4, buf + 1), "out [");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_lookup_strided(t, ids, 2, buf + 4, 9), "overlaps");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_write_rows(t, 0, 2, buf + 44), "src [");
    TK_EXPECT_STATUS(TOKEMB_INVALID_ARGUMENT, tokemb_table_write_rows(t, 2, 1, buf + 16), "overlaps");
    assert_memory_equal(before, buf, sizeof buf);
    /* touching, not overlapping: out ends at buf[16], src starts at buf[48] */
    TK_OK(tokemb_lookup(t, ids, 4, buf));
    assert_true(buf[0] == 44.0f && buf[4] == 16.0f && buf[15] == 39.0f);
    TK_OK(tokemb_lookup_strided(t, ids, 2, buf, 12)); /* rows at buf[0..4) and buf[12..16) */
    TK_OK(tokemb_table_write_rows(t, 7, 4 / 4, buf + 48));
    assert_true(buf[44] == 48.0f);
    tokemb_table_free(t);
}

static tokemb_table *make_table(int64_t rows, int64_t dim, uint64_t seed) {
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, seed, 0.0, 1.0));
    return t;
}

static void assert_loads_as(const char *p, tokemb_table *t) {
    tokemb_table *l = NULL;
    TK_OK(tokemb_npy_load(p, &l));
    assert_int_equal(tokemb_table_rows(l), tokemb_table_rows(t));
    assert_memory_equal(tokemb_table_data(l), tokemb_table_data(t),
                        (size_t)(tokemb_table_rows(t) * tokemb_table_dim(t)) * sizeof(float));
    tokemb_table_free(l);
}

/* A file name of NAME_MAX bytes saves (the temp name no longer embeds it); saving over a 0600 file keeps
 * 0600; a symlink is followed: the link stays, its target gets the data (as np.save). */
static void test_save_names_modes_links(void **state) {
    (void)state;
    tokemb_table *t = make_table(5, 3, 1), *t2 = make_table(5, 3, 2);
    char name[NAME_MAX + 1];
    memset(name, 'n', NAME_MAX);
    memcpy(name + NAME_MAX - 4, ".npy", 5);
    TK_OK(tokemb_npy_save(t, tk_tmp(name)));
    assert_loads_as(tk_tmp(name), t);
    TK_OK(tokemb_safetensors_save((const tokemb_table *const[]){t}, (const char *const[]){"w"}, 1, tk_tmp(name)));
    unlink(tk_tmp(name));

    const char *p = tk_tmp("private.npy");
    TK_OK(tokemb_npy_save(t, p));
    assert_int_equal(chmod(p, 0600), 0);
    TK_OK(tokemb_npy_save(t2, p));
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0600);
    assert_int_equal(chmod(p, 0640), 0);
    TK_OK(tokemb_npy_save(t, p));
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0640);

    const char *link = tk_tmp("link.npy"), *dangling = tk_tmp("dangling.npy");
    assert_int_equal(symlink("private.npy", link), 0);
    TK_OK(tokemb_npy_save(t2, link));
    assert_int_equal(lstat(link, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_loads_as(p, t2);
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(sb.st_mode & 07777, 0640);
    assert_int_equal(symlink("created-by-save.npy", dangling), 0);
    TK_OK(tokemb_npy_save(t, dangling));
    assert_loads_as(tk_tmp("created-by-save.npy"), t);
    assert_int_equal(lstat(dangling, &sb), 0);
    assert_true(S_ISLNK(sb.st_mode));
    assert_int_equal((int)tk_tmp_count(".tokemb-"), 0);
    tokemb_table_free(t);
    tokemb_table_free(t2);
}

/* kill -9 during a save leaves at most a ".tokemb-<hash>.<pid>.<n>.tmp" file, never the destination half
 * written; the next save to the same destination removes it. */
static void test_killed_save_is_swept(void **state) {
    (void)state;
    tokemb_table *big = make_table(1 << 15, 256, 3), *small = make_table(4, 4, 4); /* 32 MiB */
    const char *p = tk_tmp("killed.npy");
    TK_OK(tokemb_npy_save(small, p));
    int left = 0;
    for (int attempt = 0; attempt < 40 && !left; attempt++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            for (;;) (void)tokemb_npy_save(big, p);
        }
        usleep(20000 + 5000 * (useconds_t)attempt);
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        left = (int)tk_tmp_count(".tokemb-");
    }
    assert_true(left > 0); /* some kill landed mid-write */
    /* the destination is always a whole file: the small one or a complete big one */
    tokemb_table *l = NULL;
    TK_OK(tokemb_npy_load(p, &l));
    tokemb_table_free(l);
    TK_OK(tokemb_npy_save(small, p));
    assert_int_equal((int)tk_tmp_count(".tokemb-"), 0);
    assert_loads_as(p, small);
    tokemb_table_free(big);
    tokemb_table_free(small);
}

/* A full disk (RLIMIT_FSIZE below the file's size, SIGXFSZ ignored, so write() fails with EFBIG): every
 * saver reports TOKEMB_IO naming the path, the previous file is untouched and no temporary file stays.
 * Runs in a child so the limit never reaches the test runner. */
static void test_full_disk_saves(void **state) {
    (void)state;
    tokemb_table *big = make_table(4096, 64, 5), *small = make_table(4, 4, 6); /* 1 MiB of data */
    tokemb_vocab *v = tk_make_vocab(4096);
    const char *paths[3] = {tk_tmp("full.npy"), tk_tmp("full.safetensors"), tk_tmp("full.vec")};
    const char *name = "weight";
    const tokemb_table *one[1] = {small}, *bigs[1] = {big};
    TK_OK(tokemb_npy_save(small, paths[0]));
    TK_OK(tokemb_safetensors_save(one, &name, 1, paths[1]));
    tokemb_vocab *v4 = tk_make_vocab(4);
    TK_OK(tokemb_vectors_save(small, v4, paths[2], TOKEMB_VECTORS_WORD2VEC_TEXT));
    uint64_t before[3];
    for (int k = 0; k < 3; k++) before[k] = tk_file_checksum(paths[k]);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {64 * 1024, 64 * 1024};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
        for (int k = 0; k < 3; k++) {
            int32_t st = k == 0   ? tokemb_npy_save(big, paths[0])
                         : k == 1 ? tokemb_safetensors_save(bigs, &name, 1, paths[1])
                                  : tokemb_vectors_save(big, v, paths[2], TOKEMB_VECTORS_WORD2VEC_TEXT);
            if (st != TOKEMB_IO) _exit(20 + k);
            if (!strstr(tokemb_last_error(), paths[k])) {
                fprintf(stderr, "saver %d: message '%s' does not name %s\n", k, tokemb_last_error(), paths[k]);
                _exit(30 + k);
            }
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) != 0) fail_msg("full-disk child failed with code %d", WEXITSTATUS(status));
    for (int k = 0; k < 3; k++)
        if (tk_file_checksum(paths[k]) != before[k]) fail_msg("%s changed after a failed save", paths[k]);
    assert_int_equal((int)tk_tmp_count(".tokemb-"), 0);
    tokemb_vocab_free(v);
    tokemb_vocab_free(v4);
    tokemb_table_free(big);
    tokemb_table_free(small);
}

/* A v1 npy file with header dict `d` (padded to 64) and `data` bytes; returns the dict's file offset. */
static size_t write_npy_dict(const char *path, const char *d, size_t data) {
    unsigned char buf[512] = {0};
    size_t dl = strlen(d), hl = (10 + dl + 1 + 63) / 64 * 64 - 10;
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)hl;
    buf[9] = (unsigned char)(hl >> 8);
    memcpy(buf + 10, d, dl);
    memset(buf + 10 + dl, ' ', hl - dl - 1);
    buf[10 + hl - 1] = '\n';
    tk_write_file(path, buf, 10 + hl + data);
    return 10;
}

/* "byte N" in the last error, N = base + the offset of `at` inside `text`. */
static void expect_byte(int32_t got, const char *text, const char *at, size_t base) {
    assert_int_equal(got, TOKEMB_FORMAT);
    const char *hit = strstr(text, at);
    assert_non_null(hit);
    char needle[64];
    snprintf(needle, sizeof needle, "byte %zu:", base + (size_t)(hit - text));
    if (!strstr(tokemb_last_error(), needle)) fail_msg("'%s' lacks '%s'", tokemb_last_error(), needle);
}

/* Every TOKEMB_FORMAT about a header field names the byte offset of that field in the file. */
static void test_format_errors_name_the_byte(void **state) {
    (void)state;
    static const struct {
        const char *dict, *at;
        size_t data;
    } npy[] = {
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", "'<f8'", 48},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }", "'>f4'", 24},
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", "True", 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }", "(6,)", 24},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", "(0, 3)", 0},
        {"{'descr': '<f4', 'fortran_order': False,  }", "}", 0},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 03), }", "03", 24},
    };
    const char *p = tk_tmp("off.npy");
    tokemb_table *t = NULL;
    for (size_t k = 0; k < sizeof npy / sizeof npy[0]; k++) {
        size_t base = write_npy_dict(p, npy[k].dict, npy[k].data);
        expect_byte(tokemb_npy_load(p, &t), npy[k].dict, npy[k].at, base);
        expect_byte(tokemb_npy_mmap(p, &t), npy[k].dict, npy[k].at, base);
    }
    static const struct {
        const char *json, *at;
    } st[] = {
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3]}}", "{\"dtype"},
        {"{\"w\":{\"shape\":[2,3],\"data_offsets\":[0,24]}}", "{\"shape"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", "[0,20]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[6],\"data_offsets\":[0,24]}}", "[6]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3,1],\"data_offsets\":[0,24]}}", "[2,3,1]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", "[0,3]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,6],\"data_offsets\":[0,24]},"
         "\"w\":{\"dtype\":\"F32\",\"shape\":[1,6],\"data_offsets\":[0,24]}}",
         ",\"w\""},
    };
    const char *sp = tk_tmp("off.safetensors");
    for (size_t k = 0; k < sizeof st / sizeof st[0]; k++) {
        unsigned char buf[512] = {0};
        size_t jl = strlen(st[k].json);
        buf[0] = (unsigned char)jl;
        memcpy(buf + 8, st[k].json, jl);
        tk_write_file(sp, buf, 8 + jl + 24);
        /* the repeated name's offset is its opening quote, after the ',' */
        size_t base = 8 + (k == 6 ? 1 : 0);
        expect_byte(tokemb_safetensors_load(sp, "w", &t), st[k].json, st[k].at, base);
        expect_byte(tokemb_safetensors_mmap(sp, "w", &t), st[k].json, st[k].at, base);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_directory_device),
        cmocka_unit_test(test_copy_load_of_a_shrinking_file),
        cmocka_unit_test(test_vectors_truncated_from_callback),
        cmocka_unit_test(test_q8_dim_overflow),
        cmocka_unit_test(test_overlap_refused),
        cmocka_unit_test(test_save_names_modes_links),
        cmocka_unit_test(test_killed_save_is_swept),
        cmocka_unit_test(test_full_disk_saves),
        cmocka_unit_test(test_format_errors_name_the_byte),
    };
    return cmocka_run_group_tests(tests, tk_tmp_group_setup, tk_tmp_group_teardown);
}
