/* bench_vocab_flood - hash flooding (issue 15): loads a word2vec text file of N words crafted to collide
 * under the vocabulary's former unseeded FNV-1a hash (all congruent modulo 4096, so they pile into one
 * linear-probing cluster) and a file of N random words of the same lengths, alternately, and reports the
 * median over pairs of t_crafted / t_random after one warm-up pair. With the keyed SipHash-1-3 the ratio
 * stays near 1; the FNV table took ~600x at N = 80,000 (issue 15: 25 s against 0.04 s).
 * Usage: bench_vocab_flood [N (default 20000)] [pairs (default 7)] */
#define _GNU_SOURCE
#include <tokemb.h>

#include "bench_time.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static uint64_t old_fnv(const char *p, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 1099511628211ull;
    return h ^ (h >> 29);
}

static double load_seconds(const char *path) {
    tokemb_table *t = NULL;
    tokemb_vocab *v = NULL;
    double t0 = now();
    if (tokemb_vectors_load(path, TOKEMB_VECTORS_WORD2VEC_TEXT, NULL, NULL, &t, &v) != TOKEMB_OK) {
        fprintf(stderr, "load failed: %s\n", tokemb_last_error());
        exit(1);
    }
    double dt = now() - t0;
    tokemb_table_free(t);
    tokemb_vocab_free(v);
    return dt;
}

int main(int argc, char **argv) {
    const long n = argc > 1 ? atol(argv[1]) : 20000;
    const int pairs = argc > 2 ? atoi(argv[2]) : 7;
    char crafted[] = "/tmp/tokemb_flood_XXXXXX", random_[] = "/tmp/tokemb_rand_XXXXXX";
    int fc = mkstemp(crafted), fr = mkstemp(random_);
    if (fc < 0 || fr < 0 || n < 1 || pairs < 1) return 1;
    FILE *c = fdopen(fc, "w"), *r = fdopen(fr, "w");
    fprintf(c, "%ld 1\n", n);
    fprintf(r, "%ld 1\n", n);
    srand(7);
    long k = 0;
    for (uint64_t i = 0; k < n; i++) {
        char s[24];
        int l = snprintf(s, sizeof s, "x%llx", (unsigned long long)i);
        if ((old_fnv(s, (size_t)l) & 4095) != 0) continue;
        fprintf(c, "%s 0.5\n", s);
        fprintf(r, "r%0*lx 0.5\n", l - 1, (unsigned long)rand() * 65536ul + (unsigned long)k); /* same length */
        k++;
    }
    fclose(c);
    fclose(r);
    double *ratio = malloc(sizeof(double) * (size_t)pairs), tc_sum = 0, tr_sum = 0;
    (void)load_seconds(crafted); /* warm-up */
    (void)load_seconds(random_);
    for (int p = 0; p < pairs; p++) {
        double a, b;
        if (p & 1) {
            b = load_seconds(random_);
            a = load_seconds(crafted);
        } else {
            a = load_seconds(crafted);
            b = load_seconds(random_);
        }
        ratio[p] = a / b;
        tc_sum += a;
        tr_sum += b;
    }
    qsort(ratio, (size_t)pairs, sizeof *ratio, cmp_d);
    printf("vocab flooding, %ld words: crafted %.4f s, random %.4f s (means); median ratio crafted/random %.2f "
           "over %d pairs\n",
           n, tc_sum / pairs, tr_sum / pairs, ratio[pairs / 2], pairs);
    unlink(crafted);
    unlink(random_);
    free(ratio);
    return 0;
}
