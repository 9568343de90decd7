/* mpirun -np 1..4: tokemb_mpi_table_init_torch gives every shard exactly its rows of the core's
 * tokemb_table_init_normal on the whole table (torch.manual_seed(s); nn.Embedding(V, D)), bit for bit,
 * for ROW and ROW_MODULO: V * D < 16 (the small-tensor path), D not a multiple of 16, the tail
 * refill, and a ROW table of 8.6 million values whose far blocks are reached by jumps (>= 2^22 draws at
 * np >= 2); a seed differing between ranks fails on every rank with no shard modified. */
#include <stdlib.h>
#include <string.h>

#include "tk_mpi_test.h"

static void test_init(int32_t sharding, int64_t V, int64_t D, uint64_t seed) {
    tokemb_mpi_table *t = NULL;
    int32_t st = tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, sharding, &t);
    CHECK(st == TOKEMB_OK, "create: %s", tokemb_mpi_last_error());
    if (st != TOKEMB_OK) return;
    st = tokemb_mpi_table_init_torch(t, seed);
    CHECK(st == TOKEMB_OK, "init: %s", tokemb_mpi_last_error());
    tokemb_table *full = NULL;
    tokemb_table_create(V, D, TOKEMB_F32, &full);
    CHECK(tokemb_table_init_normal(full, seed, 0.0, 1.0) == TOKEMB_OK, "core init");
    tokemb_table *l = tokemb_mpi_table_local(t);
    const float *ld = tokemb_table_data(l), *fd = tokemb_table_data(full);
    const int64_t LD = tokemb_table_dim(l), c0 = tokemb_mpi_table_global_col(t, 0); /* COLUMN: a slice */
    int64_t bad = -1;
    for (int64_t r = 0; r < tokemb_table_rows(l) && bad < 0; r++) {
        int64_t g = tokemb_mpi_table_global_row(t, r);
        if (memcmp(ld + r * LD, fd + g * D + c0, (size_t)LD * sizeof(float)) != 0) bad = g;
    }
    CHECK(bad < 0, "[%lld, %lld] sharding %d seed %llu: global row %lld differs", (long long)V, (long long)D,
          (int)sharding, (unsigned long long)seed, (long long)bad);
    tokemb_table_free(full);
    tokemb_mpi_table_free(t);
}

static void test_seed_disagreement(int32_t sharding) {
    tokemb_mpi_table *t = NULL;
    int32_t st = tokemb_mpi_table_create(MPI_COMM_WORLD, 40, 5, sharding, &t);
    CHECK(st == TOKEMB_OK, "create: %s", tokemb_mpi_last_error());
    if (st != TOKEMB_OK) return;
    tokemb_table *l = tokemb_mpi_table_local(t);
    float *d = tokemb_table_data(l);
    size_t n = (size_t)tokemb_table_rows(l) * (size_t)tokemb_table_dim(l); /* COLUMN: a slice of the 5 */
    for (size_t i = 0; i < n; i++) d[i] = 42.0f;
    st = tokemb_mpi_table_init_torch(t, rank == size - 1 && size > 1 ? 8 : 7);
    if (size > 1) {
        CHECK(st == TOKEMB_INVALID_ARGUMENT, "differing seed: status %d", (int)st);
        char want[128];
        snprintf(want, sizeof want, "rank %d: seed 8 differs from rank 0's 7", size - 1);
        CHECK(strstr(tokemb_mpi_last_error(), want) != NULL, "message '%s' lacks '%s'", tokemb_mpi_last_error(), want);
        int same = 1;
        for (size_t i = 0; i < n; i++) same &= d[i] == 42.0f;
        CHECK(same, "shard modified by a failed init");
    } else {
        CHECK(st == TOKEMB_OK, "np 1: %s", tokemb_mpi_last_error());
    }
    CHECK(tokemb_mpi_table_init_torch(NULL, 7) == TOKEMB_INVALID_ARGUMENT, "NULL t");
    CHECK(strstr(tokemb_mpi_last_error(), "t is NULL") != NULL, "message '%s'", tokemb_mpi_last_error());
    tokemb_mpi_table_free(t);
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    const int64_t shapes[][2] = {{4, 3}, {5, 1}, {6, 3}, {8, 2}, {9, 7}, {17, 16}, {37, 21}, {100, 33}, {250, 64}};
    for (int s = 0; s < 3; s++) {
        int32_t sharding = s == 2 ? TOKEMB_MPI_COLUMN : s ? TOKEMB_MPI_ROW_MODULO : TOKEMB_MPI_ROW;
        for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++)
            if (sharding != TOKEMB_MPI_COLUMN || shapes[k][1] >= 4) /* COLUMN needs dim >= ranks */
                test_init(sharding, shapes[k][0], shapes[k][1], 123 + k);
        test_init(sharding, 7, sharding == TOKEMB_MPI_COLUMN ? 4 : 2, (1ull << 32) + 5); /* 14 / 28 values: torch's
                                                                                         double Box-Muller path */
        /* 8.6e6 values: ROW's far blocks are reached by jumps (ROW_MODULO's gaps of (P - 1) * 131 values
         * are advanced over; its jumps over long gaps are test_init_shard's row_step cases) */
        if (sharding == TOKEMB_MPI_ROW) test_init(sharding, (INT64_C(1) << 16) + 5, 131, 2024);
        test_seed_disagreement(sharding);
    }
    return tk_mpi_finish();
}
