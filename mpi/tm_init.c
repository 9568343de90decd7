/* tokemb_mpi_table_init_torch: the sharded table initialised as torch.manual_seed(seed);
 * nn.Embedding(rows, dim) initialises the whole table, each rank producing only its own part with the
 * core's tokemb_table_init_normal_shard (MT19937 jump-ahead, no rank draws the whole stream's normals).
 *
 * Cost per rank (docs/performance.md): ROW = one jump to the rank's block (tens of ms) plus its own
 * rows' values, so the ranks together do the single-process work once. ROW_MODULO interleaves the
 * rows: between two of a rank's rows lie (P - 1) * dim values of other ranks, skipped by plain
 * advancing of the engine (a few ns per value, no normal transform) unless the gap reaches the jump
 * threshold (2^22 values); each rank therefore still walks the whole stream once, cheaply. */
#include "tm_internal.h"

#include <inttypes.h>

/* This rank's part of the global [rows, dim] tensor: local row l is global row row0 + l * step, local
 * column c global column col0 + c. A sharding by columns only changes this placement. */
static void tm_init_part(const tokemb_mpi_table *t, int64_t *row0, int64_t *step, int64_t *col0) {
    *col0 = t->col0; /* TOKEMB_MPI_COLUMN: every row, this rank's columns (0 for the row shardings) */
    if (t->sharding == TOKEMB_MPI_COLUMN) {
        *row0 = 0;
        *step = 1;
    } else if (t->sharding == TOKEMB_MPI_ROW_MODULO) {
        *row0 = t->rank;
        *step = t->size;
    } else {
        *row0 = t->row0;
        *step = 1;
    }
}

int32_t tokemb_mpi_table_init_torch(tokemb_mpi_table *t, uint64_t seed) {
    static const char fn[] = "tokemb_mpi_table_init_torch";
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    uint64_t root = seed;
    int rc = MPI_Bcast(&root, 1, MPI_UINT64_T, 0, t->comm);
    if (rc != MPI_SUCCESS) st = tm_mpi_status(rc, fn, "MPI_Bcast", msg);
    else if (root != seed)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "seed %" PRIu64 " differs from rank 0's %" PRIu64, seed, root);
    else if (t->rows > (INT64_C(1) << 62) / t->dim)
        st = tm_fail(TOKEMB_OVERFLOW, msg, "the global table [%lld, %lld] has more than 2^62 values",
                     (long long)t->rows, (long long)t->dim);
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    if (st != TOKEMB_OK) return st;
    int64_t row0, step, col0;
    tm_init_part(t, &row0, &step, &col0);
    /* valid by construction for a shard made by tokemb_mpi_table_create: cannot fail, but a failure
     * would still be agreed (and would have left this rank's shard untouched) */
    int32_t cs = tokemb_table_init_normal_shard(t->local, seed, 0.0, 1.0, t->rows, t->dim, row0, step, col0);
    if (cs != TOKEMB_OK) st = tm_fail(cs, msg, "local shard: %s", tokemb_last_error());
    return tm_agree(t->comm, t->rank, t->size, fn, st, msg);
}
