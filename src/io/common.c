/* io_common.c - file mapping, atomic saves and UTF-8 validation shared by the format readers. */
#include "io/io.h"

#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef TOKEMB_TESTING
uint64_t tk_test_io_ops;
#endif

int32_t tk_file_open(const char *fn, const char *path, tk_file *f) {
    f->fd = -1;
    f->size = 0;
    if (!path) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: path is NULL", fn);
    if (!path[0]) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: path is empty", fn);
    /* O_NONBLOCK: opening a FIFO (or a tty) must not wait for a writer; the type is checked next */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return tk_error(TOKEMB_IO, "%s: cannot open '%s': %s", fn, path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return tk_error(TOKEMB_IO, "%s: cannot stat '%s': %s", fn, path, strerror(e));
    }
    if (S_ISDIR(st.st_mode)) {
        close(fd);
        return tk_error(TOKEMB_IO, "%s: '%s' is a directory, expected a file", fn, path);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return tk_error(TOKEMB_IO, "%s: '%s' is not a regular file (a FIFO, socket or device)", fn, path);
    }
    if (st.st_size == 0) {
        close(fd);
        return tk_error(TOKEMB_FORMAT, "%s: '%s' is empty (0 bytes)", fn, path);
    }
    if ((uint64_t)st.st_size > SIZE_MAX / 2) {
        close(fd);
        return tk_error(TOKEMB_OVERFLOW, "%s: '%s' is too large", fn, path);
    }
    f->fd = fd;
    f->size = (size_t)st.st_size;
    return TOKEMB_OK;
}

void tk_file_close(tk_file *f) {
    if (f->fd >= 0) close(f->fd);
    f->fd = -1;
}

int32_t tk_file_read(const char *fn, const char *path, const tk_file *f, size_t off, void *buf, size_t n) {
    size_t done = 0;
    while (done < n) {
        size_t want = n - done > ((size_t)1 << 30) ? ((size_t)1 << 30) : n - done;
        ssize_t r = pread(f->fd, (uint8_t *)buf + done, want, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            return tk_error(TOKEMB_IO, "%s: reading '%s' at byte %zu failed: %s", fn, path, off + done,
                            strerror(errno));
        if (r == 0)
            return tk_error(TOKEMB_IO,
                            "%s: '%s' ended at byte %zu while reading %zu bytes from byte %zu (the file shrank while "
                            "loading: it was %zu bytes when opened)",
                            fn, path, off + done, n, off, f->size);
        done += (size_t)r;
    }
    return TOKEMB_OK;
}

int32_t tk_file_read_all(const char *fn, const char *path, uint8_t **out, size_t *len) {
    tk_file f;
    int32_t st = tk_file_open(fn, path, &f);
    if (st) return st;
    uint8_t *b = (uint8_t *)tk_malloc(f.size);
    if (!b) {
        tk_file_close(&f);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu bytes to read '%s'", fn, f.size, path);
    }
    if ((st = tk_file_read(fn, path, &f, 0, b, f.size))) {
        tk_free(b);
        tk_file_close(&f);
        return st;
    }
    *out = b;
    *len = f.size;
    tk_file_close(&f);
    return TOKEMB_OK;
}

int32_t tk_map_fd(const char *fn, const char *path, const tk_file *f, tk_map *m) {
    void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (p == MAP_FAILED) return tk_error(TOKEMB_IO, "%s: cannot map '%s': %s", fn, path, strerror(errno));
    m->map = (const uint8_t *)p;
    m->size = f->size;
    return TOKEMB_OK;
}

int32_t tk_map_file(const char *fn, const char *path, tk_map *m) {
    tk_file f;
    int32_t st = tk_file_open(fn, path, &f);
    if (!st) st = tk_map_fd(fn, path, &f, m);
    tk_file_close(&f);
    return st;
}

void tk_unmap(tk_map *m) {
    if (m->map) munmap((void *)(uintptr_t)m->map, m->size);
    m->map = NULL;
    m->size = 0;
}

static void tk_map_release(void *ctx) {
    tk_map *m = (tk_map *)ctx;
    tk_unmap(m);
    tk_free(m);
}

int32_t tk_table_adopt_map(const char *fn, tokemb_table *t, tk_map *m) {
    tk_map *own = (tk_map *)tk_malloc(sizeof *own);
    if (!own) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the mapping record", fn);
    *own = *m;
    t->release = tk_map_release;
    t->release_ctx = own;
    m->map = NULL;
    m->size = 0;
    return TOKEMB_OK;
}

/* ---- atomic save ------------------------------------------------------------------------------ */

static atomic_uint tk_tmp_counter;

/* The file a save replaces: `path`, or the final target when path is a symbolic link (followed, as
 * np.save's open() does; a dangling link's target is created). tk_malloc'ed. */
static char *tk_save_target(const char *path) {
    size_t n = strlen(path);
    char *cur = (char *)tk_malloc(n + 1);
    if (!cur) return NULL;
    memcpy(cur, path, n + 1);
    for (int hop = 0; hop < 40; hop++) { /* Linux's MAXSYMLINKS */
        struct stat st;
        if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) return cur;
        char link[4096];
        ssize_t l = readlink(cur, link, sizeof link - 1);
        if (l <= 0) return cur;
        link[l] = '\0';
        const char *slash = strrchr(cur, '/');
        size_t dl = (link[0] != '/' && slash) ? (size_t)(slash - cur) + 1 : 0;
        char *next = (char *)tk_malloc(dl + (size_t)l + 1);
        if (!next) {
            tk_free(cur);
            return NULL;
        }
        memcpy(next, cur, dl);
        memcpy(next + dl, link, (size_t)l + 1);
        tk_free(cur);
        cur = next;
    }
    return cur;
}

/* 64-bit FNV-1a of the target's file name: the temp files of one destination share the prefix
 * ".tokemb-<16 hex>." whatever the name's length, so temp names stay short (< 64 bytes). */
static uint64_t tk_name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

/* Removes the temp files a killed save to the same destination left: ".tokemb-<hash>.<pid>.<n>.tmp"
 * in the destination's folder whose process no longer runs. */
static void tk_save_sweep(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return;
    const size_t pl = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, pl) != 0) continue;
        char *end = NULL;
        long pid = strtol(e->d_name + pl, &end, 10);
        if (pid <= 0 || !end || *end != '.' || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; /* still running (or not ours to judge) */
        (void)unlinkat(dirfd(d), e->d_name, 0);
    }
    closedir(d);
}

int32_t tk_save_begin(const char *fn, const char *path, tk_save *s) {
    memset(s, 0, sizeof *s);
    if (!path) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: path is NULL", fn);
    if (!path[0]) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: path is empty", fn);
    char *target = tk_save_target(path);
    if (!target) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the target path", fn);
    struct stat st;
    const bool exists = stat(target, &st) == 0;
    if (exists && S_ISDIR(st.st_mode)) {
        tk_free(target);
        return tk_error(TOKEMB_IO, "%s: '%s' is a directory, expected a file path", fn, path);
    }
    const char *slash = strrchr(target, '/');
    const size_t dirlen = slash ? (size_t)(slash - target) + 1 : 0;
    s->tmp = (char *)tk_malloc(dirlen + 80);
    if (!s->tmp) {
        tk_free(target);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the temp path", fn);
    }
    char prefix[48];
    snprintf(prefix, sizeof prefix, ".tokemb-%016llx.", (unsigned long long)tk_name_hash(target + dirlen));
    memcpy(s->tmp, target, dirlen);
    s->tmp[dirlen] = '\0';
    tk_save_sweep(dirlen ? s->tmp : ".", prefix);
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned c = atomic_fetch_add(&tk_tmp_counter, 1u);
        snprintf(s->tmp + dirlen, 80, "%s%ld.%u.tmp", prefix, (long)getpid(), c);
        int fd = open(s->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            if (errno == EEXIST) continue;
            int e = errno;
            int32_t st2 = tk_error(TOKEMB_IO, "%s: cannot create a temp file next to '%s': %s", fn, path, strerror(e));
            tk_free(s->tmp);
            tk_free(target);
            s->tmp = NULL;
            return st2;
        }
        /* replacing a file keeps its permission bits (0600 stays 0600); a new file gets 0666 & ~umask */
        if (exists) (void)fchmod(fd, st.st_mode & 07777);
        s->fp = fdopen(fd, "wb");
        if (!s->fp) {
            close(fd);
            unlink(s->tmp);
            tk_free(s->tmp);
            tk_free(target);
            s->tmp = NULL;
            return tk_error(TOKEMB_NO_MEMORY, "%s: cannot open a stream for the temp file", fn);
        }
        s->path = target;
        return TOKEMB_OK;
    }
    tk_free(s->tmp);
    tk_free(target);
    s->tmp = NULL;
    return tk_error(TOKEMB_IO, "%s: cannot create a unique temp file next to '%s'", fn, path);
}

void tk_save_write(tk_save *s, const void *p, size_t n) {
    if (s->failed || n == 0) return;
    if (fwrite(p, 1, n, s->fp) != n) {
        s->failed = 1;
        s->err = errno;
    }
}

void tk_save_abort(tk_save *s) {
    if (s->fp) fclose(s->fp);
    if (s->tmp) {
        unlink(s->tmp);
        tk_free(s->tmp);
    }
    tk_free(s->path);
    memset(s, 0, sizeof *s);
}

int32_t tk_save_commit(const char *fn, tk_save *s) {
    if (!s->failed && fflush(s->fp) != 0) {
        s->failed = 1;
        s->err = errno;
    }
    if (!s->failed && fsync(fileno(s->fp)) != 0) {
        s->failed = 1;
        s->err = errno;
    }
    if (s->failed) {
        int32_t st = tk_error(TOKEMB_IO, "%s: writing '%s' failed: %s (nothing was written to '%s')", fn, s->tmp,
                              strerror(s->err), s->path);
        tk_save_abort(s);
        return st;
    }
    int rc = fclose(s->fp);
    s->fp = NULL;
    if (rc != 0) {
        int32_t st = tk_error(TOKEMB_IO, "%s: closing '%s' failed: %s (nothing was written to '%s')", fn, s->tmp,
                              strerror(errno), s->path);
        tk_save_abort(s);
        return st;
    }
    if (rename(s->tmp, s->path) != 0) {
        int32_t st = tk_error(TOKEMB_IO, "%s: cannot rename the temp file to '%s': %s", fn, s->path, strerror(errno));
        tk_save_abort(s);
        return st;
    }
    /* make the rename durable */
    const char *slash = strrchr(s->path, '/');
    char dir[4096];
    if (slash && (size_t)(slash - s->path) < sizeof dir) {
        size_t dl = slash == s->path ? 1 : (size_t)(slash - s->path);
        memcpy(dir, s->path, dl);
        dir[dl] = '\0';
    } else {
        strcpy(dir, ".");
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    tk_free(s->tmp);
    tk_free(s->path);
    memset(s, 0, sizeof *s);
    return TOKEMB_OK;
}

/* ---- UTF-8 ------------------------------------------------------------------------------------ */

size_t tk_utf8_valid_prefix(const uint8_t *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i < len) return i;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += len;
    }
    return n;
}

int tk_parse_u63(const uint8_t *p, size_t n, size_t *i, uint64_t *v) {
    size_t k = *i;
    uint64_t x = 0;
    while (k < n && p[k] >= '0' && p[k] <= '9') {
        unsigned d = (unsigned)(p[k] - '0');
        if (x > ((uint64_t)INT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
        k++;
    }
    if (k == *i) return 0;
    *i = k;
    *v = x;
    return 1;
}

int32_t tk_cursor_fail(const tk_cursor *c, const char *expected) {
    if (c->i >= c->n)
        return tk_error(TOKEMB_FORMAT, "%s: %s byte %zu: expected %s, found the end of the header", c->fn, c->what,
                        c->base + c->i, expected);
    unsigned ch = c->p[c->i];
    if (ch >= 0x20 && ch < 0x7f)
        return tk_error(TOKEMB_FORMAT, "%s: %s byte %zu: expected %s, found '%c'", c->fn, c->what, c->base + c->i,
                        expected, (char)ch);
    return tk_error(TOKEMB_FORMAT, "%s: %s byte %zu: expected %s, found byte 0x%02x", c->fn, c->what, c->base + c->i,
                    expected, ch);
}

void tk_cursor_ws(tk_cursor *c) {
    TK_IO_OP(1);
    while (c->i < c->n && (c->p[c->i] == ' ' || c->p[c->i] == '\t' || c->p[c->i] == '\n' || c->p[c->i] == '\r')) {
        TK_IO_OP(1);
        c->i++;
    }
}

bool tk_cursor_eat(tk_cursor *c, char ch) {
    tk_cursor_ws(c);
    if (c->i < c->n && c->p[c->i] == (uint8_t)ch) {
        c->i++;
        return true;
    }
    return false;
}

void tk_save_rows(tk_save *s, const tokemb_table *t) {
    const size_t es = tk_dtype_size(t->dtype), rb = (size_t)t->dim * es;
    if (t->row_stride == t->dim) {
        tk_save_write(s, t->data, rb * (size_t)t->rows);
        return;
    }
    for (int64_t r = 0; r < t->rows; r++)
        tk_save_write(s, (const uint8_t *)t->data + (size_t)r * (size_t)t->row_stride * es, rb);
}
