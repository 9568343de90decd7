/* mpirun -np 1..4: TOKEMB_MPI_COLUMN (each rank owns a slice of every row's dims) - lookups (int64 /
 * int32), pooled bags (SUM / MEAN / MAX, per-sample weights, empty bags), gradients delivered to the
 * column owners and fused optimizer steps (SGD and row-wise Adagrad with weight decay, Adagrad,
 * SparseAdam; 3 steps) equal one process holding the whole table and seeing the rank-ordered
 * concatenation of every rank's batch, bit for bit, with dims not divisible by the rank count
 * (7, 13, 64) and fewer rows than ranks; bad ids, disagreeing metadata and optimizers fail on every
 * rank with nothing changed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_mpi_test.h"

/* values with many bits set, so any other summation order or rounding would show */
static float value(int64_t g, int64_t c) { return sinf((float)(g * 31 + c * 7) * 0.37f) * 3.3f; }

/* A column-sharded table and the whole table holding the same values. */
static tokemb_mpi_table *make_tables(int64_t V, int64_t D, tokemb_table **full) {
    tokemb_mpi_table *t = NULL;
    int32_t st = tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, TOKEMB_MPI_COLUMN, &t);
    CHECK(st == TOKEMB_OK, "create %lld x %lld: %s", (long long)V, (long long)D, tokemb_mpi_last_error());
    if (st != TOKEMB_OK) MPI_Abort(MPI_COMM_WORLD, 1);
    tokemb_table *l = tokemb_mpi_table_local(t);
    int64_t dl = tokemb_table_dim(l);
    for (int64_t r = 0; r < tokemb_table_rows(l); r++)
        for (int64_t c = 0; c < dl; c++)
            tokemb_table_data(l)[r * dl + c] =
                value(tokemb_mpi_table_global_row(t, r), tokemb_mpi_table_global_col(t, c));
    tokemb_table_create(V, D, TOKEMB_F32, full);
    for (int64_t g = 0; g < V; g++)
        for (int64_t c = 0; c < D; c++) tokemb_table_data(*full)[g * D + c] = value(g, c);
    return t;
}

/* shard[V][local cols] equals this rank's columns of full[V][D] bit for bit */
static int shard_equals(tokemb_mpi_table *t, const float *full, const float *shard) {
    int64_t D = tokemb_mpi_table_dim(t), dl = tokemb_table_dim(tokemb_mpi_table_local(t));
    int64_t c0 = tokemb_mpi_table_global_col(t, 0);
    for (int64_t r = 0; r < tokemb_mpi_table_rows(t); r++)
        if (memcmp(shard + r * dl, full + tokemb_mpi_table_global_row(t, r) * D + c0, (size_t)dl * sizeof(float)))
            return 0;
    return 1;
}

/* the bad-id case shared by every op: the last rank brings id V at index 2 */
static void check_bad_id(int32_t st, int64_t V, const char *what) {
    CHECK(st == TOKEMB_OUT_OF_RANGE, "%s: bad id status %d", what, (int)st);
    char want[96];
    snprintf(want, sizeof want, "rank %d: token id %lld at index 2", size - 1, (long long)V);
    CHECK(strstr(tokemb_mpi_last_error(), want) != NULL, "%s: '%s' lacks '%s'", what, tokemb_mpi_last_error(), want);
}

static void test_layout(int64_t V, int64_t D) {
    tokemb_table *full;
    tokemb_mpi_table *t = make_tables(V, D, &full);
    tokemb_table *l = tokemb_mpi_table_local(t);
    /* every rank holds every row; the column blocks tile [0, D) in rank order, ranks r < D % P one wider */
    CHECK(tokemb_table_rows(l) == V && tokemb_mpi_table_rows(t) == V && tokemb_mpi_table_dim(t) == D, "shape");
    int64_t mine[2] = {tokemb_mpi_table_global_col(t, 0), tokemb_table_dim(l)}, all[32];
    MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, MPI_COMM_WORLD);
    int64_t next = 0;
    for (int r = 0; r < size; r++) {
        CHECK(all[2 * r] == next && all[2 * r + 1] == D / size + (r < D % size), "rank %d block (%lld, %lld)", r,
              (long long)all[2 * r], (long long)all[2 * r + 1]);
        next += all[2 * r + 1];
    }
    CHECK(tokemb_mpi_table_global_col(t, mine[1] - 1) == mine[0] + mine[1] - 1, "last local column");
    CHECK(tokemb_mpi_table_global_col(t, mine[1]) == -1 && tokemb_mpi_table_global_col(t, -1) == -1 &&
              tokemb_mpi_table_global_col(NULL, 0) == -1,
          "global_col outside the shard");
    CHECK(tokemb_mpi_table_global_row(t, V - 1) == V - 1 && tokemb_mpi_table_global_row(t, V) == -1, "global_row");
    tokemb_table_free(full);
    tokemb_mpi_table_free(t);
}

static void test_lookup(int64_t V, int64_t D, unsigned seed) {
    tokemb_table *full;
    tokemb_mpi_table *t = make_tables(V, D, &full);
    tk_mpi_batch b;
    tk_mpi_batch_make(&b, V, D, seed);
    float *ref = malloc((b.total + 1) * (size_t)D * sizeof *ref),
          *out = malloc((TK_MPI_MAXN + 4) * (size_t)D * sizeof *out);
    CHECK(tokemb_lookup(full, b.all_ids, b.total, ref) == TOKEMB_OK, "reference");
    const float *mine = ref + b.off * (size_t)D;
    int32_t st = tokemb_mpi_lookup(t, b.ids, b.n, out);
    CHECK(st == TOKEMB_OK && !memcmp(out, mine, b.n * (size_t)D * sizeof *out), "lookup %lldx%lld: %s", (long long)V,
          (long long)D, tokemb_mpi_last_error());
    memset(out, 0, (TK_MPI_MAXN + 4) * (size_t)D * sizeof *out);
    st = tokemb_mpi_lookup_i32(t, b.ids32, b.n, out);
    CHECK(st == TOKEMB_OK && !memcmp(out, mine, b.n * (size_t)D * sizeof *out), "lookup_i32: %s",
          tokemb_mpi_last_error());
    /* an id outside the table on the last rank: every rank fails, out untouched everywhere */
    int64_t bad[4] = {0, V - 1, rank == size - 1 ? V : 0, 0};
    for (size_t i = 0; i < 4 * (size_t)D; i++) out[i] = 12345.0f;
    check_bad_id(tokemb_mpi_lookup(t, bad, 4, out), V, "lookup");
    int untouched = 1;
    for (size_t i = 0; i < 4 * (size_t)D; i++) untouched &= out[i] == 12345.0f;
    CHECK(untouched, "out written by a failed lookup");
    /* max_norm on one rank's shard: renormalising a slice is not torch's whole-row renorm, refused */
    if (rank == size - 1) tokemb_table_set_param_f64(tokemb_mpi_table_local(t), TOKEMB_MAX_NORM, 1.0);
    for (size_t i = 0; i < (TK_MPI_MAXN + 4) * (size_t)D; i++) out[i] = 12345.0f;
    st = tokemb_mpi_lookup(t, b.ids, b.n, out);
    CHECK(st == TOKEMB_UNSUPPORTED && strstr(tokemb_mpi_last_error(), "max_norm") != NULL, "max_norm: %d '%s'", (int)st,
          tokemb_mpi_last_error());
    int64_t one_bag[2] = {0, (int64_t)b.n};
    st = tokemb_mpi_lookup_bags(t, b.ids, b.n, one_bag, 1, TOKEMB_SUM, NULL, out);
    CHECK(st == TOKEMB_UNSUPPORTED, "max_norm bags: %d", (int)st);
    for (size_t i = 0; i < (TK_MPI_MAXN + 4) * (size_t)D; i++) untouched &= out[i] == 12345.0f;
    CHECK(untouched, "out written by a refused call");
    tokemb_table_set_param_f64(tokemb_mpi_table_local(t), TOKEMB_MAX_NORM, 0.0);
    st = tokemb_mpi_lookup(t, b.ids, b.n, out); /* no shard row was renormalised */
    CHECK(st == TOKEMB_OK && !memcmp(out, mine, b.n * (size_t)D * sizeof *out), "after max_norm: %s",
          tokemb_mpi_last_error());
    tk_mpi_batch_free(&b);
    free(ref);
    free(out);
    tokemb_table_free(full);
    tokemb_mpi_table_free(t);
}

static void test_bags(int64_t V, int64_t D, unsigned seed) {
    tokemb_table *full;
    tokemb_mpi_table *t = make_tables(V, D, &full);
    float *ref = malloc((size_t)size * (TK_MPI_MAXB + 1) * (size_t)D * sizeof *ref);
    float *out = malloc((TK_MPI_MAXB + 1) * (size_t)D * sizeof *out);
    /* every mode on every rank (mixed = each rank its own mode: the column owners pool every rank's
     * bags with that rank's mode; the reference is then this rank's bags on the whole table) */
    for (int32_t mode = TOKEMB_SUM; mode <= TOKEMB_MAX + 1; mode++)
        for (int weighted = 0; weighted <= (mode == TOKEMB_SUM); weighted++) {
            tk_mpi_bags b;
            tk_mpi_bags_make(&b, V, seed * 7919u + (unsigned)rank * 104729u + (unsigned)(mode * 2 + weighted));
            int32_t my_mode = mode <= TOKEMB_MAX ? mode : (int32_t)(rank % 3);
            const float *w = weighted ? b.w : NULL, *want = ref;
            if (mode <= TOKEMB_MAX) {
                CHECK(tokemb_lookup_bags(full, b.all, b.tn, b.aoff, b.tb, mode, weighted ? b.aw : NULL, ref) ==
                          TOKEMB_OK,
                      "reference: %s", tokemb_last_error());
                want = ref + b.bd * (size_t)D;
            } else {
                CHECK(tokemb_lookup_bags(full, b.ids, b.n, b.off, b.nb, my_mode, NULL, ref) == TOKEMB_OK,
                      "reference: %s", tokemb_last_error());
            }
            int32_t st = tokemb_mpi_lookup_bags(t, b.ids, b.n, b.off, b.nb, my_mode, w, out);
            CHECK(st == TOKEMB_OK && !memcmp(out, want, b.nb * (size_t)D * sizeof *out),
                  "bags %lldx%lld mode %d weighted %d: %s", (long long)V, (long long)D, (int)my_mode, weighted,
                  tokemb_mpi_last_error());
            memset(out, 0, (TK_MPI_MAXB + 1) * (size_t)D * sizeof *out);
            st = tokemb_mpi_lookup_bags_i32(t, b.ids32, b.n, b.off, b.nb, my_mode, w, out);
            CHECK(st == TOKEMB_OK && !memcmp(out, want, b.nb * (size_t)D * sizeof *out), "bags_i32 mode %d: %s",
                  (int)my_mode, tokemb_mpi_last_error());
            tk_mpi_bags_free(&b);
        }
    /* an id outside the table on the last rank, then malformed offsets on rank 0: out untouched */
    int64_t bad[3] = {0, 1, rank == size - 1 ? V : 1}, boff[3] = {0, 1, 3};
    for (size_t i = 0; i < 2 * (size_t)D; i++) out[i] = -7.0f;
    check_bad_id(tokemb_mpi_lookup_bags(t, bad, 3, boff, 2, TOKEMB_SUM, NULL, out), V, "bags");
    int64_t good[3] = {0, 1, 1}, dec[3] = {0, 2, 1};
    int32_t st = tokemb_mpi_lookup_bags(t, good, rank == 0 ? 1 : 3, rank == 0 ? dec : boff, 2, TOKEMB_MAX, NULL, out);
    CHECK(st == TOKEMB_INVALID_ARGUMENT &&
              strstr(tokemb_mpi_last_error(), "rank 0: offsets[2] = 1 is below offsets[1] = 2") != NULL,
          "bad offsets: %d '%s'", (int)st, tokemb_mpi_last_error());
    int untouched = 1;
    for (size_t i = 0; i < 2 * (size_t)D; i++) untouched &= out[i] == -7.0f;
    CHECK(untouched, "out written by a failed bags call");
    free(ref);
    free(out);
    tokemb_table_free(full);
    tokemb_mpi_table_free(t);
}

static void test_grad(int64_t V, int64_t D, unsigned seed) {
    tokemb_table *full;
    tokemb_mpi_table *t = make_tables(V, D, &full);
    int64_t dl = tokemb_table_dim(tokemb_mpi_table_local(t)), c0 = tokemb_mpi_table_global_col(t, 0);
    float *ref = malloc((size_t)(V * D) * sizeof *ref), *shard = malloc((size_t)(V * dl) * sizeof *shard);
    for (int64_t g = 0; g < V; g++)
        for (int64_t c = 0; c < D; c++) ref[g * D + c] = value(g + 100, c);
    for (int64_t g = 0; g < V; g++)
        for (int64_t c = 0; c < dl; c++) shard[g * dl + c] = value(g + 100, c0 + c);
    tk_mpi_batch b;
    tk_mpi_batch_make(&b, V, D, seed);
    CHECK(tokemb_grad_accumulate(full, b.all_ids, b.total, b.all_g, ref) == TOKEMB_OK, "reference");
    int32_t st = tokemb_mpi_grad_accumulate(t, b.ids, b.n, b.g, shard);
    CHECK(st == TOKEMB_OK && shard_equals(t, ref, shard), "grad %lldx%lld: %s", (long long)V, (long long)D,
          tokemb_mpi_last_error());
    tokemb_grad_accumulate(full, b.all_ids, b.total, b.all_g, ref); /* int32 ids, on top */
    st = tokemb_mpi_grad_accumulate_i32(t, b.ids32, b.n, b.g, shard);
    CHECK(st == TOKEMB_OK && shard_equals(t, ref, shard), "grad_i32: %s", tokemb_mpi_last_error());
    int64_t bad[3] = {0, 1, rank == size - 1 ? V : 0};
    check_bad_id(tokemb_mpi_grad_accumulate(t, bad, 3, b.g, shard), V, "grad");
    CHECK(shard_equals(t, ref, shard), "grad changed by a failed call");
    tk_mpi_batch_free(&b);
    free(ref);
    free(shard);
    tokemb_table_free(full);
    tokemb_mpi_table_free(t);
}

static void set_both(tokemb_table *a, tokemb_table *b, int32_t param, double v) {
    CHECK(tokemb_optim_set_param_f64(a, param, v) == TOKEMB_OK && tokemb_optim_set_param_f64(b, param, v) == TOKEMB_OK,
          "set param %d", (int)param);
}

static void test_optim(int32_t kind, int64_t V, int64_t D, unsigned seed) {
    tokemb_table *full;
    tokemb_mpi_table *t = make_tables(V, D, &full);
    tokemb_table *l = tokemb_mpi_table_local(t);
    /* another optimizer on the last rank: every rank fails before anything moves */
    tokemb_optim_select(l, rank == size - 1 && size > 1 ? (kind + 1) % 4 : kind);
    int32_t st = size > 1 ? tokemb_mpi_optim_step(t, NULL, 0, NULL) : TOKEMB_INVALID_ARGUMENT;
    CHECK(st == TOKEMB_INVALID_ARGUMENT, "other kind: %d", (int)st);
    if (size > 1)
        CHECK(strstr(tokemb_mpi_last_error(), "differs from rank 0's") != NULL, "'%s'", tokemb_mpi_last_error());
    CHECK(tokemb_optim_step_count(l) == 0, "a failed step moved the counter");
    tokemb_optim_select(l, kind);
    tokemb_optim_select(full, kind);
    set_both(l, full, TOKEMB_OPTIM_LR, 0.05);
    if (kind == TOKEMB_OPTIM_SGD || kind == TOKEMB_OPTIM_ROWWISE_ADAGRAD)
        set_both(l, full, TOKEMB_OPTIM_WEIGHT_DECAY, 0.01);
    if (kind == TOKEMB_OPTIM_ROWWISE_ADAGRAD || kind == TOKEMB_OPTIM_ADAGRAD)
        set_both(l, full, TOKEMB_OPTIM_INITIAL_ACCUMULATOR, 0.125);
    if (kind == TOKEMB_OPTIM_ADAGRAD) set_both(l, full, TOKEMB_OPTIM_LR_DECAY, 0.02);
    if (size > 1) { /* another eps on the last rank */
        double eps = 0;
        tokemb_optim_get_param_f64(l, TOKEMB_OPTIM_EPS, &eps);
        if (kind != TOKEMB_OPTIM_SGD && rank == size - 1) tokemb_optim_set_param_f64(l, TOKEMB_OPTIM_EPS, eps * 2);
        if (kind == TOKEMB_OPTIM_SGD && rank == size - 1) tokemb_optim_set_param_f64(l, TOKEMB_OPTIM_LR, 0.25);
        st = tokemb_mpi_optim_step(t, NULL, 0, NULL);
        char want[64];
        snprintf(want, sizeof want, "rank %d: optimizer parameter %d = ", size - 1,
                 kind == TOKEMB_OPTIM_SGD ? TOKEMB_OPTIM_LR : TOKEMB_OPTIM_EPS);
        CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), want) != NULL, "params: %d '%s'",
              (int)st, tokemb_mpi_last_error());
        CHECK(tokemb_optim_step_count(l) == 0, "a refused step moved the counter");
        if (kind != TOKEMB_OPTIM_SGD) tokemb_optim_set_param_f64(l, TOKEMB_OPTIM_EPS, eps);
        else tokemb_optim_set_param_f64(l, TOKEMB_OPTIM_LR, 0.05);
    }
    for (unsigned k = 0; k < 3; k++) {
        tk_mpi_batch b;
        tk_mpi_batch_make(&b, V, D, seed * 10 + k);
        CHECK(tokemb_optim_step(full, b.all_ids, b.total, b.all_g) == TOKEMB_OK, "reference step");
        st = k == 1 ? tokemb_mpi_optim_step_i32(t, b.ids32, b.n, b.g) : tokemb_mpi_optim_step(t, b.ids, b.n, b.g);
        CHECK(st == TOKEMB_OK, "step: %s", tokemb_mpi_last_error());
        CHECK(shard_equals(t, tokemb_table_data(full), tokemb_table_data(l)),
              "weights differ (kind %d, %lldx%lld, step %u)", (int)kind, (long long)V, (long long)D, k);
        CHECK(tokemb_optim_step_count(l) == tokemb_optim_step_count(full), "step count");
        tk_mpi_batch_free(&b);
    }
    /* a bad id on the last rank: weights, state and step count unchanged everywhere (the next good
     * step still matches the reference, so the row-wise accumulator did not move either) */
    int64_t steps = tokemb_optim_step_count(l), bad[3] = {0, 1, rank == size - 1 ? V : 0};
    float g3[3 * 64] = {0.5f};
    check_bad_id(tokemb_mpi_optim_step(t, bad, 3, g3), V, "step");
    CHECK(tokemb_optim_step_count(l) == steps, "a failed step moved the counter");
    CHECK(shard_equals(t, tokemb_table_data(full), tokemb_table_data(l)), "weights changed by a failed step");
    /* a frozen shard on the last rank: TOKEMB_READ_ONLY everywhere, no shard steps */
    if (rank == size - 1) tokemb_table_set_param(l, TOKEMB_FROZEN, 1);
    st = tokemb_mpi_optim_step(t, bad, 2, g3);
    CHECK(st == TOKEMB_READ_ONLY && strstr(tokemb_mpi_last_error(), "frozen") != NULL, "frozen: %d '%s'", (int)st,
          tokemb_mpi_last_error());
    CHECK(tokemb_optim_step_count(l) == steps, "a refused step moved the counter");
    CHECK(shard_equals(t, tokemb_table_data(full), tokemb_table_data(l)), "weights changed by a refused step");
    tokemb_table_set_param(l, TOKEMB_FROZEN, 0);
    tk_mpi_batch b;
    tk_mpi_batch_make(&b, V, D, seed * 10 + 7);
    tokemb_optim_step(full, b.all_ids, b.total, b.all_g);
    st = tokemb_mpi_optim_step(t, b.ids, b.n, b.g);
    CHECK(st == TOKEMB_OK && shard_equals(t, tokemb_table_data(full), tokemb_table_data(l)),
          "step after a failure (kind %d): %s", (int)kind, tokemb_mpi_last_error());
    tk_mpi_batch_free(&b);
    if (kind == TOKEMB_OPTIM_ROWWISE_ADAGRAD) {
        /* the shard stepped behind the sharded table's back: its accumulator is out of step */
        tokemb_optim_step(l, NULL, 0, NULL);
        st = tokemb_mpi_optim_step(t, NULL, 0, NULL);
        CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), "only through tokemb_mpi_optim_step"),
              "stepped outside: %d '%s'", (int)st, tokemb_mpi_last_error());
        /* selecting the optimizer again starts a fresh accumulator, as the core's */
        tokemb_optim_select(l, kind);
        tokemb_optim_select(full, kind);
        set_both(l, full, TOKEMB_OPTIM_LR, 0.5);
        tk_mpi_batch_make(&b, V, D, seed * 10 + 8);
        tokemb_optim_step(full, b.all_ids, b.total, b.all_g);
        st = tokemb_mpi_optim_step(t, b.ids, b.n, b.g);
        CHECK(st == TOKEMB_OK && shard_equals(t, tokemb_table_data(full), tokemb_table_data(l)),
              "step after re-selecting: %s", tokemb_mpi_last_error());
        tk_mpi_batch_free(&b);
    }
    tokemb_table_free(full);
    tokemb_mpi_table_free(t);
}

/* Row-wise Adagrad's row term needs the core's left-to-right double sum over all columns, not per-rank
 * partial sums added afterwards: row g = (12, 2^-9, 2^-9, 0 ..., then 2^-24 in columns 16..63), D = 64.
 * Left to right, ss = 144 + 2^-17 exactly (12^2 + 2 * 2^-18) and every later 2^-48 is below half an ulp
 * of ss, so ss / 64 = 2.25 + 2^-23 is exactly halfway between two floats and rounds to even, 2.25. A
 * rank holding 16 or more of the tiny columns would sum them first (>= 2^-44, two ulps) and round up
 * to 2.25 + 2^-22, whose sqrtf differs from 1.5: the weights would differ. */
static void test_rowwise_fold(void) {
    const int64_t V = 3, D = 64;
    tokemb_table *full;
    tokemb_mpi_table *t = make_tables(V, D, &full);
    tokemb_table *l = tokemb_mpi_table_local(t);
    tokemb_optim_select(l, TOKEMB_OPTIM_ROWWISE_ADAGRAD);
    tokemb_optim_select(full, TOKEMB_OPTIM_ROWWISE_ADAGRAD);
    set_both(l, full, TOKEMB_OPTIM_LR, 0.5);
    float g[64] = {12.0f, 0x1p-9f, 0x1p-9f};
    for (int c = 16; c < 64; c++) g[c] = 0x1p-24f;
    int64_t id = 1;
    CHECK(tokemb_optim_step(full, &id, 1, g) == TOKEMB_OK, "reference");
    int32_t st = tokemb_mpi_optim_step(t, &id, rank == 0 ? 1 : 0, g);
    CHECK(st == TOKEMB_OK && shard_equals(t, tokemb_table_data(full), tokemb_table_data(l)),
          "row-wise Adagrad's row sum is not the core's fold: %s", tokemb_mpi_last_error());
    tokemb_table_free(full);
    tokemb_mpi_table_free(t);
}

static void test_create_errors(void) {
    tokemb_mpi_table *t = NULL;
    /* fewer dims than ranks; fewer rows than ranks is fine */
    if (size > 1) {
        int32_t st = tokemb_mpi_table_create(MPI_COMM_WORLD, 40, size - 1, TOKEMB_MPI_COLUMN, &t);
        CHECK(st == TOKEMB_INVALID_ARGUMENT && t == NULL &&
                  strstr(tokemb_mpi_last_error(), "is smaller than the") != NULL,
              "dim < ranks: %d '%s'", (int)st, tokemb_mpi_last_error());
    }
    int32_t st = tokemb_mpi_table_create(MPI_COMM_WORLD, 1, 8, TOKEMB_MPI_COLUMN, &t);
    CHECK(st == TOKEMB_OK, "one row: %s", tokemb_mpi_last_error());
    tokemb_mpi_table_free(t);
    t = NULL;
    /* the last rank asks for another sharding */
    st = tokemb_mpi_table_create(MPI_COMM_WORLD, 40, 8,
                                 rank == size - 1 && size > 1 ? TOKEMB_MPI_ROW : TOKEMB_MPI_COLUMN, &t);
    if (size > 1) {
        CHECK(st == TOKEMB_INVALID_ARGUMENT && t == NULL, "sharding mismatch: %d", (int)st);
        char want[96];
        snprintf(want, sizeof want, "rank %d: (rows, dim, sharding) = (40, 8, 0) differs from rank 0's (40, 8, 2)",
                 size - 1);
        CHECK(strstr(tokemb_mpi_last_error(), want) != NULL, "'%s'", tokemb_mpi_last_error());
    } else {
        tokemb_mpi_table_free(t);
    }
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    const int64_t shapes[4][2] = {{37, 7}, {2, 13}, {23, 64}, {300, 5}};
    unsigned seed = 1;
    for (int k = 0; k < 4; k++) {
        int64_t V = shapes[k][0], D = shapes[k][1];
        test_layout(V, D);
        test_lookup(V, D, seed++);
        test_bags(V, D, seed++);
        test_grad(V, D, seed++);
        for (int32_t kind = TOKEMB_OPTIM_SGD; kind <= TOKEMB_OPTIM_SPARSE_ADAM; kind++) test_optim(kind, V, D, seed++);
    }
    test_rowwise_fold();
    test_create_errors();
    return tk_mpi_finish();
}
