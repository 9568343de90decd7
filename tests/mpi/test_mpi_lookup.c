/* mpirun -np 1..4: the sharded lookup equals one process holding the whole table and seeing every
 * rank's batch concatenated in rank order, bit for bit; bad input fails identically on every rank. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_mpi_table.h"

static float value(int64_t g, int64_t c) { return (float)((g * 2654435761LL + c * 40503LL) % 100003) / 977.0f - 50.0f; }

/* This rank's batch: rank 1 brings none (an empty batch is legal), others a rank-dependent size. */
static size_t batch(int64_t V, int64_t *ids, unsigned seed) {
    size_t n = rank == 1 ? 0 : 3 + 7 * (size_t)rank + seed % 5;
    unsigned s = seed * 7919u + (unsigned)rank * 104729u + 1u;
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int64_t)(lcg(&s) % (unsigned)(i % 3 == 0 ? 4 : V)); /* hot ids repeat */
    }
    return n;
}

static void test_lookup(int32_t sharding, int64_t V, int64_t D, unsigned seed, int use_f) {
    tokemb_mpi_table *t = NULL;
    int32_t st = use_f ? tokemb_mpi_table_create_f(MPI_Comm_c2f(MPI_COMM_WORLD), V, D, sharding, &t)
                       : tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, sharding, &t);
    CHECK(st == TOKEMB_OK, "create: %s", tokemb_mpi_last_error());
    if (st != TOKEMB_OK) return;
    tk_fill_shard(t, value);
    tokemb_table *f = tk_full_table(V, D, value);
    int64_t ids[64], all[1024];
    int32_t ids32[64];
    size_t n = batch(V, ids, seed), off;
    for (size_t i = 0; i < n; i++) ids32[i] = (int32_t)ids[i];
    size_t total = tk_gather_rows(ids, n, 1, MPI_INT64_T, all, &off);
    float *ref = malloc((total + 1) * (size_t)D * sizeof *ref);
    float *out = malloc((n + 8) * (size_t)D * sizeof *out); /* the failure cases below use 4 rows */
    CHECK(tokemb_lookup(f, all, total, ref) == TOKEMB_OK, "reference lookup");

    st = tokemb_mpi_lookup(t, ids, n, out);
    CHECK(st == TOKEMB_OK, "lookup: %s", tokemb_mpi_last_error());
    CHECK(memcmp(out, ref + off * (size_t)D, n * (size_t)D * sizeof *out) == 0, "lookup differs (sharding %d)",
          (int)sharding);
    memset(out, 0, (n + 1) * (size_t)D * sizeof *out);
    st = tokemb_mpi_lookup_i32(t, ids32, n, out);
    CHECK(st == TOKEMB_OK, "lookup_i32: %s", tokemb_mpi_last_error());
    CHECK(memcmp(out, ref + off * (size_t)D, n * (size_t)D * sizeof *out) == 0, "lookup_i32 differs");

    /* an id outside the table on the last rank only: every rank fails, nothing written anywhere */
    int64_t bad_ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    size_t bn = 4;
    int64_t bad = (seed & 1) ? V : -1;
    if (rank == size - 1) bad_ids[2] = bad;
    for (size_t i = 0; i < bn * (size_t)D; i++) out[i] = 12345.0f;
    st = tokemb_mpi_lookup(t, bad_ids, bn, out);
    CHECK(st == TOKEMB_OUT_OF_RANGE, "bad id: status %d", (int)st);
    char want[128];
    snprintf(want, sizeof want, "rank %d: token id %lld at index 2", size - 1, (long long)bad);
    CHECK(strstr(tokemb_mpi_last_error(), want) != NULL, "message '%s' lacks '%s'", tokemb_mpi_last_error(), want);
    int untouched = 1;
    for (size_t i = 0; i < bn * (size_t)D; i++) untouched &= out[i] == 12345.0f;
    CHECK(untouched, "out written on a failed call");
    /* NULL output with n > 0 on rank 0 only */
    st = tokemb_mpi_lookup(t, bad_ids, rank == 0 ? 1 : 0, rank == 0 ? NULL : out);
    CHECK(st == TOKEMB_INVALID_ARGUMENT, "NULL out: status %d", (int)st);
    CHECK(strstr(tokemb_mpi_last_error(), "rank 0: ids or out is NULL") != NULL, "message '%s'",
          tokemb_mpi_last_error());
    /* the table still works after failures */
    st = tokemb_mpi_lookup(t, ids, n, out);
    CHECK(st == TOKEMB_OK && memcmp(out, ref + off * (size_t)D, n * (size_t)D * sizeof *out) == 0, "after failures");

    free(ref);
    free(out);
    tokemb_table_free(f);
    tokemb_mpi_table_free(t);
}

static void test_create_errors(void) {
    tokemb_mpi_table *t = NULL;
    /* the last rank disagrees on dim (with one rank: dim 0 is rejected instead) */
    int64_t dim = rank == size - 1 ? (size > 1 ? 9 : 0) : 8;
    int32_t st = tokemb_mpi_table_create(MPI_COMM_WORLD, 40, dim, TOKEMB_MPI_ROW, &t);
    CHECK(st == TOKEMB_INVALID_ARGUMENT && t == NULL, "dim mismatch: status %d", (int)st);
    char want[64];
    snprintf(want, sizeof want, "rank %d: ", size - 1);
    CHECK(strstr(tokemb_mpi_last_error(), want) != NULL, "message '%s'", tokemb_mpi_last_error());
    if (size > 1)
        CHECK(strstr(tokemb_mpi_last_error(), "differs from rank 0's") != NULL, "message '%s'",
              tokemb_mpi_last_error());
    st = tokemb_mpi_table_create(MPI_COMM_WORLD, 40, 8, rank == 0 ? 7 : TOKEMB_MPI_ROW, &t);
    CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), "rank 0: unknown sharding 7"),
          "sharding: %s", tokemb_mpi_last_error());
    st = tokemb_mpi_table_create(MPI_COMM_WORLD, size - 1, 8, TOKEMB_MPI_ROW, &t);
    CHECK(st == TOKEMB_INVALID_ARGUMENT, "fewer rows than ranks: %d", (int)st);
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    const int64_t shapes[3][2] = {{37, 5}, {4, 16}, {1000, 3}};
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 3; k++)
            if (shapes[k][0] >= size)
                test_lookup(tk_shardings[s], shapes[k][0], shapes[k][1], (unsigned)(s * 3 + k), k == 1);
    test_create_errors();
    return tk_mpi_finish();
}
