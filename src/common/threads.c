/* threads.c - the library's deterministic parallel-for. [0, n) is cut into a static list of contiguous
 * chunks (how many depends only on n, grain and the thread count); each chunk is one task, computed by
 * exactly one thread with the same code, so results never depend on which thread runs it.
 *
 * Who runs the tasks (docs/threading.md section 2):
 *  1. the host's parallel-for, when one is set with tokemb_set_parallel_for;
 *  2. else OpenMP when the library is built with it (the default): a `parallel` region on the process's
 *     libgomp pool, which is the pool torch's and other OpenMP code's operators already use, so a torch
 *     process runs tokemb's tasks on torch's own workers instead of oversubscribing the cores;
 *  3. else (a build without OpenMP, or a child after fork(), where libgomp's pool is gone) a fork/join
 *     of plain pthreads: task 0 on the calling thread, the others on threads started for the call. */
#include "common/common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
/* TOKEMB_NO_OPENMP: the allocation-failure test's static variant, which tests the pthread runner */
#if defined(_OPENMP) && !defined(TOKEMB_NO_OPENMP)
#define TK_OPENMP 1
#include <omp.h>
#endif

#define TK_MAX_THREADS 64

static atomic_int tk_threads_setting = 0; /* 0 = default */

/* The default thread count: OMP_NUM_THREADS when it names a positive count (the variable torch, numpy's
 * OpenBLAS and every OpenMP program read), else the CPUs this process may run on. */
static int tk_default_threads(void) {
    static atomic_int cached = 0;
    int c = atomic_load_explicit(&cached, memory_order_relaxed);
    if (c > 0) return c;
    long n = 0;
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env) {
        char *end = NULL;
        long v = strtol(env, &end, 10);
        if (end != env && (*end == '\0' || *end == ',') && v > 0) n = v; /* "4" or the first of "4,2" */
    }
    if (n < 1) {
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof set, &set) == 0) n = CPU_COUNT(&set);
    }
    if (n < 1) n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 1024) n = 1024;
    atomic_store_explicit(&cached, (int)n, memory_order_relaxed);
    return (int)n;
}

int32_t tokemb_set_num_threads(int32_t n) {
    if (n < 0 || n > 1024)
        return tk_error(TOKEMB_INVALID_ARGUMENT,
                        "tokemb_set_num_threads: n = %d is outside [0, 1024] (0 = default)", (int)n);
    atomic_store(&tk_threads_setting, n);
    return TOKEMB_OK;
}

int32_t tokemb_get_num_threads(void) {
    int n = atomic_load(&tk_threads_setting);
    return n > 0 ? n : tk_default_threads();
}

/* ---- the host's parallel-for ------------------------------------------------------------------- */

typedef struct {
    tokemb_parallel_for_fn fn;
    void *ctx;
} tk_host_pool;

static pthread_mutex_t tk_host_lock = PTHREAD_MUTEX_INITIALIZER;
static tk_host_pool tk_host;           /* guarded by tk_host_lock */
static atomic_bool tk_host_set = false; /* lets calls skip the lock while no host pool is set */

void tokemb_set_parallel_for(tokemb_parallel_for_fn fn, void *host_ctx) {
    pthread_mutex_lock(&tk_host_lock);
    tk_host = (tk_host_pool){fn, fn ? host_ctx : NULL};
    atomic_store(&tk_host_set, fn != NULL);
    pthread_mutex_unlock(&tk_host_lock);
}

static tk_host_pool tk_host_get(void) {
    tk_host_pool h = {NULL, NULL};
    if (!atomic_load(&tk_host_set)) return h;
    pthread_mutex_lock(&tk_host_lock);
    h = tk_host;
    pthread_mutex_unlock(&tk_host_lock);
    return h;
}

/* ---- one call's tasks ----------------------------------------------------------------------------- */

typedef struct {
    tk_range_fn fn;
    void *ctx;
    size_t n, chunk;
} tk_plan;

static void tk_plan_task(const tk_plan *p, size_t k) {
    size_t b = k * p->chunk, e = b + p->chunk;
    if (b > p->n) b = p->n;
    if (e > p->n) e = p->n;
    if (b < e) p->fn(p->ctx, b, e);
}

static void tk_host_task(void *ctx, int32_t task) { tk_plan_task((const tk_plan *)ctx, (size_t)task); }

/* ---- fork/join pthreads (no OpenMP, or a forked child) -------------------------------------------- */

typedef struct {
    const tk_plan *plan;
    size_t task;
} tk_job;

static void *tk_job_run(void *arg) {
    const tk_job *j = (const tk_job *)arg;
    tk_plan_task(j->plan, j->task);
    return NULL;
}

static void tk_run_pthreads(const tk_plan *p, size_t nt) {
    tk_job jobs[TK_MAX_THREADS];
    pthread_t tids[TK_MAX_THREADS];
    bool started[TK_MAX_THREADS] = {false};
    for (size_t k = 0; k < nt; k++) jobs[k] = (tk_job){p, k};
    /* task 0 runs on the calling thread; a task whose thread cannot start runs here too */
    for (size_t k = 1; k < nt; k++)
        started[k] = pthread_create(&tids[k], NULL, tk_job_run, &jobs[k]) == 0;
    tk_job_run(&jobs[0]);
    for (size_t k = 1; k < nt; k++) {
        if (started[k])
            pthread_join(tids[k], NULL);
        else
            tk_job_run(&jobs[k]);
    }
}

#ifdef TK_OPENMP
/* libgomp's thread pool does not survive fork(): a child that entered a parallel region would wait for
 * workers that do not exist. A child therefore uses the pthread fork/join. */
static atomic_bool tk_forked_child = false;
static void tk_mark_child(void) { atomic_store(&tk_forked_child, true); }
static pthread_once_t tk_atfork_once = PTHREAD_ONCE_INIT;
static void tk_register_atfork(void) { pthread_atfork(NULL, NULL, tk_mark_child); }

static void tk_run_openmp(const tk_plan *p, size_t nt) {
#pragma omp parallel num_threads((int)nt)
    {
        /* OpenMP may give fewer threads than asked (nested regions, thread limits): every task still
         * runs exactly once */
        size_t got = (size_t)omp_get_num_threads();
        for (size_t k = (size_t)omp_get_thread_num(); k < nt; k += got) tk_plan_task(p, k);
    }
}
#endif

void tk_parallel_for(size_t n, size_t grain, tk_range_fn fn, void *ctx) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    size_t nt = (size_t)tokemb_get_num_threads();
    if (nt > TK_MAX_THREADS) nt = TK_MAX_THREADS;
    size_t max_by_grain = (n + grain - 1) / grain;
    if (nt > max_by_grain) nt = max_by_grain;
    if (nt <= 1) {
        fn(ctx, 0, n);
        return;
    }
    const tk_plan plan = {fn, ctx, n, (n + nt - 1) / nt};
    tk_host_pool host = tk_host_get();
    if (host.fn) {
        host.fn(host.ctx, (int32_t)nt, tk_host_task, (void *)&plan);
        return;
    }
#ifdef TK_OPENMP
    pthread_once(&tk_atfork_once, tk_register_atfork);
    if (!atomic_load(&tk_forked_child)) {
        tk_run_openmp(&plan, nt);
        return;
    }
#endif
    tk_run_pthreads(&plan, nt);
}

const char *tokemb_parallel_backend(void) {
    if (atomic_load(&tk_host_set)) return "host";
#ifdef TK_OPENMP
    if (!atomic_load(&tk_forked_child)) return "openmp";
#endif
    return "pthreads";
}
