"""tokemb.Table: an embedding table (owned or wrapping a numpy array) with numpy in/out."""
import ctypes
import os
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _lib
from ._arrays import check_shape, f32_array, ids_array, out_array, ptr
from ._handle import Handle, Lifetime
from ._sigs import CONSTS

F32 = CONSTS["TOKEMB_F32"]
F16 = CONSTS["TOKEMB_F16"]
BF16 = CONSTS["TOKEMB_BF16"]
Q8_ROW = CONSTS["TOKEMB_Q8_ROW"]
NO_PADDING = CONSTS["TOKEMB_NO_PADDING"]
_DTYPE_NAMES = {"f32": F32, "float32": F32, "f16": F16, "float16": F16, "bf16": BF16, "bfloat16": BF16,
                "q8_row": Q8_ROW, "q8": Q8_ROW}
ArrayLike = Any  # a numpy array or anything np.asarray accepts
PathLike = Union[str, bytes, "os.PathLike[str]"]
_CODE_NAMES = {F32: "f32", F16: "f16", BF16: "bf16", Q8_ROW: "q8_row"}


class DType(str):
    """A table's storage dtype: the name "f32", "f16", "bf16" or "q8_row" (a str), equal also to its
    library code (tokemb.F32 ...) and, for f32/f16, to numpy's dtype (t.dtype == np.float32).
    .code is the library's int, .numpy the numpy dtype (None for bf16/q8_row)."""

    code: int

    def __new__(cls, code: int) -> "DType":
        d = str.__new__(cls, _CODE_NAMES[code])
        d.code = code
        return d

    @property
    def numpy(self) -> Optional[np.dtype]:
        """numpy's dtype of this storage dtype (float32, float16), None for bf16 and q8_row."""
        return {F32: np.dtype(np.float32), F16: np.dtype(np.float16)}.get(self.code)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (int, np.integer)) and not isinstance(other, bool):
            return self.code == int(other)
        if isinstance(other, str):
            return _DTYPE_NAMES.get(other.lower()) == self.code
        try:
            return self.numpy is not None and np.dtype(other) == self.numpy  # type: ignore[arg-type]
        except TypeError:
            return False

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = str.__hash__

    def __int__(self) -> int:
        return self.code

    def __index__(self) -> int:
        return self.code

    def __repr__(self) -> str:
        return "tokemb.DType(%r)" % str(self)


# numpy element types a wrap accepts per storage dtype (bf16 as its raw uint16 bits)
_NP_FOR = {F32: (np.float32,), F16: (np.float16,), BF16: (np.uint16,)}


def _dtype_code(dtype: Any) -> int:
    if isinstance(dtype, DType):
        return dtype.code
    if isinstance(dtype, str):
        try:
            return _DTYPE_NAMES[dtype.lower()]
        except KeyError:
            raise ValueError("unknown dtype %r (one of %s)" % (dtype, ", ".join(sorted(_DTYPE_NAMES)))) from None
    if isinstance(dtype, (int, np.integer)):
        return int(dtype)
    d = np.dtype(dtype)
    if d == np.float32:
        return F32
    if d == np.float16:
        return F16
    raise ValueError("unsupported dtype %r" % (dtype,))


class _Param:
    """A table parameter as a Python property."""

    def __init__(self, key, kind):
        self.key, self.kind = CONSTS[key], kind

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        return obj.get_param(self.key, self.kind)

    def __set__(self, obj, value):
        obj.set_param(self.key, value, self.kind)



def logits_hidden(hidden: Any, dim: int) -> Tuple[np.ndarray, int]:
    """hidden [..., dim] as a float32 array and its row count (Table.logits and tokemb.mpi)."""
    h = f32_array(hidden, "hidden")
    if h.ndim < 1 or h.shape[-1] != dim:
        raise ValueError("hidden must have shape (..., %d), got %s" % (dim, h.shape))
    return h, h.size // dim


def grad_outputs(gh_arg: Any, gh_shape: Tuple[int, ...], gh_name: str, gt_arg: Any, gt_shape: Tuple[int, ...],
                 gt_name: str) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """The two outputs of a logits backward: the hidden gradient (True: a new array, an array: written,
    None/False: skipped) and the table gradient (True: a new zeroed array, an array: accumulated into,
    None/False: skipped); at least one must be asked for."""
    gh = None
    if gh_arg is True:
        gh = np.empty(gh_shape, dtype=np.float32)
    elif gh_arg is not None and gh_arg is not False:
        gh = out_array(gh_arg, gh_name, gh_shape)
    gt = None
    if gt_arg is True:
        gt = np.zeros(gt_shape, dtype=np.float32)
    elif gt_arg is not None and gt_arg is not False:
        gt = out_array(gt_arg, gt_name, gt_shape)
    if gh is None and gt is None:
        raise ValueError("logits_backward: ask for %s, %s or both" % (gh_name, gt_name))
    return gh, gt

class Table(Lifetime):
    """An embedding table: `rows` vectors of `dim` values.

    Table(rows, dim, dtype="f32")           a new zero-filled table owned by the library
    Table.wrap(array, readonly=False)        borrows a 2-D numpy array (no copy; the Table keeps a
                                             reference to the array so it cannot be freed under it)
    Table.from_numpy(array) / t.copy()       copies
    Use as a context manager or call close(); every method of a closed table raises tokemb.Error.
    """

    _what = "table"
    _where = "tokemb.Table"

    padding_idx = _Param("TOKEMB_PADDING_IDX", "i")
    max_norm = _Param("TOKEMB_MAX_NORM", "f")
    norm_type = _Param("TOKEMB_NORM_TYPE", "f")
    scale_grad_by_freq = _Param("TOKEMB_SCALE_GRAD_BY_FREQ", "b")
    frozen = _Param("TOKEMB_FROZEN", "b")

    def __init__(self, rows: int, dim: int, dtype: Any = "f32") -> None:
        h = ctypes.c_void_p()
        _lib.check(_lib.fn("tokemb_table_create")(int(rows), int(dim), _dtype_code(dtype), ctypes.byref(h)),
                   "tokemb_table_create")
        self._h = Handle(h.value, "tokemb_table_free")

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def _adopt(cls, p, keep=None):
        t = cls.__new__(cls)
        t._h = Handle(p, "tokemb_table_free", keep)
        return t

    @classmethod
    def _borrow(cls, p, owner):
        t = cls.__new__(cls)
        t._h = Handle(p, None, owner)
        return t

    @classmethod
    def wrap(cls, array: np.ndarray, readonly: bool = False, dtype: Any = None) -> "Table":
        """Wraps a 2-D numpy array [rows, dim] without copying. Rows may be padded (a row stride larger
        than dim, e.g. a column slice) but elements within a row must be contiguous. float32 -> F32,
        float16 -> F16, uint16 -> BF16 (raw bits; pass dtype="bf16"). A read-only array must be wrapped
        with readonly=True. The array stays referenced by the table."""
        if not isinstance(array, np.ndarray):
            raise ValueError("wrap needs a numpy array, got %s" % type(array).__name__)
        if array.dtype == np.float64 and dtype is None:
            raise ValueError("cannot wrap a float64 array without copying: use Table.from_numpy(array) (a float32 "
                             "copy) or Table.wrap(array.astype(np.float32))")
        code = _dtype_code(dtype) if dtype is not None else (
            F32 if array.dtype == np.float32 else F16 if array.dtype == np.float16 else None)
        if code is None or code not in _NP_FOR or array.dtype.type not in _NP_FOR[code]:
            raise ValueError("cannot wrap a %s array as storage dtype %r (float32 -> f32, float16 -> f16, "
                             "uint16 -> bf16)" % (array.dtype, dtype))
        check_shape(array, "array", ndim=2)
        item = array.itemsize
        rows, dim = array.shape
        if rows < 1 or dim < 1:
            raise ValueError("cannot wrap an empty array of shape %s" % (array.shape,))
        if array.strides[1] != item or array.strides[0] % item or array.strides[0] < dim * item:
            raise ValueError("array rows must be contiguous with a positive row stride >= dim (got strides %s "
                             "for shape %s); use np.ascontiguousarray" % (array.strides, array.shape))
        if not readonly and not array.flags.writeable:
            raise ValueError("the array is read-only: wrap it with readonly=True")
        flags = CONSTS["TOKEMB_WRAP_READONLY"] if readonly else 0
        h = ctypes.c_void_p()
        _lib.check(_lib.fn("tokemb_table_wrap")(ctypes.c_void_p(array.ctypes.data), rows, dim,
                                                array.strides[0] // item, code, flags, ctypes.byref(h)),
                   "tokemb_table_wrap")
        t = cls._adopt(h.value, keep=array)
        return t

    @classmethod
    def from_numpy(cls, array: ArrayLike, dtype: Any = "f32") -> "Table":
        """A new owned table holding a copy of a 2-D float array (converted to the storage dtype)."""
        a = np.asarray(array)
        check_shape(a, "array", ndim=2)
        a = np.ascontiguousarray(a, dtype=np.float32)
        t = cls(a.shape[0], a.shape[1], dtype)
        t.write_rows(0, a)
        return t

    def copy(self) -> "Table":
        """An owned copy: same dtype, values and parameters (not optimizer state)."""
        dt = self.dtype
        if dt in (F32, F16, BF16):
            t = Table(self.rows, self.dim, dt)
            src = self.numpy()
            dst = t.numpy()
            dst[...] = src
        else:
            t = Table.from_numpy(self.to_numpy(), dt)
        t.padding_idx = self.padding_idx
        t.max_norm, t.norm_type = self.max_norm, self.norm_type
        t.scale_grad_by_freq, t.frozen = self.scale_grad_by_freq, self.frozen
        return t

    # ---- lifetime (_p, closed, close, with: _handle.Lifetime) ---------------------------------------
    def __repr__(self) -> str:
        if self.closed:
            return "<tokemb.Table closed>"
        return "<tokemb.Table rows=%d dim=%d dtype=%s>" % (self.rows, self.dim, self.dtype)

    def __len__(self) -> int:
        """The number of rows (as len() of a numpy array [rows, dim])."""
        return self.rows

    # ---- shape and storage --------------------------------------------------------------------
    @property
    def rows(self) -> int:
        """Number of rows (the vocabulary size)."""
        return _lib.lib.tokemb_table_rows(self._p)

    @property
    def dim(self) -> int:
        """Values per row (the embedding dimension)."""
        return _lib.lib.tokemb_table_dim(self._p)

    @property
    def shape(self) -> Tuple[int, int]:
        """(rows, dim), as a numpy array's shape."""
        return (self.rows, self.dim)

    @property
    def row_stride(self) -> int:
        """Distance between rows in elements (bytes for q8_row); >= dim for wrapped strided arrays."""
        return _lib.lib.tokemb_table_row_stride(self._p)

    @property
    def dtype(self) -> DType:
        """The storage dtype as a DType: a name ("f32", "f16", "bf16", "q8_row") that also compares equal
        to the library code (tokemb.F32 ...) and to numpy's float32/float16."""
        return DType(_lib.lib.tokemb_table_dtype(self._p))

    @property
    def wrapped(self) -> Optional[np.ndarray]:
        """The numpy array this table wraps, or None for an owned table."""
        return self._h.keep if isinstance(self._h.keep, np.ndarray) else None

    def numpy(self) -> np.ndarray:
        """A zero-copy [rows, dim] view of the storage: the wrapped array itself, or a view of the
        library's buffer for a created F32 table that keeps the storage alive. Other storage dtypes:
        use to_numpy() for a float32 copy."""
        p = self._p
        if isinstance(self._h.keep, np.ndarray):
            return self._h.keep
        npd = self.dtype.numpy
        if npd != np.float32:
            raise ValueError("numpy() views F32 storage only (this table is %s); use to_numpy() for a float32 copy"
                             % self.dtype)
        addr = _lib.lib.tokemb_table_data(p)
        rows, dim, stride = self.rows, self.dim, self.row_stride
        n = (rows - 1) * stride + dim
        buf = (ctypes.c_uint8 * (n * npd.itemsize)).from_address(addr)
        buf._tokemb_handle = self._h  # the view keeps the table's storage alive
        flat = np.frombuffer(buf, dtype=npd)
        return np.lib.stride_tricks.as_strided(flat, (rows, dim), (stride * npd.itemsize, npd.itemsize))

    def to_numpy(self) -> np.ndarray:
        """A float32 copy of every row (converted from the storage dtype)."""
        return self.read_rows(0, self.rows)

    def __array__(self, dtype: Any = None) -> np.ndarray:
        a = self.to_numpy()
        return a if dtype is None else a.astype(dtype)

    def read_rows(self, row0: int, n_rows: int, out: Optional[np.ndarray] = None) -> np.ndarray:
        """float32 copy of rows [row0, row0 + n_rows) (converted from the storage dtype), into out if given."""
        out = out_array(out, "out", (int(n_rows), self.dim))
        _lib.check(_lib.lib.tokemb_table_read_rows(self._p, int(row0), int(n_rows), ptr(out)), "tokemb_table_read_rows")
        return out

    def write_rows(self, row0: int, src: ArrayLike) -> None:
        """Writes src [n, dim] (converted to float32, then to the storage dtype) to rows [row0, row0 + n)."""
        src = f32_array(src, "src", (None, self.dim))
        _lib.check(_lib.lib.tokemb_table_write_rows(self._p, int(row0), src.shape[0], ptr(src)),
                   "tokemb_table_write_rows")

    def __getitem__(self, ids: ArrayLike) -> np.ndarray:
        return self.lookup(ids)

    # ---- parameters ---------------------------------------------------------------------------
    def set_param(self, key: int, value: Any, kind: str = "i") -> None:
        """Sets a table parameter by its TOKEMB_* key (kind "f" for float parameters); the properties
        padding_idx, max_norm, norm_type, scale_grad_by_freq and frozen are the usual way."""
        if kind == "f":
            _lib.check(_lib.lib.tokemb_table_set_param_f64(self._p, key, float(0.0 if value is None else value)),
                       "tokemb_table_set_param_f64")
        else:
            if value is None and key == CONSTS["TOKEMB_PADDING_IDX"]:
                value = NO_PADDING
            _lib.check(_lib.lib.tokemb_table_set_param(self._p, key, int(value)), "tokemb_table_set_param")

    def get_param(self, key: int, kind: str = "i") -> Any:
        """Reads a table parameter by its TOKEMB_* key (kind "f" float, "b" bool, "i" int)."""
        if kind == "f":
            v = ctypes.c_double()
            _lib.check(_lib.lib.tokemb_table_get_param_f64(self._p, key, ctypes.byref(v)), "tokemb_table_get_param_f64")
            return v.value
        v = ctypes.c_int64()
        _lib.check(_lib.lib.tokemb_table_get_param(self._p, key, ctypes.byref(v)), "tokemb_table_get_param")
        if kind == "b":
            return bool(v.value)
        if key == CONSTS["TOKEMB_PADDING_IDX"] and v.value == NO_PADDING:
            return None
        return v.value

    # ---- init ---------------------------------------------------------------------------------
    def init_normal(self, seed: int, mean: float = 0.0, std: float = 1.0) -> "Table":
        """torch.manual_seed(seed); nn.init.normal_(w, mean, std), bit for bit; padding row zeroed."""
        _lib.check(_lib.lib.tokemb_table_init_normal(self._p, int(seed) % 2 ** 64, float(mean), float(std)),
                   "tokemb_table_init_normal")
        return self

    def init_normal_shard(self, seed: int, global_shape: Tuple[int, int], row0: int = 0, row_step: int = 1,
                          col0: int = 0, mean: float = 0.0, std: float = 1.0) -> "Table":
        """This table's part of torch.manual_seed(seed); nn.init.normal_(w, mean, std) on a larger
        w[global_shape]: row l = global row row0 + l * row_step, columns [col0, col0 + dim), bit for bit,
        without drawing the whole random stream (MT19937 jump-ahead). The table's own padding row is zeroed."""
        _lib.check(_lib.lib.tokemb_table_init_normal_shard(self._p, int(seed) % 2 ** 64, float(mean), float(std),
                                                           int(global_shape[0]), int(global_shape[1]), int(row0),
                                                           int(row_step), int(col0)),
                   "tokemb_table_init_normal_shard")
        return self

    def init_uniform(self, seed: int, lo: float = 0.0, hi: float = 1.0) -> "Table":
        """torch.manual_seed(seed); nn.init.uniform_(w, lo, hi), bit for bit; padding row zeroed."""
        _lib.check(_lib.lib.tokemb_table_init_uniform(self._p, int(seed) % 2 ** 64, float(lo), float(hi)),
                   "tokemb_table_init_uniform")
        return self

    # ---- lookups ------------------------------------------------------------------------------
    def lookup(self, ids: ArrayLike, out: Optional[np.ndarray] = None) -> np.ndarray:
        """out[..., :] = table[ids[...]] (float32, shape ids.shape + (dim,)). int64 or int32 ids."""
        ids = ids_array(ids)
        out = out_array(out, "out", ids.shape + (self.dim,))
        name = "tokemb_lookup_i32" if ids.dtype == np.int32 else "tokemb_lookup"
        _lib.check(_lib.fn(name)(self._p, ptr(ids), ids.size, ptr(out)), name)
        return out

    def lookup_strided(self, ids: ArrayLike, out: np.ndarray) -> np.ndarray:
        """Writes row i of the lookup to out[i, :dim]; out is a 2-D float32 array whose rows may be
        wider than dim (e.g. a slice of a wider activation buffer); columns past dim are untouched."""
        ids = ids_array(ids, allow_i32=False)
        check_shape(ids, "ids", ndim=1)
        if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.ndim != 2:
            raise ValueError("out must be a 2-D float32 numpy array")
        if out.shape[0] != ids.size or out.shape[1] < self.dim:
            raise ValueError("out must have shape (%d, >=%d), got %s" % (ids.size, self.dim, out.shape))
        if out.strides[1] != 4 or out.strides[0] % 4 or out.strides[0] < 4 * self.dim or not out.flags.writeable:
            raise ValueError("out rows must be contiguous, writeable, with row stride >= dim")
        _lib.check(_lib.fn("tokemb_lookup_strided")(self._p, ptr(ids), ids.size, ptr(out), out.strides[0] // 4),
                   "tokemb_lookup_strided")
        return out

    def lookup_onehot(self, ids: ArrayLike, out: Optional[np.ndarray] = None) -> np.ndarray:
        """The same rows as lookup, computed as one-hot(ids) x W through BLAS sgemm."""
        ids = ids_array(ids, allow_i32=False)
        out = out_array(out, "out", ids.shape + (self.dim,))
        _lib.check(_lib.fn("tokemb_lookup_onehot")(self._p, ptr(ids), ids.size, ptr(out)), "tokemb_lookup_onehot")
        return out

    # ---- training -----------------------------------------------------------------------------
    def _grad_rows(self, grad_out, ids, name="grad_out"):
        """grad_out must be float32 C-contiguous with shape ids.shape + (dim,) (or (n, dim))."""
        g = f32_array(grad_out, name)
        n, d = ids.size, self.dim
        if not (g.shape == ids.shape + (d,) or g.shape == (n, d)):
            raise ValueError("%s must have shape %s (ids.shape + (dim,)), got %s" % (name, ids.shape + (d,), g.shape))
        return g

    def _grad_table(self, grad_table):
        if grad_table is None:
            return np.zeros((self.rows, self.dim), dtype=np.float32)
        return out_array(grad_table, "grad_table", (self.rows, self.dim))

    def grad_accumulate(self, ids: ArrayLike, grad_out: ArrayLike, grad_table: Optional[np.ndarray] = None) -> np.ndarray:
        """Dense gradient of lookup: grad_table[rows, dim] += scatter of grad_out (padding_idx and
        scale_grad_by_freq honoured). A new zeroed buffer if grad_table is None: then it equals torch's
        embedding_dense_backward bit for bit. Returns grad_table."""
        ids = ids_array(ids)
        g = self._grad_rows(grad_out, ids)
        gt = self._grad_table(grad_table)
        name = "tokemb_grad_accumulate_i32" if ids.dtype == np.int32 else "tokemb_grad_accumulate"
        _lib.check(_lib.fn(name)(self._p, ptr(ids), ids.size, ptr(g), ptr(gt)), name)
        return gt

    def lookup_onehot_backward(self, ids: ArrayLike, grad_out: ArrayLike,
                               grad_table: Optional[np.ndarray] = None) -> np.ndarray:
        """grad_table += onehot(ids)^T x grad_out through sgemm (the Linear view's backward)."""
        ids = ids_array(ids, allow_i32=False)
        g = self._grad_rows(grad_out, ids)
        gt = self._grad_table(grad_table)
        _lib.check(_lib.fn("tokemb_lookup_onehot_backward")(self._p, ptr(ids), ids.size, ptr(g), ptr(gt)),
                   "tokemb_lookup_onehot_backward")
        return gt

    def grad_coalesce(self, ids: ArrayLike, grad_out: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
        """Sparse gradient: (unique_ids int64 [u], rows float32 [u, dim]), ids ascending, padding dropped."""
        ids = ids_array(ids)
        g = self._grad_rows(grad_out, ids)
        n = ids.size
        uids = np.empty(max(n, 1), dtype=np.int64)
        rows = np.empty((max(n, 1), self.dim), dtype=np.float32)
        nu = ctypes.c_size_t(0)
        name = "tokemb_grad_coalesce_i32" if ids.dtype == np.int32 else "tokemb_grad_coalesce"
        _lib.check(_lib.fn(name)(self._p, ptr(ids), n, ptr(g), ptr(uids), ptr(rows), ctypes.byref(nu)), name)
        return uids[:nu.value], rows[:nu.value]

    def lookup_bags(self, ids: ArrayLike, offsets: ArrayLike, mode: Union[str, int] = "sum",
                    per_sample_weights: Optional[ArrayLike] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
        """EmbeddingBag forward. offsets: CSR, n_bags + 1 int64 entries (0, ..., len(ids)).
        mode: "sum", "mean", "max" (or 0/1/2). Returns out [n_bags, dim]."""
        ids, offs, nb = bag_args(ids, offsets)
        psw = None if per_sample_weights is None else f32_array(per_sample_weights, "per_sample_weights", (ids.size,))
        out = out_array(out, "out", (nb, self.dim))
        name = "tokemb_lookup_bags_i32" if ids.dtype == np.int32 else "tokemb_lookup_bags"
        _lib.check(_lib.fn(name)(self._p, ptr(ids), ids.size, ptr(offs), nb, bag_mode(mode), ptr(psw), ptr(out)), name)
        return out

    def lookup_bags_backward(self, ids: ArrayLike, offsets: ArrayLike, grad_out: ArrayLike, mode: Union[str, int] = "sum",
                             per_sample_weights: Optional[ArrayLike] = None, grad_table: Optional[np.ndarray] = None,
                             psw_grad: bool = False) -> Any:
        """Backward of lookup_bags. Returns grad_table, or (grad_table, grad_per_sample_weights) when
        psw_grad is true (SUM with weights)."""
        ids, offs, nb = bag_args(ids, offsets)
        g = f32_array(grad_out, "grad_out", (nb, self.dim))
        psw = None if per_sample_weights is None else f32_array(per_sample_weights, "per_sample_weights", (ids.size,))
        gt = self._grad_table(grad_table)
        gpsw = np.empty(ids.size, dtype=np.float32) if psw_grad else None
        name = "tokemb_lookup_bags_backward_i32" if ids.dtype == np.int32 else "tokemb_lookup_bags_backward"
        _lib.check(_lib.fn(name)(self._p, ptr(ids), ids.size, ptr(offs), nb, bag_mode(mode), ptr(psw), ptr(g), ptr(gt),
                                 ptr(gpsw)), name)
        return (gt, gpsw) if psw_grad else gt

    # ---- fused sparse optimizers ----------------------------------------------------------------
    def optimizer(self, kind: Union[str, int], **hparams: Any) -> "Table":
        """Selects the table's optimizer ("sgd", "rowwise_adagrad", "adagrad", "sparse_adam") with empty
        state, then sets hyper-parameters by name: lr, weight_decay, eps, beta1, beta2 (or betas=(b1, b2)),
        lr_decay, initial_accumulator. Returns self."""
        if isinstance(kind, str):
            try:
                code = CONSTS["TOKEMB_OPTIM_" + kind.upper()]
            except KeyError:
                raise ValueError("unknown optimizer %r" % kind) from None
        else:
            code = int(kind)
        if "betas" in hparams:
            hparams["beta1"], hparams["beta2"] = hparams.pop("betas")
        keys = {}
        for k in hparams:
            if "TOKEMB_OPTIM_" + k.upper() not in CONSTS:
                raise ValueError("unknown optimizer parameter %r" % k)
            keys[k] = CONSTS["TOKEMB_OPTIM_" + k.upper()]
        _lib.check(_lib.fn("tokemb_optim_select")(self._p, code), "tokemb_optim_select")
        for k, v in hparams.items():
            self.set_optim_param(keys[k], v)
        return self

    def set_optim_param(self, key: Union[str, int], value: float) -> None:
        """Sets one optimizer hyper-parameter by name ("lr", "eps", ...) or TOKEMB_OPTIM_* key."""
        if isinstance(key, str):
            key = CONSTS["TOKEMB_OPTIM_" + key.upper()]
        _lib.check(_lib.fn("tokemb_optim_set_param_f64")(self._p, key, float(value)), "tokemb_optim_set_param_f64")

    def get_optim_param(self, key: Union[str, int]) -> float:
        """Reads one optimizer hyper-parameter by name or TOKEMB_OPTIM_* key."""
        if isinstance(key, str):
            key = CONSTS["TOKEMB_OPTIM_" + key.upper()]
        v = ctypes.c_double()
        _lib.check(_lib.fn("tokemb_optim_get_param_f64")(self._p, key, ctypes.byref(v)), "tokemb_optim_get_param_f64")
        return v.value

    @property
    def optim_step_count(self) -> int:
        """Steps since the optimizer was selected (-1 when none is selected)."""
        return _lib.fn("tokemb_optim_step_count")(self._p)

    def step(self, ids: ArrayLike, grad_out: ArrayLike) -> None:
        """One fused optimizer step from the lookup's output gradient (only referenced rows change)."""
        ids = ids_array(ids)
        g = self._grad_rows(grad_out, ids)
        name = "tokemb_optim_step_i32" if ids.dtype == np.int32 else "tokemb_optim_step"
        _lib.check(_lib.fn(name)(self._p, ptr(ids), ids.size, ptr(g)), name)

    def step_coalesced(self, unique_ids: ArrayLike, rows: ArrayLike) -> None:
        """One fused step from a coalesced gradient (strictly increasing ids, rows [u, dim])."""
        u = ids_array(unique_ids, "unique_ids", allow_i32=False)
        check_shape(u, "unique_ids", ndim=1)
        r = f32_array(rows, "rows", (u.size, self.dim))
        _lib.check(_lib.fn("tokemb_optim_step_coalesced")(self._p, ptr(u), u.size, ptr(r)), "tokemb_optim_step_coalesced")

    # ---- tied output head ---------------------------------------------------------------------
    def logits(self, hidden: ArrayLike, out: Optional[np.ndarray] = None) -> np.ndarray:
        """logits[..., rows] = hidden[..., dim] @ W^T (sgemm)."""
        h, n = logits_hidden(hidden, self.dim)
        out = out_array(out, "out", h.shape[:-1] + (self.rows,))
        _lib.check(_lib.fn("tokemb_logits")(self._p, ptr(h), n, ptr(out)), "tokemb_logits")
        return out

    def logits_backward(self, hidden: ArrayLike, grad_logits: ArrayLike, grad_hidden: Any = True,
                        grad_table: Any = None) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        """Returns (grad_hidden or None, grad_table or None): grad_hidden = grad_logits @ W (a new array
        if grad_hidden is True, None if False), grad_table += grad_logits^T @ hidden (pass an array to
        accumulate into, True for a new zeroed one, None/False to skip)."""
        h, n = logits_hidden(hidden, self.dim)
        gl = f32_array(grad_logits, "grad_logits", h.shape[:-1] + (self.rows,))
        gh, gt = grad_outputs(grad_hidden, h.shape, "grad_hidden", grad_table, (self.rows, self.dim), "grad_table")
        _lib.check(_lib.fn("tokemb_logits_backward")(self._p, ptr(h), n, ptr(gl), ptr(gh), ptr(gt)),
                   "tokemb_logits_backward")
        return gh, gt


def bag_args(ids: ArrayLike, offsets: ArrayLike) -> Tuple[np.ndarray, np.ndarray, int]:
    """Checked bag inputs: 1-D ids (int64/int32), 1-D int64 CSR offsets with n_bags + 1 >= 1 entries;
    returns (ids, offsets, n_bags)."""
    ids = ids_array(ids)
    check_shape(ids, "ids", ndim=1)
    offs = ids_array(offsets, "offsets", allow_i32=False)
    check_shape(offs, "offsets", ndim=1)
    if offs.size < 1:
        raise ValueError("offsets must have n_bags + 1 >= 1 entries (CSR)")
    return ids, offs, offs.size - 1


def bag_mode(mode: Union[str, int]) -> int:
    """The library code of a bag mode name ("sum", "mean", "max") or int."""
    if isinstance(mode, str):
        if mode.lower() not in ("sum", "mean", "max"):
            raise ValueError("unknown bag mode %r (sum, mean, max)" % mode)
        return CONSTS["TOKEMB_" + mode.upper()]
    return int(mode)
