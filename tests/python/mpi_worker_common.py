"""Shared by the mpirun workers of tests/python (mpi_binding_worker.py, mpi_collectives_worker.py): the
communicator, a bitwise comparison that records failures, and the closing report every rank joins."""
import sys

import numpy as np
from mpi4py import MPI

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
failures = []


def same(what, a, b):
    """Records a failure unless a and b have the same shape, dtype and bytes."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype or a.tobytes() != b.tobytes():
        failures.append("rank %d: %s differs" % (rank, what))


def finish():
    """Collective: rank 0 prints every rank's failures and "checked P ranks, F failures"; exits 1 if any."""
    all_failures = comm.allgather(failures)
    if rank == 0:
        for f in sum(all_failures, []):
            print(f)
        print("checked %d ranks, %d failures" % (size, sum(len(f) for f in all_failures)))
    sys.exit(1 if any(all_failures) else 0)
