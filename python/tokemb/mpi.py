"""Tables sharded over MPI ranks: a ctypes binding of libtokemb_mpi over an mpi4py communicator.

    from mpi4py import MPI
    import tokemb.mpi
    t = tokemb.mpi.ShardedTable(MPI.COMM_WORLD, rows=1000, dim=16, sharding="row")
    t.local.write_rows(0, init[t.global_rows])       # fill this rank's shard (an ordinary tokemb.Table)
    t.init_torch(seed)                                # or: = torch.manual_seed(seed); nn.Embedding(1000, 16)
    out = t.lookup_bags(ids, offsets)                 # collective: every rank calls, with its own batch

    ts = tokemb.mpi.ShardedTables(MPI.COMM_WORLD, [(1000, 16), (50, 64)])   # each table whole on one rank
    if ts.local(0) is not None: ts.local(0).write_rows(0, init0)               # filled by its owner
    pooled = ts.lookup_bags([ids0, ids1], [offs0, offs1])                      # one array per table

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

__all__ = ["ShardedTable", "ShardedEmbeddingBag", "ROW", "ROW_MODULO", "COLUMN", "library_path", "last_error"]

#: enum tokemb_mpi_stat (values pinned by include/tokemb_mpi.h), as ShardedTable.stats() names them
STATS = {"calls": 0, "ids_sent": 1, "rows_sent": 2, "bytes_sent": 3, "bytes_remote": 4, "agreements": 5,
         "seconds": 10, "seconds_plan": 11, "seconds_id_exchange": 12, "seconds_local": 13,
         "seconds_row_exchange": 14, "seconds_output": 15, "seconds_agree": 16}

#: enum tokemb_mpi_sharding (values pinned by include/tokemb_mpi.h)
ROW = 0
ROW_MODULO = 1
COLUMN = 2

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
    "tokemb_mpi_table_global_col": (_c.c_int64, [_P, _c.c_int64]),
    "tokemb_mpi_table_init_torch": (_c.c_int32, [_P, _c.c_uint64]),
    "tokemb_mpi_lookup": (_c.c_int32, [_P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_lookup_i32": (_c.c_int32, [_P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_lookup_bags": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _c.c_size_t, _c.c_int32, _P, _P]),
    "tokemb_mpi_lookup_bags_i32": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _c.c_size_t, _c.c_int32, _P, _P]),
    "tokemb_mpi_grad_accumulate": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _P]),
    "tokemb_mpi_grad_accumulate_i32": (_c.c_int32, [_P, _P, _c.c_size_t, _P, _P]),
    "tokemb_mpi_optim_step": (_c.c_int32, [_P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_optim_step_i32": (_c.c_int32, [_P, _P, _c.c_size_t, _P]),
    "tokemb_mpi_table_stat": (_c.c_int32, [_P, _c.c_int32, _c.POINTER(_c.c_double)]),
    "tokemb_mpi_table_stats_reset": (_c.c_int32, [_P]),
    "tokemb_mpi_table_save": (_c.c_int32, [_P, _c.c_char_p]),
    "tokemb_mpi_table_load": (_c.c_int32, [_P, _c.c_char_p]),
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


# TABLE sharding (ShardedTables below)
__all__ += ["ShardedTables", "plan_tables"]
_SIGS.update({
    "tokemb_mpi_tables_plan": (_c.c_int32, [_c.c_size_t, _P, _P, _c.c_int32, _P]),
    "tokemb_mpi_tables_create_f": (_c.c_int32, [_c.c_int, _c.c_size_t, _P, _P, _c.POINTER(_P)]),
    "tokemb_mpi_tables_free": (None, [_P]),
    "tokemb_mpi_tables_count": (_c.c_int64, [_P]),
    "tokemb_mpi_tables_rows": (_c.c_int64, [_P, _c.c_size_t]),
    "tokemb_mpi_tables_dim": (_c.c_int64, [_P, _c.c_size_t]),
    "tokemb_mpi_tables_owner": (_c.c_int32, [_P, _c.c_size_t]),
    "tokemb_mpi_tables_local": (_P, [_P, _c.c_size_t]),
    "tokemb_mpi_tables_traffic": (_c.c_int32, [_P, _c.POINTER(_c.c_uint64), _c.POINTER(_c.c_uint64)]),
    "tokemb_mpi_tables_lookup": (_c.c_int32, [_P, _P, _P, _P]),
    "tokemb_mpi_tables_lookup_i32": (_c.c_int32, [_P, _P, _P, _P]),
    "tokemb_mpi_tables_lookup_bags": (_c.c_int32, [_P, _P, _P, _P, _P, _c.c_int32, _P, _P]),
    "tokemb_mpi_tables_lookup_bags_i32": (_c.c_int32, [_P, _P, _P, _P, _P, _c.c_int32, _P, _P]),
    "tokemb_mpi_tables_grad_accumulate": (_c.c_int32, [_P, _P, _P, _P, _P]),
    "tokemb_mpi_tables_grad_accumulate_i32": (_c.c_int32, [_P, _P, _P, _P, _P]),
    "tokemb_mpi_tables_optim_step": (_c.c_int32, [_P, _P, _P, _P]),
    "tokemb_mpi_tables_optim_step_i32": (_c.c_int32, [_P, _P, _P, _P]),
})

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
            return {"row": ROW, "row_modulo": ROW_MODULO, "column": COLUMN}[s.lower()]
        except KeyError:
            raise ValueError("unknown sharding %r (row, row_modulo, column)" % s) from None
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
                                                    "row_modulo" = global row g on rank g % P,
                                                    "column" = every row on every rank, each rank owning a
                                                    contiguous slice of the dims (local shape
                                                    [rows, local_dim], columns global_cols)
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
    def local_dim(self) -> int:
        """Number of columns this rank owns (dim unless the sharding is "column")."""
        return self.local.dim

    @property
    def global_cols(self) -> np.ndarray:
        """int64 [local_dim]: the global column of each of this rank's local columns."""
        p = self._p
        return np.array([lib.tokemb_mpi_table_global_col(p, i) for i in range(self.local_dim)], dtype=np.int64)

    @property
    def global_rows(self) -> np.ndarray:
        """int64 [local_rows]: the global row of each of this rank's local rows."""
        p = self._p
        return np.array([lib.tokemb_mpi_table_global_row(p, i) for i in range(self.local_rows)], dtype=np.int64)

    def init_torch(self, seed: int) -> "ShardedTable":
        """Collective: the global table becomes torch.manual_seed(seed); nn.Embedding(rows, dim).weight, bit
        for bit, each rank producing only its own rows (MT19937 jump-ahead; same seed on every rank)."""
        _check(lib.tokemb_mpi_table_init_torch(self._p, int(seed) % 2 ** 64), "tokemb_mpi_table_init_torch")
        return self

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
        rows to this rank's grad_shard [local_rows, local_dim] (zeros when None) in global input order."""
        ids, g = self._grad_rows(ids, grad_out)
        if grad_shard is None:
            grad_shard = np.zeros((self.local_rows, self.local_dim), dtype=np.float32)
        gs = out_array(grad_shard, "grad_shard", (self.local_rows, self.local_dim))
        name = "tokemb_mpi_grad_accumulate_i32" if ids.dtype == np.int32 else "tokemb_mpi_grad_accumulate"
        _check(getattr(lib, name)(self._p, ptr(ids), ids.size, ptr(g), ptr(gs)), name)
        return gs

    def optimizer(self, kind: Union[str, int], **hparams: Any) -> "ShardedTable":
        """Selects the fused optimizer on this rank's shard (tokemb.Table.optimizer's names: "sgd",
        "rowwise_adagrad", "adagrad", "sparse_adam"; lr=, eps=, ...). Call it the same on every rank."""
        self.local.optimizer(kind, **hparams)
        return self

    def save(self, path: Any) -> None:
        """Collective sharded checkpoint of the weights (tokemb_mpi_table_save): one .safetensors file per
        rank next to the JSON index `path` (e.g. "ckpt/emb.index.json"), the index written last, atomically.
        Loads at any rank count and sharding (load) and without MPI (tokemb.load_sharded)."""
        _check(lib.tokemb_mpi_table_save(self._p, os.fsencode(path)), "tokemb_mpi_table_save")

    def load(self, path: Any) -> "ShardedTable":
        """Collective load of a sharded checkpoint of the same global shape (any rank count / sharding
        saved it); each rank reads only its own rows. Nothing changes on any rank if it fails."""
        _check(lib.tokemb_mpi_table_load(self._p, os.fsencode(path)), "tokemb_mpi_table_load")
        return self

    def step(self, ids: Any, grad_out: Any) -> None:
        """Collective fused optimizer step at the owners from every rank's (ids, grad_out[..., dim])."""
        ids, g = self._grad_rows(ids, grad_out)
        name = "tokemb_mpi_optim_step_i32" if ids.dtype == np.int32 else "tokemb_mpi_optim_step"
        _check(getattr(lib, name)(self._p, ptr(ids), ids.size, ptr(g)), name)

    def stats(self) -> dict:
        """This rank's statistics since creation or reset_stats() (tokemb_mpi_table_stat): "calls",
        "ids_sent", "rows_sent", "bytes_sent", "bytes_remote", "agreements", and the seconds "seconds",
        "seconds_plan", "seconds_id_exchange", "seconds_local", "seconds_row_exchange",
        "seconds_output", "seconds_agree". Local, not collective."""
        v = ctypes.c_double()
        out = {}
        for name, code in STATS.items():
            _check(lib.tokemb_mpi_table_stat(self._p, code, ctypes.byref(v)), "tokemb_mpi_table_stat")
            out[name] = int(v.value) if code < 10 else v.value
        return out

    def reset_stats(self) -> None:
        """Sets this rank's statistics to zero (tokemb_mpi_table_stats_reset). Local, not collective."""
        _check(lib.tokemb_mpi_table_stats_reset(self._p), "tokemb_mpi_table_stats_reset")

    def gather(self, root: int = 0) -> Optional[np.ndarray]:
        """Collective: the whole table [rows, dim] on `root` (None on the other ranks), assembled from the
        shards with comm.gather."""
        parts = self.comm.gather((self.global_rows, self.global_cols, self.local.to_numpy()), root=root)
        if parts is None:
            return None
        full = np.empty((self.rows, self.dim), dtype=np.float32)
        for g, c, w in parts:
            full[np.ix_(g, c)] = w
        return full


class _MpiHandle(Handle):
    """The sharded table's pointer; freed with tokemb_mpi_table_free (collective) when the last reference
    (the ShardedTable or a borrowed local shard) goes."""

    __slots__ = ()
    _free_name = "tokemb_mpi_table_free"

    def __init__(self, p):
        super().__init__(p, None)

    def __del__(self):
        p, self.ptr = self.ptr, None
        if p and lib is not None:
            getattr(lib, self._free_name)(p)


class _MpiTablesHandle(_MpiHandle):
    """The table collection's pointer; freed with tokemb_mpi_tables_free (collective)."""

    __slots__ = ()
    _free_name = "tokemb_mpi_tables_free"


def _shapes(shapes: Any):
    shapes = [tuple(int(v) for v in s) for s in shapes]
    if any(len(s) != 2 for s in shapes):
        raise ValueError("shapes must be (rows, dim) pairs, got %r" % (shapes,))
    rows = np.ascontiguousarray([s[0] for s in shapes], dtype=np.int64)
    dims = np.ascontiguousarray([s[1] for s in shapes], dtype=np.int64)
    return rows, dims


def plan_tables(shapes: Any, n_ranks: int) -> np.ndarray:
    """The owner rank of each table that ShardedTables(comm, shapes) places on n_ranks ranks
    (tokemb_mpi_tables_plan, no MPI needed): tables by decreasing rows * dim * 4 bytes, equal sizes by
    lower index, each to the least-loaded rank, equal loads to the lower rank. int32 [n_tables]."""
    rows, dims = _shapes(shapes)
    owner = np.empty(rows.size, dtype=np.int32)
    _check(lib.tokemb_mpi_tables_plan(rows.size, ptr(rows), ptr(dims), int(n_ranks), ptr(owner)),
           "tokemb_mpi_tables_plan")
    return owner


def _ptrs(arrays):
    """A C array of the arrays' data pointers (NULL for None)."""
    return (_P * max(len(arrays), 1))(*[None if a is None else a.ctypes.data for a in arrays])


class ShardedTables(Lifetime):
    """A collection of float32 tables sharded TABLE-wise over an mpi4py communicator (TorchRec's
    table-wise sharding): table k of shapes[k] = (rows, dim) lives whole on one rank, owner(k), chosen
    by plan_tables. Collective methods take one batch per table (lists of arrays, one entry per table,
    empty arrays for tables without ids) and return one array per table; every rank calls them in the
    same order. close() (or the last reference going away) frees the collection collectively."""

    _what = "sharded table collection"
    _where = "tokemb.mpi.ShardedTables"

    def __init__(self, comm: Any, shapes: Any) -> None:
        rows, dims = _shapes(shapes)
        h = _P()
        _check(lib.tokemb_mpi_tables_create_f(int(comm.py2f()), rows.size, ptr(rows), ptr(dims), ctypes.byref(h)),
               "tokemb_mpi_tables_create_f")
        self._h = _MpiTablesHandle(h.value)
        self.comm = comm
        self.shapes = [(int(r), int(d)) for r, d in zip(rows, dims)]

    def __len__(self) -> int:
        return len(self.shapes)

    def owner(self, k: int) -> int:
        """The rank owning table k."""
        return lib.tokemb_mpi_tables_owner(self._p, self._k(k))

    def local(self, k: int) -> Optional[Table]:
        """Table k as a tokemb.Table borrowed from the collection if this rank owns it, else None."""
        p = lib.tokemb_mpi_tables_local(self._p, self._k(k))
        return Table._borrow(p, self._h) if p else None

    def traffic(self) -> tuple:
        """(ids, floats) this rank sent in the last collective call (tokemb_mpi_tables_traffic): for lookups
        and bags its distinct ids per table and the row floats it served as an owner."""
        i, f = ctypes.c_uint64(), ctypes.c_uint64()
        _check(lib.tokemb_mpi_tables_traffic(self._p, ctypes.byref(i), ctypes.byref(f)), "tokemb_mpi_tables_traffic")
        return i.value, f.value

    def _k(self, k: int) -> int:
        if not 0 <= int(k) < len(self.shapes):
            raise IndexError("table index %d outside [0, %d)" % (k, len(self.shapes)))
        return int(k)

    def _per_table(self, what, seq):
        if len(seq) != len(self.shapes):
            raise ValueError("one %s entry per table: got %d for %d tables" % (what, len(seq), len(self.shapes)))
        return seq

    def _ids(self, ids_list):
        self._per_table("ids", ids_list)
        ids = [ids_array(i) for i in ids_list]
        is32 = all(i.dtype == np.int32 for i in ids)
        ids = [i if is32 or i.dtype == np.int64 else i.astype(np.int64) for i in ids]
        return ids, np.ascontiguousarray([i.size for i in ids], dtype=np.uintp), "_i32" if is32 else ""

    def lookup(self, ids: Any) -> list:
        """Collective lookup: ids[k] (any shape) for table k; returns [out_k[..., dim_k]] per table."""
        ids, n, sfx = self._ids(ids)
        out = [np.empty(tuple(i.shape) + (d,), dtype=np.float32) for i, (_, d) in zip(ids, self.shapes)]
        name = "tokemb_mpi_tables_lookup" + sfx
        _check(getattr(lib, name)(self._p, _ptrs(ids), ptr(n), _ptrs(out)), name)
        return out

    def lookup_bags(self, ids: Any, offsets: Any, mode: Union[str, int] = "sum",
                    per_sample_weights: Any = None) -> list:
        """Collective pooled lookup over every table (KeyedJaggedTensor -> pooled embeddings): ids[k] [n_k],
        offsets[k] CSR [n_bags_k + 1], one mode for all tables, per_sample_weights None or a list with an
        array (sum only) or None per table. Returns [out_k[n_bags_k, dim_k]] per table."""
        args = [bag_args(i, o) for i, o in zip(self._per_table("ids", ids), self._per_table("offsets", offsets))]
        ids, n, sfx = self._ids([a[0] for a in args])
        offs = [a[1] for a in args]
        nb = np.ascontiguousarray([a[2] for a in args], dtype=np.uintp)
        psw = None
        if per_sample_weights is not None:
            psw = [None if w is None else f32_array(w, "per_sample_weights[%d]" % k, (i.size,))
                   for k, (w, i) in enumerate(zip(self._per_table("per_sample_weights", per_sample_weights), ids))]
        out = [np.empty((b, d), dtype=np.float32) for b, (_, d) in zip(nb, self.shapes)]
        name = "tokemb_mpi_tables_lookup_bags" + sfx
        _check(getattr(lib, name)(self._p, _ptrs(ids), ptr(n), _ptrs(offs), ptr(nb), bag_mode(mode),
                                  None if psw is None else _ptrs(psw), _ptrs(out)), name)
        return out

    def _grads(self, ids, grad_out):
        ids, n, sfx = self._ids(ids)
        g = [f32_array(x, "grad_out[%d]" % k, tuple(i.shape) + (d,))
             for k, (x, i, (_, d)) in enumerate(zip(self._per_table("grad_out", grad_out), ids, self.shapes))]
        return ids, n, sfx, g

    def grad_accumulate(self, ids: Any, grad_out: Any, grads: Optional[list] = None) -> list:
        """Collective gradient of lookup delivered to the owners: adds every rank's grad_out[k] rows into
        grads[k] [rows_k, dim_k] on table k's owner (zeros when grads is None or grads[k] is None), in
        global input order. Returns the list with an array for each owned table and None elsewhere."""
        ids, n, sfx, g = self._grads(ids, grad_out)
        grads = list(self._per_table("grads", grads)) if grads is not None else [None] * len(self.shapes)
        for k, (r, d) in enumerate(self.shapes):
            if self.owner(k) != self.comm.Get_rank():
                grads[k] = None
            elif grads[k] is None:
                grads[k] = np.zeros((r, d), dtype=np.float32)
            else:
                grads[k] = out_array(grads[k], "grads[%d]" % k, (r, d))
        name = "tokemb_mpi_tables_grad_accumulate" + sfx
        _check(getattr(lib, name)(self._p, _ptrs(ids), ptr(n), _ptrs(g), _ptrs(grads)), name)
        return grads

    def optimizer(self, k: int, kind: Union[str, int], **hparams: Any) -> "ShardedTables":
        """Selects table k's fused optimizer on its owner (tokemb.Table.optimizer's names and
        hyper-parameters); a no-op on the other ranks, so every rank may call it alike."""
        t = self.local(k)
        if t is not None:
            t.optimizer(kind, **hparams)
        return self

    def step(self, ids: Any, grad_out: Any) -> None:
        """Collective fused optimizer step of every table at its owner from every rank's
        (ids[k], grad_out[k][..., dim_k]); every table's step counter advances once."""
        ids, n, sfx, g = self._grads(ids, grad_out)
        name = "tokemb_mpi_tables_optim_step" + sfx
        _check(getattr(lib, name)(self._p, _ptrs(ids), ptr(n), _ptrs(g)), name)

    def gather(self, k: int, root: int = 0) -> Optional[np.ndarray]:
        """Collective: table k [rows, dim] on `root` (None elsewhere), sent by its owner."""
        t = self.local(k)
        parts = self.comm.gather(None if t is None else t.to_numpy(), root=root)
        if parts is None:
            return None
        return parts[self.owner(k)]


def __getattr__(name):
    if name == "ShardedEmbeddingBagCollection":
        from ._mpi_torch import ShardedEmbeddingBagCollection
        return ShardedEmbeddingBagCollection
    if name == "ShardedEmbeddingBag":
        from ._mpi_torch import ShardedEmbeddingBag
        return ShardedEmbeddingBag
    raise AttributeError("module 'tokemb.mpi' has no attribute %r" % name)
