/* mpirun -np 1..4: gradients delivered to the owners and fused optimizer steps at the owners equal one
 * process over the rank-ordered concatenation of every rank's batch, bit for bit (dense accumulate
 * into a non-zero buffer; SGD, row-wise Adagrad, Adagrad, SparseAdam over 3 steps), for both
 * row shardings; bad ids and a missing optimizer fail on every rank with nothing changed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_mpi_test.h"

static float value(int64_t g, int64_t c) { return sinf((float)(g * 13 + c * 5) * 0.71f) * 0.9f; }

#define MAXN 96

typedef struct {
    int64_t ids[MAXN];
    float g[MAXN * 16];
    size_t n;
    int64_t *all_ids;
    float *all_g;
    size_t total;
} batch_t;

/* this rank's batch (rank 1 brings none) plus the concatenation of all ranks' batches */
static void make_batch(batch_t *b, int64_t V, int64_t D, unsigned seed) {
    unsigned s = seed * 7919u + (unsigned)rank * 104729u + 5u;
    b->n = rank == 1 ? 0 : 4 + lcg(&s) % 20;
    for (size_t i = 0; i < b->n; i++) {
        b->ids[i] = (int64_t)(lcg(&s) % (unsigned)(i % 2 ? 3 : V));
        for (int64_t c = 0; c < D; c++)
            b->g[i * (size_t)D + (size_t)c] = (float)((int)(lcg(&s) % 2001) - 1000) / 311.0f;
    }
    int cn = (int)b->n, cg = (int)(b->n * (size_t)D), ns[16], nd[16], gs[16], gd[16], tn = 0;
    MPI_Allgather(&cn, 1, MPI_INT, ns, 1, MPI_INT, MPI_COMM_WORLD);
    for (int r = 0; r < size; r++) {
        nd[r] = tn;
        gs[r] = ns[r] * (int)D;
        gd[r] = tn * (int)D;
        tn += ns[r];
    }
    b->total = (size_t)tn;
    b->all_ids = malloc((size_t)(tn + 1) * sizeof *b->all_ids);
    b->all_g = malloc((size_t)(tn + 1) * (size_t)D * sizeof *b->all_g);
    MPI_Allgatherv(b->ids, cn, MPI_INT64_T, b->all_ids, ns, nd, MPI_INT64_T, MPI_COMM_WORLD);
    MPI_Allgatherv(b->g, cg, MPI_FLOAT, b->all_g, gs, gd, MPI_FLOAT, MPI_COMM_WORLD);
}

static void free_batch(batch_t *b) {
    free(b->all_ids);
    free(b->all_g);
}

/* every row of the shard equals the whole table's row of the same global index */
static int shard_equals(tokemb_mpi_table *t, const float *full, int64_t D, const float *shard) {
    tokemb_table *l = tokemb_mpi_table_local(t);
    for (int64_t r = 0; r < tokemb_table_rows(l); r++)
        if (memcmp(shard + r * D, full + tokemb_mpi_table_global_row(t, r) * D, (size_t)D * sizeof(float)) != 0)
            return 0;
    return 1;
}

static tokemb_mpi_table *make_tables(int32_t sharding, int64_t V, int64_t D, tokemb_table **full) {
    tokemb_mpi_table *t = NULL;
    CHECK(tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, sharding, &t) == TOKEMB_OK, "%s", tokemb_mpi_last_error());
    tokemb_table *l = tokemb_mpi_table_local(t);
    for (int64_t r = 0; r < tokemb_table_rows(l); r++)
        for (int64_t c = 0; c < D; c++) tokemb_table_data(l)[r * D + c] = value(tokemb_mpi_table_global_row(t, r), c);
    tokemb_table_create(V, D, TOKEMB_F32, full);
    for (int64_t g = 0; g < V; g++)
        for (int64_t c = 0; c < D; c++) tokemb_table_data(*full)[g * D + c] = value(g, c);
    return t;
}

static void test_grad(int32_t sharding, int64_t V, int64_t D, unsigned seed) {
    tokemb_table *full;
    tokemb_mpi_table *t = make_tables(sharding, V, D, &full);
    int64_t L = tokemb_table_rows(tokemb_mpi_table_local(t));
    float *ref = malloc((size_t)(V * D) * sizeof *ref), *shard = malloc((size_t)(L * D) * sizeof *shard);
    for (int64_t g = 0; g < V; g++)
        for (int64_t c = 0; c < D; c++) ref[g * D + c] = value(g + 100, c);
    for (int64_t r = 0; r < L; r++)
        for (int64_t c = 0; c < D; c++) shard[r * D + c] = value(tokemb_mpi_table_global_row(t, r) + 100, c);
    batch_t b;
    make_batch(&b, V, D, seed);
    CHECK(tokemb_grad_accumulate(full, b.all_ids, b.total, b.all_g, ref) == TOKEMB_OK, "reference");
    int32_t st = tokemb_mpi_grad_accumulate(t, b.ids, b.n, b.g, shard);
    CHECK(st == TOKEMB_OK, "grad: %s", tokemb_mpi_last_error());
    CHECK(shard_equals(t, ref, D, shard), "grad differs (sharding %d)", (int)sharding);
    /* int32 ids, a second accumulation on top */
    int32_t ids32[MAXN];
    for (size_t i = 0; i < b.n; i++) ids32[i] = (int32_t)b.ids[i];
    tokemb_grad_accumulate(full, b.all_ids, b.total, b.all_g, ref);
    CHECK(tokemb_mpi_grad_accumulate_i32(t, ids32, b.n, b.g, shard) == TOKEMB_OK, "%s", tokemb_mpi_last_error());
    CHECK(shard_equals(t, ref, D, shard), "grad_i32 differs");
    /* a bad id on the last rank: nothing changes anywhere */
    int64_t bad[3] = {0, 1, V + 3};
    st = tokemb_mpi_grad_accumulate(t, rank == size - 1 ? bad : b.ids, rank == size - 1 ? 3 : b.n, b.g, shard);
    CHECK(st == TOKEMB_OUT_OF_RANGE, "bad id: %d", (int)st);
    char want[96];
    snprintf(want, sizeof want, "rank %d: token id %lld at index 2", size - 1, (long long)(V + 3));
    CHECK(strstr(tokemb_mpi_last_error(), want) != NULL, "'%s'", tokemb_mpi_last_error());
    CHECK(shard_equals(t, ref, D, shard), "grad changed by a failed call");
    free_batch(&b);
    free(ref);
    free(shard);
    tokemb_table_free(full);
    tokemb_mpi_table_free(t);
}

static void test_optim(int32_t sharding, int32_t kind, int64_t V, int64_t D, unsigned seed) {
    tokemb_table *full;
    tokemb_mpi_table *t = make_tables(sharding, V, D, &full);
    tokemb_table *l = tokemb_mpi_table_local(t);
    /* a missing optimizer on one rank: every rank fails */
    if (rank != size - 1) tokemb_optim_select(l, kind);
    int32_t st = tokemb_mpi_optim_step(t, NULL, 0, NULL);
    CHECK(st == TOKEMB_INVALID_ARGUMENT, "no optimizer: %d", (int)st);
    CHECK(strstr(tokemb_mpi_last_error(), "no optimizer selected") != NULL, "'%s'", tokemb_mpi_last_error());
    tokemb_optim_select(l, kind);
    tokemb_optim_select(full, kind);
    tokemb_optim_set_param_f64(l, TOKEMB_OPTIM_LR, 0.05);
    tokemb_optim_set_param_f64(full, TOKEMB_OPTIM_LR, 0.05);
    if (kind == TOKEMB_OPTIM_SGD || kind == TOKEMB_OPTIM_ROWWISE_ADAGRAD) {
        tokemb_optim_set_param_f64(l, TOKEMB_OPTIM_WEIGHT_DECAY, 0.01);
        tokemb_optim_set_param_f64(full, TOKEMB_OPTIM_WEIGHT_DECAY, 0.01);
    }
    for (unsigned k = 0; k < 3; k++) {
        batch_t b;
        make_batch(&b, V, D, seed * 10 + k);
        CHECK(tokemb_optim_step(full, b.all_ids, b.total, b.all_g) == TOKEMB_OK, "reference step");
        st = tokemb_mpi_optim_step(t, b.ids, b.n, b.g);
        CHECK(st == TOKEMB_OK, "step: %s", tokemb_mpi_last_error());
        CHECK(shard_equals(t, tokemb_table_data(full), D, tokemb_table_data(l)),
              "weights differ (sharding %d, kind %d, step %u)", (int)sharding, (int)kind, k);
        CHECK(tokemb_optim_step_count(l) == tokemb_optim_step_count(full), "step count");
        free_batch(&b);
    }
    /* a bad id on rank 0: weights, state and step count unchanged everywhere */
    int64_t steps = tokemb_optim_step_count(l), bad[2] = {-1, 0};
    float g2[32] = {0};
    st = tokemb_mpi_optim_step(t, bad, rank == 0 ? 2 : 0, g2);
    CHECK(st == TOKEMB_OUT_OF_RANGE && tokemb_optim_step_count(l) == steps, "bad id: %d", (int)st);
    CHECK(shard_equals(t, tokemb_table_data(full), D, tokemb_table_data(l)), "weights changed by a failed step");
    tokemb_table_free(full);
    tokemb_mpi_table_free(t);
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    unsigned seed = 1;
    for (int32_t sh = TOKEMB_MPI_ROW; sh <= TOKEMB_MPI_ROW_MODULO; sh++) {
        test_grad(sh, 23, 7, seed++);
        for (int32_t kind = TOKEMB_OPTIM_SGD; kind <= TOKEMB_OPTIM_SPARSE_ADAM; kind++)
            test_optim(sh, kind, 31, 5, seed++);
    }
    return tk_mpi_finish();
}
