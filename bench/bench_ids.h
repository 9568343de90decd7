/* bench_ids.h - the benchmark programs' id streams (uniform, Zipf), unique fraction, quantiles and
 * option lists (one copy for bench.c and bench_mpi.c). */
#ifndef TOKEMB_BENCH_IDS_H
#define TOKEMB_BENCH_IDS_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_time.h"

static inline void bench_oom(void) {
    fprintf(stderr, "tokemb-bench: out of memory for ids\n");
    exit(2);
}

/* The numbers of a comma-separated list ("1k" = 1000, "2m" = 2000000) into v[max]; returns the count. */
static inline int parse_numbers(const char *s, long long *v, int max) {
    int n = 0;
    char *buf = strdup(s), *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok && n < max; tok = strtok_r(NULL, ",", &save)) {
        char *end;
        double x = strtod(tok, &end);
        if (*end == 'k' || *end == 'K') x *= 1000;
        if (*end == 'm' || *end == 'M') x *= 1000000;
        v[n++] = (long long)x;
    }
    free(buf);
    return n;
}

/* 1 if `name` is one of the comma-separated words of `list`. */
static inline int in_list(const char *list, const char *name) {
    size_t len = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == len && strncmp(p, name, len) == 0) return 1;
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

static inline double quantile(double *v, int n, double q) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    int i = (int)(q * (n - 1) + 0.5);
    return v[i];
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static inline double rnd01(void) { return (double)(rnd() >> 11) * (1.0 / 9007199254740992.0); }

/* ids: "uniform", or "zipf<s>" (rank k has weight 1/(k+1)^s, ranks randomly permuted to ids). */
static inline void make_ids(int64_t *ids, size_t n, int64_t V, const char *dist) {
    if (strcmp(dist, "uniform") == 0) {
        for (size_t i = 0; i < n; i++) ids[i] = (int64_t)(rnd() % (uint64_t)V);
        return;
    }
    double s = atof(dist + 4);
    double *cdf = malloc((size_t)V * sizeof *cdf);
    int64_t *perm = malloc((size_t)V * sizeof *perm);
    if (!cdf || !perm) bench_oom();
    double acc = 0;
    for (int64_t k = 0; k < V; k++) cdf[k] = (acc += pow((double)(k + 1), -s));
    for (int64_t k = 0; k < V; k++) perm[k] = k;
    for (int64_t k = V - 1; k > 0; k--) {
        int64_t j = (int64_t)(rnd() % (uint64_t)(k + 1)), tmp = perm[k];
        perm[k] = perm[j];
        perm[j] = tmp;
    }
    for (size_t i = 0; i < n; i++) {
        double u = rnd01() * acc;
        int64_t lo = 0, hi = V - 1;
        while (lo < hi) {
            int64_t mid = (lo + hi) / 2;
            if (cdf[mid] < u) lo = mid + 1;
            else hi = mid;
        }
        ids[i] = perm[lo];
    }
    free(cdf);
    free(perm);
}

static inline double unique_frac(const int64_t *ids, size_t n, int64_t V) {
    unsigned char *seen = calloc((size_t)V, 1);
    if (!seen) bench_oom();
    size_t u = 0;
    for (size_t i = 0; i < n; i++)
        if (!seen[ids[i]]) {
            seen[ids[i]] = 1;
            u++;
        }
    free(seen);
    return (double)u / (double)n;
}

#endif
