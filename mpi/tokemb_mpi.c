/* libtokemb_mpi: tables sharded over an MPI communicator, on libtokemb's public API only.
 *
 * Every collective call follows the same shape: validate locally (nothing written), agree on the
 * outcome with one small all-gather (tm_agree: every rank learns every rank's status, the lowest
 * failing rank broadcasts its message), and only then exchange and write. A failing call therefore
 * returns the same status on every rank, writes nothing anywhere, and leaves no rank inside a
 * collective the others skipped. */
#define _GNU_SOURCE
#include "tm_internal.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Thread_local char tm_err[TM_MSG];

const char *tokemb_mpi_last_error(void) { return tm_err; }

int32_t tm_fail(int32_t status, char *msg, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, TM_MSG, fmt, ap);
    va_end(ap);
    return status;
}

int32_t tm_mpi_status(int rc, const char *fn, const char *what, char *msg) {
    if (rc == MPI_SUCCESS) return TOKEMB_OK;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", rc);
    return tm_fail(TOKEMB_IO, msg, "%s: %s failed: %s", fn, what, s);
}

/* Collective agreement. `status`/`msg` are this rank's outcome. Returns the status of the lowest
 * failing rank on every rank (TOKEMB_OK if none) and sets tm_err to that rank's message. */
int32_t tm_agree(MPI_Comm comm, int rank, int size, const char *fn, int32_t status, const char *msg) {
    (void)size;
    /* lowest failing rank (INT_MAX if none): no allocation, so a rank out of memory still agrees */
    int mine = status != TOKEMB_OK ? rank : INT_MAX, bad;
    int rc = MPI_Allreduce(&mine, &bad, 1, MPI_INT, MPI_MIN, comm);
    if (rc != MPI_SUCCESS) return tm_mpi_status(rc, fn, "MPI_Allreduce", tm_err);
    if (bad == INT_MAX) return TOKEMB_OK;
    struct {
        int32_t st;
        char text[TM_MSG];
    } m;
    if (rank == bad) {
        m.st = status;
        snprintf(m.text, TM_MSG, "%s", msg);
    }
    rc = MPI_Bcast(&m, (int)sizeof m, MPI_BYTE, bad, comm);
    if (rc != MPI_SUCCESS) return tm_mpi_status(rc, fn, "MPI_Bcast", tm_err);
    m.text[TM_MSG - 1] = 0;
    snprintf(tm_err, TM_MSG, "%s: rank %d: %.400s", fn, bad, m.text);
    return m.st;
}

/* ---- placement -------------------------------------------------------------------------------- */

void tm_row_block(int64_t rows, int size, int r, int64_t *row0, int64_t *n) {
    int64_t base = rows / size, rem = rows % size;
    *n = base + (r < rem ? 1 : 0);
    *row0 = r * base + (r < rem ? r : rem);
}

/* ---- create / free ---------------------------------------------------------------------------- */

int32_t tokemb_mpi_table_create(MPI_Comm comm, int64_t rows, int64_t dim, int32_t sharding, tokemb_mpi_table **out) {
    static const char fn[] = "tokemb_mpi_table_create";
    tm_err[0] = 0;
    MPI_Comm dup;
    int rc = MPI_Comm_dup(comm, &dup);
    if (rc != MPI_SUCCESS) return tm_mpi_status(rc, fn, "MPI_Comm_dup", tm_err);
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    int rank, size;
    MPI_Comm_rank(dup, &rank);
    MPI_Comm_size(dup, &size);

    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    int64_t meta[3] = {rows, dim, sharding}, root[3] = {rows, dim, sharding};
    if (!out) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "out is NULL");
    else if (rows < 1 || dim < 1)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "rows %lld and dim %lld must be >= 1", (long long)rows,
                     (long long)dim);
    else if (rows < size)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "rows %lld is smaller than the %d ranks", (long long)rows, size);
    else if (sharding != TOKEMB_MPI_ROW && sharding != TOKEMB_MPI_ROW_MODULO)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "unknown sharding %d", (int)sharding);
    /* metadata: every rank compares its own with rank 0's (the broadcast is made even by a rank that
     * failed above, so every rank takes part in the same collectives) */
    rc = MPI_Bcast(root, 3, MPI_INT64_T, 0, dup);
    if (rc != MPI_SUCCESS && st == TOKEMB_OK) st = tm_mpi_status(rc, fn, "MPI_Bcast", msg);
    if (st == TOKEMB_OK && memcmp(meta, root, sizeof meta) != 0)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg,
                     "(rows, dim, sharding) = (%lld, %lld, %lld) differs from rank 0's (%lld, %lld, %lld)",
                     (long long)rows, (long long)dim, (long long)sharding, (long long)root[0], (long long)root[1],
                     (long long)root[2]);

    tokemb_mpi_table *t = NULL;
    if (st == TOKEMB_OK) {
        t = calloc(1, sizeof *t);
        if (!t) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    if (st == TOKEMB_OK) {
        t->comm = dup;
        t->rank = rank;
        t->size = size;
        t->rows = rows;
        t->dim = dim;
        t->sharding = sharding;
        if (sharding == TOKEMB_MPI_ROW) tm_row_block(rows, size, rank, &t->row0, &t->local_rows);
        else t->local_rows = (rows - rank + size - 1) / size;
        int32_t cs = tokemb_table_create(t->local_rows, dim, TOKEMB_F32, &t->local);
        if (cs != TOKEMB_OK) st = tm_fail(cs, msg, "local shard: %s", tokemb_last_error());
    }
    st = tm_agree(dup, rank, size, fn, st, msg);
    if (st != TOKEMB_OK) {
        if (t) tokemb_table_free(t->local);
        free(t);
        MPI_Comm_free(&dup);
        return st;
    }
    *out = t;
    return TOKEMB_OK;
}

int32_t tokemb_mpi_table_create_f(MPI_Fint comm, int64_t rows, int64_t dim, int32_t sharding, tokemb_mpi_table **out) {
    return tokemb_mpi_table_create(MPI_Comm_f2c(comm), rows, dim, sharding, out);
}

void tokemb_mpi_table_free(tokemb_mpi_table *t) {
    if (!t) return;
    tokemb_table_free(t->local);
    MPI_Comm_free(&t->comm);
    free(t);
}

int64_t tokemb_mpi_table_rows(const tokemb_mpi_table *t) { return t ? t->rows : -1; }
int64_t tokemb_mpi_table_dim(const tokemb_mpi_table *t) { return t ? t->dim : -1; }
tokemb_table *tokemb_mpi_table_local(tokemb_mpi_table *t) { return t ? t->local : NULL; }

int64_t tokemb_mpi_table_global_row(const tokemb_mpi_table *t, int64_t local_row) {
    if (!t || local_row < 0 || local_row >= t->local_rows) return -1;
    return t->sharding == TOKEMB_MPI_ROW_MODULO ? local_row * t->size + t->rank : t->row0 + local_row;
}

/* ---- lookup ----------------------------------------------------------------------------------- */

typedef struct {
    int owner;
    int64_t lrow;
    size_t i;
} tm_key;

static int tm_key_cmp(const void *a, const void *b) {
    const tm_key *x = a, *y = b;
    if (x->owner != y->owner) return x->owner < y->owner ? -1 : 1;
    if (x->lrow != y->lrow) return x->lrow < y->lrow ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

void tm_plan_free(tm_plan *p) {
    free(p->send_ids);
    free(p->slot);
    free(p->scount);
    free(p->recv_ids);
    memset(p, 0, sizeof *p);
}

/* This rank's batch checks, shared by every collective taking ids[n] with an [n][dim] companion
 * buffer (`what`): NULL pointers, MPI's int counts, ids inside the global table. */
int32_t tm_check_batch(const tokemb_mpi_table *t, const void *ids, int is32, size_t n, const void *buf,
                       const char *what, char *msg) {
    if (n > 0 && (!ids || !buf))
        return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "ids or %s is NULL with n = %zu", what, n);
    if (n > (size_t)INT_MAX / (size_t)t->dim)
        return tm_fail(TOKEMB_OVERFLOW, msg, "n = %zu rows of dim %lld exceed MPI's int counts", n, (long long)t->dim);
    for (size_t i = 0; i < n; i++) {
        int64_t g = tm_id_at(ids, is32, i);
        if (g < 0 || g >= t->rows)
            return tm_fail(TOKEMB_OUT_OF_RANGE, msg, "token id %lld at index %zu is outside [0, %lld)", (long long)g, i,
                           (long long)t->rows);
    }
    return TOKEMB_OK;
}

/* Local, no communication: the distinct (owner, local row) pairs of an already validated batch in
 * owner order, the per-owner send counts/displacements and every position's slot (p is zeroed
 * first; the receive side stays empty). TOKEMB_NO_MEMORY is the only failure. */
int32_t tm_plan_local(const tokemb_mpi_table *t, const void *ids, int is32, size_t n, tm_plan *p, char *msg) {
    memset(p, 0, sizeof *p);
    int P = t->size;
    tm_key *keys = malloc((n ? n : 1) * sizeof *keys);
    p->slot = malloc((n ? n : 1) * sizeof *p->slot);
    p->send_ids = malloc((n ? n : 1) * sizeof *p->send_ids);
    p->scount = calloc((size_t)P * 4, sizeof(int));
    if (!keys || !p->slot || !p->send_ids || !p->scount) {
        free(keys);
        tm_plan_free(p);
        return tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    p->sdispl = p->scount + P;
    p->rcount = p->scount + 2 * P;
    p->rdispl = p->scount + 3 * P;
    for (size_t i = 0; i < n; i++) {
        tm_owner(t, tm_id_at(ids, is32, i), &keys[i].owner, &keys[i].lrow);
        keys[i].i = i;
    }
    qsort(keys, n, sizeof *keys, tm_key_cmp);
    size_t u = 0;
    for (size_t k = 0; k < n; k++) {
        if (k == 0 || keys[k].owner != keys[k - 1].owner || keys[k].lrow != keys[k - 1].lrow) {
            p->send_ids[u++] = keys[k].lrow;
            p->scount[keys[k].owner]++;
        }
        p->slot[keys[k].i] = u - 1;
    }
    p->n_uniq = u;
    for (int r = 1; r < P; r++) p->sdispl[r] = p->sdispl[r - 1] + p->scount[r - 1];
    free(keys);
    return TOKEMB_OK;
}

/* Collective: validates the batch, agrees, de-duplicates per owner and exchanges the ids. On
 * success every rank holds its plan; on failure every rank returns the same status. */
int32_t tm_plan_make(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const void *out,
                     int32_t pre_st, const char *pre_msg, tm_plan *p) {
    char msg[TM_MSG] = "";
    int32_t st = pre_st;
    if (st != TOKEMB_OK) snprintf(msg, TM_MSG, "%s", pre_msg);
    memset(p, 0, sizeof *p);
    int P = t->size;
    if (st == TOKEMB_OK) st = tm_check_batch(t, ids, is32, n, out, "out", msg);
    if (st == TOKEMB_OK) st = tm_plan_local(t, ids, is32, n, p, msg);
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st != TOKEMB_OK) {
        tm_plan_free(p);
        return st;
    }

    /* counts, then a second agreement on the receive side (size limits, memory) */
    int rc = MPI_Alltoall(p->scount, 1, MPI_INT, p->rcount, 1, MPI_INT, t->comm);
    if (rc != MPI_SUCCESS) st = tm_mpi_status(rc, fn, "MPI_Alltoall", msg);
    size_t total = 0;
    for (int r = 0; st == TOKEMB_OK && r < P; r++) {
        p->rdispl[r] = (int)total;
        total += (size_t)p->rcount[r];
    }
    if (st == TOKEMB_OK && total > (size_t)INT_MAX / (size_t)t->dim)
        st = tm_fail(TOKEMB_OVERFLOW, msg, "%zu requested rows of dim %lld exceed MPI's int counts", total,
                     (long long)t->dim);
    if (st == TOKEMB_OK) {
        p->n_recv = total;
        p->recv_ids = malloc((total ? total : 1) * sizeof *p->recv_ids);
        if (!p->recv_ids) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st != TOKEMB_OK) {
        tm_plan_free(p);
        return st;
    }
    rc = MPI_Alltoallv(p->send_ids, p->scount, p->sdispl, MPI_INT64_T, p->recv_ids, p->rcount, p->rdispl, MPI_INT64_T,
                       t->comm);
    st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Alltoallv", msg), msg);
    if (st != TOKEMB_OK) tm_plan_free(p);
    return st;
}

/* Collective: the distinct rows this rank's batch references, *rows[n_uniq][dim] in plan order
 * (plan.slot maps input position -> row). pre_st/pre_msg carry the caller's own validation, agreed
 * together with the batch's. */
int32_t tm_fetch(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const void *out,
                 int32_t pre_st, const char *pre_msg, tm_plan *p, float **rows_out) {
    int32_t st = tm_plan_make(t, fn, ids, is32, n, out, pre_st, pre_msg, p);
    if (st != TOKEMB_OK) return st;
    char msg[TM_MSG] = "";
    size_t D = (size_t)t->dim;
    int P = t->size;
    float *reply = malloc((p->n_recv ? p->n_recv : 1) * D * sizeof *reply);
    float *rows = malloc((p->n_uniq ? p->n_uniq : 1) * D * sizeof *rows);
    int *cnt = malloc((size_t)P * 4 * sizeof *cnt);
    if (!reply || !rows || !cnt) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    else if (p->n_recv) {
        int32_t ls = tokemb_lookup(t->local, p->recv_ids, p->n_recv, reply);
        if (ls != TOKEMB_OK) st = tm_fail(ls, msg, "local shard: %s", tokemb_last_error());
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st == TOKEMB_OK) {
        for (int r = 0; r < P; r++) {
            cnt[r] = p->rcount[r] * (int)D;
            cnt[P + r] = p->rdispl[r] * (int)D;
            cnt[2 * P + r] = p->scount[r] * (int)D;
            cnt[3 * P + r] = p->sdispl[r] * (int)D;
        }
        int rc = MPI_Alltoallv(reply, cnt, cnt + P, MPI_FLOAT, rows, cnt + 2 * P, cnt + 3 * P, MPI_FLOAT, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Alltoallv", msg), msg);
    }
    free(reply);
    free(cnt);
    if (st != TOKEMB_OK) {
        free(rows);
        tm_plan_free(p);
        return st;
    }
    *rows_out = rows;
    return TOKEMB_OK;
}

static int32_t tm_lookup(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, float *out) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    tm_plan p;
    float *rows = NULL;
    int32_t st = tm_fetch(t, fn, ids, is32, n, out, TOKEMB_OK, "", &p, &rows);
    if (st != TOKEMB_OK) return st;
    size_t D = (size_t)t->dim;
    for (size_t i = 0; i < n; i++) memcpy(out + i * D, rows + p.slot[i] * D, D * sizeof *out);
    free(rows);
    tm_plan_free(&p);
    return TOKEMB_OK;
}

/* Pooled bags: the distinct rows come back, then the core pools them in input order over a table
 * wrapping exactly those rows (ids remapped to their slots), so every float operation is the core's
 * own and the result equals tokemb_lookup_bags on the whole table bit for bit. */
int32_t tm_check_bags(size_t n, const int64_t *offsets, size_t n_bags, int32_t mode, const float *w, const float *out,
                      char *msg) {
    if (!offsets) return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "offsets is NULL");
    if (n_bags > 0 && !out) return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "out is NULL with n_bags = %zu", n_bags);
    if (mode != TOKEMB_SUM && mode != TOKEMB_MEAN && mode != TOKEMB_MAX)
        return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "unknown bag mode %d", (int)mode);
    if (w && mode != TOKEMB_SUM)
        return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "per_sample_weights need mode SUM, got %d", (int)mode);
    if (offsets[0] != 0)
        return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "offsets[0] = %lld, not 0", (long long)offsets[0]);
    if ((uint64_t)offsets[n_bags] != (uint64_t)n)
        return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "offsets[%zu] = %lld, not n = %zu", n_bags,
                       (long long)offsets[n_bags], n);
    for (size_t b = 0; b < n_bags; b++)
        if (offsets[b + 1] < offsets[b])
            return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "offsets[%zu] = %lld is below offsets[%zu] = %lld", b + 1,
                           (long long)offsets[b + 1], b, (long long)offsets[b]);
    return TOKEMB_OK;
}

int32_t tm_pool(const tokemb_mpi_table *t, float *rows, size_t n_uniq, const size_t *slot, size_t n,
                const int64_t *offsets, size_t n_bags, int32_t mode, const float *w, float *pooled, char *msg) {
    tokemb_table *sub = NULL;
    int64_t *slot_ids = malloc((n ? n : 1) * sizeof *slot_ids);
    int32_t st = TOKEMB_OK;
    if (!slot_ids) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    else
        st = tokemb_table_wrap(rows, n_uniq ? (int64_t)n_uniq : 1, t->dim, t->dim, TOKEMB_F32, TOKEMB_WRAP_READONLY,
                               &sub);
    if (st == TOKEMB_OK) {
        for (size_t i = 0; i < n; i++) slot_ids[i] = (int64_t)slot[i];
        st = tokemb_lookup_bags(sub, slot_ids, n, offsets, n_bags, mode, w, pooled);
        if (st != TOKEMB_OK) snprintf(msg, TM_MSG, "pooling: %s", tokemb_last_error());
    } else if (st != TOKEMB_NO_MEMORY) {
        snprintf(msg, TM_MSG, "wrapping the fetched rows: %s", tokemb_last_error());
    }
    tokemb_table_free(sub);
    free(slot_ids);
    return st;
}

static int32_t tm_bags(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const int64_t *offsets,
                       size_t n_bags, int32_t mode, const float *w, float *out) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "";
    int32_t st = tm_check_bags(n, offsets, n_bags, mode, w, out, msg);
    tm_plan p;
    float *rows = NULL;
    st = tm_fetch(t, fn, ids, is32, n, n ? (const void *)ids : (const void *)offsets, st, msg, &p, &rows);
    if (st != TOKEMB_OK) return st;
    size_t D = (size_t)t->dim;
    float *tmp = malloc((n_bags ? n_bags : 1) * D * sizeof *tmp);
    if (!tmp) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    else st = tm_pool(t, rows, p.n_uniq, p.slot, n, offsets, n_bags, mode, w, tmp, msg);
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    if (st == TOKEMB_OK && n_bags) memcpy(out, tmp, n_bags * D * sizeof *out);
    free(tmp);
    free(rows);
    tm_plan_free(&p);
    return st;
}

int32_t tokemb_mpi_lookup_bags(tokemb_mpi_table *t, const int64_t *ids, size_t n, const int64_t *offsets, size_t n_bags,
                               int32_t mode, const float *per_sample_weights, float *out) {
    return tm_bags(t, "tokemb_mpi_lookup_bags", ids, 0, n, offsets, n_bags, mode, per_sample_weights, out);
}

int32_t tokemb_mpi_lookup_bags_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n, const int64_t *offsets,
                                   size_t n_bags, int32_t mode, const float *per_sample_weights, float *out) {
    return tm_bags(t, "tokemb_mpi_lookup_bags_i32", ids, 1, n, offsets, n_bags, mode, per_sample_weights, out);
}

int32_t tokemb_mpi_lookup(tokemb_mpi_table *t, const int64_t *ids, size_t n, float *out) {
    return tm_lookup(t, "tokemb_mpi_lookup", ids, 0, n, out);
}

int32_t tokemb_mpi_lookup_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n, float *out) {
    return tm_lookup(t, "tokemb_mpi_lookup_i32", ids, 1, n, out);
}

/* ---- gradients and optimizer steps at the owners ---------------------------------------------- */

/* Collective: every rank's (id, grad_out row) contributions travel to the rows' owners, grouped by
 * owner and in input order within each group; an owner receives them in rank order, so its
 * recv_ids/recv_rows are the global batch's contributions to its rows in global input order (the
 * order the core sums in). Nothing is de-duplicated: summing on the sender would change the float
 * association. pre_st/pre_msg: the caller's own validation, agreed together with the batch's. */

int32_t tm_push_make(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const float *grad_out,
                     int32_t pre_st, const char *pre_msg, tm_push *q) {
    char msg[TM_MSG] = "";
    int32_t st = pre_st;
    if (st != TOKEMB_OK) snprintf(msg, TM_MSG, "%s", pre_msg);
    memset(q, 0, sizeof *q);
    int P = t->size;
    size_t D = (size_t)t->dim;
    if (st == TOKEMB_OK) st = tm_check_batch(t, ids, is32, n, grad_out, "grad_out", msg);
    int *cnt = calloc((size_t)P * 8, sizeof *cnt);
    int64_t *sids = malloc((n ? n : 1) * sizeof *sids);
    float *srows = malloc((n ? n : 1) * D * sizeof *srows);
    int *owner = malloc((n ? n : 1) * sizeof *owner);
    if (st == TOKEMB_OK && (!cnt || !sids || !srows || !owner)) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    int *sc = cnt, *sd = cnt + P, *rc_ = cnt + 2 * P, *rd = cnt + 3 * P;
    if (st == TOKEMB_OK) {
        /* counting sort by owner: stable, so input order is kept within each owner */
        int64_t *lrow = sids; /* filled in place below */
        for (size_t i = 0; i < n; i++) {
            int64_t l;
            tm_owner(t, tm_id_at(ids, is32, i), &owner[i], &l);
            sc[owner[i]]++;
        }
        for (int r = 1; r < P; r++) sd[r] = sd[r - 1] + sc[r - 1];
        int *fill = cnt + 4 * P;
        memcpy(fill, sd, (size_t)P * sizeof *fill);
        for (size_t i = 0; i < n; i++) {
            int64_t l;
            int o;
            tm_owner(t, tm_id_at(ids, is32, i), &o, &l);
            size_t at = (size_t)fill[o]++;
            lrow[at] = l;
            memcpy(srows + at * D, grad_out + i * D, D * sizeof *srows);
        }
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st == TOKEMB_OK) {
        int rc = MPI_Alltoall(sc, 1, MPI_INT, rc_, 1, MPI_INT, t->comm);
        st = tm_mpi_status(rc, fn, "MPI_Alltoall", msg);
        size_t total = 0;
        for (int r = 0; st == TOKEMB_OK && r < P; r++) {
            rd[r] = (int)total;
            total += (size_t)rc_[r];
        }
        if (st == TOKEMB_OK && total > (size_t)INT_MAX / D)
            st = tm_fail(TOKEMB_OVERFLOW, msg, "%zu received rows of dim %zu exceed MPI's int counts", total, D);
        if (st == TOKEMB_OK) {
            q->n_recv = total;
            q->recv_ids = malloc((total ? total : 1) * sizeof *q->recv_ids);
            q->recv_rows = malloc((total ? total : 1) * D * sizeof *q->recv_rows);
            if (!q->recv_ids || !q->recv_rows) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        }
        st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    }
    if (st == TOKEMB_OK) {
        int rc = MPI_Alltoallv(sids, sc, sd, MPI_INT64_T, q->recv_ids, rc_, rd, MPI_INT64_T, t->comm);
        for (int r = 0; r < P; r++) {
            cnt[4 * P + r] = sc[r] * (int)D;
            cnt[5 * P + r] = sd[r] * (int)D;
            cnt[6 * P + r] = rc_[r] * (int)D;
            cnt[7 * P + r] = rd[r] * (int)D;
        }
        if (rc == MPI_SUCCESS)
            rc = MPI_Alltoallv(srows, cnt + 4 * P, cnt + 5 * P, MPI_FLOAT, q->recv_rows, cnt + 6 * P, cnt + 7 * P,
                               MPI_FLOAT, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Alltoallv", msg), msg);
    }
    free(cnt);
    free(sids);
    free(srows);
    free(owner);
    if (st != TOKEMB_OK) {
        free(q->recv_ids);
        free(q->recv_rows);
        memset(q, 0, sizeof *q);
    }
    return st;
}

static int tm_i64_cmp(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static int32_t tm_grad(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const float *grad_out,
                       float *grad_shard) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "";
    int32_t st = grad_shard ? TOKEMB_OK : tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "grad_shard is NULL");
    tm_push q;
    st = tm_push_make(t, fn, ids, is32, n, grad_out, st, msg, &q);
    if (st != TOKEMB_OK) return st;
    /* the touched rows are copied into a compact buffer, accumulated there by the core (its summation
     * order, starting from the buffer's values), and copied back only once every rank succeeded */
    size_t D = (size_t)t->dim, R = q.n_recv, u = 0;
    int64_t *uniq = malloc((R ? R : 1) * sizeof *uniq), *slot = malloc((R ? R : 1) * sizeof *slot);
    float *compact = NULL;
    tokemb_table *shape = NULL;
    if (!uniq || !slot) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    if (st == TOKEMB_OK && R) {
        memcpy(uniq, q.recv_ids, R * sizeof *uniq);
        qsort(uniq, R, sizeof *uniq, tm_i64_cmp);
        for (size_t k = 0; k < R; k++)
            if (k == 0 || uniq[k] != uniq[u - 1]) uniq[u++] = uniq[k];
        for (size_t k = 0; k < R; k++) {
            const int64_t *f = bsearch(&q.recv_ids[k], uniq, u, sizeof *uniq, tm_i64_cmp);
            slot[k] = f - uniq;
        }
        compact = malloc(u * D * sizeof *compact);
        if (!compact) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        else {
            for (size_t k = 0; k < u; k++)
                memcpy(compact + k * D, grad_shard + (size_t)uniq[k] * D, D * sizeof *compact);
            st = tokemb_table_wrap(compact, (int64_t)u, t->dim, t->dim, TOKEMB_F32, TOKEMB_WRAP_READONLY, &shape);
            if (st == TOKEMB_OK) st = tokemb_grad_accumulate(shape, slot, R, q.recv_rows, compact);
            if (st != TOKEMB_OK) snprintf(msg, TM_MSG, "owner: %s", tokemb_last_error());
        }
    }
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    if (st == TOKEMB_OK)
        for (size_t k = 0; k < u; k++) memcpy(grad_shard + (size_t)uniq[k] * D, compact + k * D, D * sizeof *compact);
    tokemb_table_free(shape);
    free(compact);
    free(uniq);
    free(slot);
    free(q.recv_ids);
    free(q.recv_rows);
    return st;
}

int32_t tokemb_mpi_grad_accumulate(tokemb_mpi_table *t, const int64_t *ids, size_t n, const float *grad_out,
                                   float *grad_shard) {
    return tm_grad(t, "tokemb_mpi_grad_accumulate", ids, 0, n, grad_out, grad_shard);
}

int32_t tokemb_mpi_grad_accumulate_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n, const float *grad_out,
                                       float *grad_shard) {
    return tm_grad(t, "tokemb_mpi_grad_accumulate_i32", ids, 1, n, grad_out, grad_shard);
}

static int32_t tm_step(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n,
                       const float *grad_out) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    int64_t steps = tokemb_optim_step_count(t->local), s0 = steps;
    if (steps < 0) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "no optimizer selected on this rank's shard");
    /* every shard must be at the same step (SparseAdam's bias correction and Adagrad's decay use it) */
    int64_t root = steps;
    int rc = MPI_Bcast(&root, 1, MPI_INT64_T, 0, t->comm);
    if (rc != MPI_SUCCESS && st == TOKEMB_OK) st = tm_mpi_status(rc, fn, "MPI_Bcast", msg);
    if (st == TOKEMB_OK && root != s0)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "optimizer step count %lld differs from rank 0's %lld",
                     (long long)s0, (long long)root);
    tm_push q;
    st = tm_push_make(t, fn, ids, is32, n, grad_out, st, msg, &q);
    if (st != TOKEMB_OK) return st;
    st = tokemb_optim_step(t->local, q.recv_ids, q.n_recv, q.recv_rows);
    if (st != TOKEMB_OK) snprintf(msg, TM_MSG, "owner: %s", tokemb_last_error());
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    free(q.recv_ids);
    free(q.recv_rows);
    return st;
}

int32_t tokemb_mpi_optim_step(tokemb_mpi_table *t, const int64_t *ids, size_t n, const float *grad_out) {
    return tm_step(t, "tokemb_mpi_optim_step", ids, 0, n, grad_out);
}

int32_t tokemb_mpi_optim_step_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n, const float *grad_out) {
    return tm_step(t, "tokemb_mpi_optim_step_i32", ids, 1, n, grad_out);
}
