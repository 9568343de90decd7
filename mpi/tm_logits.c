/* tm_logits.c - the tied output head over a row-sharded table (tokemb_mpi_logits and its backward).
 *
 * Why not the core's tokemb_logits (cblas_sgemm) on the shard: OpenBLAS gives an output element
 * different bits depending on where it falls in the M x N tiling (measured on this build, OpenBLAS
 * 0.3.21 DYNAMIC_ARCH: splitting the vocabulary rows over two ranks changes 67 of 14,000 logits by an
 * ulp, one hidden row at a time changes 9,672), so neither equality with the whole table's sgemm nor
 * equality across rank counts could hold. The three reductions here have a fixed association instead:
 *  - forward: logit(i, v) = one dim-long dot product in a fixed 8-lane order (tm_dot), computed by v's
 *    owner for every rank's hidden rows (all-gathered in rank order), returned by MPI_Alltoallv;
 *  - table gradient: dW[v] = sum over the global batch rows i in order of g(i, v) * h(i), summed from
 *    zero and then added to the caller's row; the owner has every rank's g columns and h rows;
 *  - hidden gradient: dh(i, c) = sum over ALL vocabulary rows of g(i, v) * w(v, c), a sum spread over
 *    the ranks. It is made independent of how the rows are split by an exact two-fold pre-rounded
 *    summation (the idea of Demmel and Nguyen's reproducible summation): every product is exact in
 *    double, is split on a grid fixed by a global bound (max |g(i, .)| x max |w(., c)|, maxima are
 *    order-free), and the grid parts add exactly in any order and on any rank; the owners' partial
 *    sums travel to the requester and add exactly there. The result is the rounding of a sum accurate
 *    to about 2^-40 of that bound, identical for every rank count, sharding and thread count.
 * Every buffer the caller sees is written only after the final agreement. */
#include "tm_internal.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The exchange geometry shared by forward and backward: every rank's n (ns[P], as ints), the offsets
 * of every rank's rows in the gathered batch (noff), every rank's shard rows (ls) and N, the total. */
typedef struct {
    int *ns, *noff, *ls, *a, *b, *c, *d; /* a..d: scratch count/displacement arrays for Alltoallv */
    size_t N;
} tm_geom;

static void tm_geom_free(tm_geom *g) {
    free(g->ns);
    memset(g, 0, sizeof *g);
}

/* Collective: gathers every rank's n (after agreeing on st, this rank's validation so far) and
 * validates the sizes against MPI's int counts. Returns the agreed status; on success g is filled. */
static int32_t tm_geom_make(tokemb_mpi_table *t, const char *fn, size_t n, int32_t st, char *msg, tm_geom *g) {
    int P = t->size;
    memset(g, 0, sizeof *g);
    uint64_t mine = (uint64_t)n, *all = NULL;
    if (st == TOKEMB_OK) {
        g->ns = calloc((size_t)P * 7, sizeof *g->ns);
        all = calloc((size_t)P, sizeof *all);
        if (!g->ns || !all) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st != TOKEMB_OK) { /* agreed: no second agreement */
        free(all);
        tm_geom_free(g);
        return st;
    }
    int rc = MPI_Allgather(&mine, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, t->comm);
    st = tm_mpi_status(rc, fn, "MPI_Allgather", msg);
    if (st == TOKEMB_OK) {
        g->noff = g->ns + P;
        g->ls = g->ns + 2 * P;
        g->a = g->ns + 3 * P;
        g->b = g->ns + 4 * P;
        g->c = g->ns + 5 * P;
        g->d = g->ns + 6 * P;
        uint64_t N = 0;
        for (int r = 0; r < P && N <= (uint64_t)INT_MAX; r++) {
            int64_t r0, l = (t->rows - r + P - 1) / P;
            if (t->sharding == TOKEMB_MPI_ROW) tm_row_block(t->rows, P, r, &r0, &l);
            g->ls[r] = (int)l;
            g->noff[r] = (int)N;
            g->ns[r] = (int)(all[r] > (uint64_t)INT_MAX ? INT_MAX : all[r]);
            N += all[r] > (uint64_t)INT_MAX ? (uint64_t)INT_MAX + 1 : all[r];
        }
        size_t D = (size_t)t->dim, L = (size_t)t->local_rows, V = (size_t)t->rows;
        if (N > (uint64_t)INT_MAX / D || N > (uint64_t)INT_MAX / L || (n > 0 && V > (size_t)INT_MAX / n))
            st = tm_fail(
                TOKEMB_OVERFLOW, msg,
                "%llu gathered rows of dim %zu, %zu shard rows, or n = %zu x %zu logits exceed MPI's int counts",
                (unsigned long long)N, D, L, n, V);
        g->N = (size_t)N;
    }
    free(all);
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st != TOKEMB_OK) tm_geom_free(g);
    return st;
}

/* One dot product of length D in a fixed order: 8 lanes (element c into lane c % 8), then a fixed tree. */
static float tm_dot(const float *a, const float *b, size_t D) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t c = 0;
    for (; c + 8 <= D; c += 8)
        for (int k = 0; k < 8; k++) acc[k] += a[c + k] * b[c + k];
    for (int k = 0; c < D; c++, k++) acc[k] += a[c] * b[c];
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

/* out[N][L] = H[N][D] x W[L][D]^T, every element one tm_dot (blocks of W rows stay in cache). */
static void tm_logits_block(const float *H, size_t N, const float *W, size_t L, size_t D, float *out) {
    for (size_t v0 = 0; v0 < L; v0 += 64) {
        size_t v1 = v0 + 64 < L ? v0 + 64 : L;
        for (size_t i = 0; i < N; i++)
            for (size_t v = v0; v < v1; v++) out[i * L + v] = tm_dot(H + i * D, W + v * D, D);
    }
}

/* acc[L][D] = grad[L][D] + sum over i < N in order of G[i][l] * H[i] (each sum starts from zero). */
static void tm_table_grad(const float *G, size_t N, const float *H, size_t L, size_t D, const float *grad, float *acc) {
    memset(acc, 0, L * D * sizeof *acc);
    for (size_t l0 = 0; l0 < L; l0 += 64) {
        size_t l1 = l0 + 64 < L ? l0 + 64 : L;
        for (size_t i = 0; i < N; i++)
            for (size_t l = l0; l < l1; l++) {
                float g = G[i * L + l], *a = acc + l * D;
                const float *h = H + i * D;
                for (size_t c = 0; c < D; c++) a[c] += g * h[c];
            }
    }
    for (size_t k = 0; k < L * D; k++) acc[k] = grad[k] + acc[k];
}

/* The exponent E of the first fold's grid for a bound b >= every |term| of a sum of at most 2^vbits
 * terms: sigma = 1.5 * 2^E keeps sigma + x in one binade, and the grid parts (multiples of 2^(E-52))
 * sum below 2^E, exactly, in any order. */
static int tm_fold_exp(double b, int vbits) {
    int e;
    frexp(b, &e); /* b < 2^e */
    return e + vbits + 1;
}

/* Two-fold pre-rounded partial sums of dh(i, c) = sum over this shard's rows l of G[i][l] * W[l][c]:
 * part[i][c][0..1], exact sums of each fold's grid parts. gmax[i] >= |G[i][.]| over the global row,
 * wmax[c] >= |W[.][c]| over the global table. */
static void tm_hidden_grad_part(const float *G, size_t N, const float *W, size_t L, size_t D, const double *gmax,
                                const double *wmax, int vbits, double *sig, double *part) {
    for (size_t i = 0; i < N; i++) {
        double *s1 = sig, *s2 = sig + D, *p = part + i * D * 2;
        for (size_t c = 0; c < D; c++) {
            int e = tm_fold_exp(gmax[i] * wmax[c], vbits);
            s1[c] = ldexp(1.5, e);
            s2[c] = ldexp(1.5, e - 53 + vbits + 1);
            p[2 * c] = p[2 * c + 1] = 0;
        }
        for (size_t l = 0; l < L; l++) {
            double g = (double)G[i * L + l];
            const float *w = W + l * D;
            for (size_t c = 0; c < D; c++) {
                double x = g * (double)w[c]; /* exact: 24 + 24 bits */
                double hi = (s1[c] + x) - s1[c], r = x - hi;
                double hi2 = (s2[c] + r) - s2[c];
                p[2 * c] += hi;
                p[2 * c + 1] += hi2;
            }
        }
    }
}

/* Column c of owner s's block is global column (vocabulary row) tm_col(t, s, c). */
static inline size_t tm_col(const tokemb_mpi_table *t, int s, size_t c) {
    if (t->sharding == TOKEMB_MPI_ROW_MODULO) return c * (size_t)t->size + (size_t)s;
    int64_t r0, l;
    tm_row_block(t->rows, t->size, s, &r0, &l);
    return (size_t)r0 + c;
}

/* Collective: all of every rank's hidden rows [N][D] in rank order into *h_all. */
static int32_t tm_gather_hidden(tokemb_mpi_table *t, const char *fn, const float *hidden, size_t n, tm_geom *g,
                                float **h_all, char *msg) {
    int P = t->size, D = (int)t->dim;
    float *h = malloc((g->N ? g->N : 1) * (size_t)D * sizeof *h);
    int32_t st = h ? TOKEMB_OK : tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st == TOKEMB_OK) {
        for (int r = 0; r < P; r++) {
            g->a[r] = g->ns[r] * D;
            g->b[r] = g->noff[r] * D;
        }
        int rc = MPI_Allgatherv(hidden, (int)n * D, MPI_FLOAT, h, g->a, g->b, MPI_FLOAT, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Allgatherv", msg), msg);
    }
    if (st != TOKEMB_OK) {
        free(h);
        return st;
    }
    *h_all = h;
    return TOKEMB_OK;
}

static int32_t tm_logits(tokemb_mpi_table *t, const char *fn, const float *hidden, size_t n, float *logits) {
    int32_t entry = tm_enter_rows(t, fn);
    if (entry != TOKEMB_OK) return entry;
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    int P = t->size;
    size_t L = (size_t)t->local_rows, V = (size_t)t->rows;
    if (n > 0 && (!hidden || !logits))
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "hidden or logits is NULL with n = %zu", n);
    tm_geom g;
    st = tm_geom_make(t, fn, n, st, msg, &g);
    if (st != TOKEMB_OK) return st; /* agreed */
    float *h_all = NULL, *block = NULL, *recv = NULL;
    block = malloc((g.N ? g.N : 1) * L * sizeof *block);
    recv = malloc((n ? n : 1) * V * sizeof *recv);
    if (!block || !recv) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    if (st == TOKEMB_OK) st = tm_gather_hidden(t, fn, hidden, n, &g, &h_all, msg);
    if (st == TOKEMB_OK) {
        /* this shard's logits columns for every rank's rows: [N][L] */
        tm_logits_block(h_all, g.N, tokemb_table_data(t->local), L, (size_t)t->dim, block);
        /* to rank r: its n_r rows of my block; from owner s: my n rows of its L_s columns */
        int at = 0;
        for (int r = 0; r < P; r++) {
            g.a[r] = g.ns[r] * (int)L;
            g.b[r] = g.noff[r] * (int)L;
            g.c[r] = (int)n * g.ls[r];
            g.d[r] = at;
            at += g.c[r];
        }
        int rc = MPI_Alltoallv(block, g.a, g.b, MPI_FLOAT, recv, g.c, g.d, MPI_FLOAT, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Alltoallv", msg), msg);
    }
    if (st == TOKEMB_OK)
        for (int s = 0; s < P; s++) {
            const float *src = recv + g.d[s];
            size_t ls = (size_t)g.ls[s];
            for (size_t i = 0; i < n; i++) {
                float *row = logits + i * V;
                if (t->sharding == TOKEMB_MPI_ROW) memcpy(row + tm_col(t, s, 0), src + i * ls, ls * sizeof *row);
                else
                    for (size_t c = 0; c < ls; c++) row[tm_col(t, s, c)] = src[i * ls + c];
            }
        }
    free(h_all);
    free(block);
    free(recv);
    tm_geom_free(&g);
    return st;
}

int32_t tokemb_mpi_logits(tokemb_mpi_table *t, const float *hidden, size_t n, float *logits) {
    return tm_logits(t, "tokemb_mpi_logits", hidden, n, logits);
}

int32_t tokemb_mpi_logits_backward(tokemb_mpi_table *t, const float *hidden, size_t n, const float *grad_logits,
                                   float *grad_hidden, float *grad_shard) {
    static const char fn[] = "tokemb_mpi_logits_backward";
    int32_t entry = tm_enter_rows(t, fn);
    if (entry != TOKEMB_OK) return entry;
    char msg[TM_MSG] = "";
    int32_t st = TOKEMB_OK;
    int P = t->size;
    size_t D = (size_t)t->dim, L = (size_t)t->local_rows, V = (size_t)t->rows;
    const float *W = tokemb_table_data(t->local);
    /* which gradients are wanted must agree: the exchanges depend on it */
    int want = (grad_hidden ? 1 : 0) | (grad_shard ? 2 : 0), want0 = want;
    if (!want) st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "grad_hidden and grad_shard are both NULL");
    else if (n > 0 && (!hidden || !grad_logits))
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg, "hidden or grad_logits is NULL with n = %zu", n);
    int rc = MPI_Bcast(&want0, 1, MPI_INT, 0, t->comm);
    if (rc != MPI_SUCCESS && st == TOKEMB_OK) st = tm_mpi_status(rc, fn, "MPI_Bcast", msg);
    if (st == TOKEMB_OK && want0 != want)
        st = tm_fail(TOKEMB_INVALID_ARGUMENT, msg,
                     "grad_hidden %s and grad_shard %s, but rank 0 passes grad_hidden %s and grad_shard %s",
                     grad_hidden ? "given" : "NULL", grad_shard ? "given" : "NULL", want0 & 1 ? "given" : "NULL",
                     want0 & 2 ? "given" : "NULL");
    tm_geom g;
    st = tm_geom_make(t, fn, n, st, msg, &g);
    if (st != TOKEMB_OK) return st; /* agreed */
    float *h_all = NULL, *send = NULL, *gblock = NULL, *acc = NULL;
    double *gmax = NULL, *wmax = NULL, *sig = NULL, *part = NULL, *back = NULL;
    size_t N = g.N;
    send = malloc((n ? n : 1) * V * sizeof *send);
    gblock = malloc((N ? N : 1) * L * sizeof *gblock);
    if (!send || !gblock) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    if (st == TOKEMB_OK && grad_shard && !(acc = malloc(L * D * sizeof *acc)))
        st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
    if (st == TOKEMB_OK && grad_hidden) {
        gmax = malloc(((N ? N : 1) + 2 * D) * sizeof *gmax);
        sig = malloc(2 * D * sizeof *sig);
        part = malloc((N ? N : 1) * D * 2 * sizeof *part);
        back = malloc((n ? n : 1) * (size_t)P * D * 2 * sizeof *back);
        if (!gmax || !sig || !part || !back) st = tm_fail(TOKEMB_NO_MEMORY, msg, "out of memory");
        else wmax = gmax + N;
    }
    st = tm_agree(t->comm, t->rank, P, fn, st, msg);
    /* H is needed only for the table's gradient */
    if (st == TOKEMB_OK && grad_shard) st = tm_gather_hidden(t, fn, hidden, n, &g, &h_all, msg);
    if (st == TOKEMB_OK) {
        /* my grad_logits columns to their owners: [n][L_s] per owner s; the owner stacks [N][L] */
        int at = 0;
        for (int s = 0; s < P; s++) {
            size_t ls = (size_t)g.ls[s];
            float *dst = send + at;
            for (size_t i = 0; i < n; i++) {
                const float *row = grad_logits + i * V;
                if (t->sharding == TOKEMB_MPI_ROW) memcpy(dst + i * ls, row + tm_col(t, s, 0), ls * sizeof *dst);
                else
                    for (size_t c = 0; c < ls; c++) dst[i * ls + c] = row[tm_col(t, s, c)];
            }
            g.a[s] = (int)n * g.ls[s];
            g.b[s] = at;
            at += g.a[s];
            g.c[s] = g.ns[s] * (int)L;
            g.d[s] = g.noff[s] * (int)L;
        }
        rc = MPI_Alltoallv(send, g.a, g.b, MPI_FLOAT, gblock, g.c, g.d, MPI_FLOAT, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI_Alltoallv", msg), msg);
    }
    if (st == TOKEMB_OK && grad_shard) tm_table_grad(gblock, N, h_all, L, D, grad_shard, acc);
    if (st == TOKEMB_OK && grad_hidden) {
        /* the fold grid's bound: max |g| of every global batch row (each requester has its whole rows),
         * max |w| of every column over the global table; then the owners' exact fold sums */
        double *mine = wmax + D; /* [D] scratch, then reused below */
        for (int r = 0; r < P; r++) {
            g.a[r] = g.ns[r];
            g.b[r] = g.noff[r];
        }
        double *gm_mine = part; /* n doubles of scratch before part is filled */
        for (size_t i = 0; i < n; i++) {
            double m = 0;
            for (size_t v = 0; v < V; v++) m = fmax(m, fabs((double)grad_logits[i * V + v]));
            gm_mine[i] = m;
        }
        rc = MPI_Allgatherv(gm_mine, (int)n, MPI_DOUBLE, gmax, g.a, g.b, MPI_DOUBLE, t->comm);
        for (size_t c = 0; c < D; c++) {
            double m = 0;
            for (size_t l = 0; l < L; l++) m = fmax(m, fabs((double)W[l * D + c]));
            mine[c] = m;
        }
        if (rc == MPI_SUCCESS) rc = MPI_Allreduce(mine, wmax, (int)D, MPI_DOUBLE, MPI_MAX, t->comm);
        int vbits = 0;
        while (((size_t)1 << vbits) < V) vbits++;
        if (rc == MPI_SUCCESS) tm_hidden_grad_part(gblock, N, W, L, D, gmax, wmax, vbits, sig, part);
        /* partial rows back to their requesters: from every owner s, my n rows, stacked [P][n][D][2] */
        for (int r = 0; rc == MPI_SUCCESS && r < P; r++) {
            g.a[r] = g.ns[r] * (int)D * 2;
            g.b[r] = g.noff[r] * (int)D * 2;
            g.c[r] = (int)(n * D * 2);
            g.d[r] = r * (int)(n * D * 2);
        }
        if (rc == MPI_SUCCESS) rc = MPI_Alltoallv(part, g.a, g.b, MPI_DOUBLE, back, g.c, g.d, MPI_DOUBLE, t->comm);
        st = tm_agree(t->comm, t->rank, P, fn, tm_mpi_status(rc, fn, "MPI collectives", msg), msg);
    }
    if (st == TOKEMB_OK) {
        if (grad_shard) memcpy(grad_shard, acc, L * D * sizeof *acc);
        /* each fold's partials add exactly in any order; the two folds are rounded once */
        for (size_t k = 0; grad_hidden && k < n * D; k++) {
            double f1 = 0, f2 = 0;
            for (int s = 0; s < P; s++) {
                f1 += back[((size_t)s * n * D + k) * 2];
                f2 += back[((size_t)s * n * D + k) * 2 + 1];
            }
            grad_hidden[k] = (float)(f1 + f2);
        }
    }
    free(h_all);
    free(send);
    free(gblock);
    free(acc);
    free(gmax);
    free(sig);
    free(part);
    free(back);
    tm_geom_free(&g);
    return st;
}
