/* bench_init_shard - the cost of torch-exact initialisation of one shard without the whole random
 * stream (tokemb_table_init_normal_shard, MT19937 jump-ahead; docs/performance.md "Sharded init").
 *  1. jump: a one-row part at a row whose first value is ~2^k draws into the stream (k = 23, 28, 33,
 *     40, 50), ms per call (one jump + 16-67 values), after the first call of the process (which also
 *     computes the characteristic polynomial once, reported on its own).
 *  2. throughput: a [V, D] table; per round, back to back, the full single-process init
 *     (tokemb_table_init_normal) and the part one rank of P = 2, 4, 8 initialises under ROW (its
 *     contiguous block, the last rank: one jump) and ROW_MODULO (rows r, r + P, ...: every gap
 *     advanced); reports the median over rounds of t_part / t_full (ideal 1/P) and ns per value.
 * Usage: bench_init_shard [V (default 262144)] [D (default 64)] [rounds (default 5)] */
#define _GNU_SOURCE
#include <tokemb.h>

#include "bench_time.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static double part_seconds(tokemb_table *t, int64_t V, int64_t D, int64_t row0, int64_t step) {
    double t0 = now();
    if (tokemb_table_init_normal_shard(t, 7, 0.0, 1.0, V, D, row0, step, 0) != TOKEMB_OK) {
        fprintf(stderr, "init failed: %s\n", tokemb_last_error());
        exit(1);
    }
    return now() - t0;
}

static double median(double *x, int n) {
    qsort(x, (size_t)n, sizeof *x, cmp_d);
    return x[n / 2];
}

int main(int argc, char **argv) {
    const int64_t V = argc > 1 ? atoll(argv[1]) : 262144, D = argc > 2 ? atoll(argv[2]) : 64;
    const int rounds = argc > 3 ? atoi(argv[3]) : 5;
    if (V < 8 || D < 1 || rounds < 1) return 1;

    /* 1. jumps: a [2^60 / 67, 67] tensor, one row */
    const int64_t JD = 67, JV = (INT64_C(1) << 60) / JD;
    tokemb_table *row = NULL;
    tokemb_table_create(1, JD, TOKEMB_F32, &row);
    printf("first call (computes the characteristic polynomial, then jumps 2^23): %.1f ms\n",
           1e3 * part_seconds(row, JV, JD, (INT64_C(1) << 23) / JD, 1));
    const int ks[] = {23, 28, 33, 40, 50};
    for (int i = 0; i < 5; i++) {
        double t[9];
        for (int r = 0; r < 9; r++) t[r] = part_seconds(row, JV, JD, (INT64_C(1) << ks[i]) / JD, 1);
        printf("jump ~2^%d draws: %.2f ms (median of 9)\n", ks[i], 1e3 * median(t, 9));
    }
    tokemb_table_free(row);

    /* 2. throughput against the full single-process init */
    tokemb_table *full = NULL;
    if (tokemb_table_create(V, D, TOKEMB_F32, &full) != TOKEMB_OK) return 1;
    printf("table [%lld, %lld] = %.1f M values\n", (long long)V, (long long)D, (double)(V * D) / 1e6);
    const int Ps[] = {2, 4, 8};
    for (int pi = 0; pi < 3; pi++) {
        int64_t P = Ps[pi], last0 = V - V / P; /* the last rank's block (ROW, up to rounding) */
        tokemb_table *blk = NULL, *mod = NULL;
        tokemb_table_create(V - last0, D, TOKEMB_F32, &blk);
        tokemb_table_create((V - (P - 1) + P - 1) / P, D, TOKEMB_F32, &mod);
        double rb[64], rm[64], tf[64], tb[64], tm[64];
        int n = rounds < 64 ? rounds : 64;
        part_seconds(blk, V, D, last0, 1); /* warm-up */
        for (int r = 0; r < n; r++) {
            double t0 = now();
            tokemb_table_init_normal(full, 7, 0.0, 1.0);
            tf[r] = now() - t0;
            tb[r] = part_seconds(blk, V, D, last0, 1);
            tm[r] = part_seconds(mod, V, D, P - 1, P);
            rb[r] = tb[r] / tf[r];
            rm[r] = tm[r] / tf[r];
        }
        double f = median(tf, n);
        printf("P = %lld: full %.1f ms (%.2f ns/value) | ROW last block %.1f ms, ratio %.3f (ideal %.3f) | "
               "ROW_MODULO rank P-1 %.1f ms, ratio %.3f\n",
               (long long)P, 1e3 * f, 1e9 * f / (double)(V * D), 1e3 * median(tb, n), median(rb, n), 1.0 / (double)P,
               1e3 * median(tm, n), median(rm, n));
        tokemb_table_free(blk);
        tokemb_table_free(mod);
    }
    tokemb_table_free(full);
    return 0;
}
