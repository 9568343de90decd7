/* threads.c - the library's deterministic parallel-for.
 *
 * [0, n) is cut into fixed contiguous chunks (at least `grain` items each, at most 4 per thread). Every
 * item is computed by exactly one thread with the same code, so the bits never depend on the thread
 * count, on which thread runs which chunk, or on the backend:
 *  - the built-in pool (default): persistent workers that spin briefly after a job and then sleep on a
 *    futex. The calling thread starts on the chunks at once and claims them one by one from a shared
 *    counter; woken workers claim the rest. A worker that wakes late (its core is busy, e.g. with
 *    another runtime's spinning threads) simply finds nothing left, so a call is never slower than the
 *    caller alone by more than the wake-up it posted (the "2 threads never slower than 1" rule).
 *  - a host's parallel-for set with tokemb_set_parallel_for (an engine's own pool): it receives the
 *    chunks as tasks.
 *  - the host process's OpenMP runtime (tokemb_use_host_openmp, e.g. torch's libgomp): the chunks are
 *    claimed from a counter inside one GOMP_parallel region, found with dlsym in the runtime already
 *    loaded; the library never loads or links one itself.
 * One caller uses the pool at a time; a concurrent caller runs its loop on its own thread (all cores
 * are busy anyway). A worker that cannot start (pthread_create fails) is simply not there: its chunks
 * are claimed by the caller. See docs/threading.md. */
#include "common/common.h"

#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <string.h>
#include <linux/futex.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int tk_threads_setting = 0; /* 0 = default */
static atomic_int tk_online_cpus = 0;     /* cached sysconf (it reads /sys on every call) */

static int tk_default_threads(void) {
    int c = atomic_load_explicit(&tk_online_cpus, memory_order_relaxed);
    if (c > 0) return c;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 1024) n = 1024;
    atomic_store_explicit(&tk_online_cpus, (int)n, memory_order_relaxed);
    return (int)n;
}

int32_t tokemb_set_num_threads(int32_t n) {
    if (n < 0 || n > 1024)
        return tk_error(TOKEMB_INVALID_ARGUMENT, "tokemb_set_num_threads: n = %d is outside [0, 1024] (0 = default)",
                        (int)n);
    atomic_store(&tk_threads_setting, n);
    return TOKEMB_OK;
}

int32_t tokemb_get_num_threads(void) {
    int n = atomic_load_explicit(&tk_threads_setting, memory_order_relaxed);
    return n > 0 ? n : tk_default_threads();
}

/* GOMP_parallel(fn, data, num_threads, flags) is the entry gcc emits for `#pragma omp parallel`; GNU
 * libgomp (the system's or a wheel's renamed copy) and LLVM/Intel libomp export it. */
typedef void (*tk_gomp_parallel_fn)(void (*fn)(void *), void *data, unsigned num_threads, unsigned flags);
typedef int (*tk_omp_int_fn)(void);
static struct {
    _Atomic(tk_gomp_parallel_fn) parallel; /* NULL: not in use */
    tk_omp_int_fn in_parallel;
    tk_omp_int_fn thread_num; /* omp_get_thread_num */
    atomic_flag busy;         /* one caller at a time, as the pool */
} tk_omp = {.busy = ATOMIC_FLAG_INIT};

/* ---- host parallel-for ----------------------------------------------------------------------- */
typedef struct {
    tokemb_parallel_fn fn;
    void *ctx;
} tk_host;
static _Atomic(tk_host *) tk_host_cur = NULL;
static tk_host tk_host_slots[2];
static pthread_mutex_t tk_host_lock = PTHREAD_MUTEX_INITIALIZER;

void tokemb_set_parallel_for(tokemb_parallel_fn fn, void *ctx) {
    pthread_mutex_lock(&tk_host_lock);
    atomic_store(&tk_omp.parallel, NULL); /* a hook, or NULL (the pool), replaces the OpenMP backend */
    if (!fn) {
        atomic_store(&tk_host_cur, NULL);
    } else {
        /* alternate between two slots so a loop reading the previous pair never sees it half written;
         * the header asks callers not to change the hook while loops run */
        tk_host *cur = atomic_load(&tk_host_cur);
        tk_host *s = cur == &tk_host_slots[0] ? &tk_host_slots[1] : &tk_host_slots[0];
        s->fn = fn;
        s->ctx = ctx;
        atomic_store(&tk_host_cur, s);
    }
    pthread_mutex_unlock(&tk_host_lock);
}

/* ---- the host's OpenMP runtime ------------------------------------------------------------------- */
static int tk_omp_is_runtime(const char *path) {
    const char *b = strrchr(path, '/');
    b = b ? b + 1 : path;
    return !strncmp(b, "libgomp", 7) || !strncmp(b, "libomp", 6) || !strncmp(b, "libiomp", 7);
}

typedef struct {
    char path[4096];
} tk_omp_found;

static int tk_omp_find(struct dl_phdr_info *info, size_t size, void *data) {
    (void)size;
    tk_omp_found *f = data;
    if (!info->dlpi_name || !*info->dlpi_name || !tk_omp_is_runtime(info->dlpi_name)) return 0;
    if (strlen(info->dlpi_name) >= sizeof f->path) return 0;
    strcpy(f->path, info->dlpi_name);
    return 1;
}

static void tk_atfork_ensure(void);

int32_t tokemb_use_host_openmp(void) {
    /* the runtime found by an earlier call stays loaded (this library holds a reference to it) */
    static _Atomic(tk_gomp_parallel_fn) found_par; /* zero: not found yet */
    static _Atomic(tk_omp_int_fn) found_inpar, found_tnum;
    tk_gomp_parallel_fn par = atomic_load(&found_par);
    tk_omp_int_fn inpar = atomic_load(&found_inpar), tnum = atomic_load(&found_tnum);
    if (!par || !inpar || !tnum) {
        tk_omp_found f = {{0}};
        if (!dl_iterate_phdr(tk_omp_find, &f))
            return tk_error(TOKEMB_UNSUPPORTED,
                            "tokemb_use_host_openmp: no OpenMP runtime (libgomp*, libomp*, libiomp*) is loaded in "
                            "this process; the library does not load one (the current backend is unchanged)");
        /* RTLD_NOLOAD: a reference to the loaded runtime, never a new load; kept for the process's life
         * so the runtime cannot be unloaded while loops may call it */
        void *h = dlopen(f.path, RTLD_LAZY | RTLD_NOLOAD);
        par = h ? (tk_gomp_parallel_fn)(uintptr_t)dlsym(h, "GOMP_parallel") : NULL;
        inpar = h ? (tk_omp_int_fn)(uintptr_t)dlsym(h, "omp_in_parallel") : NULL;
        tnum = h ? (tk_omp_int_fn)(uintptr_t)dlsym(h, "omp_get_thread_num") : NULL;
        if (!par || !inpar || !tnum) {
            if (h) dlclose(h);
            return tk_error(TOKEMB_UNSUPPORTED, "tokemb_use_host_openmp: the loaded runtime %s has no %s", f.path,
                            !par     ? "GOMP_parallel"
                            : !inpar ? "omp_in_parallel"
                                     : "omp_get_thread_num");
        }
        atomic_store(&found_tnum, tnum);
        atomic_store(&found_inpar, inpar);
        atomic_store(&found_par, par);
    }
    tk_atfork_ensure(); /* before any fork() that could copy the setting into a child */
    pthread_mutex_lock(&tk_host_lock);
    tk_omp.in_parallel = inpar;
    tk_omp.thread_num = tnum;
    atomic_store(&tk_omp.parallel, par);
    atomic_store(&tk_host_cur, NULL); /* replaces a host hook, as a new hook replaces this */
    pthread_mutex_unlock(&tk_host_lock);
    return TOKEMB_OK;
}

/* ---- the job: fixed chunks claimed from a counter ---------------------------------------------- */
typedef struct {
    tk_range_fn fn;
    void *ctx;
    size_t n, chunk, nchunks;
} tk_job;

static void tk_job_chunk(const tk_job *j, size_t k) {
    size_t b = k * j->chunk, e = b + j->chunk;
    if (e > j->n) e = j->n;
    j->fn(j->ctx, b, e);
}

static void tk_host_task(void *p, size_t k) { tk_job_chunk((const tk_job *)p, k); }

/* ---- claiming chunks: a home range per thread, the rest stolen -----------------------------------
 * Slot q of P (the calling thread, the pool's workers, an OpenMP team's threads) owns the chunks
 * [q*nchunks/P, (q+1)*nchunks/P) and runs them front to back; a slot whose range is empty takes the last
 * chunk left in another's. While every thread starts on time each one runs the same chunks on every
 * call, so a repeated call finds its rows in that core's caches (as torch's and FBGEMM's callers' static
 * halves do); a thread that starts late or runs on a busy core still leaves its share to the others.
 * One atomic word per slot: (next << 32) | end. */
#define TK_MAX_THREADS 64
typedef struct {
    _Atomic uint64_t r[TK_MAX_THREADS];
    unsigned slots;
} tk_ranges;

static void tk_ranges_init(tk_ranges *g, size_t nchunks, unsigned slots) {
    g->slots = slots;
    for (unsigned q = 0; q < slots; q++) {
        uint64_t lo = nchunks * q / slots, hi = nchunks * (q + 1) / slots;
        atomic_store_explicit(&g->r[q], lo << 32 | hi, memory_order_relaxed);
    }
}

/* The next chunk for slot q (its own front first, then another slot's back); SIZE_MAX when none is left. */
static size_t tk_ranges_claim(tk_ranges *g, unsigned q) {
    for (unsigned i = 0; i < g->slots; i++) {
        unsigned o = (q + i) % g->slots;
        uint64_t v = atomic_load_explicit(&g->r[o], memory_order_relaxed);
        while ((uint32_t)(v >> 32) < (uint32_t)v) {
            const uint64_t want = i == 0 ? v + ((uint64_t)1 << 32) : v - 1;
            if (atomic_compare_exchange_weak_explicit(&g->r[o], &v, want, memory_order_relaxed, memory_order_relaxed))
                return i == 0 ? (size_t)(v >> 32) : (size_t)(uint32_t)v - 1;
        }
    }
    return SIZE_MAX;
}

/* One GOMP_parallel region: every team thread claims chunks (slot = its team number) until none is left. */
typedef struct {
    const tk_job *job;
    tk_ranges ranges;
} tk_omp_job;

static void tk_omp_body(void *p) {
    tk_omp_job *o = p;
    const unsigned q = (unsigned)tk_omp.thread_num() % o->ranges.slots;
    for (size_t k; (k = tk_ranges_claim(&o->ranges, q)) != SIZE_MAX;) tk_job_chunk(o->job, k);
}

/* Runs j on the host's OpenMP team; 0 if the OpenMP backend is off or cannot take this call. */
static int tk_omp_run(const tk_job *j, size_t nt) {
    tk_gomp_parallel_fn par = atomic_load_explicit(&tk_omp.parallel, memory_order_acquire);
    if (!par) return 0;
    /* inside a parallel region (a nested team would oversubscribe) or another caller's loop: this
     * thread runs it alone, as the pool does for a concurrent caller */
    if (tk_omp.in_parallel() || atomic_flag_test_and_set_explicit(&tk_omp.busy, memory_order_acquire)) {
        j->fn(j->ctx, 0, j->n);
        return 1;
    }
    const unsigned team = (unsigned)(nt < j->nchunks ? nt : j->nchunks);
    tk_omp_job o = {.job = j};
    tk_ranges_init(&o.ranges, j->nchunks, team);
    par(tk_omp_body, &o, team, 0);
    atomic_flag_clear_explicit(&tk_omp.busy, memory_order_release);
    return 1;
}

/* ---- the pool ------------------------------------------------------------------------------------ */
/* Pause iterations a worker spins after a job before it sleeps (~20-40 us on current x86): long
 * enough for back-to-back calls, short enough not to hold a core another runtime wants. */
#define TK_SPIN 1000

static struct {
    atomic_flag busy;     /* one caller at a time */
    atomic_uint state;    /* (epoch << 1) | open */
    atomic_uint sleepers; /* workers in (or about to enter) FUTEX_WAIT */
    atomic_uint active;   /* workers inside the current job */
    unsigned allowed;     /* workers the current job may use (the thread count minus the caller) */
    tk_ranges ranges;     /* the chunks left: slot 0 the caller, slot r + 1 the worker of rank r */
    atomic_size_t done;   /* chunks finished */
    atomic_int stop;
    tk_job job;
    pthread_mutex_t lock; /* starting / stopping workers */
    int started;          /* workers running */
    pthread_t tids[TK_MAX_THREADS];
} tk_pool = {.busy = ATOMIC_FLAG_INIT, .lock = PTHREAD_MUTEX_INITIALIZER};

static inline void tk_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void tk_futex_wait(atomic_uint *w, unsigned v) {
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
}
static void tk_futex_wake_all(atomic_uint *w) {
    syscall(SYS_futex, (unsigned *)w, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Claims and runs chunks as slot q until none is left. */
static void tk_pool_drain(unsigned q) {
    const tk_job *j = &tk_pool.job;
    for (;;) {
        size_t k = tk_ranges_claim(&tk_pool.ranges, q);
        if (k == SIZE_MAX) return;
        tk_job_chunk(j, k);
        atomic_fetch_add_explicit(&tk_pool.done, 1, memory_order_release);
    }
}

static void *tk_worker(void *arg) {
    (void)arg;
    unsigned seen = atomic_load(&tk_pool.state);
    for (;;) {
        unsigned s = atomic_load(&tk_pool.state);
        for (int i = 0; s == seen && i < TK_SPIN; i++) {
            tk_cpu_relax();
            s = atomic_load_explicit(&tk_pool.state, memory_order_relaxed);
        }
        if (s == seen) {
            atomic_fetch_add(&tk_pool.sleepers, 1);
            if (!atomic_load(&tk_pool.stop)) tk_futex_wait(&tk_pool.state, seen);
            atomic_fetch_sub(&tk_pool.sleepers, 1);
            s = atomic_load(&tk_pool.state);
        }
        if (atomic_load(&tk_pool.stop)) return NULL;
        if (s == seen) continue; /* spurious wake-up */
        seen = s;
        if (!(s & 1u)) continue; /* that job has closed already */
        /* Dekker pair with tk_pool_run's close: either this re-read sees the job closed, or the caller
         * sees active > 0 and waits for this worker (both sides sequentially consistent). */
        unsigned rank = atomic_fetch_add(&tk_pool.active, 1);
        if (atomic_load(&tk_pool.state) == s && rank < tk_pool.allowed) tk_pool_drain(rank + 1);
        atomic_fetch_sub(&tk_pool.active, 1);
    }
}

/* Starts workers up to `want`; returns how many run. A refused pthread_create leaves fewer. */
static int tk_pool_grow(int want) {
    if (want > TK_MAX_THREADS - 1) want = TK_MAX_THREADS - 1;
    pthread_mutex_lock(&tk_pool.lock);
    while (tk_pool.started < want && !atomic_load(&tk_pool.stop)) {
        if (pthread_create(&tk_pool.tids[tk_pool.started], NULL, tk_worker, NULL) != 0) break;
        tk_pool.started++;
    }
    int have = tk_pool.started;
    pthread_mutex_unlock(&tk_pool.lock);
    return have;
}

void tk_threads_shutdown(void) {
    pthread_mutex_lock(&tk_pool.lock);
    atomic_store(&tk_pool.stop, 1);
    atomic_fetch_add(&tk_pool.state, 2u); /* a new epoch, closed: wakes sleepers, joins nothing */
    tk_futex_wake_all(&tk_pool.state);
    for (int i = 0; i < tk_pool.started; i++) pthread_join(tk_pool.tids[i], NULL);
    tk_pool.started = 0;
    atomic_store(&tk_pool.stop, 0);
    pthread_mutex_unlock(&tk_pool.lock);
}

/* Library unload (dlclose) or process exit: the workers must not outlive the code they run. */
__attribute__((destructor)) static void tk_threads_fini(void) { tk_threads_shutdown(); }

/* In a fork()ed child only the forking thread exists: forget the workers (and a job another thread
 * was running), new ones start on demand. */
static void tk_threads_atfork_child(void) {
    /* libgomp is not fork-safe (a child's first parallel region can hang): the child uses the pool */
    atomic_store(&tk_omp.parallel, NULL);
    atomic_flag_clear(&tk_omp.busy);
    tk_pool.started = 0;
    atomic_flag_clear(&tk_pool.busy);
    atomic_store(&tk_pool.active, 0);
    atomic_store(&tk_pool.sleepers, 0);
    atomic_store(&tk_pool.state, atomic_load(&tk_pool.state) & ~1u);
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    tk_pool.lock = fresh;
}
static pthread_once_t tk_atfork_once = PTHREAD_ONCE_INIT;
static void tk_atfork_register(void) { pthread_atfork(NULL, NULL, tk_threads_atfork_child); }
static void tk_atfork_ensure(void) { pthread_once(&tk_atfork_once, tk_atfork_register); }

static void tk_pool_run(const tk_job *j, int workers) {
    tk_pool.job = *j;
    tk_pool.allowed = (unsigned)workers;
    tk_ranges_init(&tk_pool.ranges, j->nchunks, (unsigned)workers + 1);
    atomic_store_explicit(&tk_pool.done, 0, memory_order_relaxed);
    unsigned s = (atomic_load(&tk_pool.state) + 2u) | 1u; /* next epoch, open */
    atomic_store(&tk_pool.state, s);
    if (atomic_load(&tk_pool.sleepers)) tk_futex_wake_all(&tk_pool.state);
    tk_pool_drain(0);
    /* every chunk is claimed; wait for the ones still running on workers */
    for (unsigned i = 0; atomic_load_explicit(&tk_pool.done, memory_order_acquire) < j->nchunks; i++) {
        if (i < 4096) tk_cpu_relax();
        else sched_yield();
    }
    atomic_store(&tk_pool.state, s & ~1u);                    /* closed */
    for (unsigned i = 0; atomic_load(&tk_pool.active); i++) { /* late joiners back off */
        if (i < 4096) tk_cpu_relax();
        else sched_yield();
    }
}

void tk_parallel_for(size_t n, size_t grain, tk_range_fn fn, void *ctx) {
    if (n == 0) return;
    if (grain == 0) grain = 1;
    if (n <= grain) { /* small calls: no thread is woken */
        fn(ctx, 0, n);
        return;
    }
    size_t nt = (size_t)tokemb_get_num_threads();
    if (nt > TK_MAX_THREADS) nt = TK_MAX_THREADS;
    size_t max_by_grain = (n + grain - 1) / grain;
    if (nt > max_by_grain) nt = max_by_grain;
    if (nt <= 1) {
        fn(ctx, 0, n);
        return;
    }
    /* up to 4 chunks per thread (bounded by grain): a thread that starts late or runs on a busy core
     * leaves its share to the others */
    size_t nchunks = nt * 4 < max_by_grain ? nt * 4 : max_by_grain;
    size_t chunk = (n + nchunks - 1) / nchunks;
    tk_job j = {fn, ctx, n, chunk, (n + chunk - 1) / chunk};

    tk_host *h = atomic_load_explicit(&tk_host_cur, memory_order_acquire);
    if (h) {
        h->fn(h->ctx, j.nchunks, tk_host_task, &j);
        return;
    }
    tk_atfork_ensure();
    if (tk_omp_run(&j, nt)) return;
    if (atomic_flag_test_and_set_explicit(&tk_pool.busy, memory_order_acquire)) {
        fn(ctx, 0, n); /* another caller has the pool */
        return;
    }
    if (tk_pool_grow((int)nt - 1) == 0) fn(ctx, 0, n);
    else tk_pool_run(&j, (int)nt - 1);
    atomic_flag_clear_explicit(&tk_pool.busy, memory_order_release);
}
