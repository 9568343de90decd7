/* Shared by the mpirun suites: rank/size, a CHECK that counts failures per rank, a small LCG, the
 * rank-order concatenation of every rank's batch (tk_mpi_concat), and tk_mpi_finish (every rank's
 * failures summed, one PASS/FAIL line, the exit status). */
#ifndef TK_MPI_TEST_H
#define TK_MPI_TEST_H

#include <stdio.h>
#include <stdlib.h>

#include "tokemb_mpi.h"

static int rank, size, failures;

#define CHECK(cond, ...)                                                                            \
    do {                                                                                            \
        if (!(cond)) {                                                                              \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", rank, __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                                           \
            fprintf(stderr, "\n");                                                                  \
            failures++;                                                                             \
        }                                                                                           \
    } while (0)

static inline unsigned lcg(unsigned *s) { return (*s = *s * 1103515245u + 12345u) >> 8; }

static inline void tk_mpi_start(int *argc, char ***argv) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
}

/* The rank-order concatenation of every rank's ids[n] and rows[n][D]: *all_ids[total] and
 * *all_rows[total][D], malloc'ed (the caller frees them). Returns total. */
static inline size_t tk_mpi_concat(const int64_t *ids, const float *rows, size_t n, int64_t D, int64_t **all_ids,
                                   float **all_rows) {
    int cn = (int)n, ns[16], nd[16], gs[16], gd[16], tn = 0;
    MPI_Allgather(&cn, 1, MPI_INT, ns, 1, MPI_INT, MPI_COMM_WORLD);
    for (int r = 0; r < size; r++) {
        nd[r] = tn;
        gs[r] = ns[r] * (int)D;
        gd[r] = tn * (int)D;
        tn += ns[r];
    }
    *all_ids = malloc((size_t)(tn + 1) * sizeof **all_ids);
    *all_rows = malloc((size_t)(tn + 1) * (size_t)D * sizeof **all_rows);
    MPI_Allgatherv(ids, cn, MPI_INT64_T, *all_ids, ns, nd, MPI_INT64_T, MPI_COMM_WORLD);
    MPI_Allgatherv(rows, cn * (int)D, MPI_FLOAT, *all_rows, gs, gd, MPI_FLOAT, MPI_COMM_WORLD);
    return (size_t)tn;
}

static inline int tk_mpi_finish(void) {
    int any = 0;
    MPI_Allreduce(&failures, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("%s: %d ranks, %d failures\n", any ? "FAIL" : "PASS", size, any);
    MPI_Finalize();
    return any ? 1 : 0;
}

#endif
