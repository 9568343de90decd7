/* vocab.c - tokemb_vocab: the word <-> id map of the text formats. Words are UTF-8 byte strings
 * stored NUL-terminated in one growing arena; an open-addressing hash maps them to ids. The hash is
 * SipHash-1-3 keyed with 128 random bits per process (getrandom), so words crafted to collide
 * (hash flooding) cannot be computed in advance: probes stay O(1) expected for any input. */
#include "io/vocab.h"
#include "io/io.h"

#include <pthread.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct tokemb_vocab {
    char *text; /* arena of NUL-terminated words */
    size_t text_len, text_cap;
    size_t *off; /* word id -> offset into text */
    size_t *len; /* word id -> byte length */
    size_t n, cap;
    int64_t *slots; /* hash slots: id + 1, 0 = empty; n_slots is a power of two >= 2 * cap */
    size_t n_slots;
};

static uint64_t tk_sip_k0, tk_sip_k1;
static pthread_once_t tk_sip_once = PTHREAD_ONCE_INIT;

static void tk_sip_init(void) {
    uint64_t k[2] = {0, 0};
    if (getrandom(k, sizeof k, GRND_NONBLOCK) != (ssize_t)sizeof k) {
        /* no entropy yet (early boot) or no syscall: a weaker but still per-process key */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        k[0] ^= (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ull ^ (uint64_t)getpid() ^ (uint64_t)(uintptr_t)&k;
        k[1] ^= (uint64_t)ts.tv_sec * 0xC2B2AE3D27D4EB4Full ^ (uint64_t)(uintptr_t)&tk_sip_k0;
    }
    tk_sip_k0 = k[0];
    tk_sip_k1 = k[1];
}

#define TK_ROTL(x, b) (((x) << (b)) | ((x) >> (64 - (b))))
#define TK_SIPROUND           \
    do {                      \
        v0 += v1;             \
        v1 = TK_ROTL(v1, 13); \
        v1 ^= v0;             \
        v0 = TK_ROTL(v0, 32); \
        v2 += v3;             \
        v3 = TK_ROTL(v3, 16); \
        v3 ^= v2;             \
        v0 += v3;             \
        v3 = TK_ROTL(v3, 21); \
        v3 ^= v0;             \
        v2 += v1;             \
        v1 = TK_ROTL(v1, 17); \
        v1 ^= v2;             \
        v2 = TK_ROTL(v2, 32); \
    } while (0)

/* SipHash-1-3 (one compression round, three finalization rounds) of p[0..n) under the process key. */
static uint64_t tk_hash(const char *p, size_t n) {
    pthread_once(&tk_sip_once, tk_sip_init);
    uint64_t v0 = 0x736f6d6570736575ull ^ tk_sip_k0, v1 = 0x646f72616e646f6dull ^ tk_sip_k1,
             v2 = 0x6c7967656e657261ull ^ tk_sip_k0, v3 = 0x7465646279746573ull ^ tk_sip_k1;
    const uint8_t *b = (const uint8_t *)p;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m = tk_le64(b + i);
        v3 ^= m;
        TK_SIPROUND;
        v0 ^= m;
    }
    uint64_t last = (uint64_t)n << 56;
    for (size_t k = 0; i + k < n; k++) last |= (uint64_t)b[i + k] << (8 * k);
    v3 ^= last;
    TK_SIPROUND;
    v0 ^= last;
    v2 ^= 0xff;
    TK_SIPROUND;
    TK_SIPROUND;
    TK_SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

size_t tk_word_check(const char *word, size_t len, const char **why) {
    if (len == 0) {
        *why = "the word is empty";
        return 0;
    }
    for (size_t i = 0; i < len; i++)
        if (word[i] == '\0') {
            *why = "the word contains a NUL byte";
            return i;
        }
    size_t v = tk_utf8_valid_prefix((const uint8_t *)word, len);
    if (v != len) {
        *why = "the word is not valid UTF-8";
        return v;
    }
    return SIZE_MAX;
}

int32_t tokemb_vocab_create(tokemb_vocab **out) {
    if (!out) return tk_error(TOKEMB_INVALID_ARGUMENT, "tokemb_vocab_create: out is NULL");
    tokemb_vocab *v = (tokemb_vocab *)tk_calloc(1, sizeof *v);
    if (!v) return tk_error(TOKEMB_NO_MEMORY, "tokemb_vocab_create: cannot allocate the vocabulary");
    *out = v;
    return TOKEMB_OK;
}

void tokemb_vocab_free(tokemb_vocab *v) {
    if (!v) return;
    tk_free(v->text);
    tk_free(v->off);
    tk_free(v->len);
    tk_free(v->slots);
    tk_free(v);
}

int64_t tokemb_vocab_size(const tokemb_vocab *v) { return v ? (int64_t)v->n : -1; }

static bool tk_vocab_grow_words(tokemb_vocab *v, size_t want) {
    if (want <= v->cap) return true;
    size_t nc = v->cap ? v->cap : 64;
    while (nc < want) {
        if (nc > SIZE_MAX / 2 / sizeof(size_t)) return false;
        nc *= 2;
    }
    size_t ns = 1;
    while (ns < 2 * nc) ns *= 2;
    size_t *off = (size_t *)tk_malloc(nc * sizeof(size_t));
    size_t *len = (size_t *)tk_malloc(nc * sizeof(size_t));
    int64_t *slots = (int64_t *)tk_calloc(ns, sizeof(int64_t));
    if (!off || !len || !slots) {
        tk_free(off);
        tk_free(len);
        tk_free(slots);
        return false;
    }
    if (v->n) {
        memcpy(off, v->off, v->n * sizeof(size_t));
        memcpy(len, v->len, v->n * sizeof(size_t));
    }
    for (size_t id = 0; id < v->n; id++) {
        size_t s = (size_t)tk_hash(v->text + off[id], len[id]) & (ns - 1);
        while (slots[s]) {
            TK_IO_OP(1);
            s = (s + 1) & (ns - 1);
        }
        slots[s] = (int64_t)id + 1;
    }
    tk_free(v->off);
    tk_free(v->len);
    tk_free(v->slots);
    v->off = off;
    v->len = len;
    v->slots = slots;
    v->cap = nc;
    v->n_slots = ns;
    return true;
}

static bool tk_vocab_grow_text(tokemb_vocab *v, size_t want) {
    if (want <= v->text_cap) return true;
    size_t nc = v->text_cap ? v->text_cap : 1024;
    while (nc < want) {
        if (nc > SIZE_MAX / 2) return false;
        nc *= 2;
    }
    char *t = (char *)tk_malloc(nc);
    if (!t) return false;
    if (v->text_len) memcpy(t, v->text, v->text_len);
    tk_free(v->text);
    v->text = t;
    v->text_cap = nc;
    return true;
}

bool tk_vocab_reserve(tokemb_vocab *v, size_t n_words, size_t n_bytes) {
    return tk_vocab_grow_words(v, n_words) && tk_vocab_grow_text(v, n_bytes);
}

static int64_t tk_vocab_lookup(const tokemb_vocab *v, const char *word, size_t len) {
    if (!v->n_slots) return -1;
    size_t s = (size_t)tk_hash(word, len) & (v->n_slots - 1);
    while (v->slots[s]) {
        TK_IO_OP(1);
        int64_t id = v->slots[s] - 1;
        if (v->len[id] == len && memcmp(v->text + v->off[id], word, len) == 0) return id;
        s = (s + 1) & (v->n_slots - 1);
    }
    return -1;
}

int tk_vocab_insert(tokemb_vocab *v, const char *word, size_t len, int64_t *id) {
    int64_t e = tk_vocab_lookup(v, word, len);
    if (e >= 0) {
        *id = e;
        return 1;
    }
    if (len > SIZE_MAX - 1 - v->text_len) return -1;
    if (!tk_vocab_grow_words(v, v->n + 1) || !tk_vocab_grow_text(v, v->text_len + len + 1)) return -1;
    memcpy(v->text + v->text_len, word, len);
    v->text[v->text_len + len] = '\0';
    v->off[v->n] = v->text_len;
    v->len[v->n] = len;
    v->text_len += len + 1;
    size_t s = (size_t)tk_hash(word, len) & (v->n_slots - 1);
    while (v->slots[s]) {
        TK_IO_OP(1);
        s = (s + 1) & (v->n_slots - 1);
    }
    v->slots[s] = (int64_t)v->n + 1;
    *id = (int64_t)v->n++;
    return 0;
}

int32_t tokemb_vocab_add(tokemb_vocab *v, const char *word, size_t len, int64_t *id) {
    static const char fn[] = "tokemb_vocab_add";
    if (!v) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: vocab is NULL", fn);
    if (!word) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: word is NULL", fn);
    const char *why = NULL;
    size_t bad = tk_word_check(word, len, &why);
    if (bad != SIZE_MAX) return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: %s (byte %zu of %zu)", fn, why, bad, len);
    int64_t e = tk_vocab_lookup(v, word, len);
    if (e >= 0)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "%s: the word '%.*s' already has id %lld", fn,
                        (int)(len > 64 ? 64 : len), word, (long long)e);
    int64_t nid;
    if (tk_vocab_insert(v, word, len, &nid) < 0)
        return tk_error(TOKEMB_NO_MEMORY, "%s: cannot grow the vocabulary past %zu words", fn, v->n);
    if (id) *id = nid;
    return TOKEMB_OK;
}

int64_t tokemb_vocab_find(const tokemb_vocab *v, const char *word, size_t len) {
    if (!v || !word) return -1;
    return tk_vocab_lookup(v, word, len);
}

const char *tokemb_vocab_word(const tokemb_vocab *v, int64_t id, size_t *len) {
    if (!v || id < 0 || (uint64_t)id >= v->n) return NULL;
    if (len) *len = v->len[id];
    return v->text + v->off[id];
}
