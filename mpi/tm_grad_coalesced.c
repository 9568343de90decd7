/* tm_grad_coalesced.c - the coalesced (sparse) gradient at the owners (tokemb_mpi_grad_coalesce):
 * every contribution travels to its row's owner in global input order (tm_push_make), and the owner
 * coalesces them with the core's own tokemb_grad_coalesce over a shape-only view of its shard, so each
 * summed row has exactly the bits of the core's coalesce on the whole table over the concatenated
 * batch. The result is staged and copied out only once every rank succeeded. */
#include "tm_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int32_t tm_grad_coalesce(tokemb_mpi_table *t, const char *fn, const void *ids, int is32, size_t n,
                                const float *grad_out, int64_t *out_ids, float *out_rows, size_t capacity,
                                size_t *n_unique) {
    int32_t entry = tm_enter_rows(t, fn);
    if (entry != TOKEMB_OK) return entry;
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    if (!n_unique) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "n_unique is NULL");
    else if (capacity > 0 && (!out_ids || !out_rows))
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "out_ids or out_rows is NULL with capacity = %zu", capacity);
    tm_push q;
    st = tm_push_make(t, fn, ids, is32, n, grad_out, st, msg, &q);
    if (st != TOKEMB_OK) return st;
    size_t D = (size_t)t->dim, R = q.n_recv, u = 0;
    int64_t *uids = malloc((R ? R : 1) * sizeof *uids);
    float *urows = malloc((R ? R : 1) * D * sizeof *urows);
    tokemb_table *shape = NULL; /* the shard's shape without its parameters (padding_idx etc. unused) */
    if (!uids || !urows) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    else
        st = tokemb_table_wrap(tokemb_table_data(t->local), t->local_rows, t->dim, t->dim, TOKEMB_F32,
                               TOKEMB_WRAP_READONLY, &shape);
    if (st == TOKEMB_OK) st = tokemb_grad_coalesce(shape, q.recv_ids, R, q.recv_rows, uids, urows, &u);
    if (st != TOKEMB_OK && st != TOKEMB_NO_MEMORY) snprintf(msg, TM_MSG, "owner: %.480s", tokemb_last_error());
    if (st == TOKEMB_OK && u > capacity)
        st = tm_fail(TOKEMB_OVERFLOW, msg, "%zu distinct rows of this rank's shard were touched, capacity is %zu", u,
                     capacity);
    st = tm_agree(t->comm, t->rank, t->size, fn, st, msg);
    if (st == TOKEMB_OK) {
        if (u) {
            memcpy(out_ids, uids, u * sizeof *uids);
            memcpy(out_rows, urows, u * D * sizeof *urows);
        }
        *n_unique = u;
    }
    tokemb_table_free(shape);
    free(uids);
    free(urows);
    free(q.recv_ids);
    free(q.recv_rows);
    return st;
}

int32_t tokemb_mpi_grad_coalesce(tokemb_mpi_table *t, const int64_t *ids, size_t n, const float *grad_out,
                                 int64_t *out_ids, float *out_rows, size_t capacity, size_t *n_unique) {
    return tm_grad_coalesce(t, "tokemb_mpi_grad_coalesce", ids, 0, n, grad_out, out_ids, out_rows, capacity, n_unique);
}

int32_t tokemb_mpi_grad_coalesce_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n, const float *grad_out,
                                     int64_t *out_ids, float *out_rows, size_t capacity, size_t *n_unique) {
    return tm_grad_coalesce(t, "tokemb_mpi_grad_coalesce_i32", ids, 1, n, grad_out, out_ids, out_rows, capacity,
                            n_unique);
}
