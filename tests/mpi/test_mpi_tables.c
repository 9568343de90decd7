/* mpirun -np 1..4: TABLE sharding (tokemb_mpi_tables). The greedy placement against golden owners
 * derived by hand from the documented rule; then, for a collection of 7 tables (more tables than ranks)
 * and of 2 tables (fewer tables than ranks at np 3 and 4: idle ranks), every collective against the core
 * on each whole table, bit for bit: lookups (int64 / int32), pooled bags (SUM, weighted SUM, MEAN, MAX),
 * owner gradients and fused optimizer steps (a different optimizer per table) over the rank-ordered
 * concatenation of every rank's batch; and the faults: an id outside a table on one rank, malformed
 * offsets, ranks disagreeing at create, a missing optimizer, a NULL gradient buffer on an owner - every
 * rank gets the same status and message and nothing is written anywhere. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_mpi_test.h"

#define MAXT 8
#define MAXN 64

static float value(size_t k, int64_t g, int64_t c) {
    return sinf((float)(g * 31 + c * 7 + (int64_t)k * 101) * 0.37f) * 3.3f;
}

/* The 7 shapes of the placement example: costs (rows * dim) 800, 3200, 4000, 21, 1024, 800, 600. */
static const int64_t R7[7] = {100, 50, 1000, 7, 64, 10, 300}, D7[7] = {8, 64, 4, 3, 16, 80, 2};

/* Golden owners from the rule (decreasing cost, equal costs by lower index, to the least-loaded rank,
 * equal loads to the lower rank), worked by hand. P = 3: table 2 (4000) -> 0, 1 (3200) -> 1,
 * 4 (1024) -> 2, 0 (800) -> 2 (load 1824), 5 (800) -> 2 (2624), 6 (600) -> 2 (3224), 3 (21) -> 1. */
static const int32_t GOLD7[5][7] = {
    {0, 0, 0, 0, 0, 0, 0}, {0, 1, 0, 1, 1, 1, 0}, {2, 1, 0, 1, 2, 2, 2}, {3, 1, 0, 3, 2, 3, 2}, {3, 1, 0, 4, 2, 4, 3}};

static void test_plan(void) {
    int32_t owner[MAXT];
    for (int32_t P = 1; P <= 5; P++) {
        CHECK(tokemb_mpi_tables_plan(7, R7, D7, P, owner) == TOKEMB_OK, "%s", tokemb_mpi_last_error());
        CHECK(memcmp(owner, GOLD7[P - 1], sizeof GOLD7[0]) == 0, "placement on %d ranks", (int)P);
    }
    /* equal costs: the lower table index is placed first (TorchRec's pop order would swap 0 and 1) */
    const int64_t rt[3] = {5, 5, 3}, dt[3] = {4, 4, 1};
    CHECK(tokemb_mpi_tables_plan(3, rt, dt, 2, owner) == TOKEMB_OK && owner[0] == 0 && owner[1] == 1 && owner[2] == 0,
          "tie rule: %d %d %d", (int)owner[0], (int)owner[1], (int)owner[2]);
    /* fewer tables than ranks: 3 tables on 5 ranks, ranks 3 and 4 idle */
    CHECK(tokemb_mpi_tables_plan(3, R7, D7, 5, owner) == TOKEMB_OK && owner[0] == 2 && owner[1] == 1 && owner[2] == 0,
          "3 tables on 5 ranks");
    /* bad shapes: nothing written, the table named */
    int64_t bad_d[7];
    memcpy(bad_d, D7, sizeof bad_d);
    bad_d[4] = 0;
    owner[0] = -9;
    CHECK(tokemb_mpi_tables_plan(7, R7, bad_d, 2, owner) == TOKEMB_INVALID_ARGUMENT && owner[0] == -9, "dim 0");
    CHECK(strstr(tokemb_mpi_last_error(), "table 4: rows 64 and dim 0 must be >= 1") != NULL, "'%s'",
          tokemb_mpi_last_error());
    /* each fits alone (4 bytes a float), the two together overflow int64; one alone too large */
    int64_t huge[2] = {INT64_MAX / 4, INT64_MAX / 4}, one[2] = {1, 1}, too[1] = {INT64_MAX / 2};
    CHECK(tokemb_mpi_tables_plan(1, huge, one, 2, owner) == TOKEMB_OK, "one huge table: %s", tokemb_mpi_last_error());
    CHECK(tokemb_mpi_tables_plan(2, huge, one, 2, owner) == TOKEMB_OVERFLOW, "overflow");
    CHECK(strstr(tokemb_mpi_last_error(), "table 1: the tables' total size in bytes overflows int64") != NULL, "'%s'",
          tokemb_mpi_last_error());
    CHECK(tokemb_mpi_tables_plan(1, too, one, 2, owner) == TOKEMB_OVERFLOW, "overflow of one table");
    CHECK(tokemb_mpi_tables_plan(7, R7, D7, 0, owner) == TOKEMB_INVALID_ARGUMENT, "0 ranks");
    CHECK(tokemb_mpi_tables_plan(0, R7, D7, 2, owner) == TOKEMB_INVALID_ARGUMENT, "0 tables");
}

/* A collection with every owner's tables filled with value(), and whole core copies on every rank. */
typedef struct {
    size_t T;
    const int64_t *R, *D;
    tokemb_mpi_tables *t;
    tokemb_table *full[MAXT];
} coll_t;

static int make_coll(coll_t *c, size_t T, const int64_t *R, const int64_t *D) {
    c->T = T;
    c->R = R;
    c->D = D;
    c->t = NULL;
    int32_t st = tokemb_mpi_tables_create(MPI_COMM_WORLD, T, R, D, &c->t);
    CHECK(st == TOKEMB_OK, "create: %s", tokemb_mpi_last_error());
    if (st != TOKEMB_OK) return 0;
    int32_t gold[MAXT];
    tokemb_mpi_tables_plan(T, R, D, size, gold);
    CHECK(tokemb_mpi_tables_count(c->t) == (int64_t)T, "count");
    for (size_t k = 0; k < T; k++) {
        CHECK(tokemb_mpi_tables_owner(c->t, k) == gold[k], "owner of table %zu", k);
        CHECK(tokemb_mpi_tables_rows(c->t, k) == R[k] && tokemb_mpi_tables_dim(c->t, k) == D[k], "shape %zu", k);
        tokemb_table *l = tokemb_mpi_tables_local(c->t, k);
        CHECK((l != NULL) == (gold[k] == rank), "local table %zu on rank %d", k, rank);
        tokemb_table_create(R[k], D[k], TOKEMB_F32, &c->full[k]);
        for (int64_t g = 0; g < R[k]; g++)
            for (int64_t j = 0; j < D[k]; j++) tokemb_table_data(c->full[k])[g * D[k] + j] = value(k, g, j);
        if (l) memcpy(tokemb_table_data(l), tokemb_table_data(c->full[k]), (size_t)(R[k] * D[k]) * sizeof(float));
    }
    CHECK(tokemb_mpi_tables_owner(c->t, T) == -1 && tokemb_mpi_tables_local(c->t, T) == NULL &&
              tokemb_mpi_tables_rows(c->t, T) == -1,
          "k out of range");
    return 1;
}

static void free_coll(coll_t *c) {
    for (size_t k = 0; k < c->T; k++) tokemb_table_free(c->full[k]);
    tokemb_mpi_tables_free(c->t);
}

/* One rank's batch over every table: ids (int64 and int32), CSR bags, weights, output gradients; and for
 * each table the concatenation of every rank's ids and gradients (rank order). */
typedef struct {
    int64_t ids[MAXT][MAXN];
    int32_t ids32[MAXT][MAXN];
    int64_t off[MAXT][MAXN + 1];
    float w[MAXT][MAXN];
    float *g[MAXT];
    size_t n[MAXT], nb[MAXT];
    int64_t *all_ids[MAXT];
    float *all_g[MAXT];
    size_t total[MAXT];
} batch_t;

/* The rank-order concatenation of every rank's ids[n] and rows[n][D]: *all_ids[total], *all_rows[total][D]
 * (malloc'ed). Returns total. */
static size_t concat(const int64_t *ids, const float *rows, size_t n, int64_t D, int64_t **all_ids, float **all_rows) {
    int cn = (int)n, ns[16], nd[16], gs[16], gd[16], tn = 0;
    MPI_Allgather(&cn, 1, MPI_INT, ns, 1, MPI_INT, MPI_COMM_WORLD);
    for (int r = 0; r < size; r++) {
        nd[r] = tn;
        gs[r] = ns[r] * (int)D;
        gd[r] = tn * (int)D;
        tn += ns[r];
    }
    *all_ids = malloc((size_t)(tn + 1) * sizeof **all_ids);
    *all_rows = malloc((size_t)(tn + 1) * (size_t)D * sizeof **all_rows);
    MPI_Allgatherv(ids, cn, MPI_INT64_T, *all_ids, ns, nd, MPI_INT64_T, MPI_COMM_WORLD);
    MPI_Allgatherv(rows, cn * (int)D, MPI_FLOAT, *all_rows, gs, gd, MPI_FLOAT, MPI_COMM_WORLD);
    return (size_t)tn;
}

static void make_batch(batch_t *b, const coll_t *c, unsigned seed) {
    unsigned s = seed * 7919u + (unsigned)rank * 104729u + 11u;
    for (size_t k = 0; k < c->T; k++) {
        /* rank 1 brings nothing for table 1; sizes differ by rank and table */
        b->nb[k] = (rank == 1 && k == 1) ? 0 : 1 + lcg(&s) % 6;
        b->n[k] = 0;
        b->off[k][0] = 0;
        for (size_t q = 0; q < b->nb[k]; q++) {
            size_t len = lcg(&s) % 6;
            for (size_t i = 0; i < len; i++, b->n[k]++) {
                int64_t id = (int64_t)(lcg(&s) % (unsigned)(i % 2 ? (c->R[k] < 4 ? c->R[k] : 4) : c->R[k]));
                b->ids[k][b->n[k]] = id;
                b->ids32[k][b->n[k]] = (int32_t)id;
                b->w[k][b->n[k]] = (float)(lcg(&s) % 1000) / 333.0f - 1.0f;
            }
            b->off[k][q + 1] = (int64_t)b->n[k];
        }
        size_t D = (size_t)c->D[k];
        b->g[k] = malloc((b->n[k] + 1) * D * sizeof(float));
        for (size_t i = 0; i < b->n[k] * D; i++) b->g[k][i] = (float)((int)(lcg(&s) % 2001) - 1000) / 311.0f;
        b->total[k] = concat(b->ids[k], b->g[k], b->n[k], c->D[k], &b->all_ids[k], &b->all_g[k]);
    }
}

static void free_batch(batch_t *b, size_t T) {
    for (size_t k = 0; k < T; k++) {
        free(b->g[k]);
        free(b->all_ids[k]);
        free(b->all_g[k]);
    }
}

/* per-table pointer arrays, as a caller builds them */
typedef struct {
    const int64_t *ids[MAXT];
    const int32_t *ids32[MAXT];
    const int64_t *off[MAXT];
    const float *w[MAXT], *g[MAXT];
    float *out[MAXT];
} ptrs_t;

static void make_ptrs(ptrs_t *p, batch_t *b, size_t T, float *outbuf, size_t stride) {
    for (size_t k = 0; k < T; k++) {
        p->ids[k] = b->ids[k];
        p->ids32[k] = b->ids32[k];
        p->off[k] = b->off[k];
        p->w[k] = k % 2 ? b->w[k] : NULL; /* weights on odd tables only */
        p->g[k] = b->g[k];
        p->out[k] = outbuf + k * stride;
    }
}

#define STRIDE (MAXN * 80)

static int all_equal(const float *a, float v, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (a[i] != v) return 0;
    return 1;
}

static void test_lookups(coll_t *c, unsigned seed) {
    batch_t b;
    make_batch(&b, c, seed);
    ptrs_t p;
    float *out = malloc(MAXT * STRIDE * sizeof *out), *ref = malloc(STRIDE * sizeof *ref);
    make_ptrs(&p, &b, c->T, out, STRIDE);
    for (int is32 = 0; is32 <= 1; is32++) {
        int32_t st = is32 ? tokemb_mpi_tables_lookup_i32(c->t, p.ids32, b.n, p.out)
                          : tokemb_mpi_tables_lookup(c->t, p.ids, b.n, p.out);
        CHECK(st == TOKEMB_OK, "lookup: %s", tokemb_mpi_last_error());
        for (size_t k = 0; k < c->T; k++) {
            tokemb_lookup(c->full[k], b.ids[k], b.n[k], ref);
            CHECK(memcmp(p.out[k], ref, b.n[k] * (size_t)c->D[k] * sizeof *ref) == 0, "lookup table %zu (i32 %d)", k,
                  is32);
        }
    }
    for (int32_t mode = TOKEMB_SUM; mode <= TOKEMB_MAX; mode++)
        for (int weighted = 0; weighted <= (mode == TOKEMB_SUM); weighted++)
            for (int is32 = 0; is32 <= 1; is32++) {
                int32_t st = is32 ? tokemb_mpi_tables_lookup_bags_i32(c->t, p.ids32, b.n, p.off, b.nb, mode,
                                                                      weighted ? p.w : NULL, p.out)
                                  : tokemb_mpi_tables_lookup_bags(c->t, p.ids, b.n, p.off, b.nb, mode,
                                                                  weighted ? p.w : NULL, p.out);
                CHECK(st == TOKEMB_OK, "bags: %s", tokemb_mpi_last_error());
                for (size_t k = 0; k < c->T; k++) {
                    tokemb_lookup_bags(c->full[k], b.ids[k], b.n[k], b.off[k], b.nb[k], mode, weighted ? p.w[k] : NULL,
                                       ref);
                    CHECK(memcmp(p.out[k], ref, b.nb[k] * (size_t)c->D[k] * sizeof *ref) == 0,
                          "bags table %zu (mode %d, weighted %d, i32 %d)", k, (int)mode, weighted, is32);
                }
            }

    /* an id outside its table on the last rank (last table, index 2): every rank fails, naming it */
    size_t kb = c->T - 1;
    for (size_t i = 0; i < MAXT * STRIDE; i++) out[i] = -7.0f;
    int64_t bad[3] = {0, 0, c->R[kb]};
    size_t nbad[MAXT];
    memcpy(nbad, b.n, sizeof nbad);
    if (rank == size - 1) {
        p.ids[kb] = bad;
        nbad[kb] = 3;
    }
    int32_t st = tokemb_mpi_tables_lookup(c->t, p.ids, nbad, p.out);
    CHECK(st == TOKEMB_OUT_OF_RANGE, "bad id: %d", (int)st);
    char want[128];
    snprintf(want, sizeof want, "rank %d: table %zu: token id %lld at index 2 is outside [0, %lld)", size - 1, kb,
             (long long)c->R[kb], (long long)c->R[kb]);
    CHECK(strstr(tokemb_mpi_last_error(), want) != NULL, "'%s' lacks '%s'", tokemb_mpi_last_error(), want);
    CHECK(all_equal(out, -7.0f, MAXT * STRIDE), "out written on a failed lookup");
    p.ids[kb] = b.ids[kb];
    /* a decreasing offset on rank 0, table 0: every rank fails, out untouched */
    int64_t bad_off[3] = {0, 2, 1};
    const int64_t *keep = p.off[0];
    size_t nb_keep = b.nb[0], n_keep = b.n[0];
    if (rank == 0) {
        p.off[0] = bad_off;
        b.nb[0] = 2;
        b.n[0] = 1;
    }
    st = tokemb_mpi_tables_lookup_bags(c->t, p.ids, b.n, p.off, b.nb, TOKEMB_MEAN, NULL, p.out);
    CHECK(st == TOKEMB_INVALID_ARGUMENT, "bad offsets: %d", (int)st);
    CHECK(strstr(tokemb_mpi_last_error(), "rank 0: table 0: offsets[2] = 1 is below offsets[1] = 2") != NULL, "'%s'",
          tokemb_mpi_last_error());
    CHECK(all_equal(out, -7.0f, MAXT * STRIDE), "out written on failed bags");
    p.off[0] = keep;
    b.nb[0] = nb_keep;
    b.n[0] = n_keep;
    /* argument faults on one rank each (the lowest failing rank is named): NULL length array on the last
     * rank, a NULL out entry with ids on rank 0, an unknown mode / weights with MEAN everywhere */
    st = tokemb_mpi_tables_lookup(c->t, p.ids, rank == size - 1 ? NULL : b.n, p.out);
    snprintf(want, sizeof want, "rank %d: n, ids or out (the per-table arrays) is NULL", size - 1);
    CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), want), "NULL n: %d '%s'", (int)st,
          tokemb_mpi_last_error());
    /* rank 0 drops the out entry of its first table with ids (if it has any): every rank fails */
    size_t kn = 0;
    while (kn + 1 < c->T && b.n[kn] == 0) kn++;
    int has = rank == 0 && b.n[kn] > 0;
    MPI_Bcast(&has, 1, MPI_INT, 0, MPI_COMM_WORLD);
    unsigned long long kn0 = kn, n0 = b.n[kn];
    MPI_Bcast(&kn0, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
    MPI_Bcast(&n0, 1, MPI_UNSIGNED_LONG_LONG, 0, MPI_COMM_WORLD);
    float *hold = p.out[kn];
    if (rank == 0 && has) p.out[kn] = NULL;
    st = tokemb_mpi_tables_lookup(c->t, p.ids, b.n, p.out);
    p.out[kn] = hold;
    if (has) {
        snprintf(want, sizeof want, "rank 0: table %llu: ids or out is NULL with n = %llu", kn0, n0);
        CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), want), "NULL out: %d '%s'", (int)st,
              tokemb_mpi_last_error());
    } else {
        for (size_t i = 0; i < MAXT * STRIDE; i++) out[i] = -7.0f; /* it succeeded: nothing to drop */
    }
    st = tokemb_mpi_tables_lookup_bags(c->t, p.ids, b.n, p.off, b.nb, 7, NULL, p.out);
    CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), "rank 0: table 0: unknown bag mode 7"),
          "mode: %d '%s'", (int)st, tokemb_mpi_last_error());
    if (c->T > 1) { /* weights on table 1 (odd tables only) */
        st = tokemb_mpi_tables_lookup_bags(c->t, p.ids, b.n, p.off, b.nb, TOKEMB_MEAN, p.w, p.out);
        CHECK(st == TOKEMB_INVALID_ARGUMENT &&
                  strstr(tokemb_mpi_last_error(), "rank 0: table 1: per_sample_weights need mode SUM, got 1"),
              "weights with MEAN: %d '%s'", (int)st, tokemb_mpi_last_error());
    }
    CHECK(all_equal(out, -7.0f, MAXT * STRIDE), "out written by a failed call");
    free(out);
    free(ref);
    free_batch(&b, c->T);
}

/* Batches of 256 ids and more per table (the de-duplication's radix sort; below 256 it compares):
 * lookups and pooled bags against the core, ids skewed to a few hot rows and spread over all. */
static void test_large(coll_t *c, unsigned seed) {
    unsigned s = seed * 7919u + (unsigned)rank * 104729u + 17u;
    int64_t *ids[MAXT], *off[MAXT];
    float *out[MAXT], *ref;
    size_t n[MAXT], nb[MAXT], most = 0;
    for (size_t k = 0; k < c->T; k++) {
        n[k] = 256 + (size_t)rank * 37 + k * 101;
        nb[k] = n[k] / 8;
        ids[k] = malloc(n[k] * sizeof(int64_t));
        off[k] = malloc((nb[k] + 1) * sizeof(int64_t));
        out[k] = malloc(n[k] * (size_t)c->D[k] * sizeof(float));
        for (size_t i = 0; i < n[k]; i++) {
            unsigned v = lcg(&s) ^ (lcg(&s) << 12);
            ids[k][i] = (int64_t)(i % 3 ? v % (uint64_t)c->R[k] : v % 5 % (uint64_t)c->R[k]);
        }
        for (size_t b = 0; b <= nb[k]; b++) off[k][b] = (int64_t)(b * 8);
        off[k][nb[k]] = (int64_t)n[k];
        if (n[k] * (size_t)c->D[k] > most) most = n[k] * (size_t)c->D[k];
    }
    ref = malloc(most * sizeof *ref);
    const int64_t *ci[MAXT], *co[MAXT];
    memcpy(ci, ids, sizeof ci);
    memcpy(co, off, sizeof co);
    CHECK(tokemb_mpi_tables_lookup(c->t, ci, n, out) == TOKEMB_OK, "large lookup: %s", tokemb_mpi_last_error());
    /* traffic: this rank sent each distinct id of each table once; the row floats all owners served
     * add up to every rank's distinct ids times the table's dim */
    uint64_t distinct = 0, want_f = 0, sent_i = 0, sent_f = 0, sums[2], all[2];
    for (size_t k = 0; k < c->T; k++) {
        char *seen = calloc((size_t)c->R[k], 1);
        for (size_t i = 0; i < n[k]; i++)
            if (!seen[ids[k][i]]) {
                seen[ids[k][i]] = 1;
                distinct++;
                want_f += (uint64_t)c->D[k];
            }
        free(seen);
    }
    CHECK(tokemb_mpi_tables_traffic(c->t, &sent_i, &sent_f) == TOKEMB_OK && sent_i == distinct,
          "sent %llu ids, %llu distinct", (unsigned long long)sent_i, (unsigned long long)distinct);
    sums[0] = want_f;
    sums[1] = sent_f;
    MPI_Allreduce(sums, all, 2, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
    CHECK(all[0] == all[1], "owners served %llu floats, %llu requested", (unsigned long long)all[1],
          (unsigned long long)all[0]);
    for (size_t k = 0; k < c->T; k++) {
        tokemb_lookup(c->full[k], ids[k], n[k], ref);
        CHECK(memcmp(out[k], ref, n[k] * (size_t)c->D[k] * sizeof *ref) == 0, "large lookup of table %zu", k);
    }
    CHECK(tokemb_mpi_tables_lookup_bags(c->t, ci, n, co, nb, TOKEMB_MEAN, NULL, out) == TOKEMB_OK, "large bags: %s",
          tokemb_mpi_last_error());
    for (size_t k = 0; k < c->T; k++) {
        tokemb_lookup_bags(c->full[k], ids[k], n[k], off[k], nb[k], TOKEMB_MEAN, NULL, ref);
        CHECK(memcmp(out[k], ref, nb[k] * (size_t)c->D[k] * sizeof *ref) == 0, "large bags of table %zu", k);
        free(ids[k]);
        free(off[k]);
        free(out[k]);
    }
    free(ref);
}

/* Each owner's gradient buffer (non-zero start) vs the core's accumulation over the concatenated batch. */
static void test_grad(coll_t *c, unsigned seed) {
    float *grads[MAXT] = {0}, *refs[MAXT] = {0};
    for (size_t k = 0; k < c->T; k++) {
        size_t len = (size_t)(c->R[k] * c->D[k]);
        refs[k] = malloc(len * sizeof(float));
        for (int64_t g = 0; g < c->R[k]; g++)
            for (int64_t j = 0; j < c->D[k]; j++) refs[k][g * c->D[k] + j] = value(k + 50, g, j);
        if (tokemb_mpi_tables_owner(c->t, k) == rank) { /* non-owners pass NULL entries */
            grads[k] = malloc(len * sizeof(float));
            memcpy(grads[k], refs[k], len * sizeof(float));
        }
    }
    for (unsigned q = 0; q < 2; q++) {
        batch_t b;
        make_batch(&b, c, seed * 3 + q);
        ptrs_t p;
        make_ptrs(&p, &b, c->T, NULL, 0);
        /* a rank that owns no table passes no gradient array at all */
        int owns = 0;
        for (size_t k = 0; k < c->T; k++) owns |= tokemb_mpi_tables_owner(c->t, k) == rank;
        int32_t st = q ? tokemb_mpi_tables_grad_accumulate_i32(c->t, p.ids32, b.n, p.g, owns ? grads : NULL)
                       : tokemb_mpi_tables_grad_accumulate(c->t, p.ids, b.n, p.g, owns ? grads : NULL);
        CHECK(st == TOKEMB_OK, "grad: %s", tokemb_mpi_last_error());
        uint64_t ti = 0, tf = 0, wi = 0, wf = 0; /* every contribution travels, none pre-summed */
        for (size_t k = 0; k < c->T; k++) {
            wi += b.n[k];
            wf += b.n[k] * (uint64_t)c->D[k];
        }
        CHECK(tokemb_mpi_tables_traffic(c->t, &ti, &tf) == TOKEMB_OK && ti == wi && tf == wf, "grad traffic %llu %llu",
              (unsigned long long)ti, (unsigned long long)tf);
        for (size_t k = 0; k < c->T; k++) {
            tokemb_grad_accumulate(c->full[k], b.all_ids[k], b.total[k], b.all_g[k], refs[k]);
            if (grads[k])
                CHECK(memcmp(grads[k], refs[k], (size_t)(c->R[k] * c->D[k]) * sizeof(float)) == 0,
                      "grad of table %zu (pass %u)", k, q);
        }
        /* faults: an id outside table 0 on rank 0; a NULL buffer on the owner of the last table */
        int64_t bad[2] = {-1, 0};
        const int64_t *keep = p.ids[0];
        size_t n_keep = b.n[0];
        if (rank == 0) {
            p.ids[0] = bad;
            b.n[0] = 2;
        }
        st = tokemb_mpi_tables_grad_accumulate(c->t, p.ids, b.n, p.g, grads);
        CHECK(st == TOKEMB_OUT_OF_RANGE && strstr(tokemb_mpi_last_error(), "rank 0: table 0: token id -1 at index 0"),
              "bad id: %d '%s'", (int)st, tokemb_mpi_last_error());
        p.ids[0] = keep;
        b.n[0] = n_keep;
        size_t kl = c->T - 1;
        float *hold = grads[kl];
        grads[kl] = NULL;
        st = tokemb_mpi_tables_grad_accumulate(c->t, p.ids, b.n, p.g, grads);
        char want[96];
        snprintf(want, sizeof want, "rank %d: table %zu: grad_tables entry is NULL",
                 (int)tokemb_mpi_tables_owner(c->t, kl), kl);
        CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), want), "NULL grad: %d '%s'", (int)st,
              tokemb_mpi_last_error());
        grads[kl] = hold;
        for (size_t k = 0; k < c->T; k++)
            if (grads[k])
                CHECK(memcmp(grads[k], refs[k], (size_t)(c->R[k] * c->D[k]) * sizeof(float)) == 0,
                      "grad of table %zu changed by a failed call", k);
        free_batch(&b, c->T);
    }
    for (size_t k = 0; k < c->T; k++) {
        free(grads[k]);
        free(refs[k]);
    }
}

/* Table k uses optimizer k % 4 (SGD, row-wise Adagrad, Adagrad, SparseAdam); 3 steps, then faults. */
static void test_optim(coll_t *c, unsigned seed) {
    /* no optimizer yet on any table: every rank fails, naming the lowest failing rank's table */
    ptrs_t p;
    batch_t b;
    make_batch(&b, c, seed);
    make_ptrs(&p, &b, c->T, NULL, 0);
    int32_t st = tokemb_mpi_tables_optim_step(c->t, p.ids, b.n, p.g);
    CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), "no optimizer selected on its owner"),
          "no optimizer: %d '%s'", (int)st, tokemb_mpi_last_error());
    free_batch(&b, c->T);
    for (size_t k = 0; k < c->T; k++) {
        int32_t kind = (int32_t)(k % 4);
        tokemb_table *l = tokemb_mpi_tables_local(c->t, k);
        tokemb_optim_select(c->full[k], kind);
        tokemb_optim_set_param_f64(c->full[k], TOKEMB_OPTIM_LR, 0.05);
        if (l) {
            tokemb_optim_select(l, kind);
            tokemb_optim_set_param_f64(l, TOKEMB_OPTIM_LR, 0.05);
        }
        if (kind == TOKEMB_OPTIM_SGD || kind == TOKEMB_OPTIM_ROWWISE_ADAGRAD) {
            tokemb_optim_set_param_f64(c->full[k], TOKEMB_OPTIM_WEIGHT_DECAY, 0.01);
            if (l) tokemb_optim_set_param_f64(l, TOKEMB_OPTIM_WEIGHT_DECAY, 0.01);
        }
    }
    for (unsigned q = 0; q < 3; q++) {
        make_batch(&b, c, seed * 10 + q);
        make_ptrs(&p, &b, c->T, NULL, 0);
        for (size_t k = 0; k < c->T; k++)
            CHECK(tokemb_optim_step(c->full[k], b.all_ids[k], b.total[k], b.all_g[k]) == TOKEMB_OK, "reference");
        st = q == 1 ? tokemb_mpi_tables_optim_step_i32(c->t, p.ids32, b.n, p.g)
                    : tokemb_mpi_tables_optim_step(c->t, p.ids, b.n, p.g);
        CHECK(st == TOKEMB_OK, "step: %s", tokemb_mpi_last_error());
        for (size_t k = 0; k < c->T; k++) {
            tokemb_table *l = tokemb_mpi_tables_local(c->t, k);
            if (!l) continue;
            CHECK(memcmp(tokemb_table_data(l), tokemb_table_data(c->full[k]),
                         (size_t)(c->R[k] * c->D[k]) * sizeof(float)) == 0,
                  "weights of table %zu after step %u", k, q);
            CHECK(tokemb_optim_step_count(l) == tokemb_optim_step_count(c->full[k]), "step count of table %zu", k);
        }
        free_batch(&b, c->T);
    }
    /* the last table FROZEN on its owner: every rank fails with READ_ONLY, naming it */
    size_t kl = c->T - 1;
    tokemb_table *ll = tokemb_mpi_tables_local(c->t, kl);
    if (ll) tokemb_table_set_param(ll, TOKEMB_FROZEN, 1);
    make_batch(&b, c, seed + 98);
    make_ptrs(&p, &b, c->T, NULL, 0);
    st = tokemb_mpi_tables_optim_step(c->t, p.ids, b.n, p.g);
    char want[96];
    snprintf(want, sizeof want, "rank %d: table %zu is FROZEN on its owner", (int)tokemb_mpi_tables_owner(c->t, kl),
             kl);
    CHECK(st == TOKEMB_READ_ONLY && strstr(tokemb_mpi_last_error(), want), "frozen: %d '%s'", (int)st,
          tokemb_mpi_last_error());
    if (ll) tokemb_table_set_param(ll, TOKEMB_FROZEN, 0);
    free_batch(&b, c->T);
    /* a bad id on the last rank: no table changes anywhere */
    make_batch(&b, c, seed + 99);
    make_ptrs(&p, &b, c->T, NULL, 0);
    int64_t bad[1] = {c->R[0] + 5};
    if (rank == size - 1) {
        p.ids[0] = bad;
        b.n[0] = 1;
    }
    st = tokemb_mpi_tables_optim_step(c->t, p.ids, b.n, p.g);
    CHECK(st == TOKEMB_OUT_OF_RANGE, "bad id in step: %d", (int)st);
    uint64_t ti = 1, tf = 1;
    CHECK(tokemb_mpi_tables_traffic(c->t, &ti, &tf) == TOKEMB_OK && ti == 0 && tf == 0, "traffic after a failure");
    CHECK(tokemb_mpi_tables_traffic(NULL, &ti, &tf) == TOKEMB_INVALID_ARGUMENT, "traffic of NULL");
    for (size_t k = 0; k < c->T; k++) {
        tokemb_table *l = tokemb_mpi_tables_local(c->t, k);
        if (!l) continue;
        CHECK(tokemb_optim_step_count(l) == 3, "step count of table %zu after a failed step", k);
        CHECK(memcmp(tokemb_table_data(l), tokemb_table_data(c->full[k]),
                     (size_t)(c->R[k] * c->D[k]) * sizeof(float)) == 0,
              "weights of table %zu changed by a failed step", k);
    }
    free_batch(&b, c->T);
}

static void test_create_faults(void) {
    tokemb_mpi_tables *t = (tokemb_mpi_tables *)&rank; /* must stay untouched */
    /* the last rank brings one table more */
    if (size > 1) {
        int32_t st = tokemb_mpi_tables_create(MPI_COMM_WORLD, rank == size - 1 ? 7 : 6, R7, D7, &t);
        char want[96];
        snprintf(want, sizeof want, "rank %d: n_tables = 7 differs from rank 0's 6", size - 1);
        CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), want), "count: %d '%s'", (int)st,
              tokemb_mpi_last_error());
        /* rank 1 has another dim for table 2 */
        int64_t d[7];
        memcpy(d, D7, sizeof d);
        if (rank == 1) d[2] = 5;
        st = tokemb_mpi_tables_create(MPI_COMM_WORLD, 7, R7, d, &t);
        CHECK(st == TOKEMB_INVALID_ARGUMENT &&
                  strstr(tokemb_mpi_last_error(),
                         "rank 1: table 2: (rows, dim) = (1000, 5) differs from rank 0's (1000, 4)"),
              "shape: %d '%s'", (int)st, tokemb_mpi_last_error());
    }
    /* a bad shape on rank 0 only: every rank fails with its message */
    int64_t r[2] = {rank == 0 ? 0 : 3, 4}, d2[2] = {2, 2};
    int32_t st = tokemb_mpi_tables_create(MPI_COMM_WORLD, 2, r, d2, &t);
    CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), "rank 0: table 0: rows 0 and dim 2"),
          "rows 0: %d '%s'", (int)st, tokemb_mpi_last_error());
    CHECK(t == (tokemb_mpi_tables *)&rank, "out written on a failed create");
    CHECK(tokemb_mpi_tables_lookup(NULL, NULL, NULL, NULL) == TOKEMB_INVALID_ARGUMENT, "NULL t");
    tokemb_mpi_tables_free(NULL);
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    test_plan();
    test_create_faults();
    static const int64_t R2[2] = {40, 9}, D2[2] = {3, 6};
    static const int64_t R1[1] = {13}, D1[1] = {5};
    static const int64_t R3[3] = {70000, 300, 1}, D3[3] = {2, 3, 4}; /* ids of 17, 9 and 0 bits */
    struct {
        size_t T;
        const int64_t *R, *D;
    } sets[4] = {{7, R7, D7}, {2, R2, D2}, {1, R1, D1}, {3, R3, D3}};
    unsigned seed = 1;
    for (int s = 0; s < 4; s++) {
        coll_t c;
        if (!make_coll(&c, sets[s].T, sets[s].R, sets[s].D)) continue;
        test_lookups(&c, seed++);
        test_large(&c, seed++);
        test_grad(&c, seed++);
        test_optim(&c, seed++);
        free_coll(&c);
    }
    /* the Fortran-handle entry point places the same way */
    tokemb_mpi_tables *t = NULL;
    CHECK(tokemb_mpi_tables_create_f(MPI_Comm_c2f(MPI_COMM_WORLD), 7, R7, D7, &t) == TOKEMB_OK, "create_f: %s",
          tokemb_mpi_last_error());
    for (size_t k = 0; t && k < 7; k++)
        CHECK(tokemb_mpi_tables_owner(t, k) == GOLD7[size - 1][k], "create_f owner %zu", k);
    tokemb_mpi_tables_free(t);
    return tk_mpi_finish();
}
