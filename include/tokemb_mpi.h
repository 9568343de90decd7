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

/** How the global table is placed on the ranks. Values are pinned. */
enum tokemb_mpi_sharding {
    /** Rank r owns one contiguous block of rows: with V rows on P ranks, ranks r < V % P own
     *  V / P + 1 rows and the others V / P, in rank order (rank 0 owns row 0). */
    TOKEMB_MPI_ROW = 0,
    /** Round-robin for skewed ids: global row g lives on rank g % P as local row g / P. */
    TOKEMB_MPI_ROW_MODULO = 1,
    /** Column-wise (TorchRec's column-wise sharding): every rank holds every row, rank r owns one
     *  contiguous slice of the dimensions: with D dims on P ranks, ranks r < D % P own D / P + 1
     *  columns and the others D / P, in rank order (rank 0 owns column 0). Needs dim >= P (rows may
     *  be fewer than P). The shard is an ordinary tokemb_table of rows x local columns (local row l
     *  is global row l; local column c is global column tokemb_mpi_table_global_col(t, c)). Lookups
     *  send each rank's distinct ids to every rank and get back every rank's column slices; bags are
     *  pooled by each column owner on its slice (pooling is per element) and the pooled slices come
     *  back; gradients and optimizer steps send every contribution's column slice to its owner.
     *  Lookups and bags refuse a shard with max_norm set (TOKEMB_UNSUPPORTED): renormalising needs
     *  the whole row's norm. */
    TOKEMB_MPI_COLUMN = 2
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
 * the rank count with a row sharding, dim smaller than the rank count with TOKEMB_MPI_COLUMN, unknown
 * sharding, ranks disagreeing on rows/dim/sharding - the message names the
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
 * global row tokemb_mpi_table_global_row(t, l) and its local column c the global column
 * tokemb_mpi_table_global_col(t, c) (a TOKEMB_MPI_COLUMN shard has dim = this rank's column count).
 * Use it to fill the shard (tokemb_table_write_rows) or read it; NULL if t is NULL.
 */
TOKEMB_MPI_API tokemb_table *tokemb_mpi_table_local(tokemb_mpi_table *t);

/**
 * The global row index of this rank's local row `local_row`, or -1 if t is NULL or local_row is
 * outside [0, local rows).
 */
TOKEMB_MPI_API int64_t tokemb_mpi_table_global_row(const tokemb_mpi_table *t, int64_t local_row);

/**
 * The global column of this rank's local column `local_col`: with TOKEMB_MPI_COLUMN this rank's first
 * global column plus local_col, with the row shardings local_col itself (every rank holds whole rows).
 * -1 if t is NULL or local_col is outside [0, the shard's dim). Thread-safe.
 */
TOKEMB_MPI_API int64_t tokemb_mpi_table_global_col(const tokemb_mpi_table *t, int64_t local_col);

/**
 * Collective initialisation: the global table becomes `torch.manual_seed(seed);
 * torch.nn.Embedding(rows, dim).weight` (N(0, 1), tokemb_table_init_normal's bits), each rank
 * producing only the rows it owns with tokemb_table_init_normal_shard: no rank draws the whole random
 * stream's normals. TOKEMB_MPI_ROW: one MT19937 jump to the rank's block (tens of ms) plus its own
 * rows, so P ranks take about 1/P of the single-process time. TOKEMB_MPI_ROW_MODULO: a rank's rows
 * are interleaved with the others', so each rank still advances the engine through the whole stream
 * (a few ns per skipped value, without the normal transform; gaps of 2^22 values or more are jumped)
 * and transforms only its own rows; TOKEMB_MPI_COLUMN likewise, every row's slice of the rank's columns
 * (docs/performance.md has the measured costs). The padding row of a
 * shard, if the caller set one on tokemb_mpi_table_local, is zeroed (a local index). Every rank passes
 * the same seed (torch's rules: only its low 32 bits seed the engine).
 * Errors (agreed on every rank): TOKEMB_INVALID_ARGUMENT (NULL t - local, not collective; a seed that
 * differs from rank 0's, the message names the rank), TOKEMB_OVERFLOW (rows * dim >= 2^62), TOKEMB_IO
 * (MPI failure). No shard is modified on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_table_init_torch(tokemb_mpi_table *t, uint64_t seed);

/**
 * Collective lookup: each rank passes its own batch ids[n] (n may differ between ranks, 0 allowed)
 * and gets out[n][dim] = global_table[ids[i]]. Ids are de-duplicated per owning rank before the
 * exchange (each distinct (id, requesting rank) row travels once) and exchanged with MPI_Alltoallv.
 * Bitwise equal to tokemb_lookup on the whole table.
 * Errors (agreed on every rank): TOKEMB_INVALID_ARGUMENT (NULL t, NULL ids/out with n > 0),
 * TOKEMB_OUT_OF_RANGE (an id outside [0, rows) on any rank; the message names the lowest such rank,
 * the index and the id), TOKEMB_OVERFLOW (a message larger than MPI's int counts), TOKEMB_UNSUPPORTED
 * (a TOKEMB_MPI_COLUMN shard with max_norm set), TOKEMB_NO_MEMORY, TOKEMB_IO (MPI failure). out is
 * untouched on every rank on error.
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
 * out[n_bags][dim]. With the row shardings the distinct rows are fetched as in tokemb_mpi_lookup,
 * then pooled on the requesting rank in input order by the core's own kernels; with TOKEMB_MPI_COLUMN
 * every rank's bags (ids, offsets, weights, mode) go to every rank, each pools them over its own
 * columns with the core's tokemb_lookup_bags (pooling is per element) and sends the pooled slices
 * back. Either way out equals tokemb_lookup_bags on the whole table (same mode and weights) bit for
 * bit. Ranks may use different modes. The rules for offsets, modes and weights are
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
 * own grad_shard[local rows][local dim] (the shard's shape: local row l = global row
 * tokemb_mpi_table_global_row(t, l), local column c = global column tokemb_mpi_table_global_col(t, c);
 * with TOKEMB_MPI_COLUMN every rank receives every contribution's slice of its columns) the
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
 * TOKEMB_MPI_COLUMN: SGD, Adagrad and SparseAdam are per element and run as the core's step on each
 * column slice. Row-wise Adagrad's row term mean_c(g'^2) spans every column: the core sums the
 * squares in double from column 0 to D-1, so the running sums of the touched rows pass from rank to
 * rank in column order (each continues the sum over its columns; the last broadcasts them), which is
 * the core's sum exactly, and each rank then applies the core's update to its columns. Its per-row
 * accumulator (one float per row) is kept by t, since the core's is not reachable through the public
 * API: it starts afresh (initial accumulator) whenever the shard's step count is 0, i.e. after
 * tokemb_optim_select; step such a shard only through this call (TOKEMB_INVALID_ARGUMENT otherwise).
 * Errors (agreed on every rank): as tokemb_mpi_grad_accumulate, plus TOKEMB_INVALID_ARGUMENT when a
 * rank's shard has no optimizer, or its optimizer kind, a hyper-parameter or its step count differs
 * from rank 0's (the message names the parameter), and
 * TOKEMB_READ_ONLY for a frozen shard. Validation and every exchange complete before any shard
 * changes; a failure inside a shard's own step (only TOKEMB_NO_MEMORY for the state arrays on the
 * first step can occur) is reported on every rank.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_optim_step(tokemb_mpi_table *t, const int64_t *ids, size_t n, const float *grad_out);

/** tokemb_mpi_optim_step with int32 ids. Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_optim_step_i32(tokemb_mpi_table *t, const int32_t *ids, size_t n,
                                                 const float *grad_out);

/**
 * Statistics of one table on the calling rank (pinned values), read with tokemb_mpi_table_stat.
 * They are cumulative since tokemb_mpi_table_create or the last tokemb_mpi_table_stats_reset, and
 * cover tokemb_mpi_lookup, tokemb_mpi_lookup_bags, tokemb_mpi_grad_accumulate and
 * tokemb_mpi_optim_step (all id widths; failed calls included). Bytes count the payload this rank
 * hands to MPI: 8 per id and 4 * dim per row, its own share (sent to itself) included; the counts
 * exchange and the error agreements (one int each) are not payload. The time of a call is split into
 * consecutive phases that add up to TOKEMB_MPI_STAT_SECONDS; each phase includes the error agreement
 * that closes it (also reported alone as TOKEMB_MPI_STAT_SECONDS_AGREE).
 */
enum tokemb_mpi_stat {
    /** Collective calls counted. */
    TOKEMB_MPI_STAT_CALLS = 0,
    /** Ids sent: lookups and bags send each distinct (id, owner) once (with TOKEMB_MPI_COLUMN each
     *  distinct id to every rank); gradients and optimizer steps send one per contribution. */
    TOKEMB_MPI_STAT_IDS_SENT = 1,
    /** Rows sent (rows served to requesters, or gradient rows pushed to owners): rows of dim floats,
     *  with TOKEMB_MPI_COLUMN slices of this rank's columns. */
    TOKEMB_MPI_STAT_ROWS_SENT = 2,
    /** Payload bytes sent: 8 * IDS_SENT + 4 * (this rank's columns) * ROWS_SENT. */
    TOKEMB_MPI_STAT_BYTES_SENT = 3,
    /** The part of BYTES_SENT addressed to other ranks (the rest stays within this rank). */
    TOKEMB_MPI_STAT_BYTES_REMOTE = 4,
    /** Error agreements made (each one MPI_Allreduce of one int; a broadcast follows only on error). */
    TOKEMB_MPI_STAT_AGREEMENTS = 5,
    /** Wall seconds inside the counted calls. */
    TOKEMB_MPI_STAT_SECONDS = 10,
    /** ... validating the batch and de-duplicating (or, for gradients, grouping) ids by owner. */
    TOKEMB_MPI_STAT_SECONDS_PLAN = 11,
    /** ... exchanging the per-rank counts and the ids (MPI_Alltoall + MPI_Alltoallv). */
    TOKEMB_MPI_STAT_SECONDS_ID_EXCHANGE = 12,
    /** ... local work on this rank's shard: gathering the requested rows, or accumulating /
     *  stepping the received gradient rows. */
    TOKEMB_MPI_STAT_SECONDS_LOCAL = 13,
    /** ... exchanging the rows (MPI_Alltoallv). */
    TOKEMB_MPI_STAT_SECONDS_ROW_EXCHANGE = 14,
    /** ... writing the output: rows to their input positions (lookup), pooling (bags), copying the
     *  accumulated rows back (gradients). */
    TOKEMB_MPI_STAT_SECONDS_OUTPUT = 15,
    /** ... inside the error agreements (already included in the phases above). */
    TOKEMB_MPI_STAT_SECONDS_AGREE = 16
};

/**
 * Reads statistic `stat` (enum tokemb_mpi_stat) of this rank into *value (counts are exact below
 * 2^53). Local, not collective; not thread-safe with a concurrent call on the same table.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t or value, unknown stat); *value is untouched on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_table_stat(const tokemb_mpi_table *t, int32_t stat, double *value);

/** Sets every statistic of this rank to zero. Local, not collective. Errors: TOKEMB_INVALID_ARGUMENT
 *  (NULL t). */
TOKEMB_MPI_API int32_t tokemb_mpi_table_stats_reset(tokemb_mpi_table *t);

/**
 * Collective sharded checkpoint of the table's weights. `path` names the index, e.g.
 * "ckpt/emb.index.json" (the same path on every rank, on a file system every rank sees): rank r saves
 * its shard as "ckpt/emb-<r+1>-of-<P>.g<G>.safetensors" (tensor "weight", F32 [local rows, dim],
 * through tokemb_safetensors_save_ex: atomic), and once every rank's file is durable rank 0 writes
 * the JSON index with tokemb_checkpoint_save_index (global shape, and per file the rows it holds as
 * [start, step, count] and its columns; docs/formats.md), also atomically. G is the generation: the
 * current index's + 1 (1 for a new checkpoint), so a save never overwrites a file the current index
 * names and a crash at any point leaves the previous checkpoint whole; after the new index is in
 * place rank 0 removes the files the replaced index named. Only the weights are saved: optimizer
 * state and hyper-parameters are not (select the optimizer again after a load; its state restarts).
 * The checkpoint loads with tokemb_mpi_table_load at any rank count and sharding, and in one process
 * without MPI with tokemb_checkpoint_load.
 * Errors (agreed on every rank): TOKEMB_INVALID_ARGUMENT (NULL t, NULL or empty path, a path naming a
 * folder or an index name the shard names cannot be made from, ranks passing different paths),
 * TOKEMB_UNSUPPORTED (a shard that is not F32), TOKEMB_IO (a shard or the index cannot be written;
 * the message names the rank and the file), TOKEMB_NO_MEMORY. On error no index is written and every
 * shard file this call wrote is removed: the previous checkpoint at path, if any, is untouched.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_table_save(tokemb_mpi_table *t, const char *path);

/**
 * Collective load of a checkpoint written by tokemb_mpi_table_save (any rank count and sharding) or
 * any index tokemb_checkpoint_save_index accepts, into this table of the same global shape: each rank
 * reads only the rows it owns (tokemb_checkpoint_read: one pread per run of its rows in one shard file,
 * gaps of at most 4 KiB between them read through), into a scratch buffer; the shards are written only once every rank has
 * read its rows. Optimizer state is untouched. With a table on MPI_COMM_SELF this is the single-process
 * load of the whole table (also tokemb_checkpoint_load, without MPI).
 * Errors (agreed on every rank; the message names the rank and the file): TOKEMB_INVALID_ARGUMENT
 * (NULL t, NULL or empty path, ranks passing different paths, a checkpoint of another shape),
 * TOKEMB_IO (missing or unreadable index or shard), TOKEMB_FORMAT (malformed index, a shard whose
 * header, tensor, dtype or shape disagrees with the index; the message names the byte offset),
 * TOKEMB_UNSUPPORTED (an index of another version or dtype), TOKEMB_NO_MEMORY. No shard is modified on
 * any rank on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_table_load(tokemb_mpi_table *t, const char *path);

/* ---- TABLE sharding: a collection of tables, each placed whole on one rank ---------------------- */

/**
 * A collection of float32 tables (TorchRec's EmbeddingBagCollection sharded TABLE_WISE): table k of
 * rows[k] x dims[k] lives whole on one rank, its owner, as an ordinary tokemb_table; the other ranks
 * hold nothing of it. Opaque; create with tokemb_mpi_tables_create.
 *
 * Placement (tokemb_mpi_tables_plan; deterministic, the same on every rank): each table's cost is its
 * size in bytes, rows[k] * dims[k] * 4. Tables are taken in decreasing cost, equal costs in increasing
 * table index; each goes to the rank with the smallest total cost placed so far, equal totals to the
 * lowest rank. This is TorchRec's greedy partitioner (GreedyPerfPartitioner: largest shard first onto
 * the least-loaded device) with storage as the cost and an explicit tie rule. With fewer tables than
 * ranks, the ranks past the number of tables own nothing (and still take part in every collective).
 *
 * Batches are passed per table as arrays of n_tables pointers and lengths (the layout of a
 * KeyedJaggedTensor split by key): ids[k] with n[k] ids for table k, and so on. The arrays and the
 * buffers they point to are the caller's and are only read (outputs only written) during the call;
 * nothing is kept. A table a rank has no ids for has n[k] = 0 and may have NULL pointers.
 *
 * The collection keeps its exchange buffers between calls (each grows to the largest batch seen: about
 * 64 bytes per id of the batch plus the rows exchanged), so calls on one collection must not run
 * concurrently; tokemb_mpi_tables_free frees them.
 */
typedef struct tokemb_mpi_tables tokemb_mpi_tables;

/**
 * The placement tokemb_mpi_tables_create makes (see tokemb_mpi_tables above), computed without MPI:
 * owner[k] = the rank of n_ranks that owns table k. Not collective; deterministic.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL rows/dims/owner, n_tables < 1, n_ranks < 1, rows or dim < 1:
 * the message names the table), TOKEMB_OVERFLOW (the tables' total size in bytes exceeds int64).
 * owner is written only on success.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_plan(size_t n_tables, const int64_t *rows, const int64_t *dims,
                                              int32_t n_ranks, int32_t *owner);

/**
 * Collective: creates n_tables float32 tables, table k of rows[k] x dims[k], each placed whole on one
 * rank of comm by tokemb_mpi_tables_plan; each owner allocates its tables (zero-filled). Every rank
 * passes the same n_tables, rows and dims. The collection keeps a duplicate of comm
 * (MPI_ERRORS_RETURN). *out is owned by the caller, freed with tokemb_mpi_tables_free (collective).
 * Errors (the same on every rank): TOKEMB_INVALID_ARGUMENT (NULL out/rows/dims, n_tables < 1, a table
 * with rows or dim < 1, ranks disagreeing on n_tables or on a table's shape - the message names the
 * first disagreeing rank and table), TOKEMB_OVERFLOW, TOKEMB_NO_MEMORY (on any owner), TOKEMB_IO (an
 * MPI call failed). *out is written only on success.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_create(MPI_Comm comm, size_t n_tables, const int64_t *rows,
                                                const int64_t *dims, tokemb_mpi_tables **out);

/** tokemb_mpi_tables_create taking the Fortran handle of the communicator (MPI_Comm_c2f(comm),
 *  mpi4py's comm.py2f()). Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_create_f(MPI_Fint comm, size_t n_tables, const int64_t *rows,
                                                  const int64_t *dims, tokemb_mpi_tables **out);

/** Collective: frees every owned table and the duplicated communicator. NULL is a no-op (on every rank). */
TOKEMB_MPI_API void tokemb_mpi_tables_free(tokemb_mpi_tables *t);

/** Number of tables, or -1 if t is NULL. */
TOKEMB_MPI_API int64_t tokemb_mpi_tables_count(const tokemb_mpi_tables *t);
/** Rows of table k, or -1 if t is NULL or k >= the number of tables. */
TOKEMB_MPI_API int64_t tokemb_mpi_tables_rows(const tokemb_mpi_tables *t, size_t k);
/** Dim of table k, or -1 if t is NULL or k >= the number of tables. */
TOKEMB_MPI_API int64_t tokemb_mpi_tables_dim(const tokemb_mpi_tables *t, size_t k);
/** The rank (in the creating communicator) that owns table k, or -1 if t is NULL or k is out of range. */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_owner(const tokemb_mpi_tables *t, size_t k);
/**
 * Table k as an ordinary tokemb_table owned by t (do not free it) if this rank owns it, else NULL (also
 * for NULL t or k out of range). Fill it, read it, select its optimizer on it.
 */
TOKEMB_MPI_API tokemb_table *tokemb_mpi_tables_local(tokemb_mpi_tables *t, size_t k);

/**
 * What this rank sent in the last collective lookup, bags, gradient or step call on t (0 and 0 after a
 * failed call): *ids = the ids it sent to the owners (for lookups and bags the distinct ids of each
 * table: each distinct (table, id, requesting rank) travels once), *floats = the row floats it sent
 * (for lookups and bags the rows it served as an owner; for gradients and steps its grad_out rows).
 * Lets a caller check the traffic against its minimum. Not collective. Errors: TOKEMB_INVALID_ARGUMENT
 * (NULL t, ids or floats).
 */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_traffic(const tokemb_mpi_tables *t, uint64_t *ids, uint64_t *floats);

/**
 * Collective lookup over every table at once: each rank passes, for every table k, its own ids[k][n[k]]
 * and gets out[k][n[k]][dims[k]] = table_k[ids[k][i]]. Each rank de-duplicates its ids per table; the
 * distinct ids of every table travel to their owners in one MPI_Alltoallv and the rows come back in one
 * more (plus a small exchange of per-table counts). Bitwise equal to tokemb_lookup on each whole table.
 * Errors (agreed on every rank): TOKEMB_INVALID_ARGUMENT (NULL t, NULL n/ids/out array, NULL ids[k] or
 * out[k] with n[k] > 0), TOKEMB_OUT_OF_RANGE (an id outside [0, rows[k]); the message names the lowest
 * such rank, the table, the index and the id), TOKEMB_OVERFLOW (a message larger than MPI's int counts),
 * TOKEMB_NO_MEMORY, TOKEMB_IO (MPI failure). No out[k] is written on any rank on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_lookup(tokemb_mpi_tables *t, const int64_t *const *ids, const size_t *n,
                                                float *const *out);

/** tokemb_mpi_tables_lookup with int32 ids. Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_lookup_i32(tokemb_mpi_tables *t, const int32_t *const *ids, const size_t *n,
                                                    float *const *out);

/**
 * Collective pooled lookup over every table at once (TorchRec's KeyedJaggedTensor to pooled
 * embeddings): each rank passes, for every table k, its CSR batch ids[k][n[k]], offsets[k][n_bags[k] + 1]
 * and optionally per_sample_weights[k][n[k]] (the outer array may be NULL for no weights anywhere, an
 * entry NULL for none on that table; weights need TOKEMB_SUM), and gets out[k][n_bags[k]][dims[k]].
 * mode (TOKEMB_SUM / MEAN / MAX) applies to every table. The distinct rows are fetched as in
 * tokemb_mpi_tables_lookup and pooled on the requesting rank in input order by the core's kernels, so
 * out[k] equals tokemb_lookup_bags on whole table k bit for bit. Offsets follow tokemb_lookup_bags's rules.
 * The tables' padding_idx / max_norm parameters are not applied (leave them unset).
 * Errors (agreed on every rank): as tokemb_mpi_tables_lookup, plus TOKEMB_INVALID_ARGUMENT (NULL
 * offsets/n_bags array or offsets[k], NULL out[k] with n_bags[k] > 0, unknown mode, weights with a mode
 * other than SUM, malformed offsets: the message names the rank, the table and the offset). No out[k] is
 * written on any rank on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_lookup_bags(tokemb_mpi_tables *t, const int64_t *const *ids, const size_t *n,
                                                     const int64_t *const *offsets, const size_t *n_bags, int32_t mode,
                                                     const float *const *per_sample_weights, float *const *out);

/** tokemb_mpi_tables_lookup_bags with int32 ids (offsets stay int64). Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_lookup_bags_i32(tokemb_mpi_tables *t, const int32_t *const *ids,
                                                         const size_t *n, const int64_t *const *offsets,
                                                         const size_t *n_bags, int32_t mode,
                                                         const float *const *per_sample_weights, float *const *out);

/**
 * Collective gradient of tokemb_mpi_tables_lookup, delivered to the owners: each rank passes, for every
 * table k, ids[k][n[k]] and grad_out[k][n[k]][dims[k]]; every contribution travels to table k's owner
 * (one MPI_Alltoallv for the ids and one for the rows, all tables together; contributions are not
 * pre-summed by the sender), and the owner adds into grad_tables[k][rows[k]][dims[k]] the contributions
 * in global input order (rank order, then each rank's order), starting from the buffer's values, with
 * the core's tokemb_grad_accumulate: equal to tokemb_grad_accumulate on whole table k over the
 * concatenated batch, bit for bit. Untouched rows are never read or written. grad_tables[k] is used only
 * on table k's owner (other ranks may pass NULL entries; a rank owning no table may pass a NULL array).
 * The tables' padding_idx / scale_grad_by_freq parameters are not applied (leave them unset).
 * Errors (agreed on every rank): as tokemb_mpi_tables_lookup (grad_out in place of out), plus
 * TOKEMB_INVALID_ARGUMENT for a NULL grad_tables array or entry on an owner. No grad_tables[k] is
 * written on any rank on error.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_grad_accumulate(tokemb_mpi_tables *t, const int64_t *const *ids,
                                                         const size_t *n, const float *const *grad_out,
                                                         float *const *grad_tables);

/** tokemb_mpi_tables_grad_accumulate with int32 ids. Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_grad_accumulate_i32(tokemb_mpi_tables *t, const int32_t *const *ids,
                                                             const size_t *n, const float *const *grad_out,
                                                             float *const *grad_tables);

/**
 * Collective fused optimizer step of every table at its owner: select each table's optimizer and
 * hyper-parameters on its owner first (tokemb_optim_select / tokemb_optim_set_param_f64 on
 * tokemb_mpi_tables_local(t, k); tables may use different optimizers). Each rank passes, for every
 * table k, ids[k][n[k]] and grad_out[k][n[k]][dims[k]]; the contributions travel to the owners as in
 * tokemb_mpi_tables_grad_accumulate and each owner runs the core's tokemb_optim_step once on each of its
 * tables (in increasing table index) with that table's concatenated batch in global input order, so the
 * weights, optimizer state and step count of every table equal one process calling tokemb_optim_step on
 * each whole table with the concatenated batches, bit for bit (every table's step counter advances once
 * per call, even with no ids; the table's own padding_idx and scale_grad_by_freq apply as in the core).
 * Errors (agreed on every rank): as tokemb_mpi_tables_lookup (grad_out in place of out), plus
 * TOKEMB_INVALID_ARGUMENT when an owned table has no optimizer selected and TOKEMB_READ_ONLY when it is
 * FROZEN (the message names the table). Validation and every exchange complete before any table changes;
 * a failure inside an owner's own step (only TOKEMB_NO_MEMORY for the state arrays on a table's first
 * step can occur) is reported on every rank, and the owner's tables of lower index keep that step.
 */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_optim_step(tokemb_mpi_tables *t, const int64_t *const *ids, const size_t *n,
                                                    const float *const *grad_out);

/** tokemb_mpi_tables_optim_step with int32 ids. Same rules and errors. */
TOKEMB_MPI_API int32_t tokemb_mpi_tables_optim_step_i32(tokemb_mpi_tables *t, const int32_t *const *ids,
                                                        const size_t *n, const float *const *grad_out);

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
