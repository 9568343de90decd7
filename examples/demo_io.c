/* demo_io.c - tokemb-demo's "pretrained vectors" section: semantically close tokens end up close in
 * the vector space. Loads examples/data/tiny.vec - a 16-dim fastText skip-gram model trained on a
 * synthetic four-topic corpus by examples/data/make_tiny_vec.sh (committed, so the demo needs neither
 * fastText nor training at run time) - and prints cosine neighbours (tokemb_nearest_ids, the same
 * ranking as gensim's most_similar), then the same query on F16 and Q8_ROW copies of the table. */
#include "demo_sections.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <tokemb.h>

#ifndef TOKEMB_DEMO_DATA
#define TOKEMB_DEMO_DATA "examples/data"
#endif

static void print_neighbours(const tokemb_table *t, const tokemb_vocab *v, const char *word, size_t k) {
    int64_t id = tokemb_vocab_find(v, word, strlen(word));
    if (id < 0) {
        printf("  %-8s (not in the vocabulary)\n", word);
        return;
    }
    int64_t ids[8];
    float sc[8];
    if (k > 8) k = 8;
    int32_t st = tokemb_nearest_ids(t, &id, 1, k, TOKEMB_METRIC_COSINE, 1, ids, sc);
    if (st != TOKEMB_OK) {
        printf("  %s: %s\n", word, tokemb_last_error());
        return;
    }
    printf("  %-8s ->", word);
    for (size_t j = 0; j < k; j++)
        printf(" %s (%.3f)%s", tokemb_vocab_word(v, ids[j], NULL), (double)sc[j], j + 1 < k ? "," : "");
    printf("\n");
}

void demo_neighbours_section(void) {
    const char *dir = getenv("TOKEMB_DEMO_DATA");
    char path[1024];
    snprintf(path, sizeof path, "%s/tiny.vec", dir ? dir : TOKEMB_DEMO_DATA);
    printf("\npretrained vectors: nearest neighbours (fastText skip-gram, %s)\n", path);
    tokemb_table *t = NULL;
    tokemb_vocab *v = NULL;
    int32_t st = tokemb_vectors_load(path, TOKEMB_VECTORS_WORD2VEC_TEXT, NULL, NULL, &t, &v);
    if (st != TOKEMB_OK) {
        printf("  skipped: %s (%s); regenerate with examples/data/make_tiny_vec.sh\n", tokemb_status_string(st),
               tokemb_last_error());
        return;
    }
    printf(">>> kv = KeyedVectors.load_word2vec_format('tiny.vec')   # tokemb_vectors_load: %lld words x %lld\n",
           (long long)tokemb_table_rows(t), (long long)tokemb_table_dim(t));
    printf(">>> kv.most_similar(word, topn=4)                        # tokemb_nearest_ids(..., exclude_self=1)\n");
    const char *words[4] = {"king", "dog", "red", "bread"};
    for (int i = 0; i < 4; i++) print_neighbours(t, v, words[i], 4);
    const struct {
        int32_t dtype;
        const char *name;
    } compact[2] = {{TOKEMB_F16, "F16 (2 bytes/value)"}, {TOKEMB_Q8_ROW, "Q8_ROW (1 byte/value + scale, bias)"}};
    for (int c = 0; c < 2; c++) {
        tokemb_table *q = NULL;
        if (tokemb_table_convert(t, compact[c].dtype, &q) != TOKEMB_OK) continue;
        printf("same query on a %s copy:\n", compact[c].name);
        print_neighbours(q, v, "king", 4);
        tokemb_table_free(q);
    }
    tokemb_table_free(t);
    tokemb_vocab_free(v);
}
