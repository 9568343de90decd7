/* bench.c - tokemb-bench, the benchmark driver.
 *
 * Every figure is paired with an in-process memcpy of the same byte count: kernel and memcpy samples
 * alternate (order flipped every pair), and the reported "x memcpy" is the median over pairs of
 * t_memcpy / t_kernel, i.e. the kernel's rate as a fraction of the copy rate measured moments before
 * or after it on the same machine. Absolute times on a shared VM swing by 30-50 %, the paired ratio much
 * less. Medians after a warm-up; p10/p90 of the kernel time are in the CSV.
 *
 * The memcpy reference is the best copy this machine does: its buffers, like every output and input
 * buffer of the kernels (bench_alloc) and the library's own tables (tk_malloc), are 2 MiB aligned and
 * advised MADV_HUGEPAGE (transparent huge pages in "madvise" mode), so neither side pays 4 KiB page
 * walks the other does not (a 64 MiB memcpy on 4 KiB pages is ~1.2x slower, which would flatter every
 * "x memcpy" figure).
 *
 *   tokemb-bench [--quick] [--suite a,b,...] [--csv FILE] [--threads 1,2] [--reps N]
 *                [--vocab LIST] [--dim LIST] [--tokens LIST] [--ids uniform,zipf1.0,zipf1.1]
 *
 * Suites: lookup, gather-vs-matmul, bags, grad, optim, logits, rope, sinusoidal (--help lists them), and
 * mpi (bench_mpi.c: run alone under mpirun; only in builds with libtokemb_mpi). */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#define TOKEMB_EXPERIMENTAL /* TOKEMB_NONTEMPORAL */
#include <tokemb.h>

#include "bench_ids.h"
#include "bench_time.h"

/* ---- options ------------------------------------------------------------------------------------- */

#define MAXL 32
typedef struct {
    int n;
    long long v[MAXL];
} list_t;

static struct {
    int quick;
    int reps;
    double min_sample; /* seconds per timed sample (calls are batched up to this) */
    const char *csv;
    char suites[256];
    list_t threads, vocab, dim, tokens;
    char ids[128];
    int user_vocab, user_dim, user_tokens;
} opt;

static FILE *csv_out;
static size_t l2_bytes = 1u << 20, l3_bytes = 32u << 20;

static void die(const char *what) {
    fprintf(stderr, "tokemb-bench: %s\n", what);
    exit(2);
}

static void check(int32_t st, const char *what) {
    if (st != TOKEMB_OK) {
        fprintf(stderr, "tokemb-bench: %s failed: %s (%s)\n", what, tokemb_status_string(st), tokemb_last_error());
        exit(1);
    }
}

static list_t parse_list(const char *s) {
    list_t l = {0, {0}};
    l.n = parse_numbers(s, l.v, MAXL);
    return l;
}

static list_t mk_list(int n, const long long *v) {
    list_t l = {n, {0}};
    memcpy(l.v, v, (size_t)n * sizeof *v);
    return l;
}

static int suite_on(const char *name) { return !opt.suites[0] || in_list(opt.suites, name); }

static int ids_on(const char *name) { return in_list(opt.ids, name); }

static void read_cache_sizes(void) {
    for (int idx = 0; idx < 8; idx++) {
        char path[128], buf[64];
        int level = 0;
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", idx);
        FILE *f = fopen(path, "r");
        if (!f) break;
        if (fscanf(f, "%d", &level) != 1) level = 0;
        fclose(f);
        snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", idx);
        f = fopen(path, "r");
        if (!f) continue;
        if (fgets(buf, sizeof buf, f)) {
            size_t v = (size_t)strtoull(buf, NULL, 10);
            if (strchr(buf, 'K')) v <<= 10;
            if (strchr(buf, 'M')) v <<= 20;
            if (level == 2) l2_bytes = v;
            if (level == 3) l3_bytes = v;
        }
        fclose(f);
    }
}

/* ---- timing --------------------------------------------------------------------------------------- */

typedef void (*run_fn)(void *ctx);

typedef struct {
    double t, p10, p90; /* kernel seconds per call */
    double t_copy;      /* memcpy seconds for the same bytes */
    double frac;        /* median over pairs of t_copy / t_kernel */
} meas_t;

/* A benchmark buffer of `bytes`: 64-byte aligned; from 4 MiB on 2 MiB aligned and advised for
 * transparent huge pages (the library's tk_malloc does the same for its tables). free() releases it. */
static void *bench_alloc(size_t bytes) {
    const size_t huge = (size_t)2 << 20;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = NULL;
    if (rounded >= 2 * huge) {
        rounded = (rounded + huge - 1) & ~(huge - 1);
        if (posix_memalign(&p, huge, rounded) != 0) return NULL;
#ifdef MADV_HUGEPAGE
        (void)madvise(p, rounded, MADV_HUGEPAGE);
#endif
        return p;
    }
    return aligned_alloc(64, rounded ? rounded : 64);
}

static char *cp_src, *cp_dst;
static size_t cp_cap;

static void copy_buffers(size_t bytes) {
    if (bytes <= cp_cap) return;
    free(cp_src);
    free(cp_dst);
    cp_src = bench_alloc(bytes);
    cp_dst = bench_alloc(bytes);
    if (!cp_src || !cp_dst) die("out of memory for the memcpy buffers");
    memset(cp_src, 1, bytes);
    memset(cp_dst, 2, bytes);
    cp_cap = bytes;
}

static volatile char sink;

static double time_copy(size_t bytes, int k) {
    double t0 = now();
    for (int i = 0; i < k; i++) {
        memcpy(cp_dst, cp_src, bytes);
        __asm__ volatile("" ::: "memory");
    }
    double t = now() - t0;
    sink = cp_dst[bytes / 2];
    return t / k;
}

static double time_fn(run_fn f, void *ctx, int k) {
    double t0 = now();
    for (int i = 0; i < k; i++) f(ctx);
    return (now() - t0) / k;
}

/* Alternating kernel / memcpy pairs of `copy_bytes` (the kernel's read + write traffic counts as a copy
 * of copy_bytes: memcpy reads and writes that many bytes). */
static meas_t measure(run_fn f, void *ctx, size_t copy_bytes) {
    if (copy_bytes < 64) copy_bytes = 64;
    copy_buffers(copy_bytes);
    double t1 = time_fn(f, ctx, 1); /* warm-up and calibration */
    int k = t1 > 0 ? (int)(opt.min_sample / t1) : 1000;
    if (k < 1) k = 1;
    if (k > 100000) k = 100000;
    time_fn(f, ctx, k);
    time_copy(copy_bytes, k);
    int reps = opt.reps;
    double tk[64], tc[64], fr[64];
    if (reps > 64) reps = 64;
    for (int r = 0; r < reps; r++) {
        if (r & 1) {
            tc[r] = time_copy(copy_bytes, k);
            tk[r] = time_fn(f, ctx, k);
        } else {
            tk[r] = time_fn(f, ctx, k);
            tc[r] = time_copy(copy_bytes, k);
        }
        fr[r] = tc[r] / tk[r];
    }
    meas_t m;
    m.frac = quantile(fr, reps, 0.5);
    m.t_copy = quantile(tc, reps, 0.5);
    m.p10 = quantile(tk, reps, 0.1);
    m.p90 = quantile(tk, reps, 0.9);
    m.t = quantile(tk, reps, 0.5);
    return m;
}

/* Median over alternating pairs of t_ref / t_f: how many times less time f takes than ref, both run back
 * to back in each pair (steadier than dividing two separately measured medians on a noisy VM). */
static double paired_speedup(run_fn ref, void *rctx, run_fn f, void *fctx) {
    double t1 = time_fn(f, fctx, 1) + time_fn(ref, rctx, 1);
    int k = t1 > 0 ? (int)(opt.min_sample / t1) : 1000;
    if (k < 1) k = 1;
    if (k > 100000) k = 100000;
    int reps = opt.reps > 64 ? 64 : opt.reps;
    double fr[64];
    for (int r = 0; r < reps; r++) {
        double tr, tf;
        if (r & 1) {
            tf = time_fn(f, fctx, k);
            tr = time_fn(ref, rctx, k);
        } else {
            tr = time_fn(ref, rctx, k);
            tf = time_fn(f, fctx, k);
        }
        fr[r] = tr / tf;
    }
    return quantile(fr, reps, 0.5);
}

/* ---- results -------------------------------------------------------------------------------------- */

typedef struct {
    const char *suite, *op, *variant, *ids;
    long long vocab, dim, tokens;
    double uniq, table_mib;
    const char *fits;
    int threads;
    meas_t m;
    double bytes; /* counted traffic (read + written) */
    double flops; /* 0 if not meaningful */
    double ratio; /* suite-specific ratio (see header), NAN if none */
    const char *note;
} row_t;

static void emit(const row_t *r) {
    double per_tok = r->tokens > 0 ? r->m.t / (double)r->tokens * 1e9 : NAN;
    double gbs = r->bytes / r->m.t * 1e-9, cgbs = r->bytes / r->m.t_copy * 1e-9;
    double gfl = r->flops > 0 ? r->flops / r->m.t * 1e-9 : NAN;
    printf("%-16s %-14s %-9s %7lld %5lld %6lld %-8s %5.3f %9.2f %-4s %2d %12.1f %9.2f %7.2f %7.2f %6.3f", r->suite,
           r->op, r->variant, r->vocab, r->dim, r->tokens, r->ids, r->uniq, r->table_mib, r->fits, r->threads,
           r->m.t * 1e9, per_tok, gbs, cgbs, r->m.frac);
    if (!isnan(gfl)) printf(" %8.2f", gfl);
    else printf(" %8s", "-");
    if (!isnan(r->ratio)) printf(" %9.1f", r->ratio);
    else printf(" %9s", "-");
    printf(" %s\n", r->note ? r->note : "");
    fflush(stdout);
    if (csv_out) {
        fprintf(csv_out,
                "%s,%s,%s,%lld,%lld,%lld,%s,%.4f,%.3f,%s,%d,%.1f,%.1f,%.1f,%.3f,%.3f,%.3f,%.4f,%.3f,%.4g,\"%s\"\n",
                r->suite, r->op, r->variant, r->vocab, r->dim, r->tokens, r->ids, r->uniq, r->table_mib, r->fits,
                r->threads, r->m.t * 1e9, r->m.p10 * 1e9, r->m.p90 * 1e9, per_tok, gbs, cgbs, r->m.frac, gfl, r->ratio,
                r->note ? r->note : "");
        fflush(csv_out);
    }
}

static void header(void) {
    printf("%-16s %-14s %-9s %7s %5s %6s %-8s %5s %9s %-4s %2s %12s %9s %7s %7s %6s %8s %9s %s\n", "suite", "op",
           "variant", "vocab", "dim", "tokens", "ids", "uniq", "table_MiB", "fits", "th", "ns/call", "ns/token", "GB/s",
           "cpyGB/s", "xcopy", "GFLOP/s", "ratio", "note");
}

/* ---- data ----------------------------------------------------------------------------------------- */

static const char *fits(double bytes) {
    if (bytes <= (double)l2_bytes) return "L2";
    if (bytes <= (double)l3_bytes) return "L3";
    return "DRAM";
}

/* A created table filled with quick pseudo-random floats (init_normal's torch-exact MT19937 stream is
 * too slow for multi-GB tables and irrelevant to timing). */
static tokemb_table *make_table(int64_t V, int64_t D) {
    tokemb_table *t = NULL;
    check(tokemb_table_create(V, D, TOKEMB_F32, &t), "tokemb_table_create");
    float *w = tokemb_table_data(t);
    size_t n = (size_t)V * (size_t)D;
    for (size_t i = 0; i < n; i++) w[i] = (float)((int32_t)(rnd() >> 40) - (1 << 23)) * (1.0f / (1 << 23));
    return t;
}

static float *alloc_out(size_t floats) {
    float *p = bench_alloc((floats ? floats : 1) * sizeof(float));
    if (!p) die("out of memory for an output buffer");
    memset(p, 0, floats * sizeof(float));
    return p;
}

/* ---- compact storage cases (lookup and bags suites) ------------------------------------------------ */

/* One row per compact dtype F16, BF16, Q8_ROW (bit 0, 1, 2 of `which`, named names[0..2]), each from `r`
 * (the F32 case's row): *slot, the table field of the run context `ctx`, is pointed at t converted to that
 * dtype and `f` is measured on ctx; bytes = n_rows stored rows read + out_bytes of float32 written. With
 * f32ctx (the same context on the F32 table), ratio = F32 time / compact time, measured in alternating
 * pairs. Each converted table is freed after its row. */
static void compact_rows(const row_t *r, tokemb_table *t, unsigned which, const char *const names[3], run_fn f,
                         void *ctx, tokemb_table **slot, void *f32ctx, double n_rows, double out_bytes,
                         const char *note) {
    static const int32_t dts[] = {TOKEMB_F16, TOKEMB_BF16, TOKEMB_Q8_ROW};
    const double V = (double)tokemb_table_rows(t), D = (double)tokemb_table_dim(t);
    for (int q = 0; q < 3; q++) {
        if (!(which >> q & 1u)) continue;
        row_t rq = *r;
        check(tokemb_table_convert(t, dts[q], slot), "tokemb_table_convert");
        const double row_bytes = q == 2 ? D + 8 : 2.0 * D;
        rq.table_mib = V * row_bytes / 1048576.0;
        rq.fits = fits(V * row_bytes);
        rq.variant = names[q];
        rq.bytes = n_rows * row_bytes + out_bytes;
        rq.m = measure(f, ctx, (size_t)(rq.bytes / 2));
        if (f32ctx) rq.ratio = paired_speedup(f, f32ctx, f, ctx);
        rq.note = note;
        emit(&rq);
        tokemb_table_free(*slot);
        *slot = NULL;
    }
}

/* ---- suite: lookup --------------------------------------------------------------------------------- */

typedef struct {
    tokemb_table *t;
    const int64_t *ids;
    const int32_t *ids32;
    size_t n, dim;
    const float *w;
    float *out;
} lk_ctx;

static void run_lookup(void *p) {
    lk_ctx *c = p;
    check(tokemb_lookup(c->t, c->ids, c->n, c->out), "tokemb_lookup");
}
static void run_lookup_i32(void *p) {
    lk_ctx *c = p;
    check(tokemb_lookup_i32(c->t, c->ids32, c->n, c->out), "tokemb_lookup_i32");
}
/* the naive peer: one memcpy per row, no prefetch, no threads */
static void run_naive(void *p) {
    lk_ctx *c = p;
    for (size_t i = 0; i < c->n; i++)
        memcpy(c->out + i * c->dim, c->w + (size_t)c->ids[i] * c->dim, c->dim * sizeof(float));
}
static void run_onehot(void *p) {
    lk_ctx *c = p;
    check(tokemb_lookup_onehot(c->t, c->ids, c->n, c->out), "tokemb_lookup_onehot");
}

#define HAVE_NT 1 /* TOKEMB_NONTEMPORAL */

static const char *ID_DISTS[] = {"uniform", "zipf1.0", "zipf1.1"};

static size_t lookup_tokens(long long D) {
    size_t target = opt.quick ? (16u << 20) : (64u << 20); /* output bytes per call */
    size_t n = target / ((size_t)D * 4);
    if (n < 256) n = 256;
    if (n > 65536) n = 65536;
    return n;
}

static void suite_lookup(void) {
    static const long long dq[] = {4, 16, 64, 256, 1024},
                           df[] = {3, 4, 8, 16, 32, 64, 100, 128, 256, 512, 1024, 2048, 4096};
    list_t vocab = opt.user_vocab ? opt.vocab : mk_list(1, (long long[]){128256});
    list_t dims = opt.user_dim ? opt.dim : (opt.quick ? mk_list(5, dq) : mk_list(13, df));
    for (int vi = 0; vi < vocab.n; vi++)
        for (int di = 0; di < dims.n; di++) {
            int64_t V = vocab.v[vi], D = dims.v[di];
            if ((double)V * (double)D * 4 > 4.5e9) continue;
            tokemb_table *t = make_table(V, D);
            double tmib = (double)V * (double)D * 4 / 1048576.0;
            list_t toks = opt.user_tokens ? opt.tokens : mk_list(1, (long long[]){(long long)lookup_tokens(D)});
            for (int ti = 0; ti < toks.n; ti++) {
                size_t n = (size_t)toks.v[ti];
                int64_t *ids = malloc(n * sizeof *ids);
                int32_t *ids32 = malloc(n * sizeof *ids32);
                float *out = alloc_out(n * (size_t)D);
                if (!ids || !ids32) die("out of memory");
                for (int k = 0; k < 3; k++) {
                    const char *dist = ID_DISTS[k];
                    if (!ids_on(dist)) continue;
                    make_ids(ids, n, V, dist);
                    for (size_t i = 0; i < n; i++) ids32[i] = (int32_t)ids[i];
                    double uq = unique_frac(ids, n, V);
                    lk_ctx c = {t, ids, ids32, n, (size_t)D, tokemb_table_data(t), out};
                    size_t bytes = n * (size_t)D * 4;
                    for (int th = 0; th < opt.threads.n; th++) {
                        int nth = (int)opt.threads.v[th];
                        check(tokemb_set_num_threads(nth), "set_num_threads");
                        row_t r = {"lookup",
                                   "lookup",
                                   "i64",
                                   dist,
                                   V,
                                   D,
                                   (long long)n,
                                   uq,
                                   tmib,
                                   fits(tmib * 1048576.0),
                                   nth,
                                   measure(run_lookup, &c, bytes),
                                   2.0 * (double)bytes,
                                   0,
                                   NAN,
                                   NULL};
                        emit(&r);
                        if (k == 0 || !opt.quick) {
                            r.variant = "i32";
                            r.m = measure(run_lookup_i32, &c, bytes);
                            emit(&r);
#if HAVE_NT
                            check(tokemb_table_set_param(t, TOKEMB_NONTEMPORAL, 1), "set NONTEMPORAL");
                            r.variant = "nt";
                            r.m = measure(run_lookup, &c, bytes);
                            emit(&r);
                            check(tokemb_table_set_param(t, TOKEMB_NONTEMPORAL, 0), "set NONTEMPORAL");
                            r.variant = "cached";
                            r.m = measure(run_lookup, &c, bytes);
                            emit(&r);
                            check(tokemb_table_set_param(t, TOKEMB_NONTEMPORAL, 2), "reset NONTEMPORAL");
#endif
                            if (nth == 1 && k == 0) { /* compact storage: decoded on the fly (kernels/gather_dtype.c) */
                                static const char *const dtn[] = {"f16", "bf16", "q8_row"};
                                lk_ctx cq = c;
                                compact_rows(&r, t, opt.quick ? 4u : 7u, dtn, run_lookup, &cq, &cq.t, NULL, (double)n,
                                             4.0 * (double)n * (double)D, "bytes = compressed rows read + f32 written");
                            }
                            if (nth == 1) {
                                r.variant = "naive";
                                r.op = "memcpy-loop";
                                r.m = measure(run_naive, &c, bytes);
                                r.note = "peer: memcpy per row";
                                emit(&r);
                            }
                        }
                    }
                }
                free(ids);
                free(ids32);
                free(out);
            }
            tokemb_table_free(t);
        }
    check(tokemb_set_num_threads(0), "set_num_threads");
}

/* ---- suite: gather-vs-matmul ------------------------------------------------------------------------ */

typedef struct {
    int m, n, k;
    const float *a, *b;
    float *c;
} gemm_ctx;

static void run_plain_sgemm(void *p) {
    gemm_ctx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, g->m, g->n, g->k, 1.0f, g->a, g->k, g->b, g->n, 0.0f, g->c,
                g->n);
}

static void suite_gvm(void) {
    static const long long vq[] = {2, 16, 512, 32000, 128256}, vf[] = {2, 16, 512, 4096, 32000, 50257, 128256, 256000};
    static const long long dq[] = {3, 64, 1024}, df[] = {3, 64, 256, 1024, 4096};
    static const long long nq[] = {1, 256, 4096}, nf[] = {1, 16, 256, 4096, 65536};
    list_t vocab = opt.user_vocab ? opt.vocab : (opt.quick ? mk_list(5, vq) : mk_list(8, vf));
    list_t dims = opt.user_dim ? opt.dim : (opt.quick ? mk_list(3, dq) : mk_list(5, df));
    list_t toks = opt.user_tokens ? opt.tokens : (opt.quick ? mk_list(3, nq) : mk_list(5, nf));
    double budget = opt.quick ? 0.02 : 0.5; /* max predicted seconds per sgemm call */
    double gflops_guess = 80e9;
    for (int vi = 0; vi < vocab.n; vi++)
        for (int di = 0; di < dims.n; di++) {
            int64_t V = vocab.v[vi], D = dims.v[di];
            if ((double)V * (double)D * 4 > 2.2e9) continue;
            tokemb_table *t = make_table(V, D);
            double tmib = (double)V * (double)D * 4 / 1048576.0;
            for (int ti = 0; ti < toks.n; ti++) {
                size_t n = (size_t)toks.v[ti];
                int64_t *ids = malloc(n * sizeof *ids);
                float *out = alloc_out(n * (size_t)D);
                if (!ids) die("out of memory");
                make_ids(ids, n, V, "uniform");
                double uq = unique_frac(ids, n, V);
                lk_ctx c = {t, ids, NULL, n, (size_t)D, tokemb_table_data(t), out};
                size_t bytes = n * (size_t)D * 4;
                for (int th = 0; th < opt.threads.n; th++) {
                    int nth = (int)opt.threads.v[th];
                    check(tokemb_set_num_threads(nth), "set_num_threads");
                    openblas_set_num_threads(nth);
                    double flops = 2.0 * (double)n * (double)V * (double)D;
                    row_t g = {"gather-vs-matmul",
                               "gather",
                               "lookup",
                               "uniform",
                               V,
                               D,
                               (long long)n,
                               uq,
                               tmib,
                               fits(tmib * 1048576.0),
                               nth,
                               measure(run_lookup, &c, bytes),
                               2.0 * (double)bytes,
                               flops,
                               NAN,
                               NULL};
                    emit(&g);
                    char note[96];
                    if (flops / gflops_guess > budget) {
                        snprintf(note, sizeof note, "sgemm skipped (~%.1f s/call predicted); V/20=%.0f",
                                 flops / gflops_guess, (double)V / 20);
                        row_t s = g;
                        s.op = "onehot-sgemm";
                        s.variant = "skipped";
                        s.m.t = flops / gflops_guess;
                        s.m.frac = g.m.t_copy / s.m.t;
                        s.ratio = s.m.t / g.m.t;
                        s.note = note;
                        emit(&s);
                        continue;
                    }
                    row_t s = g;
                    s.op = "onehot-sgemm";
                    s.variant = "chunked";
                    s.m = measure(run_onehot, &c, bytes);
                    s.ratio = s.m.t / g.m.t;
                    snprintf(note, sizeof note, "ratio = onehot/gather time; V/20=%.0f", (double)V / 20);
                    s.note = note;
                    emit(&s);
                    if (s.m.t > 1e-6) gflops_guess = 0.5 * gflops_guess + 0.5 * flops / s.m.t;
                    /* a plain sgemm of the same [n x V] x [V x D] shape, dense A */
                    if ((double)n * (double)V * 4 < 512e6) {
                        float *a = alloc_out(n * (size_t)V);
                        for (size_t i = 0; i < n * (size_t)V; i++) a[i] = (float)(i % 7) * 0.125f;
                        gemm_ctx gc = {(int)n, (int)D, (int)V, a, tokemb_table_data(t), out};
                        row_t p = g;
                        p.op = "plain-sgemm";
                        p.variant = "dense";
                        p.m = measure(run_plain_sgemm, &gc, bytes);
                        p.ratio = p.m.t / s.m.t;
                        p.note = "ratio = plain/onehot time (onehot efficiency)";
                        emit(&p);
                        free(a);
                    }
                }
                free(ids);
                free(out);
            }
            tokemb_table_free(t);
        }
    check(tokemb_set_num_threads(0), "set_num_threads");
}

/* ---- suites: bags, grad, optim, logits (the training API) ------------------------------------------- */

typedef struct {
    tokemb_table *t;
    const int64_t *ids;
    size_t n, nb, dim;
    const int64_t *offsets;
    int32_t mode;
    const float *psw, *grad;
    float *out, *rows;
    int64_t *uids;
    size_t nu;
} tr_ctx;

static void run_bags(void *p) {
    tr_ctx *c = p;
    check(tokemb_lookup_bags(c->t, c->ids, c->n, c->offsets, c->nb, c->mode, c->psw, c->out), "tokemb_lookup_bags");
}
static void run_coalesce(void *p) {
    tr_ctx *c = p;
    check(tokemb_grad_coalesce(c->t, c->ids, c->n, c->grad, c->uids, c->rows, &c->nu), "tokemb_grad_coalesce");
}
static void run_accumulate(void *p) {
    tr_ctx *c = p;
    check(tokemb_grad_accumulate(c->t, c->ids, c->n, c->grad, c->out), "tokemb_grad_accumulate");
}
static void run_optim(void *p) {
    tr_ctx *c = p;
    check(tokemb_optim_step(c->t, c->ids, c->n, c->grad), "tokemb_optim_step");
}
static void run_logits(void *p) {
    tr_ctx *c = p;
    check(tokemb_logits(c->t, c->grad, c->n, c->out), "tokemb_logits");
}

static list_t dims_or(int nq, const long long *q, int nf, const long long *f) {
    return opt.user_dim ? opt.dim : (opt.quick ? mk_list(nq, q) : mk_list(nf, f));
}

static void suite_bags(void) {
    static const long long dq[] = {16, 64, 256}, df[] = {4, 16, 64, 128, 256, 1024, 4096};
    list_t dims = dims_or(3, dq, 7, df);
    int64_t V = opt.user_vocab ? opt.vocab.v[0] : 128256;
    static const long long lens[] = {1, 20, 100};
    for (int di = 0; di < dims.n; di++) {
        int64_t D = dims.v[di];
        tokemb_table *t = make_table(V, D);
        double tmib = (double)V * (double)D * 4 / 1048576.0;
        for (int li = 0; li < 3; li++) {
            long long L = lens[li];
            if (opt.quick && L != 20) continue;
            size_t n = opt.user_tokens ? (size_t)opt.tokens.v[0] : lookup_tokens(D), nb = n / (size_t)L;
            n = nb * (size_t)L;
            int64_t *ids = malloc(n * sizeof *ids), *offs = malloc((nb + 1) * sizeof *offs);
            float *out = alloc_out(nb * (size_t)D), *psw = alloc_out(n);
            if (!ids || !offs) die("out of memory");
            for (size_t b = 0; b <= nb; b++) offs[b] = (int64_t)(b * (size_t)L);
            for (size_t i = 0; i < n; i++) psw[i] = 0.5f + (float)(i % 3);
            for (int k = 0; k < 3; k++) {
                const char *dist = ID_DISTS[k];
                if (!ids_on(dist)) continue;
                make_ids(ids, n, V, dist);
                double uq = unique_frac(ids, n, V);
                for (int th = 0; th < opt.threads.n; th++) {
                    int nth = (int)opt.threads.v[th];
                    check(tokemb_set_num_threads(nth), "set_num_threads");
                    static const char *mnames[] = {"sum", "mean", "max", "sum+w"};
                    for (int m = 0; m < 4; m++) {
                        if (opt.quick && m != 0) continue;
                        tr_ctx c = {t,    ids, n,    nb,   (size_t)D, offs, m == 3 ? 0 : m, m == 3 ? psw : NULL,
                                    NULL, out, NULL, NULL, 0};
                        double traffic = (double)(n + nb) * (double)D * 4;
                        char note[64];
                        snprintf(note, sizeof note, "L=%lld, ns/token = per lookup", L);
                        row_t r = {"bags",
                                   "lookup_bags",
                                   mnames[m],
                                   dist,
                                   V,
                                   D,
                                   (long long)n,
                                   uq,
                                   tmib,
                                   fits(tmib * 1048576.0),
                                   nth,
                                   measure(run_bags, &c, (size_t)(traffic / 2)),
                                   traffic,
                                   0,
                                   NAN,
                                   note};
                        emit(&r);
                        if (m == 0 && nth == 1 && k == 0) { /* compact storage, pooled: FBGEMM's int8/fp16 figure */
                            static const char *const dtn[] = {"sum-f16", "sum-bf16", "sum-q8row"};
                            tr_ctx cq = c;
                            compact_rows(
                                &r, t, opt.quick ? 5u : 7u, dtn, run_bags, &cq, &cq.t, &c, (double)n,
                                (double)nb * (double)D * 4,
                                "ratio = f32 sum time / this time (paired); bytes = compressed rows + f32 out");
                        }
                    }
                }
            }
            free(ids);
            free(offs);
            free(out);
            free(psw);
        }
        tokemb_table_free(t);
    }
    check(tokemb_set_num_threads(0), "set_num_threads");
}

static void suite_grad(void) {
    static const long long dq[] = {16, 256, 4096}, df[] = {4, 16, 64, 256, 1024, 4096};
    list_t dims = dims_or(3, dq, 6, df);
    int64_t V = opt.user_vocab ? opt.vocab.v[0] : 128256;
    for (int di = 0; di < dims.n; di++) {
        int64_t D = dims.v[di];
        tokemb_table *t = NULL;
        check(tokemb_table_create(V, D, TOKEMB_F32, &t), "tokemb_table_create"); /* shape only */
        double tmib = (double)V * (double)D * 4 / 1048576.0;
        size_t n = opt.user_tokens ? (size_t)opt.tokens.v[0] : 2048;
        int64_t *ids = malloc(n * sizeof *ids), *uids = malloc(n * sizeof *uids);
        float *grad = alloc_out(n * (size_t)D), *rows = alloc_out(n * (size_t)D);
        for (size_t i = 0; i < n * (size_t)D; i++) grad[i] = (float)(i % 13) * 0.25f - 1.0f;
        /* the dense gradient buffer the caller owns (zeroed once, as a training loop would reuse it) */
        float *dense = (double)V * (double)D * 4 <= 2.2e9 ? alloc_out((size_t)V * (size_t)D) : NULL;
        if (!ids || !uids) die("out of memory");
        for (int k = 0; k < 3; k++) {
            const char *dist = ID_DISTS[k];
            if (!ids_on(dist)) continue;
            make_ids(ids, n, V, dist);
            double uq = unique_frac(ids, n, V), u = uq * (double)n;
            for (int th = 0; th < opt.threads.n; th++) {
                int nth = (int)opt.threads.v[th];
                check(tokemb_set_num_threads(nth), "set_num_threads");
                tr_ctx c = {t, ids, n, 0, (size_t)D, NULL, 0, NULL, grad, dense, rows, uids, 0};
                double traffic = ((double)n + u) * (double)D * 4;
                row_t r = {"grad",
                           "grad_coalesce",
                           "sparse",
                           dist,
                           V,
                           D,
                           (long long)n,
                           uq,
                           tmib,
                           fits(tmib * 1048576.0),
                           nth,
                           measure(run_coalesce, &c, (size_t)(traffic / 2)),
                           traffic,
                           0,
                           NAN,
                           "rows out = unique ids only"};
                emit(&r);
                if (dense) {
                    traffic = ((double)n + 2 * u) * (double)D * 4;
                    r.op = "grad_accumulate";
                    r.variant = "dense+=";
                    r.m = measure(run_accumulate, &c, (size_t)(traffic / 2));
                    r.bytes = traffic;
                    r.note = "into a caller-owned dense buffer (no VxD zeroing)";
                    emit(&r);
                }
            }
        }
        free(ids);
        free(uids);
        free(grad);
        free(rows);
        free(dense);
        tokemb_table_free(t);
    }
    check(tokemb_set_num_threads(0), "set_num_threads");
}

static void suite_optim(void) {
    static const long long dq[] = {64, 1024}, df[] = {16, 64, 256, 1024, 4096};
    list_t dims = dims_or(2, dq, 5, df);
    int64_t V = opt.user_vocab ? opt.vocab.v[0] : 128256;
    static const char *kinds[] = {"sgd", "rowwise_adagrad", "adagrad", "sparse_adam"};
    for (int di = 0; di < dims.n; di++) {
        int64_t D = dims.v[di];
        if ((double)V * (double)D * 4 * 3 > 4.5e9) continue;
        tokemb_table *t = make_table(V, D);
        double tmib = (double)V * (double)D * 4 / 1048576.0;
        size_t n = opt.user_tokens ? (size_t)opt.tokens.v[0] : 2048;
        int64_t *ids = malloc(n * sizeof *ids);
        float *grad = alloc_out(n * (size_t)D);
        for (size_t i = 0; i < n * (size_t)D; i++) grad[i] = (float)(i % 13) * 1e-3f;
        if (!ids) die("out of memory");
        make_ids(ids, n, V, "zipf1.1");
        double uq = unique_frac(ids, n, V), u = uq * (double)n;
        for (int kind = 0; kind < 4; kind++) {
            if (opt.quick && kind == 2) continue;
            check(tokemb_optim_select(t, kind), "tokemb_optim_select");
            /* state rows read and written per unique row: sgd 0, rowwise 1 float, adagrad D, adam 2D */
            double state = kind == 0 ? 0 : kind == 1 ? 4.0 / (double)D : kind == 2 ? 1 : 2;
            for (int th = 0; th < opt.threads.n; th++) {
                int nth = (int)opt.threads.v[th];
                check(tokemb_set_num_threads(nth), "set_num_threads");
                tr_ctx c = {t, ids, n, 0, (size_t)D, NULL, 0, NULL, grad, NULL, NULL, NULL, 0};
                double traffic = ((double)n + 2 * u * (1 + state)) * (double)D * 4;
                row_t r = {"optim",
                           "optim_step",
                           kinds[kind],
                           "zipf1.1",
                           V,
                           D,
                           (long long)n,
                           uq,
                           tmib,
                           fits(tmib * 1048576.0),
                           nth,
                           measure(run_optim, &c, (size_t)(traffic / 2)),
                           traffic,
                           0,
                           NAN,
                           "fused coalesce + update of unique rows"};
                emit(&r);
            }
        }
        free(ids);
        free(grad);
        tokemb_table_free(t);
    }
    check(tokemb_set_num_threads(0), "set_num_threads");
}

static void suite_logits(void) {
    static const long long dq[] = {256}, df[] = {256, 1024, 4096};
    list_t dims = dims_or(1, dq, 3, df);
    int64_t V = opt.user_vocab ? opt.vocab.v[0] : 32000;
    for (int di = 0; di < dims.n; di++) {
        int64_t D = dims.v[di];
        tokemb_table *t = make_table(V, D);
        double tmib = (double)V * (double)D * 4 / 1048576.0;
        size_t n = opt.user_tokens ? (size_t)opt.tokens.v[0] : (opt.quick ? 16 : 128);
        float *hidden = alloc_out(n * (size_t)D), *logits = alloc_out(n * (size_t)V);
        for (size_t i = 0; i < n * (size_t)D; i++) hidden[i] = (float)(i % 5) * 0.1f;
        for (int th = 0; th < opt.threads.n; th++) {
            int nth = (int)opt.threads.v[th];
            check(tokemb_set_num_threads(nth), "set_num_threads");
            openblas_set_num_threads(nth);
            tr_ctx c = {t, NULL, n, 0, (size_t)D, NULL, 0, NULL, hidden, logits, NULL, NULL, 0};
            double traffic = ((double)V * (double)D + (double)n * (double)V) * 4;
            row_t r = {"logits",
                       "logits",
                       "sgemm",
                       "-",
                       V,
                       D,
                       (long long)n,
                       NAN,
                       tmib,
                       fits(tmib * 1048576.0),
                       nth,
                       measure(run_logits, &c, (size_t)(traffic / 2)),
                       traffic,
                       2.0 * (double)n * (double)V * (double)D,
                       NAN,
                       "hidden x W^T (tied head)"};
            emit(&r);
        }
        free(hidden);
        free(logits);
        tokemb_table_free(t);
    }
    check(tokemb_set_num_threads(0), "set_num_threads");
}

/* ---- suites: rope, sinusoidal (positional encoders) --------------------------------------------------- */

typedef struct {
    tokemb_posenc *pe;
    float *x;
    size_t n, heads;
    const int64_t *pos;
    int backward;
} pe_ctx;

static void run_rope(void *p) {
    pe_ctx *c = p;
    if (c->backward)
        check(tokemb_rope_apply_backward(c->pe, c->x, c->n, c->heads, c->pos), "tokemb_rope_apply_backward");
    else check(tokemb_rope_apply(c->pe, c->x, c->n, c->heads, c->pos), "tokemb_rope_apply");
}
static void run_encode(void *p) {
    pe_ctx *c = p;
    check(tokemb_posenc_encode(c->pe, c->pos, c->n, c->x), "tokemb_posenc_encode");
}

static void suite_rope(void) {
    static const long long tq[] = {2048}, tf[] = {1, 16, 256, 2048, 8192};
    list_t toks = opt.user_tokens ? opt.tokens : (opt.quick ? mk_list(1, tq) : mk_list(5, tf));
    const size_t heads = 32, hd = 128;
    static const char *lname[] = {"neox", "gptj"};
    for (int layout = 0; layout < 2; layout++) {
        tokemb_posenc *pe = NULL;
        check(tokemb_posenc_create_rope((int64_t)hd, (int64_t)hd, 10000.0, layout, &pe), "tokemb_posenc_create_rope");
        for (int ti = 0; ti < toks.n; ti++) {
            size_t n = (size_t)toks.v[ti];
            float *x = alloc_out(n * heads * hd);
            int64_t *pos = malloc(n * sizeof *pos);
            if (!pos) die("out of memory");
            for (size_t i = 0; i < n * heads * hd; i++) x[i] = (float)(i % 17) * 0.0625f - 0.5f;
            for (size_t i = 0; i < n; i++) pos[i] = (int64_t)i;
            for (int th = 0; th < opt.threads.n; th++) {
                int nth = (int)opt.threads.v[th];
                check(tokemb_set_num_threads(nth), "set_num_threads");
                for (int bw = 0; bw < 2; bw++) {
                    if (opt.quick && bw) continue;
                    pe_ctx c = {pe, x, n, heads, pos, bw};
                    double traffic = 2.0 * (double)n * heads * hd * 4; /* in place: read + write */
                    char note[64];
                    snprintf(note, sizeof note, "[%zu tok, %zu heads, %zu]; ns/token per token", n, heads, hd);
                    row_t r = {"rope",
                               bw ? "rope_backward" : "rope_apply",
                               lname[layout],
                               "pos0..n",
                               0,
                               (long long)hd,
                               (long long)n,
                               NAN,
                               0,
                               "-",
                               nth,
                               measure(run_rope, &c, (size_t)(traffic / 2)),
                               traffic,
                               0,
                               NAN,
                               note};
                    emit(&r);
                }
            }
            free(x);
            free(pos);
        }
        tokemb_posenc_free(pe);
    }
    check(tokemb_set_num_threads(0), "set_num_threads");
}

static void suite_sinusoidal(void) {
    static const long long dq[] = {512}, df[] = {64, 512, 1024, 4096};
    list_t dims = dims_or(1, dq, 4, df);
    static const char *lname[] = {"interleaved", "concat", "concat_t2t"};
    const size_t n = opt.user_tokens ? (size_t)opt.tokens.v[0] : 2048;
    for (int di = 0; di < dims.n; di++) {
        int64_t D = dims.v[di];
        for (int layout = 0; layout < 3; layout++) {
            if (opt.quick && layout) continue;
            tokemb_posenc *pe = NULL;
            check(tokemb_posenc_create_sinusoidal(D, 10000.0, layout, &pe), "tokemb_posenc_create_sinusoidal");
            float *out = alloc_out(n * (size_t)D);
            int64_t *pos = malloc(n * sizeof *pos);
            if (!pos) die("out of memory");
            for (size_t i = 0; i < n; i++) pos[i] = (int64_t)i;
            for (int th = 0; th < opt.threads.n; th++) {
                int nth = (int)opt.threads.v[th];
                check(tokemb_set_num_threads(nth), "set_num_threads");
                pe_ctx c = {pe, out, n, 0, pos, 0};
                double traffic = (double)n * (double)D * 4; /* write only */
                row_t r = {"sinusoidal",
                           "posenc_encode",
                           lname[layout],
                           "pos0..n",
                           0,
                           D,
                           (long long)n,
                           NAN,
                           0,
                           "-",
                           nth,
                           measure(run_encode, &c, (size_t)(traffic / 2)),
                           traffic,
                           0,
                           NAN,
                           "computed per call (no table); xcopy vs a copy of half the output bytes"};
                emit(&r);
            }
            free(out);
            free(pos);
            tokemb_posenc_free(pe);
        }
    }
    check(tokemb_set_num_threads(0), "set_num_threads");
}

/* ---- main ------------------------------------------------------------------------------------------ */

typedef struct {
    const char *name;
    void (*fn)(void);
    const char *what;
} suite_t;

static const suite_t SUITES[] = {
    {"lookup", suite_lookup,
     "tokemb_lookup: i64 and i32 ids (default NONTEMPORAL = auto), nt (always), cached\n"
     "                     (never), f16/bf16/q8_row storage, vs a memcpy-per-row loop"},
    {"gather-vs-matmul", suite_gvm, "gather vs one-hot sgemm vs plain sgemm; vocab x dim x tokens"},
    {"bags", suite_bags, "tokemb_lookup_bags sum/mean/max/weighted, L = 1, 20, 100"},
    {"grad", suite_grad, "tokemb_grad_coalesce (sparse) and tokemb_grad_accumulate (dense +=), N = 2048"},
    {"optim", suite_optim, "tokemb_optim_step: sgd, row-wise adagrad, adagrad, sparse adam, N = 2048 zipf1.1"},
    {"logits", suite_logits, "tokemb_logits (tied head sgemm), GFLOP/s"},
    {"rope", suite_rope, "tokemb_rope_apply / _backward, [tokens, 32 heads, 128], NEOX and GPTJ"},
    {"sinusoidal", suite_sinusoidal, "tokemb_posenc_encode of sinusoidal encoders, 2048 positions"},
};

static void usage(void) {
    printf("usage: tokemb-bench [--quick] [--suite a,b] [--csv FILE] [--threads 1,2] [--reps N]\n"
           "                    [--vocab LIST] [--dim LIST] [--tokens LIST] [--ids uniform,zipf1.0,zipf1.1]\n"
           "suites:\n");
    for (size_t i = 0; i < sizeof SUITES / sizeof SUITES[0]; i++)
        printf("  %-18s %s\n", SUITES[i].name, SUITES[i].what);
    printf("  %-18s %s\n", "mpi",
           "libtokemb_mpi's sharded lookup/bags/grad/optim under mpirun, alone: mpirun -np P --oversubscribe\n"
           "                     tokemb-bench --suite mpi [--quick] [--reps N] [--rows L --dim L --tokens L] [--ops ..]"
#ifndef TOKEMB_BENCH_MPI
           " (not in this build: no MPI)"
#endif
    );
}

#ifdef TOKEMB_BENCH_MPI
int bench_mpi_main(int argc, char **argv); /* bench_mpi.c */
#endif

/* The mpi suite runs alone, under mpirun, in its own module (bench_mpi.c, linked only when
 * libtokemb_mpi is built): 0 if `--suite` does not name it, else the exit status. */
static int mpi_suite(int argc, char **argv) {
    int named = 0, alone = 1;
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], "--suite") == 0) {
            char buf[256];
            snprintf(buf, sizeof buf, "%s", argv[i + 1]);
            char *save = NULL;
            for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
                if (strcmp(tok, "mpi") == 0) named = 1;
                else alone = 0;
        }
    if (!named) return -1;
    if (!alone) {
        fprintf(stderr, "tokemb-bench: the mpi suite runs alone, under mpirun: tokemb-bench --suite mpi\n");
        return 2;
    }
#ifdef TOKEMB_BENCH_MPI
    return bench_mpi_main(argc, argv);
#else
    fprintf(stderr, "tokemb-bench: this build has no MPI (libtokemb_mpi was not built): configure with "
                    "-DTOKEMB_MPI=ON and an MPI installed (Debian: libopenmpi-dev openmpi-bin) for --suite mpi\n");
    return 2;
#endif
}

int main(int argc, char **argv) {
    int mpi_status = mpi_suite(argc, argv);
    if (mpi_status >= 0) return mpi_status;
    opt.reps = 0;
    opt.csv = "tokemb-bench.csv";
    opt.threads = mk_list(2, (long long[]){1, 2});
    snprintf(opt.ids, sizeof opt.ids, "uniform,zipf1.0,zipf1.1");
    int user_ids = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) opt.quick = 1;
        else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage();
            return 0;
        } else if (!v) {
            usage();
            return 2;
        } else if (strcmp(a, "--suite") == 0) snprintf(opt.suites, sizeof opt.suites, "%s", v), i++;
        else if (strcmp(a, "--csv") == 0) opt.csv = v, i++;
        else if (strcmp(a, "--threads") == 0) opt.threads = parse_list(v), i++;
        else if (strcmp(a, "--reps") == 0) opt.reps = atoi(v), i++;
        else if (strcmp(a, "--vocab") == 0) opt.vocab = parse_list(v), opt.user_vocab = 1, i++;
        else if (strcmp(a, "--dim") == 0) opt.dim = parse_list(v), opt.user_dim = 1, i++;
        else if (strcmp(a, "--tokens") == 0) opt.tokens = parse_list(v), opt.user_tokens = 1, i++;
        else if (strcmp(a, "--ids") == 0) snprintf(opt.ids, sizeof opt.ids, "%s", v), user_ids = 1, i++;
        else {
            usage();
            return 2;
        }
    }
    if (opt.quick && !user_ids) snprintf(opt.ids, sizeof opt.ids, "uniform,zipf1.1");
    if (opt.reps <= 0) opt.reps = opt.quick ? 7 : 15;
    opt.min_sample = opt.quick ? 2e-4 : 1e-3;
    for (int i = 0; i < opt.threads.n; i++)
        if (opt.threads.v[i] < 1) die("--threads values must be >= 1");
    read_cache_sizes();
    csv_out = fopen(opt.csv, "w");
    if (!csv_out) die("cannot open the CSV file");
    fprintf(csv_out, "suite,op,variant,vocab,dim,tokens,ids,unique_frac,table_mib,table_fits,threads,ns_per_call,"
                     "p10_ns,p90_ns,ns_per_token,gb_s,memcpy_gb_s,frac_of_memcpy,gflop_s,ratio,note\n");
    const char *isa = getenv("TOKEMB_ISA");
    printf("# tokemb %s, reps %d (median of paired ratios), L2 %zu KiB, L3 %zu MiB, TOKEMB_ISA=%s%s\n",
           tokemb_version_string(), opt.reps, l2_bytes >> 10, l3_bytes >> 20, isa ? isa : "(auto)",
           opt.quick ? ", quick" : "");
    printf("# xcopy = kernel rate / in-process memcpy rate of the same bytes (alternating pairs); memcpy, output and\n"
           "# input buffers are 2 MiB aligned and MADV_HUGEPAGE-advised (the best copy this machine does)\n");
    header();
    double t0 = now();
    int any = 0;
    for (size_t i = 0; i < sizeof SUITES / sizeof SUITES[0]; i++)
        if (suite_on(SUITES[i].name)) {
            SUITES[i].fn();
            any = 1;
        }
    if (!any) {
        usage();
        return 2;
    }
    fclose(csv_out);
    printf("# %.1f s; CSV written to %s\n", now() - t0, opt.csv);
    return 0;
}
