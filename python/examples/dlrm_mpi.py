"""A small DLRM-style model trained over MPI with a sharded embedding bag (tokemb.mpi).

    mpirun -np 4 /usr/bin/python3 python/examples/dlrm_mpi.py --steps 5 --out result.npz
    /usr/bin/python3 python/examples/dlrm_mpi.py --no-mpi --out reference.npz    # one tokemb.Table, no MPI

The embedding table is sharded over the ranks (model parallel: collective bag lookup, gradients sent to
the row owners, fused row-wise Adagrad step at the owners). The dense part (bottom MLP over dense
features, top MLP over [dense, pooled embedding]) is replicated on every rank. Each rank brings its
slice of the global batch; the pooled embeddings, dense features and labels are all-gathered in rank
order and every rank runs the dense part on the whole global batch, so the dense gradients are the same
on every rank without an all-reduce (an all-reduce of per-rank partial gradients would change the float
summation order, so losses could not be bitwise equal across rank counts). With this design the losses
and the final weights are bitwise equal for any number of ranks, including 1 (tests/python/test_mpi_dlrm.py).
"""
import argparse

import numpy as np
import torch
from torch import nn

import tokemb

ROWS, DIM, DENSE, BAGS, HOT = 1000, 8, 4, 32, 5  # global batch: BAGS samples, up to HOT ids each


def global_batch(step):
    """The step's global batch, identical on every rank: CSR ids/offsets, dense features, labels."""
    rng = np.random.default_rng(1000 + step)
    counts = rng.integers(1, HOT + 1, size=BAGS)
    ids = (rng.zipf(1.3, size=int(counts.sum())) - 1) % ROWS  # skewed ids, as click logs are
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    dense = rng.standard_normal((BAGS, DENSE)).astype(np.float32)
    labels = (rng.random(BAGS) < 0.3).astype(np.float32)
    return ids.astype(np.int64), offsets, dense, labels


def my_slice(ids, offsets, dense, labels, rank, size):
    """Rank r's contiguous block of samples (rank order = the global order)."""
    b0, b1 = BAGS * rank // size, BAGS * (rank + 1) // size
    o0, o1 = offsets[b0], offsets[b1]
    return ids[o0:o1].copy(), offsets[b0:b1 + 1] - o0, dense[b0:b1], labels[b0:b1]


class LocalBag(nn.Module):
    """--no-mpi reference: the same bag and fused optimizer on one core tokemb.Table, no MPI at all."""

    def __init__(self, rows, dim):
        super().__init__()
        self.table = tokemb.Table(rows, dim)
        self.anchor = torch.zeros((), requires_grad=True)
        self.pending = []

    def forward(self, ids, offsets):
        bag = self

        class Fn(torch.autograd.Function):
            @staticmethod
            def forward(ctx, anchor):
                return torch.from_numpy(bag.table.lookup_bags(ids.numpy(), offsets.numpy(), "sum"))

            @staticmethod
            def backward(ctx, g):
                rows = np.repeat(g.numpy(), np.diff(offsets.numpy()), axis=0)  # d(sum)/d(row) per id
                bag.pending.append((ids.numpy(), rows))
                return None
        return Fn.apply(self.anchor)

    def step(self):
        for ids, rows in self.pending:
            self.table.step(ids, rows)
        self.pending = []


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--sharding", default="row", choices=("row", "row_modulo", "column"))
    ap.add_argument("--out", help="rank 0 writes losses and final weights here (.npz)")
    ap.add_argument("--no-mpi", action="store_true", help="reference run on one tokemb.Table without MPI")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the dense part must compute the same way on every rank
    init = np.random.default_rng(7).standard_normal((ROWS, DIM)).astype(np.float32) * 0.1
    if args.no_mpi:
        rank, size = 0, 1
        emb = LocalBag(ROWS, DIM)
        emb.table.write_rows(0, init)
        emb.table.optimizer("rowwise_adagrad", lr=0.05, eps=1e-8)

        def gather_rows(x):
            return x

        def allgather(x):
            return x
    else:
        from mpi4py import MPI
        import tokemb.mpi
        from tokemb._mpi_torch import AllGatherRows
        comm = MPI.COMM_WORLD
        rank, size = comm.Get_rank(), comm.Get_size()
        emb = tokemb.mpi.ShardedEmbeddingBag(comm, ROWS, DIM, mode="sum", sharding=args.sharding)
        mine = np.ix_(emb.table.global_rows, emb.table.global_cols)
        emb.table.local.write_rows(0, np.ascontiguousarray(init[mine]))  # every rank fills its own block
        emb.optimizer("rowwise_adagrad", lr=0.05, eps=1e-8)

        def gather_rows(x):
            return AllGatherRows.apply(x, comm)

        def allgather(x):
            return np.concatenate(comm.allgather(x))

    torch.manual_seed(0)  # same dense weights on every rank
    bottom = nn.Sequential(nn.Linear(DENSE, DIM), nn.ReLU())
    top = nn.Sequential(nn.Linear(2 * DIM, 16), nn.ReLU(), nn.Linear(16, 1))
    params = list(bottom.parameters()) + list(top.parameters())
    opt = torch.optim.SGD(params, lr=0.1)
    loss_fn = nn.BCEWithLogitsLoss()

    losses = []
    for step in range(args.steps):
        ids, offsets, dense, labels = my_slice(*global_batch(step), rank, size)
        pooled = emb(torch.from_numpy(ids), torch.from_numpy(offsets))           # [my bags, DIM], collective
        pooled_all = gather_rows(pooled)                                           # [BAGS, DIM], rank order
        dense_all = torch.from_numpy(allgather(dense))
        labels_all = torch.from_numpy(allgather(labels))
        logits = top(torch.cat([bottom(dense_all), pooled_all], dim=1)).squeeze(1)
        loss = loss_fn(logits, labels_all)
        opt.zero_grad()
        loss.backward()      # dense grads (same on every rank) and, collectively, the bag gradient
        opt.step()
        emb.step()           # fused row-wise Adagrad at the owners
        losses.append(loss.item())
        if rank == 0:
            print("step %d loss %.6f" % (step, losses[-1]), flush=True)

    full = emb.table.to_numpy() if args.no_mpi else emb.table.gather(root=0)
    if rank == 0 and args.out:
        np.savez(args.out, losses=np.array(losses, dtype=np.float32), embedding=full,
                 **{"dense%d" % i: p.detach().numpy() for i, p in enumerate(params)})
    emb.table.close()


if __name__ == "__main__":
    main()
