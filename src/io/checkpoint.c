/* io/checkpoint.c - sharded checkpoints: one float32 table split over several safetensors files and
 * a JSON index naming, per file, the global rows (start + i * step) and the column range it holds:
 *
 *   {"format": "tokemb.checkpoint", "version": 1, "generation": 3, "dtype": "F32", "shape": [V, D],
 *    "files": [{"file": "emb-00001-of-00002-gen3.safetensors", "tensor": "weight",
 *               "rows": [start, step, count], "cols": [start, count]}, ...]}
 *
 * The index is parsed by the strict JSON primitives of the safetensors header (every key once, no
 * unknown key, integers only), its layout checked to cover the table exactly once (one validator for
 * the writer and the reader, n log n), and a region is read with one pread per run of wanted rows of
 * one shard at a constant stride (gaps of at most 4 KiB read through), so a rank re-sharding a
 * checkpoint reads only the rows it owns, up to page-sized gaps. */
#include "io/io.h"

#include <stdlib.h>
#include <string.h>

#define TK_CK_MAX_INDEX 100000000u    /* as the safetensors header */
#define TK_CK_CHUNK ((size_t)4 << 20) /* scratch bytes per read when rows or columns must be picked */
#define TK_CK_GAP ((size_t)4096)      /* unwanted bytes read through between two wanted rows */

typedef struct {
    char *file, *tensor; /* tk_malloc */
    int64_t r0, rstep, rn, c0, cn;
    size_t at; /* index byte of the entry's '{' (or the entry number for tokemb_checkpoint_save_index) */
} tk_ck_entry;

/* A column band: the entries of one column range, sorted by first row. */
typedef struct {
    int64_t c0, cn;
    size_t first, n; /* in the sorted pointer array */
    int modulo;      /* 1: round-robin over n files (entry of row g = g % n); 0: contiguous blocks */
} tk_ck_band;

typedef struct {
    int64_t rows, dim, generation;
    tk_ck_entry *e;
    size_t n;
    const tk_ck_entry **sorted; /* by (c0, cn, r0) */
    tk_ck_band *band;
    size_t n_band;
    const char *path; /* the index path, or NULL when built from tokemb_checkpoint_save_index's arrays */
} tk_ck_index;

static void tk_ck_free(tk_ck_index *x) {
    for (size_t k = 0; k < x->n; k++) {
        tk_free(x->e[k].file);
        tk_free(x->e[k].tensor);
    }
    tk_free(x->e);
    tk_free(x->sorted);
    tk_free(x->band);
    memset(x, 0, sizeof *x);
}

/* "index 'p' byte N" or "files[k]": where an entry came from, for messages. */
static const char *tk_ck_where(const tk_ck_index *x, const tk_ck_entry *e, char *buf, size_t size) {
    if (x->path) snprintf(buf, size, "index '%.200s' byte %zu", x->path, e->at);
    else snprintf(buf, size, "files[%zu]", e->at);
    return buf;
}

/* A shard name: a plain file in the index's folder. */
static int32_t tk_ck_check_name(const char *fn, const char *name, const char *where) {
    size_t l = strlen(name);
    if (l == 0 || name[0] == '.' || tk_utf8_valid_prefix((const uint8_t *)name, l) != l)
        return tk_error(TOKEMB_INVALID_ARGUMENT,
                        "%s: %s: file name '%.200s' must be non-empty UTF-8 not starting with '.'", fn, where, name);
    for (size_t i = 0; i < l; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/' || c == '"' || c == '\\' || c < 0x20)
            return tk_error(TOKEMB_INVALID_ARGUMENT,
                            "%s: %s: file name '%.200s' has byte 0x%02x at %zu (a shard is a plain file name in the "
                            "index's folder: no '/', '\"', '\\' or control characters)",
                            fn, where, name, c, i);
    }
    return TOKEMB_OK;
}

static int tk_ck_cmp(const void *a, const void *b) {
    const tk_ck_entry *x = *(const tk_ck_entry *const *)a, *y = *(const tk_ck_entry *const *)b;
    TK_IO_OP(1);
    if (x->c0 != y->c0) return x->c0 < y->c0 ? -1 : 1;
    if (x->cn != y->cn) return x->cn < y->cn ? -1 : 1;
    return (x->r0 > y->r0) - (x->r0 < y->r0);
}

/* The layout covers [0, rows) x [0, dim) exactly once in a form the reader supports; builds the bands.
 * `bad` is the status of a violation (INVALID_ARGUMENT for the writer's arrays, FORMAT for a file). */
static int32_t tk_ck_validate(const char *fn, tk_ck_index *x, int32_t bad) {
    char w[300];
    const int64_t V = x->rows, D = x->dim;
    for (size_t k = 0; k < x->n; k++) {
        const tk_ck_entry *e = &x->e[k];
        tk_ck_where(x, e, w, sizeof w);
        if (e->rn < 1 || e->rstep < 1 || e->cn < 1)
            return tk_error(bad, "%s: %s: rows [%lld, %lld, %lld] / cols [%lld, %lld] need step and counts >= 1", fn, w,
                            (long long)e->r0, (long long)e->rstep, (long long)e->rn, (long long)e->c0,
                            (long long)e->cn);
        if (e->r0 < 0 || e->r0 >= V || (e->rn - 1) > (V - 1 - e->r0) / e->rstep)
            return tk_error(bad, "%s: %s: rows [%lld, %lld, %lld] run outside the table's %lld rows", fn, w,
                            (long long)e->r0, (long long)e->rstep, (long long)e->rn, (long long)V);
        if (e->c0 < 0 || e->c0 >= D || e->cn > D - e->c0)
            return tk_error(bad, "%s: %s: cols [%lld, %lld] run outside the table's %lld columns", fn, w,
                            (long long)e->c0, (long long)e->cn, (long long)D);
    }
    x->sorted = (const tk_ck_entry **)tk_malloc(x->n * sizeof *x->sorted);
    x->band = (tk_ck_band *)tk_calloc(x->n, sizeof *x->band);
    if (!x->sorted || !x->band) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu index entries", fn, x->n);
    for (size_t k = 0; k < x->n; k++) x->sorted[k] = &x->e[k];
    qsort(x->sorted, x->n, sizeof *x->sorted, tk_ck_cmp);
    int64_t next_col = 0;
    for (size_t k = 0; k < x->n;) {
        size_t m = k;
        while (m < x->n && x->sorted[m]->c0 == x->sorted[k]->c0 && x->sorted[m]->cn == x->sorted[k]->cn) m++;
        const tk_ck_entry *e0 = x->sorted[k];
        tk_ck_where(x, e0, w, sizeof w);
        if (e0->c0 != next_col)
            return tk_error(bad, "%s: %s: cols [%lld, %lld] %s column %lld (column bands must tile [0, %lld))", fn, w,
                            (long long)e0->c0, (long long)e0->cn, e0->c0 < next_col ? "overlap at" : "leave a gap at",
                            (long long)(e0->c0 < next_col ? e0->c0 : next_col), (long long)D);
        next_col = e0->c0 + e0->cn;
        tk_ck_band *b = &x->band[x->n_band++];
        b->c0 = e0->c0;
        b->cn = e0->cn;
        b->first = k;
        b->n = m - k;
        const int64_t S = (int64_t)(m - k);
        b->modulo = S > 1;
        for (size_t i = k; i < m && b->modulo; i++) b->modulo = x->sorted[i]->rstep == S;
        int64_t next_row = 0;
        for (size_t i = k; i < m; i++) {
            const tk_ck_entry *e = x->sorted[i];
            tk_ck_where(x, e, w, sizeof w);
            if (b->modulo) {
                int64_t r = (int64_t)(i - k), want = r < V ? (V - r - 1) / S + 1 : 0;
                if (e->r0 != r || e->rn != want)
                    return tk_error(bad,
                                    "%s: %s: rows [%lld, %lld, %lld] break the round-robin over %lld files of cols "
                                    "[%lld, %lld] (expected [%lld, %lld, %lld])",
                                    fn, w, (long long)e->r0, (long long)e->rstep, (long long)e->rn, (long long)S,
                                    (long long)b->c0, (long long)b->cn, (long long)r, (long long)S, (long long)want);
                continue;
            }
            if (e->rstep != 1 && e->rn != 1)
                return tk_error(bad,
                                "%s: %s: rows [%lld, %lld, %lld]: a strided file needs every file of its column band "
                                "to be one of a round-robin (step = the band's %lld files)",
                                fn, w, (long long)e->r0, (long long)e->rstep, (long long)e->rn, (long long)S);
            if (e->r0 != next_row)
                return tk_error(bad, "%s: %s: rows from %lld %s row %lld of cols [%lld, %lld]", fn, w, (long long)e->r0,
                                e->r0 < next_row ? "overlap at" : "leave a gap at",
                                (long long)(e->r0 < next_row ? e->r0 : next_row), (long long)b->c0, (long long)b->cn);
            next_row = e->r0 + e->rn;
        }
        if (!b->modulo && next_row != V)
            return tk_error(bad, "%s: %s: the row blocks of cols [%lld, %lld] end at row %lld, not %lld", fn, w,
                            (long long)b->c0, (long long)b->cn, (long long)next_row, (long long)V);
        k = m;
    }
    if (next_col != D)
        return tk_error(bad, "%s: the column bands end at column %lld, not %lld%s%s", fn, (long long)next_col,
                        (long long)D, x->path ? " in index " : "", x->path ? x->path : "");
    return TOKEMB_OK;
}

/* ---- writing ---------------------------------------------------------------------------------- */

int32_t tokemb_checkpoint_save_index(const char *path, int64_t rows, int64_t dim, int64_t generation, size_t n_files,
                                     const char *const *files, const int64_t *layout) {
    static const char fn[] = "tokemb_checkpoint_save_index";
    if (!path || !files || !layout || n_files == 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s", fn,
                        !path     ? "path is NULL"
                        : !files  ? "files is NULL"
                        : !layout ? "layout is NULL"
                                  : "n_files is 0");
    if (rows < 1 || dim < 1 || generation < 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: rows %lld and dim %lld must be >= 1, generation %lld >= 0", fn,
                        (long long)rows, (long long)dim, (long long)generation);
    if (n_files > SIZE_MAX / 256) return tk_error(TOKEMB_OVERFLOW, "%s: n_files = %zu is too large", fn, n_files);
    tk_ck_index x = {rows, dim, generation, NULL, 0, NULL, NULL, 0, NULL};
    x.e = (tk_ck_entry *)tk_calloc(n_files, sizeof *x.e);
    if (!x.e) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu entries", fn, n_files);
    x.n = n_files;
    int32_t st = TOKEMB_OK;
    size_t bytes = 256;
    for (size_t k = 0; k < n_files && !st; k++) {
        char w[32];
        snprintf(w, sizeof w, "files[%zu]", k);
        if (!files[k]) st = tk_error(TOKEMB_INVALID_ARGUMENT, "%s: files[%zu] is NULL", fn, k);
        else st = tk_ck_check_name(fn, files[k], w);
        const int64_t *l = layout + 5 * k;
        x.e[k] = (tk_ck_entry){NULL, NULL, l[0], l[1], l[2], l[3], l[4], k};
        if (!st) bytes += strlen(files[k]) + 200;
    }
    if (!st) st = tk_ck_validate(fn, &x, TOKEMB_INVALID_ARGUMENT);
    char *b = st ? NULL : (char *)tk_malloc(bytes);
    if (!st && !b) st = tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the %zu-byte index", fn, bytes);
    if (!st) {
        size_t o = (size_t)snprintf(b, bytes,
                                    "{\n  \"format\": \"tokemb.checkpoint\",\n  \"version\": 1,\n  \"generation\": "
                                    "%lld,\n  \"dtype\": \"F32\",\n  \"shape\": [%lld, %lld],\n  \"files\": [\n",
                                    (long long)generation, (long long)rows, (long long)dim);
        for (size_t k = 0; k < n_files; k++) {
            const tk_ck_entry *e = &x.e[k];
            o += (size_t)snprintf(b + o, bytes - o,
                                  "    {\"file\": \"%s\", \"tensor\": \"weight\", \"rows\": [%lld, %lld, %lld], "
                                  "\"cols\": [%lld, %lld]}%s\n",
                                  files[k], (long long)e->r0, (long long)e->rstep, (long long)e->rn, (long long)e->c0,
                                  (long long)e->cn, k + 1 < n_files ? "," : "");
        }
        o += (size_t)snprintf(b + o, bytes - o, "  ]\n}\n");
        tk_save s;
        st = tk_save_begin(fn, path, &s);
        if (!st) {
            tk_save_write(&s, b, o);
            st = tk_save_commit(fn, &s);
        }
    }
    tk_free(b);
    tk_ck_free(&x);
    return st;
}

/* ---- reading ---------------------------------------------------------------------------------- */

/* "[a, b, ...]" of exactly n integers. */
static int32_t tk_ck_ints(tk_cursor *j, int64_t *v, int n, const char *what) {
    if (!tk_cursor_eat(j, '[')) return tk_cursor_fail(j, what);
    for (int k = 0; k < n; k++) {
        uint64_t u;
        int32_t st = tk_json_uint(j, &u);
        if (st) return st;
        v[k] = (int64_t)u;
        if (k + 1 < n && !tk_cursor_eat(j, ',')) return tk_cursor_fail(j, "',' between the integers");
    }
    if (!tk_cursor_eat(j, ']')) return tk_cursor_fail(j, "']' (exactly the integers described in docs/formats.md)");
    return TOKEMB_OK;
}

/* The key at the cursor among names[n] (each once: *seen bit k); reports unknown or repeated keys. */
/* A JSON string (tk_malloc'ed into *s) and the file offset of its opening quote. */
static int32_t tk_ck_str_at(tk_cursor *j, char **s, size_t *at) {
    size_t l = 0;
    tk_cursor_ws(j);
    *at = j->base + j->i;
    return tk_json_str(j, s, &l);
}

static int32_t tk_ck_key(tk_cursor *j, const char *const *names, int n, unsigned *seen, int *which, const char *in) {
    char *key = NULL;
    size_t at;
    int32_t st = tk_ck_str_at(j, &key, &at);
    if (st) return st;
    *which = -1;
    for (int k = 0; k < n; k++)
        if (strcmp(key, names[k]) == 0) *which = k;
    if (*which < 0 || (*seen >> *which) & 1u) {
        st = tk_error(TOKEMB_FORMAT, "%s: %s byte %zu: %s key '%.64s' in %s", j->fn, j->what, at,
                      *which < 0 ? "unknown" : "repeated", key, in);
        tk_free(key);
        return st;
    }
    tk_free(key);
    *seen |= 1u << *which;
    if (!tk_cursor_eat(j, ':')) return tk_cursor_fail(j, "':' after a key");
    return TOKEMB_OK;
}

static int32_t tk_ck_expect_str(tk_cursor *j, const char *want, int32_t status_if_other) {
    char *s = NULL;
    size_t at;
    int32_t st = tk_ck_str_at(j, &s, &at);
    if (st) return st;
    if (strcmp(s, want) != 0)
        st = tk_error(status_if_other, "%s: %s byte %zu: '%.64s' where tokemb reads only '%s'", j->fn, j->what, at, s,
                      want);
    tk_free(s);
    return st;
}

static int32_t tk_ck_entry_parse(tk_cursor *j, tk_ck_entry *e) {
    static const char *const keys[] = {"file", "tensor", "rows", "cols"};
    tk_cursor_ws(j);
    e->at = j->base + j->i;
    if (!tk_cursor_eat(j, '{')) return tk_cursor_fail(j, "'{' opening a file entry");
    unsigned seen = 0;
    for (;;) {
        int which;
        int32_t st = tk_ck_key(j, keys, 4, &seen, &which, "a file entry");
        if (st) return st;
        size_t l;
        tk_cursor_ws(j);
        size_t at = j->base + j->i;
        if (which == 0) {
            if ((st = tk_json_str(j, &e->file, &l))) return st;
            char w[300], m[512];
            snprintf(w, sizeof w, "%s byte %zu", j->what, at);
            if ((st = tk_ck_check_name(j->fn, e->file, w))) {
                snprintf(m, sizeof m, "%s", tokemb_last_error());
                return tk_error(TOKEMB_FORMAT, "%s", m);
            }
        } else if (which == 1) {
            if ((st = tk_json_str(j, &e->tensor, &l))) return st;
        } else if (which == 2) {
            int64_t v[3];
            if ((st = tk_ck_ints(j, v, 3, "'[' opening rows [start, step, count]"))) return st;
            e->r0 = v[0];
            e->rstep = v[1];
            e->rn = v[2];
        } else {
            int64_t v[2];
            if ((st = tk_ck_ints(j, v, 2, "'[' opening cols [start, count]"))) return st;
            e->c0 = v[0];
            e->cn = v[1];
        }
        if (tk_cursor_eat(j, ',')) continue;
        if (tk_cursor_eat(j, '}')) break;
        return tk_cursor_fail(j, "',' or '}' in a file entry");
    }
    if (seen != 15u)
        return tk_error(TOKEMB_FORMAT, "%s: %s byte %zu: the file entry lacks '%s'", j->fn, j->what, e->at,
                        keys[!(seen & 1u)   ? 0
                             : !(seen & 2u) ? 1
                             : !(seen & 4u) ? 2
                                            : 3]);
    return TOKEMB_OK;
}

/* Parses and validates the index held in buf[0..len) (path names it in messages; the fuzz entry). */
static int32_t tk_ck_parse_buf(const char *fn, const char *path, const uint8_t *buf, size_t len, tk_ck_index *x) {
    memset(x, 0, sizeof *x);
    x->path = path;
    int32_t st = TOKEMB_OK;
    static const char *const keys[] = {"format", "version", "generation", "dtype", "shape", "files"};
    char what[240];
    snprintf(what, sizeof what, "checkpoint index '%.200s'", path);
    tk_cursor j = {fn, what, buf, 0, len, 0};
    unsigned seen = 0;
    size_t cap = len / 40 + 1; /* every file entry takes more than 40 bytes */
    x->e = (tk_ck_entry *)tk_calloc(cap, sizeof *x->e);
    if (!x->e) st = tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu index entries", fn, cap);
    if (!st && !tk_cursor_eat(&j, '{')) st = tk_cursor_fail(&j, "'{' opening the index");
    while (!st) {
        int which;
        if ((st = tk_ck_key(&j, keys, 6, &seen, &which, "the index"))) break;
        tk_cursor_ws(&j);
        size_t at = j.i;
        if (which == 0) st = tk_ck_expect_str(&j, "tokemb.checkpoint", TOKEMB_FORMAT);
        else if (which == 3) st = tk_ck_expect_str(&j, "F32", TOKEMB_UNSUPPORTED);
        else if (which == 1 || which == 2) {
            uint64_t v;
            st = tk_json_uint(&j, &v);
            if (!st && which == 1 && v != 1)
                st = tk_error(TOKEMB_UNSUPPORTED, "%s: %s byte %zu: version %llu (tokemb reads 1)", fn, what, at,
                              (unsigned long long)v);
            if (which == 2) x->generation = (int64_t)v;
        } else if (which == 4) {
            int64_t v[2];
            st = tk_ck_ints(&j, v, 2, "'[' opening shape [rows, dim]");
            if (!st && (v[0] < 1 || v[1] < 1))
                st = tk_error(TOKEMB_FORMAT, "%s: %s byte %zu: empty shape [%lld, %lld]", fn, what, at, (long long)v[0],
                              (long long)v[1]);
            x->rows = v[0];
            x->dim = v[1];
        } else {
            if (!tk_cursor_eat(&j, '[')) st = tk_cursor_fail(&j, "'[' opening files");
            else if (tk_cursor_eat(&j, ']')) st = tk_cursor_fail(&j, "at least one file entry");
            while (!st) {
                if (x->n == cap) {
                    st = tk_cursor_fail(&j, "fewer file entries for the index size");
                    break;
                }
                if ((st = tk_ck_entry_parse(&j, &x->e[x->n++]))) break;
                if (tk_cursor_eat(&j, ',')) continue;
                if (!tk_cursor_eat(&j, ']')) st = tk_cursor_fail(&j, "',' or ']' in files");
                break;
            }
        }
        if (st) break;
        if (tk_cursor_eat(&j, ',')) continue;
        if (!tk_cursor_eat(&j, '}')) st = tk_cursor_fail(&j, "',' or '}' in the index");
        break;
    }
    if (!st) {
        tk_cursor_ws(&j);
        if (j.i != j.n) st = tk_cursor_fail(&j, "the end of the file after the index object");
    }
    if (!st && seen != 63u) {
        int k = 0;
        while ((seen >> k) & 1u) k++;
        st = tk_error(TOKEMB_FORMAT, "%s: checkpoint index '%s' lacks the key '%s'", fn, path, keys[k]);
    }
    if (!st) st = tk_ck_validate(fn, x, TOKEMB_FORMAT);
    if (st) tk_ck_free(x);
    return st;
}

static int32_t tk_ck_parse(const char *fn, const char *path, tk_ck_index *x) {
    memset(x, 0, sizeof *x);
    tk_file f;
    int32_t st = tk_file_open(fn, path, &f);
    if (st) return st;
    if (f.size > TK_CK_MAX_INDEX) {
        tk_file_close(&f);
        return tk_error(TOKEMB_FORMAT, "%s: index '%s' has %zu bytes, above the %u-byte limit", fn, path, f.size,
                        TK_CK_MAX_INDEX);
    }
    uint8_t *buf = (uint8_t *)tk_malloc(f.size);
    if (!buf) st = tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu bytes to read '%s'", fn, f.size, path);
    else st = tk_file_read(fn, path, &f, 0, buf, f.size);
    tk_file_close(&f);
    if (!st) st = tk_ck_parse_buf(fn, path, buf, f.size, x);
    tk_free(buf);
    return st;
}

int32_t tk_checkpoint_parse(const char *fn, const uint8_t *buf, size_t len, int64_t *rows, int64_t *dim,
                            size_t *n_files) {
    tk_ck_index x;
    int32_t st = tk_ck_parse_buf(fn, "fuzz.index.json", buf, len, &x);
    if (st) return st;
    *rows = x.rows;
    *dim = x.dim;
    *n_files = x.n;
    tk_ck_free(&x);
    return TOKEMB_OK;
}

int32_t tokemb_checkpoint_info(const char *path, int64_t *rows, int64_t *dim, int64_t *generation, size_t *n_files) {
    tk_ck_index x;
    int32_t st = tk_ck_parse("tokemb_checkpoint_info", path, &x);
    if (st) return st;
    if (rows) *rows = x.rows;
    if (dim) *dim = x.dim;
    if (generation) *generation = x.generation;
    if (n_files) *n_files = x.n;
    tk_ck_free(&x);
    return TOKEMB_OK;
}

int32_t tokemb_checkpoint_files(const char *path, char *buf, size_t buf_size, size_t *n_files, size_t *bytes_needed) {
    static const char fn[] = "tokemb_checkpoint_files";
    if (!n_files || !bytes_needed)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s is NULL", fn, !n_files ? "n_files" : "bytes_needed");
    tk_ck_index x;
    int32_t st = tk_ck_parse(fn, path, &x);
    if (st) return st;
    size_t need = 0;
    for (size_t k = 0; k < x.n; k++) need += strlen(x.e[k].file) + 1;
    if (buf && buf_size < need) {
        tk_ck_free(&x);
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: buf_size = %zu is smaller than the %zu bytes needed", fn,
                        buf_size, need);
    }
    if (buf)
        for (size_t k = 0, o = 0; k < x.n; k++) {
            size_t l = strlen(x.e[k].file) + 1;
            memcpy(buf + o, x.e[k].file, l);
            o += l;
        }
    *n_files = x.n;
    *bytes_needed = need;
    tk_ck_free(&x);
    return TOKEMB_OK;
}

/* An opened shard: its file and the byte offset of its tensor's data. */
typedef struct {
    tk_file f;
    size_t begin;
    char *path; /* the index's folder + the file name (tk_malloc) */
} tk_ck_shard;

/* Opens entry e's shard (once) and checks its tensor against the index. */
static int32_t tk_ck_open(const char *fn, const tk_ck_index *x, const tk_ck_entry *e, tk_ck_shard *s) {
    if (s->path) return TOKEMB_OK;
    const char *slash = strrchr(x->path, '/');
    size_t dl = slash ? (size_t)(slash - x->path) + 1 : 0, nl = strlen(e->file);
    s->path = (char *)tk_malloc(dl + nl + 1);
    if (!s->path) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate a shard path", fn);
    memcpy(s->path, x->path, dl);
    memcpy(s->path + dl, e->file, nl + 1);
    tk_st_header h;
    char w[300];
    int32_t st = tk_st_read_header(fn, s->path, &s->f, &h);
    if (st) {
        char m[512];
        snprintf(m, sizeof m, "%s", tokemb_last_error());
        s->f.fd = -1;
        return tk_error(st, "%s (shard '%s' of %s)", m, s->path, tk_ck_where(x, e, w, sizeof w));
    }
    const tk_st_tensor *t = NULL;
    for (size_t k = 0; k < h.n; k++)
        if (strcmp(h.t[k].name, e->tensor) == 0) t = &h.t[k];
    if (!t)
        st = tk_error(TOKEMB_FORMAT, "%s: shard '%s' holds no tensor '%.64s' (the shard of %s)", fn, s->path, e->tensor,
                      tk_ck_where(x, e, w, sizeof w));
    else if (t->dtype != TOKEMB_F32 || t->ndim != 2 || t->shape[0] != e->rn || t->shape[1] != e->cn)
        st = tk_error(TOKEMB_FORMAT,
                      "%s: shard '%s' header byte %zu: tensor '%.64s' is %s of %d dimensions [%lld, %lld], but %s "
                      "says F32 [%lld, %lld]",
                      fn, s->path, t->shape_at, t->name, t->dtype_str, (int)t->ndim, (long long)t->shape[0],
                      (long long)(t->ndim > 1 ? t->shape[1] : 0), tk_ck_where(x, e, w, sizeof w), (long long)e->rn,
                      (long long)e->cn);
    else s->begin = (size_t)t->begin;
    tk_st_header_free(&h);
    return st;
}

/* The entry of band b holding global row g, and g's row inside it. */
static const tk_ck_entry *tk_ck_find(const tk_ck_index *x, const tk_ck_band *b, int64_t g, int64_t *local) {
    const tk_ck_entry *const *s = x->sorted + b->first;
    if (b->modulo) {
        *local = g / (int64_t)b->n;
        return s[g % (int64_t)b->n];
    }
    size_t lo = 0, hi = b->n; /* last entry with r0 <= g */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (s[mid]->r0 <= g) lo = mid;
        else hi = mid;
    }
    *local = g - s[lo]->r0;
    return s[lo];
}

/* Reads a region of the parsed index x (tokemb_checkpoint_read). */
static int32_t tk_ck_read(const char *fn, const tk_ck_index *x_, int64_t row_start, int64_t row_step, int64_t row_count,
                          int64_t col_start, int64_t col_count, float *out) {
    const tk_ck_index x = *x_;
    const char *path = x.path;
    int32_t st = TOKEMB_OK;
    if (row_count < 0 || row_step < 1 || col_count < 1 || col_start < 0 || col_start >= x.dim ||
        col_count > x.dim - col_start ||
        (row_count > 0 &&
         (row_start < 0 || row_start >= x.rows || (row_count - 1) > (x.rows - 1 - row_start) / row_step)))
        st = tk_error(TOKEMB_INVALID_ARGUMENT,
                      "%s: rows [%lld, step %lld, count %lld] x cols [%lld, count %lld] is not a region of the %lld x "
                      "%lld table of '%s'",
                      fn, (long long)row_start, (long long)row_step, (long long)row_count, (long long)col_start,
                      (long long)col_count, (long long)x.rows, (long long)x.dim, path);
    else if (row_count > 0 && !out) st = tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    tk_ck_shard *sh = NULL;
    float *scratch = NULL;
    if (!st && row_count > 0) {
        sh = (tk_ck_shard *)tk_calloc(x.n, sizeof *sh);
        scratch = (float *)tk_malloc(TK_CK_CHUNK);
        if (!sh || !scratch) st = tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the shard records", fn);
        for (size_t k = 0; sh && k < x.n; k++) sh[k].f.fd = -1;
    }
    const size_t oc = (size_t)col_count;
    for (size_t bi = 0; !st && row_count > 0 && bi < x.n_band; bi++) {
        const tk_ck_band *b = &x.band[bi];
        int64_t lo = b->c0 > col_start ? b->c0 : col_start;
        int64_t hi = b->c0 + b->cn < col_start + col_count ? b->c0 + b->cn : col_start + col_count;
        if (lo >= hi) continue;
        const size_t bw = (size_t)b->cn, rb = bw * sizeof(float), take = (size_t)(hi - lo);
        const size_t skip = (size_t)(lo - b->c0), at = (size_t)(lo - col_start);
        const bool direct = b->c0 == col_start && bw == oc; /* the band is the region's width: read into out */
        const int64_t chunk_rows = (int64_t)(TK_CK_CHUNK / rb > 0 ? TK_CK_CHUNK / rb : 1);
        for (int64_t i = 0; !st && i < row_count;) {
            /* a run: the next wanted rows in the same file at a constant stride d of its rows, the gaps
             * between them at most TK_CK_GAP bytes (read through: the kernel reads whole pages anyway) */
            int64_t l0, l, d = 0, run = 1;
            const tk_ck_entry *e = tk_ck_find(&x, b, row_start + i * row_step, &l0);
            if (i + 1 < row_count && tk_ck_find(&x, b, row_start + (i + 1) * row_step, &l) == e && l > l0 &&
                (size_t)(l - l0 - 1) * rb <= TK_CK_GAP)
                d = l - l0;
            const int64_t span_max = direct && d == 1 ? INT64_MAX : chunk_rows; /* rows read per pread */
            while (d && i + run < row_count && run * d + 1 <= span_max &&
                   tk_ck_find(&x, b, row_start + (i + run) * row_step, &l) == e && l == l0 + run * d)
                run++;
            tk_ck_shard *s = &sh[e - x.e];
            if ((st = tk_ck_open(fn, &x, e, s))) break;
            const size_t off = s->begin + (size_t)l0 * rb;
            if (direct && (d == 1 || run == 1)) {
                st = tk_file_read(fn, s->path, &s->f, off, out + (size_t)i * oc, (size_t)run * rb);
            } else if (rb > TK_CK_CHUNK) { /* one wide row at a time: read just the wanted columns */
                st = tk_file_read(fn, s->path, &s->f, off + skip * sizeof(float), out + (size_t)i * oc + at,
                                  take * sizeof(float));
            } else {
                st = tk_file_read(fn, s->path, &s->f, off, scratch, (size_t)((run - 1) * d + 1) * rb);
                for (int64_t r = 0; !st && r < run; r++)
                    memcpy(out + (size_t)(i + r) * oc + at, scratch + (size_t)(r * d) * bw + skip,
                           take * sizeof(float));
            }
            i += run;
        }
    }
    for (size_t k = 0; sh && k < x.n; k++) {
        tk_file_close(&sh[k].f);
        tk_free(sh[k].path);
    }
    tk_free(sh);
    tk_free(scratch);
    return st;
}

int32_t tokemb_checkpoint_read(const char *path, int64_t row_start, int64_t row_step, int64_t row_count,
                               int64_t col_start, int64_t col_count, float *out) {
    static const char fn[] = "tokemb_checkpoint_read";
    tk_ck_index x;
    int32_t st = tk_ck_parse(fn, path, &x);
    if (st) return st;
    st = tk_ck_read(fn, &x, row_start, row_step, row_count, col_start, col_count, out);
    tk_ck_free(&x);
    return st;
}

int32_t tokemb_checkpoint_load(const char *path, tokemb_table **out) {
    static const char fn[] = "tokemb_checkpoint_load";
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    tk_ck_index x;
    int32_t st = tk_ck_parse(fn, path, &x);
    if (st) return st;
    tokemb_table *t = NULL;
    if (!(st = tokemb_table_create(x.rows, x.dim, TOKEMB_F32, &t)))
        st = tk_ck_read(fn, &x, 0, 1, x.rows, 0, x.dim, (float *)t->data);
    tk_ck_free(&x);
    if (st) {
        tokemb_table_free(t);
        return st;
    }
    *out = t;
    return TOKEMB_OK;
}
