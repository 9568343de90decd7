/* mpirun -np 1..4: the pipelined lookup of K batches equals, batch by batch, one process holding the
 * whole table and seeing that batch of every rank concatenated in rank order (and K separate sharded
 * lookups), bit for bit; so do the pipelined pooled bags (SUM with and without weights, MEAN, MAX) with
 * the core's tokemb_lookup_bags; bad input in any batch on any rank fails identically everywhere,
 * writing nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_mpi_table.h"

#define KMAX 6
#define NMAX 900

static float value(int64_t g, int64_t c) { return (float)((g * 40503LL + c * 2654435761LL) % 65521) / 331.0f - 99.0f; }

/* batch b of this rank: sizes differ per rank and batch (rank 1's batch 1 is empty), hot ids repeat,
 * `big` batches exceed the pipeline's gather chunk */
static size_t batch(int64_t V, int64_t *ids, unsigned seed, size_t b, int big) {
    size_t n = (rank == 1 && b == 1) ? 0 : (big ? 600 + 37 * (size_t)rank : 2 + 5 * (size_t)rank + (b * 3 + seed) % 7);
    unsigned s = seed * 7919u + (unsigned)rank * 104729u + (unsigned)b * 1299709u + 1u;
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)(lcg(&s) % (unsigned)(i % 4 == 0 ? 5 : V));
    return n;
}

static void test_batches(int32_t sharding, int64_t V, int64_t D, size_t K, unsigned seed, int big) {
    tokemb_table *f = NULL;
    tokemb_mpi_table *t = tk_make_tables(sharding, V, D, value, &f);
    if (!t) return;
    int32_t st;
    static int64_t ids[KMAX][NMAX], all[4 * NMAX];
    static int32_t ids32[KMAX][NMAX];
    size_t n[KMAX], off[KMAX], total[KMAX];
    float *out[KMAX], *out32[KMAX], *ref[KMAX], *one = malloc(NMAX * (size_t)D * sizeof *one);
    const int64_t *idp[KMAX];
    const int32_t *idp32[KMAX];
    for (size_t b = 0; b < K; b++) {
        n[b] = batch(V, ids[b], seed, b, big);
        for (size_t i = 0; i < n[b]; i++) ids32[b][i] = (int32_t)ids[b][i];
        idp[b] = ids[b];
        idp32[b] = ids32[b];
        total[b] = tk_gather_rows(ids[b], n[b], 1, MPI_INT64_T, all, &off[b]);
        ref[b] = malloc((total[b] + 1) * (size_t)D * sizeof(float));
        CHECK(tokemb_lookup(f, all, total[b], ref[b]) == TOKEMB_OK, "reference lookup");
        out[b] = malloc((n[b] + 1) * (size_t)D * sizeof(float));
        out32[b] = malloc((n[b] + 1) * (size_t)D * sizeof(float));
    }
    st = tokemb_mpi_lookup_batches(t, K, idp, n, out);
    CHECK(st == TOKEMB_OK, "lookup_batches: %s", tokemb_mpi_last_error());
    st = tokemb_mpi_lookup_batches_i32(t, K, idp32, n, out32);
    CHECK(st == TOKEMB_OK, "lookup_batches_i32: %s", tokemb_mpi_last_error());
    for (size_t b = 0; b < K; b++) {
        size_t bytes = n[b] * (size_t)D * sizeof(float);
        CHECK(memcmp(out[b], ref[b] + off[b] * (size_t)D, bytes) == 0,
              "batch %zu differs from the core (sharding %d, K %zu)", b, (int)sharding, K);
        CHECK(memcmp(out32[b], ref[b] + off[b] * (size_t)D, bytes) == 0, "i32 batch %zu differs", b);
        CHECK(tokemb_mpi_lookup(t, ids[b], n[b], one) == TOKEMB_OK, "lookup: %s", tokemb_mpi_last_error());
        CHECK(memcmp(out[b], one, bytes) == 0, "batch %zu differs from tokemb_mpi_lookup", b);
    }

    if (K >= 3) {
        /* an id outside the table in batch 2 of the last rank: every rank fails, no out[b] written */
        int64_t keep = ids[2][1];
        int64_t bad = (seed & 1) ? V + 3 : -2;
        if (rank == size - 1) {
            if (n[2] < 2) n[2] = 2;
            ids[2][1] = bad;
        }
        for (size_t b = 0; b < K; b++)
            for (size_t i = 0; i < n[b] * (size_t)D; i++) out[b][i] = 777.0f;
        st = tokemb_mpi_lookup_batches(t, K, idp, n, out);
        CHECK(st == TOKEMB_OUT_OF_RANGE, "bad id: status %d", (int)st);
        char want[128];
        snprintf(want, sizeof want, "rank %d: batch 2: token id %lld at index 1", size - 1, (long long)bad);
        CHECK(strstr(tokemb_mpi_last_error(), want) != NULL, "message '%s' lacks '%s'", tokemb_mpi_last_error(), want);
        int untouched = 1;
        for (size_t b = 0; b < K; b++)
            for (size_t i = 0; i < n[b] * (size_t)D; i++) untouched &= out[b][i] == 777.0f;
        CHECK(untouched, "an output was written by a failed call");
        ids[2][1] = keep;
        n[2] = batch(V, ids[2], seed, 2, big);

        /* the last rank brings one batch fewer (with one rank: a NULL out[0] with n[0] > 0) */
        float *saved = out[0];
        if (size == 1) out[0] = NULL;
        st = tokemb_mpi_lookup_batches(t, rank == size - 1 && size > 1 ? K - 1 : K, idp, n, out);
        out[0] = saved;
        CHECK(st == TOKEMB_INVALID_ARGUMENT, "k mismatch: status %d", (int)st);
        snprintf(want, sizeof want,
                 size > 1 ? "rank %d: k = %zu batches differs from rank 0's %zu"
                          : "rank %d: batch 0: ids or out is NULL",
                 size - 1, K - 1, K);
        CHECK(strstr(tokemb_mpi_last_error(), want) != NULL, "message '%s' lacks '%s'", tokemb_mpi_last_error(), want);
        /* still usable */
        st = tokemb_mpi_lookup_batches(t, K, idp, n, out);
        CHECK(st == TOKEMB_OK &&
                  memcmp(out[K - 1], ref[K - 1] + off[K - 1] * (size_t)D, n[K - 1] * (size_t)D * sizeof(float)) == 0,
              "after failures: %s", tokemb_mpi_last_error());
    }
    for (size_t b = 0; b < K; b++) {
        free(out[b]);
        free(out32[b]);
        free(ref[b]);
    }
    free(one);
    tokemb_table_free(f);
    tokemb_mpi_table_free(t);
}

/* pooled bags of K batches: each batch's bags equal the core's tokemb_lookup_bags on the whole table
 * (a bag never spans ranks, so the concatenated batch pools this rank's bags exactly as its own) */
static void test_bag_batches(int32_t sharding, int64_t V, int64_t D, size_t K, int32_t mode, int weighted, int is32,
                             unsigned seed) {
    tokemb_table *f = NULL;
    tokemb_mpi_table *t = tk_make_tables(sharding, V, D, value, &f);
    if (!t) return;
    int32_t st;
    static int64_t ids[KMAX][NMAX], offs[KMAX][NMAX + 1];
    static int32_t ids32[KMAX][NMAX];
    static float w[KMAX][NMAX];
    size_t n[KMAX], nb[KMAX];
    float *out[KMAX], *ref[KMAX];
    const int64_t *idp[KMAX], *offp[KMAX];
    const int32_t *idp32[KMAX];
    const float *wp[KMAX];
    for (size_t b = 0; b < K; b++) {
        n[b] = batch(V, ids[b], seed, b, 0);
        unsigned s = seed * 31u + (unsigned)b * 17u + (unsigned)rank;
        nb[b] = 0;
        offs[b][0] = 0;
        for (size_t i = 0; i < n[b];) { /* bags of 0..4 ids (empty bags included) */
            i += lcg(&s) % 5;
            if (i > n[b]) i = n[b];
            offs[b][++nb[b]] = (int64_t)i;
        }
        if (nb[b] == 0 || offs[b][nb[b]] != (int64_t)n[b]) offs[b][++nb[b]] = (int64_t)n[b];
        for (size_t i = 0; i < n[b]; i++) {
            ids32[b][i] = (int32_t)ids[b][i];
            w[b][i] = (float)((int)(lcg(&s) % 2001) - 1000) / 333.0f;
        }
        idp[b] = ids[b];
        idp32[b] = ids32[b];
        offp[b] = offs[b];
        wp[b] = weighted && b != 1 ? w[b] : NULL; /* batch 1 unweighted among weighted ones */
        out[b] = malloc((nb[b] + 1) * (size_t)D * sizeof(float));
        ref[b] = malloc((nb[b] + 1) * (size_t)D * sizeof(float));
        CHECK(tokemb_lookup_bags(f, ids[b], n[b], offs[b], nb[b], mode, wp[b], ref[b]) == TOKEMB_OK, "core bags: %s",
              tokemb_last_error());
    }
    st = is32 ? tokemb_mpi_lookup_bags_batches_i32(t, K, idp32, n, offp, nb, mode, weighted ? wp : NULL, out)
              : tokemb_mpi_lookup_bags_batches(t, K, idp, n, offp, nb, mode, weighted ? wp : NULL, out);
    CHECK(st == TOKEMB_OK, "bags_batches: %s", tokemb_mpi_last_error());
    for (size_t b = 0; b < K; b++)
        CHECK(memcmp(out[b], ref[b], nb[b] * (size_t)D * sizeof(float)) == 0,
              "bags batch %zu differs from the core (mode %d, weighted %d, sharding %d)", b, (int)mode, weighted,
              (int)sharding);

    /* malformed offsets in batch 1 of the last rank: every rank fails, nothing written */
    if (K >= 2 && nb[1] >= 1) {
        int64_t keep = offs[1][nb[1]];
        if (rank == size - 1) offs[1][nb[1]] = (int64_t)n[1] + 1;
        for (size_t b = 0; b < K; b++)
            for (size_t i = 0; i < nb[b] * (size_t)D; i++) out[b][i] = 4.5f;
        st = tokemb_mpi_lookup_bags_batches(t, K, idp, n, offp, nb, mode, weighted ? wp : NULL, out);
        unsigned long long last[2] = {nb[1], n[1]}; /* the failing rank's batch 1 */
        MPI_Bcast(last, 2, MPI_UNSIGNED_LONG_LONG, size - 1, MPI_COMM_WORLD);
        char want[96];
        snprintf(want, sizeof want, "rank %d: batch 1: offsets[%llu] = %llu, not n = %llu", size - 1, last[0],
                 last[1] + 1, last[1]);
        CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), want), "'%s' lacks '%s'",
              tokemb_mpi_last_error(), want);
        int untouched = 1;
        for (size_t b = 0; b < K; b++)
            for (size_t i = 0; i < nb[b] * (size_t)D; i++) untouched &= out[b][i] == 4.5f;
        CHECK(untouched, "a bag output was written by a failed call");
        offs[1][nb[1]] = keep;
    }
    for (size_t b = 0; b < K; b++) {
        free(out[b]);
        free(ref[b]);
    }
    tokemb_table_free(f);
    tokemb_mpi_table_free(t);
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    for (int s = 0; s < 2; s++) {
        test_batches(tk_shardings[s], 37, 5, 4, (unsigned)s, 0);
        test_batches(tk_shardings[s], 1000, 3, 6, (unsigned)s + 2, 0);
        test_batches(tk_shardings[s], 5, 16, 1, (unsigned)s + 4, 0);
        test_batches(tk_shardings[s], 37, 5, 0, (unsigned)s, 0); /* K = 0: a collective no-op */
        test_batches(tk_shardings[s], 5000, 8, 3, (unsigned)s + 5, 1);
        test_bag_batches(tk_shardings[s], 37, 5, 4, TOKEMB_SUM, 1, 0, (unsigned)s);
        test_bag_batches(tk_shardings[s], 1000, 7, 3, TOKEMB_MEAN, 0, 1, (unsigned)s + 1);
        test_bag_batches(tk_shardings[s], 37, 4, 2, TOKEMB_MAX, 0, 0, (unsigned)s + 2);
        test_bag_batches(tk_shardings[s], 37, 4, 3, TOKEMB_SUM, 0, 1, (unsigned)s + 3);
    }
    int32_t st = tokemb_mpi_lookup_batches(NULL, 1, NULL, NULL, NULL);
    CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), "t is NULL"), "NULL t: %d", (int)st);
    return tk_mpi_finish();
}
