/* tk_test.h - helpers shared by the cmocka suites. */
#ifndef TK_TEST_H
#define TK_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>
#include <tokemb.h>

/* Fails the test unless `st` == `expected` and, for a failure, tokemb_last_error() contains `needle`
 * (NULL: any message, but there must be one). */
static inline void tk_expect_status(int32_t st, int32_t expected, const char *call, const char *needle) {
    if (st != expected) fail_msg("%s returned %d, expected %d (%s)", call, (int)st, (int)expected, tokemb_last_error());
    if (expected != TOKEMB_OK) {
        const char *msg = tokemb_last_error();
        if (msg[0] == '\0') fail_msg("%s: failed without a tokemb_last_error() message", call);
        if (needle && !strstr(msg, needle)) fail_msg("%s: message '%s' lacks '%s'", call, msg, needle);
    }
}
#define TK_EXPECT_STATUS(expected, call, needle) tk_expect_status((call), (expected), #call, (needle))

#define TK_OK(call) TK_EXPECT_STATUS(TOKEMB_OK, call, NULL)

/* FNV-1a over bytes: a checksum to prove a buffer or table did not change. */
static inline uint64_t tk_checksum(const void *p, size_t n) {
    const unsigned char *b = (const unsigned char *)p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Fills a float buffer with a sentinel bit pattern. */
static inline void tk_fill_sentinel(float *p, size_t n) {
    const uint32_t s = 0x7fc0beefu;
    for (size_t i = 0; i < n; i++) memcpy(p + i, &s, 4);
}

/* xorshift64 for test data. */
static inline uint64_t tk_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A new vocabulary of the n words "w0" .. "w<n-1>" (ids 0 .. n-1). */
static inline tokemb_vocab *tk_make_vocab(int n) {
    tokemb_vocab *v = NULL;
    TK_OK(tokemb_vocab_create(&v));
    for (int i = 0; i < n; i++) {
        char w[16];
        int len = snprintf(w, sizeof w, "w%d", i);
        int64_t id;
        TK_OK(tokemb_vocab_add(v, w, (size_t)len, &id));
    }
    return v;
}

#endif
