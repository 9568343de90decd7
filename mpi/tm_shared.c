/* Small pieces shared by the collectives of tokemb_mpi.c and the tm_<topic>.c files: the communicator
 * every collection keeps, one CSR batch's bag checks, an owner's gradient accumulation into a compact
 * copy of the rows it touches, and the (id, position) sort that de-duplicates a batch (declared in
 * tm_shared.h). */
#define _GNU_SOURCE
#include "tm_shared.h"

#include <stdlib.h>
#include <string.h>

int32_t tm_comm_dup(MPI_Comm comm, const char *fn, MPI_Comm *dup, int *rank, int *size) {
    int rc = MPI_Comm_dup(comm, dup);
    if (rc != MPI_SUCCESS) return tm_mpi_status(rc, fn, "MPI_Comm_dup", tm_err);
    MPI_Comm_set_errhandler(*dup, MPI_ERRORS_RETURN);
    MPI_Comm_rank(*dup, rank);
    MPI_Comm_size(*dup, size);
    return TOKEMB_OK;
}

int32_t tm_check_bags(const int64_t *offsets, size_t n, size_t n_bags, int32_t mode, const float *w, char *msg) {
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

int32_t tm_accumulate_compact(const int64_t *ids, size_t R, const float *rows, int64_t dim, const float *grad,
                              tm_compact *c, char *msg) {
    memset(c, 0, sizeof *c);
    size_t D = (size_t)dim, u = 0;
    size_t *first = malloc((R ? R : 1) * sizeof *first), *us = malloc((R ? R : 1) * sizeof *us);
    int64_t *slot = malloc((R ? R : 1) * sizeof *slot);
    c->uniq = malloc((R ? R : 1) * sizeof *c->uniq);
    tokemb_table *shape = NULL;
    int32_t st = c->uniq && slot && first && us ? TOKEMB_OK : tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    if (st == TOKEMB_OK && R && (u = tm_distinct(ids, 0, R, us, first)) == SIZE_MAX) {
        u = 0;
        st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    if (st == TOKEMB_OK && R) {
        /* the touched rows in first-occurrence order (linear time): the core sums each row's
         * contributions in input order whatever the rows' numbering */
        for (size_t v = 0; v < u; v++) c->uniq[v] = ids[first[v]];
        for (size_t k = 0; k < R; k++) slot[k] = (int64_t)us[k];
        c->rows = malloc(u * D * sizeof *c->rows);
        if (!c->rows) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        else {
            for (size_t k = 0; k < u; k++) memcpy(c->rows + k * D, grad + (size_t)c->uniq[k] * D, D * sizeof *c->rows);
            st = tokemb_table_wrap(c->rows, (int64_t)u, dim, dim, TOKEMB_F32, TOKEMB_WRAP_READONLY, &shape);
            if (st == TOKEMB_OK) st = tokemb_grad_accumulate(shape, slot, R, rows, c->rows);
            if (st != TOKEMB_OK) tm_fail(st, msg, "owner: %s", tokemb_last_error());
        }
    }
    c->u = u;
    tokemb_table_free(shape);
    free(slot);
    free(first);
    free(us);
    if (st != TOKEMB_OK) tm_compact_free(c);
    return st;
}

void tm_compact_commit(const tm_compact *c, int64_t dim, float *grad) {
    size_t D = (size_t)dim;
    for (size_t k = 0; k < c->u; k++) memcpy(grad + (size_t)c->uniq[k] * D, c->rows + k * D, D * sizeof *grad);
}

void tm_compact_free(tm_compact *c) {
    free(c->uniq);
    free(c->rows);
    memset(c, 0, sizeof *c);
}

int tm_idpos_cmp(const void *a, const void *b) {
    const tm_idpos *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

void tm_sort_idpos(tm_idpos *a, size_t n, int64_t bound, tm_idpos *tmp) {
    if (n < 256) {
        qsort(a, n, sizeof *a, tm_idpos_cmp);
        return;
    }
    uint64_t top = bound > 1 ? (uint64_t)(bound - 1) : 0;
    tm_idpos *src = a, *dst = tmp;
    for (unsigned shift = 0; shift < 64 && (top >> shift) != 0; shift += 8) {
        size_t count[257] = {0};
        for (size_t k = 0; k < n; k++) count[(((uint64_t)src[k].id >> shift) & 255) + 1]++;
        if (count[(((uint64_t)src[0].id >> shift) & 255) + 1] == n) continue; /* one digit: nothing moves */
        for (int d = 0; d < 256; d++) count[d + 1] += count[d];
        for (size_t k = 0; k < n; k++) dst[count[((uint64_t)src[k].id >> shift) & 255]++] = src[k];
        tm_idpos *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
}
