/* bench_pipeline: the pipelined lookup of K batches (tokemb_mpi_lookup_batches) against K separate
 * tokemb_mpi_lookup calls on the same batches, paired and interleaved in one run.
 *   mpirun -np 4 --oversubscribe build/mpi/bench_pipeline [rows dim n k reps threads_per_rank [p|s]]
 * A last argument p or s runs only the pipelined or only the separate form (for valgrind --tool=callgrind
 * instruction counts per rank, which the shared machine's noise does not blur).
 * Each repetition times both forms (order alternating), each as the slowest rank's time between
 * barriers; prints the medians after 3 warm-up repetitions and the median of the per-repetition
 * ratios (pipelined / separate: below 1 means the overlap pays). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokemb_mpi.h"

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static double timed(MPI_Comm comm, tokemb_mpi_table *t, int pipelined, size_t k, int64_t **ids, size_t *n,
                    float **out) {
    MPI_Barrier(comm);
    double t0 = MPI_Wtime();
    if (pipelined) {
        if (tokemb_mpi_lookup_batches(t, k, (const int64_t *const *)ids, n, out) != TOKEMB_OK) MPI_Abort(comm, 1);
    } else {
        for (size_t b = 0; b < k; b++)
            if (tokemb_mpi_lookup(t, ids[b], n[b], out[b]) != TOKEMB_OK) MPI_Abort(comm, 1);
    }
    double dt = MPI_Wtime() - t0, slowest;
    MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, comm);
    return slowest;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int64_t V = argc > 1 ? atoll(argv[1]) : 200000, D = argc > 2 ? atoll(argv[2]) : 64;
    size_t n = argc > 3 ? (size_t)atoll(argv[3]) : 4096, k = argc > 4 ? (size_t)atoll(argv[4]) : 8;
    int reps = argc > 5 ? atoi(argv[5]) : 15, warm = 3;
    /* one core thread per rank: the ranks already share the cores */
    tokemb_set_num_threads(argc > 6 ? atoi(argv[6]) : 1);
    tokemb_mpi_table *t = NULL;
    if (tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, TOKEMB_MPI_ROW, &t) != TOKEMB_OK) {
        fprintf(stderr, "%s\n", tokemb_mpi_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    tokemb_table *l = tokemb_mpi_table_local(t);
    float *w = tokemb_table_data(l);
    for (int64_t i = 0; i < tokemb_table_rows(l) * D; i++) w[i] = (float)(i % 1009) * 0.001f;
    int64_t **ids = malloc(k * sizeof *ids);
    float **a = malloc(k * sizeof *a), **b = malloc(k * sizeof *b);
    size_t *ns = malloc(k * sizeof *ns);
    unsigned s = 12345u + (unsigned)rank * 7919u;
    for (size_t j = 0; j < k; j++) {
        ns[j] = n;
        ids[j] = malloc(n * sizeof **ids);
        a[j] = malloc(n * (size_t)D * sizeof **a);
        b[j] = malloc(n * (size_t)D * sizeof **b);
        for (size_t i = 0; i < n; i++) { /* skewed: a power law over the rows (hot ids repeat) */
            s = s * 1103515245u + 12345u;
            double u = ((s >> 8) + 0.5) / 16777216.0;
            ids[j][i] = (int64_t)((double)V * pow(u, 3.0)) % V;
        }
    }
    double *tp = malloc((size_t)reps * sizeof *tp), *ts = malloc((size_t)reps * sizeof *ts),
           *ratio = malloc((size_t)reps * sizeof *ratio);
    if (argc > 7) { /* one form only, for instruction counts */
        for (int r = 0; r < reps; r++) timed(MPI_COMM_WORLD, t, argv[7][0] == 'p', k, ids, ns, a);
        MPI_Finalize();
        return 0;
    }
    for (int r = -warm; r < reps; r++) {
        double p, q;
        if (r % 2) {
            p = timed(MPI_COMM_WORLD, t, 1, k, ids, ns, a);
            q = timed(MPI_COMM_WORLD, t, 0, k, ids, ns, b);
        } else {
            q = timed(MPI_COMM_WORLD, t, 0, k, ids, ns, b);
            p = timed(MPI_COMM_WORLD, t, 1, k, ids, ns, a);
        }
        if (r >= 0) {
            tp[r] = p;
            ts[r] = q;
            ratio[r] = p / q;
        }
    }
    int same = 1;
    for (size_t j = 0; j < k; j++) same &= memcmp(a[j], b[j], n * (size_t)D * sizeof **a) == 0;
    int all_same;
    MPI_Allreduce(&same, &all_same, 1, MPI_INT, MPI_LAND, MPI_COMM_WORLD);
    double mp = median(tp, reps), ms = median(ts, reps), mr = median(ratio, reps); /* sorts each */
    if (rank == 0)
        printf("np %d rows %lld dim %lld n %zu k %zu reps %d: pipelined %.3f ms, separate %.3f ms (medians), "
               "paired ratio pipelined/separate median %.3f [min %.3f max %.3f], outputs %s\n",
               size, (long long)V, (long long)D, n, k, reps, 1e3 * mp, 1e3 * ms, mr, ratio[0], ratio[reps - 1],
               all_same ? "identical" : "DIFFER");
    for (size_t j = 0; j < k; j++) {
        free(ids[j]);
        free(a[j]);
        free(b[j]);
    }
    free(ids);
    free(a);
    free(b);
    free(ns);
    free(tp);
    free(ts);
    free(ratio);
    tokemb_mpi_table_free(t);
    MPI_Finalize();
    return all_same ? 0 : 1;
}
