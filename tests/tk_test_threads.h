/* tk_test_threads.h - the parallel-for backends the thread-count-independence tests run under: the
 * built-in pool, and two host hooks given to tokemb_set_parallel_for (tasks in reverse order on the
 * caller; tasks spread over 3 fresh pthreads). Every backend must give the single-thread bits. */
#ifndef TK_TEST_THREADS_H
#define TK_TEST_THREADS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>

#include "tokemb.h"

static atomic_long tk_hook_tasks; /* tasks the hooks ran (so a backend test cannot pass vacuously) */

static void tk_hook_reverse(void *host, size_t n, tokemb_task_fn task, void *arg) {
    (void)host;
    for (size_t i = n; i-- > 0;) task(arg, i);
    atomic_fetch_add(&tk_hook_tasks, (long)n);
}

typedef struct {
    size_t n, first;
    tokemb_task_fn task;
    void *arg;
} tk_hook_share;

static void *tk_hook_stride(void *p) {
    tk_hook_share *s = (tk_hook_share *)p;
    for (size_t i = s->first; i < s->n; i += 3) s->task(s->arg, i);
    return NULL;
}

static void tk_hook_threads(void *host, size_t n, tokemb_task_fn task, void *arg) {
    (void)host;
    pthread_t th[3];
    tk_hook_share sh[3];
    int ok[3];
    for (int k = 0; k < 3; k++) {
        sh[k] = (tk_hook_share){n, (size_t)k, task, arg};
        ok[k] = k > 0 && pthread_create(&th[k], NULL, tk_hook_stride, &sh[k]) == 0;
    }
    tk_hook_stride(&sh[0]);
    for (int k = 1; k < 3; k++) {
        if (ok[k]) pthread_join(th[k], NULL);
        else tk_hook_stride(&sh[k]);
    }
    atomic_fetch_add(&tk_hook_tasks, (long)n);
}

enum { TK_BACKENDS = 3 };
static const char *const tk_backend_names[TK_BACKENDS] = {"pool", "hook (reverse, caller)", "hook (3 pthreads)"};

/* Selects backend b (0 = the built-in pool). */
static inline void tk_backend_set(int b) {
    tokemb_set_parallel_for(b == 1 ? tk_hook_reverse : b == 2 ? tk_hook_threads : NULL, NULL);
}

#endif
