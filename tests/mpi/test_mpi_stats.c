/* mpirun -np 1..4: tokemb_mpi_table_stat counts exactly the ids and rows each rank sends (distinct
 * (id, owner) pairs for lookups and bags, every contribution for gradients and steps), splits the
 * time into phases that add up to the call's, resets, and rejects bad arguments. */
#include <stdlib.h>
#include <string.h>

#include "tk_mpi_test.h"

#define V 997
#define D 7
#define NMAX 200

static double stat(tokemb_mpi_table *t, int32_t s) {
    double v = -1;
    int32_t st = tokemb_mpi_table_stat(t, s, &v);
    CHECK(st == TOKEMB_OK, "stat %d: %s", (int)s, tokemb_mpi_last_error());
    return v;
}

/* expected counts of one de-duplicating exchange (lookup/bags) or one push (grad/step) */
typedef struct {
    double ids, rows, remote;
} expect_t;

static expect_t expected(const int *owner, const int64_t *all, const int *counts, int dedup) {
    expect_t e = {0, 0, 0};
    size_t off = 0;
    unsigned char *seen = malloc(V);
    for (int r = 0; r < size; r++) {
        memset(seen, 0, V);
        for (int i = 0; i < counts[r]; i++) {
            int64_t g = all[off + (size_t)i];
            if (dedup && seen[g]) continue;
            seen[g] = 1;
            if (r == rank) { /* I send this id */
                e.ids++;
                if (owner[g] != rank) e.remote += 8;
                if (!dedup) { /* and its gradient row */
                    e.rows++;
                    if (owner[g] != rank) e.remote += 4 * D;
                }
            }
            if (dedup && owner[g] == rank) { /* I serve this row to rank r */
                e.rows++;
                if (r != rank) e.remote += 4 * D;
            }
        }
        off += (size_t)counts[r];
    }
    free(seen);
    return e;
}

static void check_counts(tokemb_mpi_table *t, expect_t e, double calls, const char *what) {
    CHECK(stat(t, TOKEMB_MPI_STAT_CALLS) == calls, "%s: calls", what);
    CHECK(stat(t, TOKEMB_MPI_STAT_IDS_SENT) == e.ids, "%s: ids %g, expected %g", what,
          stat(t, TOKEMB_MPI_STAT_IDS_SENT), e.ids);
    CHECK(stat(t, TOKEMB_MPI_STAT_ROWS_SENT) == e.rows, "%s: rows %g, expected %g", what,
          stat(t, TOKEMB_MPI_STAT_ROWS_SENT), e.rows);
    CHECK(stat(t, TOKEMB_MPI_STAT_BYTES_SENT) == 8 * e.ids + 4 * D * e.rows, "%s: bytes", what);
    CHECK(stat(t, TOKEMB_MPI_STAT_BYTES_REMOTE) == e.remote, "%s: remote bytes %g, expected %g", what,
          stat(t, TOKEMB_MPI_STAT_BYTES_REMOTE), e.remote);
    double total = stat(t, TOKEMB_MPI_STAT_SECONDS), sum = 0;
    for (int32_t s = TOKEMB_MPI_STAT_SECONDS_PLAN; s <= TOKEMB_MPI_STAT_SECONDS_OUTPUT; s++) {
        double v = stat(t, s);
        CHECK(v >= 0, "%s: phase %d negative", what, (int)s);
        sum += v;
    }
    CHECK(total > 0 && sum <= total * (1 + 1e-9) && sum >= 0.5 * total, "%s: phases %g vs total %g", what, sum, total);
    double agree = stat(t, TOKEMB_MPI_STAT_SECONDS_AGREE);
    CHECK(agree >= 0 && agree <= total, "%s: agreement seconds %g of %g", what, agree, total);
    CHECK(stat(t, TOKEMB_MPI_STAT_AGREEMENTS) >= 3 * calls, "%s: agreements", what);
}

static void run(int32_t sharding) {
    tokemb_mpi_table *t = NULL;
    CHECK(tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, sharding, &t) == TOKEMB_OK, "create");
    if (!t) return;
    /* every global row's owner, from the shards' own global_row mapping */
    int *mine = malloc(V * sizeof *mine), *owner = malloc(V * sizeof *owner);
    for (int g = 0; g < V; g++) mine[g] = -1;
    tokemb_table *l = tokemb_mpi_table_local(t);
    for (int64_t r = 0; r < tokemb_table_rows(l); r++) mine[tokemb_mpi_table_global_row(t, r)] = rank;
    MPI_Allreduce(mine, owner, V, MPI_INT, MPI_MAX, MPI_COMM_WORLD);

    /* this rank's batch: repeats, ids of every owner; rank 1 brings none */
    unsigned s = 17u + (unsigned)rank * 31u + (unsigned)sharding;
    int n = rank == 1 ? 0 : 40 + 30 * rank;
    int64_t ids[NMAX], all[NMAX * 16];
    for (int i = 0; i < n; i++) ids[i] = (int64_t)(lcg(&s) % (i % 4 == 0 ? 5u : (unsigned)V));
    int counts[16], displ[16];
    MPI_Allgather(&n, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    for (int r = 0, o = 0; r < size; o += counts[r], r++) displ[r] = o;
    MPI_Allgatherv(ids, n, MPI_INT64_T, all, counts, displ, MPI_INT64_T, MPI_COMM_WORLD);

    float *out = calloc(NMAX * D, sizeof *out), *grad = calloc(NMAX * D, sizeof *grad);
    float *shard = calloc((size_t)tokemb_table_rows(l) * D, sizeof *shard);
    expect_t e = expected(owner, all, counts, 1), e2 = {2 * e.ids, 2 * e.rows, 2 * e.remote};
    CHECK(tokemb_mpi_lookup(t, ids, (size_t)n, out) == TOKEMB_OK, "lookup: %s", tokemb_mpi_last_error());
    check_counts(t, e, 1, "lookup");
    int64_t offsets[3] = {0, n / 2, n};
    CHECK(tokemb_mpi_lookup_bags(t, ids, (size_t)n, offsets, 2, TOKEMB_SUM, NULL, out) == TOKEMB_OK, "bags: %s",
          tokemb_mpi_last_error());
    check_counts(t, e2, 2, "lookup + bags");

    CHECK(tokemb_mpi_table_stats_reset(t) == TOKEMB_OK, "reset");
    for (int32_t q = TOKEMB_MPI_STAT_CALLS; q <= TOKEMB_MPI_STAT_SECONDS_AGREE; q++)
        if (q <= TOKEMB_MPI_STAT_AGREEMENTS || q >= TOKEMB_MPI_STAT_SECONDS)
            CHECK(stat(t, q) == 0, "stat %d after reset", (int)q);

    expect_t p = expected(owner, all, counts, 0);
    CHECK(tokemb_mpi_grad_accumulate(t, ids, (size_t)n, grad, shard) == TOKEMB_OK, "grad: %s", tokemb_mpi_last_error());
    check_counts(t, p, 1, "grad_accumulate");
    tokemb_mpi_table_stats_reset(t);
    tokemb_optim_select(l, TOKEMB_OPTIM_ROWWISE_ADAGRAD);
    CHECK(tokemb_mpi_optim_step(t, ids, (size_t)n, grad) == TOKEMB_OK, "step: %s", tokemb_mpi_last_error());
    check_counts(t, p, 1, "optim_step");

    /* a failing call is counted, and moves no payload */
    tokemb_mpi_table_stats_reset(t);
    int64_t bad = V;
    CHECK(tokemb_mpi_lookup(t, &bad, rank == 0 ? 1 : 0, out) == TOKEMB_OUT_OF_RANGE, "bad id");
    CHECK(stat(t, TOKEMB_MPI_STAT_CALLS) == 1 && stat(t, TOKEMB_MPI_STAT_BYTES_SENT) == 0, "failed call counted");

    /* bad arguments */
    double v = 42;
    CHECK(tokemb_mpi_table_stat(t, 6, &v) == TOKEMB_INVALID_ARGUMENT && v == 42, "unknown stat");
    CHECK(strstr(tokemb_mpi_last_error(), "unknown stat 6") != NULL, "message: %s", tokemb_mpi_last_error());
    CHECK(tokemb_mpi_table_stat(NULL, TOKEMB_MPI_STAT_CALLS, &v) == TOKEMB_INVALID_ARGUMENT, "NULL t");
    CHECK(tokemb_mpi_table_stat(t, TOKEMB_MPI_STAT_CALLS, NULL) == TOKEMB_INVALID_ARGUMENT, "NULL value");
    CHECK(tokemb_mpi_table_stats_reset(NULL) == TOKEMB_INVALID_ARGUMENT, "reset NULL");

    free(mine);
    free(owner);
    free(out);
    free(grad);
    free(shard);
    tokemb_mpi_table_free(t);
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    run(TOKEMB_MPI_ROW);
    run(TOKEMB_MPI_ROW_MODULO);
    return tk_mpi_finish();
}
