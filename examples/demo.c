/* demo.c - tokemb-demo: the seed article's walkthrough, in C.
 *  1. torch.manual_seed(123); nn.Embedding(6, 3) - the same table, printed the way torch prints it;
 *  2. looking up ids [2, 3, 5, 1] is a gather of rows;
 *  3. nn.Embedding equals a bias-free nn.Linear on one-hot vectors: one-hot x W (10 x 4) = the gather;
 *  4. why the gather wins: a short gather-vs-matmul timing table;
 *  5. the table is learned: a small classifier trained with tokemb's gradients and optimizers;
 *  6. pretrained tables: nearest neighbours in a small fastText model;
 *  7. positions: the seed's sinusoidal table and RoPE's relative-position property. */
#define _POSIX_C_SOURCE 199309L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <tokemb.h>

#include "demo_sections.h"

static int check(int32_t st, const char *what) {
    if (st != TOKEMB_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, tokemb_status_string(st), tokemb_last_error());
        exit(1);
    }
    return 0;
}

/* Prints a [rows][cols] matrix like torch's tensor repr with 4 decimals. */
static void print_torch(const char *prefix, const float *m, int64_t rows, int64_t cols, const char *suffix) {
    int width = 0;
    char buf[64];
    for (int64_t i = 0; i < rows * cols; i++) {
        int w = snprintf(buf, sizeof buf, "%.4f", (double)m[i]);
        if (w > width) width = w;
    }
    printf("%s[", prefix);
    for (int64_t r = 0; r < rows; r++) {
        printf(r == 0 ? "[" : "%*s[", r == 0 ? 0 : (int)strlen(prefix) + 1, "");
        for (int64_t c = 0; c < cols; c++) printf("%*.4f%s", width, (double)m[r * cols + c], c + 1 < cols ? ", " : "");
        printf(r + 1 < rows ? "],\n" : "]");
    }
    printf("]%s\n", suffix);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef int32_t (*lookup_fn)(tokemb_table *, const int64_t *, size_t, float *);
static int32_t onehot_adapter(tokemb_table *t, const int64_t *ids, size_t n, float *out) {
    return tokemb_lookup_onehot(t, ids, n, out);
}

static double median_time(lookup_fn f, tokemb_table *t, const int64_t *ids, size_t n, float *out, int reps) {
    double ts[15];
    if (reps > 15) reps = 15;
    check(f(t, ids, n, out), "warm-up");
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        check(f(t, ids, n, out), "timed lookup");
        ts[r] = now() - t0;
    }
    qsort(ts, (size_t)reps, sizeof ts[0], cmp_d);
    return ts[reps / 2];
}

int main(void) {
    printf("tokemb %s - the seed walkthrough\n\n", tokemb_version_string());

    /* 1. the table */
    tokemb_table *t = NULL;
    check(tokemb_table_create(6, 3, TOKEMB_F32, &t), "create");
    check(tokemb_table_init_normal(t, 123, 0.0, 1.0), "init_normal");
    printf(
        ">>> torch.manual_seed(123)\n>>> embedding = nn.Embedding(6, 3)   # tokemb_table_init_normal(t, 123, 0, 1)\n");
    printf(">>> embedding.weight\nParameter containing:\n");
    print_torch("tensor(", tokemb_table_data(t), 6, 3, ", requires_grad=True)");

    /* 2. lookup */
    const int64_t ids[4] = {2, 3, 5, 1};
    float out[4 * 3];
    check(tokemb_lookup(t, ids, 4, out), "lookup");
    printf("\n>>> embedding(torch.tensor([2, 3, 5, 1]))   # tokemb_lookup: rows 2, 3, 5, 1\n");
    print_torch("tensor(", out, 4, 3, ", grad_fn=<EmbeddingBackward0>)");
    int64_t bad = 6;
    int32_t st = tokemb_lookup(t, &bad, 1, out);
    printf("\n>>> embedding(torch.tensor([6]))   # a token id is only an index: 6 is outside the table\n");
    printf("%s: %s\n", tokemb_status_string(st), tokemb_last_error());
    tokemb_table_free(t);

    /* 3. one-hot x W */
    tokemb_table *w = NULL;
    check(tokemb_table_create(10, 4, TOKEMB_F32, &w), "create");
    check(tokemb_table_init_normal(w, 123, 0.0, 1.0), "init_normal");
    float g[4 * 4], m[4 * 4];
    check(tokemb_lookup(w, ids, 4, g), "lookup");
    check(tokemb_lookup_onehot(w, ids, 4, m), "lookup_onehot");
    printf("\nnn.Embedding(10, 4) is nn.Linear(10, 4, bias=False) on one-hot vectors:\n");
    print_torch("gather      ", g, 4, 4, "");
    print_torch("onehot @ W  ", m, 4, 4, "");
    printf("bitwise equal: %s\n", memcmp(g, m, sizeof g) == 0 ? "yes" : "NO");
    tokemb_table_free(w);

    /* 4. timing */
    printf("\ngather vs one-hot sgemm (dim 256, 512 tokens, 1 thread, median of 7):\n");
    printf("%10s %14s %14s %10s\n", "vocab", "gather (us)", "sgemm (us)", "ratio");
    tokemb_set_num_threads(1);
    const size_t n = 512;
    const int64_t dim = 256;
    int64_t *tid = malloc(n * sizeof *tid);
    float *o = malloc(n * (size_t)dim * sizeof *o);
    if (!tid || !o) return 1;
    const int64_t vocabs[] = {1000, 8000, 32000};
    for (size_t v = 0; v < sizeof vocabs / sizeof vocabs[0]; v++) {
        tokemb_table *e = NULL;
        check(tokemb_table_create(vocabs[v], dim, TOKEMB_F32, &e), "create");
        check(tokemb_table_init_normal(e, 7, 0.0, 1.0), "init_normal");
        uint64_t s = 88172645463325252ull;
        for (size_t i = 0; i < n; i++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            tid[i] = (int64_t)(s % (uint64_t)vocabs[v]);
        }
        double tg = median_time(tokemb_lookup, e, tid, n, o, 7);
        double tm = median_time(onehot_adapter, e, tid, n, o, 7);
        printf("%10lld %14.1f %14.1f %9.0fx\n", (long long)vocabs[v], tg * 1e6, tm * 1e6, tm / tg);
        tokemb_table_free(e);
    }
    free(tid);
    free(o);
    printf("\nThe one-hot product reads the whole table for every token (cost ~ vocab), the gather reads one row.\n");
    tokemb_set_num_threads(0);

    /* 5. the table is learned; 6. pretrained tables; 7. positions */
    demo_training_section();
    demo_neighbours_section();
    demo_positional_section();
    return 0;
}
