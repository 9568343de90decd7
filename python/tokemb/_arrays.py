"""numpy argument checking shared by the classes: every dtype, shape and layout problem is a ValueError
raised before the library is called."""
import ctypes
from typing import Any, Optional, Sequence

import numpy as np

from ._errors import InvalidArgument  # noqa: F401  (re-exported for callers' except clauses)


def _describe(a: np.ndarray) -> str:
    return "dtype %s, shape %s, strides %s" % (a.dtype, a.shape, a.strides)


def ids_array(ids: Any, name: str = "ids", allow_i32: bool = True) -> np.ndarray:
    """A C-contiguous int64 (or int32) array. Lists/tuples/ints are converted (int64); ndarrays must
    already have an integer dtype of 32 or 64 bits and be C-contiguous (no silent copies)."""
    if isinstance(ids, np.ndarray):
        if ids.dtype == np.int64 or (allow_i32 and ids.dtype == np.int32):
            if not ids.flags.c_contiguous:
                raise ValueError("%s must be C-contiguous (got %s); use np.ascontiguousarray" % (name, _describe(ids)))
            return ids
        if ids.dtype.kind in "iu" and ids.size == 0:
            return ids.astype(np.int64)
        raise ValueError("%s must be an int64%s array, got dtype %s" % (name, " or int32" if allow_i32 else "", ids.dtype))
    a = np.asarray(ids)
    if a.size == 0:
        return a.astype(np.int64).reshape(a.shape)
    if a.dtype.kind not in "iu":
        raise ValueError("%s must hold integers, got %s" % (name, a.dtype))
    return a.astype(np.int64, order="C", copy=False)  # keeps 0-d ids 0-d (ascontiguousarray would not)


def f32_array(x: Any, name: str, shape: Optional[Sequence[Optional[int]]] = None, ndim: Optional[int] = None) -> np.ndarray:
    """A C-contiguous float32 input array. float32 C-contiguous ndarrays are used as they are; other real
    arrays (float64, float16, integers, strided views) and lists are converted to a float32 copy, as numpy
    does for np.asarray(x, np.float32). Complex, boolean and object arrays are refused with a ValueError
    naming the dtype. `shape` may contain None wildcards."""
    if isinstance(x, np.ndarray):
        if x.dtype.kind not in "fiu":
            raise ValueError("%s must hold real numbers (float32, or float64/float16/int converted to float32), "
                             "got %s" % (name, x.dtype))
        if x.dtype != np.float32 or not x.flags.c_contiguous:
            x = np.ascontiguousarray(x, dtype=np.float32)
    else:
        x = np.ascontiguousarray(x, dtype=np.float32)
    check_shape(x, name, shape, ndim)
    return x


def out_array(out: Optional[np.ndarray], name: str, shape: Sequence[int], dtype: Any = np.float32) -> np.ndarray:
    """A caller-supplied output (checked: dtype, exact shape, C-contiguous, writeable) or a new one."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise ValueError("%s must be a numpy array" % name)
    if out.dtype != dtype:
        raise ValueError("%s must be %s, got %s" % (name, np.dtype(dtype), out.dtype))
    if tuple(out.shape) != tuple(shape):
        raise ValueError("%s must have shape %s, got %s" % (name, tuple(shape), out.shape))
    if not out.flags.c_contiguous:
        raise ValueError("%s must be C-contiguous (got %s)" % (name, _describe(out)))
    if not out.flags.writeable:
        raise ValueError("%s is read-only" % name)
    return out


def check_shape(x: np.ndarray, name: str, shape: Optional[Sequence[Optional[int]]] = None,
                ndim: Optional[int] = None) -> None:
    """Raises ValueError unless x has `ndim` dimensions and matches `shape` (None = any size)."""
    if ndim is not None and x.ndim != ndim:
        raise ValueError("%s must be %d-D, got shape %s" % (name, ndim, x.shape))
    if shape is not None:
        if x.ndim != len(shape) or any(w is not None and w != g for w, g in zip(shape, x.shape)):
            want = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ")"
            raise ValueError("%s must have shape %s, got %s" % (name, want, x.shape))


def ptr(a: Optional[np.ndarray]) -> Optional[ctypes.c_void_p]:
    """The data address of an ndarray (None for an empty one: the library accepts NULL when n == 0)."""
    if a is None:
        return None
    return ctypes.c_void_p(a.ctypes.data)
