/* test_concurrency.c - concurrent use.
 *
 * Several threads look up, pool, encode, embed, rotate (RoPE), compute gradients, logits, biases and
 * nearest neighbours on SHARED tables and encoders (read-only use, which the header declares safe), while
 * other threads do the same on tables/encoders of their own (and also modify them: max_norm lookups,
 * optimizer steps), while a knob thread keeps changing tokemb_set_num_threads (1..4). Every result must
 * equal the single-threaded result bit for bit. The outer loop also pins the library's thread count to
 * 1, 2, 3, 4. tests/run_tsan.sh runs this under ThreadSanitizer; TK_CONC_NO_BLAS=1 skips the OpenBLAS
 * paths (onehot, logits, nearest), which TSan cannot see into. TK_CONC_QUICK=1 (valgrind) does less. */
#define _POSIX_C_SOURCE 200809L
#include "tk_test.h"
#include "tk_test_threads.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { R = 500, D = 64, N = 2048, WORKERS = 6, NB = 64, HD = 64, NH = 4, NTOK = 256, MAXLEN = 4096 };
static int ITERS = 3;
static int32_t NT_STEP = 1;

/* The objects one worker uses: the shared set or a private set built identically. */
typedef struct {
    tokemb_table *tab;
    tokemb_posenc *sin, *learned, *rope, *alibi, *t5;
} tk_objs;

static tk_objs tk_objs_make(void) {
    tk_objs o;
    TK_OK(tokemb_table_create(R, D, TOKEMB_F32, &o.tab));
    TK_OK(tokemb_table_init_normal(o.tab, 1234, 0.0, 1.0));
    TK_OK(tokemb_table_set_param(o.tab, TOKEMB_PADDING_IDX, 7));
    TK_OK(tokemb_posenc_create_sinusoidal(D, 1e4, TOKEMB_INTERLEAVED, &o.sin));
    TK_OK(tokemb_posenc_create_learned(MAXLEN, D, &o.learned));
    TK_OK(tokemb_table_init_normal(tokemb_posenc_table(o.learned), 99, 0.0, 0.02));
    TK_OK(tokemb_posenc_create_rope(HD, HD, 5e5, TOKEMB_NEOX, &o.rope));
    TK_OK(tokemb_posenc_set_param(o.rope, TOKEMB_ROPE_SCALING, TOKEMB_ROPE_SCALING_YARN));
    TK_OK(tokemb_posenc_set_param(o.rope, TOKEMB_ROPE_ORIGINAL_MAX_POS, 1024));
    TK_OK(tokemb_posenc_set_param_f64(o.rope, TOKEMB_ROPE_FACTOR, 4.0));
    TK_OK(tokemb_posenc_create_alibi(12, &o.alibi));
    TK_OK(tokemb_posenc_create_t5(NH, 32, 128, 1, &o.t5));
    TK_OK(tokemb_table_init_normal(tokemb_posenc_table(o.t5), 5, 0.0, 1.0));
    return o;
}

static void tk_objs_free(tk_objs *o) {
    tokemb_table_free(o->tab);
    tokemb_posenc_free(o->sin);
    tokemb_posenc_free(o->learned);
    tokemb_posenc_free(o->rope);
    tokemb_posenc_free(o->alibi);
    tokemb_posenc_free(o->t5);
}

/* per-worker inputs */
typedef struct {
    int64_t ids[N];
    int32_t ids32[N];
    int64_t offsets[NB + 1];
    int64_t pos[NTOK];
    float x[NTOK * NH * HD]; /* RoPE input */
    float grad[N * D];       /* upstream gradient / hidden states */
} tk_inputs;

static tk_inputs g_in[WORKERS];

typedef int32_t (*tk_job_fn)(const tk_objs *o, const tk_inputs *in, float *out);
typedef struct {
    const char *name;
    tk_job_fn fn;
    size_t out_floats;
    int blas;
} tk_job;

static int32_t job_lookup(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_lookup(o->tab, in->ids, N, out);
}
static int32_t job_lookup_i32(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_lookup_i32(o->tab, in->ids32, N, out);
}
static int32_t job_lookup_strided(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_lookup_strided(o->tab, in->ids, N / 2, out, D + 3);
}
static int32_t job_onehot(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_lookup_onehot(o->tab, in->ids, N, out);
}
static int32_t job_bags_sum(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_lookup_bags(o->tab, in->ids, N, in->offsets, NB, TOKEMB_SUM, in->grad, out);
}
static int32_t job_bags_mean(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_lookup_bags_i32(o->tab, in->ids32, N, in->offsets, NB, TOKEMB_MEAN, NULL, out);
}
static int32_t job_bags_max(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_lookup_bags(o->tab, in->ids, N, in->offsets, NB, TOKEMB_MAX, NULL, out);
}
static int32_t job_encode_sin(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_posenc_encode(o->sin, in->pos, NTOK, out);
}
static int32_t job_encode_learned(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_posenc_encode(o->learned, in->pos, NTOK, out);
}
static int32_t job_embed(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_embed(o->tab, o->sin, in->ids, 4, N / 4, 17, 8.0f, out);
}
static int32_t job_rope(const tk_objs *o, const tk_inputs *in, float *out) {
    memcpy(out, in->x, sizeof in->x);
    return tokemb_rope_apply(o->rope, out, NTOK, NH, in->pos);
}
static int32_t job_rope_bwd(const tk_objs *o, const tk_inputs *in, float *out) {
    memcpy(out, in->x, sizeof in->x);
    return tokemb_rope_apply_backward(o->rope, out, NTOK, NH, in->pos);
}
static int32_t job_rope_strided(const tk_objs *o, const tk_inputs *in, float *out) {
    memcpy(out, in->x, sizeof in->x); /* viewed as [2][NH][NTOK/2][HD] */
    return tokemb_posenc_rope_apply_strided(o->rope, out, 2, NH, NTOK / 2, (int64_t)NH * (NTOK / 2) * HD,
                                            (int64_t)(NTOK / 2) * HD, HD, in->pos, 0);
}
static int32_t job_alibi(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_posenc_attn_bias(o->alibi, 16, 40, in->pos[0], out);
}
static int32_t job_t5(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_posenc_attn_bias(o->t5, 16, 40, in->pos[1] % 100, out);
}
static int32_t job_grad(const tk_objs *o, const tk_inputs *in, float *out) {
    memset(out, 0, (size_t)R * D * sizeof(float));
    return tokemb_grad_accumulate(o->tab, in->ids, N, in->grad, out);
}
static int32_t job_coalesce(const tk_objs *o, const tk_inputs *in, float *out) {
    size_t nu = 0;
    int64_t *uids = (int64_t *)(void *)(out + (size_t)N * D);
    int32_t st = tokemb_grad_coalesce(o->tab, in->ids, N, in->grad, uids, out, &nu);
    memset(out + nu * D, 0, (size_t)(N - nu) * D * sizeof(float)); /* unused capacity: deterministic */
    memset(uids + nu, 0, (N - nu) * sizeof(int64_t));
    return st;
}
static int32_t job_bags_bwd(const tk_objs *o, const tk_inputs *in, float *out) {
    memset(out, 0, (size_t)R * D * sizeof(float));
    return tokemb_lookup_bags_backward(o->tab, in->ids, N, in->offsets, NB, TOKEMB_MEAN, NULL, in->grad, out, NULL);
}
static int32_t job_logits(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_logits(o->tab, in->grad, 32, out);
}
static int32_t job_nearest(const tk_objs *o, const tk_inputs *in, float *out) {
    return tokemb_nearest_ids(o->tab, in->ids, 16, 5, TOKEMB_METRIC_COSINE, 1, (int64_t *)(void *)out,
                              out + 2 * 16 * 5);
}

static const tk_job k_jobs[] = {
    {"tokemb_lookup", job_lookup, (size_t)N *D, 0},
    {"tokemb_lookup_i32", job_lookup_i32, (size_t)N *D, 0},
    {"tokemb_lookup_strided", job_lookup_strided, (size_t)(N / 2) * (D + 3), 0},
    {"tokemb_lookup_onehot", job_onehot, (size_t)N *D, 1},
    {"tokemb_lookup_bags SUM", job_bags_sum, (size_t)NB *D, 0},
    {"tokemb_lookup_bags_i32 MEAN", job_bags_mean, (size_t)NB *D, 0},
    {"tokemb_lookup_bags MAX", job_bags_max, (size_t)NB *D, 0},
    {"tokemb_posenc_encode sinusoidal", job_encode_sin, (size_t)NTOK *D, 0},
    {"tokemb_posenc_encode learned", job_encode_learned, (size_t)NTOK *D, 0},
    {"tokemb_embed", job_embed, (size_t)N *D, 0},
    {"tokemb_rope_apply (YaRN)", job_rope, (size_t)NTOK *NH *HD, 0},
    {"tokemb_rope_apply_backward", job_rope_bwd, (size_t)NTOK *NH *HD, 0},
    {"tokemb_posenc_rope_apply_strided", job_rope_strided, (size_t)NTOK *NH *HD, 0},
    {"tokemb_posenc_attn_bias ALiBi", job_alibi, (size_t)12 * 16 * 40, 0},
    {"tokemb_posenc_attn_bias T5", job_t5, (size_t)NH * 16 * 40, 0},
    {"tokemb_grad_accumulate", job_grad, (size_t)R *D, 0},
    {"tokemb_grad_coalesce", job_coalesce, (size_t)N *D + 2 * N, 0},
    {"tokemb_lookup_bags_backward MEAN", job_bags_bwd, (size_t)R *D, 0},
    {"tokemb_logits", job_logits, (size_t)32 * R, 1},
    {"tokemb_nearest_ids", job_nearest, (size_t)3 * 16 * 5, 1},
};
enum { NJOBS = sizeof k_jobs / sizeof k_jobs[0] };

static float *g_ref[NJOBS][WORKERS];
static float *g_ref_train[WORKERS]; /* own-table writers: table after max_norm lookup + 2 Adam steps */
static tk_objs g_shared;
static int g_use_blas;
static atomic_int g_stop_knob;
static atomic_int g_mismatches;

static void tk_mismatch(int w, const char *what) {
    fprintf(stderr, "worker %d: %s differs from the single-threaded result\n", w, what);
    atomic_fetch_add(&g_mismatches, 1);
}

/* The private writer sequence: max_norm lookup (renormalises rows in place), then two SparseAdam steps;
 * returns the final table contents. */
static int32_t tk_train_sequence(tokemb_table *t, const tk_inputs *in, float *scratch, float *final_rows) {
    int32_t st;
    if ((st = tokemb_table_set_param_f64(t, TOKEMB_MAX_NORM, 4.0))) return st;
    if ((st = tokemb_lookup(t, in->ids, N, scratch))) return st;
    if ((st = tokemb_table_set_param_f64(t, TOKEMB_MAX_NORM, 0.0))) return st;
    if ((st = tokemb_optim_select(t, TOKEMB_OPTIM_SPARSE_ADAM))) return st;
    for (int s = 0; s < 2; s++)
        if ((st = tokemb_optim_step(t, in->ids, N, in->grad))) return st;
    return tokemb_table_read_rows(t, 0, R, final_rows);
}

typedef struct {
    int w;
    int shared;
} tk_worker_arg;

static size_t tk_max_out(void) {
    size_t m = (size_t)R * D;
    for (int j = 0; j < NJOBS; j++)
        if (k_jobs[j].out_floats > m) m = k_jobs[j].out_floats;
    return m;
}

static void *tk_worker(void *p) {
    const tk_worker_arg *a = (const tk_worker_arg *)p;
    const int w = a->w;
    const size_t maxf = tk_max_out();
    float *out = (float *)malloc(maxf * sizeof(float));
    float *scratch = (float *)malloc((size_t)N * D * sizeof(float));
    if (!out || !scratch) {
        atomic_fetch_add(&g_mismatches, 1);
        free(out);
        free(scratch);
        return NULL;
    }
    tk_objs own;
    memset(&own, 0, sizeof own);
    if (!a->shared) own = tk_objs_make();
    const tk_objs *o = a->shared ? &g_shared : &own;
    for (int it = 0; it < ITERS; it++) {
        for (int j = 0; j < NJOBS; j++) {
            if (k_jobs[j].blas && !g_use_blas) continue;
            tk_fill_sentinel(out, k_jobs[j].out_floats);
            if (k_jobs[j].fn(o, &g_in[w], out) != TOKEMB_OK ||
                memcmp(out, g_ref[j][w], k_jobs[j].out_floats * sizeof(float)) != 0)
                tk_mismatch(w, k_jobs[j].name);
        }
        /* an invalid call on the way: thread-local error text, nothing shared changes */
        int64_t bad = R + w;
        if (tokemb_lookup(o->tab, &bad, 1, out) != TOKEMB_OUT_OF_RANGE) tk_mismatch(w, "bad-id status");
        char want[32];
        snprintf(want, sizeof want, "token id %d ", R + w);
        if (!strstr(tokemb_last_error(), want)) tk_mismatch(w, "thread-local error text");
    }
    if (!a->shared) {
        /* writers on their own table */
        if (tk_train_sequence(own.tab, &g_in[w], scratch, out) != TOKEMB_OK ||
            memcmp(out, g_ref_train[w], (size_t)R * D * sizeof(float)) != 0)
            tk_mismatch(w, "max_norm lookup + SparseAdam steps on an own table");
        tk_objs_free(&own);
    }
    free(out);
    free(scratch);
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
    g_use_blas = getenv("TK_CONC_NO_BLAS") == NULL;
    if (getenv("TK_CONC_QUICK")) { /* valgrind serialises threads: one round with 2 library threads */
        ITERS = 1;
        NT_STEP = 0;
    }
    g_shared = tk_objs_make();
    uint64_t s = 42;
    TK_OK(tokemb_set_num_threads(1));
    for (int w = 0; w < WORKERS; w++) {
        tk_inputs *in = &g_in[w];
        for (int i = 0; i < N; i++) {
            in->ids[i] = (int64_t)(tk_rand(&s) % R);
            in->ids32[i] = (int32_t)in->ids[i];
        }
        in->offsets[0] = 0;
        for (int b = 1; b < NB; b++) in->offsets[b] = (int64_t)(tk_rand(&s) % (N + 1));
        in->offsets[NB] = N;
        for (int b = 1; b < NB; b++) /* insertion sort: CSR offsets are non-decreasing */
            for (int k = b; k > 1 && in->offsets[k - 1] > in->offsets[k]; k--) {
                int64_t tmp = in->offsets[k];
                in->offsets[k] = in->offsets[k - 1];
                in->offsets[k - 1] = tmp;
            }
        for (int i = 0; i < NTOK; i++) in->pos[i] = (int64_t)(tk_rand(&s) % MAXLEN);
        for (int i = 0; i < NTOK * NH * HD; i++) in->x[i] = (float)((int)(tk_rand(&s) % 2001) - 1000) / 256.0f;
        for (int i = 0; i < N * D; i++) in->grad[i] = (float)((int)(tk_rand(&s) % 2001) - 1000) / 512.0f;
        for (int j = 0; j < NJOBS; j++) {
            g_ref[j][w] = (float *)malloc(k_jobs[j].out_floats * sizeof(float));
            assert_non_null(g_ref[j][w]);
            if (k_jobs[j].blas && !g_use_blas) continue;
            tk_fill_sentinel(g_ref[j][w], k_jobs[j].out_floats);
            int32_t st = k_jobs[j].fn(&g_shared, in, g_ref[j][w]);
            if (st != TOKEMB_OK) fail_msg("%s (reference): %d %s", k_jobs[j].name, (int)st, tokemb_last_error());
        }
        tk_objs own = tk_objs_make();
        float *scratch = (float *)malloc((size_t)N * D * sizeof(float));
        g_ref_train[w] = (float *)malloc((size_t)R * D * sizeof(float));
        assert_non_null(scratch);
        assert_non_null(g_ref_train[w]);
        TK_OK(tk_train_sequence(own.tab, in, scratch, g_ref_train[w]));
        free(scratch);
        tk_objs_free(&own);
    }
}

static void tk_world_free(void) {
    for (int w = 0; w < WORKERS; w++) {
        for (int j = 0; j < NJOBS; j++) free(g_ref[j][w]);
        free(g_ref_train[w]);
    }
    tk_objs_free(&g_shared);
}

static void tk_run_workers(int with_knob) {
    pthread_t th[WORKERS], knob;
    tk_worker_arg args[WORKERS];
    atomic_store(&g_stop_knob, 0);
    if (with_knob) assert_int_equal(pthread_create(&knob, NULL, tk_knob, NULL), 0);
    for (int w = 0; w < WORKERS; w++) {
        args[w] = (tk_worker_arg){w, w % 3 != 2}; /* 4 shared readers, 2 with their own objects */
        assert_int_equal(pthread_create(&th[w], NULL, tk_worker, &args[w]), 0);
    }
    for (int w = 0; w < WORKERS; w++) assert_int_equal(pthread_join(th[w], NULL), 0);
    atomic_store(&g_stop_knob, 1);
    if (with_knob) assert_int_equal(pthread_join(knob, NULL), 0);
}

static uint64_t tk_shared_sum(void) {
    float *buf = (float *)malloc((size_t)MAXLEN * D * sizeof(float));
    assert_non_null(buf);
    TK_OK(tokemb_table_read_rows(g_shared.tab, 0, R, buf));
    uint64_t h = tk_checksum(buf, (size_t)R * D * sizeof(float));
    TK_OK(tokemb_table_read_rows(tokemb_posenc_table(g_shared.learned), 0, MAXLEN, buf));
    h ^= tk_checksum(buf, (size_t)MAXLEN * D * sizeof(float)) * 3;
    free(buf);
    return h;
}

static void test_shared_and_own_objects(void **state) {
    (void)state;
    tk_world_setup();
    const uint64_t shared_sum = tk_shared_sum();
    for (int32_t nt = NT_STEP ? 1 : 2; nt <= 4; nt += NT_STEP ? NT_STEP : 4) {
        TK_OK(tokemb_set_num_threads(nt));
        tk_run_workers(0);
        assert_int_equal(atomic_load(&g_mismatches), 0);
    }
    if (NT_STEP) tk_run_workers(1); /* thread count changing under the workers */
    assert_int_equal(atomic_load(&g_mismatches), 0);
    tk_backend_set(2); /* concurrent callers through a host hook that runs tasks on its own threads */
    TK_OK(tokemb_set_num_threads(3));
    tk_run_workers(0);
    tk_backend_set(0);
    assert_int_equal(atomic_load(&g_mismatches), 0);
    assert_true(tk_shared_sum() == shared_sum); /* the shared objects were only read */
    TK_OK(tokemb_set_num_threads(0));
    tk_world_free();
}

/* The library's own parallel loops alone (one caller): every thread count gives the same bits. */
static void test_internal_threads_bitwise(void **state) {
    (void)state;
    enum { BN = 36000 }; /* >= 16 chunks of 512 KiB of lookup output at 4 threads */
    tokemb_table *t = NULL;
    TK_OK(tokemb_table_create(R, D, TOKEMB_F32, &t));
    TK_OK(tokemb_table_init_normal(t, 77, 0.0, 1.0));
    int64_t *ids = (int64_t *)malloc(BN * sizeof(int64_t));
    float *ref = (float *)malloc((size_t)BN * D * sizeof(float));
    float *out = (float *)malloc((size_t)BN * D * sizeof(float));
    float *g = (float *)malloc((size_t)BN * D * sizeof(float));
    float *gref = (float *)calloc((size_t)R * D, sizeof(float));
    float *gout = (float *)malloc((size_t)R * D * sizeof(float));
    assert_non_null(ids);
    assert_non_null(ref);
    assert_non_null(out);
    assert_non_null(g);
    assert_non_null(gref);
    assert_non_null(gout);
    uint64_t s = 7;
    for (int i = 0; i < BN; i++) ids[i] = (int64_t)(tk_rand(&s) % R);
    for (size_t i = 0; i < (size_t)BN * D; i++) g[i] = (float)((int)(tk_rand(&s) % 2001) - 1000) / 1024.0f;
    TK_OK(tokemb_set_num_threads(1));
    TK_OK(tokemb_lookup(t, ids, BN, ref));
    TK_OK(tokemb_grad_accumulate(t, ids, BN, g, gref));
    for (int32_t c = 0; c < 3 * TK_BACKENDS; c++) { /* threads 2..4 under every backend */
        const int32_t nt = 2 + c % 3;
        tk_backend_set(c / 3);
        TK_OK(tokemb_set_num_threads(nt));
        tk_fill_sentinel(out, (size_t)BN * D);
        TK_OK(tokemb_lookup(t, ids, BN, out));
        assert_memory_equal(out, ref, (size_t)BN * D * sizeof(float));
        tk_fill_sentinel(out, (size_t)BN * D);
        TK_OK(tokemb_lookup_strided(t, ids, BN, out, D));
        assert_memory_equal(out, ref, (size_t)BN * D * sizeof(float));
        memset(gout, 0, (size_t)R * D * sizeof(float));
        TK_OK(tokemb_grad_accumulate(t, ids, BN, g, gout));
        assert_memory_equal(gout, gref, (size_t)R * D * sizeof(float));
    }
    tk_backend_set(0);
    assert_true(atomic_load(&tk_hook_tasks) > 0);
    TK_OK(tokemb_set_num_threads(0));
    free(ids);
    free(ref);
    free(out);
    free(g);
    free(gref);
    free(gout);
    tokemb_table_free(t);
}

/* Shared vocabulary: find / word / size from several threads at once. */
enum { VW = 2000 };
static tokemb_vocab *g_vocab;

static void *tk_vocab_reader(void *p) {
    const int w = (int)(intptr_t)p;
    for (int rep = 0; rep < 3; rep++)
        for (int i = 0; i < VW; i++) {
            const int k = (i * 7 + w * 13) % VW;
            char word[32];
            snprintf(word, sizeof word, "tok%d_%x", k, (unsigned)(k * 2654435761u));
            size_t len = 0;
            const char *got = tokemb_vocab_word(g_vocab, k, &len);
            if (tokemb_vocab_find(g_vocab, word, strlen(word)) != k || !got || strcmp(got, word) != 0 ||
                len != strlen(word) || tokemb_vocab_size(g_vocab) != VW) {
                atomic_fetch_add(&g_mismatches, 1);
                return NULL;
            }
        }
    return NULL;
}

static void test_shared_vocab_readers(void **state) {
    (void)state;
    TK_OK(tokemb_vocab_create(&g_vocab));
    for (int k = 0; k < VW; k++) {
        char word[32];
        snprintf(word, sizeof word, "tok%d_%x", k, (unsigned)(k * 2654435761u));
        int64_t id = -1;
        TK_OK(tokemb_vocab_add(g_vocab, word, strlen(word), &id));
        assert_int_equal(id, k);
    }
    pthread_t th[WORKERS];
    for (int w = 0; w < WORKERS; w++)
        assert_int_equal(pthread_create(&th[w], NULL, tk_vocab_reader, (void *)(intptr_t)w), 0);
    for (int w = 0; w < WORKERS; w++) assert_int_equal(pthread_join(th[w], NULL), 0);
    assert_int_equal(atomic_load(&g_mismatches), 0);
    tokemb_vocab_free(g_vocab);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_internal_threads_bitwise),
        cmocka_unit_test(test_shared_and_own_objects),
        cmocka_unit_test(test_shared_vocab_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
