"""Tables sharded over MPI ranks: a ctypes binding of libtokemb_mpi over an mpi4py communicator.

    from mpi4py import MPI
    import tokemb.mpi
    t = tokemb.mpi.ShardedTable(MPI.COMM_WORLD, rows=1000, dim=16, sharding="row")
    t.local.write_rows(0, init[t.global_rows])       # fill this rank's shard (an ordinary tokemb.Table)
    out = t.lookup_bags(ids, offsets)                 # collective: every rank calls, with its own batch

Every method marked collective must be called by every rank of the communicator in the same order;
errors are agreed by the library, so every rank raises the same exception (tokemb.Error subclasses
carrying tokemb_mpi_last_error()'s text). Results are bitwise equal to one process holding the whole
table and seeing the concatenation of every rank's batch in rank order (include/tokemb_mpi.h).

libtokemb_mpi is found through TOKEMB_MPI_LIBRARY (a file or a folder), next to the loaded libtokemb,
or the system loader path. tokemb.mpi.ShardedEmbeddingBag (torch) is imported on first use.
"""
import ctypes
import ctypes.util
import glob
import os
from typing import Any, Optional, Union

import numpy as np

from . import _lib
from ._arrays import f32_array, ids_array, out_array, ptr
from ._errors import error_for
from ._handle import Handle, Lifetime
from .table import Table, bag_args, bag_mode, grad_outputs, logits_hidden

__all__ = ["ShardedTable", "ShardedEmbeddingBag", "ROW", "ROW_MODULO", "library_path", "last_error"]

#: enum tokemb_mpi_sharding (values pinned by include/tokemb_mpi.h)
ROW = 0
ROW_MODULO = 1

_c = ctypes
_P = _c.c_void_p
# name: (restype, argtypes); pointers are passed as c_void_p (numpy data addresses)
_SIGS = {
    "tokemb_mpi_last_error": (_c.c_char_p, []),
    "tokemb_mpi_table_create_f": (_c.c_int32, [_c.c_int, _c.c_int64, _c.c_int64, _c.c_int32, _c.POINTER(_P)]),
    "tokemb_mpi_table_free": (None, [_P]),
    "tokemb_mpi_table_rows": (_c.c_int64, [_P]),
    "tokemb_mpi_table_dim": (_c.c_int64, [_P]),
    "tokemb_mpi_table_local": (_P, [_P]),
    "tokemb_mpi_table_global_row": (_c.c_int64, [_P, _c.c_int64]),
    "tokemb_mpi_lookup": (_c.c_int32, [_P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_lookup_i32": (_c.c_int32, [_P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_lookup_bags": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _c.c_size_t, _c.c_int32, _P, _P]),
    "tokemb_mpi_lookup_bags_i32": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _c.c_size_t, _c.c_int32, _P, _P]),
    "tokemb_mpi_grad_accumulate": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _P]),
    "tokemb_mpi_grad_accumulate_i32": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _P]),
    "tokemb_mpi_optim_step": (_c.c_int32, [_P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_optim_step_i32": (_c.c_int32, [_P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_lookup_batches": (_c.c_int32, [_P, _c.c_size_t, _P, _P, _P]),
    "tokemb_mpi_lookup_batches_i32": (_c.c_int32, [_P, _c.c_size_t, _P, _P, _P]),
    "tokemb_mpi_lookup_bags_batches": (_c.c_int32, [_P, _c.c_size_t, _P, _P, _P, _P, _c.c_int32, _P, _P]),
    "tokemb_mpi_lookup_bags_batches_i32": (_c.c_int32, [_P, _c.c_size_t, _P, _P, _P, _P, _c.c_int32, _P, _P]),
    "tokemb_mpi_grad_coalesce": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_grad_coalesce_i32": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_logits": (_c.c_int32, [_P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_logits_backward": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _P, _P]),
}


def _candidates():
    names = sorted(glob.glob(os.path.join(os.path.dirname(_lib.path), "mpi", "libtokemb_mpi.so*")) +
                   glob.glob(os.path.join(os.path.dirname(_lib.path), "libtokemb_mpi.so*")), key=len)
    env = os.environ.get("TOKEMB_MPI_LIBRARY")
    if env:
        if os.path.isdir(env):
            return sorted(glob.glob(os.path.join(env, "libtokemb_mpi.so*")), key=len) or [os.path.join(env, "libtokemb_mpi.so")]
        return [env]  # an explicit file: no other copy is tried
    found = ctypes.util.find_library("tokemb_mpi")
    return names + ([found] if found else [])


def _load():
    tried = []
    for p in _candidates():
        try:
            lib = ctypes.CDLL(p, mode=ctypes.RTLD_GLOBAL)
        except OSError as e:
            tried.append("%s (%s)" % (p, e))
            continue
        for name, (res, args) in _SIGS.items():
            f = getattr(lib, name)
            f.restype, f.argtypes = res, args
        return lib, p
    raise ImportError("tokemb.mpi: cannot load libtokemb_mpi (built as build/mpi/libtokemb_mpi.so.0 when CMake "
                      "finds MPI). Tried: " + ("; ".join(tried) or "nothing found next to %s" % _lib.path) +
                      ". Set TOKEMB_MPI_LIBRARY to the library file.")


lib, library_path = _load()


def last_error() -> str:
    """This thread's most recent libtokemb_mpi error text (tokemb_mpi_last_error())."""
    return lib.tokemb_mpi_last_error().decode("utf-8", "replace")


def _check(status: int, name: str) -> None:
    if status != 0:
        raise error_for(status, last_error(), name)


def _sharding(s: Union[str, int]) -> int:
    if isinstance(s, str):
        try:
            return {"row": ROW, "row_modulo": ROW_MODULO}[s.lower()]
        except KeyError:
            raise ValueError("unknown sharding %r (row, row_modulo)" % s) from None
    return int(s)


def _same_width(ids):
    """Id arrays of one width for a batched call: all int32 stay, a mix is passed as int64."""
    if any(a.dtype != ids[0].dtype for a in ids):
        return [np.ascontiguousarray(a, dtype=np.int64) for a in ids]
    return ids


def _ptrs(arrays):
    """A C array of the data addresses of arrays (None entries are NULL)."""
    return (_P * max(len(arrays), 1))(*[None if a is None else a.ctypes.data for a in arrays])


def _sizes(values):
    """A C array of size_t."""
    v = list(values)
    return (_c.c_size_t * max(len(v), 1))(*v)


class ShardedTable(Lifetime):
    """A float32 table of `rows` x `dim` sharded over the ranks of an mpi4py communicator.

    ShardedTable(comm, rows, dim, sharding="row")   collective; "row" = contiguous blocks in rank order,
                                                    "row_modulo" = global row g on rank g % P
    The table keeps its own duplicate of the communicator. close() (or the last reference going away)
    frees it collectively: close it at the same point on every rank (use `with` or an explicit close())."""

    _what = "sharded table"
    _where = "tokemb.mpi.ShardedTable"

    def __init__(self, comm: Any, rows: int, dim: int, sharding: Union[str, int] = "row") -> None:
        h = _P()
        _check(lib.tokemb_mpi_table_create_f(int(comm.py2f()), int(rows), int(dim), _sharding(sharding),
                                             ctypes.byref(h)), "tokemb_mpi_table_create_f")
        self._h = _MpiHandle(h.value)
        self.comm = comm
        self.sharding = _sharding(sharding)

    @property
    def rows(self) -> int:
        """Global number of rows."""
        return lib.tokemb_mpi_table_rows(self._p)

    @property
    def dim(self) -> int:
        """Embedding dim."""
        return lib.tokemb_mpi_table_dim(self._p)

    @property
    def local(self) -> Table:
        """This rank's shard as a tokemb.Table borrowed from the sharded table (fill or read it; select the
        optimizer on it through optimizer(), the same on every rank)."""
        return Table._borrow(lib.tokemb_mpi_table_local(self._p), self._h)

    @property
    def local_rows(self) -> int:
        """Number of rows this rank owns."""
        return self.local.rows

    @property
    def global_rows(self) -> np.ndarray:
        """int64 [local_rows]: the global row of each of this rank's local rows."""
        p = self._p
        return np.array([lib.tokemb_mpi_table_global_row(p, i) for i in range(self.local_rows)], dtype=np.int64)

    def lookup(self, ids: Any, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Collective lookup of this rank's ids (any shape, int64 or int32): out[..., dim] = table[ids]."""
        ids = ids_array(ids)
        out = out_array(out, "out", tuple(ids.shape) + (self.dim,))
        name = "tokemb_mpi_lookup_i32" if ids.dtype == np.int32 else "tokemb_mpi_lookup"
        _check(getattr(lib, name)(self._p, ptr(ids), ids.size, ptr(out)), name)
        return out

    def lookup_bags(self, ids: Any, offsets: Any, mode: Union[str, int] = "sum",
                    per_sample_weights: Any = None, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Collective EmbeddingBag over the global table: ids [n], offsets CSR [n_bags + 1] (0, ..., n),
        mode "sum" / "mean" / "max", optional per_sample_weights [n] (sum only). Returns [n_bags, dim]."""
        ids, offs, nb = bag_args(ids, offsets)
        psw = None if per_sample_weights is None else f32_array(per_sample_weights, "per_sample_weights", (ids.size,))
        out = out_array(out, "out", (nb, self.dim))
        name = "tokemb_mpi_lookup_bags_i32" if ids.dtype == np.int32 else "tokemb_mpi_lookup_bags"
        _check(getattr(lib, name)(self._p, ptr(ids), ids.size, ptr(offs), nb, bag_mode(mode), ptr(psw), ptr(out)), name)
        return out

    def lookup_batches(self, batches: Any) -> list:
        """Collective pipelined lookup of K batches (every rank passes the same K, each its own batches):
        returns [table[ids] for ids in batches], bitwise what K lookup() calls give, with batch b+1's
        exchange overlapping batch b's local gather. Batches of mixed int32/int64 are all passed as int64."""
        ids = _same_width([ids_array(b) for b in batches])
        outs = [np.empty(tuple(a.shape) + (self.dim,), dtype=np.float32) for a in ids]
        name = "tokemb_mpi_lookup_batches_i32" if ids and ids[0].dtype == np.int32 else "tokemb_mpi_lookup_batches"
        _check(getattr(lib, name)(self._p, len(ids), _ptrs(ids), _sizes(a.size for a in ids), _ptrs(outs)), name)
        return outs

    def lookup_bags_batches(self, batches: Any, mode: Union[str, int] = "sum", per_sample_weights: Any = None) -> list:
        """Collective pipelined EmbeddingBag of K batches: batches is a list of (ids, offsets) pairs (CSR, as
        lookup_bags), per_sample_weights None or a list of K arrays/None (sum only). Returns the K [n_bags, dim]
        outputs, bitwise what K lookup_bags() calls give; each batch is pooled while later ones travel."""
        args = [bag_args(i, o) for i, o in batches]
        ids = _same_width([a[0] for a in args])
        offs, nbs = [a[1] for a in args], [a[2] for a in args]
        psw = None
        if per_sample_weights is not None:
            w = [None if x is None else f32_array(x, "per_sample_weights", (i.size,))
                 for x, i in zip(per_sample_weights, ids)]
            psw = _ptrs(w)
        outs = [np.empty((nb, self.dim), dtype=np.float32) for nb in nbs]
        name = ("tokemb_mpi_lookup_bags_batches_i32" if ids and ids[0].dtype == np.int32
                else "tokemb_mpi_lookup_bags_batches")
        _check(getattr(lib, name)(self._p, len(ids), _ptrs(ids), _sizes(i.size for i in ids), _ptrs(offs), _sizes(nbs),
                                  bag_mode(mode), psw, _ptrs(outs)), name)
        return outs

    def grad_coalesce(self, ids: Any, grad_out: Any):
        """Collective coalesced gradient at the owners: returns (local_ids int64 [u], rows [u, dim]), this
        rank's touched rows ascending (global row = global_rows[local_ids]) with every rank's contributions
        summed in global input order, bitwise the rows of the core's grad_coalesce over the whole batch."""
        ids, g = self._grad_rows(ids, grad_out)
        cap = min(self.local_rows, int(self.comm.allreduce(int(ids.size))))
        out_ids = np.empty(max(cap, 1), dtype=np.int64)
        rows = np.empty((max(cap, 1), self.dim), dtype=np.float32)
        u = _c.c_size_t(0)
        name = "tokemb_mpi_grad_coalesce_i32" if ids.dtype == np.int32 else "tokemb_mpi_grad_coalesce"
        _check(getattr(lib, name)(self._p, ptr(ids), ids.size, ptr(g), ptr(out_ids), ptr(rows), cap, ctypes.byref(u)),
               name)
        return out_ids[:u.value].copy(), rows[:u.value].copy()

    def logits(self, hidden: Any, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Collective tied output head: this rank's hidden [..., dim] -> logits [..., rows] over the global
        table (fixed-order dot products: bitwise the same for every rank count; not the core's sgemm bits)."""
        h, n = logits_hidden(hidden, self.dim)
        out = out_array(out, "out", h.shape[:-1] + (self.rows,))
        _check(lib.tokemb_mpi_logits(self._p, ptr(h), n, ptr(out)), "tokemb_mpi_logits")
        return out

    def logits_backward(self, hidden: Any, grad_logits: Any, grad_hidden: Any = True, grad_shard: Any = None):
        """Collective backward of logits: returns (grad_hidden or None, grad_shard or None), as
        tokemb.Table.logits_backward with the table gradient restricted to this rank's shard
        [local_rows, dim] (an array to accumulate into, True for a new zeroed one, None/False to skip).
        Every rank must ask for the same outputs."""
        h, n = logits_hidden(hidden, self.dim)
        gl = f32_array(grad_logits, "grad_logits", h.shape[:-1] + (self.rows,))
        gh, gs = grad_outputs(grad_hidden, h.shape, "grad_hidden", grad_shard, (self.local_rows, self.dim),
                              "grad_shard")
        _check(lib.tokemb_mpi_logits_backward(self._p, ptr(h), n, ptr(gl), ptr(gh), ptr(gs)),
               "tokemb_mpi_logits_backward")
        return gh, gs

    def _grad_rows(self, ids, grad_out):
        ids = ids_array(ids)
        return ids, f32_array(grad_out, "grad_out", tuple(ids.shape) + (self.dim,))

    def grad_accumulate(self, ids: Any, grad_out: Any, grad_shard: Optional[np.ndarray] = None) -> np.ndarray:
        """Collective gradient of lookup, delivered to the owners: adds every rank's grad_out[..., dim]
        rows to this rank's grad_shard [local_rows, dim] (zeros when None) in global input order."""
        ids, g = self._grad_rows(ids, grad_out)
        if grad_shard is None:
            grad_shard = np.zeros((self.local_rows, self.dim), dtype=np.float32)
        gs = out_array(grad_shard, "grad_shard", (self.local_rows, self.dim))
        name = "tokemb_mpi_grad_accumulate_i32" if ids.dtype == np.int32 else "tokemb_mpi_grad_accumulate"
        _check(getattr(lib, name)(self._p, ptr(ids), ids.size, ptr(g), ptr(gs)), name)
        return gs

    def optimizer(self, kind: Union[str, int], **hparams: Any) -> "ShardedTable":
        """Selects the fused optimizer on this rank's shard (tokemb.Table.optimizer's names: "sgd",
        "rowwise_adagrad", "adagrad", "sparse_adam"; lr=, eps=, ...). Call it the same on every rank."""
        self.local.optimizer(kind, **hparams)
        return self

    def step(self, ids: Any, grad_out: Any) -> None:
        """Collective fused optimizer step at the owners from every rank's (ids, grad_out[..., dim])."""
        ids, g = self._grad_rows(ids, grad_out)
        name = "tokemb_mpi_optim_step_i32" if ids.dtype == np.int32 else "tokemb_mpi_optim_step"
        _check(getattr(lib, name)(self._p, ptr(ids), ids.size, ptr(g)), name)

    def gather(self, root: int = 0) -> Optional[np.ndarray]:
        """Collective: the whole table [rows, dim] on `root` (None on the other ranks), assembled from the
        shards with comm.gather."""
        parts = self.comm.gather((self.global_rows, self.local.to_numpy()), root=root)
        if parts is None:
            return None
        full = np.empty((self.rows, self.dim), dtype=np.float32)
        for g, w in parts:
            full[g] = w
        return full


class _MpiHandle(Handle):
    """The sharded table's pointer; freed with tokemb_mpi_table_free (collective) when the last reference
    (the ShardedTable or a borrowed local shard) goes."""

    __slots__ = ()

    def __init__(self, p):
        super().__init__(p, None)

    def __del__(self):
        p, self.ptr = self.ptr, None
        if p and lib is not None:
            lib.tokemb_mpi_table_free(p)


def __getattr__(name):
    if name == "ShardedEmbeddingBag":
        from ._mpi_torch import ShardedEmbeddingBag
        return ShardedEmbeddingBag
    raise AttributeError("module 'tokemb.mpi' has no attribute %r" % name)
