/* Internal to libtokemb_mpi: the sharded table, the collective error agreement and the exchange
 * plans shared by every collective (tokemb_mpi.c) and the files built on them. Not installed. */
#ifndef TM_INTERNAL_H
#define TM_INTERNAL_H

#include "tokemb_mpi.h"

#include <stddef.h>
#include <stdint.h>

#define TM_MSG 512

/* The phases of a collective call timed by the table's statistics (tokemb_mpi_table_stat). */
enum { TM_PH_PLAN, TM_PH_IDS, TM_PH_LOCAL, TM_PH_ROWS, TM_PH_OUTPUT, TM_PH_N };

/* Per-table counters of this rank (tm_stats.c): cumulative since create or the last reset. */
typedef struct {
    int64_t calls, ids_sent, rows_sent, remote_bytes, agreements;
    double sec[TM_PH_N], sec_agree, sec_total;
    double t0, mark;  /* the current call's start and its last phase boundary */
    double agree_s0;  /* tm_agree_seconds at the call's start */
    int64_t agree_n0; /* tm_agree_count at the call's start */
    int open;         /* inside a counted call (phases are timed only then) */
} tm_stats;

struct tokemb_mpi_table {
    MPI_Comm comm; /* duplicate with MPI_ERRORS_RETURN */
    int rank, size;
    int64_t rows, dim;
    int32_t sharding;
    int64_t row0;       /* TOKEMB_MPI_ROW: first global row of this rank */
    int64_t local_rows; /* rows of this rank's shard (all rows with TOKEMB_MPI_COLUMN) */
    int64_t col0;       /* TOKEMB_MPI_COLUMN: first global column of this rank (else 0) */
    int64_t local_cols; /* columns of this rank's shard (dim with the row shardings) */
    tokemb_table *local;
    /* TOKEMB_MPI_COLUMN with row-wise Adagrad: the per-row accumulator (local_rows floats, NULL until
     * the first step) and the shard's step count it belongs to (tm_column.c) */
    float *rw_acc;
    int64_t rw_steps;
    /* per-table scratch reused by every call (tm_scratch): the gathered rows a rank serves (0) and the
     * fetched rows of its own batch (1); a fresh buffer per call cost a page fault per 4 KiB written */
    float *scratch[2];
    size_t scratch_cap[2];
    int *xcount; /* [2 P]: the counts a rank that failed before the counts exchange still sends (zeros)
                  * and receives, so that one agreement covers the batch and the receive side */
    tm_stats stats;
};

/* The message of the last failure on this thread (tokemb_mpi_last_error). */
extern _Thread_local char tm_err[TM_MSG];

/* Formats msg (TM_MSG bytes) and returns status. */
int32_t tm_fail(int32_t status, char *msg, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* TOKEMB_OK if rc is MPI_SUCCESS, else TOKEMB_IO with "<fn>: <what> failed: <MPI's string>" in msg. */
int32_t tm_mpi_status(int rc, const char *fn, const char *what, char *msg);
/* Collective agreement: every rank returns the status of the lowest failing rank (TOKEMB_OK if
 * none), and tm_err holds that rank's message prefixed by fn and the rank. */
int32_t tm_agree(MPI_Comm comm, int rank, int size, const char *fn, int32_t status, const char *msg);
/* Seconds spent in, and number of, tm_agree calls on this thread (read by the statistics). */
extern _Thread_local double tm_agree_seconds;
extern _Thread_local int64_t tm_agree_count;

/* Statistics: a collective call starts with tm_span_begin and ends with tm_span_end; tm_phase adds the
 * time since the last boundary to phase ph; tm_sent counts k items (ids or rows of `item_bytes`) of
 * which k_remote go to other ranks. Each costs one clock read or less. */
void tm_span_begin(tokemb_mpi_table *t);
void tm_span_end(tokemb_mpi_table *t);
static inline void tm_phase(tokemb_mpi_table *t, int ph) {
    if (!t->stats.open) return;
    double n = MPI_Wtime();
    t->stats.sec[ph] += n - t->stats.mark;
    t->stats.mark = n;
}
static inline void tm_sent(tokemb_mpi_table *t, int rows, size_t k, size_t k_remote) {
    if (rows) t->stats.rows_sent += (int64_t)k;
    else t->stats.ids_sent += (int64_t)k;
    t->stats.remote_bytes += (int64_t)k_remote * (rows ? 4 * t->local_cols : 8);
}

/* TOKEMB_MPI_ROW placement: rank r's first global row and row count (TOKEMB_MPI_COLUMN splits the
 * columns the same way: tm_row_block(dim, ...)). */
void tm_row_block(int64_t rows, int size, int r, int64_t *row0, int64_t *n);

/* The owning rank and its local row of global row g. */
static inline void tm_owner(const tokemb_mpi_table *t, int64_t g, int *owner, int64_t *lrow) {
    if (t->sharding == TOKEMB_MPI_ROW_MODULO) {
        *owner = (int)(g % t->size);
        *lrow = g / t->size;
        return;
    }
    int64_t base = t->rows / t->size, rem = t->rows % t->size, big = rem * (base + 1);
    if (g < big) {
        *owner = (int)(g / (base + 1));
        *lrow = g % (base + 1);
    } else {
        *owner = (int)(rem + (g - big) / base);
        *lrow = (g - big) % base;
    }
}

static inline int64_t tm_id_at(const void *ids, int is32, size_t i) {
    return is32 ? (int64_t)((const int32_t *)ids)[i] : ((const int64_t *)ids)[i];
}

/* The entry of a collective that places rows with tm_owner: clears tm_err, then TOKEMB_INVALID_ARGUMENT
 * for a NULL t and TOKEMB_UNSUPPORTED for a sharding other than ROW/ROW_MODULO (tm_err set; the same on
 * every rank, since the sharding was agreed at creation). */
static inline int32_t tm_enter_rows(const tokemb_mpi_table *t, const char *fn) {
    tm_err[0] = 0;
    if (!t) return tm_fail(TOKEMB_INVALID_ARGUMENT, tm_err, "%s: t is NULL", fn);
    if (t->sharding == TOKEMB_MPI_ROW || t->sharding == TOKEMB_MPI_ROW_MODULO) return TOKEMB_OK;
    return tm_fail(TOKEMB_UNSUPPORTED, tm_err, "%s: sharding %d is not supported (TOKEMB_MPI_ROW or ROW_MODULO only)",
                   fn, (int)t->sharding);
}

/* This rank's batch checks (NULL pointers, MPI's int counts, ids inside the global table). */
int32_t tm_check_batch(const tokemb_mpi_table *t, const void *ids, int is32, size_t n, const void *buf,
                       const char *what, char *msg);

/* Collective: send[P] counts to the peers, recv[P] from them (MPI_Alltoall); with send or recv NULL
 * (a rank that failed before knowing its counts) zeros are sent and the table's scratch receives.
 * Returns MPI's code. */
int tm_counts_exchange(tokemb_mpi_table *t, const int *send, int *recv);

/* The distinct values of ids[0..n) (int32 if is32, else int64; each >= 0), numbered in first-occurrence
 * order in linear time (an open-addressing hash): slot[i] = the number of ids[i]'s value, first[v] = the
 * index of value v's first occurrence. Returns the count, or SIZE_MAX if out of memory. */
size_t tm_distinct(const void *ids, int is32, size_t n, size_t *slot, size_t *first);

/* The exchange plan of one batch: distinct (owner, local row) pairs grouped by owner (first-occurrence
 * order within an owner), per-owner counts and displacements, and for every input position its slot
 * in the distinct list. */
typedef struct {
    int64_t *send_ids; /* [n_uniq] local rows at their owners, grouped by owner */
    size_t n_uniq;
    size_t *slot; /* [n] */
    int *scount, *sdispl, *rcount, *rdispl;
    int64_t *recv_ids; /* [n_recv] local rows other ranks want from me */
    size_t n_recv;
} tm_plan;
void tm_plan_free(tm_plan *p);
/* Scratch buffer k (0 or 1) of t with room for n floats (at least 1), kept by the table between calls
 * (grown, never shrunk; freed with the table). NULL if it cannot grow (the old buffer stays). */
float *tm_scratch(tokemb_mpi_table *t, int k, size_t n);
/* Local, no communication: the send side of an already validated batch's plan (receive side empty).
 * TOKEMB_NO_MEMORY (message in msg) is the only failure. */
int32_t tm_plan_local(const tokemb_mpi_table *t, const void *ids, int is32, size_t n, tm_plan *p, char *msg);
/* Local: pools a batch's fetched distinct rows rows[n_uniq][dim] (slot[i]: input i's row) into
 * pooled[n_bags][dim] with the core's tokemb_lookup_bags, in input order. */
int32_t tm_pool(const tokemb_mpi_table *t, float *rows, size_t n_uniq, const size_t *slot, size_t n,
                const int64_t *offsets, size_t n_bags, int32_t mode, const float *w, float *pooled, char *msg);
/* Collective: validates the batch, agrees, de-duplicates per owner and exchanges the ids. */
int32_t tm_plan_make(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const void *out,
                     int32_t pre_st, const char *pre_msg, tm_plan *p);
/* Collective: the distinct rows of this rank's batch, *rows_out[n_uniq][dim] in plan order, in the
 * table's scratch buffer 1 (tm_scratch; the caller does not free it). */
int32_t tm_fetch(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const void *out,
                 int32_t pre_st, const char *pre_msg, tm_plan *p, float **rows_out);

/* Every (id, row) contribution of the global batch moved to its owner, in global input order. */
typedef struct {
    int64_t *recv_ids; /* local rows */
    float *recv_rows;
    size_t n_recv;
} tm_push;
int32_t tm_push_make(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const float *grad_out,
                     int32_t pre_st, const char *pre_msg, tm_push *q);

/* ---- a shard's optimizer (tm_optim.c) ---------------------------------------------------------- */

/* The optimizer kind selected on a shard (enum tokemb_optim_kind), -1 if none: the public API has no
 * getter, so it is read from which hyper-parameters the kind accepts. */
int32_t tm_optim_kind(const tokemb_table *shard);
/* The shard's optimizer as numbers the ranks can compare: step count, kind, then the 7
 * hyper-parameters TOKEMB_OPTIM_LR .. TOKEMB_OPTIM_INITIAL_ACCUMULATOR (0 where the kind has none). */
#define TM_OPTIM_META 9
void tm_optim_meta(const tokemb_table *shard, double meta[TM_OPTIM_META]);

/* ---- TOKEMB_MPI_COLUMN (tm_column.c) ---------------------------------------------------------- */

/* tm_fetch for a column-sharded table: the same contract (plan.slot, n_uniq, whole rows[n_uniq][dim]
 * in plan order); every rank's distinct ids go to every rank, every rank's column slices come back. */
int32_t tm_col_fetch(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const void *out,
                     int32_t pre_st, const char *pre_msg, tm_plan *p, float **rows_out);
/* tm_push_make for a column-sharded table: every rank receives the whole global batch's ids (global =
 * local rows) in global input order and its own column slice of every grad_out row. */
int32_t tm_col_push(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const float *grad_out,
                    int32_t pre_st, const char *pre_msg, tm_push *q);
/* Pooled bags of a column-sharded table, pooled by each column owner on its slice with the core's
 * tokemb_lookup_bags; the arguments were checked by the caller (pre_st/pre_msg). Writes out only on
 * success on every rank. */
int32_t tm_col_bags(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const int64_t *offsets,
                    size_t n_bags, int32_t mode, const float *w, float *out, int32_t pre_st, const char *pre_msg);
/* Collective: one row-wise Adagrad step of a column-sharded table from its push q (every rank's
 * column slice of the global batch). Returns the agreed status; nothing changes on failure. */
int32_t tm_col_rowwise_step(tokemb_mpi_table *t, const char *fn, const tm_push *q);

#endif
