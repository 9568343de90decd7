"""Run by test_checkpoint_sharded.py under mpirun: `save PATH SHARDING ROWS DIM SEED` saves the table
np.random.default_rng(SEED).standard_normal((ROWS, DIM)) sharded over the world; `load PATH SHARDING
ROWS DIM SEED` loads the checkpoint (saved at another rank count) and checks every rank's rows against
the same numpy table bit for bit. Prints "ok N ranks" on rank 0 and exits 0, else 1."""
import sys

import numpy as np
from mpi4py import MPI

import tokemb.mpi

comm = MPI.COMM_WORLD
mode, path, sharding = sys.argv[1], sys.argv[2], sys.argv[3]
rows, dim, seed = (int(v) for v in sys.argv[4:7])
full = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
t = tokemb.mpi.ShardedTable(comm, rows, dim, sharding)
g = t.global_rows
if mode == "save":
    t.local.write_rows(0, full[g])
    t.save(path)
    ok = True
else:
    t.local.write_rows(0, np.full((len(g), dim), 7.0, dtype=np.float32))
    t.load(path)
    ok = t.local.numpy().tobytes() == full[g].tobytes()
ok = comm.allreduce(1 if ok else 0, op=MPI.MIN) == 1
if comm.Get_rank() == 0:
    print("%s %d ranks" % ("ok" if ok else "MISMATCH", comm.Get_size()))
t.close()
sys.exit(0 if ok else 1)
