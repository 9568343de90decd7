/* test_io_scaling.c - hostile workloads (issue 15), measured as work, not seconds: the TOKEMB_TESTING
 * build counts every hash probe, name comparison, white-space step and parsed value byte in
 * tk_test_io_ops. Checked here: each parser's work grows linearly (n log n at most) over 1x/10x/100x
 * inputs, and words crafted to collide under the old unseeded FNV-1a hash cost O(1) probes each.
 * Links the static test-only library (tests/CMakeLists.txt), like test_alloc_failures. */
#define _GNU_SOURCE
#include "tk_test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

/* ---- growing byte buffer ------------------------------------------------------------------------ */
typedef struct {
    char *p;
    size_t n, cap;
} sbuf;
static void sb_put(sbuf *b, const void *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}
static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    sb_put(b, tmp, (size_t)k);
}

/* ---- inputs of n items ------------------------------------------------------------------------- */
/* A safetensors file with n tensors of shape [1, 1] F32 (distinct names). */
static sbuf make_safetensors(size_t n) {
    sbuf j = {0}, f = {0};
    sb_put(&j, "{", 1);
    for (size_t i = 0; i < n; i++)
        sb_printf(&j, "%s\"tensor.%zu.weight\":{\"dtype\":\"F32\",\"shape\":[1,1],\"data_offsets\":[%zu,%zu]}",
                  i ? "," : "", (n * 7919 + i * 104729) % (n * 1000003), 4 * i, 4 * i + 4);
    sb_put(&j, "}", 1);
    while (j.n % 8) sb_put(&j, " ", 1);
    uint8_t le[8];
    for (int b = 0; b < 8; b++) le[b] = (uint8_t)((uint64_t)j.n >> (8 * b));
    sb_put(&f, le, 8);
    sb_put(&f, j.p, j.n);
    for (size_t i = 0; i < n; i++) sb_put(&f, "\0\0\x80\x3f", 4);
    free(j.p);
    return f;
}

/* An npy v2 file whose header is padded with `pad` spaces, shape (1, 1). */
static sbuf make_npy(size_t pad) {
    sbuf h = {0}, f = {0};
    sb_printf(&h, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1), }");
    while ((12 + h.n + 1) % 64 || pad) {
        sb_put(&h, " ", 1);
        if (pad) pad--;
    }
    sb_put(&h, "\n", 1);
    uint8_t pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0, (uint8_t)h.n, (uint8_t)(h.n >> 8), (uint8_t)(h.n >> 16), 0};
    sb_put(&f, pre, 12);
    sb_put(&f, h.p, h.n);
    sb_put(&f, "\0\0\x80\x3f", 4);
    free(h.p);
    return f;
}

/* word2vec text (format 1), GloVe (2) or word2vec binary (0) with n words of dim 4. */
static sbuf make_vectors(int format, size_t n) {
    sbuf f = {0};
    if (format != TOKEMB_VECTORS_GLOVE) sb_printf(&f, "%zu 4\n", n);
    for (size_t i = 0; i < n; i++) {
        sb_printf(&f, "w%zu_%zx ", i, (i * 2654435761u) & 0xffff);
        if (format == TOKEMB_VECTORS_WORD2VEC_BINARY) {
            float v[4] = {(float)i, 1.0f, -2.5f, 0.125f};
            sb_put(&f, v, sizeof v);
            sb_put(&f, "\n", 1);
        } else {
            sb_printf(&f, "%zu.5 1e-3 -2.25 0.125\n", i);
        }
    }
    return f;
}

/* A sharded checkpoint index over n round-robin files of a 10n x 4 table, listed in a scrambled order. */
static sbuf make_checkpoint(size_t n) {
    sbuf f = {0};
    sb_printf(&f,
              "{\"format\": \"tokemb.checkpoint\", \"version\": 1, \"generation\": 1, \"dtype\": \"F32\", "
              "\"shape\": [%zu, 4], \"files\": [",
              10 * n);
    for (size_t i = 0; i < n; i++) {
        size_t r = (i * 7919) % n; /* n is 200 * 10^k: 7919 is coprime, a permutation */
        sb_printf(&f,
                  "%s{\"file\": \"s%zu.safetensors\", \"tensor\": \"weight\", \"rows\": [%zu, %zu, 10], "
                  "\"cols\": [0, 4]}",
                  i ? ", " : "", r, r, n);
    }
    sb_printf(&f, "]}");
    return f;
}

static uint64_t parse_ops(int which, size_t n) {
    sbuf f = which == 0   ? make_npy(64 * n)
             : which == 1 ? make_safetensors(n)
             : which == 5 ? make_checkpoint(n)
                          : make_vectors(which - 2, n);
    tk_test_io_ops = 0;
    if (which == 0) {
        int32_t dt;
        int64_t rows, dim;
        size_t off;
        TK_OK(tk_npy_parse("t", (const uint8_t *)f.p, f.n, &dt, &rows, &dim, &off));
    } else if (which == 1) {
        tk_st_header h;
        TK_OK(tk_st_parse("t", (const uint8_t *)f.p, f.n, &h));
        assert_int_equal(h.n, n);
        tk_st_header_free(&h);
    } else if (which == 5) {
        int64_t rows, dim;
        size_t files;
        TK_OK(tk_checkpoint_parse("t", (const uint8_t *)f.p, f.n, &rows, &dim, &files));
        assert_int_equal(files, n);
    } else {
        tokemb_table *t = NULL;
        tokemb_vocab *v = NULL;
        TK_OK(tk_vectors_parse("t", (const uint8_t *)f.p, f.n, which - 2, NULL, NULL, &t, &v));
        assert_int_equal(tokemb_vocab_size(v), (int64_t)n);
        tokemb_table_free(t);
        tokemb_vocab_free(v);
    }
    free(f.p);
    return tk_test_io_ops;
}

/* Work at 10x and 100x the input stays within 1.6x of proportional (n log n sorting over a linear
 * scan gives about 1.1x here; a quadratic step gives 10x-100x) and is not constant. */
static void test_parsers_scale_linearly(void **state) {
    (void)state;
    static const char *names[] = {"npy header", "safetensors header", "word2vec binary", "word2vec text",
                                  "GloVe",      "checkpoint index"};
    for (int w = 0; w < 6; w++) {
        const size_t base = 200;
        uint64_t o1 = parse_ops(w, base), o10 = parse_ops(w, 10 * base), o100 = parse_ops(w, 100 * base);
        printf("%-20s ops: %llu  %llu (x%.2f)  %llu (x%.2f)\n", names[w], (unsigned long long)o1,
               (unsigned long long)o10, (double)o10 / (double)o1, (unsigned long long)o100, (double)o100 / (double)o1);
        assert_true(o1 > 0);
        if (o10 > 16 * o1 || o100 > 160 * o1) fail_msg("%s: work grows faster than n log n", names[w]);
        if (o100 < 50 * o1) fail_msg("%s: the counter does not follow the input", names[w]);
    }
}

/* ---- hash flooding ------------------------------------------------------------------------------ */
/* The hash the vocabulary used before issue 15: FNV-1a, no key, as a known attacker would compute it. */
static uint64_t old_fnv(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

/* n distinct words whose old hash is 0 modulo 4096: all in one probe chain of a 4096-slot table (the
 * vocabulary sizes its table to 2 * capacity: 2048 words -> 4096 slots). */
static char (*colliding_words(size_t n))[16] {
    char(*w)[16] = calloc(n, 16);
    assert_non_null(w);
    size_t k = 0;
    for (uint64_t c = 0; k < n; c++) {
        char s[16];
        int l = snprintf(s, sizeof s, "x%llx", (unsigned long long)c);
        if ((old_fnv(s, (size_t)l) & 4095) == 0) memcpy(w[k++], s, (size_t)l + 1);
    }
    return w;
}

static void test_vocab_flooding(void **state) {
    (void)state;
    const size_t n = 2000;
    char(*w)[16] = colliding_words(n);
    /* tokemb_vocab_add: chained under FNV (n^2 / 2 = 2,000,000 probes), O(n) under a keyed hash */
    tokemb_vocab *v = NULL;
    TK_OK(tokemb_vocab_create(&v));
    tk_test_io_ops = 0;
    for (size_t i = 0; i < n; i++) TK_OK(tokemb_vocab_add(v, w[i], strlen(w[i]), NULL));
    for (size_t i = 0; i < n; i++) assert_int_equal(tokemb_vocab_find(v, w[i], strlen(w[i])), (int64_t)i);
    uint64_t probes = tk_test_io_ops;
    printf("crafted words: %zu adds + finds, %llu probes\n", n, (unsigned long long)probes);
    if (probes > 8 * n)
        fail_msg("%llu probes for %zu crafted words: the hash can be flooded", (unsigned long long)probes, n);
    tokemb_vocab_free(v);
    /* the same words as a word2vec text file */
    sbuf f = {0};
    sb_printf(&f, "%zu 1\n", n);
    for (size_t i = 0; i < n; i++) sb_printf(&f, "%s 0.5\n", w[i]);
    tokemb_table *t = NULL;
    tk_test_io_ops = 0;
    TK_OK(tk_vectors_parse("t", (const uint8_t *)f.p, f.n, TOKEMB_VECTORS_WORD2VEC_TEXT, NULL, NULL, &t, &v));
    uint64_t ops = tk_test_io_ops; /* probes + value bytes (3 per word) */
    printf("crafted word2vec text: %llu ops\n", (unsigned long long)ops);
    if (ops > 12 * n) fail_msg("%llu ops loading %zu crafted words", (unsigned long long)ops, n);
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    free(f.p);
    free(w);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parsers_scale_linearly),
        cmocka_unit_test(test_vocab_flooding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
