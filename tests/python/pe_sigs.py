"""ctypes signatures of the positional-encoder functions for test_posenc_torch / test_rope_torch
(installed on tkctypes.lib; kept here so the shared tkctypes.py needs no edit), plus small helpers."""
import ctypes

import numpy as np

import tkctypes as tk
from tkctypes import P, i32, i64, f64, sz, lib, ok, ptr

_sigs = {
    "tokemb_posenc_create_sinusoidal": (i32, [i64, f64, i32, ctypes.POINTER(P)]),
    "tokemb_posenc_create_learned": (i32, [i64, i64, ctypes.POINTER(P)]),
    "tokemb_posenc_create_rope": (i32, [i64, i64, f64, i32, ctypes.POINTER(P)]),
    "tokemb_posenc_create_alibi": (i32, [i64, ctypes.POINTER(P)]),
    "tokemb_posenc_create_t5": (i32, [i64, i64, i64, i32, ctypes.POINTER(P)]),
    "tokemb_posenc_create_shaw": (i32, [i64, i64, ctypes.POINTER(P)]),
    "tokemb_posenc_free": (None, [P]),
    "tokemb_posenc_set_param": (i32, [P, i32, i64]),
    "tokemb_posenc_set_param_f64": (i32, [P, i32, f64]),
    "tokemb_posenc_table": (P, [P]),
    "tokemb_posenc_encode": (i32, [P, P, sz, P]),
    "tokemb_rope_apply": (i32, [P, P, sz, sz, P]),
    "tokemb_rope_apply_backward": (i32, [P, P, sz, sz, P]),
    "tokemb_posenc_rope_apply_strided": (i32, [P, P, sz, sz, sz, i64, i64, i64, P, i32]),
    "tokemb_posenc_rope_inv_freq": (i32, [P, P, sz, P]),
    "tokemb_posenc_rope_cos_sin": (i32, [P, P, sz, P, P]),
    "tokemb_posenc_rope_set_longrope_factors": (i32, [P, P, P, sz]),
    "tokemb_posenc_alibi_slopes": (i32, [P, P]),
    "tokemb_posenc_attn_bias": (i32, [P, sz, sz, i64, P]),
    "tokemb_posenc_attn_bias_backward": (i32, [P, sz, sz, i64, P, P]),
    "tokemb_posenc_buckets": (i32, [P, sz, sz, i64, P]),
    "tokemb_embed": (i32, [P, P, P, sz, sz, i64, ctypes.c_float, P]),
    "tokemb_embed_backward": (i32, [P, P, P, sz, sz, i64, ctypes.c_float, P, P, P]),
}
for _n, (_r, _a) in _sigs.items():
    _f = getattr(lib, _n)
    _f.restype = _r
    _f.argtypes = _a

# pinned values (include/tokemb.h)
NEOX, GPTJ = 0, 1
INTERLEAVED, CONCAT, CONCAT_T2T = 0, 1, 2
SC_NONE, SC_LINEAR, SC_DYNAMIC, SC_YARN, SC_LLAMA3, SC_LONGROPE = range(6)
ROPE_SCALING, ROPE_FACTOR, ROPE_ORIGINAL_MAX_POS, ROPE_BETA_FAST, ROPE_BETA_SLOW = 200, 201, 202, 203, 204
ROPE_LOW_FREQ_FACTOR, ROPE_HIGH_FREQ_FACTOR, ROPE_ATTN_FACTOR, ROPE_MSCALE, ROPE_MSCALE_ALL_DIM = 205, 206, 207, 208, 209
ROPE_TRUNCATE, ROPE_SEQ_LEN, ALIBI_CAUSAL = 210, 211, 300


class PE:
    """Owns a tokemb_posenc handle."""

    def __init__(self, kind, *args):
        self.h = P()
        ok(getattr(lib, "tokemb_posenc_create_" + kind)(*args, ctypes.byref(self.h)))

    def __del__(self):
        if getattr(self, "h", None):
            lib.tokemb_posenc_free(self.h)

    def set(self, param, value):
        if isinstance(value, float):
            ok(lib.tokemb_posenc_set_param_f64(self.h, param, value))
        else:
            ok(lib.tokemb_posenc_set_param(self.h, param, value))


def i64arr(x):
    return np.ascontiguousarray(np.asarray(x, dtype=np.int64))
