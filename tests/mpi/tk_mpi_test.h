/* Shared by the mpirun suites: rank/size, a CHECK that counts failures per rank, a small LCG, and
 * tk_mpi_finish (every rank's failures summed, one PASS/FAIL line, the exit status). */
#ifndef TK_MPI_TEST_H
#define TK_MPI_TEST_H

#include <stdio.h>

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

static inline int tk_mpi_finish(void) {
    int any = 0;
    MPI_Allreduce(&failures, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0) printf("%s: %d ranks, %d failures\n", any ? "FAIL" : "PASS", size, any);
    MPI_Finalize();
    return any ? 1 : 0;
}

#endif
