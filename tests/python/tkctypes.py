"""Minimal ctypes access to the built libtokemb for the comparison tests (the user-facing binding is
the tokemb package in python/). TOKEMB_LIBRARY names the library file and PYTHONPATH holds python/ (ctest sets both)."""
import ctypes
import os

import numpy as np

if not os.environ.get("TOKEMB_LIBRARY"):
    raise ImportError("tkctypes: set TOKEMB_LIBRARY to the built libtokemb (ctest does)")

from tokemb import _lib, _sigs as _gen  # noqa: E402  (PYTHONPATH=python; ctest sets it)
# The package's loader opened TOKEMB_LIBRARY and installed every function's restype/argtypes from its
# table generated from include/tokemb.h (python/tokemb/_sigs.py, checked against the header by
# tests/check_python_sigs.sh): no second table and no second binding loop.
lib = _lib.lib

P = ctypes.c_void_p
i32, i64, u32, u64, f64, sz = (ctypes.c_int32, ctypes.c_int64, ctypes.c_uint32, ctypes.c_uint64,
                               ctypes.c_double, ctypes.c_size_t)

CONSTS = _gen.CONSTS
NO_PROGRESS = _gen.tokemb_progress_fn()  # a NULL tokemb_progress_fn


def ptr(a):
    return a.ctypes.data_as(P)


class TokembError(Exception):
    def __init__(self, status):
        self.status = status
        super().__init__("%s: %s" % (lib.tokemb_status_string(status).decode(), lib.tokemb_last_error().decode()))


def ok(status):
    if status != 0:
        raise TokembError(status)


def wrap(arr, readonly=False):
    """Wraps a C-contiguous float32 [rows, dim] numpy array without copying."""
    assert arr.dtype == np.float32 and arr.ndim == 2 and arr.flags.c_contiguous
    h = P()
    ok(lib.tokemb_table_wrap(ptr(arr), arr.shape[0], arr.shape[1], arr.shape[1], 0, 1 if readonly else 0,
                             ctypes.byref(h)))
    return h


def table_array(h, rows, dim):
    """A numpy view of a created table's storage (valid while h lives)."""
    addr = lib.tokemb_table_data(h)
    buf = (ctypes.c_float * (rows * dim)).from_address(addr)
    return np.frombuffer(buf, dtype=np.float32).reshape(rows, dim)
