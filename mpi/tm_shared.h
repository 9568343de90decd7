/* Internal to libtokemb_mpi: small pieces any collective can use (tm_shared.c) - the communicator a
 * collection keeps, one CSR batch's bag checks, an owner's gradient accumulation into a compact copy of
 * the rows it touches, and the linear (id, position) sort that de-duplicates a batch. Not installed. */
#ifndef TM_SHARED_H
#define TM_SHARED_H

#include "tm_internal.h"

/* Duplicates comm with MPI_ERRORS_RETURN (every collection keeps its own) and reads rank and size;
 * TOKEMB_IO with the message in tm_err if MPI_Comm_dup fails. */
int32_t tm_comm_dup(MPI_Comm comm, const char *fn, MPI_Comm *dup, int *rank, int *size);

/* One CSR batch's bag arguments, tokemb_lookup_bags's rules: a known mode, weights only with SUM,
 * offsets[0] == 0, offsets[n_bags] == n, non-decreasing. offsets is not NULL. */
int32_t tm_check_bags(const int64_t *offsets, size_t n, size_t n_bags, int32_t mode, const float *w, char *msg);

/* An owner's gradient contributions (ids[R] rows of its table, rows[R][dim], in global input order)
 * accumulated by the core's tokemb_grad_accumulate, starting from grad's values, into a compact copy
 * of the touched rows: uniq[u] sorted, rows[u][dim]. grad is only read; tm_compact_commit writes the
 * rows back once every rank succeeded. */
typedef struct {
    int64_t *uniq;
    float *rows;
    size_t u;
} tm_compact;
int32_t tm_accumulate_compact(const int64_t *ids, size_t R, const float *rows, int64_t dim, const float *grad,
                              tm_compact *c, char *msg);
void tm_compact_commit(const tm_compact *c, int64_t dim, float *grad);
void tm_compact_free(tm_compact *c);

/* (id, position) pairs ordered by id, then position. tm_sort_idpos sorts a[n] whose positions increase
 * on entry and whose ids lie in [0, bound): a stable LSD radix sort over the bits of bound - 1 (linear in
 * n; tmp[n] is scratch), qsort with tm_idpos_cmp below 256 pairs. */
typedef struct {
    int64_t id;
    size_t i;
} tm_idpos;
int tm_idpos_cmp(const void *a, const void *b);
void tm_sort_idpos(tm_idpos *a, size_t n, int64_t bound, tm_idpos *tmp);

#endif
