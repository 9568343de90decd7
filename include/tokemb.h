/*
 * tokemb.h - token embedding tables and positional encoders, stable C ABI.
 *
 * One public header. It compiles as C99, C11 and C++, includes only <stddef.h> and <stdint.h>, and
 * preprocesses to plain C (the export macro TOKEMB_API is empty outside the library's own build), so
 * cffi, ctypes and bindgen can read it.
 *
 * Conventions (see docs/ABI.md for the full promise):
 *  - Every fallible function returns int32_t: TOKEMB_OK (0) or a negative status (enum tokemb_status). On failure
 *    tokemb_last_error() describes it, and every output buffer and table is left exactly as it was.
 *  - Handles are opaque. Constructors take an out-pointer; destructors accept NULL.
 *  - Buffers are row-major with the shapes documented per function, no alignment requirement.
 *  - Thread safety: a table may be read by any number of threads at once (lookups). Calls that modify a
 *    table (setters, init, renormalising lookups with max_norm, optimizer steps) need exclusive access.
 *    Error text is thread-local. Results are bitwise identical for every thread count.
 */
#ifndef TOKEMB_H
#define TOKEMB_H

#include <stddef.h>
#include <stdint.h>

#ifndef TOKEMB_API
#if defined(TOKEMB_BUILDING_LIBRARY) && defined(__GNUC__)
#define TOKEMB_API __attribute__((visibility("default")))
#else
#define TOKEMB_API
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------- */
/* Version                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

#define TOKEMB_VERSION_MAJOR 0
#define TOKEMB_VERSION_MINOR 1
#define TOKEMB_VERSION_PATCH 0
/** MAJOR*10000 + MINOR*100 + PATCH (zstd's scheme). */
#define TOKEMB_VERSION_NUMBER (TOKEMB_VERSION_MAJOR * 10000 + TOKEMB_VERSION_MINOR * 100 + TOKEMB_VERSION_PATCH)
#define TOKEMB_VERSION_STRING "0.1.0"

/** The library's version as "MAJOR.MINOR.PATCH" (static storage). Thread-safe. */
TOKEMB_API const char *tokemb_version_string(void);
/** The library's TOKEMB_VERSION_NUMBER, for comparing the header with the loaded library. Thread-safe. */
TOKEMB_API uint32_t tokemb_version_number(void);

/* ---------------------------------------------------------------------------------------------- */
/* Status codes and errors                                                                        */
/* ---------------------------------------------------------------------------------------------- */

/** Status codes. Values are pinned: never renumbered, never reused. Signatures use int32_t. */
enum tokemb_status {
    TOKEMB_OK = 0,
    TOKEMB_INVALID_ARGUMENT = -1, /**< NULL pointer, zero/negative size, unknown enum or parameter */
    TOKEMB_OUT_OF_RANGE = -2,     /**< an id or position outside the table */
    TOKEMB_NO_MEMORY = -3,        /**< an allocation failed */
    TOKEMB_IO = -4,               /**< a read, write, open or rename failed */
    TOKEMB_FORMAT = -5,           /**< a malformed or unsupported file */
    TOKEMB_UNSUPPORTED = -6,      /**< a valid request this build or this storage dtype cannot serve */
    TOKEMB_OVERFLOW = -7,         /**< a size computation overflows */
    TOKEMB_READ_ONLY = -8         /**< a write to a frozen or read-only (borrowed) table */
};

/**
 * A short static description of `status` ("out of range", ...). Unknown values give
 * "unknown status". Never NULL. Thread-safe.
 */
TOKEMB_API const char *tokemb_status_string(int32_t status);

/**
 * The detail of the calling thread's most recent failure, e.g.
 * "tokemb_lookup: token id 50300 at index 17 is outside [0, 50257)". Empty string if this thread has
 * seen no failure. The text is thread-local and stays valid until the next tokemb call on the same
 * thread. Never NULL. Successful calls do not clear it.
 */
TOKEMB_API const char *tokemb_last_error(void);

/* ---------------------------------------------------------------------------------------------- */
/* Threads                                                                                        */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Sets how many threads the library's own parallel loops use (a small pthread fork/join; OpenBLAS's
 * thread count is never changed). n >= 1 sets it, n == 0 restores the default (the number of online
 * CPUs). Process-wide; results are bitwise identical for any value. Returns TOKEMB_OK, or
 * TOKEMB_INVALID_ARGUMENT for n < 0 or n > 1024. Thread-safe (atomic), but affects calls that start
 * afterwards on every thread.
 */
TOKEMB_API int32_t tokemb_set_num_threads(int32_t n);
/** The thread count the library's parallel loops use now (>= 1). Thread-safe. */
TOKEMB_API int32_t tokemb_get_num_threads(void);

/* ---------------------------------------------------------------------------------------------- */
/* Token embedding tables                                                                         */
/* ---------------------------------------------------------------------------------------------- */

/** Opaque embedding table: `rows` vectors (the vocabulary) of `dim` values each. */
typedef struct tokemb_table tokemb_table;

/** Storage dtypes (pinned values). Lookups always produce float32. */
enum tokemb_dtype {
    TOKEMB_F32 = 0,
    TOKEMB_F16 = 1,
    TOKEMB_BF16 = 2,
    TOKEMB_Q8_ROW = 3
};

/** Flags for tokemb_table_wrap. */
#define TOKEMB_WRAP_READONLY 1u

/** "No padding row": the value that clears TOKEMB_TABLE_PADDING_IDX (and what the getter returns then). */
#define TOKEMB_NO_PADDING INT64_MIN

/** Table parameters (pinned values, block 100). Types: (i) int64 via set_param, (f) double via set_param_f64. */
enum tokemb_table_param {
    /** (i) Row whose gradient is always zero and which init zeroes, as nn.Embedding's padding_idx.
     *  Negative values count from the end (rows + idx), as torch normalises them; must lie in
     *  [-rows, rows) else TOKEMB_OUT_OF_RANGE. TOKEMB_NO_PADDING clears. Default: none. */
    TOKEMB_TABLE_PADDING_IDX = 100,
    /** (f) max_norm: before a lookup each distinct referenced row whose norm exceeds it is scaled in place
     *  by max_norm / (norm + 1e-7) (torch's embedding_renorm_). <= 0 disables (default). NaN rejected. */
    TOKEMB_TABLE_MAX_NORM = 101,
    /** (f) The p of the max_norm norm; > 0 (INFINITY allowed). Default 2. */
    TOKEMB_TABLE_NORM_TYPE = 102,
    /** (i) 0/1: scale each gradient contribution by 1/count of its id in the batch. Default 0. */
    TOKEMB_TABLE_SCALE_GRAD_BY_FREQ = 103,
    /** (i) 0/1: a frozen table rejects optimizer updates with TOKEMB_READ_ONLY (gradients can still
     *  be computed; init and explicit writes are still allowed). Default 0. */
    TOKEMB_TABLE_FROZEN = 104,
    /** (i) Non-temporal (cache-bypassing) stores for F32 lookup outputs: 0 never (default), 1 always,
     *  2 only when one call's output exceeds the last-level cache size (as glibc's memcpy does).
     *  Faster for large outputs that are not read again soon (up to 1.5x) and keeps a cache-resident
     *  table from being evicted by the output stream; a consumer reading the output next misses in cache.
     *  The stored values are identical either way. Not in torch. Other values: TOKEMB_INVALID_ARGUMENT. */
    TOKEMB_TABLE_NONTEMPORAL = 105,
    /* The short names of the design's section 7 (same values). */
    TOKEMB_PADDING_IDX = TOKEMB_TABLE_PADDING_IDX,
    TOKEMB_MAX_NORM = TOKEMB_TABLE_MAX_NORM,
    TOKEMB_NORM_TYPE = TOKEMB_TABLE_NORM_TYPE,
    TOKEMB_SCALE_GRAD_BY_FREQ = TOKEMB_TABLE_SCALE_GRAD_BY_FREQ,
    TOKEMB_FROZEN = TOKEMB_TABLE_FROZEN
};

/**
 * Creates a zero-filled table of `rows` x `dim` values of `dtype`, stored contiguously (row stride =
 * dim) at a 64-byte aligned address. The caller owns *out and frees it with tokemb_table_free.
 * Errors: TOKEMB_INVALID_ARGUMENT (out NULL, rows or dim < 1, unknown dtype), TOKEMB_OVERFLOW
 * (rows*dim*element size does not fit in size_t), TOKEMB_UNSUPPORTED (a known dtype this build does
 * not store yet), TOKEMB_NO_MEMORY. *out is written only on success. Thread-safe.
 */
TOKEMB_API int32_t tokemb_table_create(int64_t rows, int64_t dim, int32_t dtype, tokemb_table **out);

/**
 * Wraps caller memory (a numpy array, a torch weight, an mmap) as a table without copying. `data`
 * holds `rows` rows of `dim` elements each, row r starting at element r*row_stride (row_stride >= dim).
 * The memory is borrowed: it must outlive the table and is never freed by the library. With
 * TOKEMB_WRAP_READONLY every call that would write into it fails with TOKEMB_READ_ONLY.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL data or out, rows/dim < 1, row_stride < dim, unknown dtype or
 * flags), TOKEMB_OVERFLOW, TOKEMB_UNSUPPORTED, TOKEMB_NO_MEMORY. Thread-safe.
 */
TOKEMB_API int32_t tokemb_table_wrap(void *data, int64_t rows, int64_t dim, int64_t row_stride,
                                     int32_t dtype, uint32_t flags, tokemb_table **out);

/** Frees a table and everything it owns (storage unless wrapped, optimizer state). NULL is a no-op. */
TOKEMB_API void tokemb_table_free(tokemb_table *t);

/** Number of rows (vocabulary size), or -1 if t is NULL. Thread-safe. */
TOKEMB_API int64_t tokemb_table_rows(const tokemb_table *t);
/** Row length (embedding dim), or -1 if t is NULL. Thread-safe. */
TOKEMB_API int64_t tokemb_table_dim(const tokemb_table *t);
/** Row stride in elements (dim for created tables), or -1 if t is NULL. Thread-safe. */
TOKEMB_API int64_t tokemb_table_row_stride(const tokemb_table *t);
/** Storage dtype (enum tokemb_dtype), or -1 if t is NULL. Thread-safe. */
TOKEMB_API int32_t tokemb_table_dtype(const tokemb_table *t);
/**
 * Pointer to the float32 storage (row r at data + r*row_stride), or NULL if t is NULL or not F32.
 * The table keeps ownership. Writing through it while other threads read the table is a data race;
 * writing into a READONLY wrapped table is the caller's responsibility.
 */
TOKEMB_API float *tokemb_table_data(tokemb_table *t);

/**
 * Copies rows [row0, row0 + n_rows) into out[n_rows][dim] as float32. Thread-safe for concurrent readers.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t or out, n_rows == 0), TOKEMB_OUT_OF_RANGE (range outside
 * [0, rows)).
 */
TOKEMB_API int32_t tokemb_table_read_rows(const tokemb_table *t, int64_t row0, size_t n_rows, float *out);
/**
 * Overwrites rows [row0, row0 + n_rows) from src[n_rows][dim] (float32, converted to the storage
 * dtype). Needs exclusive access. Errors: as tokemb_table_read_rows, plus TOKEMB_READ_ONLY for a
 * READONLY wrapped table.
 */
TOKEMB_API int32_t tokemb_table_write_rows(tokemb_table *t, int64_t row0, size_t n_rows, const float *src);

/**
 * Sets an int64 parameter (enum tokemb_table_param marked (i)). Needs exclusive access.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t, unknown or double-typed param, value not 0/1 for flags),
 * TOKEMB_OUT_OF_RANGE (padding index outside [-rows, rows)). The table is unchanged on error.
 */
TOKEMB_API int32_t tokemb_table_set_param(tokemb_table *t, int32_t param, int64_t value);
/** Sets a double parameter (marked (f)). Errors as tokemb_table_set_param (NaN, norm_type <= 0). */
TOKEMB_API int32_t tokemb_table_set_param_f64(tokemb_table *t, int32_t param, double value);
/** Reads an int64 parameter into *value (the normalised padding index, or TOKEMB_NO_PADDING). */
TOKEMB_API int32_t tokemb_table_get_param(const tokemb_table *t, int32_t param, int64_t *value);
/** Reads a double parameter into *value. */
TOKEMB_API int32_t tokemb_table_get_param_f64(const tokemb_table *t, int32_t param, double *value);

/**
 * Fills the table with N(mean, std) values bit-identical to `torch.manual_seed(seed)` followed by
 * `torch.nn.init.normal_(w, mean, std)` on a contiguous float32 tensor of shape [rows, dim], as torch
 * 1.13 computes it on x86-64 AVX2 machines (MT19937, the 16-value Box-Muller block path with tail
 * refill for rows*dim >= 16, the cached double Box-Muller for fewer), computed portably so every CPU
 * gives the same bits. Then the padding row, if set, is zeroed (as nn.Embedding does). seed uses
 * torch's rules (only the low 32 bits seed the engine). Single-threaded (the stream is serial).
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t, std < 0, non-finite mean or std), TOKEMB_READ_ONLY
 * (READONLY wrap), TOKEMB_UNSUPPORTED (non-F32 storage), TOKEMB_NO_MEMORY (strided wraps need a
 * rows*dim scratch buffer). Needs exclusive access.
 */
TOKEMB_API int32_t tokemb_table_init_normal(tokemb_table *t, uint64_t seed, double mean, double std);
/**
 * Fills the table with U[lo, hi) values bit-identical to `torch.manual_seed(seed)` followed by
 * `torch.nn.init.uniform_(w, lo, hi)` on a contiguous float32 [rows, dim] tensor (AVX2 build:
 * fmaf(u, (float)hi - (float)lo, (float)lo) with 24-bit uniforms), then zeroes the padding row.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t, lo > hi, non-finite bounds), TOKEMB_READ_ONLY,
 * TOKEMB_UNSUPPORTED. Needs exclusive access.
 */
TOKEMB_API int32_t tokemb_table_init_uniform(tokemb_table *t, uint64_t seed, double lo, double hi);

/* ---------------------------------------------------------------------------------------------- */
/* Lookup                                                                                         */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Gathers out[i][:] = table[ids[i]][:] for i < n (out is [n][dim] float32), as torch's F.embedding.
 * Every id is checked against [0, rows) before anything is written; padding_idx has no effect on the
 * forward. If max_norm is set, each distinct referenced row whose norm_type-norm exceeds max_norm is
 * first scaled in place by (float)(max_norm / (norm + 1e-7)) in ascending id order (torch's
 * embedding_renorm_; ids are all validated before any row changes) - that modifies the table and needs
 * exclusive access, otherwise concurrent lookups are safe. n == 0 is a no-op (ids/out may be NULL).
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t, ids or out with n > 0), TOKEMB_OUT_OF_RANGE (message names
 * the id, its index and the valid range), TOKEMB_OVERFLOW (n*dim overflows), TOKEMB_READ_ONLY
 * (max_norm on a READONLY wrap), TOKEMB_NO_MEMORY (max_norm's sorted id copy).
 */
TOKEMB_API int32_t tokemb_lookup(tokemb_table *t, const int64_t *ids, size_t n, float *out);
/** tokemb_lookup with int32 ids (torch accepts both index dtypes). Same rules and errors. */
TOKEMB_API int32_t tokemb_lookup_i32(tokemb_table *t, const int32_t *ids, size_t n, float *out);
/**
 * tokemb_lookup writing row i at out + i*out_row_stride (out_row_stride >= dim, in elements), e.g.
 * into a slice of a wider activation buffer. Elements between rows are not touched.
 * Errors: as tokemb_lookup, plus TOKEMB_INVALID_ARGUMENT for out_row_stride < dim.
 */
TOKEMB_API int32_t tokemb_lookup_strided(tokemb_table *t, const int64_t *ids, size_t n, float *out,
                                         int64_t out_row_stride);

/**
 * The Linear view of a lookup: out[n][dim] = onehot(ids)[n][rows] x W[rows][dim] through OpenBLAS
 * cblas_sgemm. One-hot rows are built in chunks of `c` tokens, c = max(1, min(n, 2^20 / rows)), so the
 * scratch buffer holds at most max(4 MiB, 4*rows bytes). For a finite table the result equals
 * tokemb_lookup bit for bit (each output is one 1*w product plus exact zeros), except that a stored
 * -0.0 may come out as +0.0. Does not apply max_norm (read-only; safe for concurrent use).
 * Errors: as tokemb_lookup, plus TOKEMB_UNSUPPORTED for non-F32 storage, TOKEMB_NO_MEMORY.
 */
TOKEMB_API int32_t tokemb_lookup_onehot(const tokemb_table *t, const int64_t *ids, size_t n, float *out);

/* ---------------------------------------------------------------------------------------------- */
/* Training: gradients, pooled bags, fused sparse optimizers, tied output head (docs/training.md)  */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Gradient of tokemb_lookup: grad_table[rows][dim] (contiguous float32, caller-owned) gets, for every
 * i < n with ids[i] != padding_idx, grad_table[ids[i]] += s * grad_out[i] (grad_out is [n][dim]).
 * s = 1, or with TOKEMB_SCALE_GRAD_BY_FREQ s = (float)(1.0 / count(ids[i])) applied as fmaf(s, g, acc).
 * Each row's contributions are added in input order starting from the buffer's value, so into a
 * zeroed buffer the result equals torch's embedding_dense_backward bit for bit. Rows not referenced
 * are never read or written: cost O(n*dim + n) (stable radix sort of (id, position), then per-row sums
 * in parallel), never O(rows*dim). Bitwise identical for any thread count. Reads only the table's
 * shape and parameters (safe with concurrent readers). n == 0 is a no-op.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t, ids, grad_out or grad_table with n > 0), TOKEMB_OUT_OF_RANGE
 * (an id outside [0, rows): message names it and its index), TOKEMB_OVERFLOW, TOKEMB_NO_MEMORY (the
 * O(n) sort scratch). grad_table is untouched on error.
 */
TOKEMB_API int32_t tokemb_grad_accumulate(const tokemb_table *t, const int64_t *ids, size_t n,
                                          const float *grad_out, float *grad_table);
/** tokemb_grad_accumulate with int32 ids. Same rules and errors. */
TOKEMB_API int32_t tokemb_grad_accumulate_i32(const tokemb_table *t, const int32_t *ids, size_t n,
                                              const float *grad_out, float *grad_table);
/**
 * The coalesced (sparse) gradient of tokemb_lookup: writes the distinct non-padding ids in ascending
 * order to out_ids[0..u) and their summed gradient rows to out_rows[u][dim], *n_unique = u. The rows
 * have exactly the bits of the dense tokemb_grad_accumulate into a zeroed buffer (scale_grad_by_freq
 * included). Capacity: out_ids needs n entries and out_rows n*dim floats (u <= n). Cost O(n*dim),
 * independent of rows. n == 0 sets *n_unique = 0. Thread-safety as tokemb_grad_accumulate.
 * Errors: as tokemb_grad_accumulate (n_unique must not be NULL); outputs untouched on error.
 */
TOKEMB_API int32_t tokemb_grad_coalesce(const tokemb_table *t, const int64_t *ids, size_t n,
                                        const float *grad_out, int64_t *out_ids, float *out_rows,
                                        size_t *n_unique);
/** tokemb_grad_coalesce with int32 ids (out_ids stay int64). Same rules and errors. */
TOKEMB_API int32_t tokemb_grad_coalesce_i32(const tokemb_table *t, const int32_t *ids, size_t n,
                                            const float *grad_out, int64_t *out_ids, float *out_rows,
                                            size_t *n_unique);
/**
 * Backward of tokemb_lookup_onehot (the Linear view): grad_table[rows][dim] += onehot(ids)^T x
 * grad_out[n][dim] through cblas_sgemm (beta = 1), in token chunks with the forward's bounded scratch
 * (one-hot entries are 0 for padding ids and (float)(1/count) with scale_grad_by_freq). The sums are
 * BLAS-ordered: equal to tokemb_grad_accumulate up to rounding when an id repeats (bit-equal when ids
 * are distinct and no scaling applies). Cost O(rows*dim*n). Errors: as tokemb_grad_accumulate, plus
 * TOKEMB_UNSUPPORTED (dimensions beyond BLAS int).
 */
TOKEMB_API int32_t tokemb_grad_accumulate_onehot(const tokemb_table *t, const int64_t *ids, size_t n,
                                                 const float *grad_out, float *grad_table);

/** Bag reduction modes (pinned values). */
enum tokemb_bag_mode {
    TOKEMB_BAG_SUM = 0,
    TOKEMB_BAG_MEAN = 1,
    TOKEMB_BAG_MAX = 2,
    /* The short names of the design's section 7 (same values). */
    TOKEMB_SUM = TOKEMB_BAG_SUM,
    TOKEMB_MEAN = TOKEMB_BAG_MEAN,
    TOKEMB_MAX = TOKEMB_BAG_MAX
};

/**
 * Pooled lookup (torch's EmbeddingBag): out[b][:] for b < n_bags reduces rows ids[offsets[b] ..
 * offsets[b+1]) with `mode`. offsets has n_bags + 1 entries (CSR): offsets[0] == 0, non-decreasing,
 * offsets[n_bags] == n. SUM: sum left to right from +0.0, optionally weighted by
 * per_sample_weights[n] (SUM only) as fmaf(w, x, acc) (torch's fast path) or, when the table has a
 * padding_idx, as acc + w*x (torch's generic path). MEAN: the sum divided by the count of non-padding
 * entries. MAX: per column the largest value, ties keep the first occurrence. padding_idx entries are
 * excluded from every reduction and from the count; an empty (or all-padding) bag gives zeros. max_norm
 * renormalises every referenced row first, as tokemb_lookup. n_bags == 0 is a no-op (offsets = {0}).
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t/offsets, NULL ids with n > 0, NULL out with n_bags > 0,
 * unknown mode, weights with mode != SUM, malformed offsets: the message names the offending offset),
 * TOKEMB_OUT_OF_RANGE (ids), TOKEMB_OVERFLOW, TOKEMB_UNSUPPORTED (non-F32), TOKEMB_READ_ONLY (max_norm on
 * a READONLY wrap), TOKEMB_NO_MEMORY. out untouched on error. Concurrent use as tokemb_lookup.
 */
TOKEMB_API int32_t tokemb_lookup_bags(tokemb_table *t, const int64_t *ids, size_t n, const int64_t *offsets,
                                      size_t n_bags, int32_t mode, const float *per_sample_weights,
                                      float *out);
/** tokemb_lookup_bags with int32 ids (offsets stay int64). Same rules and errors. */
TOKEMB_API int32_t tokemb_lookup_bags_i32(tokemb_table *t, const int32_t *ids, size_t n,
                                          const int64_t *offsets, size_t n_bags, int32_t mode,
                                          const float *per_sample_weights, float *out);
/**
 * Backward of tokemb_lookup_bags for grad_out[n_bags][dim]: grad_table[rows][dim] +=
 *  - SUM / MEAN: for each non-padding position j (bag b), s_j * grad_out[b] with s_j computed in double
 *    as psw[j] (or 1) / count(ids[j]) (with scale_grad_by_freq: the id's count in the whole input, as
 *    nn.Embedding; torch 1.13-2.x's bag backward divides by a wrong count, pytorch issue #190063) /
 *    bag's non-padding size (MEAN), rounded to float and applied as fmaf(s_j, g, acc); per row in input
 *    order (torch sums in its sort order, so repeated ids may differ from torch by rounding);
 *  - MAX: each column of grad_out[b] goes to that column's argmax row (first of ties), bags in order.
 *    The argmax is recomputed from the table, which must hold the values the forward used.
 * grad_per_sample_weights[n] (optional, SUM only) is overwritten with dot(grad_out[b], W[ids[j]])
 * (double accumulation), 0 for padding entries. Bitwise identical for any thread count. Read-only on t.
 * Errors: as tokemb_lookup_bags, plus TOKEMB_INVALID_ARGUMENT for NULL grad_out/grad_table,
 * grad_per_sample_weights with mode != SUM, MAX with scale_grad_by_freq (as torch). Outputs untouched
 * on error.
 */
TOKEMB_API int32_t tokemb_grad_accumulate_bags(const tokemb_table *t, const int64_t *ids, size_t n,
                                               const int64_t *offsets, size_t n_bags, int32_t mode,
                                               const float *per_sample_weights, const float *grad_out,
                                               float *grad_table, float *grad_per_sample_weights);
/** tokemb_grad_accumulate_bags with int32 ids. Same rules and errors. */
TOKEMB_API int32_t tokemb_grad_accumulate_bags_i32(const tokemb_table *t, const int32_t *ids, size_t n,
                                                   const int64_t *offsets, size_t n_bags, int32_t mode,
                                                   const float *per_sample_weights, const float *grad_out,
                                                   float *grad_table, float *grad_per_sample_weights);

/** Fused sparse optimizers (pinned values). */
enum tokemb_optim_kind {
    /** w -= lr * (g + weight_decay * w), on referenced rows only (lazy weight decay). */
    TOKEMB_OPTIM_SGD = 0,
    /** FBGEMM row-wise Adagrad: h[row] += mean_c(g'^2), w -= lr * g' / (sqrt(h[row]) + eps),
     *  g' = g + weight_decay * w. One float of state per row. */
    TOKEMB_OPTIM_ROWWISE_ADAGRAD = 1,
    /** torch.optim.Adagrad with a sparse gradient: s += g^2, w -= clr * g / (sqrt(s) + eps),
     *  clr = lr / (1 + (step - 1) * lr_decay). No weight decay (torch rejects it for sparse grads). */
    TOKEMB_OPTIM_ADAGRAD = 2,
    /** torch.optim.SparseAdam: moments updated only for present rows, bias correction by the global step. */
    TOKEMB_OPTIM_SPARSE_ADAM = 3
};

/** Optimizer hyper-parameters (pinned values, block 400), all double. */
enum tokemb_optim_param {
    TOKEMB_OPTIM_LR = 400,                  /**< >= 0; default 0.01 (SparseAdam 0.001) */
    TOKEMB_OPTIM_WEIGHT_DECAY = 401,        /**< >= 0; SGD and row-wise Adagrad only; default 0 */
    TOKEMB_OPTIM_EPS = 402,                 /**< >= 0; default 1e-10 (Adagrad), 1e-8 (others) */
    TOKEMB_OPTIM_BETA1 = 403,               /**< [0, 1); SparseAdam; default 0.9 */
    TOKEMB_OPTIM_BETA2 = 404,               /**< [0, 1); SparseAdam; default 0.999 */
    TOKEMB_OPTIM_LR_DECAY = 405,            /**< >= 0; Adagrad; default 0 */
    TOKEMB_OPTIM_INITIAL_ACCUMULATOR = 406  /**< >= 0; Adagrad / row-wise Adagrad; default 0 */
};

/**
 * Selects the table's optimizer (enum tokemb_optim_kind) with default hyper-parameters and empty state
 * (a previous optimizer's state is dropped). The state belongs to the table: its arrays are allocated
 * on the first step (Adagrad rows*dim floats, SparseAdam 2*rows*dim, row-wise Adagrad rows) and freed
 * by tokemb_table_free. Needs exclusive access. Errors: TOKEMB_INVALID_ARGUMENT (NULL t, unknown kind),
 * TOKEMB_UNSUPPORTED (non-F32 storage), TOKEMB_NO_MEMORY.
 */
TOKEMB_API int32_t tokemb_optim_select(tokemb_table *t, int32_t kind);
/**
 * Sets a hyper-parameter of the selected optimizer (takes effect from the next step). Errors:
 * TOKEMB_INVALID_ARGUMENT (NULL t, no optimizer selected, unknown parameter or one the selected kind
 * does not use, value out of its range or NaN). Needs exclusive access.
 */
TOKEMB_API int32_t tokemb_optim_set_param_f64(tokemb_table *t, int32_t param, double value);
/** Reads a hyper-parameter of the selected optimizer into *value. Errors as the setter. */
TOKEMB_API int32_t tokemb_optim_get_param_f64(const tokemb_table *t, int32_t param, double *value);
/** Steps taken since tokemb_optim_select, or -1 if t is NULL or no optimizer is selected. */
TOKEMB_API int64_t tokemb_optim_steps(const tokemb_table *t);
/**
 * One fused optimizer step from the lookup's output gradient grad_out[n][dim]: the gradient is
 * coalesced exactly as tokemb_grad_coalesce (padding dropped, scale_grad_by_freq applied, duplicates
 * summed in input order) and each referenced row is updated once; no other row or state entry is
 * touched and no dense gradient is built. The step counter advances even for n == 0.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t, no optimizer selected, NULL ids/grad_out with n > 0),
 * TOKEMB_OUT_OF_RANGE, TOKEMB_READ_ONLY (FROZEN table or READONLY wrap), TOKEMB_UNSUPPORTED (non-F32),
 * TOKEMB_OVERFLOW, TOKEMB_NO_MEMORY. The table and its state are unchanged on error. Needs exclusive
 * access; bitwise identical for any thread count.
 */
TOKEMB_API int32_t tokemb_optim_step(tokemb_table *t, const int64_t *ids, size_t n, const float *grad_out);
/** tokemb_optim_step with int32 ids. Same rules and errors. */
TOKEMB_API int32_t tokemb_optim_step_i32(tokemb_table *t, const int32_t *ids, size_t n, const float *grad_out);
/**
 * One fused optimizer step from a coalesced gradient: unique_ids[n_unique] strictly increasing,
 * rows[n_unique][dim] (e.g. tokemb_grad_coalesce's output). Rows are updated as given (a padding id
 * is not skipped here). Errors: as tokemb_optim_step, plus TOKEMB_INVALID_ARGUMENT for ids that are not
 * strictly increasing (the message names the index).
 */
TOKEMB_API int32_t tokemb_optim_step_coalesced(tokemb_table *t, const int64_t *unique_ids, size_t n_unique,
                                               const float *rows);

/**
 * Tied output head (GPT-2 weight tying): logits[n][rows] = hidden[n][dim] x W^T through cblas_sgemm.
 * Read-only on t (safe for concurrent use). n == 0 is a no-op. Errors: TOKEMB_INVALID_ARGUMENT (NULL t,
 * hidden or logits with n > 0), TOKEMB_OVERFLOW, TOKEMB_UNSUPPORTED (non-F32, BLAS int limits).
 */
TOKEMB_API int32_t tokemb_logits(const tokemb_table *t, const float *hidden, size_t n, float *logits);
/**
 * Backward of tokemb_logits for grad_logits[n][rows]: grad_hidden[n][dim] = grad_logits x W
 * (overwritten; may be NULL) and grad_table[rows][dim] += grad_logits^T x hidden (may be NULL; not both
 * NULL), both through cblas_sgemm. Read-only on t. Errors: as tokemb_logits.
 */
TOKEMB_API int32_t tokemb_logits_backward(const tokemb_table *t, const float *hidden, size_t n,
                                          const float *grad_logits, float *grad_hidden, float *grad_table);

#ifdef __cplusplus
}
#endif

#endif /* TOKEMB_H */
