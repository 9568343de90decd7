"""Shared by the mpirun workers (mpi_binding_worker.py, mpi_tables_worker.py, mpi_collectives_worker.py): a bitwise comparison that
records a failure, and the end of a run (every rank's failures printed by rank 0, one summary line, the
exit status)."""
import sys

import numpy as np


def same(failures, rank, what, a, b):
    """Appends "rank R: WHAT differs" to failures unless a and b have the same shape, dtype and bytes."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
        failures.append("rank %d: %s differs" % (rank, what))


def finish(comm, failures):
    """Collective: rank 0 prints every rank's failures and "checked P ranks, N failures"; exits 1 if any."""
    all_failures = comm.allgather(failures)
    if comm.Get_rank() == 0:
        for f in sum(all_failures, []):
            print(f)
        print("checked %d ranks, %d failures" % (comm.Get_size(), sum(len(f) for f in all_failures)))
    sys.exit(1 if any(all_failures) else 0)
