"""Positional-encoder constants and a handle class for test_posenc_torch / test_rope_torch (the ctypes
signatures come from the package's generated table through tkctypes)."""
import ctypes

import numpy as np

import tkctypes as tk
from tkctypes import P, i32, i64, f64, sz, lib, ok, ptr

# the header's values, from the generated table (section 7 pins them; check_python_sigs.sh checks the table)
_C = tk.CONSTS
NEOX, GPTJ = _C["TOKEMB_NEOX"], _C["TOKEMB_GPTJ"]
INTERLEAVED, CONCAT, CONCAT_T2T = _C["TOKEMB_INTERLEAVED"], _C["TOKEMB_CONCAT"], _C["TOKEMB_CONCAT_T2T"]
SC_NONE, SC_LINEAR, SC_DYNAMIC, SC_YARN, SC_LLAMA3, SC_LONGROPE = (
    _C["TOKEMB_ROPE_SCALING_" + n] for n in ("NONE", "LINEAR", "DYNAMIC", "YARN", "LLAMA3", "LONGROPE"))
(ROPE_SCALING, ROPE_FACTOR, ROPE_ORIGINAL_MAX_POS, ROPE_BETA_FAST, ROPE_BETA_SLOW, ROPE_LOW_FREQ_FACTOR,
 ROPE_HIGH_FREQ_FACTOR, ROPE_ATTN_FACTOR, ROPE_MSCALE, ROPE_MSCALE_ALL_DIM, ROPE_TRUNCATE, ROPE_SEQ_LEN) = (
    _C["TOKEMB_ROPE_" + n] for n in ("SCALING", "FACTOR", "ORIGINAL_MAX_POS", "BETA_FAST", "BETA_SLOW",
                                    "LOW_FREQ_FACTOR", "HIGH_FREQ_FACTOR", "ATTN_FACTOR", "MSCALE",
                                    "MSCALE_ALL_DIM", "TRUNCATE", "SEQ_LEN"))
ALIBI_CAUSAL = _C["TOKEMB_ALIBI_CAUSAL"]


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
