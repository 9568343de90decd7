/* example_sharded: a 100000 x 32 table sharded over every rank of MPI_COMM_WORLD (row-wise, or as the
 * first argument says: row, row_modulo, column); each rank pools its own bags, pushes a gradient and
 * takes row-wise Adagrad steps at the owners. Run:
 *   mpirun -np 4 build/mpi/example_sharded [column]
 * Rank 0 prints a checksum of the pooled output of every step: the same numbers for any -np and any
 * sharding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokemb_mpi.h"

#define V 100000
#define D 32
#define BAGS 64
#define PER_BAG 20

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int32_t sharding = TOKEMB_MPI_ROW;
    if (argc > 1 && !strcmp(argv[1], "row_modulo")) sharding = TOKEMB_MPI_ROW_MODULO;
    if (argc > 1 && !strcmp(argv[1], "column")) sharding = TOKEMB_MPI_COLUMN;
    tokemb_mpi_table *t = NULL;
    if (tokemb_mpi_table_create(MPI_COMM_WORLD, V, D, sharding, &t) != TOKEMB_OK) {
        fprintf(stderr, "rank %d: %s\n", rank, tokemb_mpi_last_error());
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    tokemb_table *local = tokemb_mpi_table_local(t);
    float *w = tokemb_table_data(local);
    int64_t dl = tokemb_table_dim(local);                  /* D, or this rank's columns with the column sharding */
    for (int64_t r = 0; r < tokemb_table_rows(local); r++) /* a value of the global row and column, any -np */
        for (int64_t c = 0; c < dl; c++)
            w[r * dl + c] =
                (float)((tokemb_mpi_table_global_row(t, r) * 37 + tokemb_mpi_table_global_col(t, c)) % 101) / 101.0f;
    tokemb_optim_select(local, TOKEMB_OPTIM_ROWWISE_ADAGRAD);
    tokemb_optim_set_param_f64(local, TOKEMB_OPTIM_LR, 0.1);

    /* the global batch of every step is split between the ranks in rank order */
    int64_t ids[BAGS * PER_BAG], off[BAGS + 1];
    float out[BAGS * D], grad[BAGS * PER_BAG * D];
    for (int step = 0; step < 5; step++) {
        int lo = BAGS * rank / size, hi = BAGS * (rank + 1) / size, nb = hi - lo;
        unsigned s = 12345u + (unsigned)step * 7919u;
        for (int b = 0; b < BAGS * PER_BAG; b++) {
            s = s * 1103515245u + 12345u;
            if (b >= lo * PER_BAG && b < hi * PER_BAG) ids[b - lo * PER_BAG] = (int64_t)((s >> 8) % (b % 3 ? V : 50));
        }
        for (int b = 0; b <= nb; b++) off[b] = (int64_t)b * PER_BAG;
        if (tokemb_mpi_lookup_bags(t, ids, (size_t)nb * PER_BAG, off, (size_t)nb, TOKEMB_SUM, NULL, out) != TOKEMB_OK) {
            fprintf(stderr, "rank %d: %s\n", rank, tokemb_mpi_last_error());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        double sum = 0, total = 0;
        for (int i = 0; i < nb * D; i++) sum += (double)out[i] * out[i];
        MPI_Reduce(&sum, &total, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
        if (rank == 0) printf("step %d: sum of squares of the pooled output %.9g\n", step, total);
        /* d(sum of squares)/d row = 2 * bag output, for every id of the bag */
        for (int b = 0; b < nb; b++)
            for (int k = 0; k < PER_BAG; k++)
                for (int c = 0; c < D; c++)
                    grad[((size_t)b * PER_BAG + (size_t)k) * D + (size_t)c] = 2.0f * out[b * D + c];
        if (tokemb_mpi_optim_step(t, ids, (size_t)nb * PER_BAG, grad) != TOKEMB_OK) {
            fprintf(stderr, "rank %d: %s\n", rank, tokemb_mpi_last_error());
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
    }
    tokemb_mpi_table_free(t);
    MPI_Finalize();
    return 0;
}
