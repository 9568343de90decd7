/* tm_pipeline.c - the pipelined lookup of K batches (tokemb_mpi_lookup_batches): every batch's plan is
 * made and agreed up front, then the exchanges run as non-blocking MPI_Ialltoallv so that batch b+1's
 * ids and batch b-1's rows travel while batch b's requested rows are gathered from the local shard.
 *
 * The same pipeline serves the pooled bags: each batch is pooled (into private buffers) as soon as its
 * rows are here, overlapping the later batches' exchanges.
 *
 * Order of a call: (1) local validation of every batch and the agreement on K, (2) the per-owner
 * de-duplication of every batch (tm_plan_local), agreed, (3) one MPI_Alltoall of all K x P counts and
 * the receive buffers, agreed, (4) the pipeline, (5) a final agreement on the pipeline's outcome, then
 * the outputs are assembled. Nothing is written to any out[b] before (5) succeeds on every rank. */
#include "tm_internal.h"
#include "tm_shared.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Rows gathered between two MPI_Test calls on the outstanding exchanges (Open MPI's shared-memory
 * transport progresses a non-blocking collective only inside MPI calls). */
#define TM_PIPE_CHUNK 1024

typedef struct {
    tm_plan p;
    int *fcnt;    /* [4P] the plan's counts and displacements in floats (rcount, rdispl, scount, sdispl) x dim */
    float *reply; /* [n_recv][dim] rows other ranks asked of me */
    float *rows;  /* [n_uniq][dim] the distinct rows of my batch, plan order */
} tm_stage;

static void tm_stage_free(tm_stage *s) {
    tm_plan_free(&s->p);
    free(s->fcnt);
    free(s->reply);
    free(s->rows);
    memset(s, 0, sizeof *s);
}

/* Gathers the requested rows of stage s from the shard in chunks, driving the outstanding requests. */
static int32_t tm_pipe_gather(tokemb_mpi_table *t, tm_stage *s, MPI_Request *req, int nreq, char *msg) {
    size_t D = (size_t)t->dim;
    for (size_t at = 0; at < s->p.n_recv; at += TM_PIPE_CHUNK) {
        size_t m = s->p.n_recv - at < TM_PIPE_CHUNK ? s->p.n_recv - at : TM_PIPE_CHUNK;
        int32_t st = tokemb_lookup(t->local, s->p.recv_ids + at, m, s->reply + at * D);
        if (st != TOKEMB_OK) return tm_fail(st, msg, "local shard: %s", tokemb_last_error());
        int flag;
        MPI_Testall(nreq, req, &flag, MPI_STATUSES_IGNORE);
    }
    return TOKEMB_OK;
}

/* What a pipelined collective does with each batch beyond fetching its distinct rows. */
typedef struct {
    /* local checks of batch b beyond its ids (NULL: none); called only while every check passed */
    int32_t (*check)(void *ctx, size_t b, char *msg);
    /* batch b's rows arrived, inside the pipeline (NULL: nothing): local work into private buffers */
    int32_t (*done)(void *ctx, const tokemb_mpi_table *t, size_t b, const tm_plan *p, float *rows, char *msg);
    /* every rank succeeded: write batch b's output */
    void (*commit)(void *ctx, const tokemb_mpi_table *t, size_t b, const tm_plan *p, const float *rows);
} tm_pipe_ops;

/* Collective: the pipeline over k batches. st/msg: the caller's top-level checks (agreed with the
 * rest); bufs[b]: the buffer tm_check_batch requires non-NULL when n[b] > 0. */
static int32_t tm_pipe_run(tokemb_mpi_table *t, const char *fn, size_t k, const void *const *ids, int is32,
                           const size_t *n, const void *const *bufs, int32_t st, char *msg, const tm_pipe_ops *ops,
                           void *ctx) {
    int P = t->size;
    size_t D = (size_t)t->dim;
    /* every rank must bring the same K (the pipeline's collectives are matched batch by batch) */
    uint64_t k0 = (uint64_t)k;
    int rc = MPI_Bcast(&k0, 1, MPI_UINT64_T, 0, t->comm);
    if (rc != MPI_SUCCESS && st == TOKEMB_OK) st = tm_mpi_status(rc, fn, "MPI_Bcast", msg);
    if (st == TOKEMB_OK && k0 != (uint64_t)k)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "k = %zu batches differs from rank 0's %llu", k,
                     (unsigned long long)k0);
    if (st == TOKEMB_OK && k > (size_t)INT_MAX / (size_t)P)
        st = tm_fail(TOKEMB_OVERFLOW, msg, "k = %zu batches on %d ranks exceed MPI's int counts", k, P);
    for (size_t b = 0; st == TOKEMB_OK && b < k; b++) {
        char why[TM_MSG];
        st = tm_check_batch(t, ids[b], is32, n[b], bufs[b], "out", why);
        if (st == TOKEMB_OK && ops->check) st = ops->check(ctx, b, why);
        if (st != TOKEMB_OK) snprintf(msg, TM_MSG, "batch %zu: %.450s", b, why);
    }
    tm_stage *s = NULL;
    int *cnt = NULL; /* [2][K][P]: send counts per (destination, batch), then receive counts */
    if (st == TOKEMB_OK) {
        s = calloc(k ? k : 1, sizeof *s);
        cnt = malloc((k ? k : 1) * (size_t)P * 2 * sizeof *cnt);
        if (!s || !cnt) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    for (size_t b = 0; st == TOKEMB_OK && b < k; b++) st = tm_plan_local(t, ids[b], is32, n[b], &s[b].p, msg);
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);

    /* every batch's counts in one exchange; then the receive buffers, agreed */
    if (st == TOKEMB_OK) {
        for (int r = 0; r < P; r++)
            for (size_t b = 0; b < k; b++) cnt[(size_t)r * k + b] = s[b].p.scount[r];
        rc = MPI_Alltoall(cnt, (int)k, MPI_INT, cnt + k * (size_t)P, (int)k, MPI_INT, t->comm);
        st = tm_mpi_status(rc, fn, "MPI_Alltoall", msg);
        for (size_t b = 0; st == TOKEMB_OK && b < k; b++) {
            tm_plan *p = &s[b].p;
            size_t total = 0;
            for (int r = 0; r < P; r++) {
                p->rcount[r] = cnt[k * (size_t)P + (size_t)r * k + b];
                p->rdispl[r] = (int)total;
                total += (size_t)p->rcount[r];
            }
            if (total > (size_t)INT_MAX / D) {
                st = tm_fail(TOKEMB_OVERFLOW, msg, "batch %zu: %zu requested rows of dim %zu exceed MPI's int counts",
                             b, total, D);
                break;
            }
            p->n_recv = total;
            p->recv_ids = malloc((total ? total : 1) * sizeof *p->recv_ids);
            s[b].reply = malloc((total ? total : 1) * D * sizeof *s[b].reply);
            s[b].rows = malloc((p->n_uniq ? p->n_uniq : 1) * D * sizeof *s[b].rows);
            s[b].fcnt = malloc((size_t)P * 4 * sizeof *s[b].fcnt);
            if (!p->recv_ids || !s[b].reply || !s[b].rows || !s[b].fcnt) {
                st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
                break;
            }
            for (int r = 0; r < P; r++) {
                s[b].fcnt[r] = p->rcount[r] * (int)D;
                s[b].fcnt[P + r] = p->rdispl[r] * (int)D;
                s[b].fcnt[2 * P + r] = p->scount[r] * (int)D;
                s[b].fcnt[3 * P + r] = p->sdispl[r] * (int)D;
            }
        }
        st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    }

    /* the pipeline: req[0] = ids of batch b+1, req[1] = rows of batch b-1 (then b). A failure inside
     * it does not stop the exchanges (every rank must post the same collectives); the first one is
     * kept and agreed at the end. */
    if (st == TOKEMB_OK && k > 0) {
        int32_t first = TOKEMB_OK;
        char scratch[TM_MSG]; /* messages after the first failure */
        MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
#define TM_PIPE_MPI(call, what)                                                                  \
    do {                                                                                         \
        int rc_ = (call);                                                                        \
        if (rc_ != MPI_SUCCESS && first == TOKEMB_OK) first = tm_mpi_status(rc_, fn, what, msg); \
    } while (0)
        tm_plan *p0 = &s[0].p;
        TM_PIPE_MPI(MPI_Ialltoallv(p0->send_ids, p0->scount, p0->sdispl, MPI_INT64_T, p0->recv_ids, p0->rcount,
                                   p0->rdispl, MPI_INT64_T, t->comm, &req[0]),
                    "MPI_Ialltoallv (ids)");
        for (size_t b = 0; b < k; b++) {
            TM_PIPE_MPI(MPI_Wait(&req[0], MPI_STATUS_IGNORE), "MPI_Wait (ids)");
            if (b + 1 < k) {
                tm_plan *q = &s[b + 1].p;
                TM_PIPE_MPI(MPI_Ialltoallv(q->send_ids, q->scount, q->sdispl, MPI_INT64_T, q->recv_ids, q->rcount,
                                           q->rdispl, MPI_INT64_T, t->comm, &req[0]),
                            "MPI_Ialltoallv (ids)");
            }
            int32_t gs = tm_pipe_gather(t, &s[b], req, 2, first == TOKEMB_OK ? msg : scratch);
            if (gs != TOKEMB_OK && first == TOKEMB_OK) first = gs;
            TM_PIPE_MPI(MPI_Wait(&req[1], MPI_STATUS_IGNORE), "MPI_Wait (rows)");
            if (b > 0) { /* batch b-1's replies have left */
                free(s[b - 1].reply);
                s[b - 1].reply = NULL;
            }
            int *f = s[b].fcnt;
            TM_PIPE_MPI(MPI_Ialltoallv(s[b].reply, f, f + P, MPI_FLOAT, s[b].rows, f + 2 * P, f + 3 * P, MPI_FLOAT,
                                       t->comm, &req[1]),
                        "MPI_Ialltoallv (rows)");
            /* batch b-1's rows are here: its local work overlaps batch b's rows and b+1's ids */
            if (b > 0 && ops->done) {
                gs = ops->done(ctx, t, b - 1, &s[b - 1].p, s[b - 1].rows, first == TOKEMB_OK ? msg : scratch);
                if (gs != TOKEMB_OK && first == TOKEMB_OK) first = gs;
            }
        }
        TM_PIPE_MPI(MPI_Wait(&req[1], MPI_STATUS_IGNORE), "MPI_Wait (rows)");
        if (ops->done) {
            int32_t gs = ops->done(ctx, t, k - 1, &s[k - 1].p, s[k - 1].rows, first == TOKEMB_OK ? msg : scratch);
            if (gs != TOKEMB_OK && first == TOKEMB_OK) first = gs;
        }
#undef TM_PIPE_MPI
        st = tm_agree(t->comm, t->rank, P, fn, first, msg);
    }

    if (st == TOKEMB_OK)
        for (size_t b = 0; b < k; b++) ops->commit(ctx, t, b, &s[b].p, s[b].rows);
    for (size_t b = 0; s && b < k; b++) tm_stage_free(&s[b]);
    free(s);
    free(cnt);
    return st;
}

/* ---- lookup: the rows themselves, written at commit ---- */

typedef struct {
    const size_t *n;
    float *const *out;
} tm_lookup_ctx;

static void tm_lookup_commit(void *ctx, const tokemb_mpi_table *t, size_t b, const tm_plan *p, const float *rows) {
    const tm_lookup_ctx *c = ctx;
    size_t D = (size_t)t->dim;
    for (size_t i = 0; i < c->n[b]; i++) memcpy(c->out[b] + i * D, rows + p->slot[i] * D, D * sizeof(float));
}

static int32_t tm_lookup_batches(tokemb_mpi_table *t, const char *fn, size_t k, const void *const *ids, int is32,
                                 const size_t *n, float *const *out) {
    int32_t entry = tm_enter_rows(t, fn);
    if (entry != TOKEMB_OK) return entry;
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    if (k > 0 && (!ids || !n || !out))
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "ids, n or out is NULL with k = %zu", k);
    static const tm_pipe_ops ops = {NULL, NULL, tm_lookup_commit};
    tm_lookup_ctx c = {n, out};
    return tm_pipe_run(t, fn, k, ids, is32, n, (const void *const *)out, st, msg, &ops, &c);
}

int32_t tokemb_mpi_lookup_batches(tokemb_mpi_table *t, size_t k, const int64_t *const *ids, const size_t *n,
                                  float *const *out) {
    return tm_lookup_batches(t, "tokemb_mpi_lookup_batches", k, (const void *const *)ids, 0, n, out);
}

int32_t tokemb_mpi_lookup_batches_i32(tokemb_mpi_table *t, size_t k, const int32_t *const *ids, const size_t *n,
                                      float *const *out) {
    return tm_lookup_batches(t, "tokemb_mpi_lookup_batches_i32", k, (const void *const *)ids, 1, n, out);
}

/* ---- pooled bags: each batch pooled (the core's kernels, input order) as soon as its rows are here,
 * into private buffers, copied out at commit ---- */

typedef struct {
    const size_t *n, *n_bags;
    const int64_t *const *offsets;
    int32_t mode;
    const float *const *w; /* NULL: no weights */
    float *const *out;
    float **pooled; /* [k] */
} tm_bags_ctx;

static int32_t tm_bags_check(void *ctx, size_t b, char *msg) {
    const tm_bags_ctx *c = ctx;
    if (!c->offsets[b]) return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "offsets is NULL");
    if (c->n_bags[b] > 0 && !c->out[b])
        return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "out is NULL with n_bags = %zu", c->n_bags[b]);
    return tm_check_bags(c->offsets[b], c->n[b], c->n_bags[b], c->mode, c->w ? c->w[b] : NULL, msg);
}

static int32_t tm_bags_done(void *ctx, const tokemb_mpi_table *t, size_t b, const tm_plan *p, float *rows, char *msg) {
    tm_bags_ctx *c = ctx;
    size_t nb = c->n_bags[b];
    c->pooled[b] = malloc((nb ? nb : 1) * (size_t)t->dim * sizeof(float));
    if (!c->pooled[b]) return tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    return tm_pool(t, rows, p->n_uniq, p->slot, c->n[b], c->offsets[b], nb, c->mode, c->w ? c->w[b] : NULL,
                   c->pooled[b], msg);
}

static void tm_bags_commit(void *ctx, const tokemb_mpi_table *t, size_t b, const tm_plan *p, const float *rows) {
    (void)p;
    (void)rows;
    const tm_bags_ctx *c = ctx;
    if (c->n_bags[b]) memcpy(c->out[b], c->pooled[b], c->n_bags[b] * (size_t)t->dim * sizeof(float));
}

static int32_t tm_bags_batches(tokemb_mpi_table *t, const char *fn, size_t k, const void *const *ids, int is32,
                               const size_t *n, const int64_t *const *offsets, const size_t *n_bags, int32_t mode,
                               const float *const *w, float *const *out) {
    int32_t entry = tm_enter_rows(t, fn);
    if (entry != TOKEMB_OK) return entry;
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    tm_bags_ctx c = {n, n_bags, offsets, mode, w, out, NULL};
    if (k > 0 && (!ids || !n || !offsets || !n_bags || !out))
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "ids, n, offsets, n_bags or out is NULL with k = %zu", k);
    else if (!(c.pooled = calloc(k ? k : 1, sizeof *c.pooled))) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    static const tm_pipe_ops ops = {tm_bags_check, tm_bags_done, tm_bags_commit};
    /* the ids themselves stand for the companion buffer: out is checked by tm_check_bags */
    st = tm_pipe_run(t, fn, k, ids, is32, n, ids, st, msg, &ops, &c);
    for (size_t b = 0; c.pooled && b < k; b++) free(c.pooled[b]);
    free(c.pooled);
    return st;
}

int32_t tokemb_mpi_lookup_bags_batches(tokemb_mpi_table *t, size_t k, const int64_t *const *ids, const size_t *n,
                                       const int64_t *const *offsets, const size_t *n_bags, int32_t mode,
                                       const float *const *per_sample_weights, float *const *out) {
    return tm_bags_batches(t, "tokemb_mpi_lookup_bags_batches", k, (const void *const *)ids, 0, n, offsets, n_bags,
                           mode, per_sample_weights, out);
}

int32_t tokemb_mpi_lookup_bags_batches_i32(tokemb_mpi_table *t, size_t k, const int32_t *const *ids, const size_t *n,
                                           const int64_t *const *offsets, const size_t *n_bags, int32_t mode,
                                           const float *const *per_sample_weights, float *const *out) {
    return tm_bags_batches(t, "tokemb_mpi_lookup_bags_batches_i32", k, (const void *const *)ids, 1, n, offsets, n_bags,
                           mode, per_sample_weights, out);
}
