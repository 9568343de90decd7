/* common/common.h - the runtime every layer may use: errors, allocation, threads, CPU features.
 * Nothing here is part of the public ABI. */
#ifndef TOKEMB_COMMON_H
#define TOKEMB_COMMON_H

#define TOKEMB_EXPERIMENTAL /* the library implements the header's experimental block too */
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
void *tk_malloc(size_t size);           /* NULL on failure */
void *tk_calloc(size_t n, size_t size); /* zeroed; NULL on failure or overflow */
void *tk_aligned_alloc(size_t size);    /* 64-byte aligned, zeroed; free with tk_aligned_free */
void tk_free(void *p);
void tk_aligned_free(void *p);
/* a*b into *out; false on overflow */
static inline bool tk_mul_overflow(size_t a, size_t b, size_t *out) { return __builtin_mul_overflow(a, b, out); }

/* ---- threads.c: deterministic parallel for ------------------------------------------------- */
/* Calls fn(ctx, begin, end) over a partition of [0, n) into contiguous chunks of at least `grain`
 * items (n <= grain: one call on the calling thread, nothing is woken), run by up to
 * tokemb_get_num_threads() threads of the pool (or by the host's tokemb_set_parallel_for hook). Which
 * thread runs which chunk varies from call to call: each result must depend only on the item, so any
 * partition gives the same bits. Never fails: chunks no worker takes run on the caller. */
typedef void (*tk_range_fn)(void *ctx, size_t begin, size_t end);
void tk_parallel_for(size_t n, size_t grain, tk_range_fn fn, void *ctx);
/* Stops and joins the pool's workers (new ones start on demand); for tests and library unload. */
void tk_threads_shutdown(void);

#include "common/cpu.h"

#endif
