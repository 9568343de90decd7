/* test_threads.c - the runners of the library's parallel loops (src/common/threads.c): the built-in one
 * (OpenMP in builds with it, pthreads otherwise), a host pool set with tokemb_set_parallel_for, and the
 * pthread fork/join a child process uses after fork(). Every operation that runs a parallel loop must give
 * the bytes of a one-thread run with each runner at 2..4 threads; the host pool must get exactly the
 * tasks it is promised (each index once, n_tasks within [2, threads]); tiny calls must not reach it. */
#include "tk_test.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define V 5000
#define D 64
#define N 20000
#define NB 1000 /* bags of 20 */
#define HEADS 4
#define HD 64
#define TOK 2048

typedef struct {
    tokemb_table *tab;
    tokemb_posenc *rope, *sin;
    int64_t ids[N], offsets[NB + 1], pos[TOK]; /* offsets: n_bags + 1 boundaries */
    float grad_out[(size_t)N * D];
} fixture;

static fixture *fx;

/* every operation's output, concatenated: lookup, bags, dense gradient, coalesced gradient, RoPE,
 * sinusoidal encoding */
#define OUT_FLOATS ((size_t)N * D + (size_t)NB * D + (size_t)V * D + (size_t)N * D + (size_t)TOK * HEADS * HD + \
                    (size_t)TOK * D)

static void run_all(float *out) {
    float *o = out;
    TK_OK(tokemb_lookup(fx->tab, fx->ids, N, o));
    o += (size_t)N * D;
    TK_OK(tokemb_lookup_bags(fx->tab, fx->ids, N, fx->offsets, NB, TOKEMB_MEAN, NULL, o));
    o += (size_t)NB * D;
    memset(o, 0, sizeof(float) * V * D);
    TK_OK(tokemb_grad_accumulate(fx->tab, fx->ids, N, fx->grad_out, o));
    o += (size_t)V * D;
    int64_t *uids = malloc(sizeof(int64_t) * N);
    size_t nu = 0;
    assert_non_null(uids);
    TK_OK(tokemb_grad_coalesce(fx->tab, fx->ids, N, fx->grad_out, uids, o, &nu));
    memset(o + nu * D, 0, sizeof(float) * (N - nu) * D);
    free(uids);
    o += (size_t)N * D;
    for (size_t i = 0; i < (size_t)TOK * HEADS * HD; i++) o[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    TK_OK(tokemb_rope_apply(fx->rope, o, TOK, HEADS, fx->pos));
    o += (size_t)TOK * HEADS * HD;
    TK_OK(tokemb_posenc_encode(fx->sin, fx->pos, TOK, o));
}

static int setup(void **state) {
    (void)state;
    fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    if (tokemb_table_create(V, D, TOKEMB_F32, &fx->tab) != TOKEMB_OK) return -1;
    if (tokemb_table_init_normal(fx->tab, 7, 0.0, 1.0) != TOKEMB_OK) return -1;
    uint64_t s = 88172645463325252ull;
    for (size_t i = 0; i < N; i++) fx->ids[i] = (int64_t)(tk_rand(&s) % V);
    for (size_t b = 0; b <= NB; b++) fx->offsets[b] = (int64_t)(b * (N / NB));
    for (size_t i = 0; i < (size_t)N * D; i++) fx->grad_out[i] = (float)(tk_rand(&s) % 2001) / 1000.0f - 1.0f;
    for (size_t i = 0; i < TOK; i++) fx->pos[i] = (int64_t)(i * 37 % 100000);
    if (tokemb_posenc_create_rope(HD, HD, 10000.0, TOKEMB_NEOX, &fx->rope) != TOKEMB_OK) return -1;
    if (tokemb_posenc_create_sinusoidal(D, 10000.0, TOKEMB_INTERLEAVED, &fx->sin) != TOKEMB_OK) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tokemb_table_free(fx->tab);
    tokemb_posenc_free(fx->rope);
    tokemb_posenc_free(fx->sin);
    free(fx);
    tokemb_set_num_threads(0);
    tokemb_set_parallel_for(NULL, NULL);
    return 0;
}

static float *reference(void) {
    static float *ref;
    if (!ref) {
        ref = malloc(sizeof(float) * OUT_FLOATS);
        assert_non_null(ref);
        TK_OK(tokemb_set_num_threads(1));
        run_all(ref);
    }
    return ref;
}

static void expect_same_as_one_thread(const char *runner, int32_t threads) {
    float *got = malloc(sizeof(float) * OUT_FLOATS);
    assert_non_null(got);
    TK_OK(tokemb_set_num_threads(threads));
    run_all(got);
    if (memcmp(got, reference(), sizeof(float) * OUT_FLOATS) != 0)
        fail_msg("%s runner at %d threads: results differ from one thread", runner, (int)threads);
    free(got);
}

/* ---- the built-in runner ------------------------------------------------------------------------- */

static void builtin_runner_matches_one_thread(void **state) {
    (void)state;
    tokemb_set_parallel_for(NULL, NULL);
#ifdef TK_EXPECT_OPENMP
    assert_string_equal(tokemb_parallel_backend(), "openmp");
#else
    assert_string_equal(tokemb_parallel_backend(), "pthreads");
#endif
    for (int32_t t = 2; t <= 4; t++) expect_same_as_one_thread(tokemb_parallel_backend(), t);
}

/* ---- a host pool: runs the tasks on threads of its own, in reverse order, and checks the contract ---- */

typedef struct {
    atomic_long calls, tasks;
    atomic_int max_tasks, min_tasks;
    atomic_int bad; /* a task index run twice or not at all */
} host_stats;

typedef struct {
    tokemb_task_fn task;
    void *task_ctx;
    int32_t first, step, n;
    atomic_int *seen;
} host_worker;

static void *host_worker_run(void *arg) {
    host_worker *w = arg;
    for (int32_t i = w->n - 1 - w->first; i >= 0; i -= w->step) {
        atomic_fetch_add(&w->seen[i], 1);
        w->task(w->task_ctx, i);
    }
    return NULL;
}

static void host_pool(void *host_ctx, int32_t n_tasks, tokemb_task_fn task, void *task_ctx) {
    host_stats *st = host_ctx;
    atomic_fetch_add(&st->calls, 1);
    atomic_fetch_add(&st->tasks, n_tasks);
    if (n_tasks > atomic_load(&st->max_tasks)) atomic_store(&st->max_tasks, n_tasks);
    if (n_tasks < atomic_load(&st->min_tasks)) atomic_store(&st->min_tasks, n_tasks);
    atomic_int seen[64] = {0};
    if (n_tasks < 2 || n_tasks > 64) {
        atomic_store(&st->bad, 1);
        return;
    }
    enum { W = 3 };
    host_worker w[W];
    pthread_t th[W];
    for (int k = 0; k < W; k++) {
        w[k] = (host_worker){task, task_ctx, k, W, n_tasks, seen};
        if (pthread_create(&th[k], NULL, host_worker_run, &w[k]) != 0) host_worker_run(&w[k]), th[k] = 0;
    }
    for (int k = 0; k < W; k++)
        if (th[k]) pthread_join(th[k], NULL);
    for (int32_t i = 0; i < n_tasks; i++)
        if (atomic_load(&seen[i]) != 1) atomic_store(&st->bad, 1);
}

static void host_pool_matches_one_thread(void **state) {
    (void)state;
    (void)reference();
    host_stats st = {0};
    atomic_store(&st.min_tasks, 1 << 30);
    tokemb_set_parallel_for(host_pool, &st);
    assert_string_equal(tokemb_parallel_backend(), "host");
    for (int32_t t = 2; t <= 4; t++) {
        expect_same_as_one_thread("host", t);
        assert_true(atomic_load(&st.max_tasks) <= t);
    }
    assert_true(atomic_load(&st.calls) >= 3 * 6); /* every operation of run_all ran a loop at every count */
    assert_true(atomic_load(&st.min_tasks) >= 2);
    assert_int_equal(atomic_load(&st.bad), 0);

    /* a one-token lookup (an LLM's decode step) runs on the calling thread: the host is not called */
    long calls = atomic_load(&st.calls);
    float row[D];
    TK_OK(tokemb_set_num_threads(4));
    TK_OK(tokemb_lookup(fx->tab, fx->ids, 1, row));
    assert_int_equal(atomic_load(&st.calls), calls);

    tokemb_set_parallel_for(NULL, NULL);
    assert_string_not_equal(tokemb_parallel_backend(), "host");
    expect_same_as_one_thread("built-in after the host pool was removed", 2);
    assert_int_equal(atomic_load(&st.calls), calls); /* no call reaches a removed pool */
}

/* ---- after fork(): the child must not wait for OpenMP workers that do not exist ------------------- */

static void forked_child_uses_pthreads(void **state) {
    (void)state;
    tokemb_set_parallel_for(NULL, NULL);
    expect_same_as_one_thread("built-in (parent, before fork)", 2); /* the parent's pool is up */
    const float *ref = reference();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* the child: exit status 0 = same bytes on the pthread runner, 2 = wrong runner, 3 = differ */
        alarm(60); /* a hang would be the bug; SIGALRM fails the test instead of blocking ctest */
        if (strcmp(tokemb_parallel_backend(), "pthreads") != 0) _exit(2);
        float *got = malloc(sizeof(float) * OUT_FLOATS);
        if (!got || tokemb_set_num_threads(3) != TOKEMB_OK) _exit(4);
        run_all(got);
        _exit(memcmp(got, ref, sizeof(float) * OUT_FLOATS) == 0 ? 0 : 3);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status)) fail_msg("the forked child died (signal %d): a hang or a crash", WTERMSIG(status));
    if (WEXITSTATUS(status) != 0) fail_msg("the forked child failed with status %d", WEXITSTATUS(status));
    /* the parent keeps its runner */
    expect_same_as_one_thread("built-in (parent, after fork)", 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builtin_runner_matches_one_thread),
        cmocka_unit_test(host_pool_matches_one_thread),
        cmocka_unit_test(forked_child_uses_pthreads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
