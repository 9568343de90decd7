/* alloc.c - the library's only allocation functions. Keeping every allocation behind these lets the
 * test build inject failures (TOKEMB_TESTING) without touching the API code. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef TOKEMB_TESTING
/* Test seam, not exported: the N-th allocation from now fails (0 = never). See tests/. */
long tk_test_fail_countdown = 0;
static bool tk_test_should_fail(void) {
    if (tk_test_fail_countdown > 0 && --tk_test_fail_countdown == 0) return true;
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
     * first touch, so random row gathers do not pay a page walk per row (tokemb-bench lookup D = 256-1024:
     * 10-30 % faster on the VM, THP in "madvise" mode). */
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
