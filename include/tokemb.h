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
 *  - Tuning knobs that are not part of the stable ABI live in the experimental block at the end of this
 *    file, visible only when TOKEMB_EXPERIMENTAL is defined before the include (see that block).
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

#define TOKEMB_VERSION_MAJOR 1
#define TOKEMB_VERSION_MINOR 0
#define TOKEMB_VERSION_PATCH 0
/** MAJOR*10000 + MINOR*100 + PATCH (zstd's scheme). */
#define TOKEMB_VERSION_NUMBER (TOKEMB_VERSION_MAJOR * 10000 + TOKEMB_VERSION_MINOR * 100 + TOKEMB_VERSION_PATCH)
#define TOKEMB_QUOTE_(s) #s
#define TOKEMB_EXPAND_AND_QUOTE_(s) TOKEMB_QUOTE_(s)
/** "MAJOR.MINOR.PATCH", spelled from the three numbers above: the version's one source (CMake, the
 *  pkg-config and CMake package files, the bindings and the checks all read these lines). */
#define TOKEMB_VERSION_STRING TOKEMB_EXPAND_AND_QUOTE_(TOKEMB_VERSION_MAJOR.TOKEMB_VERSION_MINOR.TOKEMB_VERSION_PATCH)

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
    TOKEMB_READ_ONLY = -8,        /**< a write to a frozen or read-only (borrowed) table */
    TOKEMB_CANCELLED = -9         /**< a progress callback asked to stop (nothing was returned) */
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
 * Sets how many threads the library's own parallel loops use (a persistent pool, or the host's
 * tokemb_set_parallel_for hook; OpenBLAS's thread count is never changed). n >= 1 sets it, n == 0
 * restores the default (the number of online CPUs). Process-wide; results are bitwise identical for any value. Returns TOKEMB_OK, or
 * TOKEMB_INVALID_ARGUMENT for n < 0 or n > 1024. Thread-safe (atomic), but affects calls that start
 * afterwards on every thread.
 */
TOKEMB_API int32_t tokemb_set_num_threads(int32_t n);
/** The thread count the library's parallel loops use now (>= 1). Thread-safe. */
TOKEMB_API int32_t tokemb_get_num_threads(void);

/** One task of a parallel loop (chunk i of the loop described by task_ctx); see tokemb_parallel_fn. */
typedef void (*tokemb_task_fn)(void *task_ctx, size_t i);
/**
 * A host's parallel-for: must call task(task_ctx, i) exactly once for every i in [0, n_tasks), on any
 * threads in any order (concurrently or not), and return only when every call has returned. `host_ctx`
 * is the pointer given to tokemb_set_parallel_for. The tasks never fail and never call back into the
 * hook; n_tasks >= 2.
 */
typedef void (*tokemb_parallel_fn)(void *host_ctx, size_t n_tasks, tokemb_task_fn task, void *task_ctx);
/**
 * Runs the library's parallel loops on the caller's thread pool instead of its own (the way FBGEMM
 * leaves threading to its caller): every loop large enough to split is cut into n_tasks contiguous
 * chunks (at most 4 per thread of tokemb_get_num_threads(), at least the loop's grain each) and handed to
 * fn. Loops too small to split run on the calling thread without calling fn. fn == NULL restores the
 * built-in pool (persistent workers that spin ~20-40 us after a job, then sleep). Results are bitwise
 * identical whichever runs the tasks. Process-wide; `host_ctx` must stay valid while set. Thread-safe,
 * but set it before the loops it should govern start: a loop already running keeps the hook it began
 * with, and a replaced fn/host_ctx pair must stay callable until such loops return. No status (cannot
 * fail).
 */
TOKEMB_API void tokemb_set_parallel_for(tokemb_parallel_fn fn, void *host_ctx);
/**
 * Runs the library's parallel loops on the OpenMP runtime already loaded in the process - GNU libgomp
 * (the system's, or a Python wheel's renamed copy) or LLVM/Intel libomp, found among the loaded
 * objects and called through its GOMP_parallel entry - instead of the built-in pool. In a process
 * whose host runs on that runtime (torch's CPU ops, an OpenMP application) tokemb's chunks then run on
 * the host's own, already spinning worker threads instead of a second pool competing with them for the
 * cores. Each loop is one parallel region of min(tokemb_get_num_threads(), chunks) threads claiming the
 * same fixed chunks as the pool, so results stay bitwise identical. A loop called from inside a
 * parallel region, or while another thread's loop holds the team, runs on the calling thread alone; in
 * a fork()ed child the built-in pool is used again (libgomp is not fork-safe).
 * The library never loads or links a runtime itself. The runtime's own rules apply to its threads:
 * libgomp terminates the process if it cannot start a thread it needs (as it would for the host's own
 * parallel regions); the built-in pool never does. tokemb_set_parallel_for (a hook, or NULL for the
 * pool) replaces this setting and this replaces a hook. Process-wide; thread-safe, but set it before
 * the loops it should govern start.
 * Errors: TOKEMB_UNSUPPORTED when no OpenMP runtime is loaded (or it lacks GOMP_parallel /
 * omp_in_parallel); the current backend is then unchanged.
 */
TOKEMB_API int32_t tokemb_use_host_openmp(void);

/* ---------------------------------------------------------------------------------------------- */
/* Progress callbacks                                                                             */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Progress callback of long loads (and of tokemb_nearest_ex, which counts scored pairs instead of bytes):
 * called with the bytes parsed so far and the file size (at the start, about every 4 MiB, and at the
 * end). Returning nonzero cancels the load, which then fails with
 * TOKEMB_CANCELLED and returns nothing. Called on the loading thread.
 */
typedef int32_t (*tokemb_progress_fn)(void *user, uint64_t bytes_done, uint64_t bytes_total);

/* ---------------------------------------------------------------------------------------------- */
/* Token embedding tables                                                                         */
/* ---------------------------------------------------------------------------------------------- */

/** Opaque embedding table: `rows` vectors (the vocabulary) of `dim` values each. */
typedef struct tokemb_table tokemb_table;

/* ---- Storage dtypes and conversion (docs/formats.md) ----------------------------------------- */

/**
 * Storage dtypes (pinned values). Lookups always produce float32. F16 (IEEE half) and BF16 rows hold dim
 * 16-bit values (row_stride counted in elements, as for F32). Q8_ROW rows follow FBGEMM's fused 8-bit
 * row-wise layout: dim uint8 codes, then a float32 scale, then a float32 bias (little-endian,
 * unaligned), value = (float)q*scale + bias; for Q8_ROW row_stride is counted in bytes and must be >=
 * dim + 8 (tokemb_table_create uses dim + 8). Lookups (tokemb_lookup/_i32/_strided), pooled bags
 * (tokemb_lookup_bags/_i32), tokemb_table_read_rows and nearest neighbours produce float32 from every
 * dtype; tokemb_table_write_rows converts (Q8_ROW requantises the rows it writes, finite values only).
 * Initialisation, gradients, optimizers, max_norm and the one-hot path need F32 storage and return
 * TOKEMB_UNSUPPORTED otherwise. Files map to tables as: npy '<f4'/'<f2' -> F32/F16, safetensors
 * F32/F16/BF16 -> the same dtype.
 */
enum tokemb_dtype { TOKEMB_F32 = 0, TOKEMB_F16 = 1, TOKEMB_BF16 = 2, TOKEMB_Q8_ROW = 3 };

/**
 * A new table holding `src` converted to `dtype` (any dtype to any dtype, through float32): to F16 and
 * BF16 with round-to-nearest-even (overflow to inf, NaN kept); to Q8_ROW by FBGEMM's
 * FloatToFused8BitRowwiseQuantized (bias = row min, scale = (max - min)/255, q = lrintf((x - min) *
 * 255/(max - min + 1e-8)), so |x - dequant(q)| <= scale/2 plus float rounding). Every table parameter
 * (enum tokemb_table_param, TOKEMB_NONTEMPORAL included) is copied. The caller frees *out. Thread-safe
 * for concurrent readers of src. Errors: TOKEMB_INVALID_ARGUMENT (NULL src/out, unknown dtype, a non-finite value for Q8_ROW,
 * named by row and column), TOKEMB_OVERFLOW, TOKEMB_NO_MEMORY. *out is written only on success.
 */
TOKEMB_API int32_t tokemb_table_convert(const tokemb_table *src, int32_t dtype, tokemb_table **out);

/* ---- Creating, wrapping, reading and writing ------------------------------------------------- */

/** Flags for tokemb_table_wrap. */
#define TOKEMB_WRAP_READONLY 1u

/**
 * Creates a zero-filled table of `rows` x `dim` values of `dtype`, stored contiguously (row stride =
 * dim; dim + 8 bytes for Q8_ROW, whose rows end with their scale and bias) at a 64-byte aligned
 * address. The caller owns *out and frees it with tokemb_table_free.
 * Errors: TOKEMB_INVALID_ARGUMENT (out NULL, rows or dim < 1, unknown dtype), TOKEMB_OVERFLOW
 * (rows*dim*element size does not fit in size_t, or a Q8_ROW dim + 8 does not fit in int64),
 * TOKEMB_NO_MEMORY. *out is written only on success.
 * Thread-safe.
 */
TOKEMB_API int32_t tokemb_table_create(int64_t rows, int64_t dim, int32_t dtype, tokemb_table **out);

/**
 * Wraps caller memory (a numpy array, a torch weight, an mmap) as a table without copying. `data`
 * holds `rows` rows of `dim` elements each, row r starting at element r*row_stride (row_stride >= dim).
 * The memory is borrowed: it must outlive the table and is never freed by the library. With
 * TOKEMB_WRAP_READONLY every call that would write into it fails with TOKEMB_READ_ONLY.
 * For Q8_ROW, row_stride counts bytes and must be >= dim + 8 (see enum tokemb_dtype).
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL data or out, rows/dim < 1, row_stride < dim, unknown dtype or
 * flags), TOKEMB_OVERFLOW, TOKEMB_NO_MEMORY. Thread-safe.
 */
TOKEMB_API int32_t tokemb_table_wrap(void *data, int64_t rows, int64_t dim, int64_t row_stride, int32_t dtype,
                                     uint32_t flags, tokemb_table **out);

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
 * READONLY wrapped table and TOKEMB_INVALID_ARGUMENT if src overlaps the table's storage (the message
 * names both address ranges).
 */
TOKEMB_API int32_t tokemb_table_write_rows(tokemb_table *t, int64_t row0, size_t n_rows, const float *src);

/* ---- Parameters ------------------------------------------------------------------------------ */

/** "No padding row": the value that clears TOKEMB_PADDING_IDX (and what the getter returns then). */
#define TOKEMB_NO_PADDING INT64_MIN

/** Table parameters (pinned values, block 100). Types: (i) int64 via set_param, (f) double via set_param_f64. */
enum tokemb_table_param {
    /** (i) Row whose gradient is always zero and which init zeroes, as nn.Embedding's padding_idx.
     *  Negative values count from the end (rows + idx), as torch normalises them; must lie in
     *  [-rows, rows) else TOKEMB_OUT_OF_RANGE. TOKEMB_NO_PADDING clears. Default: none. */
    TOKEMB_PADDING_IDX = 100,
    /** (f) max_norm: before a lookup each distinct referenced row whose norm exceeds it is scaled in place
     *  by max_norm / (norm + 1e-7) (torch's embedding_renorm_). <= 0 disables (default). NaN rejected. */
    TOKEMB_MAX_NORM = 101,
    /** (f) The p of the max_norm norm; > 0 (INFINITY allowed). Default 2. */
    TOKEMB_NORM_TYPE = 102,
    /** (i) 0/1: scale each gradient contribution by 1/count of its id in the batch. Default 0. */
    TOKEMB_SCALE_GRAD_BY_FREQ = 103,
    /** (i) 0/1: a frozen table rejects optimizer updates with TOKEMB_READ_ONLY (gradients can still
     *  be computed; init and explicit writes are still allowed). Default 0. */
    TOKEMB_FROZEN = 104
};

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

/* ---- Initialisation (torch-identical random values) ------------------------------------------ */

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
 * Fills the table with its part of a larger table's tokemb_table_init_normal: the values that
 * `torch.manual_seed(seed); torch.nn.init.normal_(w, mean, std)` puts into a contiguous float32
 * w[global_rows, global_dim] at global rows row0 + l * row_step (l < the table's rows) and columns
 * [col0, col0 + the table's dim), bit for bit, for sharded tables where each process owns only its
 * part. The random stream is not drawn in full: MT19937 jumps ahead over gaps of 2^22 values or more
 * (tens of ms per jump, plus about 60 ms once per process for the generator's characteristic
 * polynomial) and advances without the normal transform over shorter ones (about 5 instructions per
 * skipped value against about 156 per produced one, docs/performance.md), so a contiguous block costs
 * about one jump plus its own values, and a round-robin shard (row_step > 1) its own values plus
 * skipping the rest. Thread-safe for distinct tables (the polynomial is computed under a once-lock).
 * Row l of the table is written with its row stride. Then the table's own padding row (a local
 * index), if set, is zeroed. Single-threaded.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t, std < 0, non-finite mean or std, global_rows or global_dim
 * < 1, row0 outside [0, global_rows), row_step < 1), TOKEMB_OUT_OF_RANGE (the last row passes global
 * row global_rows - 1, col0 < 0 or col0 + dim > global_dim), TOKEMB_OVERFLOW (global_rows * global_dim
 * >= 2^62), TOKEMB_READ_ONLY, TOKEMB_UNSUPPORTED (non-F32 storage). The table is untouched on error.
 * Needs exclusive access.
 */
TOKEMB_API int32_t tokemb_table_init_normal_shard(tokemb_table *t, uint64_t seed, double mean, double std,
                                                  int64_t global_rows, int64_t global_dim, int64_t row0,
                                                  int64_t row_step, int64_t col0);
/**
 * Fills the table with U[lo, hi) values bit-identical to `torch.manual_seed(seed)` followed by
 * `torch.nn.init.uniform_(w, lo, hi)` on a contiguous float32 [rows, dim] tensor (AVX2 build:
 * fmaf(u, (float)hi - (float)lo, (float)lo) with 24-bit uniforms), then zeroes the padding row.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t, lo > hi, non-finite bounds), TOKEMB_READ_ONLY,
 * TOKEMB_UNSUPPORTED. Needs exclusive access.
 */
TOKEMB_API int32_t tokemb_table_init_uniform(tokemb_table *t, uint64_t seed, double lo, double hi);

/* ---------------------------------------------------------------------------------------------- */
/* Lookup and its gradient (docs/training.md)                                                     */
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
 * (max_norm on a READONLY wrap), TOKEMB_NO_MEMORY (max_norm's sorted id copy). out must not overlap
 * the table's storage (a wrapped buffer): TOKEMB_INVALID_ARGUMENT naming both address ranges, as the
 * rows written would otherwise depend on the thread count.
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
 * Gradient of tokemb_lookup: grad_table[rows][dim] (contiguous float32, caller-owned) gets, for every
 * i < n with ids[i] != padding_idx, grad_table[ids[i]] += s * grad_out[i] (grad_out is [n][dim]).
 * s = 1, or with TOKEMB_SCALE_GRAD_BY_FREQ s = (float)(1.0 / count(ids[i])) applied as fmaf(s, g, acc).
 * Each row's contributions are added in input order starting from the buffer's value, so into a
 * zeroed buffer the result equals torch's embedding_dense_backward bit for bit. Rows not referenced
 * are never read or written: cost O(n*dim + n) (stable radix sort of (id, position), then per-row sums
 * in parallel), never O(rows*dim). Bitwise identical for any thread count. Reads only the table's
 * shape and parameters (safe with concurrent readers). n == 0 is a no-op.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL t, ids, grad_out or grad_table with n > 0), TOKEMB_OUT_OF_RANGE
 * (an id outside [0, rows): message names it and its index), TOKEMB_OVERFLOW, TOKEMB_UNSUPPORTED
 * (non-F32 table), TOKEMB_NO_MEMORY (the O(n) sort scratch). grad_table is untouched on error.
 */
TOKEMB_API int32_t tokemb_grad_accumulate(const tokemb_table *t, const int64_t *ids, size_t n, const float *grad_out,
                                          float *grad_table);
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
TOKEMB_API int32_t tokemb_grad_coalesce(const tokemb_table *t, const int64_t *ids, size_t n, const float *grad_out,
                                        int64_t *out_ids, float *out_rows, size_t *n_unique);
/** tokemb_grad_coalesce with int32 ids (out_ids stay int64). Same rules and errors. */
TOKEMB_API int32_t tokemb_grad_coalesce_i32(const tokemb_table *t, const int32_t *ids, size_t n, const float *grad_out,
                                            int64_t *out_ids, float *out_rows, size_t *n_unique);

/* ---- The one-hot (Linear) view --------------------------------------------------------------- */

/**
 * The Linear view of a lookup: out[n][dim] = onehot(ids)[n][rows] x W[rows][dim] through OpenBLAS
 * cblas_sgemm. One-hot rows are built in chunks of tokens, so the scratch buffer holds at most
 * max(64 MiB, 4*rows bytes) (the chunk size: docs/performance.md). For a finite table the result equals
 * tokemb_lookup bit for bit (each output is one 1*w product plus exact zeros), except that a stored
 * -0.0 may come out as +0.0. Does not apply max_norm (read-only; safe for concurrent use).
 * Errors: as tokemb_lookup, plus TOKEMB_UNSUPPORTED for non-F32 storage, TOKEMB_NO_MEMORY.
 */
TOKEMB_API int32_t tokemb_lookup_onehot(const tokemb_table *t, const int64_t *ids, size_t n, float *out);
/**
 * Backward of tokemb_lookup_onehot (the Linear view): grad_table[rows][dim] += onehot(ids)^T x
 * grad_out[n][dim] through cblas_sgemm (beta = 1), in token chunks with the forward's bounded scratch
 * (one-hot entries are 0 for padding ids and (float)(1/count) with scale_grad_by_freq). The sums are
 * BLAS-ordered: equal to tokemb_grad_accumulate up to rounding when an id repeats (bit-equal when ids
 * are distinct and no scaling applies). Cost O(rows*dim*n). Errors: as tokemb_grad_accumulate, plus
 * TOKEMB_UNSUPPORTED (dimensions beyond BLAS int).
 */
TOKEMB_API int32_t tokemb_lookup_onehot_backward(const tokemb_table *t, const int64_t *ids, size_t n,
                                                 const float *grad_out, float *grad_table);

/* ---------------------------------------------------------------------------------------------- */
/* Pooled lookups: bags (torch's EmbeddingBag)                                                    */
/* ---------------------------------------------------------------------------------------------- */

/** Bag reduction modes (pinned values). */
enum tokemb_bag_mode {
    TOKEMB_SUM = 0,
    TOKEMB_MEAN = 1,
    TOKEMB_MAX = 2,
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
 * TOKEMB_OUT_OF_RANGE (ids), TOKEMB_OVERFLOW (n_bags * dim, checked before offsets is read),
 * TOKEMB_UNSUPPORTED (max_norm on a non-F32 table), TOKEMB_READ_ONLY (max_norm on a READONLY wrap),
 * TOKEMB_NO_MEMORY (max_norm's id scratch). out untouched on error. Concurrent use as tokemb_lookup.
 * F16 / BF16 / Q8_ROW tables are read in their storage dtype and decoded in registers (no scratch).
 * F16 / BF16 bags, and Q8_ROW MAX, equal the same bags over the float32 rows a lookup returns
 * (tokemb_table_read_rows) bit for bit. Q8_ROW SUM / MEAN accumulate as torch's
 * quantized embedding_bag_byte_rowwise_offsets: acc = fmaf(w*scale, q, acc + w*bias) per element
 * (w = 1 without weights), then / count for MEAN, which rounds differently from summing dequantised rows.
 */
TOKEMB_API int32_t tokemb_lookup_bags(tokemb_table *t, const int64_t *ids, size_t n, const int64_t *offsets,
                                      size_t n_bags, int32_t mode, const float *per_sample_weights, float *out);
/** tokemb_lookup_bags with int32 ids (offsets stay int64). Same rules and errors. */
TOKEMB_API int32_t tokemb_lookup_bags_i32(tokemb_table *t, const int32_t *ids, size_t n, const int64_t *offsets,
                                          size_t n_bags, int32_t mode, const float *per_sample_weights, float *out);
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
TOKEMB_API int32_t tokemb_lookup_bags_backward(const tokemb_table *t, const int64_t *ids, size_t n,
                                               const int64_t *offsets, size_t n_bags, int32_t mode,
                                               const float *per_sample_weights, const float *grad_out,
                                               float *grad_table, float *grad_per_sample_weights);
/** tokemb_lookup_bags_backward with int32 ids. Same rules and errors. */
TOKEMB_API int32_t tokemb_lookup_bags_backward_i32(const tokemb_table *t, const int32_t *ids, size_t n,
                                                   const int64_t *offsets, size_t n_bags, int32_t mode,
                                                   const float *per_sample_weights, const float *grad_out,
                                                   float *grad_table, float *grad_per_sample_weights);

/* ---------------------------------------------------------------------------------------------- */
/* Fused sparse optimizers (docs/training.md)                                                     */
/* ---------------------------------------------------------------------------------------------- */

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
    TOKEMB_OPTIM_LR = 400,                 /**< >= 0; default 0.01 (SparseAdam 0.001) */
    TOKEMB_OPTIM_WEIGHT_DECAY = 401,       /**< >= 0; SGD and row-wise Adagrad only; default 0 */
    TOKEMB_OPTIM_EPS = 402,                /**< >= 0; default 1e-10 (Adagrad), 1e-8 (others) */
    TOKEMB_OPTIM_BETA1 = 403,              /**< [0, 1); SparseAdam; default 0.9 */
    TOKEMB_OPTIM_BETA2 = 404,              /**< [0, 1); SparseAdam; default 0.999 */
    TOKEMB_OPTIM_LR_DECAY = 405,           /**< >= 0; Adagrad; default 0 */
    TOKEMB_OPTIM_INITIAL_ACCUMULATOR = 406 /**< >= 0; Adagrad / row-wise Adagrad; default 0 */
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
TOKEMB_API int64_t tokemb_optim_step_count(const tokemb_table *t);
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

/* ---------------------------------------------------------------------------------------------- */
/* Tied output head                                                                               */
/* ---------------------------------------------------------------------------------------------- */

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
/* ---------------------------------------------------------------------------------------------- */
/* Positional encoders (sinusoidal, learned, RoPE, ALiBi, T5, Shaw) - see docs/positional.md      */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Opaque positional encoder. One type for every family; each create function documents what the
 * encoder computes. An encoder may be used by any number of threads at once for the const functions
 * (encode, rope apply, bias, buckets, embed); setters and writes into its table need exclusive access.
 */
typedef struct tokemb_posenc tokemb_posenc;

/** Sinusoidal channel layouts (pinned values). */
enum tokemb_sinusoidal_layout {
    /** Vaswani / seed numpy recipe: channel 2i = sin(p*w_i), 2i+1 = cos(p*w_i), w_i = base^(-2i/dim).
     *  Odd dim: the last channel (even index dim-1) is sin(p*base^(-(dim-1)/dim)). */
    TOKEMB_INTERLEAVED = 0,
    /** HF Marian/RoFormer "sentinel" table: channels [0, c) = sin(p*w_k), [c, dim) = cos(p*w_{k-c}),
     *  c = ceil(dim/2), same w as INTERLEAVED (odd dim: one more sin column than cos columns). */
    TOKEMB_CONCAT = 1,
    /** tensor2tensor get_timing_signal_1d / fairseq get_embedding: h = floor(dim/2) channels of
     *  sin(p*w_k) then h of cos, w_k = exp(-k*ln(base)/max(h-1, 1)) (w_0 = 1, w_{h-1} = 1/base); odd dim
     *  appends one zero column. dim must be >= 2. */
    TOKEMB_CONCAT_T2T = 2,
};

/** RoPE pairing conventions (pinned values): the pairing of the checkpoint's q/k weights. */
enum tokemb_rope_layout {
    /** rotate_half (HF Llama/Mistral/Qwen/GPT-NeoX checkpoints, ggml NEOX): pairs (i, i + r/2). */
    TOKEMB_NEOX = 0,
    /** interleaved (GPT-J, RoFormer, Meta's original Llama, ggml "normal"): pairs (2i, 2i+1). */
    TOKEMB_GPTJ = 1,
};

/** RoPE scaling variants, the values of TOKEMB_ROPE_SCALING (pinned). Formulas: transformers'
 *  modeling_rope_utils (see docs/positional.md). */
enum tokemb_rope_scaling {
    TOKEMB_ROPE_SCALING_NONE = 0,    /**< theta_i = base^(-2i/r), attention factor 1 */
    TOKEMB_ROPE_SCALING_LINEAR = 1,  /**< position interpolation: theta_i / factor */
    TOKEMB_ROPE_SCALING_DYNAMIC = 2, /**< dynamic NTK: base grows with ROPE_SEQ_LEN above ROPE_ORIGINAL_MAX_POS */
    TOKEMB_ROPE_SCALING_YARN = 3,    /**< YaRN ramp between theta and theta/factor, mscale attention factor */
    TOKEMB_ROPE_SCALING_LLAMA3 = 4,  /**< Llama 3.1 wavelength bands (low/high freq factor) */
    /** LongRoPE per-pair short/long factors (tokemb_posenc_rope_set_longrope_factors) */
    TOKEMB_ROPE_SCALING_LONGROPE = 5
};

/** Encoder parameters (pinned values, blocks 200 RoPE and 300 ALiBi). (i) int64 via
 *  tokemb_posenc_set_param, (f) double via tokemb_posenc_set_param_f64. Every value is checked alone
 *  when set (NaN/inf rejected); the combination is checked when the encoder is used. */
enum tokemb_posenc_param {
    /** (i) enum tokemb_rope_scaling. Default NONE. */
    TOKEMB_ROPE_SCALING = 200,
    /** (f) the context-extension factor s, finite and > 0. Default 1. LINEAR/DYNAMIC/YARN/LLAMA3 use it;
     *  LONGROPE uses it only for the attention factor. */
    TOKEMB_ROPE_FACTOR = 201,
    /** (i) L0 = original_max_position_embeddings, >= 1. Required by DYNAMIC (it plays transformers'
     *  max_position_embeddings there), YARN, LLAMA3 and LONGROPE. Default 0 = not set. */
    TOKEMB_ROPE_ORIGINAL_MAX_POS = 202,
    /** (f) YaRN beta_fast, finite > 0. Default 32. */
    TOKEMB_ROPE_BETA_FAST = 203,
    /** (f) YaRN beta_slow, finite > 0, <= beta_fast when used. Default 1. */
    TOKEMB_ROPE_BETA_SLOW = 204,
    /** (f) llama3 low_freq_factor, finite > 0. Default 1. */
    TOKEMB_ROPE_LOW_FREQ_FACTOR = 205,
    /** (f) llama3 high_freq_factor, finite > 0, > low_freq_factor when used. Default 4. */
    TOKEMB_ROPE_HIGH_FREQ_FACTOR = 206,
    /** (f) explicit attention factor A (cos and sin are multiplied by A, so logits by A^2), finite;
     *  > 0 overrides the formula of every scaling mode, 0 (default) = use the formula. */
    TOKEMB_ROPE_ATTN_FACTOR = 207,
    /** (f) YaRN mscale, finite >= 0. Default 0 (unset). */
    TOKEMB_ROPE_MSCALE = 208,
    /** (f) YaRN mscale_all_dim, finite >= 0. Default 0 (unset). A = g(s,mscale)/g(s,mscale_all_dim) when
     *  both are non-zero, else g(s,1), g(s,m) = 1 if s <= 1 else 0.1*m*ln(s) + 1. */
    TOKEMB_ROPE_MSCALE_ALL_DIM = 209,
    /** (i) YaRN truncate 0/1: floor/ceil the correction range. Default 1 (gpt-oss ships 0). */
    TOKEMB_ROPE_TRUNCATE = 210,
    /** (i) The current sequence length L (transformers: max(position_ids) + 1), >= 0. DYNAMIC uses
     *  base' = base*((s*L/L0) - (s-1))^(r/(r-2)) when L > L0; LONGROPE uses the long factors when L > L0,
     *  else the short ones. 0 (default) = not given: original base / short factors. Set it before each
     *  forward whose length changes (like transformers' dynamic_rope_update; keys cached with other
     *  frequencies are the caller's concern). */
    TOKEMB_ROPE_SEQ_LEN = 211,
    /** (i) 0/1: ALiBi causal form (1, default) or symmetric (0). */
    TOKEMB_ALIBI_CAUSAL = 300,
    /** (f) ALiBi max_bias (MPT alibi_bias_max, ggml max_bias), finite > 0. Default 8. */
    TOKEMB_ALIBI_MAX_BIAS = 301,
};

/**
 * Sinusoidal absolute encoder of `dim` channels with frequency base `base` (10000 in the paper) and a
 * layout from enum tokemb_sinusoidal_layout. Angles and sin/cos are evaluated in double and rounded
 * once to float32 (within 1 ulp of a float64 evaluation). No parameters, no table.
 * Errors: TOKEMB_INVALID_ARGUMENT (out NULL, dim < 1, dim < 2 for CONCAT_T2T, base not finite or <= 0,
 * unknown layout), TOKEMB_OVERFLOW, TOKEMB_NO_MEMORY. *out is written only on success. Thread-safe.
 */
TOKEMB_API int32_t tokemb_posenc_create_sinusoidal(int64_t dim, double base, int32_t layout, tokemb_posenc **out);
/**
 * Learned absolute encoder (GPT-1/2/3, BERT): owns a zero-filled F32 tokemb_table [max_len][dim]
 * (tokemb_posenc_table gives it to init, gradient, optimizer and file functions). Positions must lie in
 * [0, max_len): a learned table cannot extrapolate. Errors: as tokemb_table_create.
 */
TOKEMB_API int32_t tokemb_posenc_create_learned(int64_t max_len, int64_t dim, tokemb_posenc **out);
/**
 * Rotary encoder for heads of `head_dim` values: the first `rotary_dim` (r, even, 2 <= r <= head_dim)
 * are rotated in pairs given by `layout` (enum tokemb_rope_layout), the rest pass through unchanged.
 * theta_i = base^(-2i/r), i < r/2, then the scaling of TOKEMB_ROPE_SCALING. Errors:
 * TOKEMB_INVALID_ARGUMENT (out NULL, head_dim < 2, r odd, < 2 or > head_dim, base not finite or <= 0,
 * unknown layout), TOKEMB_NO_MEMORY. Thread-safe.
 */
TOKEMB_API int32_t tokemb_posenc_create_rope(int64_t head_dim, int64_t rotary_dim, double base, int32_t layout,
                                             tokemb_posenc **out);
/**
 * ALiBi encoder for `n_heads` heads (1 <= n_heads <= 65536). Slopes follow the official get_slopes
 * rule, including non-powers of two: with c = 2^floor(log2 n), heads h < c get 2^(-max_bias*(h+1)/c)
 * and heads c + j get 2^(-max_bias*(2j+1)/(2c)); computed in double, rounded once to float. Causal form
 * by default (TOKEMB_ALIBI_CAUSAL). Errors: TOKEMB_INVALID_ARGUMENT, TOKEMB_NO_MEMORY.
 */
TOKEMB_API int32_t tokemb_posenc_create_alibi(int64_t n_heads, tokemb_posenc **out);
/**
 * T5 relative attention bias (transformers T5Attention): relative position rel = key - query is put in
 * one of `num_buckets` buckets (half of them per direction when `bidirectional`, exact buckets for
 * small distances, logarithmic ones up to `max_distance`), and the bias is a learned table
 * [num_buckets][n_heads] owned by the encoder (tokemb_posenc_table; zero-filled). The logarithmic bucket
 * edges are precomputed as integer thresholds, so bucketing is integer comparison (distances 16, 32, 64
 * of the default bidirectional config land where transformers' float32 path puts them).
 * Errors: TOKEMB_INVALID_ARGUMENT (n_heads < 1, num_buckets < 2 (< 4 if bidirectional), max_distance
 * not above the exact range, bidirectional not 0/1, out NULL), TOKEMB_NO_MEMORY.
 */
TOKEMB_API int32_t tokemb_posenc_create_t5(int64_t n_heads, int64_t num_buckets, int64_t max_distance,
                                           int32_t bidirectional, tokemb_posenc **out);
/**
 * Shaw et al. relative position representations (tensor2tensor): index(i, j) = clip(j - (q_offset+i),
 * -k, k) + k for k = max_distance >= 1, and a learned zero-filled table [2k+1][dim] owned by the encoder.
 * Errors: TOKEMB_INVALID_ARGUMENT (max_distance < 1 or > 2^30, dim < 1, out NULL), TOKEMB_OVERFLOW,
 * TOKEMB_NO_MEMORY.
 */
TOKEMB_API int32_t tokemb_posenc_create_shaw(int64_t max_distance, int64_t dim, tokemb_posenc **out);
/** Frees an encoder and its table. NULL is a no-op. */
TOKEMB_API void tokemb_posenc_free(tokemb_posenc *pe);

/**
 * Sets an int64 parameter (enum tokemb_posenc_param marked (i)) of a RoPE or ALiBi encoder. Needs
 * exclusive access. Errors: TOKEMB_INVALID_ARGUMENT (NULL pe, unknown or double-typed param, a param of
 * another family, bad value); the encoder is unchanged on error.
 */
TOKEMB_API int32_t tokemb_posenc_set_param(tokemb_posenc *pe, int32_t param, int64_t value);
/** Sets a double parameter (marked (f)). Errors as tokemb_posenc_set_param (NaN and inf rejected). */
TOKEMB_API int32_t tokemb_posenc_set_param_f64(tokemb_posenc *pe, int32_t param, double value);
/** Reads an int64 parameter into *value. Errors as tokemb_posenc_set_param. Thread-safe. */
TOKEMB_API int32_t tokemb_posenc_get_param(const tokemb_posenc *pe, int32_t param, int64_t *value);
/** Reads a double parameter into *value. Thread-safe. */
TOKEMB_API int32_t tokemb_posenc_get_param_f64(const tokemb_posenc *pe, int32_t param, double *value);

/** The learned parameters (learned PE [max_len][dim], T5 bias [num_buckets][n_heads], Shaw
 *  [2k+1][dim]); the encoder keeps ownership. NULL for other families or a NULL pe. */
TOKEMB_API tokemb_table *tokemb_posenc_table(tokemb_posenc *pe);
/** The row length of the encoder's encode/embed output (sinusoidal, learned, Shaw), the head_dim of
 *  RoPE, the head count of ALiBi/T5; -1 for NULL. Thread-safe. */
TOKEMB_API int64_t tokemb_posenc_dim(const tokemb_posenc *pe);

/* ---- Absolute encodings and the input embedding ---------------------------------------------- */

/**
 * Absolute encodings out[n][dim] for explicit positions (offsets, packed sequences, fairseq's
 * padding offset): sinusoidal (any |position| <= 2^53) or learned (a gather of table rows; positions
 * in [0, max_len), max_norm of the table is not applied). n == 0 is a no-op. Errors:
 * TOKEMB_INVALID_ARGUMENT (NULL pe, NULL positions/out with n > 0, another family),
 * TOKEMB_OUT_OF_RANGE (message names the position, its index and the length), TOKEMB_OVERFLOW.
 * Thread-safe.
 */
TOKEMB_API int32_t tokemb_posenc_encode(const tokemb_posenc *pe, const int64_t *positions, size_t n, float *out);

/**
 * Input embedding out[batch][seq][dim] = scale * tok[ids[b][s]] + PE(start_pos + s) (each value
 * fl(fl(scale*e) + pe), as torch computes emb*scale + pe). scale = sqrt(dim) for Vaswani-style models,
 * 1 for GPT-2. pe: sinusoidal or learned with the table's dim, or NULL (no additive PE, e.g. for RoPE
 * models). Ids are validated (and max_norm applied) exactly as tokemb_lookup, positions as
 * tokemb_posenc_encode, all before anything is written. Errors: those of tokemb_lookup and
 * tokemb_posenc_encode, TOKEMB_INVALID_ARGUMENT (dim mismatch, non-additive pe, non-finite scale).
 */
TOKEMB_API int32_t tokemb_embed(tokemb_table *tok, const tokemb_posenc *pe, const int64_t *ids, size_t batch,
                                size_t seq, int64_t start_pos, float scale, float *out);
/**
 * Backward of tokemb_embed for grad_out[batch][seq][dim]: grad_tok[rows][dim] (may be NULL) gets
 * += fl(scale*g) per token, summed per row in input order; the padding row gets nothing and with
 * scale_grad_by_freq each contribution is first multiplied by (float)(1/count). grad_pe (learned only,
 * [max_len][dim], may be NULL) gets += g summed over the batch in order. Read-only on tok and pe.
 * Errors: as tokemb_embed; TOKEMB_INVALID_ARGUMENT for grad_pe with a non-learned pe.
 */
TOKEMB_API int32_t tokemb_embed_backward(const tokemb_table *tok, const tokemb_posenc *pe, const int64_t *ids,
                                         size_t batch, size_t seq, int64_t start_pos, float scale,
                                         const float *grad_out, float *grad_tok, float *grad_pe);

/* ---- Rotary (RoPE) --------------------------------------------------------------------------- */

/**
 * Rotates x[n_tokens][n_heads][head_dim] (q or k, never v) in place: token t at positions[t] (>= 0 and
 * <= 2^53; KV-cache offsets and left padding are the caller's explicit positions). For each pair i of
 * the layout, (a, b) -> (a*c - b*s, a*s + b*c) in float32 with c = (float)(A*cos(p*theta'_i)),
 * s = (float)(A*sin(p*theta'_i)), where p*theta'_i and cos/sin are evaluated in double: at every
 * position up to 2^24 (and beyond) c and s are within 1 ulp of the correctly rounded value (1e-9
 * absolute near a zero), where float32 angles (transformers, ggml) lose 1e-2. Dims >= rotary_dim are
 * untouched.
 * n_tokens == 0 is a no-op. Errors: TOKEMB_INVALID_ARGUMENT (NULL pe, not RoPE, NULL x/positions, n_heads
 * 0, an inconsistent scaling configuration), TOKEMB_OUT_OF_RANGE (negative or too large position, named
 * with its index), TOKEMB_OVERFLOW, TOKEMB_NO_MEMORY. x is unchanged on error. Thread-safe.
 */
TOKEMB_API int32_t tokemb_rope_apply(const tokemb_posenc *pe, float *x, size_t n_tokens, size_t n_heads,
                                     const int64_t *positions);
/** Backward of tokemb_rope_apply: grad (same shape) is rotated in place by -theta (the transpose of the
 *  forward map, A included). Errors as tokemb_rope_apply. */
TOKEMB_API int32_t tokemb_rope_apply_backward(const tokemb_posenc *pe, float *grad, size_t n_tokens, size_t n_heads,
                                              const int64_t *positions);
/**
 * Strided RoPE, e.g. transformers' [batch][heads][seq][head_dim]: head h of token s of batch b starts at
 * x + b*stride_batch + h*stride_head + s*stride_seq (element strides, >= 0; the head_dim values are
 * contiguous), at position positions[b*seq + s] (positions is [batch][seq]). backward = 1 rotates by
 * -theta. Errors as tokemb_rope_apply, plus TOKEMB_INVALID_ARGUMENT for negative strides or backward not
 * 0/1. Overlapping heads are the caller's error.
 */
TOKEMB_API int32_t tokemb_posenc_rope_apply_strided(const tokemb_posenc *pe, float *x, size_t batch, size_t n_heads,
                                                    size_t seq, int64_t stride_batch, int64_t stride_head,
                                                    int64_t stride_seq, const int64_t *positions, int32_t backward);
/**
 * The scaled inverse frequencies theta'_i (i < rotary_dim/2, double, transformers' inv_freq evaluated in
 * double) and the attention factor A of the current configuration (either output may be NULL).
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL pe, not RoPE, n != rotary_dim/2 with inv_freq non-NULL, an
 * inconsistent configuration), TOKEMB_NO_MEMORY. Thread-safe.
 */
TOKEMB_API int32_t tokemb_posenc_rope_inv_freq(const tokemb_posenc *pe, double *inv_freq, size_t n,
                                               double *attn_factor);
/** The cos and sin tables the rotation uses: cos[n][rotary_dim/2], sin[n][rotary_dim/2] (float32, A
 *  included) for positions[n]. Errors as tokemb_rope_apply. Thread-safe. */
TOKEMB_API int32_t tokemb_posenc_rope_cos_sin(const tokemb_posenc *pe, const int64_t *positions, size_t n,
                                              float *cos_out, float *sin_out);
/**
 * Sets the LongRoPE per-pair factors (each n = rotary_dim/2 values, finite and > 0; copied). Used when
 * TOKEMB_ROPE_SCALING is LONGROPE: theta'_i = 1 / (factor_i * base^(2i/r)), long factors when
 * TOKEMB_ROPE_SEQ_LEN > TOKEMB_ROPE_ORIGINAL_MAX_POS, else short. Needs exclusive access.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL, not RoPE, wrong n, bad value named with its index),
 * TOKEMB_NO_MEMORY. Unchanged on error.
 */
TOKEMB_API int32_t tokemb_posenc_rope_set_longrope_factors(tokemb_posenc *pe, const double *short_factor,
                                                           const double *long_factor, size_t n);

/* ---- Relative: ALiBi, T5 and Shaw ------------------------------------------------------------ */

/** ALiBi slopes out[n_heads] (float32) of the current max_bias. Errors: TOKEMB_INVALID_ARGUMENT (NULL,
 *  not ALiBi). Thread-safe. */
TOKEMB_API int32_t tokemb_posenc_alibi_slopes(const tokemb_posenc *pe, float *out);
/**
 * Attention bias out[n_heads][q_len][k_len]; query i sits at position q_offset + i, key j at j.
 * ALiBi causal (default): -slope_h*(q_offset + i - j) for j <= q_offset + i and -INFINITY past it (the
 * causal mask included; the diagonal is -0.0). ALiBi symmetric: -slope_h*|q_offset + i - j|. Each value
 * is evaluated in double from the float slope and rounded once. T5: table[bucket(j - q_offset - i)][h].
 * q_len or k_len 0 is a no-op. Errors: TOKEMB_INVALID_ARGUMENT (NULL pe/out, another family),
 * TOKEMB_OUT_OF_RANGE (|q_offset| or the lengths above 2^53), TOKEMB_OVERFLOW. Thread-safe.
 */
TOKEMB_API int32_t tokemb_posenc_attn_bias(const tokemb_posenc *pe, size_t q_len, size_t k_len, int64_t q_offset,
                                           float *out);
/**
 * Backward of the T5 bias: grad_table[bucket][h] += grad_bias[h][i][j], summed per (bucket, h) in
 * (i, j) row-major order (as embedding backward of transformers' compute_bias). grad_table is
 * [num_buckets][n_heads]. Errors: as tokemb_posenc_attn_bias (T5 only), NULL grads.
 */
TOKEMB_API int32_t tokemb_posenc_attn_bias_backward(const tokemb_posenc *pe, size_t q_len, size_t k_len,
                                                    int64_t q_offset, const float *grad_bias, float *grad_table);
/**
 * Index matrix out[q_len][k_len] with rel = j - (q_offset + i): T5 buckets (transformers'
 * _relative_position_bucket), or Shaw indices clip(rel, -k, k) + k in [0, 2k] (tensor2tensor's
 * _generate_relative_positions_matrix with q_offset = k_len - q_len). Errors as tokemb_posenc_attn_bias.
 */
TOKEMB_API int32_t tokemb_posenc_buckets(const tokemb_posenc *pe, size_t q_len, size_t k_len, int64_t q_offset,
                                         int32_t *out);
/** Shaw: out[q_len][k_len][dim] = table[index(i, j)]. Errors as tokemb_posenc_buckets (Shaw only). */
TOKEMB_API int32_t tokemb_posenc_shaw_embed(const tokemb_posenc *pe, size_t q_len, size_t k_len, int64_t q_offset,
                                            float *out);
/** Shaw backward: grad_table[index(i, j)] += grad[i][j] ([2k+1][dim]), per row in (i, j) order. */
TOKEMB_API int32_t tokemb_posenc_shaw_embed_backward(const tokemb_posenc *pe, size_t q_len, size_t k_len,
                                                     int64_t q_offset, const float *grad, float *grad_table);

/* ---------------------------------------------------------------------------------------------- */
/* NumPy .npy files (docs/formats.md)                                                             */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Loads a 2-D little-endian float32 ('<f4') or float16 ('<f2') C-order .npy file (format version 1, 2
 * or 3) into a new table of dtype F32 or F16 (a copy; the file is closed on return). The header is parsed
 * strictly and its shape checked against the file length before allocating. Errors: TOKEMB_INVALID_ARGUMENT
 * (NULL/empty path, NULL out), TOKEMB_IO (missing or unreadable file, not a regular file - a directory,
 * FIFO or device is refused without blocking -, or the file shrank while it was read: the data is read
 * with pread, so a concurrent truncation is an error, not SIGBUS), TOKEMB_FORMAT (empty,
 * truncated or malformed file, other dtype, big-endian, Fortran order, not 2-D, shape x dtype != data
 * length; the message names the byte offset and what was expected), TOKEMB_NO_MEMORY. Thread-safe.
 */
TOKEMB_API int32_t tokemb_npy_load(const char *path, tokemb_table **out);
/**
 * Like tokemb_npy_load but maps the file read-only and wraps it without copying: the table is
 * READONLY (writes fail with TOKEMB_READ_ONLY), owns the mapping and unmaps it in tokemb_table_free.
 * As with numpy.memmap, truncating the file while the table is alive makes reading a row past the new
 * end raise SIGBUS; changing it in place changes the rows. Replace mapped files by rename (as tokemb's
 * saves do). Errors: those of tokemb_npy_load, plus TOKEMB_UNSUPPORTED if the data offset is not a
 * multiple of the element size.
 */
TOKEMB_API int32_t tokemb_npy_mmap(const char *path, tokemb_table **out);
/**
 * Saves an F32 or F16 table as a version-1 .npy file ('<f4'/'<f2', C order, data 64-byte aligned), rows
 * only (a strided wrap is packed). Atomic: written to a temp file ".tokemb-<hash>.<pid>.<n>.tmp" in the
 * same folder, fsynced, renamed over `path`; on any failure nothing is left at `path` (a previous file
 * stays intact). A symlink `path` is followed (its target is replaced, as np.save); an existing file
 * keeps its permission bits; temp files of earlier killed saves to the same file are removed
 * (docs/formats.md). Errors:
 * TOKEMB_INVALID_ARGUMENT (NULL t or path, empty path), TOKEMB_UNSUPPORTED (BF16/Q8_ROW: convert first),
 * TOKEMB_IO (the folder is not writable, path is a directory, a write/fsync/rename fails), TOKEMB_NO_MEMORY.
 * Safe while other threads read t.
 */
TOKEMB_API int32_t tokemb_npy_save(const tokemb_table *t, const char *path);

/* ---------------------------------------------------------------------------------------------- */
/* safetensors files (docs/formats.md)                                                            */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Loads the 2-D tensor `name` (F32, F16 or BF16) from a .safetensors file into a new table of the same
 * dtype (a copy). name NULL selects the file's only tensor. The JSON header is parsed by a strict parser
 * (UTF-8, escapes, integer shapes and offsets, no duplicates, at most 100 MB) and every tensor's byte range
 * is checked against its shape and the file. Errors: TOKEMB_INVALID_ARGUMENT (NULL path/out, no tensor of
 * that name, name NULL with several tensors), TOKEMB_IO (as tokemb_npy_load: not a regular file, or
 * the file shrank while it was read), TOKEMB_FORMAT (malformed header, unknown dtype,
 * not 2-D, offsets outside the file or not matching shape x dtype; the message names the byte offset),
 * TOKEMB_UNSUPPORTED (a valid dtype tables cannot store, e.g. I64), TOKEMB_NO_MEMORY. Thread-safe.
 */
TOKEMB_API int32_t tokemb_safetensors_load(const char *path, const char *name, tokemb_table **out);
/**
 * Like tokemb_safetensors_load but maps the file read-only and wraps the tensor without copying (a
 * READONLY table that owns and finally unmaps the mapping). Truncating the file while the table is
 * alive risks SIGBUS, as with numpy.memmap (see tokemb_npy_mmap). Errors: those of
 * tokemb_safetensors_load, plus TOKEMB_UNSUPPORTED when the tensor's data is not aligned to its
 * element size.
 */
TOKEMB_API int32_t tokemb_safetensors_mmap(const char *path, const char *name, tokemb_table **out);
/**
 * Lists the tensor names of a .safetensors file in header order (every tensor, any dtype or rank;
 * __metadata__ excluded). *n_names and *bytes_needed receive the count and the bytes of all names, each
 * NUL-terminated, packed one after another; the names are copied into buf if buf is non-NULL (pass
 * buf = NULL first to size it). Errors: TOKEMB_INVALID_ARGUMENT (NULL n_names/bytes_needed, buf_size
 * smaller than needed: nothing written), and those of tokemb_safetensors_load. Thread-safe.
 */
TOKEMB_API int32_t tokemb_safetensors_names(const char *path, char *buf, size_t buf_size, size_t *n_names,
                                            size_t *bytes_needed);
/**
 * Saves n tables as tensors names[i] (UTF-8, distinct, not "__metadata__") of shape [rows, dim] and the
 * table's dtype (F32, F16 or BF16), in the given order, header padded to a multiple of 8 bytes.
 * Atomic as tokemb_npy_save. Errors: TOKEMB_INVALID_ARGUMENT (NULL arrays or entries, n == 0, bad or
 * repeated names), TOKEMB_UNSUPPORTED (Q8_ROW), TOKEMB_IO, TOKEMB_NO_MEMORY.
 */
TOKEMB_API int32_t tokemb_safetensors_save(const tokemb_table *const *tables, const char *const *names, size_t n,
                                           const char *path);
/**
 * tokemb_safetensors_save with a "__metadata__" object of n_meta string pairs meta_keys[i] ->
 * meta_values[i] (UTF-8, NUL-terminated, keys distinct), written first in the header as the
 * safetensors package does (n_meta == 0: no metadata, exactly tokemb_safetensors_save). Errors: those of
 * tokemb_safetensors_save, and TOKEMB_INVALID_ARGUMENT for NULL arrays or entries with n_meta > 0, text
 * that is not valid UTF-8 (byte named) or a repeated key (named). Nothing is written on error.
 */
TOKEMB_API int32_t tokemb_safetensors_save_ex(const tokemb_table *const *tables, const char *const *names, size_t n,
                                              const char *const *meta_keys, const char *const *meta_values,
                                              size_t n_meta, const char *path);
/**
 * The "__metadata__" pairs of a .safetensors file in header order (none if it has no metadata):
 * *n_pairs receives the pair count and *bytes_needed the bytes of "key\0value\0" for every pair packed
 * one after another; they are copied into buf if buf is non-NULL (pass buf = NULL first to size it). A
 * key repeated in the file appears as often as it is written (a JSON reader keeps the last). Errors:
 * TOKEMB_INVALID_ARGUMENT (NULL n_pairs/bytes_needed, buf_size smaller than needed: nothing written),
 * and those of tokemb_safetensors_load (a metadata value that is not a string is TOKEMB_FORMAT).
 * Thread-safe.
 */
TOKEMB_API int32_t tokemb_safetensors_metadata(const char *path, char *buf, size_t buf_size, size_t *n_pairs,
                                               size_t *bytes_needed);

/* ---------------------------------------------------------------------------------------------- */
/* Sharded checkpoints: one table split over several safetensors files plus a JSON index          */
/* (docs/formats.md; written by libtokemb_mpi's tokemb_mpi_table_save, readable here without MPI)  */
/* ---------------------------------------------------------------------------------------------- */

/**
 * Writes the JSON index of a sharded checkpoint of a float32 table of rows x dim to `path` (e.g.
 * "ckpt/emb.index.json"), atomically as tokemb_npy_save. File k (files[k], a plain file name in the
 * index's folder: no '/', not starting with '.', UTF-8 without '"', '\\' or control characters) holds
 * the tensor "weight", float32 [row_count, col_count], with the global rows row_start + i * row_step
 * (i < row_count) and the columns [col_start, col_start + col_count): layout[5 * k + 0..4] = row_start,
 * row_step, row_count, col_start, col_count. The files must cover the table exactly once in one of the
 * two forms tokemb reads: column bands that tile [0, dim), each band's files either contiguous row
 * blocks tiling [0, rows) (row_step 1, or row_count 1) or a round-robin over S files (row_step S for
 * each, row_start 0..S-1, row_count ceil((rows - row_start) / S)). `generation` (>= 0) is recorded for
 * the writer's own use (tokemb_mpi_table_save numbers its saves). The shard files themselves are not
 * opened: write them first (tokemb_safetensors_save), the index last.
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL path/files/layout, n_files == 0, rows/dim < 1, generation < 0,
 * a bad file name, a rule outside the table, files overlapping or leaving a gap: the message names the
 * file index), TOKEMB_IO, TOKEMB_NO_MEMORY. Nothing is written on error. Thread-safe.
 */
TOKEMB_API int32_t tokemb_checkpoint_save_index(const char *path, int64_t rows, int64_t dim, int64_t generation,
                                                size_t n_files, const char *const *files, const int64_t *layout);
/**
 * Reads and validates the index `path` (the strict JSON reader of the safetensors header: each key
 * once, no unknown key, integers only, the coverage rules of tokemb_checkpoint_save_index) and returns
 * the table's shape, the generation and the file count (any output pointer may be NULL). The shard
 * files are not opened. Errors: TOKEMB_INVALID_ARGUMENT (NULL or empty path), TOKEMB_IO (missing or
 * unreadable index), TOKEMB_FORMAT (malformed index or layout; the message names the index byte
 * offset), TOKEMB_UNSUPPORTED (a dtype other than F32, a version other than 1), TOKEMB_NO_MEMORY.
 * Thread-safe.
 */
TOKEMB_API int32_t tokemb_checkpoint_info(const char *path, int64_t *rows, int64_t *dim, int64_t *generation,
                                          size_t *n_files);
/**
 * The shard file names of the index `path` in index order, each NUL-terminated and packed one after
 * another (as tokemb_safetensors_names: pass buf = NULL first to size it); names are relative to the
 * index's folder. Errors: TOKEMB_INVALID_ARGUMENT (NULL n_files/bytes_needed, buf_size smaller than
 * needed: nothing written) and those of tokemb_checkpoint_info. Thread-safe.
 */
TOKEMB_API int32_t tokemb_checkpoint_files(const char *path, char *buf, size_t buf_size, size_t *n_files,
                                           size_t *bytes_needed);
/**
 * Reads a region of the checkpoint's table into out[row_count][col_count]: the global rows
 * row_start + i * row_step (i < row_count) and the columns [col_start, col_start + col_count), from
 * whichever shard files hold them. Only the shards holding wanted rows are opened (their safetensors
 * header is validated as tokemb_safetensors_load does, and their tensor must be F32 of the index's
 * [row_count, col_count]); rows are read with pread, one read per run of wanted rows of one file at a
 * constant stride whose gaps are at most 4 KiB (read through: the kernel reads whole pages anyway), so
 * a whole foreign shard is read only when its rows are that dense among the wanted ones. row_count == 0
 * reads nothing (the index is still validated).
 * Errors: TOKEMB_INVALID_ARGUMENT (NULL out with row_count > 0, row_step < 1, a region outside the
 * table), those of tokemb_checkpoint_info, and for a shard: TOKEMB_IO (missing, unreadable or
 * shrinking file), TOKEMB_FORMAT (malformed header, missing tensor, a shape or dtype differing from the
 * index); every message names the shard file, its byte offset where it applies and the index byte of
 * its entry. out may be partly written on error (load into a scratch buffer when that matters).
 * Thread-safe.
 */
TOKEMB_API int32_t tokemb_checkpoint_read(const char *path, int64_t row_start, int64_t row_step, int64_t row_count,
                                          int64_t col_start, int64_t col_count, float *out);
/**
 * The whole table of the checkpoint indexed by `path` as a new F32 table (rows x dim), assembled from
 * every shard whatever the rank count and sharding it was saved with. *out is owned by the caller
 * (tokemb_table_free) and written only on success. Errors: those of tokemb_checkpoint_read, and
 * TOKEMB_INVALID_ARGUMENT (NULL out). Thread-safe.
 */
TOKEMB_API int32_t tokemb_checkpoint_load(const char *path, tokemb_table **out);

/* ---------------------------------------------------------------------------------------------- */
/* Vocabulary                                                                                     */
/* ---------------------------------------------------------------------------------------------- */

/** Opaque vocabulary: words (UTF-8 byte strings) <-> ids 0..size-1 in insertion order. */
typedef struct tokemb_vocab tokemb_vocab;
/** Creates an empty vocabulary; free with tokemb_vocab_free. Errors: TOKEMB_INVALID_ARGUMENT, NO_MEMORY. */
TOKEMB_API int32_t tokemb_vocab_create(tokemb_vocab **out);
/** Frees a vocabulary. NULL is a no-op. */
TOKEMB_API void tokemb_vocab_free(tokemb_vocab *v);
/** Number of words, or -1 for NULL. Thread-safe. */
TOKEMB_API int64_t tokemb_vocab_size(const tokemb_vocab *v);
/**
 * Appends word[0..len) (non-empty, valid UTF-8, no NUL; need not be NUL-terminated) with the next id,
 * stored in *id if id is non-NULL. Needs exclusive access. Errors: TOKEMB_INVALID_ARGUMENT (NULL v or
 * word, empty, invalid UTF-8 or NUL (byte named), a word already present (its id named)),
 * TOKEMB_NO_MEMORY. The vocabulary is unchanged on error.
 */
TOKEMB_API int32_t tokemb_vocab_add(tokemb_vocab *v, const char *word, size_t len, int64_t *id);
/** The id of word[0..len), or -1 if absent (or v/word NULL). Thread-safe. */
TOKEMB_API int64_t tokemb_vocab_find(const tokemb_vocab *v, const char *word, size_t len);
/** The NUL-terminated word of `id` (its byte length in *len if non-NULL), owned by v and valid until v
 *  changes; NULL if v is NULL or id is outside [0, size). Thread-safe. */
TOKEMB_API const char *tokemb_vocab_word(const tokemb_vocab *v, int64_t id, size_t *len);

/* ---------------------------------------------------------------------------------------------- */
/* Word vectors: word2vec and GloVe files (docs/formats.md)                                       */
/* ---------------------------------------------------------------------------------------------- */

/** Word-vector file formats (pinned values). */
enum tokemb_vectors_format {
    /** word2vec binary (gensim save_word2vec_format(binary=True), the C tool): "count dim\n", then per
     *  word "word " + dim little-endian float32 (+ optional '\n'). */
    TOKEMB_VECTORS_WORD2VEC_BINARY = 0,
    /** word2vec text, also fastText's .vec: "count dim\n", then "word v1 ... vD\n" per word. */
    TOKEMB_VECTORS_WORD2VEC_TEXT = 1,
    /** GloVe text: "word v1 ... vD\n" per word, no header (dim from the first line). */
    TOKEMB_VECTORS_GLOVE = 2,
    /** Loading only: detect the format. A first line of two counts "<count> <dim>" means word2vec: text
     *  when the next line is a word and exactly dim decimal values, binary otherwise; any other first
     *  line means GloVe (no header). */
    TOKEMB_VECTORS_AUTO = 3
};

/** Flags of tokemb_vectors_load_ex (pinned values): how words that are not valid UTF-8 are read, as
 *  gensim's unicode_errors= (Python's bytes.decode errors=). At most one of IGNORE and REPLACE. */
enum tokemb_vectors_flags {
    /** strict (the default, no flag): a word that is not valid UTF-8 fails the load with TOKEMB_FORMAT */
    TOKEMB_VECTORS_UNICODE_STRICT = 0,
    /** drop every ill-formed byte sequence from the word (errors='ignore') */
    TOKEMB_VECTORS_UNICODE_IGNORE = 1,
    /** replace each maximal ill-formed subpart by U+FFFD (errors='replace', as Python's decoder) */
    TOKEMB_VECTORS_UNICODE_REPLACE = 2,
    /** the bits holding the unicode policy */
    TOKEMB_VECTORS_UNICODE_MASK = 3
};

/**
 * Loads word vectors: a new F32 table [words][dim] and its vocabulary (row i = word i), as gensim's
 * KeyedVectors.load_word2vec_format reads the same file (for GloVe: no_header=True; `format` may be
 * TOKEMB_VECTORS_AUTO to detect it): words must be
 * valid UTF-8 (no NUL); a repeated word keeps its first vector and later copies are skipped (rows =
 * distinct words); text values are split on single spaces after trailing whitespace is stripped, parsed
 * with exactly the grammar of Python's float() (no hex floats, no "nan(...)", '_' between digits, any
 * length; docs/formats.md) through double and rounded to float32, independent of the C locale. The file
 * is read into memory with read() (no mapping: a file truncated meanwhile cannot SIGBUS). The declared
 * count and dim are checked against the file length before allocating; data after the last vector must
 * be whitespace. progress may be NULL. Errors: TOKEMB_INVALID_ARGUMENT (NULL path or outputs, unknown
 * format), TOKEMB_IO (also a FIFO, device or directory, refused without blocking), TOKEMB_FORMAT (message names the byte offset, the vector index and
 * what was expected), TOKEMB_CANCELLED, TOKEMB_NO_MEMORY. Outputs are written only on success. Thread-safe.
 */
TOKEMB_API int32_t tokemb_vectors_load(const char *path, int32_t format, tokemb_progress_fn progress, void *user,
                                       tokemb_table **out_table, tokemb_vocab **out_vocab);
/**
 * tokemb_vectors_load with the options of gensim's load_word2vec_format: `limit` > 0 reads at most that
 * many vectors from the start of the file (gensim's limit=: counted before repeated words are dropped;
 * data after them is not read), 0 reads all; `flags` is a TOKEMB_VECTORS_UNICODE_* policy for words
 * that are not valid UTF-8 (gensim's unicode_errors=; a word that then repeats an earlier word is
 * skipped, and under IGNORE a word made only of ill-formed bytes becomes the empty word "", as in gensim).
 * The values of a text line must be valid UTF-8 under every policy.
 * `format` may be TOKEMB_VECTORS_AUTO. tokemb_vectors_load(path, f, ...) equals
 * tokemb_vectors_load_ex(path, f, 0, 0, ...). Errors: those of tokemb_vectors_load, and
 * TOKEMB_INVALID_ARGUMENT for limit < 0, unknown flag bits or both IGNORE and REPLACE. Thread-safe.
 */
TOKEMB_API int32_t tokemb_vectors_load_ex(const char *path, int32_t format, int64_t limit, uint32_t flags,
                                          tokemb_progress_fn progress, void *user, tokemb_table **out_table,
                                          tokemb_vocab **out_vocab);
/**
 * Saves table rows with their words (vocab size must equal rows; words must not contain ASCII whitespace)
 * in `format`. Text values are written with the fewest of 6..9 significant digits that read back (through
 * double) to the same float32, so gensim and tokemb_vectors_load recover identical vectors; any storage
 * dtype is written as its float32 values. Atomic as tokemb_npy_save. Errors: TOKEMB_INVALID_ARGUMENT,
 * TOKEMB_IO, TOKEMB_NO_MEMORY. Safe while other threads read t and v.
 */
TOKEMB_API int32_t tokemb_vectors_save(const tokemb_table *t, const tokemb_vocab *v, const char *path, int32_t format);

/* ---------------------------------------------------------------------------------------------- */
/* Nearest neighbours                                                                             */
/* ---------------------------------------------------------------------------------------------- */

/** Similarity metrics of the nearest-neighbour search (pinned values). */
enum tokemb_metric {
    /** cosine: dot(row, q/|q|) / |row| (gensim most_similar's scoring). An all-zero row scores NaN (as
     *  gensim's 0/0) and so ranks after every row with a number: it is returned only when fewer than k
     *  other rows are left. An all-zero query scores 0 against every nonzero row. */
    TOKEMB_METRIC_COSINE = 0,
    /** raw dot product dot(row, q). */
    TOKEMB_METRIC_DOT = 1
};

/**
 * Top-k rows of t most similar to each query vector: queries[n_queries][dim] float32; out_ids and
 * out_scores (may be NULL) are [n_queries][k], best first (higher score, ties by lower id, NaN scores
 * last). exclude_ids (NULL, or one id per query, -1 = none) removes that row from the query's results
 * (as gensim excludes the query word); a slot left empty then holds id -1 and score -INFINITY. Scores are
 * computed in float32 through cblas_sgemm over blocks of rows (scratch is bounded; non-F32 storage is
 * dequantised block by block). Read-only on t; thread-safe. n_queries == 0 is a no-op. Errors:
 * TOKEMB_INVALID_ARGUMENT (NULL t/queries/out_ids, k == 0 or k > rows, unknown metric),
 * TOKEMB_OUT_OF_RANGE (an exclude id outside [-1, rows), named with its index), TOKEMB_OVERFLOW,
 * TOKEMB_NO_MEMORY. Outputs are written only on success.
 */
TOKEMB_API int32_t tokemb_nearest(const tokemb_table *t, const float *queries, size_t n_queries, size_t k,
                                  int32_t metric, const int64_t *exclude_ids, int64_t *out_ids, float *out_scores);
/**
 * tokemb_nearest with progress and cancellation for long searches: progress(user, done, total) is called
 * on the calling thread before scoring (done = 0; for cosine also with done = 0 after the norms of every
 * block of 2048 rows) and after every block of up to 256 queries x 2048 rows, with done/total counted
 * in scored (query, row) pairs (total = n_queries x rows); returning
 * nonzero stops the search, which then fails with TOKEMB_CANCELLED (out_ids/out_scores may then hold
 * part of the results). progress may be NULL (then exactly tokemb_nearest). Errors: those of
 * tokemb_nearest, TOKEMB_CANCELLED. Thread-safe as tokemb_nearest.
 */
TOKEMB_API int32_t tokemb_nearest_ex(const tokemb_table *t, const float *queries, size_t n_queries, size_t k,
                                     int32_t metric, const int64_t *exclude_ids, tokemb_progress_fn progress,
                                     void *user, int64_t *out_ids, float *out_scores);
/**
 * tokemb_nearest for table rows as queries: the query of ids[i] is row ids[i]; with exclude_self = 1
 * that row is left out of its own results (gensim's most_similar(word)). Errors: those of
 * tokemb_nearest, TOKEMB_OUT_OF_RANGE for an id outside [0, rows), TOKEMB_INVALID_ARGUMENT for
 * exclude_self not 0/1.
 */
TOKEMB_API int32_t tokemb_nearest_ids(const tokemb_table *t, const int64_t *ids, size_t n, size_t k, int32_t metric,
                                      int32_t exclude_self, int64_t *out_ids, float *out_scores);

#ifdef __cplusplus
}
#endif

#endif /* TOKEMB_H */

/* ---------------------------------------------------------------------------------------------- */
/* Experimental: tuning knobs outside the stable ABI                                              */
/* ---------------------------------------------------------------------------------------------- */

/*
 * The declarations below are not covered by the ABI promise of docs/ABI.md: their names and values may
 * change or disappear in any release, and they may behave differently on another machine. They are
 * visible only to code that defines TOKEMB_EXPERIMENTAL before including this header (as zstd's
 * ZSTD_STATIC_LINKING_ONLY), so a program that depends on one says so in its source. The library, its
 * tests and its benchmark define it. What each knob does to performance: docs/performance.md.
 */
#if defined(TOKEMB_EXPERIMENTAL) && !defined(TOKEMB_H_EXPERIMENTAL)
#define TOKEMB_H_EXPERIMENTAL

#ifdef __cplusplus
extern "C" {
#endif

/** Experimental table parameters, set and read through tokemb_table_set_param / tokemb_table_get_param
 *  like those of enum tokemb_table_param (their values are never given to a stable parameter). */
enum tokemb_table_param_experimental {
    /** (i) Non-temporal (cache-bypassing) stores for F32 lookup outputs: 0 never, 1 always, 2 (default)
     *  only when one call's output exceeds the last-level cache size (as glibc's memcpy does for copies;
     *  such an output cannot stay cached for its consumer anyway).
     *  Helps large outputs that are not read again soon and keeps a cache-resident table from being
     *  evicted by the output stream; a consumer reading the output next misses in cache.
     *  The stored values are identical either way. Not in torch. Other values: TOKEMB_INVALID_ARGUMENT. */
    TOKEMB_NONTEMPORAL = 105
};

#ifdef __cplusplus
}
#endif

#endif /* TOKEMB_EXPERIMENTAL */