/* io_safetensors.c - .safetensors files: an 8-byte little-endian header length, a JSON header
 * {"name": {"dtype": "F32", "shape": [r, d], "data_offsets": [begin, end]}, "__metadata__": {...}}
 * and the raw little-endian data. The JSON is parsed by a small strict parser that trusts nothing:
 * bounded nesting, validated UTF-8 and escapes, integer-only shapes and offsets with overflow checks,
 * every tensor's byte range checked against its shape and the file length. */
#include "io/io.h"

#include <stdlib.h>
#include <string.h>

#define TK_ST_MAX_HEADER 100000000u /* the reference implementation's limit */

static int tk_hex(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int32_t tk_js_u4(tk_cursor *j, uint32_t *v) {
    if (j->n - j->i < 4) return tk_cursor_fail(j, "four hex digits after \\u");
    uint32_t x = 0;
    for (int k = 0; k < 4; k++) {
        int h = tk_hex(j->p[j->i]);
        if (h < 0) return tk_cursor_fail(j, "a hex digit in a \\u escape");
        x = x * 16 + (uint32_t)h;
        j->i++;
    }
    *v = x;
    return TOKEMB_OK;
}

/* A JSON string (io.h). The decoded length is <= the encoded length, so the copy is sized from the
 * raw span. */
int32_t tk_json_str(tk_cursor *j, char **out, size_t *out_len) {
    tk_cursor_ws(j);
    if (j->i >= j->n || j->p[j->i] != '"') return tk_cursor_fail(j, "a '\"' starting a string");
    j->i++;
    size_t start = j->i, end = start;
    while (end < j->n && j->p[end] != '"') end += (j->p[end] == '\\' && end + 1 < j->n) ? 2 : 1;
    TK_IO_OP(end - start);
    if (end >= j->n) return tk_cursor_fail(j, "a closing '\"' before the end of the header");
    char *s = NULL;
    if (out) {
        s = (char *)tk_malloc(end - start + 1);
        if (!s) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate a %zu-byte string", j->fn, end - start + 1);
    }
    size_t k = 0;
    int32_t st = TOKEMB_OK;
    while (j->i < end) {
        uint8_t c = j->p[j->i];
        if (c < 0x20) {
            st = tk_cursor_fail(j, "no raw control character inside a string");
            goto fail;
        }
        if (c != '\\') {
            size_t v = tk_utf8_valid_prefix(j->p + j->i, end - j->i);
            if (v == 0) {
                st = tk_cursor_fail(j, "valid UTF-8 in a string");
                goto fail;
            }
            /* copy the valid run up to the next escape or control byte */
            size_t r = 0;
            while (r < v && j->p[j->i + r] != '\\' && j->p[j->i + r] >= 0x20) r++;
            if (s) memcpy(s + k, j->p + j->i, r);
            k += r;
            j->i += r;
            continue;
        }
        j->i++;
        uint8_t e = j->p[j->i];
        uint32_t cp;
        switch (e) {
        case '"': cp = '"'; break;
        case '\\': cp = '\\'; break;
        case '/': cp = '/'; break;
        case 'b': cp = 8; break;
        case 'f': cp = 12; break;
        case 'n': cp = 10; break;
        case 'r': cp = 13; break;
        case 't': cp = 9; break;
        case 'u':
            j->i++;
            if ((st = tk_js_u4(j, &cp))) goto fail;
            if (cp >= 0xDC00 && cp <= 0xDFFF) {
                j->i -= 4;
                st = tk_cursor_fail(j, "a high surrogate before a low one");
                goto fail;
            }
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                uint32_t lo;
                if (j->n - j->i < 2 || j->p[j->i] != '\\' || j->p[j->i + 1] != 'u') {
                    st = tk_cursor_fail(j, "a \\u low surrogate after a high surrogate");
                    goto fail;
                }
                j->i += 2;
                if ((st = tk_js_u4(j, &lo))) goto fail;
                if (lo < 0xDC00 || lo > 0xDFFF) {
                    j->i -= 4;
                    st = tk_cursor_fail(j, "a low surrogate (DC00-DFFF)");
                    goto fail;
                }
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            j->i--; /* the common increment below */
            break;
        default: st = tk_cursor_fail(j, "a valid escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)"); goto fail;
        }
        j->i++;
        if (j->i > end) { /* an escape ran over the closing quote */
            st = tk_cursor_fail(j, "a complete escape");
            goto fail;
        }
        if (cp == 0) {
            st = tk_cursor_fail(j, "no NUL character in a string");
            goto fail;
        }
        uint8_t u[4];
        size_t ul;
        if (cp < 0x80) {
            u[0] = (uint8_t)cp;
            ul = 1;
        } else if (cp < 0x800) {
            u[0] = (uint8_t)(0xC0 | (cp >> 6));
            u[1] = (uint8_t)(0x80 | (cp & 0x3F));
            ul = 2;
        } else if (cp < 0x10000) {
            u[0] = (uint8_t)(0xE0 | (cp >> 12));
            u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            u[2] = (uint8_t)(0x80 | (cp & 0x3F));
            ul = 3;
        } else {
            u[0] = (uint8_t)(0xF0 | (cp >> 18));
            u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            u[3] = (uint8_t)(0x80 | (cp & 0x3F));
            ul = 4;
        }
        if (s) memcpy(s + k, u, ul);
        k += ul;
    }
    if (j->i != end) {
        st = tk_cursor_fail(j, "a closing '\"'");
        goto fail;
    }
    j->i = end + 1;
    if (s) {
        s[k] = '\0';
        *out = s;
        *out_len = k;
    }
    return TOKEMB_OK;
fail:
    tk_free(s);
    return st;
}

/* A non-negative JSON integer (io.h). */
int32_t tk_json_uint(tk_cursor *j, uint64_t *v) {
    tk_cursor_ws(j);
    size_t start = j->i;
    uint64_t x = 0;
    int r = tk_parse_u63(j->p, j->n, &j->i, &x);
    if (r < 0) return tk_cursor_fail(j, "an integer below 2^63");
    if (r == 0) return tk_cursor_fail(j, "a non-negative integer");
    if (j->i - start > 1 && j->p[start] == '0') {
        j->i = start;
        return tk_cursor_fail(j, "an integer without leading zeros");
    }
    if (j->i < j->n && (j->p[j->i] == '.' || j->p[j->i] == 'e' || j->p[j->i] == 'E'))
        return tk_cursor_fail(j, "an integer (no fraction or exponent)");
    *v = x;
    return TOKEMB_OK;
}

static const struct {
    const char *name;
    size_t size;
    int32_t dtype;
} tk_st_dtypes[] = {
    {"F32", 4, TOKEMB_F32}, {"F16", 2, TOKEMB_F16}, {"BF16", 2, TOKEMB_BF16}, {"F64", 8, -1},     {"I64", 8, -1},
    {"U64", 8, -1},         {"I32", 4, -1},         {"U32", 4, -1},           {"I16", 2, -1},     {"U16", 2, -1},
    {"I8", 1, -1},          {"U8", 1, -1},          {"BOOL", 1, -1},          {"F8_E4M3", 1, -1}, {"F8_E5M2", 1, -1},
};

static int32_t tk_st_tensor_value(tk_cursor *j, tk_st_tensor *t, size_t data_start, size_t file_len) {
    int32_t st;
    int have_dtype = 0, have_shape = 0, have_off = 0;
    size_t esize = 0;
    tk_cursor_ws(j);
    t->value_at = j->base + j->i;
    if (!tk_cursor_eat(j, '{')) return tk_cursor_fail(j, "'{' opening a tensor description");
    if (tk_cursor_eat(j, '}')) return tk_cursor_fail(j, "the keys dtype, shape, data_offsets");
    for (;;) {
        char *key = NULL;
        size_t kl = 0, key_at = j->base + j->i;
        if ((st = tk_json_str(j, &key, &kl))) return st;
        int which = strcmp(key, "dtype") == 0          ? 1
                    : strcmp(key, "shape") == 0        ? 2
                    : strcmp(key, "data_offsets") == 0 ? 3
                                                       : 0;
        int dup = (which == 1 && have_dtype) || (which == 2 && have_shape) || (which == 3 && have_off);
        if (which == 0 || dup) {
            st = tk_error(TOKEMB_FORMAT,
                          "%s: safetensors header byte %zu: %s key '%.64s' in tensor '%.64s' (expected dtype, shape, "
                          "data_offsets once each)",
                          j->fn, key_at, dup ? "repeated" : "unknown", key, t->name);
            tk_free(key);
            return st;
        }
        tk_free(key);
        if (!tk_cursor_eat(j, ':')) return tk_cursor_fail(j, "':' after a key");
        if (which == 1) {
            char *d = NULL;
            size_t dl = 0, d_at;
            tk_cursor_ws(j);
            d_at = j->base + j->i;
            if ((st = tk_json_str(j, &d, &dl))) return st;
            size_t k;
            for (k = 0; k < sizeof tk_st_dtypes / sizeof tk_st_dtypes[0]; k++)
                if (strcmp(d, tk_st_dtypes[k].name) == 0) break;
            if (k == sizeof tk_st_dtypes / sizeof tk_st_dtypes[0]) {
                st = tk_error(TOKEMB_FORMAT, "%s: safetensors header byte %zu: unknown dtype '%.32s' of tensor '%.64s'",
                              j->fn, d_at, d, t->name);
                tk_free(d);
                return st;
            }
            tk_free(d);
            t->dtype = tk_st_dtypes[k].dtype;
            snprintf(t->dtype_str, sizeof t->dtype_str, "%s", tk_st_dtypes[k].name);
            esize = tk_st_dtypes[k].size;
            have_dtype = 1;
        } else if (which == 2) {
            tk_cursor_ws(j);
            t->shape_at = j->base + j->i;
            if (!tk_cursor_eat(j, '[')) return tk_cursor_fail(j, "'[' opening the shape");
            t->ndim = 0;
            if (!tk_cursor_eat(j, ']')) {
                for (;;) {
                    uint64_t v;
                    if (t->ndim == 8) return tk_cursor_fail(j, "at most 8 dimensions");
                    if ((st = tk_json_uint(j, &v))) return st;
                    t->shape[t->ndim++] = (int64_t)v;
                    if (tk_cursor_eat(j, ',')) continue;
                    if (tk_cursor_eat(j, ']')) break;
                    return tk_cursor_fail(j, "',' or ']' in the shape");
                }
            }
            have_shape = 1;
        } else {
            uint64_t b, e;
            tk_cursor_ws(j);
            t->offsets_at = j->base + j->i;
            if (!tk_cursor_eat(j, '[')) return tk_cursor_fail(j, "'[' opening data_offsets");
            if ((st = tk_json_uint(j, &b))) return st;
            if (!tk_cursor_eat(j, ',')) return tk_cursor_fail(j, "',' between the two data offsets");
            if ((st = tk_json_uint(j, &e))) return st;
            if (!tk_cursor_eat(j, ']')) return tk_cursor_fail(j, "']' closing data_offsets (exactly two values)");
            t->begin = b;
            t->end = e;
            have_off = 1;
        }
        if (tk_cursor_eat(j, ',')) continue;
        if (tk_cursor_eat(j, '}')) break;
        return tk_cursor_fail(j, "',' or '}' in a tensor description");
    }
    if (!have_dtype || !have_shape || !have_off)
        return tk_error(TOKEMB_FORMAT, "%s: safetensors header byte %zu: tensor '%.64s' lacks '%s'", j->fn, t->value_at,
                        t->name,
                        !have_dtype   ? "dtype"
                        : !have_shape ? "shape"
                                      : "data_offsets");
    /* byte range vs shape vs file */
    size_t count = 1, bytes;
    for (int32_t d = 0; d < t->ndim; d++)
        if ((uint64_t)t->shape[d] > SIZE_MAX || tk_mul_overflow(count, (size_t)t->shape[d], &count))
            return tk_error(TOKEMB_FORMAT,
                            "%s: safetensors header byte %zu: tensor '%.64s': the element count overflows", j->fn,
                            t->shape_at, t->name);
    if (tk_mul_overflow(count, esize, &bytes))
        return tk_error(TOKEMB_FORMAT, "%s: safetensors header byte %zu: tensor '%.64s': the byte count overflows",
                        j->fn, t->shape_at, t->name);
    const size_t data_len = file_len - data_start;
    if (t->begin > t->end || t->end > data_len)
        return tk_error(TOKEMB_FORMAT,
                        "%s: safetensors header byte %zu: tensor '%.64s': data_offsets [%llu, %llu] lie outside the "
                        "%zu data bytes after byte %zu",
                        j->fn, t->offsets_at, t->name, (unsigned long long)t->begin, (unsigned long long)t->end,
                        data_len, data_start);
    if (t->end - t->begin != bytes)
        return tk_error(TOKEMB_FORMAT,
                        "%s: safetensors header byte %zu: tensor '%.64s': data_offsets span %llu bytes but shape x %s "
                        "needs %zu",
                        j->fn, t->offsets_at, t->name, (unsigned long long)(t->end - t->begin), t->dtype_str, bytes);
    t->begin += data_start;
    t->end += data_start;
    return TOKEMB_OK;
}

/* JSON-escapes s into the growing buffer (b, len, cap); returns false on allocation failure. */
static bool tk_buf_put(char **b, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t nc = (*cap ? *cap * 2 : 256);
        while (nc < *len + n + 1) nc *= 2;
        char *nb = (char *)tk_malloc(nc);
        if (!nb) return false;
        if (*b) memcpy(nb, *b, *len);
        tk_free(*b);
        *b = nb;
        *cap = nc;
    }
    memcpy(*b + *len, s, n);
    *len += n;
    return true;
}

static bool tk_buf_json_str(char **b, size_t *len, size_t *cap, const char *s) {
    if (!tk_buf_put(b, len, cap, "\"", 1)) return false;
    for (const char *c = s; *c; c++) {
        char esc[8];
        unsigned char u = (unsigned char)*c;
        if (u == '"' || u == '\\') {
            esc[0] = '\\';
            esc[1] = (char)u;
            if (!tk_buf_put(b, len, cap, esc, 2)) return false;
        } else if (u < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", u);
            if (!tk_buf_put(b, len, cap, esc, 6)) return false;
        } else if (!tk_buf_put(b, len, cap, c, 1)) {
            return false;
        }
    }
    return tk_buf_put(b, len, cap, "\"", 1);
}

/* "__metadata__": an object of string -> string; the pairs are kept in h->meta as "key\0value\0". */
static int32_t tk_st_metadata(tk_cursor *j, tk_st_header *h) {
    int32_t st;
    size_t cap = 0;
    if (!tk_cursor_eat(j, '{')) return tk_cursor_fail(j, "'{' opening __metadata__");
    if (tk_cursor_eat(j, '}')) return TOKEMB_OK;
    for (;;) {
        char *kv[2] = {NULL, NULL};
        size_t kl[2] = {0, 0};
        if ((st = tk_json_str(j, &kv[0], &kl[0]))) return st;
        if (!tk_cursor_eat(j, ':')) {
            tk_free(kv[0]);
            return tk_cursor_fail(j, "':' after a metadata key");
        }
        tk_cursor_ws(j);
        if (j->i < j->n && j->p[j->i] != '"') {
            tk_free(kv[0]);
            return tk_cursor_fail(j, "a string value in __metadata__ (safetensors metadata maps strings to strings)");
        }
        if ((st = tk_json_str(j, &kv[1], &kl[1]))) {
            tk_free(kv[0]);
            return st;
        }
        bool ok = tk_buf_put(&h->meta, &h->meta_bytes, &cap, kv[0], kl[0] + 1) &&
                  tk_buf_put(&h->meta, &h->meta_bytes, &cap, kv[1], kl[1] + 1);
        tk_free(kv[0]);
        tk_free(kv[1]);
        if (!ok) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the metadata", j->fn);
        h->meta_n++;
        if (tk_cursor_eat(j, ',')) continue;
        if (tk_cursor_eat(j, '}')) return TOKEMB_OK;
        return tk_cursor_fail(j, "',' or '}' in __metadata__");
    }
}

void tk_st_header_free(tk_st_header *h) {
    for (size_t i = 0; i < h->n; i++) tk_free(h->t[i].name);
    tk_free(h->t);
    tk_free(h->meta);
    h->t = NULL;
    h->n = 0;
    h->meta = NULL;
    h->meta_bytes = h->meta_n = 0;
}

static int tk_st_cmp_name(const void *a, const void *b) {
    const tk_st_tensor *x = *(const tk_st_tensor *const *)a, *y = *(const tk_st_tensor *const *)b;
    TK_IO_OP(1);
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(x->name, y->name, n);
    if (c) return c;
    if (x->name_len != y->name_len) return x->name_len < y->name_len ? -1 : 1;
    return x->name_at < y->name_at ? -1 : x->name_at > y->name_at;
}

/* Tensor names are distinct: sorted copy, O(n log n) comparisons. Reports the later of the first
 * repeated pair (in sorted order) with its byte offset. */
static int32_t tk_st_check_unique(const char *fn, const tk_st_header *h) {
    if (h->n < 2) return TOKEMB_OK;
    const tk_st_tensor **s = (const tk_st_tensor **)tk_malloc(h->n * sizeof *s);
    if (!s) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu tensor pointers", fn, h->n);
    for (size_t k = 0; k < h->n; k++) s[k] = &h->t[k];
    qsort(s, h->n, sizeof *s, tk_st_cmp_name);
    int32_t st = TOKEMB_OK;
    for (size_t k = 1; k < h->n && !st; k++) {
        TK_IO_OP(1);
        if (s[k]->name_len == s[k - 1]->name_len && memcmp(s[k]->name, s[k - 1]->name, s[k]->name_len) == 0)
            st = tk_error(TOKEMB_FORMAT,
                          "%s: safetensors header byte %zu: repeated tensor name '%.64s' (first at byte %zu)", fn,
                          s[k]->name_at, s[k]->name, s[k - 1]->name_at);
    }
    tk_free(s);
    return st;
}

int32_t tk_st_parse(const char *fn, const uint8_t *buf, size_t len, tk_st_header *h) {
    h->t = NULL;
    h->n = 0;
    h->meta = NULL;
    h->meta_bytes = h->meta_n = 0;
    if (len < 8)
        return tk_error(TOKEMB_FORMAT,
                        "%s: safetensors file of %zu bytes is truncated (expected an 8-byte header length)", fn, len);
    uint64_t hl = tk_le64(buf);
    if (hl > len - 8)
        return tk_error(TOKEMB_FORMAT,
                        "%s: byte 0: safetensors header length %llu runs past the end of the %zu-byte file", fn,
                        (unsigned long long)hl, len);
    if (hl > TK_ST_MAX_HEADER)
        return tk_error(TOKEMB_FORMAT, "%s: byte 0: safetensors header length %llu exceeds the %u-byte limit", fn,
                        (unsigned long long)hl, TK_ST_MAX_HEADER);
    const size_t data_start = 8 + (size_t)hl;
    tk_cursor j = {fn, "safetensors header", buf + 8, 0, (size_t)hl, 8};
    int32_t st;
    /* the header is at most hl bytes, and each tensor takes > 40 of them */
    size_t cap = (size_t)hl / 40 + 1;
    if (!tk_cursor_eat(&j, '{')) return tk_cursor_fail(&j, "'{' opening the header");
    h->t = (tk_st_tensor *)tk_calloc(cap, sizeof *h->t);
    if (!h->t) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu tensor records", fn, cap);
    int have_meta = 0;
    if (!tk_cursor_eat(&j, '}')) {
        for (;;) {
            char *name = NULL;
            size_t nl = 0, name_at;
            tk_cursor_ws(&j);
            name_at = j.base + j.i;
            if ((st = tk_json_str(&j, &name, &nl))) goto fail;
            if (!tk_cursor_eat(&j, ':')) {
                tk_free(name);
                st = tk_cursor_fail(&j, "':' after a tensor name");
                goto fail;
            }
            if (strcmp(name, "__metadata__") == 0) {
                tk_free(name);
                if (have_meta) {
                    st = tk_error(TOKEMB_FORMAT, "%s: safetensors header byte %zu: repeated __metadata__", fn, name_at);
                    goto fail;
                }
                have_meta = 1;
                if ((st = tk_st_metadata(&j, h))) goto fail;
            } else {
                if (h->n == cap) {
                    tk_free(name);
                    st = tk_cursor_fail(&j, "fewer tensors for the header size");
                    goto fail;
                }
                tk_st_tensor *t = &h->t[h->n++];
                t->name = name;
                t->name_len = nl;
                t->name_at = name_at;
                if ((st = tk_st_tensor_value(&j, t, data_start, len))) goto fail;
            }
            if (tk_cursor_eat(&j, ',')) continue;
            if (tk_cursor_eat(&j, '}')) break;
            st = tk_cursor_fail(&j, "',' or '}' after a tensor");
            goto fail;
        }
    }
    tk_cursor_ws(&j);
    if (j.i != j.n) {
        st = tk_cursor_fail(&j, "only whitespace padding after the header object");
        goto fail;
    }
    if ((st = tk_st_check_unique(fn, h))) goto fail;
    return TOKEMB_OK;
fail:
    tk_st_header_free(h);
    return st;
}

/* ---- public API ------------------------------------------------------------------------------- */

static int32_t tk_st_find(const char *fn, const char *path, const tk_st_header *h, const char *name,
                          const tk_st_tensor **out) {
    const tk_st_tensor *t = NULL;
    if (!name) {
        if (h->n != 1)
            return tk_error(TOKEMB_INVALID_ARGUMENT,
                            "%s: name is NULL but '%s' holds %zu tensors (NULL picks the only one)", fn, path, h->n);
        t = &h->t[0];
    } else {
        for (size_t k = 0; k < h->n; k++)
            if (strcmp(h->t[k].name, name) == 0) t = &h->t[k];
        if (!t) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: '%s' holds no tensor named '%.200s'", fn, path, name);
    }
    if (t->dtype < 0)
        return tk_error(TOKEMB_UNSUPPORTED, "%s: tensor '%.200s' has dtype %s (tables store F32, F16 or BF16)", fn,
                        t->name, t->dtype_str);
    if (t->ndim != 2)
        return tk_error(TOKEMB_FORMAT,
                        "%s: safetensors header byte %zu: tensor '%.200s' has %d dimensions (expected 2: "
                        "rows, dim)",
                        fn, t->shape_at, t->name, (int)t->ndim);
    if (t->shape[0] < 1 || t->shape[1] < 1)
        return tk_error(TOKEMB_FORMAT,
                        "%s: safetensors header byte %zu: tensor '%.200s' has an empty shape [%lld, %lld]", fn,
                        t->shape_at, t->name, (long long)t->shape[0], (long long)t->shape[1]);
    *out = t;
    return TOKEMB_OK;
}

/* The header of a file, read with pread (io.h). */
int32_t tk_st_read_header(const char *fn, const char *path, tk_file *f, tk_st_header *h) {
    int32_t st = tk_file_open(fn, path, f);
    if (st) return st;
    uint8_t pre[8];
    size_t head = f->size < 8 ? f->size : 8, hend = head;
    if ((st = tk_file_read(fn, path, f, 0, pre, head))) goto fail;
    if (head == 8 && tk_le64(pre) <= f->size - 8 && tk_le64(pre) <= TK_ST_MAX_HEADER) hend = 8 + (size_t)tk_le64(pre);
    uint8_t *hb = (uint8_t *)tk_malloc(hend);
    if (!hb) {
        st = tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the %zu-byte safetensors header", fn, hend);
        goto fail;
    }
    memcpy(hb, pre, head);
    if (hend > head) st = tk_file_read(fn, path, f, head, hb + head, hend - head);
    if (!st) st = tk_st_parse(fn, hb, f->size, h);
    tk_free(hb);
    if (!st) return TOKEMB_OK;
fail:
    tk_file_close(f);
    return st;
}

static int32_t tk_st_open(const char *fn, const char *path, const char *name, bool map, tokemb_table **out) {
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: out is NULL", fn);
    tk_st_header h;
    tk_file f;
    const tk_st_tensor *d = NULL;
    tokemb_table *t = NULL;
    int32_t st = tk_st_read_header(fn, path, &f, &h);
    if (st) return st;
    if ((st = tk_st_find(fn, path, &h, name, &d))) goto done;
    if (map) {
        if (d->begin % tk_dtype_size(d->dtype) != 0) {
            st = tk_error(TOKEMB_UNSUPPORTED,
                          "%s: tensor '%.200s' starts at byte %llu, not %zu-byte aligned; use tokemb_safetensors_load",
                          fn, d->name, (unsigned long long)d->begin, tk_dtype_size(d->dtype));
            goto done;
        }
        tk_map m;
        if ((st = tk_map_fd(fn, path, &f, &m))) goto done;
        if ((st = tokemb_table_wrap((void *)(uintptr_t)(m.map + d->begin), d->shape[0], d->shape[1], d->shape[1],
                                    d->dtype, TOKEMB_WRAP_READONLY, &t))) {
            tk_unmap(&m);
            goto done;
        }
        if ((st = tk_table_adopt_map(fn, t, &m))) {
            tokemb_table_free(t);
            tk_unmap(&m);
            goto done;
        }
    } else {
        if ((st = tokemb_table_create(d->shape[0], d->shape[1], d->dtype, &t))) goto done;
        if ((st = tk_file_read(fn, path, &f, (size_t)d->begin, t->data, (size_t)(d->end - d->begin)))) {
            tokemb_table_free(t);
            goto done;
        }
    }
    *out = t;
done:
    tk_st_header_free(&h);
    tk_file_close(&f);
    return st;
}

int32_t tokemb_safetensors_load(const char *path, const char *name, tokemb_table **out) {
    return tk_st_open("tokemb_safetensors_load", path, name, false, out);
}

int32_t tokemb_safetensors_mmap(const char *path, const char *name, tokemb_table **out) {
    return tk_st_open("tokemb_safetensors_mmap", path, name, true, out);
}

/* Lists the tensor names (meta = false) or the metadata pairs (meta = true) of a file, packed. */
static int32_t tk_st_list(const char *fn, const char *path, bool meta, char *buf, size_t buf_size, size_t *n_out,
                          size_t *bytes_needed) {
    if (!n_out || !bytes_needed)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s is NULL", fn,
                        !n_out ? (meta ? "n_pairs" : "n_names") : "bytes_needed");
    tk_st_header h;
    tk_file f;
    int32_t st = tk_st_read_header(fn, path, &f, &h);
    if (st) return st;
    tk_file_close(&f);
    size_t need = 0;
    if (meta) need = h.meta_bytes;
    else
        for (size_t k = 0; k < h.n; k++) need += h.t[k].name_len + 1;
    if (buf && buf_size < need) {
        st = tk_error(TOKEMB_INVALID_ARGUMENT, "%s: buf_size = %zu is smaller than the %zu bytes needed", fn, buf_size,
                      need);
        tk_st_header_free(&h);
        return st;
    }
    if (buf && meta && need) memcpy(buf, h.meta, need);
    if (buf && !meta) {
        size_t o = 0;
        for (size_t k = 0; k < h.n; k++) {
            memcpy(buf + o, h.t[k].name, h.t[k].name_len + 1);
            o += h.t[k].name_len + 1;
        }
    }
    *n_out = meta ? h.meta_n : h.n;
    *bytes_needed = need;
    tk_st_header_free(&h);
    return TOKEMB_OK;
}

int32_t tokemb_safetensors_names(const char *path, char *buf, size_t buf_size, size_t *n_names, size_t *bytes_needed) {
    return tk_st_list("tokemb_safetensors_names", path, false, buf, buf_size, n_names, bytes_needed);
}

int32_t tokemb_safetensors_metadata(const char *path, char *buf, size_t buf_size, size_t *n_pairs,
                                    size_t *bytes_needed) {
    return tk_st_list("tokemb_safetensors_metadata", path, true, buf, buf_size, n_pairs, bytes_needed);
}

static int tk_cmp_pstr(const void *a, const void *b) {
    const char *const *x = *(const char *const *const *)a, *const *y = *(const char *const *const *)b;
    TK_IO_OP(1);
    int c = strcmp(*x, *y);
    return c ? c : (x < y ? -1 : x > y);
}

/* INVALID_ARGUMENT naming the first repeated pair of strs[0..n) ("<what>[i] repeats <what>[k]"):
 * a sorted array of pointers, O(n log n) comparisons. */
static int32_t tk_first_repeat(const char *fn, const char *const *strs, size_t n, const char *what) {
    if (n < 2) return TOKEMB_OK;
    const char *const **s = (const char *const **)tk_malloc(n * sizeof *s);
    if (!s) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate %zu pointers", fn, n);
    for (size_t i = 0; i < n; i++) s[i] = strs + i;
    qsort(s, n, sizeof *s, tk_cmp_pstr);
    int32_t st = TOKEMB_OK;
    for (size_t i = 1; i < n && !st; i++)
        if (strcmp(*s[i - 1], *s[i]) == 0)
            st = tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s[%zu] repeats %s[%zu] '%.200s'", fn, what,
                          (size_t)(s[i] - strs), what, (size_t)(s[i - 1] - strs), *s[i]);
    tk_free(s);
    return st;
}

/* Checks the metadata arrays: NULL-free, UTF-8, keys distinct (n log n). */
static int32_t tk_st_check_meta(const char *fn, const char *const *keys, const char *const *values, size_t n) {
    if (n == 0) return TOKEMB_OK;
    if (!keys || !values)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s is NULL with n_meta = %zu", fn,
                        !keys ? "meta_keys" : "meta_values", n);
    for (size_t i = 0; i < n; i++) {
        for (int w = 0; w < 2; w++) {
            const char *x = w ? values[i] : keys[i];
            if (!x) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: meta_%s[%zu] is NULL", fn, w ? "values" : "keys", i);
            size_t l = strlen(x), v = tk_utf8_valid_prefix((const uint8_t *)x, l);
            if (v != l)
                return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: meta_%s[%zu] is not valid UTF-8 (byte %zu)", fn,
                                w ? "values" : "keys", i, v);
        }
    }
    return tk_first_repeat(fn, keys, n, "meta_keys");
}

static int32_t tk_st_save(const char *fn, const tokemb_table *const *tables, const char *const *names, size_t n,
                          const char *const *meta_keys, const char *const *meta_values, size_t n_meta,
                          const char *path) {
    if (!tables || !names || n == 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s", fn,
                        n == 0    ? "n is 0"
                        : !tables ? "tables is NULL"
                                  : "names is NULL");
    if (!path) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: path is NULL", fn);
    for (size_t i = 0; i < n; i++) {
        const tokemb_table *t = tables[i];
        if (!t) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: tables[%zu] is NULL", fn, i);
        if (!names[i] || !names[i][0])
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: names[%zu] is NULL or empty", fn, i);
        size_t nl = strlen(names[i]);
        if (tk_utf8_valid_prefix((const uint8_t *)names[i], nl) != nl)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: names[%zu] is not valid UTF-8 (byte %zu)", fn, i,
                            tk_utf8_valid_prefix((const uint8_t *)names[i], nl));
        if (strcmp(names[i], "__metadata__") == 0)
            return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: names[%zu] is the reserved '__metadata__'", fn, i);
        if (t->dtype == TOKEMB_Q8_ROW)
            return tk_error(TOKEMB_UNSUPPORTED,
                            "%s: tables[%zu] has Q8_ROW storage, which safetensors cannot describe; convert it first",
                            fn, i);
    }
    int32_t mst = tk_first_repeat(fn, names, n, "names");
    if (mst) return mst;
    mst = tk_st_check_meta(fn, meta_keys, meta_values, n_meta);
    if (mst) return mst;
    char *hb = NULL;
    size_t hl = 0, hc = 0;
    uint64_t off = 0;
    bool ok = tk_buf_put(&hb, &hl, &hc, "{", 1);
    if (n_meta) { /* first, as the safetensors package writes it */
        ok = ok && tk_buf_put(&hb, &hl, &hc, "\"__metadata__\":{", 16);
        for (size_t i = 0; i < n_meta && ok; i++)
            ok = tk_buf_json_str(&hb, &hl, &hc, meta_keys[i]) && tk_buf_put(&hb, &hl, &hc, ":", 1) &&
                 tk_buf_json_str(&hb, &hl, &hc, meta_values[i]) &&
                 tk_buf_put(&hb, &hl, &hc, i + 1 < n_meta ? "," : "},", i + 1 < n_meta ? 1 : 2);
    }
    for (size_t i = 0; i < n && ok; i++) {
        const tokemb_table *t = tables[i];
        uint64_t bytes = (uint64_t)t->rows * (uint64_t)t->dim * tk_dtype_size(t->dtype);
        char tmp[160];
        const char *ds = t->dtype == TOKEMB_F32 ? "F32" : t->dtype == TOKEMB_F16 ? "F16" : "BF16";
        int k = snprintf(tmp, sizeof tmp, ":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],\"data_offsets\":[%llu,%llu]}%s",
                         ds, (long long)t->rows, (long long)t->dim, (unsigned long long)off,
                         (unsigned long long)(off + bytes), i + 1 < n ? "," : "");
        ok = tk_buf_json_str(&hb, &hl, &hc, names[i]) && tk_buf_put(&hb, &hl, &hc, tmp, (size_t)k);
        off += bytes;
    }
    ok = ok && tk_buf_put(&hb, &hl, &hc, "}", 1);
    while (ok && hl % 8 != 0) ok = tk_buf_put(&hb, &hl, &hc, " ", 1);
    if (!ok) {
        tk_free(hb);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate the JSON header", fn);
    }
    tk_save s;
    int32_t st = tk_save_begin(fn, path, &s);
    if (st) {
        tk_free(hb);
        return st;
    }
    uint8_t le[8];
    for (int b = 0; b < 8; b++) le[b] = (uint8_t)((uint64_t)hl >> (8 * b));
    tk_save_write(&s, le, 8);
    tk_save_write(&s, hb, hl);
    tk_free(hb);
    for (size_t i = 0; i < n; i++) tk_save_rows(&s, tables[i]);
    return tk_save_commit(fn, &s);
}

int32_t tokemb_safetensors_save(const tokemb_table *const *tables, const char *const *names, size_t n,
                                const char *path) {
    return tk_st_save("tokemb_safetensors_save", tables, names, n, NULL, NULL, 0, path);
}

int32_t tokemb_safetensors_save_ex(const tokemb_table *const *tables, const char *const *names, size_t n,
                                   const char *const *meta_keys, const char *const *meta_values, size_t n_meta,
                                   const char *path) {
    return tk_st_save("tokemb_safetensors_save_ex", tables, names, n, meta_keys, meta_values, n_meta, path);
}
