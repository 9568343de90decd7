/* TABLE sharding: a collection of tables, each placed whole on one rank by a greedy size rule
 * (tokemb_mpi_tables_plan), with collective lookups, pooled bags, owner gradients and fused optimizer
 * steps over every table at once.
 *
 * Every exchange is laid out the same way: what a rank sends is grouped by destination rank, then by
 * table in increasing index (the tables that destination owns), then in the batch's order. Both sides
 * know the placement, so the per-table counts travel in one MPI_Alltoallv whose counts are known
 * beforehand (each rank sends every owner one count per table it owns); then one MPI_Alltoallv carries
 * the ids of every table and one the rows. As in tokemb_mpi.c, each step validates locally, agrees on
 * the outcome (tm_agree) and only then exchanges or writes. */
#define _GNU_SOURCE
#include "tm_shared.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Scratch buffers a collection keeps between calls (fresh large buffers would cost a page fault per 4 KiB
 * on every call): each grows to the largest batch seen and is freed with the collection. Lookups and bags
 * use all of them; gradients and steps reuse ROWS for the rows they send, REPLY for those they receive,
 * UNIQ and TMP for an owner's regrouped ids and rows. */
enum { TW_KEYS, TW_UNIQ, TW_SLOT, TW_SEND_IDS, TW_RECV_IDS, TW_REPLY, TW_ROWS, TW_TMP, TW_SLOT_IDS, TW_N };

struct tokemb_mpi_tables {
    MPI_Comm comm; /* duplicate with MPI_ERRORS_RETURN */
    int rank, size;
    size_t n;
    int64_t *rows, *dims;
    int32_t *owner;
    size_t *order;                  /* [n] tables sorted by (owner, index): the layout of every exchange */
    size_t *first;                  /* [size + 1] rank r's tables are order[first[r] .. first[r + 1]) */
    tokemb_table **local;           /* [n] NULL where another rank owns the table */
    uint64_t sent_ids, sent_floats; /* tokemb_mpi_tables_traffic */
    struct {
        void *p;
        size_t cap;
    } ws[TW_N];
};

/* Workspace buffer w with room for n elements of `size` bytes (its contents are not kept), or NULL. */
static void *tt_ws(tokemb_mpi_tables *t, int w, size_t n, size_t size) {
    size_t bytes = (n ? n : 1) * size;
    if (t->ws[w].cap < bytes) {
        free(t->ws[w].p);
        t->ws[w].p = malloc(bytes);
        t->ws[w].cap = t->ws[w].p ? bytes : 0;
    }
    return t->ws[w].p;
}

/* ---- placement ------------------------------------------------------------------------------- */

/* Shape checks shared by plan and create: rows/dims >= 1 and the total size in bytes fits int64. */
static int32_t tt_check_shapes(size_t n, const int64_t *rows, const int64_t *dims, char *msg) {
    if (!rows || !dims) return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "rows or dims is NULL");
    if (n < 1) return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "n_tables must be >= 1");
    int64_t total = 0;
    for (size_t k = 0; k < n; k++) {
        if (rows[k] < 1 || dims[k] < 1)
            return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "table %zu: rows %lld and dim %lld must be >= 1", k,
                           (long long)rows[k], (long long)dims[k]);
        if (rows[k] > INT64_MAX / 4 / dims[k] || rows[k] * dims[k] * 4 > INT64_MAX - total)
            return tm_fail(TOKEMB_OVERFLOW, msg, "table %zu: the tables' total size in bytes overflows int64", k);
        total += rows[k] * dims[k] * 4;
    }
    return TOKEMB_OK;
}

/* The greedy rule of tokemb_mpi_tables_plan over already checked shapes. */
static int32_t tt_place(size_t n, const int64_t *rows, const int64_t *dims, int P, int32_t *owner, char *msg) {
    tm_idpos *c = malloc(n * sizeof *c);
    int64_t *load = calloc((size_t)P, sizeof *load);
    if (!c || !load) {
        free(c);
        free(load);
        return tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    /* decreasing cost, equal costs by increasing index: increasing (-cost, index) */
    for (size_t k = 0; k < n; k++) c[k] = (tm_idpos){-(rows[k] * dims[k] * 4), k};
    qsort(c, n, sizeof *c, tm_idpos_cmp);
    for (size_t j = 0; j < n; j++) {
        int best = 0;
        for (int r = 1; r < P; r++)
            if (load[r] < load[best]) best = r;
        owner[c[j].i] = best;
        load[best] -= c[j].id;
    }
    free(c);
    free(load);
    return TOKEMB_OK;
}

int32_t tokemb_mpi_tables_plan(size_t n_tables, const int64_t *rows, const int64_t *dims, int32_t n_ranks,
                               int32_t *owner) {
    static const char fn[] = "tokemb_mpi_tables_plan";
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    if (!owner) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "owner is NULL");
    else if (n_ranks < 1) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "n_ranks %d must be >= 1", (int)n_ranks);
    else st = tt_check_shapes(n_tables, rows, dims, msg);
    int32_t *tmp = st == TOKEMB_OK ? malloc(n_tables * sizeof *tmp) : NULL;
    if (st == TOKEMB_OK && !tmp) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    if (st == TOKEMB_OK) st = tt_place(n_tables, rows, dims, n_ranks, tmp, msg);
    if (st == TOKEMB_OK) memcpy(owner, tmp, n_tables * sizeof *owner);
    free(tmp);
    if (st != TOKEMB_OK) snprintf(tm_err, TM_MSG, "%s: %.480s", fn, msg);
    else tm_err[0] = 0;
    return st;
}

/* ---- create / free / accessors ----------------------------------------------------------------- */

static void tt_free(tokemb_mpi_tables *t) {
    if (!t) return;
    for (size_t k = 0; t->local && k < t->n; k++) tokemb_table_free(t->local[k]);
    for (int w = 0; w < TW_N; w++) free(t->ws[w].p);
    free(t->local);
    free(t->rows);
    free(t->owner);
    free(t->order);
    free(t->first);
    free(t);
}

/* Allocates the collection and its placement (no table yet). */
static int32_t tt_new(MPI_Comm dup, int rank, int size, size_t n, const int64_t *rows, const int64_t *dims,
                      tokemb_mpi_tables **out, char *msg) {
    tokemb_mpi_tables *t = calloc(1, sizeof *t);
    if (!t) return tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    t->comm = dup;
    t->rank = rank;
    t->size = size;
    t->n = n;
    t->rows = malloc(2 * n * sizeof *t->rows);
    t->owner = malloc(n * sizeof *t->owner);
    t->order = malloc(n * sizeof *t->order);
    t->first = calloc((size_t)size + 1, sizeof *t->first);
    t->local = calloc(n, sizeof *t->local);
    if (!t->rows || !t->owner || !t->order || !t->first || !t->local) {
        tt_free(t);
        return tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    t->dims = t->rows + n;
    memcpy(t->rows, rows, n * sizeof *rows);
    memcpy(t->dims, dims, n * sizeof *dims);
    int32_t st = tt_place(n, rows, dims, size, t->owner, msg);
    if (st != TOKEMB_OK) {
        tt_free(t);
        return st;
    }
    /* counting sort of the tables by owner, stable in the table index */
    for (size_t k = 0; k < n; k++) t->first[t->owner[k] + 1]++;
    for (int r = 0; r < size; r++) t->first[r + 1] += t->first[r];
    size_t *fill = malloc((size_t)size * sizeof *fill);
    if (!fill) {
        tt_free(t);
        return tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    memcpy(fill, t->first, (size_t)size * sizeof *fill);
    for (size_t k = 0; k < n; k++) t->order[fill[t->owner[k]]++] = k;
    free(fill);
    for (size_t j = t->first[rank]; j < t->first[rank + 1]; j++) {
        size_t k = t->order[j];
        int32_t cs = tokemb_table_create(rows[k], dims[k], TOKEMB_F32, &t->local[k]);
        if (cs != TOKEMB_OK) {
            tt_free(t);
            return tm_fail(cs, msg, "table %zu: %s", k, tokemb_last_error());
        }
    }
    *out = t;
    return TOKEMB_OK;
}

int32_t tokemb_mpi_tables_create(MPI_Comm comm, size_t n_tables, const int64_t *rows, const int64_t *dims,
                                 tokemb_mpi_tables **out) {
    static const char fn[] = "tokemb_mpi_tables_create";
    tm_err[0] = 0;
    MPI_Comm dup;
    int rank, size, rc;
    if (tm_comm_dup(comm, fn, &dup, &rank, &size) != TOKEMB_OK) return TOKEMB_IO;

    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    if (!out) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "out is NULL");
    else if (n_tables > (size_t)INT_MAX / 2) /* the shapes travel in one message of 2 * n_tables */
        st = tm_fail(TOKEMB_OVERFLOW, msg, "n_tables = %zu exceeds MPI's int counts", n_tables);
    else st = tt_check_shapes(n_tables, rows, dims, msg);
    /* the count first (every rank takes part, also one that failed above), agreed before the shapes
     * travel, so every rank broadcasts arrays of the same length */
    uint64_t count = (uint64_t)n_tables;
    rc = MPI_Bcast(&count, 1, MPI_UINT64_T, 0, dup);
    if (rc != MPI_SUCCESS && st == TOKEMB_OK) st = tm_mpi_status(rc, fn, "MPI_Bcast", msg);
    if (st == TOKEMB_OK && count != (uint64_t)n_tables)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "n_tables = %zu differs from rank 0's %llu", n_tables,
                     (unsigned long long)count);
    st = tm_agree(dup, rank, size, fn, st, msg);
    int64_t *root = NULL;
    if (st == TOKEMB_OK) {
        root = malloc(2 * n_tables * sizeof *root);
        if (!root) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        else {
            memcpy(root, rows, n_tables * sizeof *root);
            memcpy(root + n_tables, dims, n_tables * sizeof *root);
        }
        st = tm_agree(dup, rank, size, fn, st, msg);
    }
    if (st == TOKEMB_OK) {
        rc = MPI_Bcast(root, (int)(2 * n_tables), MPI_INT64_T, 0, dup);
        st = tm_mpi_status(rc, fn, "MPI_Bcast", msg);
        for (size_t k = 0; st == TOKEMB_OK && k < n_tables; k++)
            if (root[k] != rows[k] || root[n_tables + k] != dims[k])
                st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg,
                             "table %zu: (rows, dim) = (%lld, %lld) differs from rank 0's (%lld, %lld)", k,
                             (long long)rows[k], (long long)dims[k], (long long)root[k], (long long)root[n_tables + k]);
        st = tm_agree(dup, rank, size, fn, st, msg);
    }
    free(root);
    tokemb_mpi_tables *t = NULL;
    if (st == TOKEMB_OK)
        st = tm_agree(dup, rank, size, fn, tt_new(dup, rank, size, n_tables, rows, dims, &t, msg), msg);
    if (st != TOKEMB_OK) {
        tt_free(t);
        MPI_Comm_free(&dup);
        return st;
    }
    *out = t;
    return TOKEMB_OK;
}

int32_t tokemb_mpi_tables_create_f(MPI_Fint comm, size_t n_tables, const int64_t *rows, const int64_t *dims,
                                   tokemb_mpi_tables **out) {
    return tokemb_mpi_tables_create(MPI_Comm_f2c(comm), n_tables, rows, dims, out);
}

void tokemb_mpi_tables_free(tokemb_mpi_tables *t) {
    if (!t) return;
    MPI_Comm_free(&t->comm);
    tt_free(t);
}

int64_t tokemb_mpi_tables_count(const tokemb_mpi_tables *t) { return t ? (int64_t)t->n : -1; }
int64_t tokemb_mpi_tables_rows(const tokemb_mpi_tables *t, size_t k) { return t && k < t->n ? t->rows[k] : -1; }
int64_t tokemb_mpi_tables_dim(const tokemb_mpi_tables *t, size_t k) { return t && k < t->n ? t->dims[k] : -1; }
int32_t tokemb_mpi_tables_owner(const tokemb_mpi_tables *t, size_t k) { return t && k < t->n ? t->owner[k] : -1; }
tokemb_table *tokemb_mpi_tables_local(tokemb_mpi_tables *t, size_t k) { return t && k < t->n ? t->local[k] : NULL; }

int32_t tokemb_mpi_tables_traffic(const tokemb_mpi_tables *t, uint64_t *ids, uint64_t *floats) {
    if (!t || !ids || !floats)
        return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "tokemb_mpi_tables_traffic: t, ids or floats is NULL");
    *ids = t->sent_ids;
    *floats = t->sent_floats;
    return TOKEMB_OK;
}

/* ---- batch checks ---------------------------------------------------------------------------------- */

/* This rank's per-table batches: the arrays, NULL pointers, ids inside each table. */
static int32_t tt_check_batch(const tokemb_mpi_tables *t, const void *const *ids, int is32, const size_t *n,
                              const void *const *buf, const char *what, char *msg) {
    if (!n || !ids || !buf)
        return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "n, ids or %s (the per-table arrays) is NULL", what);
    for (size_t k = 0; k < t->n; k++) {
        if (n[k] > 0 && (!ids[k] || !buf[k]))
            return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "table %zu: ids or %s is NULL with n = %zu", k, what, n[k]);
        if (n[k] > (size_t)INT_MAX / (size_t)t->dims[k])
            return tm_fail(TOKEMB_OVERFLOW, msg, "table %zu: n = %zu rows of dim %lld exceed MPI's int counts", k, n[k],
                           (long long)t->dims[k]);
        for (size_t i = 0; i < n[k]; i++) {
            int64_t g = tm_id_at(ids[k], is32, i);
            if (g < 0 || g >= t->rows[k])
                return tm_fail(TOKEMB_OUT_OF_RANGE, msg, "table %zu: token id %lld at index %zu is outside [0, %lld)",
                               k, (long long)g, i, (long long)t->rows[k]);
        }
    }
    return TOKEMB_OK;
}

/* A call's final status; a failed call reports no traffic (tokemb_mpi_tables_traffic). */
static int32_t tt_done(tokemb_mpi_tables *t, int32_t st) {
    if (st != TOKEMB_OK) t->sent_ids = t->sent_floats = 0;
    return st;
}

/* ---- the exchange ------------------------------------------------------------------------------- */

/* One routed exchange. Send side: send_ids holds, in exchange order (owner, then table), cnt[k] ids for
 * each table k, table k's starting at id_at[k] and its rows (dims[k] floats each) at row_at[k]. Receive
 * side: from rank s, for my j-th table (order[first[rank] + j]), rcnt[s * mine + j] ids. */
typedef struct {
    int64_t *cnt, *scnt;    /* [n] per table; scnt: the same in exchange order */
    size_t *id_at, *row_at; /* [n] */
    int64_t *send_ids;
    size_t n_send, n_send_f;
    int *ic, *rc_, *cc; /* [4P] each: scount, sdispl, rcount, rdispl of the ids, the rows (in floats) and
                         * the per-table counts */
    int64_t *rcnt;      /* [P * mine] */
    int64_t *recv_ids;
    size_t n_recv, n_recv_f;
    /* tt_fetch's result: the distinct rows (table k's r->cnt[k] rows at rows + row_at[k]) and, for
     * ids[k][i], its row among table k's at slot[slot_at[k] + i] */
    float *rows;
    size_t *slot, *slot_at;
} tt_route;

static void tt_route_free(tt_route *r) {
    free(r->cnt);
    free(r->scnt);
    free(r->id_at);
    free(r->row_at);
    free(r->ic);
    free(r->rcnt);
    free(r->slot_at);
    memset(r, 0, sizeof *r);
}

static size_t tt_mine(const tokemb_mpi_tables *t) { return t->first[t->rank + 1] - t->first[t->rank]; }

/* Allocates the per-table counts and offsets and the per-rank count arrays; the caller then sets
 * r->cnt[k] and calls tt_route_layout. */
static int32_t tt_route_alloc(const tokemb_mpi_tables *t, tt_route *r, char *msg) {
    memset(r, 0, sizeof *r);
    size_t P = (size_t)t->size;
    r->cnt = calloc(t->n, sizeof *r->cnt);
    r->scnt = calloc(t->n, sizeof *r->scnt);
    r->id_at = calloc(t->n, sizeof *r->id_at);
    r->row_at = calloc(t->n, sizeof *r->row_at);
    r->ic = calloc(12 * P, sizeof *r->ic);
    r->rcnt = calloc(P * (tt_mine(t) ? tt_mine(t) : 1), sizeof *r->rcnt);
    if (!r->cnt || !r->scnt || !r->id_at || !r->row_at || !r->ic || !r->rcnt)
        return tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    r->rc_ = r->ic + 4 * P;
    r->cc = r->ic + 8 * P;
    return TOKEMB_OK;
}

/* With r->cnt set: the exchange-order offsets, per-rank send counts (ids and floats, MPI int limits)
 * and the send id buffer. */
static int32_t tt_route_layout(tokemb_mpi_tables *t, tt_route *r, char *msg) {
    int P = t->size;
    size_t ids = 0, fl = 0;
    for (int d = 0; d < P; d++) {
        size_t i0 = ids, f0 = fl;
        for (size_t j = t->first[d]; j < t->first[d + 1]; j++) {
            size_t k = t->order[j];
            r->id_at[k] = ids;
            r->row_at[k] = fl;
            ids += (size_t)r->cnt[k];
            fl += (size_t)r->cnt[k] * (size_t)t->dims[k];
        }
        if (ids > INT_MAX || fl > INT_MAX)
            return tm_fail(TOKEMB_OVERFLOW, msg, "%zu ids / %zu floats for ranks 0..%d exceed MPI's int counts", ids,
                           fl, d);
        r->ic[d] = (int)(ids - i0);
        r->ic[P + d] = (int)i0;
        r->rc_[d] = (int)(fl - f0);
        r->rc_[P + d] = (int)f0;
    }
    r->n_send = ids;
    r->n_send_f = fl;
    r->send_ids = tt_ws(t, TW_SEND_IDS, ids, sizeof *r->send_ids);
    if (!r->send_ids) return tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    return TOKEMB_OK;
}

/* Collective, after the send side is agreed: per-table counts to the owners (known-size exchange), the
 * receive side laid out and agreed, then the ids of every table in one MPI_Alltoallv. Returns with
 * *pending = 0 an agreed failure, or with *pending = 1 this rank's own status of the id exchange (message
 * in msg), which the caller agrees on together with its next step. */
static int32_t tt_route_ids(tokemb_mpi_tables *t, const char *fn, tt_route *r, char *msg, int *pending) {
    int P = t->size;
    size_t mine = tt_mine(t);
    int *cc = r->cc;
    for (int d = 0; d < P; d++) {
        cc[d] = (int)(t->first[d + 1] - t->first[d]);
        cc[P + d] = (int)t->first[d];
        cc[2 * P + d] = (int)mine;
        cc[3 * P + d] = (int)((size_t)d * mine);
    }
    for (size_t j = 0; j < t->n; j++) r->scnt[j] = r->cnt[t->order[j]];
    int rc = MPI_Alltoallv(r->scnt, cc, cc + P, MPI_INT64_T, r->rcnt, cc + 2 * P, cc + 3 * P, MPI_INT64_T, t->comm);
    int32_t st = tm_mpi_status(rc, fn, "MPI_Alltoallv", msg);
    size_t ids = 0, fl = 0;
    int *ic = r->ic, *fc = r->rc_;
    for (int s = 0; st == TOKEMB_OK && s < P; s++) {
        size_t i0 = ids, f0 = fl;
        for (size_t j = 0; j < mine; j++) {
            size_t c = (size_t)r->rcnt[(size_t)s * mine + j];
            ids += c;
            fl += c * (size_t)t->dims[t->order[t->first[t->rank] + j]];
        }
        if (ids > INT_MAX || fl > INT_MAX)
            st = tm_fail(TOKEMB_OVERFLOW, msg, "%zu ids / %zu floats received exceed MPI's int counts", ids, fl);
        else {
            ic[2 * P + s] = (int)(ids - i0);
            ic[3 * P + s] = (int)i0;
            fc[2 * P + s] = (int)(fl - f0);
            fc[3 * P + s] = (int)f0;
        }
    }
    if (st == TOKEMB_OK) {
        r->n_recv = ids;
        r->n_recv_f = fl;
        r->recv_ids = tt_ws(t, TW_RECV_IDS, ids, sizeof *r->recv_ids);
        if (!r->recv_ids) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st != TOKEMB_OK) return st;
    rc = MPI_Alltoallv(r->send_ids, ic, ic + P, MPI_INT64_T, r->recv_ids, ic + 2 * P, ic + 3 * P, MPI_INT64_T, t->comm);
    *pending = 1;
    return tm_mpi_status(rc, fn, "MPI_Alltoallv", msg);
}

/* Walks the received segments of my tables: for rank s and my j-th table k, the segment's first id in
 * recv_ids and first float in the received rows. */
typedef struct {
    size_t k, id0, f0, count;
} tt_seg;

static tt_seg tt_seg_at(const tokemb_mpi_tables *t, const tt_route *r, int s, size_t j, size_t *id, size_t *f) {
    size_t mine = tt_mine(t);
    if (j == 0) {
        *id = (size_t)r->ic[3 * t->size + s];
        *f = (size_t)r->rc_[3 * t->size + s];
    }
    tt_seg g = {t->order[t->first[t->rank] + j], *id, *f, (size_t)r->rcnt[(size_t)s * mine + j]};
    *id += g.count;
    *f += g.count * (size_t)t->dims[g.k];
    return g;
}

/* ---- lookups and bags ------------------------------------------------------------------------------ */

/* Collective fetch of the distinct rows of every table's batch into r->rows / r->slot (tt_route). out
 * (named `what` in messages) is the caller's per-table output, checked against n. st/msg: the caller's
 * own validation, agreed together with the batch's; msg then carries the failure. Returns with
 * *pending = 0 an agreed failure, or with *pending = 1 this rank's own outcome of the last exchange, which
 * the caller agrees on (after its own local work when it is TOKEMB_OK). The caller frees r. */
static int32_t tt_fetch(tokemb_mpi_tables *t, const char *fn, const void *const *ids, int is32, const size_t *n,
                        const void *const *out, const char *what, int32_t st, char *msg, tt_route *r, int *pending) {
    *pending = 0;
    memset(r, 0, sizeof *r);
    t->sent_ids = t->sent_floats = 0;
    int P = t->size;
    if (st == TOKEMB_OK) st = tt_check_batch(t, ids, is32, n, out, what, msg);
    size_t total = 0, *slot = NULL, *slot_at = NULL;
    tm_idpos *keys = NULL;
    int64_t *uniq = NULL;
    if (st == TOKEMB_OK) st = tt_route_alloc(t, r, msg);
    if (st == TOKEMB_OK) {
        for (size_t k = 0; k < t->n; k++) total += n[k];
        keys = tt_ws(t, TW_KEYS, 2 * total, sizeof *keys); /* pairs, then the sort's scratch */
        uniq = tt_ws(t, TW_UNIQ, total, sizeof *uniq);
        slot = r->slot = tt_ws(t, TW_SLOT, total, sizeof *slot);
        slot_at = r->slot_at = malloc(t->n * sizeof *slot_at);
        if (!keys || !uniq || !slot || !slot_at) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    if (st == TOKEMB_OK) {
        /* per table: sort (id, position), keep the distinct ids (at the table's input offset in uniq) */
        size_t at = 0;
        for (size_t k = 0; k < t->n; k++) {
            slot_at[k] = at;
            tm_idpos *kk = keys + at;
            for (size_t i = 0; i < n[k]; i++) kk[i] = (tm_idpos){tm_id_at(ids[k], is32, i), i};
            tm_sort_idpos(kk, n[k], t->rows[k], keys + total + at);
            size_t u = 0;
            for (size_t i = 0; i < n[k]; i++) {
                if (i == 0 || kk[i].id != kk[i - 1].id) uniq[at + u++] = kk[i].id;
                slot[at + kk[i].i] = u - 1;
            }
            r->cnt[k] = (int64_t)u;
            at += n[k];
        }
        st = tt_route_layout(t, r, msg);
        for (size_t k = 0; st == TOKEMB_OK && k < t->n; k++)
            memcpy(r->send_ids + r->id_at[k], uniq + slot_at[k], (size_t)r->cnt[k] * sizeof *uniq);
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st == TOKEMB_OK) st = tt_route_ids(t, fn, r, msg, pending);
    if (!*pending) return st;
    /* the owners serve the rows (agreed together with the id exchange) */
    float *reply = tt_ws(t, TW_REPLY, r->n_recv_f, sizeof *reply);
    r->rows = tt_ws(t, TW_ROWS, r->n_send_f, sizeof *r->rows);
    if (st == TOKEMB_OK && (!reply || !r->rows)) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    size_t id = 0, f = 0;
    for (int s = 0; st == TOKEMB_OK && s < P; s++)
        for (size_t j = 0; st == TOKEMB_OK && j < tt_mine(t); j++) {
            tt_seg g = tt_seg_at(t, r, s, j, &id, &f);
            if (!g.count) continue;
            int32_t ls = tokemb_lookup(t->local[g.k], r->recv_ids + g.id0, g.count, reply + g.f0);
            if (ls != TOKEMB_OK) st = tm_fail(ls, msg, "table %zu at its owner: %s", g.k, tokemb_last_error());
        }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st != TOKEMB_OK) {
        *pending = 0;
        return st;
    }
    /* the rows travel back: the receive layout of the ids is the send layout of the rows */
    int *f_ = r->rc_;
    int rc = MPI_Alltoallv(reply, f_ + 2 * P, f_ + 3 * P, MPI_FLOAT, r->rows, f_, f_ + P, MPI_FLOAT, t->comm);
    st = tm_mpi_status(rc, fn, "MPI_Alltoallv", msg);
    if (st == TOKEMB_OK) {
        t->sent_ids = r->n_send;
        t->sent_floats = r->n_recv_f;
    }
    return st;
}

static int32_t tt_lookup(tokemb_mpi_tables *t, const char *fn, const void *const *ids, int is32, const size_t *n,
                         float *const *out) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "";
    tt_route r;
    int pending;
    int32_t st = tt_fetch(t, fn, ids, is32, n, (const void *const *)out, "out", TOKEMB_OK, msg, &r, &pending);
    if (pending) st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    for (size_t k = 0; st == TOKEMB_OK && k < t->n; k++) {
        size_t D = (size_t)t->dims[k];
        const float *base = r.rows + r.row_at[k];
        const size_t *slot = r.slot + r.slot_at[k];
        for (size_t i = 0; i < n[k]; i++) memcpy(out[k] + i * D, base + slot[i] * D, D * sizeof(float));
    }
    tt_route_free(&r);
    return tt_done(t, st);
}

int32_t tokemb_mpi_tables_lookup(tokemb_mpi_tables *t, const int64_t *const *ids, const size_t *n, float *const *out) {
    return tt_lookup(t, "tokemb_mpi_tables_lookup", (const void *const *)ids, 0, n, out);
}

int32_t tokemb_mpi_tables_lookup_i32(tokemb_mpi_tables *t, const int32_t *const *ids, const size_t *n,
                                     float *const *out) {
    return tt_lookup(t, "tokemb_mpi_tables_lookup_i32", (const void *const *)ids, 1, n, out);
}

/* The bag arguments of every table (tm_bags's checks, per table). */
static int32_t tt_check_bags(const tokemb_mpi_tables *t, const size_t *n, const int64_t *const *offsets,
                             const size_t *n_bags, int32_t mode, const float *const *w, float *const *out, char *msg) {
    if (!n || !offsets || !n_bags || !out)
        return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "n, offsets, n_bags or out (the per-table arrays) is NULL");
    for (size_t k = 0; k < t->n; k++) {
        if (!offsets[k]) return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "table %zu: offsets is NULL", k);
        if (n_bags[k] > 0 && !out[k])
            return tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "table %zu: out is NULL with n_bags = %zu", k, n_bags[k]);
        if (n_bags[k] > (size_t)INT_MAX / (size_t)t->dims[k])
            return tm_fail(TOKEMB_OVERFLOW, msg, "table %zu: %zu bags of dim %lld are too many", k, n_bags[k],
                           (long long)t->dims[k]);
        char one[TM_MSG];
        int32_t st = tm_check_bags(offsets[k], n[k], n_bags[k], mode, w ? w[k] : NULL, one);
        if (st != TOKEMB_OK) return tm_fail(st, msg, "table %zu: %.480s", k, one);
    }
    return TOKEMB_OK;
}

/* Pooled bags: the distinct rows of every table come back, then the core pools each table's bags in
 * input order over a table wrapping exactly those rows (ids remapped to their slots), into a scratch
 * buffer; out[k] is written only once every rank has pooled every table. */
static int32_t tt_bags(tokemb_mpi_tables *t, const char *fn, const void *const *ids, int is32, const size_t *n,
                       const int64_t *const *offsets, const size_t *n_bags, int32_t mode, const float *const *w,
                       float *const *out) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "";
    int32_t st = tt_check_bags(t, n, offsets, n_bags, mode, w, out, msg);
    /* out was checked against n_bags above; the batch check's companion buffer is the ids themselves */
    tt_route r;
    int pending;
    st = tt_fetch(t, fn, ids, is32, n, (const void *const *)ids, "ids", st, msg, &r, &pending);
    if (!pending) {
        tt_route_free(&r);
        return tt_done(t, st);
    }
    /* pooled locally, agreed together with the row exchange */
    size_t tmp_n = 0, nmax = 0;
    for (size_t k = 0; k < t->n; k++) {
        tmp_n += n_bags[k] * (size_t)t->dims[k];
        if (n[k] > nmax) nmax = n[k];
    }
    float *tmp = tt_ws(t, TW_TMP, tmp_n, sizeof *tmp);
    int64_t *slot_ids = tt_ws(t, TW_SLOT_IDS, nmax, sizeof *slot_ids);
    if (st == TOKEMB_OK && (!tmp || !slot_ids)) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    size_t at = 0;
    for (size_t k = 0; st == TOKEMB_OK && k < t->n; k++) {
        tokemb_table *sub = NULL;
        int64_t u = r.cnt[k];
        st = tokemb_table_wrap(r.rows + r.row_at[k], u ? u : 1, t->dims[k], t->dims[k], TOKEMB_F32,
                               TOKEMB_WRAP_READONLY, &sub);
        if (st == TOKEMB_OK) {
            for (size_t i = 0; i < n[k]; i++) slot_ids[i] = (int64_t)r.slot[r.slot_at[k] + i];
            st = tokemb_lookup_bags(sub, slot_ids, n[k], offsets[k], n_bags[k], mode, w ? w[k] : NULL, tmp + at);
        }
        if (st != TOKEMB_OK) snprintf(msg, TM_MSG, "table %zu: pooling: %.400s", k, tokemb_last_error());
        tokemb_table_free(sub);
        at += n_bags[k] * (size_t)t->dims[k];
    }
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    if (st == TOKEMB_OK) {
        at = 0;
        for (size_t k = 0; k < t->n; k++) {
            size_t len = n_bags[k] * (size_t)t->dims[k];
            if (len) memcpy(out[k], tmp + at, len * sizeof *tmp);
            at += len;
        }
    }
    tt_route_free(&r);
    return tt_done(t, st);
}

int32_t tokemb_mpi_tables_lookup_bags(tokemb_mpi_tables *t, const int64_t *const *ids, const size_t *n,
                                      const int64_t *const *offsets, const size_t *n_bags, int32_t mode,
                                      const float *const *per_sample_weights, float *const *out) {
    return tt_bags(t, "tokemb_mpi_tables_lookup_bags", (const void *const *)ids, 0, n, offsets, n_bags, mode,
                   per_sample_weights, out);
}

int32_t tokemb_mpi_tables_lookup_bags_i32(tokemb_mpi_tables *t, const int32_t *const *ids, const size_t *n,
                                          const int64_t *const *offsets, const size_t *n_bags, int32_t mode,
                                          const float *const *per_sample_weights, float *const *out) {
    return tt_bags(t, "tokemb_mpi_tables_lookup_bags_i32", (const void *const *)ids, 1, n, offsets, n_bags, mode,
                   per_sample_weights, out);
}

/* ---- gradients and optimizer steps at the owners ------------------------------------------------ */

/* What an owner received for its tables, gathered per table in global input order (rank order, then
 * each rank's order): for my j-th table, cnt[j] ids at ids + at[j] and their rows at rows + fat[j]. */
typedef struct {
    int64_t *ids;
    float *rows;
    size_t *cnt, *at, *fat;
} tt_owned;

static void tt_owned_free(tt_owned *o) { /* ids and rows are workspace buffers */
    free(o->cnt);
    memset(o, 0, sizeof *o);
}

/* Collective: every (id, grad_out row) contribution of every table travels to the table's owner, in
 * exchange order (owner, table, input order); nothing is de-duplicated, since summing on the sender
 * would change the float association. pre_st/pre_msg: the caller's own validation. */
static int32_t tt_push(tokemb_mpi_tables *t, const char *fn, const void *const *ids, int is32, const size_t *n,
                       const float *const *grad_out, int32_t pre_st, const char *pre_msg, tt_owned *o) {
    char msg[TM_MSG] = "";
    int32_t st = pre_st;
    if (st != TOKEMB_OK) snprintf(msg, TM_MSG, "%s", pre_msg);
    memset(o, 0, sizeof *o);
    t->sent_ids = t->sent_floats = 0;
    int P = t->size;
    tt_route r;
    memset(&r, 0, sizeof r);
    if (st == TOKEMB_OK) st = tt_check_batch(t, ids, is32, n, (const void *const *)grad_out, "grad_out", msg);
    if (st == TOKEMB_OK) st = tt_route_alloc(t, &r, msg);
    float *srows = NULL, *rrows = NULL;
    if (st == TOKEMB_OK) {
        for (size_t k = 0; k < t->n; k++) r.cnt[k] = (int64_t)n[k];
        st = tt_route_layout(t, &r, msg);
    }
    if (st == TOKEMB_OK) {
        srows = tt_ws(t, TW_ROWS, r.n_send_f, sizeof *srows);
        if (!srows) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        for (size_t k = 0; st == TOKEMB_OK && k < t->n; k++) {
            for (size_t i = 0; i < n[k]; i++) r.send_ids[r.id_at[k] + i] = tm_id_at(ids[k], is32, i);
            if (n[k]) memcpy(srows + r.row_at[k], grad_out[k], n[k] * (size_t)t->dims[k] * sizeof *srows);
        }
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    int pending = 0;
    if (st == TOKEMB_OK) st = tt_route_ids(t, fn, &r, msg, &pending);
    size_t mine = tt_mine(t);
    if (pending) { /* the receive buffers, agreed together with the id exchange */
        if (st == TOKEMB_OK) {
            rrows = tt_ws(t, TW_REPLY, r.n_recv_f, sizeof *rrows);
            o->ids = tt_ws(t, TW_UNIQ, r.n_recv, sizeof *o->ids);
            o->rows = tt_ws(t, TW_TMP, r.n_recv_f, sizeof *o->rows);
            o->cnt = calloc(3 * (mine ? mine : 1), sizeof *o->cnt);
            if (!rrows || !o->ids || !o->rows || !o->cnt) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        }
        st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    }
    if (st == TOKEMB_OK) {
        int *f_ = r.rc_;
        int rc = MPI_Alltoallv(srows, f_, f_ + P, MPI_FLOAT, rrows, f_ + 2 * P, f_ + 3 * P, MPI_FLOAT, t->comm);
        st = tm_mpi_status(rc, fn, "MPI_Alltoallv", msg);
        /* regroup: table-major, ranks in order within each table (agreed together with the row exchange) */
        o->at = o->cnt + mine;
        o->fat = o->cnt + 2 * mine;
        for (int s = 0; s < P; s++)
            for (size_t j = 0; j < mine; j++) o->cnt[j] += (size_t)r.rcnt[(size_t)s * mine + j];
        size_t a = 0, fa = 0;
        for (size_t j = 0; j < mine; j++) {
            o->at[j] = a;
            o->fat[j] = fa;
            a += o->cnt[j];
            fa += o->cnt[j] * (size_t)t->dims[t->order[t->first[t->rank] + j]];
        }
        size_t *fill = calloc(2 * (mine ? mine : 1), sizeof *fill);
        if (st == TOKEMB_OK && !fill) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        size_t id = 0, f = 0;
        for (int s = 0; st == TOKEMB_OK && s < P; s++)
            for (size_t j = 0; j < mine; j++) {
                tt_seg g = tt_seg_at(t, &r, s, j, &id, &f);
                size_t D = (size_t)t->dims[g.k];
                memcpy(o->ids + o->at[j] + fill[j], r.recv_ids + g.id0, g.count * sizeof *o->ids);
                memcpy(o->rows + o->fat[j] + fill[mine + j], rrows + g.f0, g.count * D * sizeof *o->rows);
                fill[j] += g.count;
                fill[mine + j] += g.count * D;
            }
        free(fill);
        st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    }
    if (st == TOKEMB_OK) {
        t->sent_ids = r.n_send;
        t->sent_floats = r.n_send_f;
    }
    tt_route_free(&r);
    if (st != TOKEMB_OK) tt_owned_free(o);
    return st;
}

static int32_t tt_grad(tokemb_mpi_tables *t, const char *fn, const void *const *ids, int is32, const size_t *n,
                       const float *const *grad_out, float *const *grads) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    size_t mine = tt_mine(t), j0 = t->first[t->rank];
    for (size_t j = 0; st == TOKEMB_OK && j < mine; j++)
        if (!grads || !grads[t->order[j0 + j]])
            st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "table %zu: grad_tables entry is NULL on its owner",
                         t->order[j0 + j]);
    tt_owned o;
    st = tt_push(t, fn, ids, is32, n, grad_out, st, msg, &o);
    if (st != TOKEMB_OK) return st;
    /* every owned table accumulates into a compact copy of its touched rows; copied back only once every
     * rank succeeded */
    tm_compact *c = calloc(mine ? mine : 1, sizeof *c);
    if (!c) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    for (size_t j = 0; st == TOKEMB_OK && j < mine; j++) {
        size_t k = t->order[j0 + j];
        char one[TM_MSG];
        st = tm_accumulate_compact(o.ids + o.at[j], o.cnt[j], o.rows + o.fat[j], t->dims[k], grads[k], &c[j], one);
        if (st != TOKEMB_OK) tm_fail(st, msg, "table %zu: %.480s", k, one);
    }
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    for (size_t j = 0; c && j < mine; j++) {
        size_t k = t->order[j0 + j];
        if (st == TOKEMB_OK) tm_compact_commit(&c[j], t->dims[k], grads[k]);
        tm_compact_free(&c[j]);
    }
    free(c);
    tt_owned_free(&o);
    return tt_done(t, st);
}

int32_t tokemb_mpi_tables_grad_accumulate(tokemb_mpi_tables *t, const int64_t *const *ids, const size_t *n,
                                          const float *const *grad_out, float *const *grad_tables) {
    return tt_grad(t, "tokemb_mpi_tables_grad_accumulate", (const void *const *)ids, 0, n, grad_out, grad_tables);
}

int32_t tokemb_mpi_tables_grad_accumulate_i32(tokemb_mpi_tables *t, const int32_t *const *ids, const size_t *n,
                                              const float *const *grad_out, float *const *grad_tables) {
    return tt_grad(t, "tokemb_mpi_tables_grad_accumulate_i32", (const void *const *)ids, 1, n, grad_out, grad_tables);
}

static int32_t tt_step(tokemb_mpi_tables *t, const char *fn, const void *const *ids, int is32, const size_t *n,
                       const float *const *grad_out) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    size_t mine = tt_mine(t), j0 = t->first[t->rank];
    for (size_t j = 0; st == TOKEMB_OK && j < mine; j++) {
        size_t k = t->order[j0 + j];
        int64_t frozen = 0;
        if (tokemb_optim_step_count(t->local[k]) < 0)
            st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "table %zu: no optimizer selected on its owner", k);
        else if (tokemb_table_get_param(t->local[k], TOKEMB_FROZEN, &frozen) == TOKEMB_OK && frozen)
            st = tm_fail(TOKEMB_READ_ONLY, msg, "table %zu is FROZEN on its owner", k);
    }
    tt_owned o;
    st = tt_push(t, fn, ids, is32, n, grad_out, st, msg, &o);
    if (st != TOKEMB_OK) return st;
    for (size_t j = 0; st == TOKEMB_OK && j < mine; j++) {
        size_t k = t->order[j0 + j];
        st = tokemb_optim_step(t->local[k], o.ids + o.at[j], o.cnt[j], o.rows + o.fat[j]);
        if (st != TOKEMB_OK) snprintf(msg, TM_MSG, "table %zu at its owner: %.400s", k, tokemb_last_error());
    }
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    tt_owned_free(&o);
    return tt_done(t, st);
}

int32_t tokemb_mpi_tables_optim_step(tokemb_mpi_tables *t, const int64_t *const *ids, const size_t *n,
                                     const float *const *grad_out) {
    return tt_step(t, "tokemb_mpi_tables_optim_step", (const void *const *)ids, 0, n, grad_out);
}

int32_t tokemb_mpi_tables_optim_step_i32(tokemb_mpi_tables *t, const int32_t *const *ids, const size_t *n,
                                         const float *const *grad_out) {
    return tt_step(t, "tokemb_mpi_tables_optim_step_i32", (const void *const *)ids, 1, n, grad_out);
}
