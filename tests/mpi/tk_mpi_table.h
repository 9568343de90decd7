/* Shared by the mpirun suites that compare a sharded table with one core table holding every row:
 * fill a shard and the whole table from the same value(g, c), and gather every rank's batch in rank
 * order (the concatenation the single process sees). Include after tk_mpi_test.h. */
#ifndef TK_MPI_TABLE_H
#define TK_MPI_TABLE_H

#include <stdlib.h>

#include "tk_mpi_test.h"

typedef float (*tk_value_fn)(int64_t g, int64_t c);

/* every sharding, for the suites' loops */
static const int32_t tk_shardings[2] = {TOKEMB_MPI_ROW, TOKEMB_MPI_ROW_MODULO};

/* this rank's shard: local row r holds value(global row of r, c) */
static inline void tk_fill_shard(tokemb_mpi_table *t, tk_value_fn value) {
    tokemb_table *l = tokemb_mpi_table_local(t);
    int64_t D = tokemb_mpi_table_dim(t);
    float *row = malloc((size_t)D * sizeof *row);
    for (int64_t r = 0; r < tokemb_table_rows(l); r++) {
        int64_t g = tokemb_mpi_table_global_row(t, r);
        for (int64_t c = 0; c < D; c++) row[c] = value(g, c);
        CHECK(tokemb_table_write_rows(l, r, 1, row) == TOKEMB_OK, "write_rows");
    }
    free(row);
}

/* the whole table [V][D] of value(g, c) in one core table */
static inline tokemb_table *tk_full_table(int64_t V, int64_t D, tk_value_fn value) {
    tokemb_table *f = NULL;
    tokemb_table_create(V, D, TOKEMB_F32, &f);
    float *d = tokemb_table_data(f);
    for (int64_t g = 0; g < V; g++)
        for (int64_t c = 0; c < D; c++) d[g * D + c] = value(g, c);
    return f;
}

/* A table sharded over MPI_COMM_WORLD with its shard filled from value, and in *full the whole table
 * in one core table; NULL (a failed CHECK) if the sharded table cannot be created. */
static inline tokemb_mpi_table *tk_make_tables(int32_t sharding, int64_t V, int64_t D, tk_value_fn value,
                                               tokemb_table **full) {
    tokemb_mpi_table *t = NULL;
    int32_t st = tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, sharding, &t);
    CHECK(st == TOKEMB_OK, "create: %s", tokemb_mpi_last_error());
    if (st != TOKEMB_OK) return NULL;
    tk_fill_shard(t, value);
    *full = tk_full_table(V, D, value);
    return t;
}

/* The concatenation in rank order of every rank's n items of `width` elements of MPI type `type` into
 * all (room for every rank's items), this rank's first item's index in *my_off; returns the total
 * item count. */
static inline size_t tk_gather_rows(const void *mine, size_t n, int width, MPI_Datatype type, void *all,
                                    size_t *my_off) {
    int cnt = (int)n * width, counts[16], displ[16];
    size_t total = (size_t)tk_mpi_counts(cnt, counts, displ);
    *my_off = (size_t)displ[rank] / (size_t)width;
    MPI_Allgatherv(mine, cnt, type, all, counts, displ, type, MPI_COMM_WORLD);
    return total / (size_t)width;
}

#endif
