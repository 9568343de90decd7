/* mpirun -np 1..4: sharded pooled bags (SUM / MEAN / MAX, per-sample weights, empty bags, int32 ids)
 * equal tokemb_lookup_bags on the whole table over the rank-ordered concatenation of every rank's
 * bags, bit for bit; malformed offsets on one rank fail on every rank with nothing written. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_mpi_test.h"

/* values with many bits set, so a different summation order would show */
static float value(int64_t g, int64_t c) { return sinf((float)(g * 31 + c * 7) * 0.37f) * 3.3f; }

static void test_bags(int32_t sharding, int64_t V, int64_t D, int32_t mode, int weighted, int is32, unsigned seed) {
    tokemb_mpi_table *t = NULL;
    int32_t st = tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, sharding, &t);
    CHECK(st == TOKEMB_OK, "create: %s", tokemb_mpi_last_error());
    if (st != TOKEMB_OK) return;
    tokemb_table *l = tokemb_mpi_table_local(t), *f = NULL;
    float row[64];
    for (int64_t r = 0; r < tokemb_table_rows(l); r++) {
        for (int64_t c = 0; c < D; c++) row[c] = value(tokemb_mpi_table_global_row(t, r), c);
        tokemb_table_write_rows(l, r, 1, row);
    }
    tokemb_table_create(V, D, TOKEMB_F32, &f);
    for (int64_t g = 0; g < V; g++)
        for (int64_t c = 0; c < D; c++) tokemb_table_data(f)[g * D + c] = value(g, c);

    /* this rank's bags (sizes 0..6, rank 2 brings no bag at all) and the reference batch: every rank's
     * bags concatenated in rank order */
    tk_mpi_bags b;
    tk_mpi_bags_make(&b, V, seed * 7919u + (unsigned)rank * 104729u + 3u);
    float *ref = malloc((b.tb + 1) * (size_t)D * sizeof *ref);
    float *out = malloc((TK_MPI_MAXB + 1) * (size_t)D * sizeof *out);
    CHECK(tokemb_lookup_bags(f, b.all, b.tn, b.aoff, b.tb, mode, weighted ? b.aw : NULL, ref) == TOKEMB_OK,
          "reference: %s", tokemb_last_error());

    st = is32 ? tokemb_mpi_lookup_bags_i32(t, b.ids32, b.n, b.off, b.nb, mode, weighted ? b.w : NULL, out)
              : tokemb_mpi_lookup_bags(t, b.ids, b.n, b.off, b.nb, mode, weighted ? b.w : NULL, out);
    CHECK(st == TOKEMB_OK, "bags: %s", tokemb_mpi_last_error());
    CHECK(memcmp(out, ref + b.bd * (size_t)D, b.nb * (size_t)D * sizeof *out) == 0,
          "bags differ (sharding %d, mode %d, weighted %d)", (int)sharding, (int)mode, weighted);

    /* a decreasing offset on rank 0 only: every rank fails, out untouched everywhere */
    for (size_t i = 0; i < (TK_MPI_MAXB + 1) * (size_t)D; i++) out[i] = -7.0f;
    int64_t bad_off[3] = {0, 2, 1}, bad_ids[2] = {0, 1};
    if (rank == 0) st = tokemb_mpi_lookup_bags(t, bad_ids, 1, bad_off, 2, mode, NULL, out);
    else st = tokemb_mpi_lookup_bags(t, b.ids, b.n, b.off, b.nb, mode, NULL, out);
    CHECK(st == TOKEMB_INVALID_ARGUMENT, "bad offsets: %d", (int)st);
    CHECK(strstr(tokemb_mpi_last_error(), "rank 0: offsets[2] = 1 is below offsets[1] = 2") != NULL, "message '%s'",
          tokemb_mpi_last_error());
    int untouched = 1;
    for (size_t i = 0; i < (TK_MPI_MAXB + 1) * (size_t)D; i++) untouched &= out[i] == -7.0f;
    CHECK(untouched, "out written on a failed call");

    tk_mpi_bags_free(&b);
    free(ref);
    free(out);
    tokemb_table_free(f);
    tokemb_mpi_table_free(t);
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    unsigned seed = 1;
    for (int32_t sharding = TOKEMB_MPI_ROW; sharding <= TOKEMB_MPI_ROW_MODULO; sharding++)
        for (int32_t mode = TOKEMB_SUM; mode <= TOKEMB_MAX; mode++)
            for (int weighted = 0; weighted <= (mode == TOKEMB_SUM); weighted++)
                test_bags(sharding, 29 + seed, 3 + (int64_t)(seed % 9), mode, weighted, (int)(seed % 2), seed), seed++;
    return tk_mpi_finish();
}
