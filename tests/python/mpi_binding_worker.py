"""Run by test_mpi_binding.py under mpirun: every rank checks tokemb.mpi against a core tokemb.Table
holding the whole table and the concatenated batch, bit for bit, and the agreed errors. Exits 1 on a
mismatch (printing it), 0 when every check passed."""
import sys

import numpy as np
import torch

import tokemb
import tokemb.mpi
from tokemb._mpi_torch import expand_bag_grad

from mpi_worker_common import comm, failures, finish, rank, same, size

ROWS, DIM = 37, 5
sharding = sys.argv[1]


full = np.random.default_rng(3).standard_normal((ROWS, DIM)).astype(np.float32)
ref = tokemb.Table.from_numpy(full)
t = tokemb.mpi.ShardedTable(comm, ROWS, DIM, sharding)
same("rows/dim", (t.rows, t.dim), (ROWS, DIM))
g = t.global_rows
same("global rows", g, np.arange(ROWS)[rank::size] if sharding == "row_modulo" else g)
same("rows owned", comm.allreduce(t.local_rows), ROWS)
t.local.write_rows(0, full[g])
gathered = t.gather(root=0)  # collective
same("gather", gathered if rank == 0 else full, full)

rng = np.random.default_rng(10 + rank)  # each rank its own batch
ids = rng.integers(0, ROWS, size=11 + rank)
all_ids = np.concatenate(comm.allgather(ids))
same("lookup", t.lookup(ids), ref.lookup(ids))
same("lookup i32", t.lookup(ids.astype(np.int32)), ref.lookup(ids))

offs = np.array([0, 3, 3, 7, ids.size], dtype=np.int64)
w = rng.standard_normal(ids.size).astype(np.float32)
for mode, psw in (("sum", None), ("mean", None), ("max", None), ("sum", w)):
    same("bags %s" % mode, t.lookup_bags(ids, offs, mode, psw), ref.lookup_bags(ids, offs, mode, psw))

go = rng.standard_normal((ids.size, DIM)).astype(np.float32)
all_go = np.concatenate(comm.allgather(go))
same("grad_accumulate", t.grad_accumulate(ids, go), ref.grad_accumulate(all_ids, all_go)[g])

# the module's bag gradient reaches the owners as the core's bag backward over the whole batch
bag = tokemb.mpi.ShardedEmbeddingBag(comm, ROWS, DIM, mode="mean", sharding=sharding, owner_grad=True)
bag.table.local.write_rows(0, full[g])
out = bag(torch.from_numpy(ids), torch.from_numpy(offs))
gb = rng.standard_normal((offs.size - 1, DIM)).astype(np.float32)
out.backward(torch.from_numpy(gb))
all_offs = np.concatenate([[0]] + [o[1:] + s for o, s in zip(comm.allgather(offs), np.cumsum([0] + [len(i) for i in comm.allgather(ids)])[:-1])])
want = ref.lookup_bags_backward(all_ids, all_offs, np.concatenate(comm.allgather(gb)), "mean")
# bitwise: the per-id rows (float32 products) summed by the core's grad_accumulate over the whole batch;
# the core's bag backward fuses the 1/size scale into its sum, so it agrees to rounding only
exact = ref.grad_accumulate(all_ids, expand_bag_grad(np.concatenate(comm.allgather(gb)), all_offs, "mean"))
same("ShardedEmbeddingBag mean backward", bag.grad_shard, exact[g])
if not np.allclose(exact, want, rtol=1e-5, atol=1e-6):
    failures.append("rank %d: mean bag gradient far from tokemb_lookup_bags_backward" % rank)

# fused optimizer at the owners == the core table's step over the concatenated batch
t.optimizer("sparse_adam", lr=0.01)
ref.optimizer("sparse_adam", lr=0.01)
for _ in range(2):
    t.step(ids, go)
    ref.step(all_ids, all_go)
same("sparse_adam weights", t.local.to_numpy(), ref.to_numpy()[g])

# errors are agreed: every rank raises OutOfRange naming the offending rank
bad = ids.copy()
if rank == size - 1:
    bad[2] = ROWS
try:
    t.lookup(bad)
    failures.append("rank %d: no error for id %d" % (rank, ROWS))
except tokemb.OutOfRange as e:
    if "rank %d" % (size - 1) not in str(e) or str(ROWS) not in str(e):
        failures.append("rank %d: message %r" % (rank, str(e)))
try:
    tokemb.mpi.ShardedTable(comm, ROWS + rank, DIM) if size > 1 else tokemb.mpi.ShardedTable(comm, 0, DIM)
    failures.append("rank %d: no error for disagreeing rows" % rank)
except tokemb.InvalidArgument as e:
    if "tokemb_mpi" not in str(e) and "rows" not in str(e):
        failures.append("rank %d: message %r" % (rank, str(e)))

bag.table.close()
t.close()
finish()
