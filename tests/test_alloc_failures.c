/* test_alloc_failures.c - allocation-failure injection (issue 8).
 *
 * Linked against tokemb_testing, a static copy of the library built with TOKEMB_TESTING (see
 * tests/CMakeLists.txt): src/alloc.c then fails the N-th allocation after tk_test_fail_countdown = N.
 * For every operation that allocates, N = 1, 2, ... runs until the operation no longer reaches an N-th
 * allocation. Each injected failure must return TOKEMB_NO_MEMORY with a message (or succeed through a
 * documented fallback with the exact result), free everything it allocated (counted here through
 * -Wl,--wrap of malloc/calloc/posix_memalign/free, and checked by LSan in the ASan build), and leave the
 * table, the outputs and any out-pointer exactly as they were. pthread_create is wrapped too: a thread
 * that cannot start must make tk_parallel_for run the work serially with identical results. */
#include "tk_test.h"

#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

extern long tk_test_fail_countdown; /* src/alloc.c, TOKEMB_TESTING only */

/* ---- live-allocation counter over the statically linked library (and this file) ------------------ */
void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t s);
int __real_posix_memalign(void **p, size_t a, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t s);
int __wrap_posix_memalign(void **p, size_t a, size_t n);
void __wrap_free(void *p);
int __real_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

static atomic_long g_live;
void *__wrap_malloc(size_t n) {
    void *p = __real_malloc(n);
    if (p) atomic_fetch_add(&g_live, 1);
    return p;
}
void *__wrap_calloc(size_t n, size_t s) {
    void *p = __real_calloc(n, s);
    if (p) atomic_fetch_add(&g_live, 1);
    return p;
}
int __wrap_posix_memalign(void **p, size_t a, size_t n) {
    int r = __real_posix_memalign(p, a, n);
    if (r == 0) atomic_fetch_add(&g_live, 1);
    return r;
}
void __wrap_free(void *p) {
    if (p) atomic_fetch_sub(&g_live, 1);
    __real_free(p);
}

/* pthread_create failure injection: fail the k-th creation from now (0 = never), or every one. */
static atomic_long g_thread_countdown;
static atomic_int g_thread_fail_all;
static atomic_long g_threads_refused;
int __wrap_pthread_create(pthread_t *th, const pthread_attr_t *attr, void *(*fn)(void *), void *arg) {
    long c = atomic_load(&g_thread_countdown);
    if (atomic_load(&g_thread_fail_all) || (c > 0 && atomic_fetch_sub(&g_thread_countdown, 1) == 1)) {
        atomic_fetch_add(&g_threads_refused, 1);
        return EAGAIN;
    }
    return __real_pthread_create(th, attr, fn, arg);
}

/* ---- the generic driver -------------------------------------------------------------------------- */

typedef struct {
    tokemb_table *t;    /* the table the operation works on (checksummed), or NULL */
    tokemb_table *t2;   /* a second watched table (e.g. the source of a copy), or NULL */
    float *out;         /* output buffer (sentinel-filled by the driver) */
    size_t out_n;       /* floats */
    void *aux;          /* operation-specific (ids, other buffers) */
    tokemb_table *made; /* constructor result; sentinel pointer before the call */
} tk_case;

typedef struct {
    const char *name;
    void (*setup)(tk_case *c);
    int32_t (*run)(tk_case *c);
    void (*teardown)(tk_case *c); /* NULL: free t, t2, made, out */
} tk_op;

static tokemb_table *const TK_MADE_SENTINEL = (tokemb_table *)(uintptr_t)0x5eed;

static uint64_t tk_table_sum(tokemb_table *t) {
    if (!t) return 0;
    uint64_t h = 1469598103934665603ull;
    int64_t rows = tokemb_table_rows(t), dim = tokemb_table_dim(t);
    float row[256];
    assert_true(dim <= 256);
    for (int64_t r = 0; r < rows; r++) {
        TK_OK(tokemb_table_read_rows(t, r, 1, row));
        h ^= tk_checksum(row, (size_t)dim * sizeof(float)) + (uint64_t)r * 0x9e3779b97f4a7c15ull;
        h *= 1099511628211ull;
    }
    const int32_t ip[] = {TOKEMB_TABLE_PADDING_IDX, TOKEMB_TABLE_SCALE_GRAD_BY_FREQ, TOKEMB_TABLE_FROZEN};
    for (int i = 0; i < 3; i++) {
        int64_t v;
        TK_OK(tokemb_table_get_param(t, ip[i], &v));
        h = (h ^ (uint64_t)v) * 1099511628211ull;
    }
    return h;
}

typedef struct {
    uint64_t t, t2, out, made;
} tk_sums;

static tk_sums tk_case_sums(tk_case *c) {
    tk_sums s = {tk_table_sum(c->t), tk_table_sum(c->t2), c->out ? tk_checksum(c->out, c->out_n * sizeof(float)) : 0,
                 c->made && c->made != TK_MADE_SENTINEL ? tk_table_sum(c->made) : (uint64_t)(uintptr_t)c->made};
    return s;
}

static void tk_case_free(const tk_op *op, tk_case *c) {
    if (op->teardown) op->teardown(c);
    tokemb_table_free(c->t);
    tokemb_table_free(c->t2);
    if (c->made != TK_MADE_SENTINEL) tokemb_table_free(c->made);
    free(c->out);
    memset(c, 0, sizeof *c);
}

static void tk_case_setup(const tk_op *op, tk_case *c) {
    memset(c, 0, sizeof *c);
    c->made = TK_MADE_SENTINEL;
    op->setup(c);
    if (c->out) tk_fill_sentinel(c->out, c->out_n);
}

static long g_failures_survived, g_fallbacks, g_ops_checked;

/* Runs op with the N-th allocation failing for N = 1, 2, ... until it completes without reaching N. */
static void tk_inject(const tk_op *op) {
    tk_case c;
    /* reference: no injection */
    tk_case_setup(op, &c);
    int32_t st = op->run(&c);
    if (st != TOKEMB_OK) fail_msg("%s: reference run failed with %d: %s", op->name, (int)st, tokemb_last_error());
    const tk_sums ref = tk_case_sums(&c);
    tk_case_free(op, &c);
    const long live_start = atomic_load(&g_live);

    for (long n = 1; n < 10000; n++) {
        tk_case_setup(op, &c);
        const tk_sums before = tk_case_sums(&c);
        const long live0 = atomic_load(&g_live);
        tk_test_fail_countdown = n;
        st = op->run(&c);
        const long left = tk_test_fail_countdown;
        tk_test_fail_countdown = 0;
        const bool injected = left == 0;
        if (st == TOKEMB_NO_MEMORY) {
            if (!injected) fail_msg("%s: NO_MEMORY without an injected failure (N = %ld)", op->name, n);
            const char *msg = tokemb_last_error();
            if (!msg[0]) fail_msg("%s: NO_MEMORY (N = %ld) without a message", op->name, n);
            const tk_sums after = tk_case_sums(&c);
            if (after.t != before.t) fail_msg("%s: allocation %ld failed but the table changed", op->name, n);
            if (after.t2 != before.t2) fail_msg("%s: allocation %ld failed but the 2nd table changed", op->name, n);
            if (after.out != before.out) fail_msg("%s: allocation %ld failed but the output changed", op->name, n);
            if (c.made != TK_MADE_SENTINEL) fail_msg("%s: allocation %ld failed but *out was written", op->name, n);
            const long live1 = atomic_load(&g_live);
            if (live1 != live0)
                fail_msg("%s: allocation %ld failed and leaked %ld blocks", op->name, n, live1 - live0);
            g_failures_survived++;
        } else if (st == TOKEMB_OK) {
            const tk_sums after = tk_case_sums(&c);
            if (after.t != ref.t || after.t2 != ref.t2 || after.out != ref.out ||
                (c.made == TK_MADE_SENTINEL) != (ref.made == (uint64_t)(uintptr_t)TK_MADE_SENTINEL) ||
                (c.made != TK_MADE_SENTINEL && after.made != ref.made))
                fail_msg("%s: succeeded with N = %ld%s but the result differs from the reference", op->name, n,
                         injected ? " (after a failed allocation)" : "");
            if (!injected) {
                tk_case_free(op, &c);
                break;
            }
            g_fallbacks++; /* a failed allocation with a correct fallback */
        } else {
            fail_msg("%s: allocation %ld failed and the call returned %d (%s), not NO_MEMORY: %s", op->name, n,
                     (int)st, tokemb_status_string(st), tokemb_last_error());
        }
        tk_case_free(op, &c);
    }
    if (atomic_load(&g_live) != live_start)
        fail_msg("%s: %ld blocks leaked over the injection runs", op->name, atomic_load(&g_live) - live_start);
    g_ops_checked++;
}

/* ---- helpers --------------------------------------------------------------------------------------- */

static tokemb_table *tk_table(int64_t rows, int64_t dim, uint64_t seed) {
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(rows, dim, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, seed, 0.0, 1.0));
    return t;
}

static float *tk_out(tk_case *c, size_t n) {
    c->out = (float *)malloc(n * sizeof(float));
    assert_non_null(c->out);
    c->out_n = n;
    return c->out;
}

static const int64_t k_ids[] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4};
static const int32_t k_ids32[] = {3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4};
enum { K_N = 20, K_ROWS = 11, K_DIM = 6 };

/* ---- operations ------------------------------------------------------------------------------------ */

static void setup_none(tk_case *c) { (void)c; }
static int32_t run_create(tk_case *c) { return tokemb_table_create(K_ROWS, K_DIM, TOKEMB_F32, &c->made); }

static float g_wrap_buf[K_ROWS * 9];
static int32_t run_wrap(tk_case *c) { return tokemb_table_wrap(g_wrap_buf, K_ROWS, K_DIM, 9, TOKEMB_F32, 0, &c->made); }

/* init on a strided wrap needs a scratch buffer */
static void setup_strided(tk_case *c) {
    c->out = tk_out(c, K_ROWS * 9);
    TK_OK(tokemb_table_wrap(c->out, K_ROWS, K_DIM, 9, TOKEMB_F32, 0, &c->t));
}
static int32_t run_init_normal(tk_case *c) { return tokemb_table_init_normal(c->t, 77, 0.5, 2.0); }
static int32_t run_init_uniform(tk_case *c) { return tokemb_table_init_uniform(c->t, 78, -1.0, 1.0); }

/* max_norm lookups sort a copy of the ids: a failure must not have renormalised any row */
static void setup_maxnorm(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 11);
    TK_OK(tokemb_table_set_param_f64(c->t, TOKEMB_MAX_NORM, 0.75));
    tk_out(c, K_N * 8);
}
static int32_t run_lookup_maxnorm(tk_case *c) { return tokemb_lookup(c->t, k_ids, K_N, c->out); }
static int32_t run_lookup_i32_maxnorm(tk_case *c) { return tokemb_lookup_i32(c->t, k_ids32, K_N, c->out); }
static int32_t run_lookup_strided_maxnorm(tk_case *c) { return tokemb_lookup_strided(c->t, k_ids, K_N, c->out, 8); }

static void setup_plain(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 12);
    tk_out(c, K_N * K_DIM);
}
static int32_t run_lookup(tk_case *c) { return tokemb_lookup(c->t, k_ids, K_N, c->out); }
static int32_t run_onehot(tk_case *c) { return tokemb_lookup_onehot(c->t, k_ids, K_N, c->out); }

static const tk_op k_ops[] = {
    {"tokemb_table_create", setup_none, run_create, NULL},
    {"tokemb_table_wrap", setup_none, run_wrap, NULL},
    {"tokemb_table_init_normal (strided wrap)", setup_strided, run_init_normal, NULL},
    {"tokemb_table_init_uniform (strided wrap)", setup_strided, run_init_uniform, NULL},
    {"tokemb_lookup (max_norm)", setup_maxnorm, run_lookup_maxnorm, NULL},
    {"tokemb_lookup_i32 (max_norm)", setup_maxnorm, run_lookup_i32_maxnorm, NULL},
    {"tokemb_lookup_strided (max_norm)", setup_maxnorm, run_lookup_strided_maxnorm, NULL},
    {"tokemb_lookup", setup_plain, run_lookup, NULL},
    {"tokemb_lookup_onehot", setup_plain, run_onehot, NULL},
};

static void test_injection_all_ops(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof k_ops / sizeof k_ops[0]; i++) {
        for (int32_t nt = 1; nt <= 2; nt++) {
            TK_OK(tokemb_set_num_threads(nt));
            tk_inject(&k_ops[i]);
        }
    }
    TK_OK(tokemb_set_num_threads(0));
}

/* The seam itself: the countdown really fails the N-th allocation (so the loop above cannot pass
 * vacuously). */
static void test_seam_fires(void **state) {
    (void)state;
    tokemb_table *t = TK_MADE_SENTINEL;
    tk_test_fail_countdown = 1;
    TK_EXPECT_STATUS(TOKEMB_NO_MEMORY, tokemb_table_create(4, 4, TOKEMB_F32, &t), "tokemb_table_create");
    assert_int_equal(tk_test_fail_countdown, 0);
    assert_ptr_equal(t, TK_MADE_SENTINEL);
    tk_test_fail_countdown = 2; /* the handle succeeds, the storage fails */
    TK_EXPECT_STATUS(TOKEMB_NO_MEMORY, tokemb_table_create(4, 4, TOKEMB_F32, &t), "bytes");
    assert_ptr_equal(t, TK_MADE_SENTINEL);
    tk_test_fail_countdown = 0;
    /* the live-block counter sees the library's allocations (handle + storage) */
    const long live0 = atomic_load(&g_live);
    TK_OK(tokemb_table_create(4, 4, TOKEMB_F32, &t));
    assert_int_equal(atomic_load(&g_live) - live0, 2);
    tokemb_table_free(t);
    assert_int_equal(atomic_load(&g_live), live0);
}

/* Threads that cannot start: tk_parallel_for runs their chunks on the caller, same bits. */
static void test_thread_creation_failure(void **state) {
    (void)state;
    enum { R = 300, D = 64, N = 8192 };
    tokemb_table *t = tk_table(R, D, 21);
    int64_t *ids = (int64_t *)malloc(N * sizeof(int64_t));
    float *ref = (float *)malloc((size_t)N * D * sizeof(float));
    float *out = (float *)malloc((size_t)N * D * sizeof(float));
    assert_non_null(ids);
    assert_non_null(ref);
    assert_non_null(out);
    uint64_t s = 99;
    for (int i = 0; i < N; i++) ids[i] = (int64_t)(tk_rand(&s) % R);
    TK_OK(tokemb_set_num_threads(1));
    TK_OK(tokemb_lookup(t, ids, N, ref));
    TK_OK(tokemb_set_num_threads(4));
    atomic_store(&g_threads_refused, 0);
    for (long k = 1; k <= 4; k++) { /* fail the k-th thread start (k = 4: none of the 3 fails) */
        tk_fill_sentinel(out, (size_t)N * D);
        atomic_store(&g_thread_countdown, k);
        TK_OK(tokemb_lookup(t, ids, N, out));
        atomic_store(&g_thread_countdown, 0);
        assert_memory_equal(out, ref, (size_t)N * D * sizeof(float));
    }
    atomic_store(&g_thread_fail_all, 1);
    tk_fill_sentinel(out, (size_t)N * D);
    TK_OK(tokemb_lookup(t, ids, N, out));
    atomic_store(&g_thread_fail_all, 0);
    assert_memory_equal(out, ref, (size_t)N * D * sizeof(float));
    assert_true(atomic_load(&g_threads_refused) >= 3 + 3); /* k = 1..3 once each, then all three */
    TK_OK(tokemb_set_num_threads(0));
    free(ids);
    free(ref);
    free(out);
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seam_fires),
        cmocka_unit_test(test_injection_all_ops),
        cmocka_unit_test(test_thread_creation_failure),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("allocation-failure injection: %ld operations x thread counts checked, %ld injected failures "
           "survived (NO_MEMORY, nothing changed, nothing leaked), %ld correct fallbacks\n",
           g_ops_checked, g_failures_survived, g_fallbacks);
    return rc;
}
