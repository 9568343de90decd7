/* io_npy.c - .npy files (format versions 1, 2 and 3): 2-D little-endian float32 / float16 in C order.
 * Load (copy), memory-map read-only without copying, atomic save. The header is parsed strictly: a
 * Python dict literal with exactly the keys 'descr', 'fortran_order' and 'shape'. */
#include "io/io.h"

#include <string.h>

/* A quoted Python string without escapes, at most cap-1 bytes. */
static int32_t tk_npy_str(tk_cursor *c, char *out, size_t cap) {
    tk_cursor_ws(c);
    if (c->i >= c->n || (c->p[c->i] != '\'' && c->p[c->i] != '"')) return tk_cursor_fail(c, "a quoted string");
    uint8_t q = c->p[c->i++];
    size_t k = 0;
    while (c->i < c->n && c->p[c->i] != q) {
        uint8_t ch = c->p[c->i];
        if (ch == '\\' || ch < 0x20 || ch >= 0x7f) return tk_cursor_fail(c, "a plain ASCII string character");
        if (k + 1 >= cap) return tk_cursor_fail(c, "a shorter string");
        out[k++] = (char)ch;
        c->i++;
    }
    if (c->i >= c->n) return tk_cursor_fail(c, "a closing quote");
    c->i++;
    out[k] = '\0';
    return TOKEMB_OK;
}

/* A Python int literal as numpy reads it (ast.literal_eval): decimal digits, no leading zero unless
 * all digits are zeros; format versions 1 and 2 also allow the Python 2 long suffix 'L' (numpy's
 * _filter_header drops it), version 3 does not. */
static int32_t tk_npy_int(tk_cursor *c, unsigned major, int64_t *v) {
    tk_cursor_ws(c);
    uint64_t x = 0;
    size_t start = c->i;
    int r = tk_parse_u63(c->p, c->n, &c->i, &x);
    if (r < 0) return tk_cursor_fail(c, "a dimension below 2^63");
    if (r == 0) return tk_cursor_fail(c, "a non-negative integer dimension");
    if (c->p[start] == '0' && x != 0) {
        c->i = start;
        return tk_cursor_fail(c, "an integer without leading zeros (Python refuses them)");
    }
    if (c->i < c->n && c->p[c->i] == 'L') {
        if (major >= 3) return tk_cursor_fail(c, "no 'L' suffix in a format 3.0 header");
        c->i++;
    }
    *v = (int64_t)x;
    return TOKEMB_OK;
}

int32_t tk_npy_parse(const char *fn, const uint8_t *buf, size_t len, int32_t *dtype, int64_t *rows, int64_t *dim,
                     size_t *offset) {
    static const uint8_t magic[6] = {0x93, 'N', 'U', 'M', 'P', 'Y'};
    if (len < 10 || memcmp(buf, magic, 6) != 0) {
        if (len >= 6 && memcmp(buf, magic, 6) == 0)
            return tk_error(TOKEMB_FORMAT,
                            "%s: npy file of %zu bytes is truncated inside the preamble (expected >= 10)", fn, len);
        return tk_error(TOKEMB_FORMAT, "%s: byte 0: expected the npy magic \\x93NUMPY", fn);
    }
    unsigned major = buf[6];
    size_t hlen, hstart;
    if (buf[7] != 0)
        return tk_error(TOKEMB_FORMAT,
                        "%s: byte 7: npy format version %u.%u is not supported (numpy reads 1.0, 2.0, 3.0)", fn, major,
                        (unsigned)buf[7]);
    if (major == 1) {
        hlen = tk_le16(buf + 8);
        hstart = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return tk_error(TOKEMB_FORMAT,
                            "%s: npy v%u file of %zu bytes is truncated inside the preamble (expected >= 12)", fn,
                            major, len);
        hlen = tk_le32(buf + 8);
        hstart = 12;
    } else {
        return tk_error(TOKEMB_FORMAT, "%s: byte 6: npy format version %u.%u is not supported (expected 1, 2 or 3)", fn,
                        major, (unsigned)buf[7]);
    }
    if (hlen > len - hstart)
        return tk_error(TOKEMB_FORMAT, "%s: byte 8: header length %zu runs past the end of the %zu-byte file", fn, hlen,
                        len);
    tk_cursor c = {fn, "npy header", buf + hstart, 0, hlen, hstart};
    char descr[32] = "";
    int have_descr = 0, have_fortran = 0, have_shape = 0, fortran = 0, ndim = 0;
    int64_t shape[2] = {0, 0};
    size_t descr_at = 0, fortran_at = 0, shape_at = 0, end_at = 0; /* file offsets of the values, the '}' */
    int32_t st;
    if (!tk_cursor_eat(&c, '{')) return tk_cursor_fail(&c, "'{' opening the header dict");
    for (;;) {
        tk_cursor_ws(&c);
        end_at = c.base + c.i;
        if (tk_cursor_eat(&c, '}')) break;
        char key[32];
        size_t key_at = c.base + c.i;
        if ((st = tk_npy_str(&c, key, sizeof key))) return st;
        if (!tk_cursor_eat(&c, ':')) return tk_cursor_fail(&c, "':' after a key");
        if (strcmp(key, "descr") == 0 && !have_descr) {
            have_descr = 1;
            tk_cursor_ws(&c);
            descr_at = c.base + c.i;
            if ((st = tk_npy_str(&c, descr, sizeof descr))) return st;
        } else if (strcmp(key, "fortran_order") == 0 && !have_fortran) {
            have_fortran = 1;
            tk_cursor_ws(&c);
            fortran_at = c.base + c.i;
            if (c.n - c.i >= 4 && memcmp(c.p + c.i, "True", 4) == 0) {
                fortran = 1;
                c.i += 4;
            } else if (c.n - c.i >= 5 && memcmp(c.p + c.i, "False", 5) == 0) {
                c.i += 5;
            } else {
                return tk_cursor_fail(&c, "True or False");
            }
        } else if (strcmp(key, "shape") == 0 && !have_shape) {
            have_shape = 1;
            tk_cursor_ws(&c);
            shape_at = c.base + c.i;
            if (!tk_cursor_eat(&c, '(')) return tk_cursor_fail(&c, "'(' opening the shape tuple");
            for (;;) {
                if (tk_cursor_eat(&c, ')')) break;
                int64_t v = 0;
                if ((st = tk_npy_int(&c, major, &v))) return st;
                if (ndim < 2) shape[ndim] = v;
                if (ndim < 64) ndim++;
                if (tk_cursor_eat(&c, ',')) continue;
                if (tk_cursor_eat(&c, ')')) break;
                return tk_cursor_fail(&c, "',' or ')' in the shape tuple");
            }
        } else {
            return tk_error(TOKEMB_FORMAT,
                            "%s: npy header byte %zu: unexpected or repeated key '%s' (expected 'descr', "
                            "'fortran_order', 'shape' once each)",
                            fn, key_at, key);
        }
        if (tk_cursor_eat(&c, ',')) continue;
        tk_cursor_ws(&c);
        end_at = c.base + c.i;
        if (tk_cursor_eat(&c, '}')) break;
        return tk_cursor_fail(&c, "',' or '}' in the header dict");
    }
    tk_cursor_ws(&c);
    if (c.i != c.n) return tk_cursor_fail(&c, "only padding after the header dict");
    if (!have_descr || !have_fortran || !have_shape)
        return tk_error(TOKEMB_FORMAT, "%s: npy header byte %zu: the dict ends without the key '%s'", fn, end_at,
                        !have_descr     ? "descr"
                        : !have_fortran ? "fortran_order"
                                        : "shape");
    int32_t dt;
    if (strcmp(descr, "<f4") == 0) dt = TOKEMB_F32;
    else if (strcmp(descr, "<f2") == 0) dt = TOKEMB_F16;
    else if (strcmp(descr, ">f4") == 0 || strcmp(descr, ">f2") == 0)
        return tk_error(TOKEMB_FORMAT, "%s: npy header byte %zu: dtype '%s' is big-endian (expected '<f4' or '<f2')",
                        fn, descr_at, descr);
    else
        return tk_error(TOKEMB_FORMAT,
                        "%s: npy header byte %zu: dtype '%s' is not supported (expected '<f4' float32 or '<f2' "
                        "float16)",
                        fn, descr_at, descr);
    if (fortran)
        return tk_error(
            TOKEMB_FORMAT,
            "%s: npy header byte %zu: the array is in Fortran order (fortran_order: True; expected C order)", fn,
            fortran_at);
    if (ndim != 2)
        return tk_error(TOKEMB_FORMAT, "%s: npy header byte %zu: the array has %d dimensions (expected 2: rows, dim)",
                        fn, shape_at, ndim);
    if (shape[0] < 1 || shape[1] < 1)
        return tk_error(TOKEMB_FORMAT,
                        "%s: npy header byte %zu: shape (%lld, %lld) is empty (a table needs rows, dim >= 1)", fn,
                        shape_at, (long long)shape[0], (long long)shape[1]);
    size_t off = hstart + hlen, n, bytes;
    if ((uint64_t)shape[0] > SIZE_MAX || (uint64_t)shape[1] > SIZE_MAX ||
        tk_mul_overflow((size_t)shape[0], (size_t)shape[1], &n) || tk_mul_overflow(n, tk_dtype_size(dt), &bytes))
        return tk_error(TOKEMB_FORMAT, "%s: npy header byte %zu: shape (%lld, %lld) x %zu bytes overflows", fn,
                        shape_at, (long long)shape[0], (long long)shape[1], tk_dtype_size(dt));
    if (bytes != len - off)
        return tk_error(TOKEMB_FORMAT,
                        "%s: npy shape (%lld, %lld) of '%s' needs %zu data bytes from byte %zu, but the file has %zu "
                        "(expected a file of %zu bytes)",
                        fn, (long long)shape[0], (long long)shape[1], descr, bytes, off, len - off,
                        bytes <= SIZE_MAX - off ? bytes + off : SIZE_MAX);
    *dtype = dt;
    *rows = shape[0];
    *dim = shape[1];
    *offset = off;
    return TOKEMB_OK;
}

/* Maps path and parses its npy header (out checked first). On success the caller owns *m. */
static int32_t tk_npy_open(const char *fn, const char *path, tokemb_table **out, tk_map *m, int32_t *dt, int64_t *rows,
                           int64_t *dim, size_t *off) {
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    int32_t st = tk_map_file(fn, path, m);
    if (st) return st;
    if ((st = tk_npy_parse(fn, m->map, m->size, dt, rows, dim, off))) tk_unmap(m);
    return st;
}

/* Copy mode: reads the preamble and the header with pread, parses them against the file size, then
 * reads the data straight into the new table (a file that shrinks meanwhile gives TOKEMB_IO). */
int32_t tokemb_npy_load(const char *path, tokemb_table **out) {
    static const char fn[] = "tokemb_npy_load";
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    tk_file f;
    int32_t st = tk_file_open(fn, path, &f);
    if (st) return st;
    uint8_t pre[12];
    size_t head = f.size < sizeof pre ? f.size : sizeof pre;
    uint8_t *hb = NULL;
    tokemb_table *t = NULL;
    if ((st = tk_file_read(fn, path, &f, 0, pre, head))) goto done;
    /* the header ends at 10 + u16 (v1) or 12 + u32 (v2, v3); anything else is refused by the parser */
    size_t hend = head;
    if (head >= 10 && pre[6] == 1) hend = 10 + (size_t)tk_le16(pre + 8);
    else if (head >= 12 && (pre[6] == 2 || pre[6] == 3)) hend = 12 + (size_t)tk_le32(pre + 8);
    if (hend > f.size) hend = head; /* the parser reports the lying length */
    if (!(hb = (uint8_t *)tk_malloc(hend))) {
        st = tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the %zu-byte npy header", fn, hend);
        goto done;
    }
    memcpy(hb, pre, head);
    if (hend > head && (st = tk_file_read(fn, path, &f, head, hb + head, hend - head))) goto done;
    int32_t dt;
    int64_t rows, dim;
    size_t off;
    if ((st = tk_npy_parse(fn, hb, f.size, &dt, &rows, &dim, &off))) goto done;
    if ((st = tokemb_table_create(rows, dim, dt, &t))) goto done;
    if ((st = tk_file_read(fn, path, &f, off, t->data, f.size - off))) {
        tokemb_table_free(t);
        goto done;
    }
    *out = t;
done:
    tk_free(hb);
    tk_file_close(&f);
    return st;
}

int32_t tokemb_npy_mmap(const char *path, tokemb_table **out) {
    static const char fn[] = "tokemb_npy_mmap";
    tk_map m;
    int32_t dt;
    int64_t rows, dim;
    size_t off;
    int32_t st = tk_npy_open(fn, path, out, &m, &dt, &rows, &dim, &off);
    if (st) return st;
    tokemb_table *t = NULL;
    if (off % tk_dtype_size(dt) != 0) {
        st = tk_error(TOKEMB_UNSUPPORTED, "%s: npy data at byte %zu is not %zu-byte aligned; use tokemb_npy_load", fn,
                      off, tk_dtype_size(dt));
        goto fail;
    }
    if ((st = tokemb_table_wrap((void *)(uintptr_t)(m.map + off), rows, dim, dim, dt, TOKEMB_WRAP_READONLY, &t)))
        goto fail;
    if ((st = tk_table_adopt_map(fn, t, &m))) goto fail;
    *out = t;
    return TOKEMB_OK;
fail:
    tokemb_table_free(t);
    tk_unmap(&m);
    return st;
}

int32_t tokemb_npy_save(const tokemb_table *t, const char *path) {
    static const char fn[] = "tokemb_npy_save";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (!path) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: path is NULL", fn);
    const char *descr = t->dtype == TOKEMB_F32 ? "<f4" : t->dtype == TOKEMB_F16 ? "<f2" : NULL;
    if (!descr)
        return tk_error(TOKEMB_UNSUPPORTED,
                        "%s: npy has no standard dtype for storage dtype %d (BF16/Q8_ROW); convert the table to F32 "
                        "or F16 first (tokemb_table_convert)",
                        fn, (int)t->dtype);
    char hdr[256];
    int k = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%lld, %lld), }", descr,
                     (long long)t->rows, (long long)t->dim);
    /* pad with spaces and a final newline so the data starts at a multiple of 64 (v1 preamble: 10 bytes) */
    size_t total = 10 + (size_t)k + 1;
    size_t padded = (total + 63) / 64 * 64;
    size_t hlen = padded - 10;
    memset(hdr + k, ' ', hlen - (size_t)k - 1);
    hdr[hlen - 1] = '\n';
    uint8_t pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (uint8_t)(hlen & 0xff), (uint8_t)(hlen >> 8)};
    tk_save s;
    if ((st = tk_save_begin(fn, path, &s))) return st;
    tk_save_write(&s, pre, sizeof pre);
    tk_save_write(&s, hdr, hlen);
    tk_save_rows(&s, t);
    return tk_save_commit(fn, &s);
}
