/* omp_hook.c - an OpenMP parallel-for for tokemb_set_parallel_for (a benchmark of backend (a) of
 * docs/threading.md, and an example of a host hook). Built as bench/libtokemb-omp-hook.so when the
 * compiler has OpenMP. Loaded into a process that already uses the same libgomp.so.1 (Debian's torch),
 * tokemb's chunks run on the host's OpenMP workers:
 *
 *     tokemb_set_parallel_for(tokemb_omp_parallel_for, NULL);
 *
 * The team has omp_get_max_threads() threads (torch.set_num_threads sets it) capped by the task count;
 * tasks are handed out one by one (schedule(dynamic, 1)), like the built-in pool. */
#include <stddef.h>

#include <omp.h>

#include "tokemb.h"

void tokemb_omp_parallel_for(void *host_ctx, size_t n_tasks, tokemb_task_fn task, void *task_ctx);

void tokemb_omp_parallel_for(void *host_ctx, size_t n_tasks, tokemb_task_fn task, void *task_ctx) {
    (void)host_ctx;
    int nt = omp_get_max_threads();
    if ((size_t)nt > n_tasks) nt = (int)n_tasks;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (long i = 0; i < (long)n_tasks; i++) task(task_ctx, (size_t)i);
}
