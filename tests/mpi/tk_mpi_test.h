/* Shared by the mpirun suites: rank/size, a CHECK that counts failures per rank, a small LCG, every
 * rank's batch of ids (tk_mpi_batch) or bags (tk_mpi_bags) with their rank-ordered concatenation, and
 * tk_mpi_finish (every rank's failures summed, one PASS/FAIL line, the exit status). */
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

#define TK_MPI_MAXN 96 /* ids per rank */
#define TK_MPI_MAXD 64 /* dim */
#define TK_MPI_MAXB 16 /* bags per rank */

/* Counts and displacements of every rank's `mine` items (MPI_Allgather); returns the total. */
static inline int tk_mpi_counts(int mine, int *counts, int *displ) {
    MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, MPI_COMM_WORLD);
    int total = 0;
    for (int r = 0; r < size; r++) {
        displ[r] = total;
        total += counts[r];
    }
    return total;
}

/* This rank's batch of ids (rank 1 brings none; every other id is one of 3 hot ids) with grad_out rows
 * g[n][D], and the rank-ordered concatenation of every rank's batch (all_ids, all_g; this rank's
 * rows start at `off`). */
typedef struct {
    int64_t ids[TK_MPI_MAXN];
    int32_t ids32[TK_MPI_MAXN];
    float g[TK_MPI_MAXN * TK_MPI_MAXD];
    size_t n, off, total;
    int64_t *all_ids;
    float *all_g;
} tk_mpi_batch;

static inline void tk_mpi_batch_make(tk_mpi_batch *b, int64_t V, int64_t D, unsigned seed) {
    unsigned s = seed * 7919u + (unsigned)rank * 104729u + 5u;
    b->n = rank == 1 ? 0 : 4 + lcg(&s) % 20;
    for (size_t i = 0; i < b->n; i++) {
        b->ids[i] = (int64_t)(lcg(&s) % (unsigned)(i % 2 && V > 3 ? 3 : V));
        b->ids32[i] = (int32_t)b->ids[i];
        for (int64_t c = 0; c < D; c++)
            b->g[i * (size_t)D + (size_t)c] = (float)((int)(lcg(&s) % 2001) - 1000) / 311.0f;
    }
    int ns[16], nd[16], gs[16], gd[16];
    int tn = tk_mpi_counts((int)b->n, ns, nd);
    for (int r = 0; r < size; r++) {
        gs[r] = ns[r] * (int)D;
        gd[r] = nd[r] * (int)D;
    }
    b->off = (size_t)nd[rank];
    b->total = (size_t)tn;
    b->all_ids = malloc((size_t)(tn + 1) * sizeof *b->all_ids);
    b->all_g = malloc((size_t)(tn + 1) * (size_t)D * sizeof *b->all_g);
    MPI_Allgatherv(b->ids, ns[rank], MPI_INT64_T, b->all_ids, ns, nd, MPI_INT64_T, MPI_COMM_WORLD);
    MPI_Allgatherv(b->g, gs[rank], MPI_FLOAT, b->all_g, gs, gd, MPI_FLOAT, MPI_COMM_WORLD);
}

static inline void tk_mpi_batch_free(tk_mpi_batch *b) {
    free(b->all_ids);
    free(b->all_g);
}

/* This rank's bags drawn from the LCG state s (2..7 bags of 0..6 ids, rank 2 brings none; odd
 * positions use 5 hot ids; weights in [-1, 2)) and the rank-ordered concatenation of every rank's
 * bags (all, aoff, aw: tb bags, tn ids; this rank's bags start at bag bd). */
typedef struct {
    int64_t ids[TK_MPI_MAXN], off[TK_MPI_MAXB + 1];
    int32_t ids32[TK_MPI_MAXN];
    float w[TK_MPI_MAXN];
    size_t n, nb, tn, tb, bd;
    int64_t *all, *aoff;
    float *aw;
} tk_mpi_bags;

static inline void tk_mpi_bags_make(tk_mpi_bags *b, int64_t V, unsigned s) {
    b->nb = rank == 2 ? 0 : 2 + lcg(&s) % 6;
    b->n = 0;
    b->off[0] = 0;
    int64_t lens[TK_MPI_MAXB];
    for (size_t bg = 0; bg < b->nb; bg++) {
        size_t len = lcg(&s) % 7;
        for (size_t k = 0; k < len; k++, b->n++) {
            b->ids[b->n] = (int64_t)(lcg(&s) % (unsigned)(k % 2 && V > 5 ? 5 : V));
            b->ids32[b->n] = (int32_t)b->ids[b->n];
            b->w[b->n] = (float)(lcg(&s) % 1000) / 333.0f - 1.0f;
        }
        b->off[bg + 1] = (int64_t)b->n;
        lens[bg] = (int64_t)len;
    }
    int ns[16], nd[16], bs[16], bd[16];
    b->tn = (size_t)tk_mpi_counts((int)b->n, ns, nd);
    b->tb = (size_t)tk_mpi_counts((int)b->nb, bs, bd);
    b->bd = (size_t)bd[rank];
    b->all = malloc((b->tn + 1) * sizeof *b->all);
    b->aoff = malloc((b->tb + 1) * sizeof *b->aoff);
    b->aw = malloc((b->tn + 1) * sizeof *b->aw);
    int64_t *all_lens = malloc((b->tb + 1) * sizeof *all_lens);
    MPI_Allgatherv(b->ids, ns[rank], MPI_INT64_T, b->all, ns, nd, MPI_INT64_T, MPI_COMM_WORLD);
    MPI_Allgatherv(b->w, ns[rank], MPI_FLOAT, b->aw, ns, nd, MPI_FLOAT, MPI_COMM_WORLD);
    MPI_Allgatherv(lens, bs[rank], MPI_INT64_T, all_lens, bs, bd, MPI_INT64_T, MPI_COMM_WORLD);
    b->aoff[0] = 0;
    for (size_t bg = 0; bg < b->tb; bg++) b->aoff[bg + 1] = b->aoff[bg] + all_lens[bg];
    free(all_lens);
}

static inline void tk_mpi_bags_free(tk_mpi_bags *b) {
    free(b->all);
    free(b->aoff);
    free(b->aw);
}

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
