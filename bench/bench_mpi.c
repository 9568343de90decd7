/* bench_mpi.c - tokemb-bench's mpi suite (built into tokemb-bench only when libtokemb_mpi is built):
 * the sharded collectives of libtokemb_mpi under mpirun.
 *
 *   mpirun -np P --oversubscribe tokemb-bench --suite mpi [--quick] [--reps N] [--csv FILE]
 *          [--rows LIST] [--dim LIST] [--tokens LIST] [--ids uniform,zipf1.1] [--ops lookup,bags,grad,optim]
 *
 * Weak scaling: every case gives each rank `rows` table rows (the global table has rows * P) and a batch
 * of `tokens` ids over the whole global table, so the work per rank is the same at every P. For each
 * op (lookup, bags SUM with L = 20, grad_accumulate, optim_step with row-wise Adagrad), sharding
 * (ROW, ROW_MODULO) and id stream:
 *  - time per call: every sample is a barrier, k calls, and the slowest rank's time / k; median,
 *    p10/p90, min/max over the rounds (after a warm-up round);
 *  - bytes: the payload the library sent (tokemb_mpi_table_stat, all ranks summed) against the
 *    minimum, each rank's distinct ids x (8 + 4 D);
 *  - the time split (plan, id exchange, local gather / owner update, row exchange, output), averaged
 *    over ranks, from the same statistics;
 *  - lookup only: the sharded lookup against a bare MPI_Alltoallv of the same ids, a local
 *    tokemb_lookup of the same rows at the owners and a bare MPI_Alltoallv of the same rows, measured
 *    in alternating rounds in the same run: ratio = bare time / sharded time (median over rounds).
 * Rank 0 prints a table and writes a CSV (its own columns, listed in the header line). */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_ids.h"
#include "tokemb_mpi.h"

int bench_mpi_main(int argc, char **argv);

#define MAXL 16
static struct {
    int quick, reps, rank, size;
    double min_sample;
    long long rows[MAXL], dims[MAXL], tokens[MAXL];
    int n_rows, n_dims, n_tokens;
    char ids[128], ops[128];
    const char *csv;
} o;
static FILE *csv;

static void fail(const char *what, int32_t st) {
    fprintf(stderr, "tokemb-bench (rank %d): %s failed: %s (%s)\n", o.rank, what, tokemb_status_string(st),
            tokemb_mpi_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
}
#define OK(call)                                \
    do {                                        \
        int32_t st_ = (call);                   \
        if (st_ != TOKEMB_OK) fail(#call, st_); \
    } while (0)

/* ---- one case --------------------------------------------------------------------------------------- */

typedef struct {
    tokemb_mpi_table *t;
    int op; /* 0 lookup, 1 bags, 2 grad, 3 optim */
    const int64_t *ids, *offsets;
    size_t n, nb;
    const float *grad;
    float *out, *grad_shard;
    /* the bare peer: this rank's distinct ids grouped by owner, as local rows, with MPI's counts */
    int64_t *send_ids, *recv_ids;
    float *reply, *rows;
    tokemb_table *rows_table; /* wraps rows */
    int64_t *slot;            /* [n] input position -> its row in rows */
    int *sc, *sd, *rc, *rd, *sc_f, *sd_f, *rc_f, *rd_f;
    size_t n_uniq, n_recv;
} mctx;

static void run_op(mctx *c) {
    switch (c->op) {
    case 0: OK(tokemb_mpi_lookup(c->t, c->ids, c->n, c->out)); break;
    case 1: OK(tokemb_mpi_lookup_bags(c->t, c->ids, c->n, c->offsets, c->nb, TOKEMB_SUM, NULL, c->out)); break;
    case 2: OK(tokemb_mpi_grad_accumulate(c->t, c->ids, c->n, c->grad, c->grad_shard)); break;
    default: OK(tokemb_mpi_optim_step(c->t, c->ids, c->n, c->grad)); break;
    }
}

/* What the sharded lookup must do at the least: the ids out, the rows gathered at the owners, the rows
 * back, each input position's row into out (the counts, distinct ids and slots are known in advance
 * here: no validation, no de-duplication, no counts exchange, no error agreement, no allocation). */
static void run_bare(mctx *c) {
    MPI_Comm w = MPI_COMM_WORLD;
    if (MPI_Alltoallv(c->send_ids, c->sc, c->sd, MPI_INT64_T, c->recv_ids, c->rc, c->rd, MPI_INT64_T, w) != MPI_SUCCESS)
        fail("MPI_Alltoallv (ids)", TOKEMB_IO);
    if (c->n_recv) OK(tokemb_lookup(tokemb_mpi_table_local(c->t), c->recv_ids, c->n_recv, c->reply));
    if (MPI_Alltoallv(c->reply, c->rc_f, c->rd_f, MPI_FLOAT, c->rows, c->sc_f, c->sd_f, MPI_FLOAT, w) != MPI_SUCCESS)
        fail("MPI_Alltoallv (rows)", TOKEMB_IO);
    OK(tokemb_lookup(c->rows_table, c->slot, c->n, c->out));
}

/* barrier, k calls, the slowest rank's seconds per call */
static double sample(mctx *c, int bare, int k) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < k; i++) bare ? run_bare(c) : run_op(c);
    double t = (MPI_Wtime() - t0) / k, mx = 0;
    MPI_Allreduce(&t, &mx, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return mx;
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* the bare peer's plan: owner of global row g from the shards' first rows (ROW) or g % P (MODULO) */
static void bare_plan(mctx *c, int32_t sharding, const int64_t *row0, int64_t D) {
    int P = o.size;
    int64_t *u = malloc((c->n ? c->n : 1) * sizeof *u);
    memcpy(u, c->ids, c->n * sizeof *u);
    qsort(u, c->n, sizeof *u, cmp_i64);
    size_t nu = 0;
    for (size_t i = 0; i < c->n; i++)
        if (i == 0 || u[i] != u[nu - 1]) u[nu++] = u[i];
    c->n_uniq = nu;
    int *cnt = calloc((size_t)P * 8, sizeof *cnt);
    c->sc = cnt, c->sd = cnt + P, c->rc = cnt + 2 * P, c->rd = cnt + 3 * P;
    c->sc_f = cnt + 4 * P, c->sd_f = cnt + 5 * P, c->rc_f = cnt + 6 * P, c->rd_f = cnt + 7 * P;
    int *own = malloc((nu ? nu : 1) * sizeof *own);
    int64_t *lrow = malloc((nu ? nu : 1) * sizeof *lrow);
    for (size_t i = 0; i < nu; i++) {
        int64_t g = u[i];
        int r;
        if (sharding == TOKEMB_MPI_ROW_MODULO) r = (int)(g % P), lrow[i] = g / P;
        else {
            for (r = P - 1; row0[r] > g; r--) {}
            lrow[i] = g - row0[r];
        }
        own[i] = r;
        c->sc[r]++;
    }
    for (int r = 1; r < P; r++) c->sd[r] = c->sd[r - 1] + c->sc[r - 1];
    c->send_ids = malloc((nu ? nu : 1) * sizeof *c->send_ids);
    int *fill = calloc((size_t)P, sizeof *fill);
    for (size_t i = 0; i < nu; i++) c->send_ids[c->sd[own[i]] + fill[own[i]]++] = lrow[i];
    MPI_Alltoall(c->sc, 1, MPI_INT, c->rc, 1, MPI_INT, MPI_COMM_WORLD);
    size_t tot = 0;
    for (int r = 0; r < P; r++) c->rd[r] = (int)tot, tot += (size_t)c->rc[r];
    c->n_recv = tot;
    for (int r = 0; r < P; r++) {
        c->sc_f[r] = c->sc[r] * (int)D, c->sd_f[r] = c->sd[r] * (int)D;
        c->rc_f[r] = c->rc[r] * (int)D, c->rd_f[r] = c->rd[r] * (int)D;
    }
    c->recv_ids = malloc((tot ? tot : 1) * sizeof *c->recv_ids);
    c->reply = malloc((tot ? tot : 1) * (size_t)D * sizeof *c->reply);
    c->rows = malloc((nu ? nu : 1) * (size_t)D * sizeof *c->rows);
    OK(tokemb_table_wrap(c->rows, nu ? (int64_t)nu : 1, D, D, TOKEMB_F32, TOKEMB_WRAP_READONLY, &c->rows_table));
    /* slot of input i: its distinct id's index in u, then that id's position in send order */
    int64_t *where = malloc((nu ? nu : 1) * sizeof *where);
    memset(fill, 0, (size_t)P * sizeof *fill);
    for (size_t i = 0; i < nu; i++) where[i] = c->sd[own[i]] + fill[own[i]]++;
    c->slot = malloc((c->n ? c->n : 1) * sizeof *c->slot);
    for (size_t i = 0; i < c->n; i++) {
        const int64_t *f = bsearch(&c->ids[i], u, nu, sizeof *u, cmp_i64);
        c->slot[i] = where[f - u];
    }
    free(where);
    free(u);
    free(own);
    free(lrow);
    free(fill);
}

static void bare_free(mctx *c) {
    tokemb_table_free(c->rows_table);
    free(c->slot);
    free(c->sc);
    free(c->send_ids);
    free(c->recv_ids);
    free(c->reply);
    free(c->rows);
}

static double sum_all(double v) {
    double s = 0;
    MPI_Allreduce(&v, &s, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return s;
}

static const char *OPS[] = {"lookup", "bags", "grad_accumulate", "optim_step"};

static void run_case(int32_t sharding, int64_t rows_pr, int64_t D, size_t n, const char *dist) {
    int P = o.size;
    int64_t V = rows_pr * P;
    tokemb_mpi_table *t = NULL;
    OK(tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, sharding, &t));
    tokemb_table *local = tokemb_mpi_table_local(t);
    float *w = tokemb_table_data(local);
    size_t lr = (size_t)tokemb_table_rows(local);
    for (size_t i = 0; i < lr * (size_t)D; i++) w[i] = (float)((int32_t)(rnd() >> 40) - (1 << 23)) * (1.0f / (1 << 23));
    OK(tokemb_optim_select(local, TOKEMB_OPTIM_ROWWISE_ADAGRAD));
    OK(tokemb_optim_set_param_f64(local, TOKEMB_OPTIM_LR, 1e-3));

    size_t L = 20, nb = n / L;
    n = nb * L; /* bags of 20 */
    int64_t *ids = malloc(n * sizeof *ids), *offs = malloc((nb + 1) * sizeof *offs);
    float *out = calloc(n * (size_t)D, sizeof *out), *grad = malloc(n * (size_t)D * sizeof *grad);
    float *gshard = calloc(lr * (size_t)D, sizeof *gshard);
    if (!ids || !offs || !out || !grad || !gshard) fail("allocating the batch", TOKEMB_NO_MEMORY);
    make_ids(ids, n, V, dist);
    for (size_t b = 0; b <= nb; b++) offs[b] = (int64_t)(b * L);
    for (size_t i = 0; i < n * (size_t)D; i++) grad[i] = (float)(rnd() >> 40) * (1.0f / (1 << 24)) - 0.5f;
    double uq = unique_frac(ids, n, V), uniq_all = sum_all(uq * (double)n), n_all = (double)n * P;
    double min_bytes = uniq_all * (8.0 + 4.0 * (double)D);

    int64_t *row0 = malloc((size_t)P * sizeof *row0), my0 = tokemb_mpi_table_global_row(t, 0);
    MPI_Allgather(&my0, 1, MPI_INT64_T, row0, 1, MPI_INT64_T, MPI_COMM_WORLD);
    mctx c = {.t = t, .ids = ids, .offsets = offs, .n = n, .nb = nb, .grad = grad, .out = out, .grad_shard = gshard};
    bare_plan(&c, sharding, row0, D);

    for (int op = 0; op < 4; op++) {
        if (!in_list(o.ops, op == 2 ? "grad" : op == 3 ? "optim" : OPS[op])) continue;
        c.op = op;
        for (int wu = 0; wu < 3; wu++) { /* warm-up: first touches, MPI's connections and buffers */
            sample(&c, 0, 1);
            if (op == 0) sample(&c, 1, 1);
        }
        double t1 = sample(&c, 0, 1); /* calibration (the same k on every rank) */
        if (op == 0) t1 += sample(&c, 1, 1);
        int k = t1 > 0 ? (int)(o.min_sample / t1) : 1;
        if (k < 1) k = 1;
        if (k > 1000) k = 1000;
        int R = o.reps;
        double *ts = malloc((size_t)R * sizeof *ts), *tb = malloc((size_t)R * sizeof *tb),
               *fr = malloc((size_t)R * sizeof *fr);
        OK(tokemb_mpi_table_stats_reset(t));
        double bare_s = 0;
        for (int r = 0; r < R; r++) {
            if (op == 0 && (r & 1)) tb[r] = sample(&c, 1, k);
            ts[r] = sample(&c, 0, k);
            if (op == 0 && !(r & 1)) tb[r] = sample(&c, 1, k);
            if (op == 0) fr[r] = tb[r] / ts[r];
        }
        /* statistics: bytes summed over ranks, phase fractions averaged over ranks */
        double calls = 0, v[17];
        OK(tokemb_mpi_table_stat(t, TOKEMB_MPI_STAT_CALLS, &calls));
        for (int32_t s = 0; s <= 16; s++) {
            v[s] = 0;
            if (s <= TOKEMB_MPI_STAT_AGREEMENTS || s >= TOKEMB_MPI_STAT_SECONDS) OK(tokemb_mpi_table_stat(t, s, &v[s]));
        }
        double bytes = sum_all(v[TOKEMB_MPI_STAT_BYTES_SENT]) / calls,
               remote = sum_all(v[TOKEMB_MPI_STAT_BYTES_REMOTE]) / calls, frac[7];
        for (int s = 0; s < 6; s++) frac[s] = sum_all(v[11 + s] / v[TOKEMB_MPI_STAT_SECONDS]) / P;
        double agrees = v[TOKEMB_MPI_STAT_AGREEMENTS] / calls;
        double med = quantile(ts, R, 0.5), p10 = quantile(ts, R, 0.1), p90 = quantile(ts, R, 0.9), lo = ts[0],
               hi = ts[R - 1];
        double rmed = NAN, rlo = NAN, rhi = NAN, rbest = NAN;
        if (op == 0) {
            bare_s = quantile(tb, R, 0.5);
            rbest = tb[0] / lo; /* the least disturbed samples of each */
            rmed = quantile(fr, R, 0.5), rlo = fr[0], rhi = fr[R - 1];
        }
        if (o.rank == 0) {
            const char *sh = sharding == TOKEMB_MPI_ROW ? "row" : "row_modulo";
            printf("%-15s %-10s %2d %8lld %5lld %6zu %-8s %5.3f %11.1f %8.2f %5.3f %6.3f %5.1f %4.0f %4.0f %4.0f %4.0f "
                   "%4.0f %4.0f",
                   OPS[op], sh, P, (long long)rows_pr, (long long)D, n, dist, uq, med * 1e6, n_all / med * 1e-6,
                   bytes / min_bytes, remote / bytes, agrees, 100 * frac[0], 100 * frac[1], 100 * frac[2],
                   100 * frac[3], 100 * frac[4], 100 * frac[5]);
            if (op == 0) printf(" %9.1f %5.2f [%4.2f-%4.2f] %5.2f", bare_s * 1e6, rmed, rlo, rhi, rbest);
            printf("\n");
            fflush(stdout);
            if (csv) {
                fprintf(
                    csv,
                    "mpi,%s,%s,%d,%lld,%lld,%zu,%s,%.4f,%d,%d,%.1f,%.1f,%.1f,%.1f,%.1f,%.4f,%.0f,%.0f,%.4f,%.0f,%.2f,"
                    "%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%.1f,%.4f,%.4f,%.4f,%.4f\n",
                    OPS[op], sh, P, (long long)rows_pr, (long long)D, n, dist, uq, R, k, med * 1e9, p10 * 1e9,
                    p90 * 1e9, lo * 1e9, hi * 1e9, n_all / med * 1e-6, bytes, min_bytes, bytes / min_bytes, remote,
                    agrees, frac[0], frac[1], frac[2], frac[3], frac[4], frac[5], op == 0 ? bare_s * 1e9 : NAN, rmed,
                    rlo, rhi, rbest);
                fflush(csv);
            }
        }
        free(ts);
        free(tb);
        free(fr);
    }
    bare_free(&c);
    free(row0);
    free(ids);
    free(offs);
    free(out);
    free(grad);
    free(gshard);
    tokemb_mpi_table_free(t);
}

int bench_mpi_main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &o.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &o.size);
    o.csv = "tokemb-bench-mpi.csv";
    snprintf(o.ids, sizeof o.ids, "uniform,zipf1.1");
    snprintf(o.ops, sizeof o.ops, "lookup,bags,grad,optim");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            o.quick = 1;
            continue;
        }
        if (!v) {
            if (o.rank == 0) fprintf(stderr, "tokemb-bench: %s needs a value\n", a);
            MPI_Finalize();
            return 2;
        }
        i++;
        if (strcmp(a, "--suite") == 0) continue; /* "mpi", checked by main */
        else if (strcmp(a, "--reps") == 0) o.reps = atoi(v);
        else if (strcmp(a, "--csv") == 0) o.csv = v;
        else if (strcmp(a, "--rows") == 0 || strcmp(a, "--vocab") == 0) o.n_rows = parse_numbers(v, o.rows, MAXL);
        else if (strcmp(a, "--dim") == 0) o.n_dims = parse_numbers(v, o.dims, MAXL);
        else if (strcmp(a, "--tokens") == 0) o.n_tokens = parse_numbers(v, o.tokens, MAXL);
        else if (strcmp(a, "--ids") == 0) snprintf(o.ids, sizeof o.ids, "%s", v);
        else if (strcmp(a, "--ops") == 0) snprintf(o.ops, sizeof o.ops, "%s", v);
        else {
            if (o.rank == 0) fprintf(stderr, "tokemb-bench: unknown option %s for the mpi suite\n", a);
            MPI_Finalize();
            return 2;
        }
    }
    if (o.reps <= 0) o.reps = o.quick ? 7 : 31;
    o.min_sample = o.quick ? 1e-3 : 2e-3; /* short samples: fewer of them hit a preemption */
    /* default cases (per rank): rows x dim x tokens */
    static const long long fr[] = {100000, 100000}, fd[] = {64, 256}, ft[] = {8000, 2000};
    static const long long qr[] = {20000}, qd[] = {64}, qt[] = {2000};
    int nc = o.n_rows ? o.n_rows : (o.quick ? 1 : 2);
    if ((o.n_dims && o.n_dims != nc) || (o.n_tokens && o.n_tokens != nc)) {
        if (o.rank == 0) fprintf(stderr, "tokemb-bench: --rows, --dim and --tokens need lists of one length\n");
        MPI_Finalize();
        return 2;
    }
    OK(tokemb_set_num_threads(1)); /* the ranks already share the cores */
    rng_state ^= 0x100000001B3ull * (uint64_t)(o.rank + 1);
    if (o.rank == 0) {
        csv = fopen(o.csv, "w");
        if (!csv) fprintf(stderr, "tokemb-bench: cannot open %s, no CSV\n", o.csv);
        else
            fprintf(csv,
                    "suite,op,sharding,np,rows_per_rank,dim,tokens_per_rank,ids,unique_frac,rounds,calls_per_round,"
                    "ns_per_call,p10_ns,p90_ns,min_ns,max_ns,mids_per_s,bytes_per_call,min_bytes_per_call,"
                    "bytes_over_min,remote_bytes_per_call,agreements_per_call,frac_plan,frac_id_exchange,"
                    "frac_local,frac_row_exchange,frac_output,frac_agree,bare_ns,bare_over_sharded,"
                    "bare_over_sharded_min,bare_over_sharded_max,best_bare_over_best_sharded\n");
        printf("# tokemb %s, mpi suite: %d ranks (weak scaling: rows and tokens per rank), %d rounds, median over "
               "rounds of the slowest rank's time per call; 1 tokemb thread per rank\n",
               tokemb_version_string(), o.size, o.reps);
        printf(
            "# bytes/min = payload sent / (distinct ids x (8 + 4 dim)); phases in %% of the call (mean over ranks); "
            "bare = MPI_Alltoallv ids + local tokemb_lookup + MPI_Alltoallv rows, ratio = bare / sharded (median of\n"
            "# alternating rounds, [range]), best/best = fastest bare round / fastest sharded round\n");
        printf("%-15s %-10s %2s %8s %5s %6s %-8s %5s %11s %8s %5s %6s %5s %4s %4s %4s %4s %4s %4s %9s %s\n", "op",
               "sharding", "np", "rows/rk", "dim", "tokens", "ids", "uniq", "us/call", "Mids/s", "b/min", "remote",
               "agree", "plan", "ids", "local", "rows", "out", "agr%", "bare_us", "bare/sharded [min-max] best/best");
    }
    double t0 = MPI_Wtime();
    for (int ci = 0; ci < nc; ci++) {
        int64_t R = o.n_rows ? o.rows[ci] : (o.quick ? qr : fr)[ci];
        int64_t D = o.n_dims ? o.dims[ci] : (o.quick ? qd : fd)[ci];
        size_t n = (size_t)(o.n_tokens ? o.tokens[ci] : (o.quick ? qt : ft)[ci]);
        static const char *dists[] = {"uniform", "zipf1.0", "zipf1.1"};
        for (int s = 0; s < 2; s++)
            for (int d = 0; d < 3; d++)
                if (in_list(o.ids, dists[d]))
                    run_case(s == 0 ? TOKEMB_MPI_ROW : TOKEMB_MPI_ROW_MODULO, R, D, n, dists[d]);
    }
    if (o.rank == 0) {
        printf("# %.1f s; CSV written to %s\n", MPI_Wtime() - t0, o.csv);
        if (csv) fclose(csv);
    }
    MPI_Finalize();
    return 0;
}
