/* test_alloc_failures.c - allocation-failure injection.
 *
 * Linked against tokemb_testing, a static copy of the library built with TOKEMB_TESTING (see
 * tests/CMakeLists.txt): src/common/alloc.c then fails the N-th allocation after tk_test_fail_countdown = N.
 * For every operation that allocates, N = 1, 2, ... runs until the operation no longer reaches an N-th
 * allocation. Each injected failure must return TOKEMB_NO_MEMORY with a message (or succeed through a
 * documented fallback with the exact result), free everything it allocated (counted here through
 * -Wl,--wrap of malloc/calloc/posix_memalign/free, and checked by LSan in the ASan build), and leave the
 * table, the outputs and any out-pointer exactly as they were. pthread_create is wrapped too: a thread
 * that cannot start must make tk_parallel_for run the work serially with identical results. */
#define _POSIX_C_SOURCE 200809L
#include "tk_test.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

extern _Atomic long tk_test_fail_countdown; /* src/common/alloc.c, TOKEMB_TESTING only */
void tk_threads_shutdown(void);             /* src/common/threads.c: joins the pool's workers */

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
/* Issue 15: truncate this file (to 16 bytes) at the first allocation of >= g_trunc_min bytes - the table
 * or read buffer a copy load allocates after opening the file and before reading its data. */
static const char *_Atomic g_trunc_path;
static size_t g_trunc_min;
static void tk_maybe_truncate(size_t n) {
    const char *p = atomic_load(&g_trunc_path);
    if (p && n >= g_trunc_min && atomic_compare_exchange_strong(&g_trunc_path, &p, NULL)) (void)!truncate(p, 16);
}
void *__wrap_malloc(size_t n) {
    tk_maybe_truncate(n);
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
    tk_maybe_truncate(n);
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
    tokemb_table *t;  /* the table the operation works on (checksummed), or NULL */
    tokemb_table *t2; /* a second watched table (e.g. the source of a copy), or NULL */
    float *out;       /* output buffer (sentinel-filled by the driver) */
    size_t out_n;     /* floats */
    float *out2;      /* a second output buffer, or NULL */
    size_t out2_n;
    tokemb_posenc *pe;  /* a watched encoder, or NULL */
    tokemb_vocab *v;    /* a watched vocabulary, or NULL */
    const char *path;   /* a file the operation writes: checksummed (absent = 0) */
    tokemb_table *made; /* constructor results; sentinel pointers before the call */
    tokemb_posenc *pe_made;
    tokemb_vocab *v_made;
} tk_case;

typedef struct {
    const char *name;
    void (*setup)(tk_case *c);
    int32_t (*run)(tk_case *c);
    void (*teardown)(tk_case *c); /* NULL: the driver frees every object of the case */
} tk_op;

static tokemb_table *const TK_MADE_SENTINEL = (tokemb_table *)(uintptr_t)0x5eed;
static tokemb_posenc *const TK_PE_SENTINEL = (tokemb_posenc *)(uintptr_t)0x5eee;
static tokemb_vocab *const TK_V_SENTINEL = (tokemb_vocab *)(uintptr_t)0x5eef;

#include "tk_test_state.h"

typedef struct {
    uint64_t t, t2, out, out2, pe, v, file, made, pe_made, v_made;
} tk_sums;

static tk_sums tk_case_sums(tk_case *c) {
    tk_sums s;
    memset(&s, 0, sizeof s);
    s.t = tk_table_sum(c->t);
    s.t2 = tk_table_sum(c->t2);
    s.out = c->out ? tk_checksum(c->out, c->out_n * sizeof(float)) : 0;
    s.out2 = c->out2 ? tk_checksum(c->out2, c->out2_n * sizeof(float)) : 0;
    s.pe = c->pe ? tk_posenc_sum(c->pe) : 0;
    s.v = c->v ? tk_vocab_sum(c->v) : 0;
    s.file = tk_file_sum(c->path);
    s.made = c->made != TK_MADE_SENTINEL ? tk_table_sum(c->made) : 1;
    s.pe_made = c->pe_made != TK_PE_SENTINEL ? tk_posenc_sum(c->pe_made) : 1;
    s.v_made = c->v_made != TK_V_SENTINEL ? tk_vocab_sum(c->v_made) : 1;
    return s;
}

static void tk_case_free(const tk_op *op, tk_case *c) {
    if (op->teardown) op->teardown(c);
    tokemb_table_free(c->t);
    tokemb_table_free(c->t2);
    tokemb_posenc_free(c->pe);
    tokemb_vocab_free(c->v);
    if (c->made != TK_MADE_SENTINEL) tokemb_table_free(c->made);
    if (c->pe_made != TK_PE_SENTINEL) tokemb_posenc_free(c->pe_made);
    if (c->v_made != TK_V_SENTINEL) tokemb_vocab_free(c->v_made);
    if (c->path) remove(c->path);
    free(c->out);
    free(c->out2);
    memset(c, 0, sizeof *c);
}

static void tk_case_setup(const tk_op *op, tk_case *c) {
    memset(c, 0, sizeof *c);
    c->made = TK_MADE_SENTINEL;
    c->pe_made = TK_PE_SENTINEL;
    c->v_made = TK_V_SENTINEL;
    op->setup(c);
    if (c->out) tk_fill_sentinel(c->out, c->out_n);
    if (c->out2) tk_fill_sentinel(c->out2, c->out2_n);
}

static long g_failures_survived, g_fallbacks, g_ops_checked, g_kept_capacity, g_ops_allocating;

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
    const long failures_at_start = g_failures_survived + g_fallbacks;

    for (long n = 1; n < 10000; n++) {
        const long live_pre = atomic_load(&g_live);
        tk_case_setup(op, &c);
        const tk_sums before = tk_case_sums(&c);
        const long live0 = atomic_load(&g_live);
        tk_test_fail_countdown = n;
        st = op->run(&c);
        const long left = atomic_load(&tk_test_fail_countdown);
        tk_test_fail_countdown = 0;
        const bool injected = left == 0;
        if (st == TOKEMB_NO_MEMORY) {
            if (!injected) fail_msg("%s: NO_MEMORY without an injected failure (N = %ld)", op->name, n);
            const char *msg = tokemb_last_error();
            if (!msg[0]) fail_msg("%s: NO_MEMORY (N = %ld) without a message", op->name, n);
            const tk_sums after = tk_case_sums(&c);
            if (memcmp(&after, &before, sizeof after) != 0)
                fail_msg("%s: allocation %ld failed but an input, output, table, encoder, vocabulary, file or "
                         "out-pointer changed (t %d t2 %d out %d out2 %d pe %d v %d file %d made %d/%d/%d)",
                         op->name, n, after.t != before.t, after.t2 != before.t2, after.out != before.out,
                         after.out2 != before.out2, after.pe != before.pe, after.v != before.v,
                         after.file != before.file, after.made != before.made, after.pe_made != before.pe_made,
                         after.v_made != before.v_made);
            /* Blocks still live after the failure must belong to the case's objects (e.g. a vocabulary
             * keeps capacity it grew before the failing allocation): freeing them frees everything. */
            const long kept = atomic_load(&g_live) - live0;
            if (kept != 0 && !c.v)
                fail_msg("%s: allocation %ld failed and %ld blocks stayed allocated", op->name, n, kept);
            tk_case_free(op, &c);
            if (atomic_load(&g_live) != live_pre)
                fail_msg("%s: allocation %ld failed and leaked %ld blocks", op->name, n,
                         atomic_load(&g_live) - live_pre);
            if (kept != 0) g_kept_capacity++;
            g_failures_survived++;
            continue;
        } else if (st == TOKEMB_OK) {
            const tk_sums after = tk_case_sums(&c);
            if (memcmp(&after, &ref, sizeof after) != 0)
                fail_msg("%s: succeeded with N = %ld%s but the result differs from the reference", op->name, n,
                         injected ? " (after a failed allocation)" : "");
            if (!injected) {
                tk_case_free(op, &c);
                break;
            }
            g_fallbacks++; /* a failed allocation with a correct fallback */
        } else {
            fail_msg("%s: allocation %ld failed and the call returned %d (%s), not NO_MEMORY: %s", op->name, n, (int)st,
                     tokemb_status_string(st), tokemb_last_error());
        }
        tk_case_free(op, &c);
    }
    if (g_failures_survived + g_fallbacks > failures_at_start) g_ops_allocating++;
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

/* ---- positional encoders ---- */
static int32_t run_pe_sin(tk_case *c) {
    return tokemb_posenc_create_sinusoidal(10, 1e4, TOKEMB_CONCAT_T2T, &c->pe_made);
}
static int32_t run_pe_learned(tk_case *c) { return tokemb_posenc_create_learned(9, 5, &c->pe_made); }
static int32_t run_pe_rope(tk_case *c) { return tokemb_posenc_create_rope(12, 8, 1e4, TOKEMB_GPTJ, &c->pe_made); }
static int32_t run_pe_alibi(tk_case *c) { return tokemb_posenc_create_alibi(6, &c->pe_made); }
static int32_t run_pe_t5(tk_case *c) { return tokemb_posenc_create_t5(3, 32, 128, 1, &c->pe_made); }
static int32_t run_pe_shaw(tk_case *c) { return tokemb_posenc_create_shaw(3, 4, &c->pe_made); }

static const int64_t k_pos[] = {0, 5, 17, 3, 1000, 2, 7, 4};
enum { K_NPOS = 8, K_HD = 12, K_NH = 3 };

static void setup_sin(tk_case *c) {
    TK_OK(tokemb_posenc_create_sinusoidal(K_DIM, 1e4, TOKEMB_INTERLEAVED, &c->pe));
    tk_out(c, K_NPOS * K_DIM);
}
static int32_t run_encode(tk_case *c) { return tokemb_posenc_encode(c->pe, k_pos, K_NPOS, c->out); }

static void setup_rope(tk_case *c) {
    TK_OK(tokemb_posenc_create_rope(K_HD, 8, 1e4, TOKEMB_NEOX, &c->pe));
    TK_OK(tokemb_posenc_set_param(c->pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_YARN));
    TK_OK(tokemb_posenc_set_param(c->pe, TOKEMB_ROPE_ORIGINAL_MAX_POS, 64));
    TK_OK(tokemb_posenc_set_param_f64(c->pe, TOKEMB_ROPE_FACTOR, 4.0));
    tk_out(c, K_NPOS * K_NH * K_HD);
}
/* x is the output buffer: fill it with data after the driver's sentinel (both runs see the same) */
static int32_t run_rope(tk_case *c) { return tokemb_rope_apply(c->pe, c->out, K_NPOS, K_NH, k_pos); }
static int32_t run_rope_bwd(tk_case *c) { return tokemb_rope_apply_backward(c->pe, c->out, K_NPOS, K_NH, k_pos); }
static int32_t run_rope_strided(tk_case *c) {
    return tokemb_posenc_rope_apply_strided(c->pe, c->out, 2, K_NH, K_NPOS / 2, K_NH * K_HD * (K_NPOS / 2), K_HD,
                                            K_NH * K_HD, k_pos, 0);
}
static int32_t run_rope_cos_sin(tk_case *c) {
    return tokemb_posenc_rope_cos_sin(c->pe, k_pos, K_NPOS, c->out, c->out + K_NPOS * 4);
}
static int32_t run_rope_inv_freq(tk_case *c) {
    double inv[4], a;
    int32_t st = tokemb_posenc_rope_inv_freq(c->pe, inv, 4, &a);
    if (st == TOKEMB_OK)
        for (int i = 0; i < 4; i++) c->out[i] = (float)inv[i];
    return st;
}
static void setup_longrope(tk_case *c) {
    TK_OK(tokemb_posenc_create_rope(K_HD, 8, 1e4, TOKEMB_NEOX, &c->pe));
    TK_OK(tokemb_posenc_set_param(c->pe, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_LONGROPE));
    TK_OK(tokemb_posenc_set_param(c->pe, TOKEMB_ROPE_ORIGINAL_MAX_POS, 64));
    const double sf[4] = {1, 1, 1, 1}, lf[4] = {2, 2, 2, 2};
    TK_OK(tokemb_posenc_rope_set_longrope_factors(c->pe, sf, lf, 4));
}
static int32_t run_longrope(tk_case *c) {
    const double sf[4] = {1.0, 1.25, 1.5, 2.0}, lf[4] = {3.0, 4.0, 5.0, 6.0};
    return tokemb_posenc_rope_set_longrope_factors(c->pe, sf, lf, 4);
}

static void setup_alibi(tk_case *c) {
    TK_OK(tokemb_posenc_create_alibi(5, &c->pe));
    tk_out(c, 5 * 4 * 6);
}
static int32_t run_alibi_bias(tk_case *c) { return tokemb_posenc_attn_bias(c->pe, 4, 6, 2, c->out); }
static int32_t run_alibi_slopes(tk_case *c) { return tokemb_posenc_alibi_slopes(c->pe, c->out); }
static void setup_t5(tk_case *c) {
    TK_OK(tokemb_posenc_create_t5(3, 16, 64, 1, &c->pe));
    TK_OK(tokemb_table_init_normal(tokemb_posenc_table(c->pe), 5, 0.0, 1.0));
    tk_out(c, 3 * 4 * 6);
    c->out2 = (float *)malloc(16 * 3 * sizeof(float));
    c->out2_n = 16 * 3;
}
static int32_t run_t5_bias(tk_case *c) { return tokemb_posenc_attn_bias(c->pe, 4, 6, -1, c->out); }
static int32_t run_t5_buckets(tk_case *c) { return tokemb_posenc_buckets(c->pe, 4, 6, 1, (int32_t *)(void *)c->out); }
static int32_t run_t5_bwd(tk_case *c) {
    for (size_t i = 0; i < c->out_n; i++) c->out[i] = (float)i;
    return tokemb_posenc_attn_bias_backward(c->pe, 4, 6, 0, c->out, c->out2);
}
static void setup_shaw(tk_case *c) {
    TK_OK(tokemb_posenc_create_shaw(2, 4, &c->pe));
    TK_OK(tokemb_table_init_normal(tokemb_posenc_table(c->pe), 6, 0.0, 1.0));
    tk_out(c, 3 * 5 * 4);
    c->out2 = (float *)malloc(5 * 4 * sizeof(float));
    c->out2_n = 5 * 4;
}
static int32_t run_shaw(tk_case *c) { return tokemb_posenc_shaw_embed(c->pe, 3, 5, 2, c->out); }
static int32_t run_shaw_bwd(tk_case *c) {
    for (size_t i = 0; i < c->out_n; i++) c->out[i] = (float)i;
    return tokemb_posenc_shaw_embed_backward(c->pe, 3, 5, 2, c->out, c->out2);
}
static void setup_embed(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 31);
    TK_OK(tokemb_table_set_param_f64(c->t, TOKEMB_MAX_NORM, 0.5));
    TK_OK(tokemb_posenc_create_learned(16, K_DIM, &c->pe));
    TK_OK(tokemb_table_init_normal(tokemb_posenc_table(c->pe), 8, 0.0, 1.0));
    tk_out(c, K_N * K_DIM);
}
static int32_t run_embed(tk_case *c) { return tokemb_embed(c->t, c->pe, k_ids, 4, 5, 3, 2.0f, c->out); }
static void setup_embed_bwd(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 31);
    TK_OK(tokemb_table_set_param(c->t, TOKEMB_SCALE_GRAD_BY_FREQ, 1));
    TK_OK(tokemb_posenc_create_learned(16, K_DIM, &c->pe));
    tk_out(c, K_ROWS * K_DIM);
    c->out2 = (float *)malloc(16 * K_DIM * sizeof(float));
    c->out2_n = 16 * K_DIM;
}
static float k_grad[K_N * K_DIM];
static int32_t run_embed_bwd(tk_case *c) {
    return tokemb_embed_backward(c->t, c->pe, k_ids, 4, 5, 3, 2.0f, k_grad, c->out, c->out2);
}

/* ---- training ---- */
static void setup_grad(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 32);
    TK_OK(tokemb_table_set_param(c->t, TOKEMB_PADDING_IDX, 3));
    TK_OK(tokemb_table_set_param(c->t, TOKEMB_SCALE_GRAD_BY_FREQ, 1));
    tk_out(c, K_ROWS * K_DIM > K_N * K_DIM + K_N ? K_ROWS * K_DIM : K_N * K_DIM + 2 * K_N + 2);
}
static int32_t run_grad(tk_case *c) { return tokemb_grad_accumulate(c->t, k_ids, K_N, k_grad, c->out); }
static int32_t run_grad_i32(tk_case *c) { return tokemb_grad_accumulate_i32(c->t, k_ids32, K_N, k_grad, c->out); }
static int32_t run_grad_onehot(tk_case *c) { return tokemb_lookup_onehot_backward(c->t, k_ids, K_N, k_grad, c->out); }
static int32_t run_coalesce(tk_case *c) {
    size_t nu = 0;
    /* out holds rows [K_N][dim], then ids (as raw int64), then the count */
    int64_t *oids = (int64_t *)(void *)(c->out + K_N * K_DIM);
    int32_t st = tokemb_grad_coalesce(c->t, k_ids, K_N, k_grad, oids, c->out, &nu);
    if (st == TOKEMB_OK) c->out[c->out_n - 1] = (float)nu;
    return st;
}
static int32_t run_coalesce_i32(tk_case *c) {
    size_t nu = 0;
    int64_t *oids = (int64_t *)(void *)(c->out + K_N * K_DIM);
    int32_t st = tokemb_grad_coalesce_i32(c->t, k_ids32, K_N, k_grad, oids, c->out, &nu);
    if (st == TOKEMB_OK) c->out[c->out_n - 1] = (float)nu;
    return st;
}
static const int64_t k_off[] = {0, 3, 3, 9, 20};
static float k_psw[K_N];
static void setup_bags(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 33);
    TK_OK(tokemb_table_set_param_f64(c->t, TOKEMB_MAX_NORM, 0.8));
    tk_out(c, 4 * K_DIM);
}
static int32_t run_bags_sum(tk_case *c) {
    return tokemb_lookup_bags(c->t, k_ids, K_N, k_off, 4, TOKEMB_SUM, k_psw, c->out);
}
static int32_t run_bags_mean_i32(tk_case *c) {
    return tokemb_lookup_bags_i32(c->t, k_ids32, K_N, k_off, 4, TOKEMB_MEAN, NULL, c->out);
}
static int32_t run_bags_max(tk_case *c) {
    return tokemb_lookup_bags(c->t, k_ids, K_N, k_off, 4, TOKEMB_MAX, NULL, c->out);
}
static void setup_bags_bwd(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 34);
    TK_OK(tokemb_table_set_param(c->t, TOKEMB_PADDING_IDX, 5));
    tk_out(c, K_ROWS * K_DIM);
    c->out2 = (float *)malloc(K_N * sizeof(float));
    c->out2_n = K_N;
}
static int32_t run_bags_bwd_sum(tk_case *c) {
    return tokemb_lookup_bags_backward(c->t, k_ids, K_N, k_off, 4, TOKEMB_SUM, k_psw, k_grad, c->out, c->out2);
}
static int32_t run_bags_bwd_mean(tk_case *c) {
    return tokemb_lookup_bags_backward_i32(c->t, k_ids32, K_N, k_off, 4, TOKEMB_MEAN, NULL, k_grad, c->out, NULL);
}
static int32_t run_bags_bwd_max(tk_case *c) {
    return tokemb_lookup_bags_backward(c->t, k_ids, K_N, k_off, 4, TOKEMB_MAX, NULL, k_grad, c->out, NULL);
}
/* optimizers: the first step allocates the state; a failure must leave every row (and the step count) */
static int32_t g_kind;
static void setup_optim(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 35);
    TK_OK(tokemb_optim_select(c->t, g_kind));
}
static int32_t run_optim_step(tk_case *c) { return tokemb_optim_step(c->t, k_ids, K_N, k_grad); }
static int32_t run_optim_step_i32(tk_case *c) { return tokemb_optim_step_i32(c->t, k_ids32, K_N, k_grad); }
static int32_t run_optim_step_coalesced(tk_case *c) {
    static const int64_t u[] = {0, 2, 5, 9};
    return tokemb_optim_step_coalesced(c->t, u, 4, k_grad);
}
static void setup_optim_second(tk_case *c) { /* a later step: state exists, scratch only */
    setup_optim(c);
    TK_OK(tokemb_optim_step(c->t, k_ids, K_N, k_grad));
}
static void setup_none_table(tk_case *c) { c->t = tk_table(K_ROWS, K_DIM, 36); }
static int32_t run_optim_select(tk_case *c) { return tokemb_optim_select(c->t, TOKEMB_OPTIM_SPARSE_ADAM); }
static void setup_logits(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 37);
    tk_out(c, 4 * K_ROWS);
    c->out2 = (float *)malloc(K_ROWS * K_DIM * sizeof(float));
    c->out2_n = K_ROWS * K_DIM;
}
static int32_t run_logits(tk_case *c) { return tokemb_logits(c->t, k_grad, 4, c->out); }
static int32_t run_logits_bwd(tk_case *c) {
    float gh[4 * K_DIM];
    return tokemb_logits_backward(c->t, k_grad, 4, k_grad, gh, c->out2);
}

/* ---- files, vocabulary, conversion, nearest ---- */
static char g_dir[256];
static char g_npy[300], g_st[300], g_w2v[300], g_glove[300], g_save[300];
static void setup_convert(tk_case *c) { c->t2 = tk_table(K_ROWS, K_DIM, 38); }
static int32_t run_convert_f16(tk_case *c) { return tokemb_table_convert(c->t2, TOKEMB_F16, &c->made); }
static int32_t run_convert_q8(tk_case *c) { return tokemb_table_convert(c->t2, TOKEMB_Q8_ROW, &c->made); }
static int32_t run_npy_load(tk_case *c) { return tokemb_npy_load(g_npy, &c->made); }
static int32_t run_npy_mmap(tk_case *c) { return tokemb_npy_mmap(g_npy, &c->made); }
static int32_t run_st_load(tk_case *c) { return tokemb_safetensors_load(g_st, "b", &c->made); }
static int32_t run_st_mmap(tk_case *c) { return tokemb_safetensors_mmap(g_st, "a", &c->made); }
static int32_t run_st_names(tk_case *c) {
    size_t nn = 0, nb = 0;
    int32_t st = tokemb_safetensors_names(g_st, (char *)c->out, c->out_n * sizeof(float), &nn, &nb);
    return st;
}
static void setup_names(tk_case *c) { tk_out(c, 16); }
static int32_t run_w2v_load(tk_case *c) {
    return tokemb_vectors_load(g_w2v, TOKEMB_VECTORS_WORD2VEC_BINARY, NULL, NULL, &c->made, &c->v_made);
}
static int32_t run_glove_load(tk_case *c) {
    return tokemb_vectors_load(g_glove, TOKEMB_VECTORS_GLOVE, NULL, NULL, &c->made, &c->v_made);
}
/* saves: an older file at the path must survive a failed save byte for byte */
static void setup_save(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 39);
    c->path = g_save;
    FILE *f = fopen(g_save, "wb");
    assert_non_null(f);
    fputs("previous contents\n", f);
    fclose(f);
    TK_OK(tokemb_vocab_create(&c->v));
    for (int i = 0; i < K_ROWS; i++) {
        char w[16];
        snprintf(w, sizeof w, "w%d", i);
        TK_OK(tokemb_vocab_add(c->v, w, strlen(w), NULL));
    }
}
static int32_t run_npy_save(tk_case *c) { return tokemb_npy_save(c->t, g_save); }
static int32_t run_st_save(tk_case *c) {
    const tokemb_table *tabs[2] = {c->t, c->t};
    const char *names[2] = {"x", "y"};
    return tokemb_safetensors_save(tabs, names, 2, g_save);
}
static int32_t run_w2v_save(tk_case *c) {
    return tokemb_vectors_save(c->t, c->v, g_save, TOKEMB_VECTORS_WORD2VEC_TEXT);
}
static int32_t run_w2vb_save(tk_case *c) {
    return tokemb_vectors_save(c->t, c->v, g_save, TOKEMB_VECTORS_WORD2VEC_BINARY);
}
static int32_t run_vocab_create(tk_case *c) { return tokemb_vocab_create(&c->v_made); }
static int g_vocab_n;
static void setup_vocab(tk_case *c) {
    TK_OK(tokemb_vocab_create(&c->v));
    for (int i = 0; i < g_vocab_n; i++) {
        char w[16];
        snprintf(w, sizeof w, "word%d", i);
        TK_OK(tokemb_vocab_add(c->v, w, strlen(w), NULL));
    }
}
/* one add into a vocabulary of g_vocab_n words (sizes around powers of two make it grow) */
static int32_t run_vocab_add(tk_case *c) {
    int64_t id = -1;
    int32_t st = tokemb_vocab_add(c->v, "the-new-word", 12, &id);
    if (st == TOKEMB_OK && id != g_vocab_n) return TOKEMB_FORMAT; /* wrong id: fails the driver */
    return st;
}
static void setup_nearest(tk_case *c) {
    c->t = tk_table(K_ROWS, K_DIM, 40);
    tk_out(c, 3 * 4 * 3);
}
static int32_t run_nearest(tk_case *c) {
    static const int64_t ex[3] = {-1, 2, 7};
    return tokemb_nearest(c->t, k_grad, 3, 4, TOKEMB_METRIC_COSINE, ex, (int64_t *)(void *)c->out, c->out + 24);
}
static int32_t run_nearest_ids(tk_case *c) {
    return tokemb_nearest_ids(c->t, k_ids, 3, 4, TOKEMB_METRIC_DOT, 1, (int64_t *)(void *)c->out, c->out + 24);
}

static void tk_files_setup(void) {
    snprintf(g_dir, sizeof g_dir, "%s/tk_alloc_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(g_dir));
    snprintf(g_npy, sizeof g_npy, "%s/t.npy", g_dir);
    snprintf(g_st, sizeof g_st, "%s/t.safetensors", g_dir);
    snprintf(g_w2v, sizeof g_w2v, "%s/t.w2v", g_dir);
    snprintf(g_glove, sizeof g_glove, "%s/t.glove", g_dir);
    snprintf(g_save, sizeof g_save, "%s/saved.out", g_dir);
    tokemb_table *t = tk_table(K_ROWS, K_DIM, 41), *h = NULL;
    TK_OK(tokemb_npy_save(t, g_npy));
    TK_OK(tokemb_table_convert(t, TOKEMB_BF16, &h));
    const tokemb_table *tabs[2] = {t, h};
    const char *names[2] = {"a", "b"};
    TK_OK(tokemb_safetensors_save(tabs, names, 2, g_st));
    tokemb_vocab *v = NULL;
    TK_OK(tokemb_vocab_create(&v));
    for (int i = 0; i < K_ROWS; i++) {
        char w[16];
        snprintf(w, sizeof w, "tok%d", i);
        TK_OK(tokemb_vocab_add(v, w, strlen(w), NULL));
    }
    TK_OK(tokemb_vectors_save(t, v, g_w2v, TOKEMB_VECTORS_WORD2VEC_BINARY));
    TK_OK(tokemb_vectors_save(t, v, g_glove, TOKEMB_VECTORS_GLOVE));
    tokemb_vocab_free(v);
    tokemb_table_free(h);
    tokemb_table_free(t);
    for (int i = 0; i < K_N * K_DIM; i++) k_grad[i] = 0.125f * (float)(i % 17) - 1.0f;
    for (int i = 0; i < K_N; i++) k_psw[i] = 0.5f + 0.25f * (float)i;
}

static size_t tk_dir_entries(void) {
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    size_t n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

static void tk_files_teardown(void) {
    remove(g_npy);
    remove(g_st);
    remove(g_w2v);
    remove(g_glove);
    remove(g_save);
    rmdir(g_dir);
}

/* ---- compact storage dtypes ---- */
static int32_t run_create_f16(tk_case *c) { return tokemb_table_create(K_ROWS, K_DIM, TOKEMB_F16, &c->made); }
static int32_t run_create_q8(tk_case *c) { return tokemb_table_create(K_ROWS, K_DIM, TOKEMB_Q8_ROW, &c->made); }
static void setup_q8(tk_case *c) {
    tokemb_table *f = tk_table(K_ROWS, K_DIM, 42);
    TK_OK(tokemb_table_convert(f, TOKEMB_Q8_ROW, &c->t));
    tokemb_table_free(f);
    tk_out(c, K_N * K_DIM * 3);
}
static void setup_f16(tk_case *c) {
    tokemb_table *f = tk_table(K_ROWS, K_DIM, 43);
    TK_OK(tokemb_table_convert(f, TOKEMB_F16, &c->t));
    tokemb_table_free(f);
    tk_out(c, K_N * K_DIM * 3);
}
static int32_t run_lookup_dtype(tk_case *c) { return tokemb_lookup(c->t, k_ids, K_N, c->out); }
static int32_t run_write_rows_dtype(tk_case *c) { return tokemb_table_write_rows(c->t, 2, 3, k_grad); }
static int32_t run_nearest_dtype(tk_case *c) {
    return tokemb_nearest(c->t, k_grad, 3, 4, TOKEMB_METRIC_COSINE, NULL, (int64_t *)(void *)c->out, c->out + 24);
}
static int32_t run_convert_back(tk_case *c) { return tokemb_table_convert(c->t, TOKEMB_F32, &c->made); }

static const tk_op k_ops[] = {
    {"tokemb_table_create F16", setup_none, run_create_f16, NULL},
    {"tokemb_table_create Q8_ROW", setup_none, run_create_q8, NULL},
    {"tokemb_lookup Q8_ROW", setup_q8, run_lookup_dtype, NULL},
    {"tokemb_lookup F16", setup_f16, run_lookup_dtype, NULL},
    {"tokemb_table_write_rows Q8_ROW", setup_q8, run_write_rows_dtype, NULL},
    {"tokemb_nearest F16", setup_f16, run_nearest_dtype, NULL},
    {"tokemb_nearest Q8_ROW", setup_q8, run_nearest_dtype, NULL},
    {"tokemb_table_convert Q8_ROW -> F32", setup_q8, run_convert_back, NULL},
    {"tokemb_table_create", setup_none, run_create, NULL},
    {"tokemb_table_wrap", setup_none, run_wrap, NULL},
    {"tokemb_table_init_normal (strided wrap)", setup_strided, run_init_normal, NULL},
    {"tokemb_table_init_uniform (strided wrap)", setup_strided, run_init_uniform, NULL},
    {"tokemb_lookup (max_norm)", setup_maxnorm, run_lookup_maxnorm, NULL},
    {"tokemb_lookup_i32 (max_norm)", setup_maxnorm, run_lookup_i32_maxnorm, NULL},
    {"tokemb_lookup_strided (max_norm)", setup_maxnorm, run_lookup_strided_maxnorm, NULL},
    {"tokemb_lookup", setup_plain, run_lookup, NULL},
    {"tokemb_lookup_onehot", setup_plain, run_onehot, NULL},
    {"tokemb_posenc_create_sinusoidal", setup_none, run_pe_sin, NULL},
    {"tokemb_posenc_create_learned", setup_none, run_pe_learned, NULL},
    {"tokemb_posenc_create_rope", setup_none, run_pe_rope, NULL},
    {"tokemb_posenc_create_alibi", setup_none, run_pe_alibi, NULL},
    {"tokemb_posenc_create_t5", setup_none, run_pe_t5, NULL},
    {"tokemb_posenc_create_shaw", setup_none, run_pe_shaw, NULL},
    {"tokemb_posenc_encode", setup_sin, run_encode, NULL},
    {"tokemb_rope_apply (YaRN)", setup_rope, run_rope, NULL},
    {"tokemb_rope_apply_backward (YaRN)", setup_rope, run_rope_bwd, NULL},
    {"tokemb_posenc_rope_apply_strided (YaRN)", setup_rope, run_rope_strided, NULL},
    {"tokemb_posenc_rope_cos_sin (YaRN)", setup_rope, run_rope_cos_sin, NULL},
    {"tokemb_posenc_rope_inv_freq (YaRN)", setup_rope, run_rope_inv_freq, NULL},
    {"tokemb_posenc_rope_set_longrope_factors", setup_longrope, run_longrope, NULL},
    {"tokemb_posenc_attn_bias (ALiBi)", setup_alibi, run_alibi_bias, NULL},
    {"tokemb_posenc_alibi_slopes", setup_alibi, run_alibi_slopes, NULL},
    {"tokemb_posenc_attn_bias (T5)", setup_t5, run_t5_bias, NULL},
    {"tokemb_posenc_buckets (T5)", setup_t5, run_t5_buckets, NULL},
    {"tokemb_posenc_attn_bias_backward", setup_t5, run_t5_bwd, NULL},
    {"tokemb_posenc_shaw_embed", setup_shaw, run_shaw, NULL},
    {"tokemb_posenc_shaw_embed_backward", setup_shaw, run_shaw_bwd, NULL},
    {"tokemb_embed (learned, max_norm)", setup_embed, run_embed, NULL},
    {"tokemb_embed_backward", setup_embed_bwd, run_embed_bwd, NULL},
    {"tokemb_grad_accumulate", setup_grad, run_grad, NULL},
    {"tokemb_grad_accumulate_i32", setup_grad, run_grad_i32, NULL},
    {"tokemb_lookup_onehot_backward", setup_grad, run_grad_onehot, NULL},
    {"tokemb_grad_coalesce", setup_grad, run_coalesce, NULL},
    {"tokemb_grad_coalesce_i32", setup_grad, run_coalesce_i32, NULL},
    {"tokemb_lookup_bags SUM (max_norm)", setup_bags, run_bags_sum, NULL},
    {"tokemb_lookup_bags_i32 MEAN (max_norm)", setup_bags, run_bags_mean_i32, NULL},
    {"tokemb_lookup_bags MAX (max_norm)", setup_bags, run_bags_max, NULL},
    {"tokemb_lookup_bags_backward SUM", setup_bags_bwd, run_bags_bwd_sum, NULL},
    {"tokemb_lookup_bags_backward_i32 MEAN", setup_bags_bwd, run_bags_bwd_mean, NULL},
    {"tokemb_lookup_bags_backward MAX", setup_bags_bwd, run_bags_bwd_max, NULL},
    {"tokemb_optim_select", setup_none_table, run_optim_select, NULL},
    {"tokemb_logits", setup_logits, run_logits, NULL},
    {"tokemb_logits_backward", setup_logits, run_logits_bwd, NULL},
    {"tokemb_table_convert F16", setup_convert, run_convert_f16, NULL},
    {"tokemb_table_convert Q8_ROW", setup_convert, run_convert_q8, NULL},
    {"tokemb_npy_load", setup_none, run_npy_load, NULL},
    {"tokemb_npy_mmap", setup_none, run_npy_mmap, NULL},
    {"tokemb_safetensors_load", setup_none, run_st_load, NULL},
    {"tokemb_safetensors_mmap", setup_none, run_st_mmap, NULL},
    {"tokemb_safetensors_names", setup_names, run_st_names, NULL},
    {"tokemb_vectors_load word2vec binary", setup_none, run_w2v_load, NULL},
    {"tokemb_vectors_load GloVe", setup_none, run_glove_load, NULL},
    {"tokemb_npy_save (over an older file)", setup_save, run_npy_save, NULL},
    {"tokemb_safetensors_save (over an older file)", setup_save, run_st_save, NULL},
    {"tokemb_vectors_save text (over an older file)", setup_save, run_w2v_save, NULL},
    {"tokemb_vectors_save binary (over an older file)", setup_save, run_w2vb_save, NULL},
    {"tokemb_vocab_create", setup_none, run_vocab_create, NULL},
    {"tokemb_nearest", setup_nearest, run_nearest, NULL},
    {"tokemb_nearest_ids", setup_nearest, run_nearest_ids, NULL},
};

static const tk_op k_optim_ops[] = {
    {"tokemb_optim_step (first: state allocation)", setup_optim, run_optim_step, NULL},
    {"tokemb_optim_step_i32 (first)", setup_optim, run_optim_step_i32, NULL},
    {"tokemb_optim_step_coalesced (first)", setup_optim, run_optim_step_coalesced, NULL},
    {"tokemb_optim_step (second)", setup_optim_second, run_optim_step, NULL},
};

static void test_injection_all_ops(void **state) {
    (void)state;
    tk_files_setup();
    const size_t entries = tk_dir_entries();
    for (size_t i = 0; i < sizeof k_ops / sizeof k_ops[0]; i++) {
        for (int32_t nt = 1; nt <= 2; nt++) {
            TK_OK(tokemb_set_num_threads(nt));
            tk_inject(&k_ops[i]);
            /* failed saves left no temp files behind */
            assert_int_equal(tk_dir_entries(), entries);
        }
    }
    for (g_kind = TOKEMB_OPTIM_SGD; g_kind <= TOKEMB_OPTIM_SPARSE_ADAM; g_kind++)
        for (size_t i = 0; i < sizeof k_optim_ops / sizeof k_optim_ops[0]; i++)
            for (int32_t nt = 1; nt <= 2; nt++) {
                TK_OK(tokemb_set_num_threads(nt));
                tk_inject(&k_optim_ops[i]);
            }
    static const tk_op vocab_add = {"tokemb_vocab_add", setup_vocab, run_vocab_add, NULL};
    for (g_vocab_n = 0; g_vocab_n <= 130; g_vocab_n += (g_vocab_n < 8 ? 1 : 7)) tk_inject(&vocab_add);
    TK_OK(tokemb_set_num_threads(0));
    tk_files_teardown();
}

/* The seam itself: the countdown really fails the N-th allocation (so the loop above cannot pass
 * vacuously). */
static void test_seam_fires(void **state) {
    (void)state;
    tokemb_table *t = TK_MADE_SENTINEL;
    tk_test_fail_countdown = 1;
    TK_EXPECT_STATUS(TOKEMB_NO_MEMORY, tokemb_table_create(4, 4, TOKEMB_F32, &t), "tokemb_table_create");
    assert_int_equal(atomic_load(&tk_test_fail_countdown), 0);
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

/* Threads that cannot start: tk_parallel_for runs their chunks on the caller, same bits (the pool is
 * emptied before each call so that it starts its workers again). */
enum { TR = 300, TD = 64, TN = 32768, TBAGS = 256, TNTOK = 4096, THD = 64, TNH = 8 };
typedef struct {
    tokemb_table *t;
    tokemb_posenc *sin, *rope;
    int64_t *ids, *off, *pos;
    float *g, *x;
} tk_thr;

static size_t thr_lookup(tk_thr *w, float *out) {
    TK_OK(tokemb_lookup(w->t, w->ids, TN, out));
    return (size_t)TN * TD;
}
static size_t thr_grad(tk_thr *w, float *out) {
    memset(out, 0, (size_t)TR * TD * sizeof(float));
    TK_OK(tokemb_grad_accumulate(w->t, w->ids, TN, w->g, out));
    return (size_t)TR * TD;
}
static size_t thr_bags(tk_thr *w, float *out) {
    TK_OK(tokemb_lookup_bags(w->t, w->ids, TN, w->off, TBAGS, TOKEMB_MEAN, NULL, out));
    return (size_t)TBAGS * TD;
}
static size_t thr_encode(tk_thr *w, float *out) {
    TK_OK(tokemb_posenc_encode(w->sin, w->pos, TNTOK, out));
    return (size_t)TNTOK * TD;
}
static size_t thr_rope(tk_thr *w, float *out) {
    memcpy(out, w->x, (size_t)TNTOK * TNH * THD * sizeof(float));
    TK_OK(tokemb_rope_apply(w->rope, out, TNTOK, TNH, w->pos));
    return (size_t)TNTOK * TNH * THD;
}
static size_t thr_embed(tk_thr *w, float *out) {
    TK_OK(tokemb_embed(w->t, w->sin, w->ids, 8, TN / 8, 5, 8.0f, out));
    return (size_t)TN * TD;
}

static void test_thread_creation_failure(void **state) {
    (void)state;
    size_t (*const ops[])(tk_thr *, float *) = {thr_lookup, thr_grad, thr_bags, thr_encode, thr_rope, thr_embed};
    const char *names[] = {"lookup", "grad_accumulate", "lookup_bags", "posenc_encode", "rope_apply", "embed"};
    tk_thr w;
    TK_OK(tokemb_table_create(TR, TD, TOKEMB_F32, &w.t));
    TK_OK(tokemb_table_init_normal(w.t, 21, 0.0, 1.0));
    TK_OK(tokemb_posenc_create_sinusoidal(TD, 1e4, TOKEMB_INTERLEAVED, &w.sin));
    TK_OK(tokemb_posenc_create_rope(THD, THD, 1e4, TOKEMB_GPTJ, &w.rope));
    const size_t maxf = (size_t)TNTOK * TNH * THD > (size_t)TN * TD ? (size_t)TNTOK * TNH * THD : (size_t)TN * TD;
    w.ids = (int64_t *)malloc(TN * sizeof(int64_t));
    w.off = (int64_t *)malloc((TBAGS + 1) * sizeof(int64_t));
    w.pos = (int64_t *)malloc(TNTOK * sizeof(int64_t));
    w.g = (float *)malloc((size_t)TN * TD * sizeof(float));
    w.x = (float *)malloc((size_t)TNTOK * TNH * THD * sizeof(float));
    float *ref = (float *)malloc(maxf * sizeof(float));
    float *out = (float *)malloc(maxf * sizeof(float));
    assert_true(w.ids && w.off && w.pos && w.g && w.x && ref && out);
    uint64_t s = 99;
    for (int i = 0; i < TN; i++) w.ids[i] = (int64_t)(tk_rand(&s) % TR);
    for (int b = 0; b <= TBAGS; b++) w.off[b] = (int64_t)b * (TN / TBAGS);
    for (int i = 0; i < TNTOK; i++) w.pos[i] = (int64_t)(tk_rand(&s) % 100000);
    for (size_t i = 0; i < (size_t)TN * TD; i++) w.g[i] = (float)((int)(tk_rand(&s) % 2001) - 1000) / 512.0f;
    for (size_t i = 0; i < (size_t)TNTOK * TNH * THD; i++) w.x[i] = (float)((int)(tk_rand(&s) % 2001) - 1000) / 256.0f;
    atomic_store(&g_threads_refused, 0);
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        const long refused0 = atomic_load(&g_threads_refused);
        TK_OK(tokemb_set_num_threads(1));
        const size_t nf = ops[o](&w, ref);
        TK_OK(tokemb_set_num_threads(4));
        for (long k = 1; k <= 4; k++) { /* fail the k-th thread start (k = 4: at most 3 are started) */
            tk_threads_shutdown();      /* the pool's workers persist: make this call start them again */
            tk_fill_sentinel(out, nf);
            atomic_store(&g_thread_countdown, k);
            ops[o](&w, out);
            atomic_store(&g_thread_countdown, 0);
            if (memcmp(out, ref, nf * sizeof(float)) != 0)
                fail_msg("%s: thread start %ld refused: result differs from one thread", names[o], k);
        }
        tk_threads_shutdown();
        atomic_store(&g_thread_fail_all, 1);
        tk_fill_sentinel(out, nf);
        ops[o](&w, out);
        atomic_store(&g_thread_fail_all, 0);
        if (memcmp(out, ref, nf * sizeof(float)) != 0)
            fail_msg("%s: no thread could start: result differs from one thread", names[o]);
        const long refused = atomic_load(&g_threads_refused) - refused0;
        printf("  %s: %ld thread starts refused\n", names[o], refused);
        if (refused == 0) fail_msg("%s: never started a thread at 4 threads (inputs too small to test)", names[o]);
    }
    /* lookup alone refuses 3 + 3 starts (k = 1..3, then all); the other operations add theirs */
    assert_true(atomic_load(&g_threads_refused) >= 6);
    printf("thread starts refused (serial fallback, identical results): %ld\n", atomic_load(&g_threads_refused));
    TK_OK(tokemb_set_num_threads(0));
    free(w.ids);
    free(w.off);
    free(w.pos);
    free(w.g);
    free(w.x);
    free(ref);
    free(out);
    tokemb_posenc_free(w.sin);
    tokemb_posenc_free(w.rope);
    tokemb_table_free(w.t);
}

/* A file truncated between opening and reading (deterministically, from the allocation of the table or
 * read buffer): copy loads report TOKEMB_IO; before issue 15 they copied from a mapping and died of
 * SIGBUS. */
static void test_truncated_while_loading(void **state) {
    (void)state;
    char path[] = "/tmp/tokemb_trunc_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    tokemb_table *t = NULL, *l = NULL;
    tokemb_vocab *v = NULL;
    TK_OK(tokemb_table_create(256, 64, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, 1, 0.0, 1.0));
    g_trunc_min = 256 * 64 * sizeof(float);
    for (int w = 0; w < 3; w++) {
        if (w == 0) TK_OK(tokemb_npy_save(t, path));
        if (w == 1)
            TK_OK(tokemb_safetensors_save((const tokemb_table *const[]){t}, (const char *const[]){"w"}, 1, path));
        if (w == 2) {
            TK_OK(tokemb_vocab_create(&v));
            for (int r = 0; r < 256; r++) {
                char word[16];
                int k = snprintf(word, sizeof word, "word%d", r);
                TK_OK(tokemb_vocab_add(v, word, (size_t)k, NULL));
            }
            TK_OK(tokemb_vectors_save(t, v, path, TOKEMB_VECTORS_WORD2VEC_TEXT));
            tokemb_vocab_free(v);
            v = NULL;
        }
        atomic_store(&g_trunc_path, (const char *)path);
        int32_t st = w == 0   ? tokemb_npy_load(path, &l)
                     : w == 1 ? tokemb_safetensors_load(path, "w", &l)
                              : tokemb_vectors_load(path, TOKEMB_VECTORS_WORD2VEC_TEXT, NULL, NULL, &l, &v);
        assert_null(atomic_load(&g_trunc_path)); /* the truncation happened inside the load */
        TK_EXPECT_STATUS(TOKEMB_IO, st, "shrank while loading");
        assert_null(l);
        assert_null(v);
    }
    unlink(path);
    tokemb_table_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_while_loading),
        cmocka_unit_test(test_seam_fires),
        cmocka_unit_test(test_injection_all_ops),
        cmocka_unit_test(test_thread_creation_failure),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    printf("allocation-failure injection: %ld operation runs (operation x thread count x variant), %ld of them "
           "allocate; %ld injected failures "
           "survived (NO_MEMORY, nothing changed, nothing leaked; %ld kept grown capacity owned by the object), "
           "%ld correct fallbacks\n",
           g_ops_checked, g_ops_allocating, g_failures_survived, g_kept_capacity, g_fallbacks);
    return rc;
}
