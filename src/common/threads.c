/* threads.c - the library's deterministic parallel-for: static contiguous partitions, fork/join with
 * pthreads. Results never depend on the thread count because each item is computed by exactly one
 * thread with the same code, whatever the partition. */
#include "common/common.h"

#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

static atomic_int tk_threads_setting = 0; /* 0 = default */

static int tk_default_threads(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 1024) n = 1024;
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

typedef struct {
    tk_range_fn fn;
    void *ctx;
    size_t begin, end;
} tk_job;

static void *tk_job_run(void *arg) {
    tk_job *j = (tk_job *)arg;
    j->fn(j->ctx, j->begin, j->end);
    return NULL;
}

#define TK_MAX_THREADS 64

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
    tk_job jobs[TK_MAX_THREADS];
    pthread_t tids[TK_MAX_THREADS];
    bool started[TK_MAX_THREADS] = {false};
    size_t chunk = (n + nt - 1) / nt;
    for (size_t k = 0; k < nt; k++) {
        size_t b = k * chunk, e = b + chunk;
        if (b > n) b = n;
        if (e > n) e = n;
        jobs[k] = (tk_job){fn, ctx, b, e};
    }
    /* job 0 runs on the calling thread; a job whose thread cannot start runs here too */
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
