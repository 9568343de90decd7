"""tokemb.mpi.ShardedEmbeddingBag: a torch EmbeddingBag whose table is sharded over MPI ranks."""
from typing import Any, Optional, Union

import numpy as np
import torch
from torch import nn

from .mpi import ShardedTable

__all__ = ["ShardedEmbeddingBag", "ShardedEmbeddingBagCollection", "AllGatherRows"]


def _bag_counts(offsets: np.ndarray) -> np.ndarray:
    return np.diff(offsets)


def expand_bag_grad(grad_bags: np.ndarray, offsets: np.ndarray, mode: str, per_sample_weights=None) -> np.ndarray:
    """The lookup gradient [n, dim] of an EmbeddingBag (sum / mean) from its output gradient
    [n_bags, dim]: each id gets its bag's gradient (times its weight for a weighted sum, divided by the
    bag size for mean, rounded as the core's bag backward does). Elementwise per id, so independent of how the
    batch is split over ranks."""
    counts = _bag_counts(offsets)
    rows = np.repeat(grad_bags, counts, axis=0)
    if mode == "mean":  # the core's scale: float(1.0 / bag size) in double, then one float32 product
        rows = rows * (1.0 / np.repeat(counts, counts).astype(np.float64)).astype(np.float32)[:, None]
    elif per_sample_weights is not None:
        rows = rows * per_sample_weights[:, None]
    return np.ascontiguousarray(rows, dtype=np.float32)


class _BagsFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, anchor, module, ids, offsets, psw):
        psw_np = None if psw is None else psw.detach().contiguous().numpy()
        out = module.table.lookup_bags(ids.numpy(), offsets.numpy(), module.mode, psw_np)
        ctx.module, ctx.ids, ctx.offsets, ctx.psw = module, ids, offsets, psw_np
        return torch.from_numpy(out)

    @staticmethod
    def backward(ctx, grad_out):
        m = ctx.module
        rows = expand_bag_grad(grad_out.contiguous().numpy(), ctx.offsets.numpy(), m.mode, ctx.psw)
        m._pending.append((ctx.ids.numpy(), rows))
        if m.grad_shard is not None:  # collective: every rank's rows travel to their owners
            m.table.grad_accumulate(ctx.ids.numpy(), rows, m.grad_shard)
        return None, None, None, None, None


class ShardedEmbeddingBag(nn.Module):
    """torch.nn.EmbeddingBag (mode "sum" or "mean", optional per_sample_weights with sum) over a
    tokemb.mpi.ShardedTable: forward(ids, offsets) is the collective bag lookup of this rank's batch
    (every rank calls it, once per batch, in the same order); backward (collective too) hands the
    per-id gradients to the owners: with owner_grad=True they are summed into `grad_shard`
    [local_rows, local_dim] (the owner-side gradient, in global input order). The weights are updated by
    step() (collective), a fused optimizer step at the owners over every backward since the last step
    (like TorchRec's fused optimizer): select it with optimizer(). The table has no torch Parameter.

    offsets follow torch's include_last_offset=True layout: n_bags + 1 entries, 0 first, len(ids) last.
    Results (forward, grad_shard, weights after step) are bitwise equal for any rank count to one process
    running the whole batch. seed=s initialises the table as torch.manual_seed(s); nn.EmbeddingBag(V, D)
    does (each rank producing only its rows); without it the table starts at zero."""

    def __init__(self, comm: Any, num_embeddings: int, embedding_dim: int, mode: str = "sum",
                 sharding: Union[str, int] = "row", owner_grad: bool = False, seed: Optional[int] = None) -> None:
        super().__init__()
        if mode not in ("sum", "mean"):
            raise ValueError("ShardedEmbeddingBag: mode must be 'sum' or 'mean', got %r" % (mode,))
        self.table = ShardedTable(comm, num_embeddings, embedding_dim, sharding)
        if seed is not None:
            self.table.init_torch(seed)
        self.mode = mode
        self.grad_shard: Optional[np.ndarray] = (
            np.zeros((self.table.local_rows, self.table.local_dim), dtype=np.float32) if owner_grad else None)
        self._pending = []
        self._anchor = torch.zeros((), requires_grad=True)  # makes the output part of the autograd graph

    def optimizer(self, kind: str, **hparams: Any) -> "ShardedEmbeddingBag":
        """Selects the fused optimizer at the owners (tokemb.Table.optimizer's names and parameters)."""
        self.table.optimizer(kind, **hparams)
        return self

    def forward(self, ids: torch.Tensor, offsets: torch.Tensor,
                per_sample_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        if ids.dtype not in (torch.int64, torch.int32) or offsets.dtype != torch.int64:
            raise TypeError("ShardedEmbeddingBag: ids must be int64/int32 and offsets int64")
        if per_sample_weights is not None and self.mode != "sum":
            raise ValueError("ShardedEmbeddingBag: per_sample_weights needs mode 'sum'")
        return _BagsFunction.apply(self._anchor, self, ids.contiguous(), offsets.contiguous(), per_sample_weights)

    def step(self) -> None:
        """Collective: one fused optimizer step at the owners with every rank's gradients since the last
        step (all pending backward batches, concatenated in order), then clears them and grad_shard."""
        if self._pending:
            ids = np.concatenate([i.astype(np.int64) for i, _ in self._pending])
            rows = np.concatenate([r for _, r in self._pending])
        else:
            ids, rows = np.zeros(0, np.int64), np.zeros((0, self.table.dim), np.float32)
        self._pending = []
        self.table.step(ids, rows)
        if self.grad_shard is not None:
            self.grad_shard[...] = 0

    def extra_repr(self) -> str:
        return "%d, %d, mode=%r, local_rows=%d" % (self.table.rows, self.table.dim, self.mode, self.table.local_rows)


class AllGatherRows(torch.autograd.Function):
    """Concatenates every rank's rows [n_r, ...] in rank order on every rank (comm.allgather). Its backward
    returns this rank's slice of the incoming gradient, which is right when everything after it is
    computed identically on every rank (a replicated dense part over the global batch)."""

    @staticmethod
    def forward(ctx, x, comm):
        parts = comm.allgather(x.detach().contiguous().numpy())
        r = comm.Get_rank()
        ctx.start = sum(p.shape[0] for p in parts[:r])
        ctx.n = parts[r].shape[0]
        return torch.from_numpy(np.concatenate(parts, axis=0))

    @staticmethod
    def backward(ctx, g):
        return g[ctx.start:ctx.start + ctx.n].contiguous(), None


class _CollectionBagsFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, anchor, module, ids, offsets, psw):
        outs = module.tables.lookup_bags(ids, offsets, module.mode, psw)
        ctx.module, ctx.ids, ctx.offsets, ctx.psw = module, ids, offsets, psw
        return tuple(torch.from_numpy(o) for o in outs)

    @staticmethod
    def backward(ctx, *grads):
        m = ctx.module
        for k, g in enumerate(grads):
            w = None if ctx.psw is None else ctx.psw[k]
            m._pending[k].append((ctx.ids[k], expand_bag_grad(g.contiguous().numpy(), ctx.offsets[k], m.mode, w)))
        return None, None, None, None, None


class ShardedEmbeddingBagCollection(nn.Module):
    """TorchRec's EmbeddingBagCollection sharded TABLE-wise: one torch EmbeddingBag (mode "sum" or
    "mean") per table of shapes[k] = (num_embeddings, embedding_dim), each table whole on one rank
    (tokemb.mpi.ShardedTables). forward(ids, offsets[, per_sample_weights]) takes one batch per table
    (lists, offsets with n_bags + 1 entries) and returns one pooled tensor per table, from one collective
    call for all tables; backward keeps every table's per-id gradients, and step() (collective) runs
    every table's fused optimizer at its owner over all backward passes since the last step. Select the
    optimizers with optimizer(k, kind, ...). Results are bitwise equal for any rank count to one process
    running every table over the whole batch."""

    def __init__(self, comm: Any, shapes: Any, mode: str = "sum") -> None:
        super().__init__()
        if mode not in ("sum", "mean"):
            raise ValueError("ShardedEmbeddingBagCollection: mode must be 'sum' or 'mean', got %r" % (mode,))
        from .mpi import ShardedTables
        self.tables = ShardedTables(comm, shapes)
        self.mode = mode
        self._pending = [[] for _ in self.tables.shapes]
        self._anchor = torch.zeros((), requires_grad=True)  # makes the outputs part of the autograd graph

    def optimizer(self, k: int, kind: str, **hparams: Any) -> "ShardedEmbeddingBagCollection":
        """Selects table k's fused optimizer at its owner (call it alike on every rank)."""
        self.tables.optimizer(k, kind, **hparams)
        return self

    def forward(self, ids: Any, offsets: Any, per_sample_weights: Any = None) -> tuple:
        if per_sample_weights is not None and self.mode != "sum":
            raise ValueError("ShardedEmbeddingBagCollection: per_sample_weights needs mode 'sum'")
        ids_np = [i.contiguous().numpy() for i in ids]
        offs_np = [o.contiguous().numpy() for o in offsets]
        psw = None if per_sample_weights is None else [
            None if w is None else w.detach().contiguous().numpy() for w in per_sample_weights]
        return _CollectionBagsFunction.apply(self._anchor, self, ids_np, offs_np, psw)

    def step(self) -> None:
        """Collective: one fused step of every table at its owner with every rank's gradients since the last
        step (each table's pending backward batches concatenated in order), then clears them."""
        ids, rows = [], []
        for k, (_, d) in enumerate(self.tables.shapes):
            p = self._pending[k]
            ids.append(np.concatenate([i.astype(np.int64) for i, _ in p]) if p else np.zeros(0, np.int64))
            rows.append(np.concatenate([r for _, r in p]) if p else np.zeros((0, d), np.float32))
        self._pending = [[] for _ in self.tables.shapes]
        self.tables.step(ids, rows)
