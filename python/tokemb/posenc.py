"""Positional encoders (one opaque tokemb_posenc per family) and the fused input embedding."""
import ctypes
from typing import Any, Optional, Tuple, Union

import numpy as np

from . import _lib
from ._arrays import check_shape, f32_array, ids_array, out_array, ptr
from ._handle import Handle, Lifetime
from ._sigs import CONSTS
from .table import ArrayLike, Table


def _enum(prefix, value, what, names=None):
    if isinstance(value, str):
        key = prefix + value.upper()
        if key not in CONSTS or (names is not None and value.lower() not in names):
            raise ValueError("unknown %s %r" % (what, value))
        return CONSTS[key]
    return int(value)


def _positions(positions, name="positions"):
    return ids_array(positions, name, allow_i32=False)


class PositionalEncoding(Lifetime):
    """Base class: owns a tokemb_posenc*, freed on garbage collection, close() or `with`."""

    _what = "positional encoder"

    _family = "posenc"
    #: parameter names this family accepts as keyword arguments -> (constant, "i" or "f")
    _params = {}

    def _create(self, fname, *args):
        h = ctypes.c_void_p()
        _lib.check(_lib.fn(fname)(*args, ctypes.byref(h)), fname)
        self._h = Handle(h.value, "tokemb_posenc_free")

    def __repr__(self) -> str:
        return "<tokemb.%s %s>" % (type(self).__name__, "closed" if self.closed else "dim=%d" % self.dim)

    @property
    def dim(self) -> int:
        """Output row length (sinusoidal/learned/Shaw), head_dim (RoPE), or heads (ALiBi/T5)."""
        return _lib.fn("tokemb_posenc_dim")(self._p)

    # parameters
    def set_param(self, key: Union[str, int], value: Any, kind: Optional[str] = None) -> None:
        """Sets a parameter of the encoder by name (see the class's keyword arguments) or TOKEMB_* key."""
        key, kind = self._key(key, kind)
        if kind == "f":
            _lib.check(_lib.fn("tokemb_posenc_set_param_f64")(self._p, key, float(value)), "tokemb_posenc_set_param_f64")
        else:
            _lib.check(_lib.fn("tokemb_posenc_set_param")(self._p, key, int(value)), "tokemb_posenc_set_param")

    def get_param(self, key: Union[str, int], kind: Optional[str] = None) -> Any:
        """Reads a parameter of the encoder by name or TOKEMB_* key."""
        key, kind = self._key(key, kind)
        if kind == "f":
            v = ctypes.c_double()
            _lib.check(_lib.fn("tokemb_posenc_get_param_f64")(self._p, key, ctypes.byref(v)), "tokemb_posenc_get_param_f64")
        else:
            v = ctypes.c_int64()
            _lib.check(_lib.fn("tokemb_posenc_get_param")(self._p, key, ctypes.byref(v)), "tokemb_posenc_get_param")
        return v.value

    def _key(self, key, kind):
        if isinstance(key, str):
            if key not in self._params:
                raise ValueError("%s has no parameter %r (known: %s)" % (type(self).__name__, key, ", ".join(self._params)))
            key, k2 = self._params[key]
            return CONSTS[key], kind or k2
        return int(key), kind or "i"

    def _set_kwargs(self, kwargs):
        for k, v in kwargs.items():
            if v is not None:
                self.set_param(k, v)

    @property
    def table(self) -> Optional[Table]:
        """The learned parameters as a tokemb.Table (learned PE, T5 bias, Shaw), owned by the encoder;
        None for parameter-free families."""
        p = _lib.fn("tokemb_posenc_table")(self._p)
        return Table._borrow(p, self._h) if p else None

    # absolute encodings
    def encode(self, positions: ArrayLike, out: Optional[np.ndarray] = None) -> np.ndarray:
        """out[..., dim] encodings of explicit positions (sinusoidal, learned)."""
        pos = _positions(positions)
        out = out_array(out, "out", pos.shape + (self.dim,))
        _lib.check(_lib.fn("tokemb_posenc_encode")(self._p, ptr(pos), pos.size, ptr(out)), "tokemb_posenc_encode")
        return out

    def __call__(self, positions: ArrayLike) -> np.ndarray:
        return self.encode(positions)


class Sinusoidal(PositionalEncoding):
    """Fixed sin/cos encodings. layout: "interleaved" (Vaswani / the seed recipe), "concat", "concat_t2t"."""

    def __init__(self, dim: int, base: float = 10000.0, layout: Union[str, int] = "interleaved") -> None:
        self._create("tokemb_posenc_create_sinusoidal", int(dim), float(base),
                     _enum("TOKEMB_", layout, "sinusoidal layout", ("interleaved", "concat", "concat_t2t")))


class Learned(PositionalEncoding):
    """Learned absolute positions: a [max_len, dim] table (see .table) initialised to zeros."""

    def __init__(self, max_len: int, dim: int) -> None:
        self._create("tokemb_posenc_create_learned", int(max_len), int(dim))


class Rope(PositionalEncoding):
    """Rotary position embedding for heads of head_dim values; the first rotary_dim are rotated.
    layout "neox" (rotate_half, HF) or "gptj" (interleaved pairs). scaling: None, "linear", "dynamic",
    "yarn", "llama3", "longrope"; other keyword arguments are the ROPE_* parameters (factor,
    original_max_pos, beta_fast, beta_slow, low_freq_factor, high_freq_factor, attn_factor, mscale,
    mscale_all_dim, truncate, seq_len)."""

    _params = {n.lower(): ("TOKEMB_ROPE_" + n, k) for n, k in [
        ("SCALING", "i"), ("FACTOR", "f"), ("ORIGINAL_MAX_POS", "i"), ("BETA_FAST", "f"), ("BETA_SLOW", "f"),
        ("LOW_FREQ_FACTOR", "f"), ("HIGH_FREQ_FACTOR", "f"), ("ATTN_FACTOR", "f"), ("MSCALE", "f"),
        ("MSCALE_ALL_DIM", "f"), ("TRUNCATE", "i"), ("SEQ_LEN", "i")]}

    def __init__(self, head_dim: int, rotary_dim: Optional[int] = None, base: float = 10000.0,
                 layout: Union[str, int] = "neox", scaling: Union[str, int, None] = None, **params: Any) -> None:
        rotary_dim = head_dim if rotary_dim is None else rotary_dim
        self._create("tokemb_posenc_create_rope", int(head_dim), int(rotary_dim), float(base),
                     _enum("TOKEMB_", layout, "RoPE layout", ("neox", "gptj")))
        self.head_dim, self.rotary_dim = int(head_dim), int(rotary_dim)
        if scaling is not None:
            self.set_param("scaling", _enum("TOKEMB_ROPE_SCALING_", scaling, "RoPE scaling"))
        short, long_ = params.pop("short_factor", None), params.pop("long_factor", None)
        self._set_kwargs(params)
        if short is not None or long_ is not None:
            self.set_longrope_factors(short, long_)

    def set_longrope_factors(self, short_factor: Optional[ArrayLike], long_factor: Optional[ArrayLike]) -> None:
        """LongRoPE per-frequency rescale factors (rotary_dim/2 values each) for short and long contexts."""
        n = self.rotary_dim // 2
        s = np.ascontiguousarray(short_factor, dtype=np.float64)
        lf = np.ascontiguousarray(long_factor, dtype=np.float64)
        if s.shape != (n,) or lf.shape != (n,):
            raise ValueError("short_factor and long_factor need rotary_dim/2 = %d values each" % n)
        _lib.check(_lib.fn("tokemb_posenc_rope_set_longrope_factors")(self._p, ptr(s), ptr(lf), n),
                   "tokemb_posenc_rope_set_longrope_factors")

    def _x(self, x, name):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise ValueError("%s must be a float32 numpy array" % name)
        if not x.flags.c_contiguous or not x.flags.writeable:
            raise ValueError("%s must be C-contiguous and writeable (got strides %s)" % (name, x.strides))
        if x.ndim not in (2, 3) or x.shape[-1] != self.head_dim:
            raise ValueError("%s must have shape (n_tokens, n_heads, %d) or (n_tokens, %d), got %s"
                             % (name, self.head_dim, self.head_dim, x.shape))
        return x.shape[0], (x.shape[1] if x.ndim == 3 else 1)

    def _run(self, fname, x, positions, inplace, name):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32:
            raise ValueError("%s must be a float32 numpy array" % name)
        if not inplace:
            x = np.array(x, order="C", copy=True)  # the output buffer
        nt, nh = self._x(x, name)
        pos = _positions(positions)
        check_shape(pos, "positions", (nt,))
        _lib.check(_lib.fn(fname)(self._p, ptr(x), nt, nh, ptr(pos)), fname)
        return x

    def apply(self, x: ArrayLike, positions: ArrayLike, inplace: bool = False) -> np.ndarray:
        """Rotates x[n_tokens, n_heads, head_dim] (q or k) for positions[n_tokens]. Returns a rotated
        copy, or x itself rotated in place with inplace=True (x must then be float32 C-contiguous)."""
        return self._run("tokemb_rope_apply", x, positions, inplace, "x")

    def apply_backward(self, grad: ArrayLike, positions: ArrayLike, inplace: bool = False) -> np.ndarray:
        """The backward (rotation by -theta) of apply."""
        return self._run("tokemb_rope_apply_backward", grad, positions, inplace, "grad")

    def apply_strided(self, x: np.ndarray, positions: ArrayLike, backward: bool = False) -> np.ndarray:
        """In place on a 4-D float32 array [batch, heads, seq, head_dim] with any element strides (the
        last axis contiguous), e.g. transformers' layout or a transposed view; positions [batch, seq]."""
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 4 or x.shape[-1] != self.head_dim:
            raise ValueError("x must be a float32 array [batch, heads, seq, %d]" % self.head_dim)
        if x.strides[3] != 4 or any(s < 0 or s % 4 for s in x.strides) or not x.flags.writeable:
            raise ValueError("x needs a contiguous last axis, non-negative strides and to be writeable (strides %s)"
                             % (x.strides,))
        b, h, s, _ = x.shape
        pos = _positions(positions)
        check_shape(pos, "positions", (b, s))
        st = [v // 4 for v in x.strides[:3]]
        _lib.check(_lib.fn("tokemb_posenc_rope_apply_strided")(self._p, ptr(x), b, h, s, st[0], st[1], st[2], ptr(pos),
                                                        1 if backward else 0), "tokemb_posenc_rope_apply_strided")
        return x

    def inv_freq(self) -> Tuple[np.ndarray, float]:
        """(inv_freq float64 [rotary_dim/2], attention factor) of the current configuration."""
        n = self.rotary_dim // 2
        f = np.empty(n, dtype=np.float64)
        a = ctypes.c_double()
        _lib.check(_lib.fn("tokemb_posenc_rope_inv_freq")(self._p, ptr(f), n, ctypes.byref(a)), "tokemb_posenc_rope_inv_freq")
        return f, a.value

    @property
    def attn_factor(self) -> float:
        """The attention (mscale) factor the scaling applies to cos and sin."""
        return self.inv_freq()[1]

    def cos_sin(self, positions: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
        """(cos, sin) float32 [n, rotary_dim/2] with the attention factor applied."""
        pos = _positions(positions)
        check_shape(pos, "positions", ndim=1)
        half = self.rotary_dim // 2
        c = np.empty((pos.size, half), dtype=np.float32)
        s = np.empty((pos.size, half), dtype=np.float32)
        _lib.check(_lib.fn("tokemb_posenc_rope_cos_sin")(self._p, ptr(pos), pos.size, ptr(c), ptr(s)), "tokemb_posenc_rope_cos_sin")
        return c, s


class _Relative(PositionalEncoding):
    n_heads = None

    def attn_bias(self, q_len: int, k_len: int, q_offset: int = 0, out: Optional[np.ndarray] = None) -> np.ndarray:
        """Attention bias [n_heads, q_len, k_len] (query i at position q_offset + i, key j at j)."""
        out = out_array(out, "out", (self.dim, int(q_len), int(k_len)))
        _lib.check(_lib.fn("tokemb_posenc_attn_bias")(self._p, int(q_len), int(k_len), int(q_offset), ptr(out)),
                   "tokemb_posenc_attn_bias")
        return out

    def buckets(self, q_len: int, k_len: int, q_offset: int = 0, out: Optional[np.ndarray] = None) -> np.ndarray:
        """int32 [q_len, k_len] bucket (T5) or clipped relative index (Shaw) matrix."""
        out = out_array(out, "out", (int(q_len), int(k_len)), dtype=np.int32)
        _lib.check(_lib.fn("tokemb_posenc_buckets")(self._p, int(q_len), int(k_len), int(q_offset), ptr(out)),
                   "tokemb_posenc_buckets")
        return out


class Alibi(_Relative):
    """ALiBi linear biases for n_heads heads; causal (default) or symmetric; max_bias (default 8)."""

    _params = {"causal": ("TOKEMB_ALIBI_CAUSAL", "i"), "max_bias": ("TOKEMB_ALIBI_MAX_BIAS", "f")}

    def __init__(self, n_heads: int, causal: bool = True, max_bias: Optional[float] = None) -> None:
        self._create("tokemb_posenc_create_alibi", int(n_heads))
        self.set_param("causal", 1 if causal else 0)
        if max_bias is not None:
            self.set_param("max_bias", max_bias)

    def slopes(self) -> np.ndarray:
        """The per-head ALiBi slopes (float32 [n_heads])."""
        out = np.empty(self.dim, dtype=np.float32)
        _lib.check(_lib.fn("tokemb_posenc_alibi_slopes")(self._p, ptr(out)), "tokemb_posenc_alibi_slopes")
        return out


class T5(_Relative):
    """T5 relative attention bias: buckets of key - query, learned table [num_buckets, n_heads] (.table)."""

    def __init__(self, n_heads: int, num_buckets: int = 32, max_distance: int = 128, bidirectional: bool = True) -> None:
        self._create("tokemb_posenc_create_t5", int(n_heads), int(num_buckets), int(max_distance),
                     1 if bidirectional else 0)
        self.num_buckets = int(num_buckets)

    def attn_bias_backward(self, q_len: int, k_len: int, grad_bias: ArrayLike, q_offset: int = 0,
                           grad_table: Optional[np.ndarray] = None) -> np.ndarray:
        """grad_table [num_buckets, n_heads] += scatter of grad_bias [n_heads, q_len, k_len]."""
        g = f32_array(grad_bias, "grad_bias", (self.dim, int(q_len), int(k_len)))
        gt = np.zeros((self.num_buckets, self.dim), np.float32) if grad_table is None else \
            out_array(grad_table, "grad_table", (self.num_buckets, self.dim))
        _lib.check(_lib.fn("tokemb_posenc_attn_bias_backward")(self._p, int(q_len), int(k_len), int(q_offset), ptr(g),
                                                               ptr(gt)), "tokemb_posenc_attn_bias_backward")
        return gt


class Shaw(_Relative):
    """Shaw et al. relative representations: clip(j - i, -k, k) + k indexes a [2k+1, dim] table."""

    def __init__(self, max_distance: int, dim: int) -> None:
        self._create("tokemb_posenc_create_shaw", int(max_distance), int(dim))
        self.max_distance = int(max_distance)

    def embed(self, q_len: int, k_len: int, q_offset: int = 0, out: Optional[np.ndarray] = None) -> np.ndarray:
        """float32 [q_len, k_len, dim] = table[index(i, j)]."""
        out = out_array(out, "out", (int(q_len), int(k_len), self.dim))
        _lib.check(_lib.fn("tokemb_posenc_shaw_embed")(self._p, int(q_len), int(k_len), int(q_offset), ptr(out)),
                   "tokemb_posenc_shaw_embed")
        return out

    def embed_backward(self, q_len: int, k_len: int, grad: ArrayLike, q_offset: int = 0,
                       grad_table: Optional[np.ndarray] = None) -> np.ndarray:
        """grad_table [2 * max_distance + 1, dim] += scatter of grad [q_len, k_len, dim] (the backward of embed)."""
        g = f32_array(grad, "grad", (int(q_len), int(k_len), self.dim))
        gt = np.zeros((2 * self.max_distance + 1, self.dim), np.float32) if grad_table is None else \
            out_array(grad_table, "grad_table", (2 * self.max_distance + 1, self.dim))
        _lib.check(_lib.fn("tokemb_posenc_shaw_embed_backward")(self._p, int(q_len), int(k_len), int(q_offset), ptr(g), ptr(gt)),
                   "tokemb_posenc_shaw_embed_backward")
        return gt


def _embed_args(table, pe, ids):
    ids = ids_array(ids, allow_i32=False)
    if ids.ndim == 1:
        ids = ids.reshape(1, -1)
    check_shape(ids, "ids", ndim=2)
    return ids, (pe._p if pe is not None else None)


def embed(table: Table, pe: Optional["PositionalEncoding"], ids: ArrayLike, start_pos: int = 0,
          scale: Optional[float] = None, out: Optional[np.ndarray] = None) -> np.ndarray:
    """Fused input embedding out[batch, seq, dim] = scale * table[ids] + pe(start_pos + s).
    ids: [batch, seq] (or [seq]); pe: Sinusoidal, Learned or None; scale defaults to 1 (GPT-2 style;
    pass math.sqrt(dim) for Vaswani-style models)."""
    ids, pep = _embed_args(table, pe, ids)
    b, s = ids.shape
    out = out_array(out, "out", (b, s, table.dim))
    _lib.check(_lib.fn("tokemb_embed")(table._p, pep, ptr(ids), b, s, int(start_pos),
                                       1.0 if scale is None else float(scale), ptr(out)), "tokemb_embed")
    return out


def embed_backward(table: Table, pe: Optional["PositionalEncoding"], ids: ArrayLike, grad_out: ArrayLike,
                   start_pos: int = 0, scale: Optional[float] = None, grad_table: Any = True,
                   grad_pe: Any = False) -> Any:
    """Backward of embed: returns (grad_table or None, grad_pe or None). True asks for a new zeroed
    buffer, an array accumulates into it, False/None skips."""
    ids, pep = _embed_args(table, pe, ids)
    b, s = ids.shape
    g = f32_array(grad_out, "grad_out", (b, s, table.dim))

    def buf(x, shape, name):
        if x is True:
            return np.zeros(shape, np.float32)
        if x is None or x is False:
            return None
        return out_array(x, name, shape)
    gt = buf(grad_table, (table.rows, table.dim), "grad_table")
    gp = None
    if grad_pe is not None and grad_pe is not False:
        t = pe.table if pe is not None else None
        if t is None:
            raise ValueError("grad_pe needs a learned positional encoder")
        gp = buf(grad_pe, (t.rows, t.dim), "grad_pe")
    _lib.check(_lib.fn("tokemb_embed_backward")(table._p, pep, ptr(ids), b, s, int(start_pos),
                                                1.0 if scale is None else float(scale), ptr(g), ptr(gt), ptr(gp)),
               "tokemb_embed_backward")
    return gt, gp


__all__ = ["PositionalEncoding", "Sinusoidal", "Learned", "Rope", "Alibi", "T5", "Shaw", "embed", "embed_backward"]
