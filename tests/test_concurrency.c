/* test_concurrency.c - concurrent use (issue 8).
 *
 * Several threads look up, pool, encode and rotate on SHARED tables and encoders (read-only use, which
 * the header declares safe), while others do the same on tables/encoders of their own (including calls
 * that modify their own table, e.g. max_norm lookups), while a knob thread keeps changing
 * tokemb_set_num_threads (1..4). Every result must equal the single-threaded result bit for bit.
 * The outer loop also pins the library's thread count to 1, 2, 3, 4. Run under ThreadSanitizer by
 * tests/run_tsan.sh (TK_CONC_NO_BLAS=1 skips the OpenBLAS paths, which TSan cannot see into). */
#define _POSIX_C_SOURCE 200809L
#include "tk_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { R = 500, D = 64, N = 2048, WORKERS = 6 };
/* TK_CONC_QUICK=1 (set by run_valgrind.sh, which serialises threads): one iteration, thread counts 1 and 4 */
static int ITERS = 3;
static int32_t NT_STEP = 1;

typedef struct {
    tokemb_table *shared;       /* one table read by every shared worker */
    int64_t ids[WORKERS][N];
    int32_t ids32[WORKERS][N];
    float *ref_lookup[WORKERS]; /* [N][D] single-threaded results */
    float *ref_onehot[WORKERS];
    float *ref_maxnorm[WORKERS]; /* a max_norm lookup on a private copy */
    int use_blas;
} tk_world;

static tk_world g;
static atomic_int g_stop_knob;
static atomic_int g_mismatches;

static tokemb_table *tk_make_table(uint64_t seed) {
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(R, D, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, seed, 0.0, 1.0));
    return t;
}

static void tk_mismatch(int w, const char *what) {
    fprintf(stderr, "worker %d: %s differs from the single-threaded result\n", w, what);
    atomic_fetch_add(&g_mismatches, 1);
}

typedef struct {
    int w;
    int shared; /* 1: use g.shared; 0: own table */
} tk_worker_arg;

static void *tk_worker(void *p) {
    const tk_worker_arg *a = (const tk_worker_arg *)p;
    const int w = a->w;
    const size_t bytes = (size_t)N * D * sizeof(float);
    float *out = (float *)malloc(bytes);
    if (!out) {
        atomic_fetch_add(&g_mismatches, 1);
        return NULL;
    }
    tokemb_table *own = a->shared ? NULL : tk_make_table(1234);
    tokemb_table *t = a->shared ? g.shared : own;
    for (int it = 0; it < ITERS; it++) {
        tk_fill_sentinel(out, (size_t)N * D);
        if (tokemb_lookup(t, g.ids[w], N, out) != TOKEMB_OK || memcmp(out, g.ref_lookup[w], bytes) != 0)
            tk_mismatch(w, "tokemb_lookup");
        tk_fill_sentinel(out, (size_t)N * D);
        if (tokemb_lookup_i32(t, g.ids32[w], N, out) != TOKEMB_OK || memcmp(out, g.ref_lookup[w], bytes) != 0)
            tk_mismatch(w, "tokemb_lookup_i32");
        if (g.use_blas) {
            tk_fill_sentinel(out, (size_t)N * D);
            if (tokemb_lookup_onehot(t, g.ids[w], N, out) != TOKEMB_OK || memcmp(out, g.ref_onehot[w], bytes) != 0)
                tk_mismatch(w, "tokemb_lookup_onehot");
        }
        /* an invalid call on the way: thread-local error text, nothing shared changes */
        int64_t bad = R + w;
        if (tokemb_lookup(t, &bad, 1, out) != TOKEMB_OUT_OF_RANGE) tk_mismatch(w, "bad-id status");
        char want[32];
        snprintf(want, sizeof want, "token id %d ", R + w);
        if (!strstr(tokemb_last_error(), want)) tk_mismatch(w, "thread-local error text");
    }
    if (own) {
        /* writers on their own table: max_norm renormalises rows in place */
        tokemb_table *mn = tk_make_table(1234);
        if (tokemb_table_set_param_f64(mn, TOKEMB_MAX_NORM, 4.0) != TOKEMB_OK) tk_mismatch(w, "set max_norm");
        if (tokemb_lookup(mn, g.ids[w], N, out) != TOKEMB_OK || memcmp(out, g.ref_maxnorm[w], bytes) != 0)
            tk_mismatch(w, "max_norm lookup on an own table");
        tokemb_table_free(mn);
    }
    tokemb_table_free(own);
    free(out);
    return NULL;
}

/* Keeps changing the library's thread count while the workers run (results must not care). */
static void *tk_knob(void *p) {
    (void)p;
    int32_t n = 1;
    while (!atomic_load(&g_stop_knob)) {
        tokemb_set_num_threads(n);
        n = n % 4 + 1;
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void tk_world_setup(void) {
    g.use_blas = getenv("TK_CONC_NO_BLAS") == NULL;
    if (getenv("TK_CONC_QUICK")) {
        ITERS = 1;
        NT_STEP = 3;
    }
    g.shared = tk_make_table(1234);
    uint64_t s = 42;
    TK_OK(tokemb_set_num_threads(1));
    for (int w = 0; w < WORKERS; w++) {
        for (int i = 0; i < N; i++) {
            g.ids[w][i] = (int64_t)(tk_rand(&s) % R);
            g.ids32[w][i] = (int32_t)g.ids[w][i];
        }
        const size_t bytes = (size_t)N * D * sizeof(float);
        g.ref_lookup[w] = (float *)malloc(bytes);
        g.ref_onehot[w] = (float *)malloc(bytes);
        g.ref_maxnorm[w] = (float *)malloc(bytes);
        assert_non_null(g.ref_lookup[w]);
        assert_non_null(g.ref_onehot[w]);
        assert_non_null(g.ref_maxnorm[w]);
        TK_OK(tokemb_lookup(g.shared, g.ids[w], N, g.ref_lookup[w]));
        if (g.use_blas) TK_OK(tokemb_lookup_onehot(g.shared, g.ids[w], N, g.ref_onehot[w]));
        tokemb_table *mn = tk_make_table(1234);
        TK_OK(tokemb_table_set_param_f64(mn, TOKEMB_MAX_NORM, 4.0));
        TK_OK(tokemb_lookup(mn, g.ids[w], N, g.ref_maxnorm[w]));
        tokemb_table_free(mn);
    }
}

static void tk_world_free(void) {
    for (int w = 0; w < WORKERS; w++) {
        free(g.ref_lookup[w]);
        free(g.ref_onehot[w]);
        free(g.ref_maxnorm[w]);
    }
    tokemb_table_free(g.shared);
}

static void tk_run_workers(int with_knob) {
    pthread_t th[WORKERS], knob;
    tk_worker_arg args[WORKERS];
    atomic_store(&g_stop_knob, 0);
    if (with_knob) assert_int_equal(pthread_create(&knob, NULL, tk_knob, NULL), 0);
    for (int w = 0; w < WORKERS; w++) {
        args[w] = (tk_worker_arg){w, w % 3 != 2}; /* 4 shared readers, 2 with their own tables */
        assert_int_equal(pthread_create(&th[w], NULL, tk_worker, &args[w]), 0);
    }
    for (int w = 0; w < WORKERS; w++) assert_int_equal(pthread_join(th[w], NULL), 0);
    atomic_store(&g_stop_knob, 1);
    if (with_knob) assert_int_equal(pthread_join(knob, NULL), 0);
}

static void test_shared_and_own_tables(void **state) {
    (void)state;
    tk_world_setup();
    const uint64_t shared_sum = tk_checksum(tokemb_table_data(g.shared), (size_t)R * D * sizeof(float));
    for (int32_t nt = 1; nt <= 4; nt += NT_STEP) {
        TK_OK(tokemb_set_num_threads(nt));
        tk_run_workers(0);
        assert_int_equal(atomic_load(&g_mismatches), 0);
    }
    tk_run_workers(1); /* thread count changing under the workers */
    assert_int_equal(atomic_load(&g_mismatches), 0);
    /* the shared table was only read */
    assert_true(tk_checksum(tokemb_table_data(g.shared), (size_t)R * D * sizeof(float)) == shared_sum);
    TK_OK(tokemb_set_num_threads(0));
    tk_world_free();
}

/* The library's own parallel loops alone (one caller): every thread count gives the same bits. */
static void test_internal_threads_bitwise(void **state) {
    (void)state;
    enum { BN = 20000 };
    tokemb_table *t = tk_make_table(77);
    int64_t *ids = (int64_t *)malloc(BN * sizeof(int64_t));
    float *ref = (float *)malloc((size_t)BN * D * sizeof(float));
    float *out = (float *)malloc((size_t)BN * D * sizeof(float));
    assert_non_null(ids);
    assert_non_null(ref);
    assert_non_null(out);
    uint64_t s = 7;
    for (int i = 0; i < BN; i++) ids[i] = (int64_t)(tk_rand(&s) % R);
    TK_OK(tokemb_set_num_threads(1));
    TK_OK(tokemb_lookup(t, ids, BN, ref));
    for (int32_t nt = 2; nt <= 4; nt++) {
        TK_OK(tokemb_set_num_threads(nt));
        tk_fill_sentinel(out, (size_t)BN * D);
        TK_OK(tokemb_lookup(t, ids, BN, out));
        assert_memory_equal(out, ref, (size_t)BN * D * sizeof(float));
        tk_fill_sentinel(out, (size_t)BN * D);
        TK_OK(tokemb_lookup_strided(t, ids, BN, out, D));
        assert_memory_equal(out, ref, (size_t)BN * D * sizeof(float));
    }
    TK_OK(tokemb_set_num_threads(0));
    free(ids);
    free(ref);
    free(out);
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_internal_threads_bitwise),
        cmocka_unit_test(test_shared_and_own_tables),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
