/* alloc.c - the library's only allocation functions. Keeping every allocation behind these lets the
 * test build inject failures (TOKEMB_TESTING) without touching the API code. */
#include "common/common.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef TOKEMB_TESTING
#include <stdatomic.h>
/* Test seam, compiled only into the test-only static library tokemb_testing (tests/CMakeLists.txt), never
 * into libtokemb.so: after tk_test_fail_countdown = N, the N-th allocation from now fails (0 = never;
 * afterwards it stays 0). Atomic, so allocations on the library's worker threads count exactly once.
 * Used by tests/test_alloc_failures.c. */
_Atomic long tk_test_fail_countdown = 0;
static bool tk_test_should_fail(void) {
    long c = atomic_load(&tk_test_fail_countdown);
    while (c > 0) {
        if (atomic_compare_exchange_weak(&tk_test_fail_countdown, &c, c - 1)) return c == 1;
    }
    return false;
}
#else
static inline bool tk_test_should_fail(void) { return false; }
#endif

void *tk_malloc(size_t size) {
    if (tk_test_should_fail()) return NULL;
    return malloc(size ? size : 1);
}

void *tk_calloc(size_t n, size_t size) {
    if (tk_test_should_fail()) return NULL;
    return calloc(n ? n : 1, size ? size : 1);
}

void *tk_aligned_alloc(size_t size) {
    if (tk_test_should_fail()) return NULL;
    size_t rounded = (size + 63u) & ~(size_t)63u;
    if (rounded < size) return NULL;
    void *p = NULL;
    /* Large blocks (tables, big scratch): 2 MiB aligned and marked for transparent huge pages before the
     * first touch, so random row gathers do not pay a page walk per row (docs/performance.md,
     * "Tuning record"). */
    const size_t huge = (size_t)2 << 20;
    if (rounded >= 2 * huge) {
        if (posix_memalign(&p, huge, rounded) != 0) return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(p, rounded & ~(huge - 1), MADV_HUGEPAGE);
#endif
    } else if (posix_memalign(&p, 64, rounded ? rounded : 64) != 0) {
        return NULL;
    }
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

void tk_free(void *p) { free(p); }
void tk_aligned_free(void *p) { free(p); }
