/* test_host_openmp.c - tokemb_use_host_openmp: the library's loops run on the OpenMP runtime the
 * process already has (here this test's own libgomp, as torch's in a Python process).
 *
 * Run with OMP_WAIT_POLICY=PASSIVE (set by tests/CMakeLists.txt): idle libgomp workers then sleep on a
 * futex, so every parallel region that uses a worker shows up as a voluntary context switch of that
 * worker in /proc/self/task/<tid>/status. That is how the tests see that the chunks really ran on the
 * OpenMP team (and not on the built-in pool or the caller alone). */
#define _DEFAULT_SOURCE
#include <dirent.h>
#include <stdatomic.h>
#include <omp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tk_test.h"
#include "tokemb.h"

enum { TK_MAX_TASKS = 256 };

/* The thread ids of this process, and the sum of their voluntary context switches (all but `skip`). */
static int tk_tasks(long *tids, int max) {
    DIR *d = opendir("/proc/self/task");
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.' && n < max) tids[n++] = atol(e->d_name);
    closedir(d);
    return n;
}

static long tk_voluntary_switches(long tid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/self/task/%ld/status", tid);
    FILE *f = fopen(path, "r");
    if (!f) return 0; /* the thread has exited */
    long v = 0;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "voluntary_ctxt_switches:", 24)) v = atol(line + 24);
    fclose(f);
    return v;
}

/* Waits until the last region's workers are back asleep, then sums their switches. */
static long tk_worker_switches(const long *workers, int n) {
    usleep(100000);
    long s = 0;
    for (int i = 0; i < n; i++) s += tk_voluntary_switches(workers[i]);
    return s;
}

typedef struct {
    tokemb_table *t;
    int64_t *ids;
    size_t n;
    int64_t D;
    float *want, *got;
    long workers[TK_MAX_TASKS]; /* libgomp's worker threads */
    int n_workers, n_tasks;
} tk_fixture;

static int setup(void **state) {
    tk_fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    /* start libgomp's team of 4 (3 workers) before any tokemb pool exists; its workers are the
     * threads that appear (OpenBLAS may have started its own at load) */
    long before[TK_MAX_TASKS];
    int n_before = tk_tasks(before, TK_MAX_TASKS);
    int team = 0;
#pragma omp parallel num_threads(4)
    {
#pragma omp atomic
        team++;
    }
    assert_int_equal(team, 4);
    long tids[TK_MAX_TASKS];
    f->n_tasks = tk_tasks(tids, TK_MAX_TASKS);
    for (int i = 0; i < f->n_tasks; i++) {
        int old = 0;
        for (int k = 0; k < n_before; k++) old |= before[k] == tids[i];
        if (!old) f->workers[f->n_workers++] = tids[i];
    }
    assert_int_equal(f->n_workers, 3);

    f->D = 64;
    const int64_t V = 4096;
    f->n = 4 * (((size_t)2 << 20) / ((size_t)f->D * 4)) + 5; /* 16 chunks of lookup's 512 KiB grain */
    TK_OK(tokemb_table_create(V, f->D, TOKEMB_F32, &f->t));
    float *w = tokemb_table_data(f->t);
    uint64_t s = 11;
    for (int64_t i = 0; i < V * f->D; i++) w[i] = (float)(tk_rand(&s) % 20001) / 1000.0f - 10.0f;
    f->ids = malloc(f->n * sizeof *f->ids);
    f->want = malloc(f->n * (size_t)f->D * sizeof(float));
    f->got = malloc(f->n * (size_t)f->D * sizeof(float));
    assert_non_null(f->ids);
    assert_non_null(f->want);
    assert_non_null(f->got);
    for (size_t i = 0; i < f->n; i++) {
        f->ids[i] = (int64_t)(tk_rand(&s) % (uint64_t)V);
        memcpy(f->want + i * (size_t)f->D, w + f->ids[i] * f->D, (size_t)f->D * sizeof(float));
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    tk_fixture *f = *state;
    tokemb_set_parallel_for(NULL, NULL);
    TK_OK(tokemb_set_num_threads(0));
    tokemb_table_free(f->t);
    free(f->ids);
    free(f->want);
    free(f->got);
    free(f);
    return 0;
}

static void tk_lookup_check(tk_fixture *f, const char *what) {
    memset(f->got, 0xff, f->n * (size_t)f->D * sizeof(float));
    TK_OK(tokemb_lookup(f->t, f->ids, f->n, f->got));
    if (memcmp(f->want, f->got, f->n * (size_t)f->D * sizeof(float))) fail_msg("%s: lookup differs", what);
}

/* The loops run on libgomp's workers: their context switches grow with each call, no thread is
 * started (no pool), and the bits equal the plain gather for 1..4 threads. */
static void test_loops_run_on_the_host_team(void **state) {
    tk_fixture *f = *state;
    TK_OK(tokemb_use_host_openmp());
    for (int nt = 1; nt <= 4; nt++) {
        TK_OK(tokemb_set_num_threads(nt));
        long before = tk_worker_switches(f->workers, f->n_workers);
        for (int k = 0; k < 20; k++) tk_lookup_check(f, "host OpenMP");
        long woke = tk_worker_switches(f->workers, f->n_workers) - before;
        if (nt == 1) assert_int_equal(woke, 0); /* one thread: the caller alone, no region */
        /* each region wakes every team worker once; a worker that had not gone back to sleep before
         * the next region (a busy machine) is woken once for both, so at least half is required */
        else if (woke < 10) fail_msg("%d threads: libgomp's workers woke %ld times for 20 loops", nt, woke);
    }
    long tids[TK_MAX_TASKS];
    assert_int_equal(tk_tasks(tids, TK_MAX_TASKS), f->n_tasks); /* no pool worker was started */

    /* NULL hands the loops back to the built-in pool: its workers appear, libgomp's stay asleep */
    tokemb_set_parallel_for(NULL, NULL);
    TK_OK(tokemb_set_num_threads(3));
    long before = tk_worker_switches(f->workers, f->n_workers);
    for (int k = 0; k < 20; k++) tk_lookup_check(f, "pool");
    assert_int_equal(tk_worker_switches(f->workers, f->n_workers) - before, 0);
    assert_int_equal(tk_tasks(tids, TK_MAX_TASKS), f->n_tasks + 2);
}

/* A loop called from inside an OpenMP parallel region runs on its calling thread (no nested team):
 * every team thread's lookup is still exact. */
static void test_inside_a_parallel_region(void **state) {
    tk_fixture *f = *state;
    TK_OK(tokemb_use_host_openmp());
    TK_OK(tokemb_set_num_threads(4));
    const size_t bytes = f->n * (size_t)f->D * sizeof(float);
    float *outs[4];
    for (int k = 0; k < 4; k++) {
        outs[k] = malloc(bytes);
        assert_non_null(outs[k]);
    }
    int32_t st[4] = {-100, -100, -100, -100};
#pragma omp parallel num_threads(4)
    {
        int k = omp_get_thread_num();
        st[k] = tokemb_lookup(f->t, f->ids, f->n, outs[k]);
    }
    for (int k = 0; k < 4; k++) {
        assert_int_equal(st[k], TOKEMB_OK);
        if (memcmp(f->want, outs[k], bytes)) fail_msg("lookup from team thread %d differs", k);
        free(outs[k]);
    }
}

/* A hook replaces the OpenMP backend, and the OpenMP backend replaces a hook. */
static atomic_long tk_hook_calls;
static void tk_hook_caller(void *host, size_t n, tokemb_task_fn task, void *arg) {
    (void)host;
    for (size_t i = 0; i < n; i++) task(arg, i);
    atomic_fetch_add(&tk_hook_calls, 1);
}

static void test_hook_and_openmp_replace_each_other(void **state) {
    tk_fixture *f = *state;
    TK_OK(tokemb_set_num_threads(2));
    TK_OK(tokemb_use_host_openmp());
    tokemb_set_parallel_for(tk_hook_caller, NULL);
    long before = tk_worker_switches(f->workers, f->n_workers);
    tk_lookup_check(f, "hook after OpenMP");
    /* two loops through the hook: the id check (calls of 32,768 ids and more scan them in parallel ranges,
     * src/table/table.c) and the gather */
    const long calls = atomic_load(&tk_hook_calls);
    assert_true(f->n >= 32768);
    assert_int_equal(calls, 2);
    assert_int_equal(tk_worker_switches(f->workers, f->n_workers) - before, 0);
    TK_OK(tokemb_use_host_openmp());
    for (int k = 0; k < 5; k++) tk_lookup_check(f, "OpenMP after hook");
    assert_int_equal(atomic_load(&tk_hook_calls), calls);
    assert_true(tk_worker_switches(f->workers, f->n_workers) - before >= 5);
}

/* A fork()ed child (libgomp is not fork-safe) runs its loops on the pool: exact, and it returns. */
static void test_forked_child_uses_the_pool(void **state) {
    tk_fixture *f = *state;
    TK_OK(tokemb_use_host_openmp());
    TK_OK(tokemb_set_num_threads(2));
    tk_lookup_check(f, "parent before fork");
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(30); /* a hang would be a failure, not a stuck test */
        memset(f->got, 0, f->n * (size_t)f->D * sizeof(float));
        int ok = tokemb_lookup(f->t, f->ids, f->n, f->got) == TOKEMB_OK &&
                 !memcmp(f->want, f->got, f->n * (size_t)f->D * sizeof(float));
        exit(ok ? 0 : 3); /* not _exit: the library's destructor joins the pool worker this child started */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("forked child: %s %d", WIFSIGNALED(status) ? "signal" : "exit",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    tk_lookup_check(f, "parent after fork");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loops_run_on_the_host_team),
        cmocka_unit_test(test_inside_a_parallel_region),
        cmocka_unit_test(test_hook_and_openmp_replace_each_other),
        cmocka_unit_test(test_forked_child_uses_the_pool),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
