/* test_save_syscalls.c - saves under failing system calls. Linked against the static TOKEMB_TESTING
 * variant with open, fwrite, fsync, fclose and rename wrapped (tests/CMakeLists.txt): each saver is run
 * with the k-th call of one of them failing (ENOSPC, EIO, EXDEV) and must return TOKEMB_IO with a
 * message naming the destination, leave the previous file byte for byte and leave no temporary file. */
#define _GNU_SOURCE
#include "tk_test.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_test_files.h"

enum { SC_OPEN, SC_FWRITE, SC_FSYNC, SC_FCLOSE, SC_RENAME, SC_N };
static const char *const sc_name[SC_N] = {"open", "fwrite", "fsync", "fclose", "rename"};
static int g_fail_sc = -1; /* the wrapped call to fail, -1 none */
static long g_countdown;   /* fail its g_countdown-th call from now (1 = the next one) */
static long g_seen;        /* calls of that kind since arming */

static int should_fail(int sc) {
    if (sc != g_fail_sc) return 0;
    g_seen++;
    return g_seen == g_countdown;
}

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...);
size_t __real_fwrite(const void *p, size_t s, size_t n, FILE *f);
size_t __wrap_fwrite(const void *p, size_t s, size_t n, FILE *f);
int __real_fsync(int fd);
int __wrap_fsync(int fd);
int __real_fclose(FILE *f);
int __wrap_fclose(FILE *f);
int __real_rename(const char *a, const char *b);
int __wrap_rename(const char *a, const char *b);

int __wrap_open(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    if ((flags & O_CREAT) && should_fail(SC_OPEN)) {
        errno = ENOSPC;
        return -1;
    }
    return __real_open(path, flags, mode);
}
size_t __wrap_fwrite(const void *p, size_t s, size_t n, FILE *f) {
    if (should_fail(SC_FWRITE)) {
        errno = ENOSPC;
        return 0;
    }
    return __real_fwrite(p, s, n, f);
}
int __wrap_fsync(int fd) {
    if (should_fail(SC_FSYNC)) {
        errno = EIO;
        return -1;
    }
    return __real_fsync(fd);
}
int __wrap_fclose(FILE *f) {
    int fail = should_fail(SC_FCLOSE);
    int rc = __real_fclose(f); /* the stream is closed either way, as a failing fclose does */
    if (fail) {
        errno = EIO;
        return EOF;
    }
    return rc;
}
int __wrap_rename(const char *a, const char *b) {
    if (should_fail(SC_RENAME)) {
        errno = EXDEV;
        return -1;
    }
    return __real_rename(a, b);
}

enum { SV_NPY, SV_SAFETENSORS, SV_W2V_TEXT, SV_W2V_BINARY, SV_CHECKPOINT_INDEX, SV_N };

static int32_t save(int which, const tokemb_table *t, const tokemb_vocab *v, const char *path) {
    const char *name = "weight";
    switch (which) {
    case SV_NPY: return tokemb_npy_save(t, path);
    case SV_SAFETENSORS: return tokemb_safetensors_save(&t, &name, 1, path);
    case SV_W2V_TEXT: return tokemb_vectors_save(t, v, path, TOKEMB_VECTORS_WORD2VEC_TEXT);
    case SV_CHECKPOINT_INDEX: { /* an index over one shard; the generation tells the two tables apart */
        const int64_t layout[5] = {0, 1, tokemb_table_rows(t), 0, tokemb_table_dim(t)};
        uint32_t bits;
        memcpy(&bits, tokemb_table_data((tokemb_table *)(uintptr_t)t), sizeof bits);
        const char *files[1] = {"shard.safetensors"};
        return tokemb_checkpoint_save_index(path, tokemb_table_rows(t), tokemb_table_dim(t), bits, 1, files, layout);
    }
    default: return tokemb_vectors_save(t, v, path, TOKEMB_VECTORS_WORD2VEC_BINARY);
    }
}

static void failing_syscalls_leave_the_old_file(void **state) {
    (void)state;
    tokemb_table *old = NULL, *t = NULL;
    tokemb_vocab *v = tk_make_vocab(300);
    TK_OK(tokemb_table_create(300, 16, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, 1, 0.0, 1.0));
    TK_OK(tokemb_table_create(300, 16, TOKEMB_F32, &old));
    TK_OK(tokemb_table_init_normal(old, 2, 0.0, 1.0));
    int checked = 0;
    for (int sv = 0; sv < SV_N; sv++) {
        char fname[32];
        snprintf(fname, sizeof fname, "dest%d", sv);
        char path[600]; /* a copy: tk_tmp's buffers rotate */
        snprintf(path, sizeof path, "%s", tk_tmp(fname));
        char rname[32];
        snprintf(rname, sizeof rname, "ref%d", sv);
        char ref[600];
        snprintf(ref, sizeof ref, "%s", tk_tmp(rname));
        TK_OK(save(sv, t, v, ref));
        const uint64_t after = tk_file_checksum(ref); /* what a successful save of t writes */
        TK_OK(save(sv, old, v, path));
        const uint64_t before = tk_file_checksum(path);
        for (int sc = 0; sc < SC_N; sc++) {
            /* fail the 1st, 2nd, ... call of this kind until a save makes fewer calls than that */
            for (long k = 1; k < 1000; k++) {
                g_fail_sc = sc;
                g_countdown = k;
                g_seen = 0;
                int32_t st = save(sv, t, v, path);
                long seen = g_seen;
                g_fail_sc = -1;
                if (seen < k) { /* the k-th call never came: the save ran unharmed */
                    TK_OK(st);
                    TK_OK(save(sv, old, v, path)); /* restore the old file for the next case */
                    break;
                }
                if (st == TOKEMB_OK && sc == SC_FSYNC && tk_file_checksum(path) == after) {
                    /* the fsync of the folder after the rename: the new file is complete and in place */
                    TK_OK(save(sv, old, v, path));
                    continue;
                }
                if (st != TOKEMB_IO)
                    fail_msg("saver %d with %s call %ld failing: status %d (%s)", sv, sc_name[sc], k, (int)st,
                             tokemb_last_error());
                if (!strstr(tokemb_last_error(), path))
                    fail_msg("saver %d, %s call %ld: message '%s' does not name %s", sv, sc_name[sc], k,
                             tokemb_last_error(), path);
                if (tk_file_checksum(path) != before)
                    fail_msg("saver %d, %s call %ld failed but changed the destination", sv, sc_name[sc], k);
                if (tk_tmp_count(".tokemb-") != 0)
                    fail_msg("saver %d, %s call %ld failed and left a temporary file", sv, sc_name[sc], k);
                checked++;
            }
        }
    }
    printf("failing system calls checked: %d\n", checked);
    assert_true(checked >= SV_N * SC_N); /* every saver met every kind of failure at least once */
    tokemb_vocab_free(v);
    tokemb_table_free(t);
    tokemb_table_free(old);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(failing_syscalls_leave_the_old_file)};
    return cmocka_run_group_tests(tests, tk_tmp_group_setup, tk_tmp_group_teardown);
}
