"""Run by test_mpi_tables_binding.py under mpirun: tokemb.mpi.ShardedTables (TABLE sharding) against one
core tokemb.Table per whole table and the concatenated batches, bit for bit, plus the placement and the
agreed errors. argv[1]: the number of tables. Exits 1 on a mismatch (printing it), 0 when all passed."""
import sys

import numpy as np
import torch
from mpi4py import MPI

import tokemb
import tokemb.mpi
from tokemb._mpi_torch import expand_bag_grad

import mpi_worker_checks

comm = MPI.COMM_WORLD
rank, size = comm.Get_rank(), comm.Get_size()
SHAPES = [(100, 8), (50, 64), (1000, 4), (7, 3), (64, 16), (10, 80), (300, 2)][:int(sys.argv[1])]
T = len(SHAPES)
failures = []


def same(what, a, b):
    mpi_worker_checks.same(failures, rank, what, a, b)


# placement: golden owners derived by hand from the rule in include/tokemb_mpi.h (7 tables: costs 800,
# 3200, 4000, 21, 1024, 800, 600; 2 tables: 800 and 3200, the larger to rank 0)
GOLD = {7: {1: [0] * 7, 2: [0, 1, 0, 1, 1, 1, 0], 3: [2, 1, 0, 1, 2, 2, 2], 4: [3, 1, 0, 3, 2, 3, 2]},
        2: {1: [0, 0], 2: [1, 0], 3: [1, 0], 4: [1, 0]}}[T]
for p, want in GOLD.items():
    same("plan_tables P=%d" % p, tokemb.mpi.plan_tables(SHAPES, p), np.array(want, dtype=np.int32))
ts = tokemb.mpi.ShardedTables(comm, SHAPES)
owners = [ts.owner(k) for k in range(T)]
same("owners", np.array(owners, dtype=np.int32), tokemb.mpi.plan_tables(SHAPES, size))
rng0 = np.random.default_rng(7)
full = [rng0.standard_normal(s).astype(np.float32) for s in SHAPES]
refs = [tokemb.Table.from_numpy(f) for f in full]
for k in range(T):
    t = ts.local(k)
    if (t is not None) != (owners[k] == rank):
        failures.append("rank %d: local(%d) presence" % (rank, k))
    if t is not None:
        t.write_rows(0, full[k])
for k in range(T):
    g = ts.gather(k, root=0)
    if rank == 0:
        same("gather %d" % k, g, full[k])

rng = np.random.default_rng(100 + rank)
ids = [rng.integers(0, r, size=(0 if (rank == 1 and k == 0) else 3 + (k + rank) % 5))
       for k, (r, _) in enumerate(SHAPES)]  # rank 1 brings nothing for table 0
all_ids = [np.concatenate(comm.allgather(i)) for i in ids]
for k, o in enumerate(ts.lookup(ids)):
    same("lookup %d" % k, o, refs[k].lookup(ids[k]))
for k, o in enumerate(ts.lookup([i.astype(np.int32) for i in ids])):
    same("lookup i32 %d" % k, o, refs[k].lookup(ids[k]))
sent_ids, sent_floats = ts.traffic()  # each distinct id of each table once; owners serve every rank's
same("ids sent", sent_ids, sum(np.unique(i).size for i in ids))
same("row floats served", comm.allreduce(sent_floats), comm.allreduce(sum(np.unique(i).size * d for i, (_, d) in
                                                                          zip(ids, SHAPES))))
offs = [np.array([0, i.size // 2, i.size], dtype=np.int64) for i in ids]
w = [rng.standard_normal(i.size).astype(np.float32) if k % 2 else None for k, i in enumerate(ids)]
for mode, psw in (("sum", None), ("mean", None), ("max", None), ("sum", w)):
    got = ts.lookup_bags(ids, offs, mode, psw)
    for k in range(T):
        want = refs[k].lookup_bags(ids[k], offs[k], mode, None if psw is None else psw[k])
        same("bags %s %d" % (mode, k), got[k], want)

go = [rng.standard_normal((i.size, d)).astype(np.float32) for i, (_, d) in zip(ids, SHAPES)]
all_go = [np.concatenate(comm.allgather(g)) for g in go]
grads = ts.grad_accumulate(ids, go)
for k in range(T):
    if owners[k] == rank:
        same("grad %d" % k, grads[k], refs[k].grad_accumulate(all_ids[k], all_go[k]))
    elif grads[k] is not None:
        failures.append("rank %d: a gradient for table %d it does not own" % (rank, k))

kinds = ["sgd", "rowwise_adagrad", "adagrad", "sparse_adam"]
for k in range(T):
    ts.optimizer(k, kinds[k % 4], lr=0.02)
    refs[k].optimizer(kinds[k % 4], lr=0.02)
for _ in range(2):
    ts.step(ids, go)
    for k in range(T):
        refs[k].step(all_ids[k], all_go[k])
for k in range(T):
    if ts.local(k) is not None:
        same("%s weights %d" % (kinds[k % 4], k), ts.local(k).to_numpy(), refs[k].to_numpy())

# the torch collection: forward = pooled bags per table, backward + step = each table's fused step over the
# concatenated per-id bag gradients (sum with weights on odd tables, then mean)
for mode in ("sum", "mean"):
    ebc = tokemb.mpi.ShardedEmbeddingBagCollection(comm, SHAPES, mode=mode)
    crefs = [tokemb.Table.from_numpy(f) for f in full]
    for k in range(T):
        if ebc.tables.local(k) is not None:
            ebc.tables.local(k).write_rows(0, full[k])
        ebc.optimizer(k, kinds[k % 4], lr=0.03)
        crefs[k].optimizer(kinds[k % 4], lr=0.03)
    psw = [None if x is None else torch.from_numpy(x) for x in w] if mode == "sum" else None
    outs = ebc([torch.from_numpy(i) for i in ids], [torch.from_numpy(o) for o in offs], psw)
    for k in range(T):
        want = crefs[k].lookup_bags(ids[k], offs[k], mode, None if psw is None else w[k])
        same("collection forward %s %d" % (mode, k), outs[k].detach().numpy(), want)
    gb = [rng.standard_normal((o.size - 1, d)).astype(np.float32) for o, (_, d) in zip(offs, SHAPES)]
    torch.autograd.backward(list(outs), [torch.from_numpy(g) for g in gb])
    ebc.step()
    for k in range(T):
        rows = expand_bag_grad(gb[k], offs[k], mode, None if psw is None else w[k])
        crefs[k].step(all_ids[k], np.concatenate(comm.allgather(rows)))
        if ebc.tables.local(k) is not None:
            same("collection step %s %d" % (mode, k), ebc.tables.local(k).to_numpy(), crefs[k].to_numpy())
    ebc.tables.close()

# a list with one entry too few is refused before anything is called (the same on every rank)
for call in (lambda: ts.lookup(ids[:-1]), lambda: ts.step(ids, go[:-1]),
             lambda: ts.lookup_bags(ids, offs, "sum", w[:-1]), lambda: ts.grad_accumulate(ids, go, [None] * (T - 1))):
    try:
        call()
        failures.append("rank %d: a short per-table list was accepted" % rank)
    except ValueError as e:
        if "entry per table" not in str(e):
            failures.append("rank %d: message %r" % (rank, str(e)))

# errors are agreed: every rank raises OutOfRange naming the rank and the table
bad = [i.copy() for i in ids]
if rank == size - 1:
    bad[T - 1] = np.array([0, SHAPES[T - 1][0]], dtype=np.int64)
try:
    ts.lookup(bad)
    failures.append("rank %d: no error for an id outside table %d" % (rank, T - 1))
except tokemb.OutOfRange as e:
    want = "rank %d: table %d: token id %d at index 1" % (size - 1, T - 1, SHAPES[T - 1][0])
    if want not in str(e):
        failures.append("rank %d: message %r lacks %r" % (rank, str(e), want))
try:
    tokemb.mpi.ShardedTables(comm, SHAPES + ([(3, 3)] if rank == size - 1 and size > 1 else []) +
                             ([(0, 3)] if size == 1 else []))
    failures.append("rank %d: no error for disagreeing tables" % rank)
except tokemb.InvalidArgument as e:
    if "tokemb_mpi_tables_create" not in str(e):
        failures.append("rank %d: message %r" % (rank, str(e)))

ts.close()
mpi_worker_checks.finish(comm, failures)
