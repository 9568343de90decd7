"""Run by test_mpi_binding.py under mpirun: tokemb.mpi's pipelined lookup and bags, coalesced gradient
against one core tokemb.Table holding the whole table (bit for bit), its tied logits and backward
against the same calls on one rank holding the whole table (bitwise: equality across rank counts) and
numpy float64 (within the float bounds). Exits 1 on a mismatch (printing it), 0 when all passed."""
import sys

import numpy as np
from mpi4py import MPI

import tokemb
import tokemb.mpi

import mpi_worker_checks

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
failures = []


def same(what, a, b):
    mpi_worker_checks.same(failures, rank, what, a, b)

ROWS, DIM = 41, 6
sharding = sys.argv[1]


full = np.random.default_rng(5).standard_normal((ROWS, DIM)).astype(np.float32)
ref = tokemb.Table.from_numpy(full)
t = tokemb.mpi.ShardedTable(comm, ROWS, DIM, sharding)
g = t.global_rows
t.local.write_rows(0, full[g])
rng = np.random.default_rng(20 + rank)

# pipelined lookup of K = 4 batches (rank 1's second batch empty), int64 and int32
batches = [rng.integers(0, ROWS, size=0 if (rank == 1 and b == 1) else 5 + 3 * b + rank) for b in range(4)]
outs = t.lookup_batches(batches)
outs32 = t.lookup_batches([b.astype(np.int32) for b in batches])
for b, ids in enumerate(batches):
    same("lookup_batches %d" % b, outs[b], ref.lookup(ids))
    same("lookup_batches i32 %d" % b, outs32[b], ref.lookup(ids))

# pipelined bags: the core's pooling of each batch (a bag never spans ranks)
bags = [(b, np.array([0, min(2, b.size), b.size], dtype=np.int64)) for b in batches]
wts = [rng.standard_normal(b.size).astype(np.float32) if i != 1 else None for i, b in enumerate(batches)]
for mode, psw in (("sum", wts), ("mean", None), ("max", None)):
    got = t.lookup_bags_batches(bags, mode, psw)
    for b, (i, o) in enumerate(bags):
        same("lookup_bags_batches %s %d" % (mode, b), got[b], ref.lookup_bags(i, o, mode, None if psw is None else psw[b]))

# coalesced gradient at the owners: this rank's share of the core's coalesce over the whole batch
ids = rng.integers(0, ROWS, size=30 + 4 * rank)
go = (rng.standard_normal((ids.size, DIM)) * 3).astype(np.float32)
all_ids, all_go = np.concatenate(comm.allgather(ids)), np.concatenate(comm.allgather(go))
lid, rows = t.grad_coalesce(ids, go)
rid, rrows = ref.grad_coalesce(all_ids, all_go)
mine = np.isin(rid, g)
same("grad_coalesce ids", g[lid], rid[mine])
same("grad_coalesce rows", rows, rrows[mine])

# tied logits: bitwise a whole-table run on one rank, within the float bound of float64
V, D = 97, 12
w = np.random.default_rng(8).standard_normal((V, D)).astype(np.float32)
head = tokemb.mpi.ShardedTable(comm, V, D, sharding)
head.local.write_rows(0, w[head.global_rows])
one = tokemb.mpi.ShardedTable(MPI.COMM_SELF, V, D, sharding)
one.local.write_rows(0, w)
h = rng.standard_normal((3 + rank, D)).astype(np.float32)
gl = rng.standard_normal((3 + rank, V)).astype(np.float32)
all_h, all_gl = np.concatenate(comm.allgather(h)), np.concatenate(comm.allgather(gl))
off = sum(x.shape[0] for x in comm.allgather(h)[:rank])
lg = head.logits(h)
same("logits across rank counts", lg, one.logits(all_h)[off:off + h.shape[0]])
exact = h.astype(np.float64) @ w.astype(np.float64).T
bound = D * 2.0 ** -24 * (np.abs(h).astype(np.float64) @ np.abs(w).astype(np.float64).T)
if not np.all(np.abs(lg - exact) <= bound):
    failures.append("rank %d: logits outside the float64 bound" % rank)
gh, gs = head.logits_backward(h, gl, True, True)
gh1, gt1 = one.logits_backward(all_h, all_gl, True, True)
same("grad_hidden across rank counts", gh, gh1[off:off + h.shape[0]])
same("grad_shard across rank counts", gs, gt1[head.global_rows])
exact = gl.astype(np.float64) @ w.astype(np.float64)
mag = np.abs(gl).astype(np.float64) @ np.abs(w).astype(np.float64)
if not np.all(np.abs(gh - exact) <= np.abs(exact) * 2.0 ** -23 + mag * 2.0 ** -40):
    failures.append("rank %d: grad_hidden outside the float64 bound" % rank)

# agreed errors: a bad id in the last rank's third batch
bad = [b.copy() for b in batches]
if rank == size - 1:
    bad[2] = np.array([0, ROWS + 1], dtype=np.int64)
try:
    t.lookup_batches(bad)
    failures.append("rank %d: no error for id %d" % (rank, ROWS + 1))
except tokemb.OutOfRange as e:
    if "rank %d: batch 2" % (size - 1) not in str(e):
        failures.append("rank %d: message %r" % (rank, str(e)))

for x in (one, head, t):
    x.close()
mpi_worker_checks.finish(comm, failures)
