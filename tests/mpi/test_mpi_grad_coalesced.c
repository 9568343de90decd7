/* mpirun -np 1..4: the coalesced gradient at the owners equals, row for row, the core's
 * tokemb_grad_coalesce on the whole table over the rank-ordered concatenation of every rank's batch,
 * bit for bit (each owner gets exactly its share of the distinct ids, ascending); it feeds
 * tokemb_optim_step_coalesced on the shard; too small a capacity or a bad id on one rank fails on
 * every rank with nothing written. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_mpi_table.h"

#define MAXN 300

static float value(int64_t g, int64_t c) { return (float)((g * 7 + c * 3) % 19) * 0.125f - 1.0f; }

static void test_coalesce(int32_t sharding, int64_t V, int64_t D, unsigned seed, int is32) {
    tokemb_table *f = NULL;
    tokemb_mpi_table *t = tk_make_tables(sharding, V, D, value, &f);
    if (!t) return;
    int32_t st;
    static int64_t ids[MAXN], all_ids[4 * MAXN];
    static int32_t ids32[MAXN];
    static float g[MAXN * 16], all_g[4 * MAXN * 16];
    unsigned s = seed * 7919u + (unsigned)rank * 104729u + 3u;
    size_t n = rank == 1 ? 0 : 5 + lcg(&s) % (MAXN - 5), off;
    for (size_t i = 0; i < n; i++) {
        ids[i] = (int64_t)(lcg(&s) % (unsigned)(i % 3 ? V : 4)); /* hot rows collect many contributions */
        ids32[i] = (int32_t)ids[i];
        for (int64_t c = 0; c < D; c++) g[i * (size_t)D + (size_t)c] = (float)((int)(lcg(&s) % 20001) - 10000) / 7.0f;
    }
    size_t total = tk_gather_rows(ids, n, 1, MPI_INT64_T, all_ids, &off);
    tk_gather_rows(g, n, (int)D, MPI_FLOAT, all_g, &off);
    int64_t *ref_ids = malloc((total + 1) * sizeof *ref_ids);
    float *ref_rows = malloc((total + 1) * (size_t)D * sizeof *ref_rows);
    size_t ref_u = 0;
    CHECK(tokemb_grad_coalesce(f, all_ids, total, all_g, ref_ids, ref_rows, &ref_u) == TOKEMB_OK, "core coalesce");

    int64_t L = tokemb_table_rows(tokemb_mpi_table_local(t));
    int64_t *out_ids = malloc((size_t)(L + 1) * sizeof *out_ids);
    float *out_rows = malloc((size_t)(L + 1) * (size_t)D * sizeof *out_rows);
    size_t u = 12345;
    st = is32 ? tokemb_mpi_grad_coalesce_i32(t, ids32, n, g, out_ids, out_rows, (size_t)L, &u)
              : tokemb_mpi_grad_coalesce(t, ids, n, g, out_ids, out_rows, (size_t)L, &u);
    CHECK(st == TOKEMB_OK, "grad_coalesce: %s", tokemb_mpi_last_error());
    /* my share of the core's distinct ids, in the core's (ascending) order, with the core's bits */
    size_t j = 0, mine = 0;
    for (size_t k = 0; k < ref_u; k++) {
        int64_t gr = ref_ids[k];
        if (tokemb_mpi_table_global_row(t, j < u ? out_ids[j] : -1) != gr) {
            /* not the next of my rows: it must belong to another rank */
            int owned = 0;
            for (int64_t l = 0; l < L; l++) owned |= tokemb_mpi_table_global_row(t, l) == gr;
            CHECK(!owned, "global row %lld is missing from rank %d's output", (long long)gr, rank);
            continue;
        }
        CHECK(memcmp(out_rows + j * (size_t)D, ref_rows + k * (size_t)D, (size_t)D * sizeof(float)) == 0,
              "row of global id %lld differs from the core's coalesce", (long long)gr);
        j++;
        mine++;
    }
    CHECK(st != TOKEMB_OK || (j == u && mine == u), "%zu of %zu output rows matched the core's ids", j, u);
    int all_mine = 0, um = (int)u;
    MPI_Allreduce(&um, &all_mine, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    CHECK(all_mine == (int)ref_u, "the ranks return %d rows, the core %zu", all_mine, ref_u);

    /* fed to the shard's coalesced SGD step: shard rows equal the whole table's after the core's step */
    tokemb_table *l = tokemb_mpi_table_local(t);
    CHECK(tokemb_optim_select(l, TOKEMB_OPTIM_SGD) == TOKEMB_OK &&
              tokemb_optim_select(f, TOKEMB_OPTIM_SGD) == TOKEMB_OK,
          "select");
    tokemb_optim_set_param_f64(l, TOKEMB_OPTIM_LR, 0.03);
    tokemb_optim_set_param_f64(f, TOKEMB_OPTIM_LR, 0.03);
    CHECK(tokemb_optim_step_coalesced(l, out_ids, u, out_rows) == TOKEMB_OK, "shard step: %s", tokemb_last_error());
    CHECK(tokemb_optim_step_coalesced(f, ref_ids, ref_u, ref_rows) == TOKEMB_OK, "core step: %s", tokemb_last_error());
    int same = 1;
    for (int64_t r = 0; r < L; r++)
        same &= memcmp(tokemb_table_data(l) + r * D, tokemb_table_data(f) + tokemb_mpi_table_global_row(t, r) * D,
                       (size_t)D * sizeof(float)) == 0;
    CHECK(same, "shard after the coalesced step differs from the whole table's");

    /* capacity one short on the rank with the most rows touched (lowest such rank): every rank fails */
    int most[2] = {(int)u, rank}, top[2];
    MPI_Allreduce(most, top, 1, MPI_2INT, MPI_MAXLOC, MPI_COMM_WORLD);
    if (top[0] > 0) {
        for (int64_t i = 0; i <= L; i++) out_ids[i] = -7;
        size_t u2 = 999;
        st = tokemb_mpi_grad_coalesce(t, ids, n, g, out_ids, out_rows, rank == top[1] ? (size_t)top[0] - 1 : (size_t)L,
                                      &u2);
        CHECK(st == TOKEMB_OVERFLOW && u2 == 999 && out_ids[0] == -7, "capacity: status %d", (int)st);
        char want[160];
        snprintf(want, sizeof want, "rank %d: %d distinct rows of this rank's shard were touched, capacity is %d",
                 top[1], top[0], top[0] - 1);
        CHECK(strstr(tokemb_mpi_last_error(), want) != NULL, "message '%s' lacks '%s'", tokemb_mpi_last_error(), want);
    }
    /* a bad id on the last rank */
    int64_t bad_ids[3] = {0, rank == size - 1 ? V : 1, 2};
    size_t u3 = 999;
    out_ids[0] = -7;
    st = tokemb_mpi_grad_coalesce(t, bad_ids, 3, g, out_ids, out_rows, (size_t)L, &u3);
    CHECK(st == TOKEMB_OUT_OF_RANGE && u3 == 999 && out_ids[0] == -7, "bad id: status %d", (int)st);
    CHECK(strstr(tokemb_mpi_last_error(), "token id") != NULL, "message '%s'", tokemb_mpi_last_error());
    /* NULL n_unique on rank 0 */
    st = tokemb_mpi_grad_coalesce(t, ids, n, g, out_ids, out_rows, (size_t)L, rank == 0 ? NULL : &u3);
    CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), "rank 0: n_unique is NULL"), "NULL: %s",
          tokemb_mpi_last_error());

    free(ref_ids);
    free(ref_rows);
    free(out_ids);
    free(out_rows);
    tokemb_table_free(f);
    tokemb_mpi_table_free(t);
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    for (int s = 0; s < 2; s++) {
        test_coalesce(tk_shardings[s], 37, 5, (unsigned)s, 0);
        test_coalesce(tk_shardings[s], 1000, 16, (unsigned)s + 2, 1);
        test_coalesce(tk_shardings[s], 6, 3, (unsigned)s + 4, 0);
    }
    return tk_mpi_finish();
}
