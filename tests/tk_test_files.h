/* tk_test_files.h - scratch files for the cmocka suites that read and write files: one temporary
 * folder per process (created on first use, removed by tk_tmp_cleanup), paths inside it, and a
 * whole-file writer. Include after tk_test.h; needs _GNU_SOURCE (mkdtemp) defined before any include. */
#ifndef TK_TEST_FILES_H
#define TK_TEST_FILES_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tk_tmpdir[256];

/* The path of `name` inside the scratch folder (a rotating static buffer: 32 live results). */
static inline const char *tk_tmp(const char *name) {
    static char buf[32][512];
    static int k;
    if (!tk_tmpdir[0]) {
        snprintf(tk_tmpdir, sizeof tk_tmpdir, "%s/tokemb_test_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        assert_non_null(mkdtemp(tk_tmpdir));
    }
    k = (k + 1) % 32;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tk_tmpdir, name);
    return buf[k];
}

/* The scratch folder itself (created if needed). */
static inline const char *tk_tmp_dir(void) {
    (void)tk_tmp("");
    return tk_tmpdir;
}

/* Removes the scratch folder and everything in it; the next tk_tmp makes a new one. */
static inline int tk_tmp_cleanup(void) {
    if (!tk_tmpdir[0]) return 0;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tk_tmpdir);
    tk_tmpdir[0] = '\0';
    return system(cmd) == 0 ? 0 : -1;
}

/* cmocka group setup/teardown that make and finally remove the scratch folder. */
static inline int tk_tmp_group_setup(void **state) {
    (void)state;
    (void)tk_tmp_dir();
    return 0;
}
static inline int tk_tmp_group_teardown(void **state) {
    (void)state;
    return tk_tmp_cleanup();
}

/* Entries of the scratch folder whose name starts with prefix ("" counts all; "." and ".." never). */
static inline size_t tk_tmp_count(const char *prefix) {
    DIR *d = opendir(tk_tmp_dir());
    assert_non_null(d);
    size_t k = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strncmp(e->d_name, prefix, strlen(prefix)) == 0)
            k++;
    closedir(d);
    return k;
}

/* FNV-1a (tk_checksum's hash) of a whole file's bytes: proves a file did not change. */
static inline uint64_t tk_file_checksum(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint64_t h = 1469598103934665603ull;
    int c;
    while ((c = fgetc(f)) != EOF) h = (h ^ (uint64_t)(unsigned char)c) * 1099511628211ull;
    fclose(f);
    return h;
}

/* Writes data[n] as the whole content of path. */
static inline void tk_write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
}

#endif
