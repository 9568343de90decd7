/* tm_column.c - TOKEMB_MPI_COLUMN: every rank holds every row, rank r owns columns
 * [col0_r, col0_r + d_r) of each (tm_row_block over the dims). The collectives keep their row-sharded
 * contracts (tm_internal.h) and their exactness argument: every float operation of the core on a row
 * is per element (gathers, bag sums / means / maxima, the coalesced gradient's running sums, SGD /
 * Adagrad / SparseAdam updates), so the core run on a column slice produces exactly the bits of the
 * same columns of the core run on whole rows. The one exception is row-wise Adagrad, whose per-row
 * term mean_c(g'^2) spans every column: tm_col_rowwise_step folds it across the ranks in the core's
 * column order.
 *
 * Same shape as every collective of libtokemb_mpi: validate locally, agree (tm_agree), exchange, agree,
 * write. */
#define _GNU_SOURCE
#include "tm_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counts/displacements scaled to floats: c[r] * w[r] (w NULL: the same width `wd` for every r). */
static void tm_scale(int P, const int *cnt, const int *dsp, const int64_t *w, int64_t wd, int *out_c, int *out_d) {
    for (int r = 0; r < P; r++) {
        int64_t k = w ? w[r] : wd;
        out_c[r] = cnt[r] * (int)k;
        out_d[r] = dsp[r] * (int)k;
    }
}

/* Every rank's column block: (col0, cols) of rank r at [2r], [2r + 1]. */
static void tm_col_blocks(const tokemb_mpi_table *t, int64_t *blk) {
    for (int r = 0; r < t->size; r++) tm_row_block(t->dim, t->size, r, &blk[2 * r], &blk[2 * r + 1]);
}

/* Scatters per-owner column slices recv (owner s's block: m rows of d_s floats, starting at m * col0_s)
 * into whole rows out[m][dim]. */
static void tm_col_assemble(const tokemb_mpi_table *t, const int64_t *blk, const float *recv, size_t m, float *out) {
    size_t D = (size_t)t->dim;
    for (int s = 0; s < t->size; s++) {
        size_t c0 = (size_t)blk[2 * s], d = (size_t)blk[2 * s + 1];
        const float *src = recv + m * c0;
        for (size_t k = 0; k < m; k++) memcpy(out + k * D + c0, src + k * d, d * sizeof *out);
    }
}

/* The start of every collective here: the caller's own validation (pre_st / pre_msg), then this rank's
 * batch checks (tm_check_batch); the message lands in msg. */
static int32_t tm_col_begin(const tokemb_mpi_table *t, const void *ids, int is32, size_t n, const void *buf,
                            const char *what, int32_t pre_st, const char *pre_msg, char *msg) {
    if (pre_st != TOKEMB_OK) {
        snprintf(msg, TM_MSG, "%s", pre_msg);
        return pre_st;
    }
    return tm_check_batch(t, ids, is32, n, buf, what, msg);
}

/* Lookups and bags read the shard through the core, which would renormalise rows by the norm of this
 * rank's slice only: max_norm (a whole-row norm) is refused on a column shard. */
static int32_t tm_col_check_reads(const tokemb_mpi_table *t, int32_t st, char *msg) {
    double max_norm = 0.0;
    if (st != TOKEMB_OK || tokemb_table_get_param_f64(t->local, TOKEMB_MAX_NORM, &max_norm) != TOKEMB_OK ||
        !(max_norm > 0.0))
        return st;
    return tm_fail(TOKEMB_UNSUPPORTED, msg,
                   "the shard has max_norm %g, which renormalises whole rows: a column shard holds a slice of each",
                   max_norm);
}

static int tm_i64_pair_cmp(const void *a, const void *b) {
    const int64_t *x = a, *y = b;
    if (x[0] != y[0]) return x[0] < y[0] ? -1 : 1;
    return (x[1] > y[1]) - (x[1] < y[1]);
}

/* ---- lookup ------------------------------------------------------------------------------------
 * Plan: this rank's distinct ids (sorted; send_ids, n_uniq, slot), sent to every rank
 * (scount[r] = n_uniq); recv_ids = every rank's distinct ids in rank order (rcount/rdispl). Each rank
 * gathers its columns of all of them and returns each requester its block. */
int32_t tm_col_fetch(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const void *out,
                     int32_t pre_st, const char *pre_msg, tm_plan *p, float **rows_out) {
    char msg[TM_MSG] = "";
    int32_t st = tm_col_check_reads(t, tm_col_begin(t, ids, is32, n, out, "out", pre_st, pre_msg, msg), msg);
    memset(p, 0, sizeof *p);
    int P = t->size;
    size_t D = (size_t)t->dim, dl = (size_t)t->local_cols;
    int64_t *keys = NULL, *blk = NULL;
    if (st == TOKEMB_OK) {
        keys = malloc((n ? n : 1) * 2 * sizeof *keys);
        blk = malloc((size_t)P * 2 * sizeof *blk);
        p->slot = malloc((n ? n : 1) * sizeof *p->slot);
        p->send_ids = malloc((n ? n : 1) * sizeof *p->send_ids);
        p->scount = calloc((size_t)P * 4, sizeof(int));
        if (!keys || !blk || !p->slot || !p->send_ids || !p->scount)
            st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    if (st == TOKEMB_OK) {
        p->sdispl = p->scount + P;
        p->rcount = p->scount + 2 * P;
        p->rdispl = p->scount + 3 * P;
        for (size_t i = 0; i < n; i++) {
            keys[2 * i] = tm_id_at(ids, is32, i);
            keys[2 * i + 1] = (int64_t)i;
        }
        qsort(keys, n, 2 * sizeof *keys, tm_i64_pair_cmp);
        size_t u = 0;
        for (size_t k = 0; k < n; k++) {
            if (k == 0 || keys[2 * k] != keys[2 * (k - 1)]) p->send_ids[u++] = keys[2 * k];
            p->slot[keys[2 * k + 1]] = u - 1;
        }
        p->n_uniq = u;
        for (int r = 0; r < P; r++) p->scount[r] = (int)u; /* every rank owns a slice of every row */
        tm_col_blocks(t, blk);
    }
    free(keys);
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st != TOKEMB_OK) {
        free(blk);
        tm_plan_free(p);
        return st;
    }
    /* every rank's distinct count, then the receive side's limits and memory */
    int mine = (int)p->n_uniq, rc = MPI_Allgather(&mine, 1, MPI_INT, p->rcount, 1, MPI_INT, t->comm);
    if (rc != MPI_SUCCESS) st = tm_mpi_status(rc, fn, "MPI_Allgather", msg);
    size_t total = 0;
    for (int r = 0; st == TOKEMB_OK && r < P; r++) {
        p->rdispl[r] = (int)total;
        total += (size_t)p->rcount[r];
    }
    float *reply = NULL, *recv = NULL, *rows = NULL;
    int *cnt = NULL;
    if (st == TOKEMB_OK && total > (size_t)INT_MAX / dl)
        st = tm_fail(TOKEMB_OVERFLOW, msg, "%zu requested rows of %zu columns exceed MPI's int counts", total, dl);
    if (st == TOKEMB_OK) {
        p->n_recv = total;
        p->recv_ids = malloc((total ? total : 1) * sizeof *p->recv_ids);
        reply = malloc((total ? total : 1) * dl * sizeof *reply);
        recv = malloc((p->n_uniq ? p->n_uniq : 1) * D * sizeof *recv);
        rows = tm_scratch(t, 1, p->n_uniq * D); /* the table's, as tm_fetch's */
        cnt = malloc((size_t)P * 4 * sizeof *cnt);
        if (!p->recv_ids || !reply || !recv || !rows || !cnt) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st == TOKEMB_OK) {
        rc = MPI_Allgatherv(p->send_ids, mine, MPI_INT64_T, p->recv_ids, p->rcount, p->rdispl, MPI_INT64_T, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Allgatherv", msg), msg);
        /* every distinct id goes to every rank (each owns a slice of every row) */
        if (st == TOKEMB_OK) tm_sent(t, 0, p->n_uniq * (size_t)P, p->n_uniq * (size_t)(P - 1));
    }
    if (st == TOKEMB_OK) {
        int32_t ls = total ? tokemb_lookup(t->local, p->recv_ids, total, reply) : TOKEMB_OK;
        if (ls != TOKEMB_OK) st = tm_fail(ls, msg, "local shard: %s", tokemb_last_error());
        st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    }
    if (st == TOKEMB_OK) {
        /* to requester r: its ids' rows of my columns; from owner s: my n_uniq rows of s's columns */
        int *rcnt = cnt + 2 * P, *rdsp = cnt + 3 * P;
        tm_scale(P, p->rcount, p->rdispl, NULL, (int64_t)dl, cnt, cnt + P);
        for (int s = 0; s < P; s++) {
            rcnt[s] = (int)p->n_uniq * (int)blk[2 * s + 1];
            rdsp[s] = (int)p->n_uniq * (int)blk[2 * s];
        }
        rc = MPI_Alltoallv(reply, cnt, cnt + P, MPI_FLOAT, recv, rcnt, rdsp, MPI_FLOAT, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Alltoallv", msg), msg);
        /* one slice of this rank's columns per requested (rank, id) */
        if (st == TOKEMB_OK) tm_sent(t, 1, total, total - (size_t)p->rcount[t->rank]);
    }
    if (st == TOKEMB_OK) tm_col_assemble(t, blk, recv, p->n_uniq, rows);
    free(reply);
    free(recv);
    free(cnt);
    free(blk);
    if (st != TOKEMB_OK) {
        tm_plan_free(p);
        return st;
    }
    *rows_out = rows;
    return TOKEMB_OK;
}

/* ---- pooled bags -------------------------------------------------------------------------------
 * Every rank's bags (ids as int64, offsets, weights, mode) go to every rank; each pools every rank's
 * bags over its own column slice with tokemb_lookup_bags and returns each requester its pooled slices.
 * Per element this is the core's bag loop over the same rows in the same order, so the assembled rows
 * equal tokemb_lookup_bags on the whole table. Moves n ids and n_bags * dim floats per rank (the fetch
 * path would move every distinct row). */
enum { TM_BAG_N, TM_BAG_NB, TM_BAG_MODE, TM_BAG_W, TM_BAG_META };

int32_t tm_col_bags(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const int64_t *offsets,
                    size_t n_bags, int32_t mode, const float *w, float *out, int32_t pre_st, const char *pre_msg) {
    char msg[TM_MSG] = "";
    int32_t st = tm_col_begin(t, ids, is32, n, n ? ids : (const void *)offsets, "out", pre_st, pre_msg, msg);
    st = tm_col_check_reads(t, st, msg);
    int P = t->size;
    size_t D = (size_t)t->dim, dl = (size_t)t->local_cols;
    if (st == TOKEMB_OK && n_bags > (size_t)INT_MAX / D)
        st = tm_fail(TOKEMB_OVERFLOW, msg, "n_bags = %zu bags of dim %zu exceed MPI's int counts", n_bags, D);
    int64_t *meta = calloc((size_t)P * TM_BAG_META, sizeof *meta), *blk = malloc((size_t)P * 2 * sizeof *blk);
    int *cnt = calloc((size_t)P * 10, sizeof *cnt);
    int64_t *my_ids = malloc((n ? n : 1) * sizeof *my_ids);
    if (st == TOKEMB_OK && (!meta || !blk || !cnt || !my_ids)) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    int64_t mine[TM_BAG_META] = {(int64_t)n, (int64_t)n_bags, mode, w != NULL};
    if (st == TOKEMB_OK) {
        for (size_t i = 0; i < n; i++) my_ids[i] = tm_id_at(ids, is32, i);
        tm_col_blocks(t, blk);
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    int64_t *all_ids = NULL, *all_off = NULL;
    float *all_w = NULL, *pooled = NULL, *recv = NULL;
    /* int counts: ids [0, P), offsets [P, 2P), weights [2P, 3P), pooled floats sent [3P, 4P), received
     * [4P, 5P), each with its displacements in the next P */
    int *ic = cnt, *id = cnt + P, *oc = cnt + 2 * P, *od = cnt + 3 * P, *wc = cnt + 4 * P, *wdp = cnt + 5 * P;
    int *sc = cnt + 6 * P, *sd = cnt + 7 * P;
    size_t N = 0, B = 0, NW = 0;
    if (st == TOKEMB_OK) {
        int rc = MPI_Allgather(mine, TM_BAG_META, MPI_INT64_T, meta, TM_BAG_META, MPI_INT64_T, t->comm);
        st = tm_mpi_status(rc, fn, "MPI_Allgather", msg);
        for (int r = 0; st == TOKEMB_OK && r < P; r++) {
            const int64_t *m = meta + (size_t)r * TM_BAG_META;
            ic[r] = (int)m[TM_BAG_N];
            id[r] = (int)N;
            oc[r] = (int)m[TM_BAG_NB] + 1;
            od[r] = (int)(B + (size_t)r);
            wc[r] = m[TM_BAG_W] ? ic[r] : 0;
            wdp[r] = (int)NW;
            sd[r] = (int)B;
            sc[r] = (int)m[TM_BAG_NB];
            N += (size_t)m[TM_BAG_N];
            B += (size_t)m[TM_BAG_NB];
            NW += (size_t)wc[r];
            if (N > (size_t)INT_MAX || B + (size_t)P > (size_t)INT_MAX || B > (size_t)INT_MAX / dl)
                st = tm_fail(TOKEMB_OVERFLOW, msg, "the global batch (%zu ids, %zu bags) exceeds MPI's int counts", N,
                             B);
        }
        if (st == TOKEMB_OK) {
            all_ids = malloc((N ? N : 1) * sizeof *all_ids);
            all_off = malloc((B + (size_t)P) * sizeof *all_off);
            all_w = malloc((NW ? NW : 1) * sizeof *all_w);
            pooled = malloc((B ? B : 1) * dl * sizeof *pooled);
            recv = malloc((n_bags ? n_bags : 1) * D * sizeof *recv);
            if (!all_ids || !all_off || !all_w || !pooled || !recv)
                st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        }
        st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    }
    if (st == TOKEMB_OK) {
        int rc = MPI_Allgatherv(my_ids, (int)n, MPI_INT64_T, all_ids, ic, id, MPI_INT64_T, t->comm);
        if (rc == MPI_SUCCESS)
            rc = MPI_Allgatherv(offsets, (int)n_bags + 1, MPI_INT64_T, all_off, oc, od, MPI_INT64_T, t->comm);
        if (rc == MPI_SUCCESS) rc = MPI_Allgatherv(w, w ? (int)n : 0, MPI_FLOAT, all_w, wc, wdp, MPI_FLOAT, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Allgatherv", msg), msg);
    }
    if (st == TOKEMB_OK) {
        /* pool every rank's bags over my columns, each with its own mode and weights */
        for (int r = 0; st == TOKEMB_OK && r < P; r++) {
            const int64_t *m = meta + (size_t)r * TM_BAG_META;
            if (m[TM_BAG_NB] == 0) continue;
            int32_t ps = tokemb_lookup_bags(t->local, all_ids + id[r], (size_t)m[TM_BAG_N], all_off + od[r],
                                            (size_t)m[TM_BAG_NB], (int32_t)m[TM_BAG_MODE],
                                            m[TM_BAG_W] ? all_w + wdp[r] : NULL, pooled + (size_t)sd[r] * dl);
            if (ps != TOKEMB_OK) st = tm_fail(ps, msg, "pooling rank %d's bags: %s", r, tokemb_last_error());
        }
        st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    }
    if (st == TOKEMB_OK) {
        int *scf = cnt + 8 * P, *sdf = cnt + 9 * P, *rcf = ic, *rdf = id; /* ids' counts are no longer needed */
        tm_scale(P, sc, sd, NULL, (int64_t)dl, scf, sdf);
        for (int s = 0; s < P; s++) {
            rcf[s] = (int)n_bags * (int)blk[2 * s + 1];
            rdf[s] = (int)n_bags * (int)blk[2 * s];
        }
        int rc = MPI_Alltoallv(pooled, scf, sdf, MPI_FLOAT, recv, rcf, rdf, MPI_FLOAT, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Alltoallv", msg), msg);
    }
    if (st == TOKEMB_OK) tm_col_assemble(t, blk, recv, n_bags, out);
    free(meta);
    free(blk);
    free(cnt);
    free(my_ids);
    free(all_ids);
    free(all_off);
    free(all_w);
    free(pooled);
    free(recv);
    return st;
}

/* ---- gradients ---------------------------------------------------------------------------------
 * Every rank's ids go to every rank (all-gather, rank order) and the column slice c of every grad_out
 * row to c's owner, so each rank holds the global batch in global input order over its columns. */
int32_t tm_col_push(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const float *grad_out,
                    int32_t pre_st, const char *pre_msg, tm_push *q) {
    char msg[TM_MSG] = "";
    int32_t st = tm_col_begin(t, ids, is32, n, grad_out, "grad_out", pre_st, pre_msg, msg);
    memset(q, 0, sizeof *q);
    int P = t->size;
    size_t D = (size_t)t->dim, dl = (size_t)t->local_cols;
    int *cnt = calloc((size_t)P * 6, sizeof *cnt);
    int64_t *blk = malloc((size_t)P * 2 * sizeof *blk), *my_ids = malloc((n ? n : 1) * sizeof *my_ids);
    float *sbuf = malloc((n ? n : 1) * D * sizeof *sbuf);
    if (st == TOKEMB_OK && (!cnt || !blk || !my_ids || !sbuf)) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    int *nc = cnt, *nd = cnt + P, *sc = cnt + 2 * P, *sd = cnt + 3 * P, *rc_ = cnt + 4 * P, *rd = cnt + 5 * P;
    if (st == TOKEMB_OK) {
        /* the send buffer: owner s's block is my n rows of its d_s columns, at n * col0_s */
        tm_col_blocks(t, blk);
        for (size_t i = 0; i < n; i++) my_ids[i] = tm_id_at(ids, is32, i);
        for (int s = 0; s < P; s++) {
            size_t c0 = (size_t)blk[2 * s], d = (size_t)blk[2 * s + 1];
            for (size_t i = 0; i < n; i++) memcpy(sbuf + n * c0 + i * d, grad_out + i * D + c0, d * sizeof *sbuf);
            sc[s] = (int)(n * d);
            sd[s] = (int)(n * c0);
        }
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    size_t total = 0;
    if (st == TOKEMB_OK) {
        int mine = (int)n, rc = MPI_Allgather(&mine, 1, MPI_INT, nc, 1, MPI_INT, t->comm);
        st = tm_mpi_status(rc, fn, "MPI_Allgather", msg);
        for (int r = 0; st == TOKEMB_OK && r < P; r++) {
            nd[r] = (int)total;
            total += (size_t)nc[r];
            if (total > (size_t)INT_MAX / dl)
                st = tm_fail(TOKEMB_OVERFLOW, msg, "%zu received rows of %zu columns exceed MPI's int counts", total,
                             dl);
        }
        if (st == TOKEMB_OK) {
            q->n_recv = total;
            q->recv_ids = malloc((total ? total : 1) * sizeof *q->recv_ids);
            q->recv_rows = malloc((total ? total : 1) * dl * sizeof *q->recv_rows);
            if (!q->recv_ids || !q->recv_rows) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        }
        st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    }
    if (st == TOKEMB_OK) {
        int rc = MPI_Allgatherv(my_ids, (int)n, MPI_INT64_T, q->recv_ids, nc, nd, MPI_INT64_T, t->comm);
        tm_scale(P, nc, nd, NULL, (int64_t)dl, rc_, rd);
        if (rc == MPI_SUCCESS) rc = MPI_Alltoallv(sbuf, sc, sd, MPI_FLOAT, q->recv_rows, rc_, rd, MPI_FLOAT, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Alltoallv", msg), msg);
    }
    free(cnt);
    free(blk);
    free(my_ids);
    free(sbuf);
    if (st != TOKEMB_OK) {
        free(q->recv_ids);
        free(q->recv_rows);
        memset(q, 0, sizeof *q);
    }
    return st;
}

/* ---- optimizer ---------------------------------------------------------------------------------- */

/* Row-wise Adagrad (docs/training.md, src/kernels/optim_rows.c) over column shards. Per unique row
 * of the coalesced gradient g and weights w, the core computes
 *     g'_c = wd != 0 ? fmaf(wd, w_c, g_c) : g_c        (per element)
 *     ss   = sum over c = 0 .. D-1 of (double)g'_c * (double)g'_c, left to right from 0.0
 *     h    = acc[row] + (float)(ss / D);  acc[row] = h;  step = lr / (sqrtf(h) + eps)
 *     w_c  = fmaf(-step, g'_c, w_c)                      (per element)
 * Each product is exact in double, but the sum rounds at every addition, so partial sums per rank
 * added afterwards would not be the core's ss. The fold is therefore continued across the ranks in
 * column order: rank 0 sums its columns from 0.0 and hands the running sums of all touched rows to
 * rank 1, which continues over its columns, ..., and rank P-1 broadcasts the finished sums: exactly
 * the core's additions in the core's order (P - 1 messages of 8 bytes per touched row, plus the
 * broadcast). h, step and the update are then the core's expressions, evaluated by every rank on its
 * columns. The public API does not expose the core's state array, so the accumulator lives in the
 * sharded table (t->rw_acc, one float per row like the core's); the shard's own optimizer supplies
 * the hyper-parameters and the step counter (advanced by an empty core step). */
int32_t tm_col_rowwise_step(tokemb_mpi_table *t, const char *fn, const tm_push *q) {
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    int P = t->size;
    size_t dl = (size_t)t->local_cols, R = q->n_recv, u = 0;
    tokemb_table *l = t->local;
    double lr = 0, wd = 0, eps = 0, init = 0;
    int64_t steps = tokemb_optim_step_count(l);
    tokemb_optim_get_param_f64(l, TOKEMB_OPTIM_LR, &lr);
    tokemb_optim_get_param_f64(l, TOKEMB_OPTIM_WEIGHT_DECAY, &wd);
    tokemb_optim_get_param_f64(l, TOKEMB_OPTIM_EPS, &eps);
    tokemb_optim_get_param_f64(l, TOKEMB_OPTIM_INITIAL_ACCUMULATOR, &init);
    /* the accumulator belongs to the shard's optimizer since its selection (step count 0); a shard
     * stepped outside tokemb_mpi_optim_step has lost track of it */
    float *acc = steps == 0 ? NULL : t->rw_acc;
    if (steps != 0 && (!t->rw_acc || steps != t->rw_steps))
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg,
                     "the shard's row-wise Adagrad is at step %lld but its column-sharded accumulator at step %lld: "
                     "step a column-sharded table only through tokemb_mpi_optim_step",
                     (long long)steps, (long long)(t->rw_acc ? t->rw_steps : 0));
    int64_t *uids = malloc((R ? R : 1) * sizeof *uids);
    float *g = malloc((R ? R : 1) * dl * sizeof *g);
    double *ss = malloc((R ? R : 1) * sizeof *ss);
    if (st == TOKEMB_OK && (!uids || !g || !ss)) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    if (st == TOKEMB_OK && !acc) {
        acc = malloc((size_t)t->local_rows * sizeof *acc);
        if (!acc) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory for the row-wise accumulator");
        else
            for (int64_t r = 0; r < t->local_rows; r++) acc[r] = (float)init;
    }
    if (st == TOKEMB_OK && R) { /* the core's coalescing: duplicates summed in input order, per element */
        int32_t cs = tokemb_grad_coalesce(l, q->recv_ids, R, q->recv_rows, uids, g, &u);
        if (cs != TOKEMB_OK) st = tm_fail(cs, msg, "coalescing: %s", tokemb_last_error());
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st != TOKEMB_OK) goto done;

    /* every rank coalesced the same global ids: the same u rows in the same order */
    const float wd_f = (float)wd, lr_f = (float)lr, eps_f = (float)eps;
    float *w = tokemb_table_data(l);
    size_t stride = (size_t)tokemb_table_row_stride(l);
    int rc = t->rank > 0 ? MPI_Recv(ss, (int)u, MPI_DOUBLE, t->rank - 1, 0, t->comm, MPI_STATUS_IGNORE) : MPI_SUCCESS;
    if (t->rank == 0)
        for (size_t k = 0; k < u; k++) ss[k] = 0.0;
    for (size_t k = 0; k < u; k++) {
        const float *wr = w + (size_t)uids[k] * stride, *gr = g + k * dl;
        double s = ss[k];
        for (size_t c = 0; c < dl; c++) {
            float gc = wd_f != 0.0f ? fmaf(wd_f, wr[c], gr[c]) : gr[c];
            s += (double)gc * (double)gc;
        }
        ss[k] = s;
    }
    /* sent even after a failed receive, so no rank waits forever; the agreement below reports it */
    int rs = t->rank < P - 1 ? MPI_Send(ss, (int)u, MPI_DOUBLE, t->rank + 1, 0, t->comm) : MPI_SUCCESS;
    int rb = MPI_Bcast(ss, (int)u, MPI_DOUBLE, P - 1, t->comm);
    rc = rc != MPI_SUCCESS ? rc : rs != MPI_SUCCESS ? rs : rb;
    st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "the row-wise sum chain", msg), msg);
    if (st != TOKEMB_OK) goto done;

    /* the shard's step counter (an empty core step; it can fail only allocating its own state) */
    int32_t cs = tokemb_optim_step(l, NULL, 0, NULL);
    if (cs != TOKEMB_OK) snprintf(msg, TM_MSG, "owner: %s", tokemb_last_error());
    st = tm_agree(t->comm, t->rank, P, fn, cs, msg);
    if (st != TOKEMB_OK) goto done;
    for (size_t k = 0; k < u; k++) {
        float *wr = w + (size_t)uids[k] * stride;
        const float *gr = g + k * dl;
        float h = acc[uids[k]] + (float)(ss[k] / (double)t->dim);
        acc[uids[k]] = h;
        float step = lr_f / (sqrtf(h) + eps_f);
        for (size_t c = 0; c < dl; c++) {
            float gc = wd_f != 0.0f ? fmaf(wd_f, wr[c], gr[c]) : gr[c];
            wr[c] = fmaf(-step, gc, wr[c]);
        }
    }
    if (acc != t->rw_acc) {
        free(t->rw_acc);
        t->rw_acc = acc;
    }
    t->rw_steps = tokemb_optim_step_count(l);
    acc = NULL;
done:
    if (acc != t->rw_acc) free(acc);
    free(uids);
    free(g);
    free(ss);
    return st;
}
