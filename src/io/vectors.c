/* io_text.c - word vectors with a vocabulary: word2vec binary, word2vec text (fastText .vec) and
 * GloVe text (no header line), read and written the way gensim's KeyedVectors does (first of
 * duplicate words kept, later ones skipped; strict UTF-8; values parsed through double as Python's
 * float() then rounded to float32). Counts are checked against the file length before allocating. */
#include "io/io.h"
#include "table/storage.h"
#include "io/vocab.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static locale_t tk_c_locale;
static pthread_once_t tk_c_locale_once = PTHREAD_ONCE_INIT;
static void tk_c_locale_init(void) { tk_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static bool tk_is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0b || c == 0x0c; }

typedef struct {
    const char *fn;
    tokemb_progress_fn cb;
    void *user;
    uint64_t total, next;
} tk_progress;

#define TK_PROGRESS_STEP (4u << 20)

static int32_t tk_report(tk_progress *p, uint64_t done, bool force) {
    if (!p->cb || (!force && done < p->next)) return TOKEMB_OK;
    p->next = done + TK_PROGRESS_STEP;
    if (p->cb(p->user, done, p->total) != 0)
        return tk_error(TOKEMB_CANCELLED, "%s: cancelled by the progress callback at byte %llu of %llu", p->fn,
                        (unsigned long long)done, (unsigned long long)p->total);
    return TOKEMB_OK;
}

/* Parses one decimal value [p, p+n) as Python's float() does for ordinary numbers, rounded to float32. */
/* Zero digits of the Unicode decimal-digit runs (category Nd, Unicode 14.0, the table of Python 3.11's
 * float()): each run holds the digits 0-9 at zero + 0..9. */
static const uint32_t tk_nd_zero[] = {
    0x30,    0x660,   0x6F0,   0x7C0,   0x966,   0x9E6,   0xA66,   0xAE6,   0xB66,   0xBE6,   0xC66,
    0xCE6,   0xD66,   0xDE6,   0xE50,   0xED0,   0xF20,   0x1040,  0x1090,  0x17E0,  0x1810,  0x1946,
    0x19D0,  0x1A80,  0x1A90,  0x1B50,  0x1BB0,  0x1C40,  0x1C50,  0xA620,  0xA8D0,  0xA900,  0xA9D0,
    0xA9F0,  0xAA50,  0xABF0,  0xFF10,  0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0,
    0x11450, 0x114D0, 0x11650, 0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60,
    0x16AC0, 0x16B50, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0};

/* The decimal digit (0-9) at p[*i..n), ASCII or any Unicode Nd digit; advances *i past it. -1 if none. */
static int tk_digit(const uint8_t *p, size_t n, size_t *i) {
    if (*i >= n) return -1;
    uint8_t c = p[*i];
    if (c >= '0' && c <= '9') {
        (*i)++;
        return c - '0';
    }
    if (c < 0xC2) return -1;
    size_t len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (n - *i < len || tk_utf8_valid_prefix(p + *i, len) != len) return -1;
    uint32_t cp = c & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
    for (size_t k = 1; k < len; k++) cp = (cp << 6) | (p[*i + k] & 0x3F);
    size_t lo = 0, hi = sizeof tk_nd_zero / sizeof tk_nd_zero[0];
    while (hi - lo > 1) { /* last zero <= cp */
        size_t mid = (lo + hi) / 2;
        if (tk_nd_zero[mid] <= cp) lo = mid;
        else hi = mid;
    }
    if (cp < tk_nd_zero[lo] || cp - tk_nd_zero[lo] > 9) return -1;
    *i += len;
    return (int)(cp - tk_nd_zero[lo]);
}

/* digitpart = digit (["_"] digit)*, appended to out as ASCII. Returns the digit count (0 = none). */
static size_t tk_digitpart(const uint8_t *p, size_t n, size_t *i, char *out, size_t *k) {
    size_t count = 0;
    for (;;) {
        size_t j = *i;
        if (count && j < n && p[j] == '_') j++;
        int d = tk_digit(p, n, &j);
        if (d < 0) return count; /* a trailing '_' is left unconsumed: the caller sees it and refuses */
        out[(*k)++] = (char)('0' + d);
        *i = j;
        count++;
    }
}

/* The white space float() strips around a value: ASCII isspace() and the non-ASCII str.isspace()
 * characters. Returns the UTF-8 length of the one at p[0..n), 0 if none. */
static size_t tk_pyspace(const uint8_t *p, size_t n) {
    if (n == 0) return 0;
    if (tk_is_ws(p[0])) return 1; /* not 0x1c-0x1f: float() strips only C isspace() below 0x80 */
    uint32_t cp;
    size_t len;
    if (p[0] == 0xC2 && n >= 2) {
        cp = ((uint32_t)(p[0] & 0x1F) << 6) | (p[1] & 0x3F);
        len = 2;
    } else if ((p[0] == 0xE1 || p[0] == 0xE2 || p[0] == 0xE3) && n >= 3) {
        cp = ((uint32_t)(p[0] & 0x0F) << 12) | ((uint32_t)(p[1] & 0x3F) << 6) | (p[2] & 0x3F);
        len = 3;
    } else {
        return 0;
    }
    if (tk_utf8_valid_prefix(p, len) != len) return 0;
    bool sp = cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
              cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
    return sp ? len : 0;
}

/* The same at the end of p[0..n): the length of a trailing space character, 0 if none. */
static size_t tk_pyspace_end(const uint8_t *p, size_t n) {
    for (size_t len = 1; len <= 3 && len <= n; len++)
        if (tk_pyspace(p + n - len, len) == len) return len;
    return 0;
}

static bool tk_word_ieq(const uint8_t *p, size_t n, const char *w) {
    size_t l = strlen(w);
    if (n != l) return false;
    for (size_t k = 0; k < l; k++)
        if ((p[k] | 0x20) != (uint8_t)w[k]) return false;
    return true;
}

/* One vector value with the grammar of Python's float() (what gensim parses with): an optional sign,
 * then "inf", "infinity" or "nan" in any case, or decimal digits with an optional fraction and
 * exponent, '_' allowed between two digits, any Unicode decimal digit, Unicode white space around it
 * ignored; no hex floats, no "nan(...)", any length. The result is the float rounding of the double (gensim: numpy.float32(float(text))). */
static bool tk_parse_value(const uint8_t *p, size_t n, float *out) {
    TK_IO_OP(n);
    for (size_t w; (w = tk_pyspace(p, n)) != 0;) {
        p += w;
        n -= w;
    }
    for (size_t w; (w = tk_pyspace_end(p, n)) != 0;) n -= w;
    if (n == 0) return false;
    char small[256], *buf = n + 2 <= sizeof small ? small : (char *)tk_malloc(n + 2);
    if (!buf) return false;
    size_t i = 0, k = 0;
    bool ok = false;
    if (p[0] == '+' || p[0] == '-') buf[k++] = (char)p[i++];
    if (tk_word_ieq(p + i, n - i, "inf") || tk_word_ieq(p + i, n - i, "infinity") || tk_word_ieq(p + i, n - i, "nan")) {
        memcpy(buf + k, (p[i] | 0x20) == 'n' ? "nan" : "inf", 3);
        k += 3;
        ok = true;
    } else {
        size_t digits = tk_digitpart(p, n, &i, buf, &k);
        if (i < n && p[i] == '.') {
            buf[k++] = '.';
            i++;
            digits += tk_digitpart(p, n, &i, buf, &k);
        }
        ok = digits > 0;
        if (ok && i < n && (p[i] == 'e' || p[i] == 'E')) {
            buf[k++] = 'e';
            i++;
            if (i < n && (p[i] == '+' || p[i] == '-')) buf[k++] = (char)p[i++];
            ok = tk_digitpart(p, n, &i, buf, &k) > 0;
        }
        ok = ok && i == n;
    }
    if (ok) {
        buf[k] = '\0';
        pthread_once(&tk_c_locale_once, tk_c_locale_init);
        char *end = NULL;
        double d = tk_c_locale ? strtod_l(buf, &end, tk_c_locale) : strtod(buf, &end);
        ok = end == buf + k;
        *out = (float)d;
    }
    if (buf != small) tk_free(buf);
    return ok;
}

/* Two whitespace-separated decimal counts on the header line [0, le). */
static int32_t tk_parse_header(const char *fn, const uint8_t *buf, size_t le, int64_t *rows, int64_t *dim) {
    int64_t v[2];
    size_t i = 0;
    for (int k = 0; k < 2; k++) {
        while (i < le && tk_is_ws(buf[i])) i++;
        size_t s = i;
        uint64_t x = 0;
        while (i < le && buf[i] >= '0' && buf[i] <= '9') {
            if (x > (uint64_t)INT64_MAX / 10)
                return tk_error(TOKEMB_FORMAT, "%s: byte %zu: header count too large", fn, s);
            x = x * 10 + (uint64_t)(buf[i] - '0');
            i++;
        }
        if (i == s || (i < le && !tk_is_ws(buf[i])))
            return tk_error(TOKEMB_FORMAT, "%s: byte %zu: expected the header line '<count> <dim>' (two integers)", fn,
                            i);
        v[k] = (int64_t)x;
    }
    while (i < le && tk_is_ws(buf[i])) i++;
    if (i != le)
        return tk_error(TOKEMB_FORMAT, "%s: byte %zu: expected the end of the header line '<count> <dim>'", fn, i);
    if (v[0] < 1 || v[1] < 1)
        return tk_error(TOKEMB_FORMAT, "%s: byte 0: header declares %lld vectors of dim %lld (both must be >= 1)", fn,
                        (long long)v[0], (long long)v[1]);
    *rows = v[0];
    *dim = v[1];
    return TOKEMB_OK;
}

static int32_t tk_word_error(const char *fn, size_t at, int64_t idx, const char *word, size_t wl) {
    const char *why = "";
    size_t bad = tk_word_check(word, wl, &why);
    return tk_error(TOKEMB_FORMAT, "%s: byte %zu: vector %lld: %s", fn, at + (bad == SIZE_MAX ? 0 : bad),
                    (long long)idx, why);
}

/* Stores a parsed row: first occurrence of a word wins (gensim), later duplicates are dropped. */
static int32_t tk_store(const char *fn, tokemb_table *t, tokemb_vocab *v, const char *word, size_t wl,
                        const float *vals) {
    int64_t id;
    int r = tk_vocab_insert(v, word, wl, &id);
    if (r < 0) return tk_error(TOKEMB_NO_MEMORY, "%s: cannot grow the vocabulary", fn);
    if (r == 0) memcpy(tk_row_f32(t, id), vals, (size_t)t->dim * sizeof(float));
    return TOKEMB_OK;
}

/* Length (>= 1) of the ill-formed UTF-8 sequence at p[0..n): the maximal subpart of a valid sequence
 * (Unicode's "U+FFFD substitution of maximal subparts", which Python's decoder follows), else 1 byte. */
static size_t tk_utf8_bad_len(const uint8_t *p, size_t n) {
    const uint8_t c = p[0];
    size_t need;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else return 1;
    size_t k = 1;
    if (k < n && p[1] >= lo && p[1] <= hi) {
        k = 2;
        while (k < need && k < n && (p[k] & 0xC0) == 0x80) k++;
    }
    return k;
}

/* The word [w, w+wl) under the unicode policy: strict returns it as is; IGNORE drops every ill-formed
 * sequence, REPLACE puts U+FFFD in place of each maximal ill-formed subpart (Python's bytes.decode with
 * errors='ignore' / 'replace'). A cleaned word is built in *scratch (grown as needed, 3 * wl bytes). */
static bool tk_word_clean(const uint8_t *w, size_t wl, uint32_t policy, uint8_t **scratch, size_t *cap,
                          const uint8_t **out, size_t *out_len) {
    size_t ok = tk_utf8_valid_prefix(w, wl);
    if (ok == wl || policy == TOKEMB_VECTORS_UNICODE_STRICT) {
        *out = w;
        *out_len = wl;
        return true;
    }
    if (*cap < 3 * wl) {
        uint8_t *b = (uint8_t *)tk_malloc(3 * wl);
        if (!b) return false;
        tk_free(*scratch);
        *scratch = b;
        *cap = 3 * wl;
    }
    uint8_t *o = *scratch;
    size_t i = 0, m = 0;
    while (i < wl) {
        size_t v = i + tk_utf8_valid_prefix(w + i, wl - i);
        memcpy(o + m, w + i, v - i);
        m += v - i;
        if (v == wl) break;
        i = v + tk_utf8_bad_len(w + v, wl - v);
        if (policy == TOKEMB_VECTORS_UNICODE_REPLACE) {
            o[m++] = 0xEF;
            o[m++] = 0xBF;
            o[m++] = 0xBD;
        }
    }
    *out = o;
    *out_len = m;
    return true;
}

/* TOKEMB_VECTORS_AUTO: a first line of two counts "<count> <dim>" means word2vec, text when the next
 * line is "word" + dim decimal values, binary otherwise; any other first line means GloVe. */
static int32_t tk_vectors_detect(const uint8_t *buf, size_t len) {
    const uint8_t *nl = (const uint8_t *)memchr(buf, '\n', len);
    size_t le = nl ? (size_t)(nl - buf) : len, i = 0;
    uint64_t v[2];
    for (int k = 0; k < 2; k++) {
        while (i < le && tk_is_ws(buf[i])) i++;
        if (tk_parse_u63(buf, le, &i, &v[k]) != 1 || (i < le && !tk_is_ws(buf[i]))) return TOKEMB_VECTORS_GLOVE;
    }
    while (i < le && tk_is_ws(buf[i])) i++;
    if (!nl || i != le || v[1] == 0) return TOKEMB_VECTORS_GLOVE;
    size_t s = le + 1;
    const uint8_t *nl2 = (const uint8_t *)memchr(buf + s, '\n', len - s);
    size_t e = nl2 ? (size_t)(nl2 - buf) : len;
    while (e > s && tk_is_ws(buf[e - 1])) e--;
    const uint8_t *sp = (const uint8_t *)memchr(buf + s, ' ', e - s);
    if (!sp) return TOKEMB_VECTORS_WORD2VEC_BINARY;
    uint64_t c = 0;
    for (size_t q = (size_t)(sp - buf); q < e;) {
        size_t a = q + 1, b = a;
        while (b < e && buf[b] != ' ') b++;
        float f;
        if (c == v[1] || !tk_parse_value(buf + a, b - a, &f)) return TOKEMB_VECTORS_WORD2VEC_BINARY;
        c++;
        q = b;
    }
    return c == v[1] ? TOKEMB_VECTORS_WORD2VEC_TEXT : TOKEMB_VECTORS_WORD2VEC_BINARY;
}

int32_t tk_vectors_parse(const char *fn, const uint8_t *buf, size_t len, int32_t format, tokemb_progress_fn cb,
                         void *user, tokemb_table **out_t, tokemb_vocab **out_v) {
    return tk_vectors_parse_ex(fn, buf, len, format, 0, 0, cb, user, out_t, out_v);
}

int32_t tk_vectors_parse_ex(const char *fn, const uint8_t *buf, size_t len, int32_t format, int64_t limit,
                            uint32_t flags, tokemb_progress_fn cb, void *user, tokemb_table **out_t,
                            tokemb_vocab **out_v) {
    tk_progress prog = {fn, cb, user, (uint64_t)len, 0};
    int32_t st;
    int64_t rows = 0, dim = 0;
    size_t pos = 0;
    const uint32_t policy = flags & TOKEMB_VECTORS_UNICODE_MASK;
    if ((st = tk_report(&prog, 0, true))) return st;
    if (format == TOKEMB_VECTORS_AUTO) format = tk_vectors_detect(buf, len);
    if (format == TOKEMB_VECTORS_GLOVE) {
        /* dim from the first line, rows = lines up to the last non-blank byte */
        size_t end = len;
        while (end > 0 && tk_is_ws(buf[end - 1])) end--;
        if (end == 0)
            return tk_error(TOKEMB_FORMAT, "%s: byte 0: the file holds only whitespace (expected vectors)", fn);
        const uint8_t *nl = (const uint8_t *)memchr(buf, '\n', end);
        size_t le = nl ? (size_t)(nl - buf) : end;
        while (le > 0 && tk_is_ws(buf[le - 1])) le--;
        int64_t parts = 1;
        for (size_t i = 0; i < le; i++) parts += buf[i] == ' ';
        dim = parts - 1;
        if (dim < 1)
            return tk_error(TOKEMB_FORMAT, "%s: byte 0: the first line holds no values (expected 'word v1 ... vD')",
                            fn);
        rows = 1;
        for (const uint8_t *q = buf; (q = (const uint8_t *)memchr(q, '\n', (size_t)(buf + end - q))) != NULL; q++)
            rows++;
    } else {
        const uint8_t *nl = (const uint8_t *)memchr(buf, '\n', len);
        if (!nl)
            return tk_error(TOKEMB_FORMAT, "%s: byte %zu: expected a newline ending the header line '<count> <dim>'",
                            fn, len);
        if ((st = tk_parse_header(fn, buf, (size_t)(nl - buf), &rows, &dim))) return st;
        pos = (size_t)(nl - buf) + 1;
    }
    const bool limited = limit > 0 && limit < rows;
    if (limited) rows = limit;
    /* every vector needs at least: binary 'w' ' ' + 4*dim bytes; text 'w' + dim * ' x' */
    const size_t rem = len - pos;
    const uint64_t per = format == TOKEMB_VECTORS_WORD2VEC_BINARY ? 2 + 4 * (uint64_t)dim : 1 + 2 * (uint64_t)dim;
    if ((uint64_t)dim > (UINT64_MAX - 2) / 4 || (uint64_t)rows > UINT64_MAX / per || (uint64_t)rows * per > rem + 1)
        return tk_error(TOKEMB_FORMAT,
                        "%s: byte %zu: %lld vectors of dim %lld need at least %llu bytes, but only %zu follow "
                        "(truncated file or lying header)",
                        fn, pos, (long long)rows, (long long)dim,
                        (uint64_t)dim <= (UINT64_MAX - 2) / 4 && (uint64_t)rows <= UINT64_MAX / per
                            ? (unsigned long long)((uint64_t)rows * per)
                            : (unsigned long long)UINT64_MAX,
                        rem);
    tokemb_table *t = NULL;
    tokemb_vocab *v = NULL;
    float *vals = NULL;
    uint8_t *wbuf = NULL; /* a word cleaned under the unicode policy */
    size_t wcap = 0;
    if ((st = tokemb_table_create(rows, dim, TOKEMB_F32, &t))) return st;
    if ((st = tokemb_vocab_create(&v))) goto fail;
    if (!tk_vocab_reserve(v, (size_t)rows, (size_t)rows * 16 < rem ? (size_t)rows * 16 : rem)) {
        st = tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate a vocabulary of %lld words", fn, (long long)rows);
        goto fail;
    }
    vals = (float *)tk_malloc((size_t)dim * sizeof(float));
    if (!vals) {
        st = tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate a row buffer", fn);
        goto fail;
    }
    for (int64_t r = 0; r < rows; r++) {
        TK_IO_OP(1 + (uint64_t)dim);
        if ((st = tk_report(&prog, pos, false))) goto fail;
        if (format == TOKEMB_VECTORS_WORD2VEC_BINARY) {
            while (pos < len && buf[pos] == '\n') pos++;
            const uint8_t *sp = pos < len ? (const uint8_t *)memchr(buf + pos, ' ', len - pos) : NULL;
            if (!sp) {
                st = tk_error(TOKEMB_FORMAT,
                              "%s: byte %zu: expected a word ending in ' ' for vector %lld of %lld "
                              "(truncated file?)",
                              fn, pos, (long long)r, (long long)rows);
                goto fail;
            }
            size_t wl = (size_t)(sp - (buf + pos)), vs = pos + wl + 1, need = (size_t)dim * 4;
            const uint8_t *w;
            size_t cl;
            const char *why;
            if (!tk_word_clean(buf + pos, wl, policy, &wbuf, &wcap, &w, &cl)) { /* IGNORE may leave "" */
                st = tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate a word buffer", fn);
                goto fail;
            }
            if ((cl > 0 || wl == 0) && tk_word_check((const char *)w, cl, &why) != SIZE_MAX) {
                st = tk_word_error(fn, pos, r, (const char *)w, cl);
                goto fail;
            }
            if (len - vs < need) {
                st = tk_error(TOKEMB_FORMAT,
                              "%s: byte %zu: vector %lld needs %zu bytes of float32, only %zu remain "
                              "(truncated file)",
                              fn, vs, (long long)r, need, len - vs);
                goto fail;
            }
            memcpy(vals, buf + vs, need);
            if ((st = tk_store(fn, t, v, (const char *)w, cl, vals))) goto fail;
            pos = vs + need;
        } else {
            if (pos >= len) {
                st = tk_error(TOKEMB_FORMAT, "%s: byte %zu: expected vector %lld of %lld, found the end of the file",
                              fn, pos, (long long)r, (long long)rows);
                goto fail;
            }
            const uint8_t *nl = (const uint8_t *)memchr(buf + pos, '\n', len - pos);
            size_t next = nl ? (size_t)(nl - buf) + 1 : len, le = nl ? (size_t)(nl - buf) : len;
            while (le > pos && tk_is_ws(buf[le - 1])) le--;
            const uint8_t *sp = (const uint8_t *)memchr(buf + pos, ' ', le - pos);
            size_t wl = sp ? (size_t)(sp - (buf + pos)) : le - pos;
            /* the values must be valid UTF-8 under every policy; the word follows the policy */
            size_t bad = policy == TOKEMB_VECTORS_UNICODE_STRICT
                             ? tk_utf8_valid_prefix(buf + pos, le - pos)
                             : wl + tk_utf8_valid_prefix(buf + pos + wl, le - pos - wl);
            if (bad != le - pos) {
                st =
                    tk_error(TOKEMB_FORMAT, "%s: byte %zu: vector %lld: the line is not valid UTF-8%s", fn, pos + bad,
                             (long long)r, bad < wl ? " (unicode errors 'ignore' or 'replace' accept such words)" : "");
                goto fail;
            }
            const uint8_t *w;
            size_t cl;
            const char *why;
            if (!tk_word_clean(buf + pos, wl, policy, &wbuf, &wcap, &w, &cl)) {
                st = tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate a word buffer", fn);
                goto fail;
            }
            if ((cl > 0 || wl == 0) && tk_word_check((const char *)w, cl, &why) != SIZE_MAX) {
                st = tk_word_error(fn, pos, r, (const char *)w, cl);
                goto fail;
            }
            size_t q = pos + wl;
            int64_t c = 0;
            while (q < le) { /* buf[q] == ' ' */
                size_t s = q + 1, e = s;
                while (e < le && buf[e] != ' ') e++;
                if (c == dim || !tk_parse_value(buf + s, e - s, &vals[c])) {
                    st = tk_error(TOKEMB_FORMAT, "%s: byte %zu: vector %lld: expected %s", fn, s, (long long)r,
                                  c == dim ? "the end of the line (too many values)" : "a decimal number");
                    goto fail;
                }
                c++;
                q = e;
            }
            if (c != dim) {
                st = tk_error(TOKEMB_FORMAT, "%s: byte %zu: vector %lld has %lld values, expected %lld", fn, le,
                              (long long)r, (long long)c, (long long)dim);
                goto fail;
            }
            if ((st = tk_store(fn, t, v, (const char *)w, cl, vals))) goto fail;
            pos = next;
        }
    }
    for (size_t i = pos; i < len && !limited; i++)
        if (!tk_is_ws(buf[i])) {
            st = tk_error(TOKEMB_FORMAT, "%s: byte %zu: expected the end of the file after %lld vectors", fn, i,
                          (long long)rows);
            goto fail;
        }
    if ((st = tk_report(&prog, len, true))) goto fail;
    tk_free(vals);
    tk_free(wbuf);
    t->rows = tokemb_vocab_size(v); /* duplicates dropped: the storage keeps its size, rows shrink */
    *out_t = t;
    *out_v = v;
    return TOKEMB_OK;
fail:
    tk_free(vals);
    tk_free(wbuf);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    return st;
}

static int32_t tk_vectors_load(const char *fn, const char *path, int32_t format, int64_t limit, uint32_t flags,
                               tokemb_progress_fn progress, void *user, tokemb_table **out_table,
                               tokemb_vocab **out_vocab) {
    if (!out_table || !out_vocab)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s is NULL", fn, !out_table ? "out_table" : "out_vocab");
    if (format < TOKEMB_VECTORS_WORD2VEC_BINARY || format > TOKEMB_VECTORS_AUTO)
        return tk_error(TOKEMB_INVALID_ARGUMENT,
                        "%s: unknown format %d (word2vec binary 0, text 1, GloVe 2, auto-detect 3)", fn, (int)format);
    if (limit < 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: limit = %lld must be >= 0 (0 reads every vector)", fn,
                        (long long)limit);
    if ((flags & ~(uint32_t)TOKEMB_VECTORS_UNICODE_MASK) || (flags & TOKEMB_VECTORS_UNICODE_MASK) == 3u)
        return tk_error(TOKEMB_INVALID_ARGUMENT,
                        "%s: flags = 0x%x: unknown bits or both UNICODE_IGNORE and UNICODE_REPLACE (known: 0x1, 0x2)",
                        fn, (unsigned)flags);
    uint8_t *buf = NULL;
    size_t len = 0;
    int32_t st = tk_file_read_all(fn, path, &buf, &len); /* read(), never a mapping: no SIGBUS */
    if (st) return st;
    tokemb_table *t = NULL;
    tokemb_vocab *v = NULL;
    st = tk_vectors_parse_ex(fn, buf, len, format, limit, flags, progress, user, &t, &v);
    tk_free(buf);
    if (st) return st;
    *out_table = t;
    *out_vocab = v;
    return TOKEMB_OK;
}

int32_t tokemb_vectors_load_ex(const char *path, int32_t format, int64_t limit, uint32_t flags,
                               tokemb_progress_fn progress, void *user, tokemb_table **out_table,
                               tokemb_vocab **out_vocab) {
    static const char fn[] = "tokemb_vectors_load_ex";
    return tk_vectors_load(fn, path, format, limit, flags, progress, user, out_table, out_vocab);
}

int32_t tokemb_vectors_load(const char *path, int32_t format, tokemb_progress_fn progress, void *user,
                            tokemb_table **out_table, tokemb_vocab **out_vocab) {
    static const char fn[] = "tokemb_vectors_load";
    return tk_vectors_load(fn, path, format, 0, 0, progress, user, out_table, out_vocab);
}

/* Shortest "%.{6..9}g" text that reads back (through double, as Python does) to the same float. */
static int tk_format_value(char *buf, size_t cap, float x) {
    int k = 0;
    for (int p = 6; p <= 9; p++) {
        k = snprintf(buf, cap, "%.*g", p, (double)x);
        if (!isfinite(x)) break;
        if ((float)strtod(buf, NULL) == x) break;
    }
    return k;
}

int32_t tokemb_vectors_save(const tokemb_table *t, const tokemb_vocab *v, const char *path, int32_t format) {
    static const char fn[] = "tokemb_vectors_save";
    int32_t st = tk_check_table(fn, t);
    if (st) return st;
    if (!v) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: vocab is NULL", fn);
    if (!path) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: path is NULL", fn);
    if (format < TOKEMB_VECTORS_WORD2VEC_BINARY || format > TOKEMB_VECTORS_GLOVE)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: unknown format %d (word2vec binary 0, text 1, GloVe 2)", fn,
                        (int)format);
    if (tokemb_vocab_size(v) != t->rows)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: the vocabulary has %lld words but the table %lld rows", fn,
                        (long long)tokemb_vocab_size(v), (long long)t->rows);
    for (int64_t r = 0; r < t->rows; r++) {
        size_t wl;
        const char *w = tokemb_vocab_word(v, r, &wl);
        for (size_t i = 0; i < wl; i++)
            if (tk_is_ws((uint8_t)w[i]))
                return tk_error(TOKEMB_INVALID_ARGUMENT,
                                "%s: word %lld contains whitespace (byte 0x%02x at %zu), which the format cannot hold",
                                fn, (long long)r, (unsigned)(uint8_t)w[i], i);
    }
    const size_t d = (size_t)t->dim;
    float *row = (float *)tk_malloc(d * sizeof(float));
    char *line = (char *)tk_malloc(d * 20 + 64);
    if (!row || !line) {
        tk_free(row);
        tk_free(line);
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot allocate row buffers", fn);
    }
    tk_save s;
    if ((st = tk_save_begin(fn, path, &s))) {
        tk_free(row);
        tk_free(line);
        return st;
    }
    pthread_once(&tk_c_locale_once, tk_c_locale_init);
    locale_t old = tk_c_locale ? uselocale(tk_c_locale) : (locale_t)0;
    char hdr[64];
    if (format != TOKEMB_VECTORS_GLOVE) {
        int k = snprintf(hdr, sizeof hdr, "%lld %lld\n", (long long)t->rows, (long long)t->dim);
        tk_save_write(&s, hdr, (size_t)k);
    }
    for (int64_t r = 0; r < t->rows && !s.failed; r++) {
        size_t wl;
        const char *w = tokemb_vocab_word(v, r, &wl);
        tk_row_read_f32(t, r, row);
        tk_save_write(&s, w, wl);
        if (format == TOKEMB_VECTORS_WORD2VEC_BINARY) {
            tk_save_write(&s, " ", 1);
            tk_save_write(&s, row, d * sizeof(float));
            tk_save_write(&s, "\n", 1); /* as the original C tool; gensim skips it */
        } else {
            size_t o = 0;
            for (size_t c = 0; c < d; c++) {
                line[o++] = ' ';
                o += (size_t)tk_format_value(line + o, 20, row[c]);
            }
            line[o++] = '\n';
            tk_save_write(&s, line, o);
        }
    }
    if (old) uselocale(old);
    tk_free(row);
    tk_free(line);
    return tk_save_commit(fn, &s);
}
