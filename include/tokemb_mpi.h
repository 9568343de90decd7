/*
 * tokemb_mpi.h - tokemb tables sharded across the ranks of an MPI communicator (libtokemb_mpi).
 *
 * An optional component on top of libtokemb's public API: each rank's shard is an ordinary
 * tokemb_table. The core library has no MPI dependency; this library links MPI and libtokemb.
 *
 * Conventions (the core's, see tokemb.h):
 *  - Every fallible function returns int32_t: TOKEMB_OK (0) or a negative enum tokemb_status value.
 *  - Every function marked "collective" must be called by every rank of the table's communicator,
 *    in the same order. Errors are agreed collectively: if any rank finds bad input (an id outside
 *    the global table, metadata that differs between ranks), every rank returns the same status from
 *    the same call, nothing is modified on any rank, and no rank is left waiting in a collective.
 *  - The message of the last failure on the calling thread is tokemb_mpi_last_error() (this library's
 *    own thread-local message; the core's tokemb_last_error() is not written by this library).
 *  - The table's communicator is a duplicate of the caller's with MPI_ERRORS_RETURN, so an MPI failure
 *    inside a call becomes TOKEMB_IO with the MPI error string, not an abort.
 *  - Results are bitwise identical to one process holding the whole table and seeing the
 *    concatenation of every rank's batch in rank order, for any rank count and thread count.
 */
#ifndef TOKEMB_MPI_H
#define TOKEMB_MPI_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "tokemb.h"

#ifndef TOKEMB_MPI_API
#if defined(TOKEMB_MPI_BUILDING_LIBRARY)
#define TOKEMB_MPI_API __attribute__((visibility("default")))
#else
#define TOKEMB_MPI_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** How the global rows are placed on the ranks. Values are pinned. */
enum tokemb_mpi_sharding {
    /** Rank r owns one contiguous block of rows: with V rows on P ranks, ranks r < V % P own
     *  V / P + 1 rows and the others V / P, in rank order (rank 0 owns row 0). */
    TOKEMB_MPI_ROW = 0,
    /** Round-robin for skewed ids: global row g lives on rank g % P as local row g / P. */
    TOKEMB_MPI_ROW_MODULO = 1
};

/** A table sharded over an MPI communicator. Opaque; create with tokemb_mpi_table_create. */
typedef struct tokemb_mpi_table tokemb_mpi_table;

/**
 * The message of the last failure of a tokemb_mpi_* call on the calling thread, e.g.
 * "tokemb_mpi_lookup: rank 2: token id 1000 at index 7 is outside [0, 1000)". Empty string if this
 * thread has had no failure. Valid until the next tokemb_mpi_* call on the same thread. Never NULL.
 */
TOKEMB_MPI_API const char *tokemb_mpi_last_error(void);

/**
 * Collective: creates a float32 table of `rows` x `dim` sharded over `comm` with `sharding`
 * (enum tokemb_mpi_sharding). Every rank passes the same rows, dim and sharding; each rank allocates
 * only its shard (zero-filled). The table keeps a duplicate of comm (MPI_ERRORS_RETURN); the
 * caller's communicator is not modified and may be freed afterwards. *out is owned by the caller,
 * freed with tokemb_mpi_table_free (also collective).
 * Errors (the same on every rank): TOKEMB_INVALID_ARGUMENT (NULL out, rows/dim < 1, rows smaller than
 * the rank count, unknown sharding, ranks disagreeing on rows/dim/sharding - the message names the
 * first disagreeing rank), TOKEMB_NO_MEMORY, TOKEMB_IO (an MPI call failed). *out is written only on
 * success. Thread-safe with respect to other tables only if the MPI library is MPI_THREAD_MULTIPLE.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_table_create(MPI_Comm comm, int64_t rows, int64_t dim, int32_t sharding,
                                               tokemb_mpi_table **out);

/**
 * tokemb_mpi_table_create taking the Fortran handle of the communicator (MPI_Comm_c2f(comm),
 * mpi4py's comm.py2f()), so callers without MPI headers (ctypes, other languages) can use it.
 * Same rules and errors.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_table_create_f(MPI_Fint comm, int64_t rows, int64_t dim, int32_t sharding,
                                                 tokemb_mpi_table **out);

/** Collective: frees the shard and the duplicated communicator. NULL is a no-op (on every rank). */
TOKEMB_MPI_API void tokemb_mpi_table_free(tokemb_mpi_table *t);

/** Global number of rows, or -1 if t is NULL. */
TOKEMB_MPI_API int64_t tokemb_mpi_table_rows(const tokemb_mpi_table *t);
/** Embedding dim, or -1 if t is NULL. */
TOKEMB_MPI_API int64_t tokemb_mpi_table_dim(const tokemb_mpi_table *t);

/**
 * This rank's shard: an ordinary tokemb_table owned by t (do not free it). Its local row l is the
 * global row tokemb_mpi_table_global_row(t, l). Use it to fill the shard (tokemb_table_write_rows)
 * or read it; NULL if t is NULL.
 */
TOKEMB_MPI_API tokemb_table *tokemb_mpi_table_local(tokemb_mpi_table *t);

/**
 * The global row index of this rank's local row `local_row`, or -1 if t is NULL or local_row is
 * outside [0, local rows).
 */
TOKEMB_MPI_API int64_t tokemb_mpi_table_global_row(const tokemb_mpi_table *t, int64_t local_row);

/**
 * Collective lookup: each rank passes its own batch ids[n] (n may differ between ranks, 0 allowed)
 * and gets out[n][dim] = global_table[ids[i]]. Ids are de-duplicated per owning rank before the
 * exchange (each distinct (id, requesting rank) row travels once) and exchanged with MPI_Alltoallv.
 * Bitwise equal to tokemb_lookup on the whole table.
 * Errors (agreed on every rank): TOKEMB_INVALID_ARGUMENT (NULL t, NULL ids/out with n > 0),
 * TOKEMB_OUT_OF_RANGE (an id outside [0, rows) on any rank; the message names the lowest such rank,
 * the index and the id), TOKEMB_OVERFLOW (a message larger than MPI's int counts), TOKEMB_NO_MEMORY,
 * TOKEMB_IO (MPI failure). out is untouched on every rank on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_lookup(tokemb_mpi_table *t, const int64_t *ids, size_t n, float *out);

/** tokemb_mpi_lookup with int32 ids. Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_lookup_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n, float *out);

/**
 * Collective pipelined lookup of k batches: every rank passes the same k, and for each b < k its own
 * batch ids[b][n[b]] (n[b] may differ between ranks and batches, 0 allowed; ids[b]/out[b] may be NULL
 * when n[b] == 0) and gets out[b][n[b]][dim] = global_table[ids[b][i]], exactly what k separate
 * tokemb_mpi_lookup calls give (bitwise equal to tokemb_lookup on the whole table over each batch
 * concatenated in rank order). Every batch is validated and de-duplicated per owner up front, then
 * the exchanges overlap the local work: batch b+1's ids and batch b-1's rows travel (MPI_Ialltoallv)
 * while the rows other ranks asked of batch b are gathered from this rank's shard. Memory: every
 * batch's distinct rows are held until the end (about the size of the outputs).
 * Row shardings only (TOKEMB_MPI_ROW, TOKEMB_MPI_ROW_MODULO): any other sharding returns
 * TOKEMB_UNSUPPORTED on every rank before any exchange.
 * Errors (agreed on every rank): TOKEMB_INVALID_ARGUMENT (NULL t; NULL ids, n or out with k > 0; k
 * different from rank 0's; NULL ids[b] or out[b] with n[b] > 0), TOKEMB_OUT_OF_RANGE (the message
 * names the lowest failing rank, the batch, the index and the id), TOKEMB_OVERFLOW (a message larger
 * than MPI's int counts), TOKEMB_NO_MEMORY, TOKEMB_IO (MPI failure). Nothing is written to any out[b]
 * on any rank unless the whole call succeeds on every rank.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_lookup_batches(tokemb_mpi_table *t, size_t k, const int64_t *const *ids,
                                                 const size_t *n, float *const *out);

/** tokemb_mpi_lookup_batches with int32 ids. Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_lookup_batches_i32(tokemb_mpi_table *t, size_t k, const int32_t *const *ids,
                                                     const size_t *n, float *const *out);

/**
 * Collective pooled lookup (torch's EmbeddingBag over the global table): each rank passes its own
 * CSR batch (ids[n], offsets[n_bags + 1], optional per_sample_weights[n] with TOKEMB_SUM) and gets
 * out[n_bags][dim]. The distinct rows are fetched as in tokemb_mpi_lookup, then pooled on the
 * requesting rank in input order by the core's own kernels, so out equals tokemb_lookup_bags on the
 * whole table (same mode and weights) bit for bit. The rules for offsets, modes and weights are
 * tokemb_lookup_bags's.
 * Errors (agreed on every rank): as tokemb_mpi_lookup, plus TOKEMB_INVALID_ARGUMENT (NULL offsets,
 * NULL out with n_bags > 0, unknown mode, weights with a mode other than SUM, malformed offsets: the
 * message names the rank and the offset). out is untouched on every rank on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_lookup_bags(tokemb_mpi_table *t, const int64_t *ids, size_t n, const int64_t *offsets,
                                              size_t n_bags, int32_t mode, const float *per_sample_weights, float *out);

/** tokemb_mpi_lookup_bags with int32 ids (offsets stay int64). Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_lookup_bags_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n,
                                                  const int64_t *offsets, size_t n_bags, int32_t mode,
                                                  const float *per_sample_weights, float *out);

/**
 * Collective pipelined pooled lookup of k batches, the tokemb_mpi_lookup_batches form of
 * tokemb_mpi_lookup_bags: every rank passes the same k, and for each b < k its own CSR batch ids[b][n[b]],
 * offsets[b][n_bags[b] + 1] and out[b][n_bags[b]][dim]; per_sample_weights is NULL (no weights) or k
 * pointers, each NULL or per_sample_weights[b][n[b]] (mode SUM only). mode applies to every batch. Each
 * out[b] equals tokemb_mpi_lookup_bags on that batch (so tokemb_lookup_bags on the whole table) bit for
 * bit. Every batch is pooled by the core's kernels, in input order, as soon as its rows have arrived,
 * while the later batches' ids and rows travel.
 * Row shardings only (TOKEMB_MPI_ROW, TOKEMB_MPI_ROW_MODULO): any other sharding returns
 * TOKEMB_UNSUPPORTED on every rank before any exchange.
 * Errors (agreed on every rank): those of tokemb_mpi_lookup_batches (NULL ids, n, offsets, n_bags or
 * out with k > 0) and of tokemb_mpi_lookup_bags for each batch, the message naming the rank and the
 * batch. Nothing is written to any out[b] on any rank unless the whole call succeeds on every rank.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_lookup_bags_batches(tokemb_mpi_table *t, size_t k, const int64_t *const *ids,
                                                      const size_t *n, const int64_t *const *offsets,
                                                      const size_t *n_bags, int32_t mode,
                                                      const float *const *per_sample_weights, float *const *out);

/** tokemb_mpi_lookup_bags_batches with int32 ids (offsets stay int64). Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_lookup_bags_batches_i32(tokemb_mpi_table *t, size_t k, const int32_t *const *ids,
                                                          const size_t *n, const int64_t *const *offsets,
                                                          const size_t *n_bags, int32_t mode,
                                                          const float *const *per_sample_weights, float *const *out);

/**
 * Collective gradient of tokemb_mpi_lookup, delivered to the owners: each rank passes its batch
 * ids[n] and grad_out[n][dim]; every contribution travels to its row's owner (contributions are not
 * pre-summed by the sender, which would change the float association), and each rank adds into its
 * own grad_shard[local rows][dim] (local row l = global row tokemb_mpi_table_global_row(t, l)) the
 * contributions to its rows in global input order (rank order, then each rank's order), starting
 * from the buffer's values, with the core's tokemb_grad_accumulate. grad_shard therefore equals the
 * rows this rank owns of tokemb_grad_accumulate on the whole table over the concatenated batch, bit
 * for bit. Untouched rows are never read or written. The shard's padding_idx and
 * scale_grad_by_freq parameters are not used (leave them unset).
 * Errors (agreed on every rank): as tokemb_mpi_lookup, plus TOKEMB_INVALID_ARGUMENT for NULL
 * grad_out with n > 0 or NULL grad_shard. grad_shard is untouched on every rank on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_grad_accumulate(tokemb_mpi_table *t, const int64_t *ids, size_t n,
                                                  const float *grad_out, float *grad_shard);

/** tokemb_mpi_grad_accumulate with int32 ids. Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_grad_accumulate_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n,
                                                      const float *grad_out, float *grad_shard);

/**
 * Collective coalesced (sparse) gradient at the owners, the sharded form of tokemb_grad_coalesce:
 * each rank passes its batch ids[n] and grad_out[n][dim]; every contribution travels to its row's
 * owner (not pre-summed by the sender), and each rank gets the distinct rows of its own shard that the
 * global batch touched, as LOCAL row ids in ascending order in out_ids[0..u) (global row =
 * tokemb_mpi_table_global_row(t, out_ids[j]); ascending local order is ascending global order for
 * both shardings) and their summed gradient rows in out_rows[u][dim], *n_unique = u. Each row is
 * summed in global input order (rank order, then each rank's order) by the core's tokemb_grad_coalesce,
 * so it has exactly the bits of the row of the same global id in tokemb_grad_coalesce on the whole
 * table over the concatenated batch. out_ids/out_rows feed tokemb_optim_step_coalesced on
 * tokemb_mpi_table_local(t) directly. The shard's padding_idx and scale_grad_by_freq parameters are
 * not used (leave them unset).
 * Output size: the caller's buffers hold `capacity` rows (out_ids[capacity], out_rows[capacity][dim]).
 * u never exceeds the shard's row count (tokemb_table_rows(tokemb_mpi_table_local(t))) nor the global
 * batch size (the sum of n over the ranks), so either bound as capacity always suffices; a smaller
 * capacity is allowed and fails collectively with TOKEMB_OVERFLOW (message: the rank, the rows it
 * needed and its capacity) if the touched rows do not fit.
 * Row shardings only (TOKEMB_MPI_ROW, TOKEMB_MPI_ROW_MODULO): any other sharding returns
 * TOKEMB_UNSUPPORTED on every rank before any exchange.
 * Errors (agreed on every rank): as tokemb_mpi_grad_accumulate, plus TOKEMB_INVALID_ARGUMENT for NULL
 * n_unique or NULL out_ids/out_rows with capacity > 0, TOKEMB_OVERFLOW for capacity as above. Nothing
 * (out_ids, out_rows, *n_unique) is written on any rank on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_grad_coalesce(tokemb_mpi_table *t, const int64_t *ids, size_t n,
                                                const float *grad_out, int64_t *out_ids, float *out_rows,
                                                size_t capacity, size_t *n_unique);

/** tokemb_mpi_grad_coalesce with int32 ids (out_ids stay int64). Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_grad_coalesce_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n,
                                                    const float *grad_out, int64_t *out_ids, float *out_rows,
                                                    size_t capacity, size_t *n_unique);

/**
 * Collective fused optimizer step at the owners: select the optimizer and its hyper-parameters on
 * every rank's shard first (tokemb_optim_select / tokemb_optim_set_param_f64 on
 * tokemb_mpi_table_local(t), the same on every rank). Each rank passes its batch ids[n] and
 * grad_out[n][dim]; the owners receive the contributions to their rows in global input order and run
 * the core's tokemb_optim_step on their shard, so weights and optimizer state after any number of
 * steps equal one process stepping the whole table with the concatenated batches, bit for bit (all
 * four optimizers; every shard's step counter advances once per call, as the single table's).
 * Errors (agreed on every rank): as tokemb_mpi_grad_accumulate, plus TOKEMB_INVALID_ARGUMENT when a
 * rank's shard has no optimizer or its step count differs from rank 0's. Validation and every
 * exchange complete before any shard changes; a failure inside a shard's own step (only
 * TOKEMB_NO_MEMORY for the state arrays on the first step can occur) is reported on every rank.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_optim_step(tokemb_mpi_table *t, const int64_t *ids, size_t n, const float *grad_out);

/** tokemb_mpi_optim_step with int32 ids. Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_optim_step_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n,
                                                 const float *grad_out);

/**
 * Collective tied output head over the row-sharded table (GPT-2 weight tying, the vocabulary rows
 * spread over the ranks): each rank passes its own hidden[n][dim] (n may differ between ranks, 0
 * allowed) and gets its own logits[n][rows] = hidden x W^T over the GLOBAL table W. Every rank's
 * hidden rows are all-gathered (rank order), each rank computes the logits columns of its own rows for
 * all of them, and an MPI_Alltoallv returns every rank's rows of every owner's columns.
 * Each logit is one dim-long dot product in a fixed order (8 float lanes, element c in lane c % 8,
 * then a fixed tree), so the result is bitwise identical for every rank count, sharding and thread
 * count, and equal to this call on one rank holding the whole table. It is NOT bitwise equal to the
 * core's tokemb_logits: that is OpenBLAS sgemm, whose bits for one output element depend on its place
 * in the M x N tiling (on this build, splitting the rows over two ranks changed 67 of 14,000 logits by
 * an ulp), so no sharded sgemm could match it. The error is within the float dot-product bound
 * dim * 2^-24 * sum |h w| (tests compare with a float64 reference).
 * Memory per rank: every rank's hidden rows, a [total n][shard rows] block and n x rows staging.
 * Row shardings only (TOKEMB_MPI_ROW, TOKEMB_MPI_ROW_MODULO): any other sharding returns
 * TOKEMB_UNSUPPORTED on every rank before any exchange.
 * Errors (agreed on every rank): TOKEMB_INVALID_ARGUMENT (NULL t, NULL hidden or logits with n > 0),
 * TOKEMB_OVERFLOW (the gathered rows or n x rows logits exceed MPI's int counts), TOKEMB_NO_MEMORY,
 * TOKEMB_IO (MPI failure). logits is untouched on every rank on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_logits(tokemb_mpi_table *t, const float *hidden, size_t n, float *logits);

/**
 * Collective backward of tokemb_mpi_logits for each rank's grad_logits[n][rows]:
 *  - grad_shard[local rows][dim]: for each of this rank's rows v, the sum over every rank's batch rows
 *    i in global order (rank order, then each rank's order) of grad_logits[i][v] * hidden[i], summed
 *    from zero in float and then added to the buffer's row. The grad_logits columns travel to their
 *    owners, which have every rank's hidden rows.
 *  - grad_hidden[n][dim] = grad_logits x W (overwritten): a sum over ALL vocabulary rows, which are
 *    spread over the ranks. It is summed exactly, independently of how the rows are split: every
 *    product is exact in double and is split on a grid fixed by a global bound (max |grad_logits| of
 *    the row x max |W| of the column), two folds (Demmel-Nguyen pre-rounding) whose parts add exactly
 *    in any order on any rank; the owners' partial sums travel to the requester and the sum is rounded
 *    once to float (error about 2^-24 relative plus 2^-40 of rows x the bound).
 * Both are bitwise identical for every rank count, sharding and thread count (equal to this call on
 * one rank holding the whole table over the concatenated batch); not bitwise equal to the core's
 * sgemm-based tokemb_logits_backward (see tokemb_mpi_logits). Non-finite inputs give non-finite
 * (possibly NaN) gradients. Either output may be NULL (not both); every rank must pass the same
 * choice.
 * Row shardings only (TOKEMB_MPI_ROW, TOKEMB_MPI_ROW_MODULO): any other sharding returns
 * TOKEMB_UNSUPPORTED on every rank before any exchange.
 * Errors (agreed on every rank): as tokemb_mpi_logits, plus TOKEMB_INVALID_ARGUMENT for both outputs
 * NULL, NULL hidden or grad_logits with n > 0, or ranks disagreeing on which outputs are given (the
 * message names the rank). Neither output is written on any rank on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_logits_backward(tokemb_mpi_table *t, const float *hidden, size_t n,
                                                  const float *grad_logits, float *grad_hidden, float *grad_shard);

#ifdef __cplusplus
}
#endif

#endif /* TOKEMB_MPI_H */
