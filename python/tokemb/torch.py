"""torch modules backed by libtokemb: Embedding, EmbeddingBag, RotaryEmbedding.

Forward and backward run in the library through torch.autograd.Function, directly on the tensors'
memory (tensor.numpy() views: no copies for contiguous float32 CPU tensors; the weight is wrapped as a
borrowed table for the duration of each call). The library's thread count follows
torch.get_num_threads(), and its parallel loops run on torch's own OpenMP workers
(tokemb.use_host_openmp; tokemb.set_parallel_for(None) returns to tokemb's pool; tokemb/_threads.py). Anything the library does not handle (a CUDA tensor, a
float64 / float16 / bfloat16 weight) and TorchScript (script, trace) run torch's own functional op, so the
modules stay drop-in replacements. tokemb.torch.functional has F.embedding / F.embedding_bag's signatures.

    from tokemb.torch import Embedding
    emb = Embedding(50257, 768, padding_idx=0)            # same arguments as nn.Embedding
    emb = Embedding.from_pretrained(weights, freeze=False)
"""
import sys as _sys
import types as _types
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _threads
from .posenc import Rope
from ._errors import OutOfRange
from .table import Table

_threads.share_host_pool()  # tokemb's loops on torch's OpenMP workers (docs/threading.md)

__all__ = ["Embedding", "EmbeddingBag", "RotaryEmbedding", "embedding", "embedding_bag", "functional", "supported"]


def supported(weight):
    """True when the library can work on this weight in place (CPU float32, unit column stride)."""
    return (weight.device.type == "cpu" and weight.dtype == torch.float32 and weight.dim() == 2
            and weight.stride(1) == 1 and weight.stride(0) >= weight.size(1) and weight.numel() > 0)


def _wrap(weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False):
    """A borrowed table over the weight's own storage (no copy), with nn.Embedding's options."""
    t = Table.wrap(weight.detach().numpy())
    if padding_idx is not None:
        t.padding_idx = padding_idx
    if max_norm is not None:
        t.norm_type = norm_type
        t.max_norm = max_norm
    if scale_grad_by_freq:
        t.scale_grad_by_freq = True
    return t


def _bump_version(weight):
    """max_norm renormalises rows of the weight in place inside the library, where autograd cannot see it.
    torch's embedding_renorm_ is an in-place op that bumps the weight's version counter, so a tensor
    saved earlier from the same weight (a tied output head) makes backward raise "modified by an inplace
    operation" instead of producing a wrong gradient. An in-place op on an empty view bumps the shared
    counter at no cost."""
    with torch.no_grad():
        weight.narrow(0, 0, 0).zero_()


def _ids(ids):
    if ids.dtype not in (torch.int64, torch.int32):
        raise RuntimeError("Expected tensor for argument #1 'indices' to have one of the following scalar types: "
                           "Long, Int; but got %s instead (while checking arguments for embedding)" % ids.type())
    if ids.device.type != "cpu":
        raise RuntimeError("tokemb.torch works on CPU tensors")
    return ids.contiguous()  # no copy when already contiguous


class _EmbeddingFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, ids, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse):
        _threads.track_torch(torch.get_num_threads())
        ids = _ids(ids)
        t = _wrap(weight, padding_idx, max_norm, norm_type, scale_grad_by_freq)
        out = torch.empty(tuple(ids.shape) + (weight.size(1),), dtype=torch.float32)
        t.lookup(ids.numpy(), out=out.numpy())  # max_norm renormalises referenced rows in place first
        ctx.save_for_backward(ids)
        ctx.save_for_forward(ids)
        ctx.opts = (padding_idx, scale_grad_by_freq, sparse)
        ctx.weight = weight.detach()  # only its shape and storage address are used by the backward
        return out

    @staticmethod
    def jvp(ctx, weight_t, *_):
        """Forward-mode AD: the output is linear in the weight, so its tangent is the same gather of the
        weight's tangent."""
        (ids,) = ctx.saved_tensors
        return weight_t.index_select(0, ids.reshape(-1).to(torch.int64)).reshape(tuple(ids.shape) + (weight_t.size(1),))

    @staticmethod
    def backward(ctx, grad_out):
        (ids,) = ctx.saved_tensors
        padding_idx, scale_grad_by_freq, sparse = ctx.opts
        w = ctx.weight
        if torch.is_grad_enabled() and grad_out.requires_grad:
            # create_graph=True (double backward): the gradient must itself be differentiable in grad_out;
            # torch's embedding_backward has that derivative (a gather), the library's call does not.
            gw = torch.ops.aten.embedding_backward(grad_out, ids, w.size(0),
                                                   -1 if padding_idx is None else padding_idx, scale_grad_by_freq,
                                                   sparse)
            return gw, None, None, None, None, None, None
        t = _wrap(w, padding_idx, None, 2.0, scale_grad_by_freq)
        g = grad_out.contiguous()
        if g.dtype != torch.float32:
            g = g.float()
        if sparse:
            uids, rows = t.grad_coalesce(ids.numpy(), g.numpy())
            gw = torch.sparse_coo_tensor(torch.from_numpy(uids.copy()).unsqueeze(0), torch.from_numpy(rows.copy()),
                                         tuple(w.shape))
        else:
            gw = torch.zeros(tuple(w.shape), dtype=torch.float32)
            t.grad_accumulate(ids.numpy(), g.numpy(), grad_table=gw.numpy())
        return gw, None, None, None, None, None, None


class Embedding(nn.Embedding):
    """nn.Embedding whose forward (gather, max_norm renorm) and backward (dense scatter-add, or a
    coalesced sparse gradient with sparse=True) run in libtokemb. Same constructor, attributes,
    from_pretrained, state_dict and repr as nn.Embedding. The dense backward equals torch's bit for bit;
    the sparse gradient is the coalesced form of torch's (same values, one row per distinct id)."""

    def forward(self, input):
        if torch.jit.is_scripting() or torch.jit.is_tracing():  # TorchScript: torch's op (see docs/bindings.md)
            return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                               self.scale_grad_by_freq, self.sparse)
        return self._tokemb_forward(input)

    @torch.jit.unused
    def _tokemb_forward(self, input):
        return embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq,
                         self.sparse)


def _padding(padding_idx, rows, word):
    """F.embedding / F.embedding_bag's padding_idx rules: AssertionError outside [-rows, rows), negative counts
    from the end."""
    if padding_idx is None:
        return None
    assert -rows <= padding_idx < rows, "%s must be within num_embeddings" % word
    return padding_idx + rows if padding_idx < 0 else padding_idx


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False, sparse=False):
    """torch.nn.functional.embedding with forward and backward in libtokemb (CPU float32 weights; other
    weights run torch's own op). Out-of-range ids raise IndexError("index out of range in self: ...")
    like torch, followed by the library's message naming the id and its position."""
    if not supported(weight):
        return F.embedding(input, weight, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse)
    padding_idx = _padding(padding_idx, weight.size(0), "Padding_idx")
    if max_norm is not None:
        _bump_version(weight)
    try:
        return _EmbeddingFunction.apply(weight, input, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse)
    except OutOfRange as e:
        raise IndexError("index out of range in self: %s" % e) from e


_MODES = {"sum": 0, "mean": 1, "max": 2}


class _EmbeddingBagFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, weight, psw, ids, offsets, mode, padding_idx, max_norm, norm_type, scale_grad_by_freq,
                sparse=False):
        _threads.track_torch(torch.get_num_threads())
        t = _wrap(weight, padding_idx, max_norm, norm_type, scale_grad_by_freq)
        nb = offsets.numel() - 1
        out = torch.empty((nb, weight.size(1)), dtype=torch.float32)
        pswn = None if psw is None else psw.detach().contiguous().numpy()
        t.lookup_bags(ids.numpy(), offsets.numpy(), mode, pswn, out=out.numpy())
        ctx.save_for_backward(ids, offsets, psw)
        ctx.save_for_forward(ids, offsets, psw)
        ctx.opts = (mode, padding_idx, scale_grad_by_freq, sparse)
        ctx.weight = weight.detach()
        return out

    @staticmethod
    def jvp(ctx, weight_t, psw_t, *_):
        """Forward-mode AD for sum and mean (linear in the weight, bilinear in weight x per_sample_weights):
        the tangent is the same bag reduction of the tangents, computed with torch's op."""
        ids, offsets, psw = ctx.saved_tensors
        mode, padding_idx = ctx.opts[0], ctx.opts[1]
        if mode == _MODES["max"]:
            raise NotImplementedError("tokemb.torch: forward-mode AD of EmbeddingBag(mode='max') is not "
                                      "implemented; use mode='sum' or 'mean', or torch.nn.EmbeddingBag")
        ids = ids.to(torch.int64)
        name = "sum" if mode == _MODES["sum"] else "mean"
        out = torch.zeros(offsets.numel() - 1, ctx.weight.size(1), dtype=ctx.weight.dtype)
        if weight_t is not None:
            out = out + F.embedding_bag(ids, weight_t, offsets, mode=name, per_sample_weights=psw,
                                        include_last_offset=True, padding_idx=padding_idx)
        if psw_t is not None:
            out = out + F.embedding_bag(ids, ctx.weight, offsets, mode="sum", per_sample_weights=psw_t,
                                        include_last_offset=True, padding_idx=padding_idx)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        ids, offsets, psw = ctx.saved_tensors
        mode, padding_idx, scale_grad_by_freq, sparse = ctx.opts
        w = ctx.weight
        t = _wrap(w, padding_idx, None, 2.0, scale_grad_by_freq)
        g = grad_out.contiguous()
        gw = torch.zeros(tuple(w.shape), dtype=torch.float32)
        want_psw = psw is not None and ctx.needs_input_grad[1]
        pswn = None if psw is None else psw.detach().contiguous().numpy()
        r = t.lookup_bags_backward(ids.numpy(), offsets.numpy(), g.numpy(), mode, pswn, grad_table=gw.numpy(),
                                   psw_grad=want_psw)
        gpsw = torch.from_numpy(r[1]).reshape(psw.shape) if want_psw else None
        if sparse:  # torch.optim.SparseAdam / SGD take a sparse COO gradient: one row per distinct id
            uids = torch.unique(ids.to(torch.int64))
            gw = torch.sparse_coo_tensor(uids.unsqueeze(0), gw.index_select(0, uids), tuple(w.shape)).coalesce()
        return gw, gpsw, None, None, None, None, None, None, None, None


class EmbeddingBag(nn.EmbeddingBag):
    """nn.EmbeddingBag (sum/mean/max, offsets or 2-D input, per_sample_weights, include_last_offset,
    padding_idx, max_norm) with forward and backward in libtokemb. sparse=True gives a coalesced sparse COO
    gradient (one row per distinct id), which torch.optim.SparseAdam accepts. With scale_grad_by_freq the gradient uses each id's count in the whole
    input (nn.Embedding's meaning; torch's bag backward divides by a wrong count, pytorch #190063)."""

    def forward(self, input: Tensor, offsets: Optional[Tensor] = None,
                per_sample_weights: Optional[Tensor] = None) -> Tensor:
        if torch.jit.is_scripting() or torch.jit.is_tracing():  # TorchScript: torch's op (see docs/bindings.md)
            return F.embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type,
                                   self.scale_grad_by_freq, self.mode, self.sparse, per_sample_weights,
                                   self.include_last_offset, self.padding_idx)
        return self._tokemb_forward(input, offsets, per_sample_weights)

    @torch.jit.unused
    def _tokemb_forward(self, input: Tensor, offsets: Optional[Tensor] = None,
                        per_sample_weights: Optional[Tensor] = None) -> Tensor:
        return embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type, self.scale_grad_by_freq,
                             self.mode, self.sparse, per_sample_weights, self.include_last_offset, self.padding_idx)


def embedding_bag(input, weight, offsets=None, max_norm=None, norm_type=2, scale_grad_by_freq=False, mode="mean",
              sparse=False, per_sample_weights=None, include_last_offset=False, padding_idx=None):
    """torch.nn.functional.embedding_bag with forward and backward in libtokemb (CPU float32 weights; other
    weights run torch's own op). Raises what torch raises (ValueError for bad layouts and mode='max' with
    scale_grad_by_freq or sparse, RuntimeError for a per_sample_weights dtype or an id out of range),
    with the library's message added."""
    if not supported(weight) or input.device.type != "cpu":
        return F.embedding_bag(input, weight, offsets, max_norm, norm_type, scale_grad_by_freq, mode, sparse,
                               per_sample_weights, include_last_offset, padding_idx)
    padding_idx = _padding(padding_idx, weight.size(0), "padding_idx")
    if mode == "max" and scale_grad_by_freq:
        raise ValueError("max mode does not support scaling the gradient by the frequency")
    if mode == "max" and sparse:
        raise ValueError("max mode does not support sparse weights")
    if per_sample_weights is not None and per_sample_weights.dtype != weight.dtype:
        raise RuntimeError("Expected tensor for argument #1 'weight' to have the same type as tensor for argument "
                           "#1 'per_sample_weights'; but type {} does not equal {} (while checking arguments for "
                           "embedding_bag)".format(weight.type(), per_sample_weights.type()))
    if per_sample_weights is not None and input.size() != per_sample_weights.size():
        raise ValueError("embedding_bag: If per_sample_weights ({}) is not None, then it must have the same "
                         "shape as the input ({})".format(per_sample_weights.shape, input.shape))
    if input.dim() == 2:
        if offsets is not None:
            raise ValueError("if input is 2D, then offsets has to be None, as input is treated is a mini-batch "
                             "of fixed length sequences.")
        b, l = input.shape
        csr = torch.arange(0, b * l + 1, l, dtype=torch.int64) if l > 0 else torch.zeros(b + 1, dtype=torch.int64)
        if include_last_offset:
            csr = csr[:-1]  # like torch: the row starts are the offsets, the last one closes the bags (b - 1)
        ids = input.reshape(-1)
        if per_sample_weights is not None:
            per_sample_weights = per_sample_weights.reshape(-1)
        if include_last_offset:  # ids after the closing offset belong to no bag
            ids = ids[:b * l - l]
            if per_sample_weights is not None:
                per_sample_weights = per_sample_weights[:b * l - l]
    elif input.dim() == 1:
        if offsets is None:
            raise ValueError("offsets has to be a 1D Tensor but got None")
        if offsets.dim() != 1:
            raise ValueError("offsets has to be a 1D Tensor")
        ids = input
        offs = offsets.to(torch.int64)
        if include_last_offset:
            csr = offs.contiguous()
        else:
            csr = torch.cat([offs, torch.tensor([input.numel()], dtype=torch.int64)])
    else:
        raise ValueError("input has to be 1D or 2D Tensor, but got Tensor of dimension {}".format(input.dim()))
    if per_sample_weights is not None and mode != "sum":
        raise NotImplementedError("embedding_bag: per_sample_weights was not None. per_sample_weights is only "
                                  "supported for mode='sum' (got mode='{}'). Please open a feature request on "
                                  "GitHub.".format(mode))
    psw = per_sample_weights
    if max_norm is not None:
        _bump_version(weight)
    try:
        return _EmbeddingBagFunction.apply(weight, psw, _ids(ids), csr, _MODES[mode], padding_idx, max_norm,
                                           norm_type, scale_grad_by_freq, sparse)
    except OutOfRange as e:
        raise RuntimeError("Index out of bounds: %s" % e) from e


class _RopeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, positions, rope):
        _threads.track_torch(torch.get_num_threads())
        out = x.detach().to(torch.float32, copy=True).contiguous()  # the output buffer, rotated in place
        _rope_run(rope, out, positions, backward=False)
        ctx.rope, ctx.positions = rope, positions
        return out

    @staticmethod
    def backward(ctx, grad):
        g = grad.detach().to(torch.float32, copy=True).contiguous()
        _rope_run(ctx.rope, g, ctx.positions, backward=True)
        return g, None, None


def _rope_run(rope, x, positions, backward):
    a = x.numpy()
    if x.dim() == 4:  # [batch, heads, seq, head_dim] (transformers' layout)
        rope.apply_strided(a, positions.numpy(), backward=backward)
    else:
        if backward:
            rope.apply_backward(a, positions.numpy(), inplace=True)
        else:
            rope.apply(a, positions.numpy(), inplace=True)


class RotaryEmbedding(nn.Module):
    """Applies RoPE (libtokemb's tokemb_rope_apply) to queries or keys.

    forward(x, positions): x is [n_tokens, n_heads, head_dim] (or [n_tokens, head_dim]) with positions
    [n_tokens], or transformers' [batch, heads, seq, head_dim] with positions [batch, seq] or [seq].
    Returns a rotated copy (autograd: the backward rotates the gradient by -theta). Constructor
    arguments are those of tokemb.Rope (layout "neox"/"gptj", scaling and its parameters)."""

    def __init__(self, head_dim, rotary_dim=None, base=10000.0, layout="neox", scaling=None, **params):
        super().__init__()
        self.rope = Rope(head_dim, rotary_dim, base, layout, scaling, **params)
        self.head_dim = head_dim
        self.rotary_dim = self.rope.rotary_dim

    def extra_repr(self):
        return "head_dim=%d, rotary_dim=%d" % (self.head_dim, self.rotary_dim)

    def inv_freq(self):
        return torch.from_numpy(self.rope.inv_freq()[0])

    def forward(self, x, positions):
        if x.device.type != "cpu":
            raise RuntimeError("tokemb.torch.RotaryEmbedding works on CPU tensors")
        positions = torch.as_tensor(positions, dtype=torch.int64)
        if x.dim() == 4:
            b, _, s, _ = x.shape
            if positions.dim() == 1:
                positions = positions.unsqueeze(0).expand(b, s)
        return _RopeFunction.apply(x, positions.contiguous(), self.rope)



# tokemb.torch.functional: F.embedding / F.embedding_bag's names and signatures (import tokemb.torch.functional
# as TF, or tokemb.torch.functional.embedding).
functional = _types.ModuleType(__name__ + ".functional", "torch.nn.functional's embedding ops backed by libtokemb.")
functional.embedding = embedding
functional.embedding_bag = embedding_bag
functional.__all__ = ["embedding", "embedding_bag"]
_sys.modules[functional.__name__] = functional
