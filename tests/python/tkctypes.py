"""Minimal ctypes access to the built libtokemb for the comparison tests (the user-facing binding is
the tokemb package in python/). TOKEMB_LIBRARY names the library file (ctest sets it)."""
import ctypes
import os

import numpy as np

_path = os.environ.get("TOKEMB_LIBRARY", "libtokemb.so.0")
lib = ctypes.CDLL(_path)

P = ctypes.c_void_p
i32, i64, u32, u64, f64, sz = (ctypes.c_int32, ctypes.c_int64, ctypes.c_uint32, ctypes.c_uint64,
                               ctypes.c_double, ctypes.c_size_t)

_sigs = {
    "tokemb_last_error": (ctypes.c_char_p, []),
    "tokemb_status_string": (ctypes.c_char_p, [i32]),
    "tokemb_set_num_threads": (i32, [i32]),
    "tokemb_table_create": (i32, [i64, i64, i32, ctypes.POINTER(P)]),
    "tokemb_table_wrap": (i32, [P, i64, i64, i64, i32, u32, ctypes.POINTER(P)]),
    "tokemb_table_free": (None, [P]),
    "tokemb_table_data": (P, [P]),
    "tokemb_table_set_param": (i32, [P, i32, i64]),
    "tokemb_table_set_param_f64": (i32, [P, i32, f64]),
    "tokemb_table_init_normal": (i32, [P, u64, f64, f64]),
    "tokemb_table_init_uniform": (i32, [P, u64, f64, f64]),
    "tokemb_lookup": (i32, [P, P, sz, P]),
    "tokemb_lookup_i32": (i32, [P, P, sz, P]),
    "tokemb_lookup_onehot": (i32, [P, P, sz, P]),
    # training path (grad.c, bags.c, optim.c, logits.c)
    "tokemb_grad_accumulate": (i32, [P, P, sz, P, P]),
    "tokemb_grad_accumulate_i32": (i32, [P, P, sz, P, P]),
    "tokemb_grad_coalesce": (i32, [P, P, sz, P, P, P, ctypes.POINTER(sz)]),
    "tokemb_lookup_onehot_backward": (i32, [P, P, sz, P, P]),
    "tokemb_lookup_bags": (i32, [P, P, sz, P, sz, i32, P, P]),
    "tokemb_lookup_bags_backward": (i32, [P, P, sz, P, sz, i32, P, P, P, P]),
    "tokemb_optim_select": (i32, [P, i32]),
    "tokemb_optim_set_param_f64": (i32, [P, i32, f64]),
    "tokemb_optim_step": (i32, [P, P, sz, P]),
    "tokemb_optim_step_count": (i64, [P]),
    "tokemb_optim_step_coalesced": (i32, [P, P, sz, P]),
    "tokemb_logits": (i32, [P, P, sz, P]),
    "tokemb_logits_backward": (i32, [P, P, sz, P, P, P]),
    # files, vocabulary, nearest neighbours, compact storage (io_*.c, vocab.c, nearest.c, storage.c)
    "tokemb_table_rows": (i64, [P]),
    "tokemb_table_dim": (i64, [P]),
    "tokemb_table_dtype": (i32, [P]),
    "tokemb_table_read_rows": (i32, [P, i64, sz, P]),
    "tokemb_table_write_rows": (i32, [P, i64, sz, P]),
    "tokemb_table_convert": (i32, [P, i32, ctypes.POINTER(P)]),
    "tokemb_npy_load": (i32, [ctypes.c_char_p, ctypes.POINTER(P)]),
    "tokemb_npy_mmap": (i32, [ctypes.c_char_p, ctypes.POINTER(P)]),
    "tokemb_npy_save": (i32, [P, ctypes.c_char_p]),
    "tokemb_safetensors_load": (i32, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(P)]),
    "tokemb_safetensors_mmap": (i32, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(P)]),
    "tokemb_safetensors_save": (i32, [P, P, sz, ctypes.c_char_p]),
    "tokemb_vocab_create": (i32, [ctypes.POINTER(P)]),
    "tokemb_vocab_free": (None, [P]),
    "tokemb_vocab_size": (i64, [P]),
    "tokemb_vocab_add": (i32, [P, ctypes.c_char_p, sz, ctypes.POINTER(i64)]),
    "tokemb_vocab_find": (i64, [P, ctypes.c_char_p, sz]),
    "tokemb_vocab_word": (ctypes.c_char_p, [P, i64, ctypes.POINTER(sz)]),
    "tokemb_vectors_load": (i32, [ctypes.c_char_p, i32, P, P, ctypes.POINTER(P), ctypes.POINTER(P)]),
    "tokemb_vectors_save": (i32, [P, P, ctypes.c_char_p, i32]),
    "tokemb_nearest": (i32, [P, P, sz, sz, i32, P, P, P]),
    "tokemb_nearest_ids": (i32, [P, P, sz, sz, i32, i32, P, P]),
}
for _name, (_res, _args) in _sigs.items():
    _f = getattr(lib, _name)
    _f.restype = _res
    _f.argtypes = _args


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
