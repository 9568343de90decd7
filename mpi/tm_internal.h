/* Internal to libtokemb_mpi: the sharded table, the collective error agreement and the exchange
 * plans shared by every collective (tokemb_mpi.c) and the files built on them. Not installed. */
#ifndef TM_INTERNAL_H
#define TM_INTERNAL_H

#include "tokemb_mpi.h"

#include <stddef.h>
#include <stdint.h>

#define TM_MSG 512

struct tokemb_mpi_table {
    MPI_Comm comm; /* duplicate with MPI_ERRORS_RETURN */
    int rank, size;
    int64_t rows, dim;
    int32_t sharding;
    int64_t row0;       /* TOKEMB_MPI_ROW: first global row of this rank */
    int64_t local_rows; /* rows of this rank's shard */
    tokemb_table *local;
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
/* TOKEMB_MPI_ROW placement: rank r's first global row and row count. */
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

static inline int64_t tm_id_at(const void *ids, int is32, size_t i) {
    return is32 ? (int64_t)((const int32_t *)ids)[i] : ((const int64_t *)ids)[i];
}

/* This rank's batch checks (NULL pointers, MPI's int counts, ids inside the global table). */
int32_t tm_check_batch(const tokemb_mpi_table *t, const void *ids, int is32, size_t n, const void *buf,
                       const char *what, char *msg);

/* The exchange plan of one batch: distinct (owner, local row) pairs in owner order, per-owner counts
 * and displacements, and for every input position its slot in the distinct list. */
typedef struct {
    int64_t *send_ids; /* [n_uniq] local rows at their owners, grouped by owner */
    size_t n_uniq;
    size_t *slot; /* [n] */
    int *scount, *sdispl, *rcount, *rdispl;
    int64_t *recv_ids; /* [n_recv] local rows other ranks want from me */
    size_t n_recv;
} tm_plan;
void tm_plan_free(tm_plan *p);
/* Local, no communication: de-duplicates an already validated batch per owner (send side of the
 * plan; the receive side stays empty). TOKEMB_NO_MEMORY (message in msg) is the only failure. */
int32_t tm_plan_local(const tokemb_mpi_table *t, const void *ids, int is32, size_t n, tm_plan *p, char *msg);
/* Collective: validates the batch, agrees, de-duplicates per owner and exchanges the ids. */
int32_t tm_plan_make(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const void *out,
                     int32_t pre_st, const char *pre_msg, tm_plan *p);
/* Collective: the distinct rows of this rank's batch, *rows_out[n_uniq][dim] in plan order. */
int32_t tm_fetch(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const void *out,
                 int32_t pre_st, const char *pre_msg, tm_plan *p, float **rows_out);

/* Local checks of one CSR bag batch (offsets, mode, weights, out), the rules of tokemb_lookup_bags. */
int32_t tm_check_bags(size_t n, const int64_t *offsets, size_t n_bags, int32_t mode, const float *w, const float *out,
                      char *msg);
/* Local: pools a batch's fetched distinct rows rows[n_uniq][dim] (slot[i]: input i's row) into
 * pooled[n_bags][dim] with the core's tokemb_lookup_bags, in input order. */
int32_t tm_pool(const tokemb_mpi_table *t, float *rows, size_t n_uniq, const size_t *slot, size_t n,
                const int64_t *offsets, size_t n_bags, int32_t mode, const float *w, float *pooled, char *msg);

/* Every (id, row) contribution of the global batch moved to its owner, in global input order. */
typedef struct {
    int64_t *recv_ids; /* local rows */
    float *recv_rows;
    size_t n_recv;
} tm_push;
int32_t tm_push_make(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n, const float *grad_out,
                     int32_t pre_st, const char *pre_msg, tm_push *q);

#endif
