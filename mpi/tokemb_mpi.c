/* libtokemb_mpi: tables sharded over an MPI communicator, on libtokemb's public API only.
 *
 * Every collective call follows the same shape: validate locally (nothing written), agree on the
 * outcome with one small all-gather (tm_agree: every rank learns every rank's status, the lowest
 * failing rank broadcasts its message), and only then exchange and write. A failing call therefore
 * returns the same status on every rank, writes nothing anywhere, and leaves no rank inside a
 * collective the others skipped. */
#define _GNU_SOURCE
#include "tm_internal.h"
#include "tm_shared.h"

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
    double t0 = MPI_Wtime();
    int rc = MPI_Allreduce(&mine, &bad, 1, MPI_INT, MPI_MIN, comm);
    tm_agree_seconds += MPI_Wtime() - t0;
    tm_agree_count++;
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
    int rank, size;
    int32_t dst = tm_comm_dup(comm, fn, &dup, &rank, &size);
    if (dst != TOKEMB_OK) return dst;

    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    int64_t meta[3] = {rows, dim, sharding}, root[3] = {rows, dim, sharding};
    if (!out) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "out is NULL");
    else if (rows < 1 || dim < 1)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "rows %lld and dim %lld must be >= 1", (long long)rows,
                     (long long)dim);
    else if (sharding != TOKEMB_MPI_ROW && sharding != TOKEMB_MPI_ROW_MODULO && sharding != TOKEMB_MPI_COLUMN)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "unknown sharding %d", (int)sharding);
    else if (sharding != TOKEMB_MPI_COLUMN && rows < size)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "rows %lld is smaller than the %d ranks", (long long)rows, size);
    else if (sharding == TOKEMB_MPI_COLUMN && dim < size)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "dim %lld is smaller than the %d ranks (column sharding)",
                     (long long)dim, size);
    /* metadata: every rank compares its own with rank 0's (the broadcast is made even by a rank that
     * failed above, so every rank takes part in the same collectives) */
    int rc = MPI_Bcast(root, 3, MPI_INT64_T, 0, dup);
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
        t->local_rows = rows;
        t->local_cols = dim;
        if (sharding == TOKEMB_MPI_ROW) tm_row_block(rows, size, rank, &t->row0, &t->local_rows);
        else if (sharding == TOKEMB_MPI_ROW_MODULO) t->local_rows = (rows - rank + size - 1) / size;
        else tm_row_block(dim, size, rank, &t->col0, &t->local_cols);
        int32_t cs = tokemb_table_create(t->local_rows, t->local_cols, TOKEMB_F32, &t->local);
        if (cs != TOKEMB_OK) st = tm_fail(cs, msg, "local shard: %s", tokemb_last_error());
        else if (!(t->xcount = calloc((size_t)size * 2, sizeof *t->xcount)))
            st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    st = tm_agree(dup, rank, size, fn, st, msg);
    if (st != TOKEMB_OK) {
        if (t) {
            tokemb_table_free(t->local);
            free(t->xcount);
            free(t->scratch[0]);
            free(t->scratch[1]);
        }
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
    free(t->xcount);
    MPI_Comm_free(&t->comm);
    free(t->rw_acc);
    free(t);
}

int64_t tokemb_mpi_table_rows(const tokemb_mpi_table *t) { return t ? t->rows : -1; }
int64_t tokemb_mpi_table_dim(const tokemb_mpi_table *t) { return t ? t->dim : -1; }
tokemb_table *tokemb_mpi_table_local(tokemb_mpi_table *t) { return t ? t->local : NULL; }

int64_t tokemb_mpi_table_global_row(const tokemb_mpi_table *t, int64_t local_row) {
    if (!t || local_row < 0 || local_row >= t->local_rows) return -1;
    return t->sharding == TOKEMB_MPI_ROW_MODULO ? local_row * t->size + t->rank : t->row0 + local_row;
}

int64_t tokemb_mpi_table_global_col(const tokemb_mpi_table *t, int64_t local_col) {
    if (!t || local_col < 0 || local_col >= t->local_cols) return -1;
    return t->col0 + local_col;
}

/* ---- lookup ----------------------------------------------------------------------------------- */

/* One entry of the de-duplication hash: a value (-1: empty) and its number among the distinct values. */
typedef struct {
    int64_t g;
    size_t u;
} tm_hslot;

size_t tm_distinct(const void *ids, int is32, size_t n, size_t *slot, size_t *first) {
    size_t cap = 16;
    unsigned bits = 4;
    while (cap < 2 * n) cap <<= 1, bits++; /* load <= 1/2 */
    tm_hslot *h = malloc(cap * sizeof *h);
    if (!h) return SIZE_MAX;
    for (size_t k = 0; k < cap; k++) h[k].g = -1;
    size_t u = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t g = tm_id_at(ids, is32, i);
        size_t k = (size_t)(((uint64_t)g * 0x9E3779B97F4A7C15ull) >> (64 - bits));
        while (h[k].g != -1 && h[k].g != g) k = (k + 1) & (cap - 1);
        if (h[k].g == -1) {
            h[k].g = g;
            h[k].u = u;
            first[u++] = i;
        }
        slot[i] = h[k].u;
    }
    free(h);
    return u;
}

float *tm_scratch(tokemb_mpi_table *t, int k, size_t n) {
    if (n == 0) n = 1;
    if (n > t->scratch_cap[k]) {
        float *b = realloc(t->scratch[k], n * sizeof *b);
        if (!b) return NULL;
        t->scratch[k] = b;
        t->scratch_cap[k] = n;
    }
    return t->scratch[k];
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

/* Collective: every rank's send counts[P] to its peers, received into recv[P] (MPI_Alltoall); a rank
 * whose send is NULL (it failed before knowing its counts) sends zeros and receives into scratch. */
int tm_counts_exchange(tokemb_mpi_table *t, const int *send, int *recv) {
    if (!send || !recv) {
        memset(t->xcount, 0, (size_t)t->size * sizeof *t->xcount);
        send = t->xcount;
        recv = t->xcount + t->size;
    }
    return MPI_Alltoall(send, 1, MPI_INT, recv, 1, MPI_INT, t->comm);
}

/* Local, no communication: the send side of a validated batch's plan - distinct ids in linear time
 * (tm_distinct numbers them in first-occurrence order), grouped by owner with a counting pass that
 * keeps that order within each owner, and every position's slot (p is zeroed first; the receive side
 * stays empty). TOKEMB_NO_MEMORY (message in msg) is the only failure; p is then freed. */
int32_t tm_plan_local(const tokemb_mpi_table *t, const void *ids, int is32, size_t n, tm_plan *p, char *msg) {
    memset(p, 0, sizeof *p);
    int P = t->size;
    int32_t st = TOKEMB_OK;
    /* de-duplication in linear time (tm_distinct numbers the distinct ids in first-occurrence order);
     * a counting pass then groups them by owner, keeping that order within each owner */
    size_t *first = NULL;
    int *uowner = NULL;
    int64_t *ulrow = NULL;
    {
        first = malloc((n ? n : 1) * sizeof *first);
        uowner = malloc((n ? n : 1) * sizeof *uowner);
        ulrow = malloc((n ? n : 1) * sizeof *ulrow);
        p->slot = malloc((n ? n : 1) * sizeof *p->slot);
        p->send_ids = malloc((n ? n : 1) * sizeof *p->send_ids);
        p->scount = calloc((size_t)P * 5, sizeof(int));
        if (!first || !uowner || !ulrow || !p->slot || !p->send_ids || !p->scount)
            st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    size_t u = 0;
    if (st == TOKEMB_OK && (u = tm_distinct(ids, is32, n, p->slot, first)) == SIZE_MAX)
        st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    if (st == TOKEMB_OK) {
        p->sdispl = p->scount + P;
        p->rcount = p->scount + 2 * P;
        p->rdispl = p->scount + 3 * P;
        int *fill = p->scount + 4 * P;
        for (size_t v = 0; v < u; v++) {
            tm_owner(t, tm_id_at(ids, is32, first[v]), &uowner[v], &ulrow[v]);
            p->scount[uowner[v]]++;
        }
        p->n_uniq = u;
        for (int r = 1; r < P; r++) p->sdispl[r] = p->sdispl[r - 1] + p->scount[r - 1];
        memcpy(fill, p->sdispl, (size_t)P * sizeof *fill);
        for (size_t v = 0; v < u; v++) { /* ulrow[v] becomes distinct id v's position in send_ids */
            size_t at = (size_t)fill[uowner[v]]++;
            p->send_ids[at] = ulrow[v];
            ulrow[v] = (int64_t)at;
        }
        for (size_t i = 0; i < n; i++) p->slot[i] = (size_t)ulrow[p->slot[i]];
    }
    free(first);
    free(uowner);
    free(ulrow);
    if (st != TOKEMB_OK) tm_plan_free(p);
    return st;
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
    tm_phase(t, TM_PH_PLAN);

    /* the counts, exchanged also by a rank that failed above (it sends zeros), then one agreement on
     * the batch and the receive side (size limits, memory) */
    int rc = tm_counts_exchange(t, st == TOKEMB_OK ? p->scount : NULL, st == TOKEMB_OK ? p->rcount : NULL);
    if (st == TOKEMB_OK && rc != MPI_SUCCESS) st = tm_mpi_status(rc, fn, "MPI_Alltoall", msg);
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
    tm_phase(t, TM_PH_IDS);
    if (st != TOKEMB_OK) tm_plan_free(p);
    else tm_sent(t, 0, p->n_uniq, p->n_uniq - (size_t)p->scount[t->rank]);
    return st;
}

/* Collective: the distinct rows this rank's batch references, *rows[n_uniq][dim] in plan order
 * (plan.slot maps input position -> row), in the table's scratch buffer 1 (valid until the table's next
 * call; not freed by the caller). pre_st/pre_msg carry the caller's own validation, agreed
 * together with the batch's. */
int32_t tm_fetch(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const void *out,
                 int32_t pre_st, const char *pre_msg, tm_plan *p, float **rows_out) {
    if (t->sharding == TOKEMB_MPI_COLUMN) return tm_col_fetch(t, fn, ids, is32, n, out, pre_st, pre_msg, p, rows_out);
    int32_t st = tm_plan_make(t, fn, ids, is32, n, out, pre_st, pre_msg, p);
    if (st != TOKEMB_OK) return st;
    char msg[TM_MSG] = "";
    size_t D = (size_t)t->dim;
    int P = t->size;
    float *reply = tm_scratch(t, 0, p->n_recv * D);
    float *rows = tm_scratch(t, 1, p->n_uniq * D); /* the table's: callers do not free it */
    int *cnt = malloc((size_t)P * 4 * sizeof *cnt);
    if (!reply || !rows || !cnt) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    else {
        /* this rank's own share needs no message: it is gathered straight into `rows`; the other ranks'
         * requests (before and after it in recv_ids) into `reply` */
        size_t a = (size_t)p->rdispl[t->rank], m = (size_t)p->rcount[t->rank], z = p->n_recv - a - m;
        int32_t ls = TOKEMB_OK;
        if (a) ls = tokemb_lookup(t->local, p->recv_ids, a, reply);
        if (ls == TOKEMB_OK && m)
            ls = tokemb_lookup(t->local, p->recv_ids + a, m, rows + (size_t)p->sdispl[t->rank] * D);
        if (ls == TOKEMB_OK && z) ls = tokemb_lookup(t->local, p->recv_ids + a + m, z, reply + (a + m) * D);
        if (ls != TOKEMB_OK) st = tm_fail(ls, msg, "local shard: %s", tokemb_last_error());
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    tm_phase(t, TM_PH_LOCAL);
    if (st == TOKEMB_OK) {
        for (int r = 0; r < P; r++) {
            cnt[r] = p->rcount[r] * (int)D;
            cnt[P + r] = p->rdispl[r] * (int)D;
            cnt[2 * P + r] = p->scount[r] * (int)D;
            cnt[3 * P + r] = p->sdispl[r] * (int)D;
        }
        cnt[t->rank] = cnt[2 * P + t->rank] = 0; /* the own share is in place already */
        int rc = MPI_Alltoallv(reply, cnt, cnt + P, MPI_FLOAT, rows, cnt + 2 * P, cnt + 3 * P, MPI_FLOAT, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Alltoallv", msg), msg);
        tm_phase(t, TM_PH_ROWS);
        if (st == TOKEMB_OK) tm_sent(t, 1, p->n_recv, p->n_recv - (size_t)p->rcount[t->rank]);
    }
    free(cnt);
    if (st != TOKEMB_OK) {
        tm_plan_free(p);
        return st;
    }
    *rows_out = rows;
    return TOKEMB_OK;
}

static int32_t tm_lookup(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, float *out) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    tm_span_begin(t);
    tm_plan p;
    float *rows = NULL;
    int32_t st = tm_fetch(t, fn, ids, is32, n, out, TOKEMB_OK, "", &p, &rows);
    if (st != TOKEMB_OK) {
        tm_span_end(t);
        return st;
    }
    /* each input position gets its fetched row: the core's gather over a table wrapping the fetched
     * rows (prefetching, streaming stores for large outputs); a plain copy per row if the wrapper
     * cannot be allocated (nothing can fail after the agreement) */
    size_t D = (size_t)t->dim;
    tokemb_table *sub = NULL;
    int64_t *sid = malloc((n ? n : 1) * sizeof *sid);
    int done = 0;
    if (sid && tokemb_table_wrap(rows, p.n_uniq ? (int64_t)p.n_uniq : 1, t->dim, t->dim, TOKEMB_F32,
                                 TOKEMB_WRAP_READONLY, &sub) == TOKEMB_OK) {
        for (size_t i = 0; i < n; i++) sid[i] = (int64_t)p.slot[i];
        done = tokemb_lookup(sub, sid, n, out) == TOKEMB_OK;
    }
    if (!done)
        for (size_t i = 0; i < n; i++) memcpy(out + i * D, rows + p.slot[i] * D, D * sizeof *out);
    tokemb_table_free(sub);
    free(sid);
    /* rows is the table's scratch (tm_fetch) */
    tm_plan_free(&p);
    tm_phase(t, TM_PH_OUTPUT);
    tm_span_end(t);
    return TOKEMB_OK;
}

/* Local: pools a batch's fetched distinct rows rows[n_uniq][dim] (slot[i]: input i's row) into
 * pooled[n_bags][dim] with the core's tokemb_lookup_bags over a table wrapping exactly those rows, in
 * input order, so every float operation is the core's own. */
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

/* Pooled bags: the distinct rows come back, then the core pools them in input order over a table
 * wrapping exactly those rows (ids remapped to their slots), so every float operation is the core's
 * own and the result equals tokemb_lookup_bags on the whole table bit for bit. */
static int32_t tm_bags(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const int64_t *offsets,
                       size_t n_bags, int32_t mode, const float *w, float *out) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    tm_span_begin(t);
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    if (!offsets) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "offsets is NULL");
    else if (n_bags > 0 && !out) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "out is NULL with n_bags = %zu", n_bags);
    else st = tm_check_bags(offsets, n, n_bags, mode, w, msg);
    if (t->sharding == TOKEMB_MPI_COLUMN) /* pooled at the column owners */
        return tm_col_bags(t, fn, ids, is32, n, offsets, n_bags, mode, w, out, st, msg);
    tm_plan p;
    float *rows = NULL;
    st = tm_fetch(t, fn, ids, is32, n, n ? (const void *)ids : (const void *)offsets, st, msg, &p, &rows);
    if (st != TOKEMB_OK) {
        tm_span_end(t);
        return st;
    }
    size_t D = (size_t)t->dim;
    float *tmp = malloc((n_bags ? n_bags : 1) * D * sizeof *tmp);
    if (!tmp) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    else st = tm_pool(t, rows, p.n_uniq, p.slot, n, offsets, n_bags, mode, w, tmp, msg);
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    if (st == TOKEMB_OK && n_bags) memcpy(out, tmp, n_bags * D * sizeof *out);
    free(tmp);
    /* rows is the table's scratch (tm_fetch) */
    tm_plan_free(&p);
    tm_phase(t, TM_PH_OUTPUT);
    tm_span_end(t);
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
    if (t->sharding == TOKEMB_MPI_COLUMN) return tm_col_push(t, fn, ids, is32, n, grad_out, pre_st, pre_msg, q);
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
    tm_phase(t, TM_PH_PLAN);
    { /* the counts (also from a rank that failed above: zeros), then one agreement on both sides */
        int rc = tm_counts_exchange(t, st == TOKEMB_OK ? sc : NULL, st == TOKEMB_OK ? rc_ : NULL);
        if (st == TOKEMB_OK) st = tm_mpi_status(rc, fn, "MPI_Alltoall", msg);
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
        tm_phase(t, TM_PH_IDS);
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
        tm_phase(t, TM_PH_ROWS);
        if (st == TOKEMB_OK) {
            tm_sent(t, 0, n, n - (size_t)sc[t->rank]);
            tm_sent(t, 1, n, n - (size_t)sc[t->rank]);
        }
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

static int32_t tm_grad(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const float *grad_out,
                       float *grad_shard) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    char msg[TM_MSG] = "";
    tm_span_begin(t);
    int32_t st = grad_shard ? TOKEMB_OK : tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "grad_shard is NULL");
    tm_push q;
    st = tm_push_make(t, fn, ids, is32, n, grad_out, st, msg, &q);
    if (st != TOKEMB_OK) {
        tm_span_end(t);
        return st;
    }
    /* the touched rows are copied into a compact buffer, accumulated there by the core (its summation
     * order, starting from the buffer's values), and copied back only once every rank succeeded */
    tm_compact c;
    st = tm_accumulate_compact(q.recv_ids, q.n_recv, q.recv_rows, t->local_cols, grad_shard, &c, msg);
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    tm_phase(t, TM_PH_LOCAL);
    if (st == TOKEMB_OK) tm_compact_commit(&c, t->local_cols, grad_shard);
    tm_compact_free(&c);
    free(q.recv_ids);
    free(q.recv_rows);
    tm_phase(t, TM_PH_OUTPUT);
    tm_span_end(t);
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
    tm_span_begin(t);
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    int64_t steps = tokemb_optim_step_count(t->local), s0 = steps;
    int64_t frozen = 0;
    tokemb_table_get_param(t->local, TOKEMB_FROZEN, &frozen);
    if (steps < 0) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "no optimizer selected on this rank's shard");
    else if (frozen) /* found before any exchange, so no other shard steps either */
        st = tm_fail(TOKEMB_READ_ONLY, msg, "the shard is frozen (TOKEMB_FROZEN)");
    /* every shard must be at the same step (SparseAdam's bias correction and Adagrad's decay use it)
     * and run the same optimizer with the same hyper-parameters (a column-sharded row-wise Adagrad
     * step is itself collective) */
    double meta[TM_OPTIM_META], root[TM_OPTIM_META];
    tm_optim_meta(t->local, meta);
    memcpy(root, meta, sizeof root);
    int64_t kind = (int64_t)meta[1];
    int rc = MPI_Bcast(root, TM_OPTIM_META, MPI_DOUBLE, 0, t->comm);
    if (rc != MPI_SUCCESS && st == TOKEMB_OK) st = tm_mpi_status(rc, fn, "MPI_Bcast", msg);
    if (st == TOKEMB_OK && root[0] != meta[0])
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "optimizer step count %lld differs from rank 0's %lld",
                     (long long)s0, (long long)root[0]);
    if (st == TOKEMB_OK && root[1] != meta[1])
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "optimizer kind %lld differs from rank 0's %lld", (long long)kind,
                     (long long)root[1]);
    for (int k = 2; st == TOKEMB_OK && k < TM_OPTIM_META; k++)
        if (root[k] != meta[k])
            st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "optimizer parameter %d = %.17g differs from rank 0's %.17g",
                         TOKEMB_OPTIM_LR + k - 2, meta[k], root[k]);
    tm_push q;
    st = tm_push_make(t, fn, ids, is32, n, grad_out, st, msg, &q);
    if (st != TOKEMB_OK) {
        tm_span_end(t);
        return st;
    }
    if (t->sharding == TOKEMB_MPI_COLUMN && kind == TOKEMB_OPTIM_ROWWISE_ADAGRAD) {
        st = tm_col_rowwise_step(t, fn, &q); /* agreed inside */
    } else {
        st = tokemb_optim_step(t->local, q.recv_ids, q.n_recv, q.recv_rows);
        if (st != TOKEMB_OK) snprintf(msg, TM_MSG, "owner: %s", tokemb_last_error());
        st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    }
    free(q.recv_ids);
    free(q.recv_rows);
    tm_phase(t, TM_PH_LOCAL);
    tm_span_end(t);
    return st;
}

int32_t tokemb_mpi_optim_step(tokemb_mpi_table *t, const int64_t *ids, size_t n, const float *grad_out) {
    return tm_step(t, "tokemb_mpi_optim_step", ids, 0, n, grad_out);
}

int32_t tokemb_mpi_optim_step_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n, const float *grad_out) {
    return tm_step(t, "tokemb_mpi_optim_step_i32", ids, 1, n, grad_out);
}
