/* internal.h - runtime shared by the API layer: errors, allocation, threads, the table struct.
 * Nothing here is part of the public ABI. */
#ifndef TOKEMB_INTERNAL_H
#define TOKEMB_INTERNAL_H

#include "tokemb.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define TK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define TK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define TK_PRINTF(a, b)
#define TK_UNLIKELY(x) (x)
#endif

/* ---- error.c: thread-local last-error text ------------------------------------------------- */
/* Records `status` with a printf-style message for tokemb_last_error() and returns `status`. */
int32_t tk_error(int32_t status, const char *fmt, ...) TK_PRINTF(2, 3);

/* ---- alloc.c: every library allocation goes through these (the failure-injection seam) ------ */
void *tk_malloc(size_t size);                 /* NULL on failure */
void *tk_calloc(size_t n, size_t size);       /* zeroed; NULL on failure or overflow */
void *tk_aligned_alloc(size_t size);          /* 64-byte aligned, zeroed; free with tk_aligned_free */
void tk_free(void *p);
void tk_aligned_free(void *p);
/* a*b into *out; false on overflow */
static inline bool tk_mul_overflow(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

/* ---- threads.c: deterministic parallel for ------------------------------------------------- */
/* Calls fn(ctx, begin, end) over a static partition of [0, n) into at most tokemb_get_num_threads()
 * contiguous chunks of at least `grain` items. Each result must depend only on the item, so any
 * partition gives the same bits. Falls back to one serial call when threads cannot be started. */
typedef void (*tk_range_fn)(void *ctx, size_t begin, size_t end);
void tk_parallel_for(size_t n, size_t grain, tk_range_fn fn, void *ctx);

/* ---- dispatch.c: CPU features, probed once -------------------------------------------------- */
enum { TK_ISA_PORTABLE = 0, TK_ISA_AVX2 = 1, TK_ISA_AVX512 = 2 };
int tk_cpu_isa(void);
/* Data cache sizes of CPU 0 in bytes (sysfs, probed once; fallbacks 1 MiB / 32 MiB). */
size_t tk_cache_l2_bytes(void);
size_t tk_cache_llc_bytes(void);

/* ---- table ----------------------------------------------------------------------------------- */
enum { TK_TABLE_OWNED = 1u, TK_TABLE_READONLY = 2u };

struct tokemb_table {
    void *data;            /* storage; rows*row_stride elements of dtype */
    int64_t rows, dim, row_stride;
    int32_t dtype;
    uint32_t flags;        /* TK_TABLE_* */
    int64_t padding_idx;   /* normalised, or -1 for none */
    double max_norm;       /* <= 0: off */
    double norm_type;
    int32_t scale_grad_by_freq;
    int32_t frozen;
    void *optim;           /* optimizer state, owned (see optim.c); NULL until first use */
    void (*optim_free)(void *);
    void (*release)(void *ctx); /* called by tokemb_table_free (e.g. munmap of a mapped file), or NULL */
    void *release_ctx;
    int32_t nontemporal;   /* TOKEMB_TABLE_NONTEMPORAL: 0 off, 1 on, 2 auto (lookup.c) */
};

/* element size of a storage dtype, 0 for unknown */
size_t tk_dtype_size(int32_t dtype);
static inline float *tk_row_f32(const tokemb_table *t, int64_t r) {
    return (float *)t->data + (size_t)r * (size_t)t->row_stride;
}

/* Shared argument checks of the API layer. Each returns TOKEMB_OK or sets the error (prefixed by
 * `fn`) and returns its status. */
int32_t tk_check_table(const char *fn, const tokemb_table *t);
int32_t tk_check_writable(const char *fn, const tokemb_table *t);
/* ids are `id_width` (4 or 8) bytes wide; every id must be in [0, rows). */
int32_t tk_check_ids(const char *fn, const void *ids, int id_width, size_t n, int64_t rows);
static inline int64_t tk_id_at(const void *ids, int id_width, size_t i) {
    return id_width == 8 ? ((const int64_t *)ids)[i] : (int64_t)((const int32_t *)ids)[i];
}

/* ---- lookup.c: torch's embedding_renorm_ (max_norm) over validated ids; the table must be writable.
 * Only fails (NO_MEMORY) before any row changes. Also used by the bag lookups (bags.c). */
int32_t tk_renorm(const char *fn, tokemb_table *t, const void *ids, int idw, size_t n);

/* ---- rng_torch.c: torch's CPU default generator --------------------------------------------- */
/* Fills x[0..n) exactly as torch.manual_seed(seed); tensor.normal_(mean, std) / uniform_(lo, hi)
 * on a contiguous float32 tensor of n elements (AVX2-build numerics). */
void tk_torch_normal_f32(float *x, size_t n, uint64_t seed, double mean, double std);
void tk_torch_uniform_f32(float *x, size_t n, uint64_t seed, double lo, double hi);

#endif
