/* fuzz_vectors.c - libFuzzer target: word2vec binary / text and GloVe parsing (the first byte picks
 * the format; with its top bit set it also picks AUTO, a unicode policy and a limit, the options of
 * tokemb_vectors_load_ex), then the vocabulary is checked against the table. */
#include "io/io.h"

#include <string.h>

static int32_t never_cancel(void *user, uint64_t done, uint64_t total) {
    (void)user;
    if (done > total) __builtin_trap();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int32_t format = data[0] % 3;
    int64_t limit = 0;
    uint32_t flags = 0;
    if (data[0] & 0x80) {
        format = data[0] % 4;
        flags = (uint32_t)(data[0] >> 2) % 3u;
        limit = (data[0] >> 4) & 7;
    }
    tokemb_table *t = NULL;
    tokemb_vocab *v = NULL;
    if (tk_vectors_parse_ex("fuzz", data + 1, size - 1, format, limit, flags, never_cancel, NULL, &t, &v) != TOKEMB_OK)
        return 0;
    if (limit > 0 && tokemb_table_rows(t) > limit) __builtin_trap();
    if (tokemb_vocab_size(v) != tokemb_table_rows(t)) __builtin_trap();
    for (int64_t i = 0; i < tokemb_vocab_size(v); i++) {
        size_t len = 0;
        const char *w = tokemb_vocab_word(v, i, &len);
        if (!w || strlen(w) != len || tokemb_vocab_find(v, w, len) != i) __builtin_trap();
    }
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    return 0;
}
