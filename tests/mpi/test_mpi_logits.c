/* mpirun -np 1..4: the tied logits over a row-sharded table and both gradients of the backward are
 * bitwise equal to the same calls on one rank holding the whole table (a table over MPI_COMM_SELF in
 * each rank) seeing the concatenated batch, for both shardings: equality across rank counts. The
 * core's tokemb_logits (OpenBLAS sgemm) cannot be matched bit for bit (its bits depend on the tiling,
 * see mpi/tm_logits.c), so the values are checked against float64 references: the logits within the
 * dot-product bound, the table gradient within the batch-sum bound, the hidden gradient (an exactly
 * summed, once rounded reduction) within 2^-23 relative plus 2^-40 of the magnitude. Bad input fails
 * on every rank with nothing written. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tk_mpi_table.h"

static float value(int64_t g, int64_t c) { return sinf((float)(g * 17 + c * 3) * 0.113f) * 0.7f; }

static float *random_rows(size_t n, size_t w, unsigned seed) {
    float *x = malloc((n * w + 1) * sizeof *x);
    unsigned s = seed;
    for (size_t i = 0; i < n * w; i++) x[i] = (float)((int)(lcg(&s) % 20001) - 10000) / 4099.0f;
    return x;
}

/* sum over k < K of a[k * as] * b[k * bs] in float64, and the sum of the magnitudes in *mag */
static double ref_dot(const float *a, size_t as, const float *b, size_t bs, size_t K, double *mag) {
    double r = 0, m = 0;
    for (size_t k = 0; k < K; k++) {
        double x = (double)a[k * as] * b[k * bs];
        r += x;
        m += fabs(x);
    }
    *mag = m;
    return r;
}

/* |got - ref| <= K * 2^-24 * mag (+ a tiny absolute term): a float sum of K products against float64 */
static int close_dot(float got, double ref, double mag, double K) {
    return fabs((double)got - ref) <= K * ldexp(1.0, -24) * mag + 1e-30;
}

static void test_logits(int32_t sharding, int64_t V, int64_t D, unsigned seed) {
    tokemb_table *f = NULL;
    tokemb_mpi_table *t = tk_make_tables(sharding, V, D, value, &f);
    if (!t) return;
    int32_t st;
    const float *W = tokemb_table_data(f);
    size_t n = rank == 1 ? 0 : 3 + (size_t)rank * 11 + seed % 7, off, Vs = (size_t)V, Ds = (size_t)D;
    float *h = random_rows(n, Ds, seed * 31u + (unsigned)rank * 977u + 1u);
    float *gl = random_rows(n, Vs, seed * 37u + (unsigned)rank * 1013u + 2u);
    float *h_all = malloc((4 * 64 * Ds + 1) * sizeof *h_all), *g_all = malloc((4 * 64 * Vs + 1) * sizeof *g_all);
    size_t N = tk_gather_rows(h, n, (int)D, MPI_FLOAT, h_all, &off);
    tk_gather_rows(gl, n, (int)V, MPI_FLOAT, g_all, &off);

    /* the whole table on one rank (this rank alone), seeing every rank's batch */
    tokemb_mpi_table *w = NULL;
    CHECK(tokemb_mpi_table_create(MPI_COMM_SELF, V, D, sharding, &w) == TOKEMB_OK, "%s", tokemb_mpi_last_error());
    tk_fill_shard(w, value);

    /* forward: bitwise the one-rank run over the gathered batch */
    float *out = malloc((n * Vs + 1) * sizeof *out), *ref_all = malloc((N * Vs + 1) * sizeof *ref_all);
    st = tokemb_mpi_logits(t, h, n, out);
    CHECK(st == TOKEMB_OK, "logits: %s", tokemb_mpi_last_error());
    CHECK(tokemb_mpi_logits(w, h_all, N, ref_all) == TOKEMB_OK, "one-rank logits: %s", tokemb_mpi_last_error());
    CHECK(memcmp(out, ref_all + off * Vs, n * Vs * sizeof *out) == 0,
          "logits differ from one rank's (sharding %d, V %lld, D %lld)", (int)sharding, (long long)V, (long long)D);
    int ok = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t v = 0; v < Vs; v++) {
            double m, r = ref_dot(h + i * Ds, 1, W + v * Ds, 1, Ds, &m);
            ok &= close_dot(out[i * Vs + v], r, m, (double)D);
        }
    CHECK(ok, "logits outside the float64 bound");

    /* backward: bitwise the one-rank run, and within the bounds of float64 references */
    int64_t L = tokemb_table_rows(tokemb_mpi_table_local(t));
    float *gs = random_rows((size_t)L, Ds, 5u + (unsigned)rank), *gt = random_rows(Vs, Ds, 99u);
    for (int64_t r = 0; r < L; r++) /* the shard's starting values are the whole buffer's rows */
        memcpy(gs + (size_t)r * Ds, gt + (size_t)tokemb_mpi_table_global_row(t, r) * Ds, Ds * sizeof *gs);
    float *gh = malloc((n * Ds + 1) * sizeof *gh);
    st = tokemb_mpi_logits_backward(t, h, n, gl, gh, gs);
    CHECK(st == TOKEMB_OK, "backward: %s", tokemb_mpi_last_error());
    float *gh_all = malloc((N * Ds + 1) * sizeof *gh_all), *gt0 = malloc(Vs * Ds * sizeof *gt0);
    memcpy(gt0, gt, Vs * Ds * sizeof *gt);
    CHECK(tokemb_mpi_logits_backward(w, h_all, N, g_all, gh_all, gt) == TOKEMB_OK, "one-rank backward: %s",
          tokemb_mpi_last_error());
    int same = 1;
    for (int64_t r = 0; r < L; r++)
        same &= memcmp(gs + (size_t)r * Ds, gt + (size_t)tokemb_mpi_table_global_row(t, r) * Ds, Ds * sizeof *gs) == 0;
    CHECK(same, "grad_shard differs from the one-rank grad rows");
    CHECK(memcmp(gh, gh_all + off * Ds, n * Ds * sizeof *gh) == 0, "grad_hidden differs from the one-rank run");
    ok = 1;
    for (size_t v = 0; v < Vs; v++) /* dW = start + sum_i g(i, v) h(i) over the gathered batch */
        for (size_t c = 0; c < Ds; c++) {
            double m, r = ref_dot(g_all + v, Vs, h_all + c, Ds, N, &m);
            double want = (double)gt0[v * Ds + c] + r;
            ok &= close_dot(gt[v * Ds + c], want, m + fabs(want), (double)(N + 1));
        }
    CHECK(ok, "grad_table outside the float64 bound");
    ok = 1;
    for (size_t i = 0; i < n; i++)
        for (size_t c = 0; c < Ds; c++) {
            double m, r = ref_dot(gl + i * Vs, 1, W + c, Ds, Vs, &m);
            ok &= fabs((double)gh[i * Ds + c] - r) <= ldexp(fabs(r), -23) + ldexp(m, -40);
        }
    CHECK(ok, "grad_hidden outside the float64 bound");
    /* grad_hidden alone gives the same bits */
    float *gh2 = malloc((n * Ds + 1) * sizeof *gh2);
    CHECK(tokemb_mpi_logits_backward(t, h, n, gl, gh2, NULL) == TOKEMB_OK && memcmp(gh, gh2, n * Ds * 4) == 0,
          "grad_hidden alone: %s", tokemb_mpi_last_error());

    /* errors: NULL logits on rank 0 with n > 0; the last rank alone asks for grad_shard */
    float *keep = malloc(((size_t)L * Ds + 1) * sizeof *keep);
    for (size_t i = 0; i < n * Vs; i++) out[i] = 5.0f;
    float one_h[64] = {0};
    st = tokemb_mpi_logits(t, rank == 0 ? one_h : h, rank == 0 ? 1 : n, rank == 0 ? NULL : out);
    CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), "rank 0: hidden or logits is NULL"), "%s",
          tokemb_mpi_last_error());
    ok = 1;
    for (size_t i = 0; i < n * Vs; i++) ok &= out[i] == 5.0f;
    CHECK(ok, "logits written by a failed call");
    if (size > 1) {
        memcpy(keep, gs, (size_t)L * Ds * sizeof *gs);
        for (size_t i = 0; i < n * Ds; i++) gh[i] = 3.0f;
        st = tokemb_mpi_logits_backward(t, h, n, gl, gh, rank == size - 1 ? gs : NULL);
        char want[96];
        snprintf(want, sizeof want, "rank %d: grad_hidden given and grad_shard given, but rank 0", size - 1);
        CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), want), "%s", tokemb_mpi_last_error());
        ok = 1;
        for (size_t i = 0; i < n * Ds; i++) ok &= gh[i] == 3.0f;
        CHECK(ok && memcmp(keep, gs, (size_t)L * Ds * sizeof *gs) == 0, "an output was written by a failed call");
    }
    st = tokemb_mpi_logits_backward(t, h, n, gl, NULL, NULL);
    CHECK(st == TOKEMB_INVALID_ARGUMENT && strstr(tokemb_mpi_last_error(), "both NULL"), "%s", tokemb_mpi_last_error());

    free(keep);
    free(gh2);
    free(gh);
    free(gs);
    free(gt);
    free(out);
    free(ref_all);
    free(gh_all);
    free(gt0);
    tokemb_mpi_table_free(w);
    free(h);
    free(gl);
    free(h_all);
    free(g_all);
    tokemb_table_free(f);
    tokemb_mpi_table_free(t);
}

int main(int argc, char **argv) {
    tk_mpi_start(&argc, &argv);
    for (int s = 0; s < 2; s++) {
        test_logits(tk_shardings[s], 37, 5, (unsigned)s);
        test_logits(tk_shardings[s], 1000, 64, (unsigned)s + 2);
        test_logits(tk_shardings[s], 613, 520, (unsigned)s + 4); /* dim of many 8-lane blocks */
        test_logits(tk_shardings[s], 4, 3, (unsigned)s + 6);
    }
    return tk_mpi_finish();
}
