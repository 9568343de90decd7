/* bench_time.h - the benchmark programs' clock and median helper (one copy for bench.c and the
 * standalone benchmarks). */
#ifndef TOKEMB_BENCH_TIME_H
#define TOKEMB_BENCH_TIME_H

#include <time.h>

/* Monotonic seconds. */
static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* qsort comparator for doubles (medians). */
static inline int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
