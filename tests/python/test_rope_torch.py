"""RoPE against references computed here: transformers' rotate_half / GPT-J rotate_every_two formulas
run in torch (bitwise with the same cos/sin; within float32 angle error with HF's own float32 cos/sin),
autograd for the backward, a float64 rotation at positions up to 2^24 (HF's float32 angle loses
precision there, tokemb does not), and a float64 port of transformers' modeling_rope_utils for the
inv_freq and attention factor of every scaling variant."""
import ctypes
import math
import unittest

import numpy as np
import torch

import pe_sigs as ps
from pe_sigs import PE, i64arr
from tkctypes import lib, ok, ptr


def rope(pe, x, pos, backward=False):
    x = np.ascontiguousarray(x, np.float32).copy()
    pos = i64arr(pos)
    fn = lib.tokemb_rope_apply_backward if backward else lib.tokemb_rope_apply
    ok(fn(pe.h, ptr(x), x.shape[0], x.shape[1], ptr(pos)))
    return x


def cos_sin(pe, pos, half):
    pos = i64arr(pos)
    c = np.empty((len(pos), half), np.float32)
    s = np.empty((len(pos), half), np.float32)
    ok(lib.tokemb_posenc_rope_cos_sin(pe.h, ptr(pos), len(pos), ptr(c), ptr(s)))
    return torch.from_numpy(c), torch.from_numpy(s)


def inv_freq(pe, half):
    out = np.empty(half, np.float64)
    a = ctypes.c_double()
    ok(lib.tokemb_posenc_rope_inv_freq(pe.h, ptr(out), half, ctypes.byref(a)))
    return out, a.value


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def rotate_every_two(x):
    x1 = x[..., ::2]
    x2 = x[..., 1::2]
    return torch.stack((-x2, x1), dim=-1).flatten(-2)


def hf_inv_freq32(base, r):
    return 1.0 / (base ** (torch.arange(0, r, 2, dtype=torch.int64).float() / r))


# ---- float64 port of transformers' modeling_rope_utils (newest formulas) --------------------------------
def ref_default(base, r):
    return 1.0 / np.power(base, np.arange(0, r, 2, dtype=np.float64) / r)


def ref_dynamic(base, r, factor, L0, seq_len):
    if seq_len > L0:
        base = base * ((factor * seq_len / L0) - (factor - 1)) ** (r / (r - 2))
    return ref_default(base, r), 1.0


def get_mscale(scale, mscale=1):
    return 1.0 if scale <= 1 else 0.1 * mscale * math.log(scale) + 1.0


def ref_yarn(base, r, factor, L0, beta_fast=32, beta_slow=1, mscale=None, mscale_all_dim=None, truncate=True,
             attention_factor=None):
    if attention_factor is None:
        if mscale and mscale_all_dim:
            attention_factor = get_mscale(factor, mscale) / get_mscale(factor, mscale_all_dim)
        else:
            attention_factor = get_mscale(factor)

    def corr_dim(n):
        return (r * math.log(L0 / (n * 2 * math.pi))) / (2 * math.log(base))
    low, high = corr_dim(beta_fast), corr_dim(beta_slow)
    if truncate:
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, r - 1)
    if low == high:
        high += 0.001
    ramp = np.clip((np.arange(r // 2, dtype=np.float64) - low) / (high - low), 0, 1)
    extra = 1 - ramp
    pos_freqs = np.power(base, np.arange(0, r, 2, dtype=np.float64) / r)
    inv = (1.0 / (factor * pos_freqs)) * (1 - extra) + (1.0 / pos_freqs) * extra
    return inv, attention_factor


def ref_llama3(base, r, factor, L0, low_ff=1.0, high_ff=4.0):
    inv = ref_default(base, r)
    low_wl, high_wl = L0 / low_ff, L0 / high_ff
    wl = 2 * math.pi / inv
    llama = np.where(wl > low_wl, inv / factor, inv)
    smooth = (L0 / wl - low_ff) / (high_ff - low_ff)
    smoothed = (1 - smooth) * llama / factor + smooth * llama
    medium = ~(wl < high_wl) & ~(wl > low_wl)
    return np.where(medium, smoothed, llama), 1.0


def ref_longrope(base, r, factor, L0, short, long, seq_len):
    A = 1.0 if factor <= 1 else math.sqrt(1 + math.log(factor) / math.log(L0))
    ext = np.asarray(long if seq_len and seq_len > L0 else short, np.float64)
    return 1.0 / (ext * np.power(base, np.arange(0, r, 2, dtype=np.float64) / r)), A


class Rotation(unittest.TestCase):
    def test_rotate_half_bitwise(self):
        torch.manual_seed(0)
        for hd, r in ((64, 64), (80, 32), (96, 24)):
            pe = PE("rope", hd, r, 10000.0, ps.NEOX)
            T, H = 9, 3
            x = torch.randn(T, H, hd)
            pos = torch.tensor([0, 1, 2, 5, 100, 511, 4095, 70000, 2 ** 24])
            c, s = cos_sin(pe, pos.numpy(), r // 2)
            cos = torch.cat((c, c), -1)[:, None, :]
            sin = torch.cat((s, s), -1)[:, None, :]
            xr, xp = x[..., :r], x[..., r:]
            ref = torch.cat((xr * cos + rotate_half(xr) * sin, xp), -1)
            got = rope(pe, x.numpy(), pos.numpy())
            self.assertTrue(np.array_equal(got, ref.numpy()), (hd, r))
            # backward = autograd of the same formula
            xq = xr.clone().requires_grad_(True)
            y = xq * cos + rotate_half(xq) * sin
            g = torch.randn_like(y)
            y.backward(g)
            gfull = torch.cat((g, torch.randn(T, H, hd - r)), -1)
            gb = rope(pe, gfull.numpy(), pos.numpy(), backward=True)
            self.assertTrue(np.array_equal(gb[..., :r], xq.grad.numpy()))
            self.assertTrue(np.array_equal(gb[..., r:], gfull[..., r:].numpy()))

    def test_gptj_bitwise(self):
        torch.manual_seed(1)
        hd, r = 256, 64  # GPT-J: rotary_dim 64 of head 256
        pe = PE("rope", hd, r, 10000.0, ps.GPTJ)
        x = torch.randn(6, 2, hd)
        pos = torch.tensor([0, 3, 7, 1000, 2047, 123456])
        c, s = cos_sin(pe, pos.numpy(), r // 2)
        cos = torch.repeat_interleave(c, 2, -1)[:, None, :]
        sin = torch.repeat_interleave(s, 2, -1)[:, None, :]
        xr = x[..., :r]
        ref = torch.cat((xr * cos + rotate_every_two(xr) * sin, x[..., r:]), -1)
        self.assertTrue(np.array_equal(rope(pe, x.numpy(), pos.numpy()), ref.numpy()))

    def test_vs_hf_float32_pipeline(self):
        """LlamaRotaryEmbedding in float32 (inv_freq float32, freqs via matmul) agrees to its own angle error."""
        torch.manual_seed(2)
        hd = 128
        pe = PE("rope", hd, hd, 10000.0, ps.NEOX)
        pos = torch.arange(0, 4096, 37)
        inv = hf_inv_freq32(10000.0, hd)
        freqs = (inv[None, :, None].float() @ pos[None, None, :].float()).transpose(1, 2)[0]
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos()[:, None, :], emb.sin()[:, None, :]
        x = torch.randn(len(pos), 4, hd)
        ref = x * cos + rotate_half(x) * sin
        got = rope(pe, x.numpy(), pos.numpy())
        err = np.abs(got - ref.numpy()).max()
        self.assertLess(err, 2e-3)  # HF's float32 angle at p ~ 4k is off by ~1e-4 rad
        small = pos < 256
        self.assertLess(np.abs(got[small.numpy()] - ref[small].numpy()).max(), 2e-5)

    def test_large_positions_vs_float64(self):
        """At positions up to 2^24 tokemb equals a float64 rotation to float32 rounding; HF float32 does not."""
        torch.manual_seed(3)
        hd = 128
        pe = PE("rope", hd, hd, 10000.0, ps.NEOX)
        pos = np.array([4095, 131071, 1000003, 2 ** 24 - 1, 2 ** 24])
        x = torch.randn(len(pos), 1, hd)
        inv64 = ref_default(10000.0, hd)
        ang = pos[:, None].astype(np.float64) * inv64[None, :]
        c64, s64 = np.cos(ang), np.sin(ang)
        x64 = x.double().numpy()[:, 0, :]
        x1, x2 = x64[:, : hd // 2], x64[:, hd // 2:]
        ref64 = np.concatenate((x1 * c64 - x2 * s64, x2 * c64 + x1 * s64), -1)
        got = rope(pe, x.numpy(), pos)[:, 0, :]
        err_ours = np.abs(got - ref64).max()
        self.assertLess(err_ours, 1e-6 * np.abs(x64).max() * 4)
        inv = hf_inv_freq32(10000.0, hd)
        freqs = torch.from_numpy(pos).float()[:, None] * inv[None, :]
        emb = torch.cat((freqs, freqs), -1)
        hf = (x[:, 0] * emb.cos() + rotate_half(x[:, 0]) * emb.sin()).numpy()
        err_hf = np.abs(hf - ref64).max()
        self.assertGreater(err_hf, 1e-2)
        self.assertGreater(err_hf, 1000 * err_ours)

    def test_strided_bhsd_left_padding(self):
        torch.manual_seed(4)
        B, H, S, D = 2, 3, 5, 16
        pe = PE("rope", D, D, 10000.0, ps.NEOX)
        x = torch.randn(B, H, S, D)
        mask = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])
        position_ids = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # HF left-padding positions
        c, s = cos_sin(pe, position_ids.flatten().numpy(), D // 2)
        cos = torch.cat((c, c), -1).view(B, 1, S, D)
        sin = torch.cat((s, s), -1).view(B, 1, S, D)
        ref = x * cos + rotate_half(x) * sin
        xn = np.ascontiguousarray(x.numpy()).copy()
        pid = i64arr(position_ids.numpy())
        ok(lib.tokemb_posenc_rope_apply_strided(pe.h, ptr(xn), B, H, S, H * S * D, S * D, D, ptr(pid), 0))
        self.assertTrue(np.array_equal(xn, ref.numpy()))

    def test_relative_property(self):
        torch.manual_seed(5)
        pe = PE("rope", 64, 64, 10000.0, ps.GPTJ)
        q, k = torch.randn(1, 1, 64), torch.randn(1, 1, 64)
        dots = []
        for m in (0, 7, 1000, 30000):
            qq = rope(pe, q.numpy(), [m])
            kk = rope(pe, k.numpy(), [m + 5])
            dots.append(float(np.dot(qq.ravel().astype(np.float64), kk.ravel())))
        self.assertLess(max(dots) - min(dots), 1e-5)


class Scaling(unittest.TestCase):
    def check(self, pe, half, ref, A_ref):
        got, A = inv_freq(pe, half)
        np.testing.assert_allclose(got, ref, rtol=1e-13, atol=0)
        self.assertAlmostEqual(A, A_ref, places=13)

    def test_all_variants_vs_float64_port(self):
        for base, r, hd in ((10000.0, 128, 128), (500000.0, 128, 128), (1e6, 64, 96), (150000.0, 64, 64), (10000.0, 32, 80)):
            half = r // 2
            pe = PE("rope", hd, r, base, ps.NEOX)
            self.check(pe, half, ref_default(base, r), 1.0)
            pe.set(ps.ROPE_SCALING, ps.SC_LINEAR)
            pe.set(ps.ROPE_FACTOR, 4.0)
            self.check(pe, half, ref_default(base, r) / 4.0, 1.0)
            pe.set(ps.ROPE_ORIGINAL_MAX_POS, 4096)
            pe.set(ps.ROPE_SCALING, ps.SC_DYNAMIC)
            for L in (0, 100, 4096, 4097, 16384, 10 ** 6):
                pe.set(ps.ROPE_SEQ_LEN, L)
                self.check(pe, half, *ref_dynamic(base, r, 4.0, 4096, L))
            pe.set(ps.ROPE_SCALING, ps.SC_YARN)
            for factor in (1.0, 4.0, 16.0, 32.0, 40.0):
                pe.set(ps.ROPE_FACTOR, factor)
                for trunc in (1, 0):
                    pe.set(ps.ROPE_TRUNCATE, trunc)
                    self.check(pe, half, *ref_yarn(base, r, factor, 4096, truncate=bool(trunc)))
            pe.set(ps.ROPE_TRUNCATE, 1)
            pe.set(ps.ROPE_BETA_FAST, 16.0)
            pe.set(ps.ROPE_BETA_SLOW, 2.0)
            pe.set(ps.ROPE_MSCALE, 0.707)
            pe.set(ps.ROPE_MSCALE_ALL_DIM, 0.707)
            self.check(pe, half, *ref_yarn(base, r, 40.0, 4096, 16, 2, 0.707, 0.707))
            pe.set(ps.ROPE_MSCALE_ALL_DIM, 1.0)
            self.check(pe, half, *ref_yarn(base, r, 40.0, 4096, 16, 2, 0.707, 1.0))
            pe.set(ps.ROPE_SCALING, ps.SC_LLAMA3)
            for factor, L0, lo, hi in ((8.0, 8192, 1.0, 4.0), (32.0, 8192, 1.0, 4.0), (10.0, 2048, 2.0, 5.0)):
                pe.set(ps.ROPE_FACTOR, factor)
                pe.set(ps.ROPE_ORIGINAL_MAX_POS, L0)
                pe.set(ps.ROPE_LOW_FREQ_FACTOR, lo)
                pe.set(ps.ROPE_HIGH_FREQ_FACTOR, hi)
                self.check(pe, half, *ref_llama3(base, r, factor, L0, lo, hi))
            pe.set(ps.ROPE_SCALING, ps.SC_LONGROPE)
            rng = np.random.default_rng(r)
            short = rng.uniform(1.0, 1.2, half)
            long = rng.uniform(1.0, 40.0, half)
            ok(lib.tokemb_posenc_rope_set_longrope_factors(pe.h, ptr(short), ptr(long), half))
            pe.set(ps.ROPE_ORIGINAL_MAX_POS, 4096)
            for factor in (1.0, 32.0):
                pe.set(ps.ROPE_FACTOR, factor)
                for L in (0, 4096, 4097):
                    pe.set(ps.ROPE_SEQ_LEN, L)
                    self.check(pe, half, *ref_longrope(base, r, factor, 4096, short, long, L))
            # an explicit attention factor overrides the formula
            pe.set(ps.ROPE_ATTN_FACTOR, 1.25)
            self.assertEqual(inv_freq(pe, half)[1], 1.25)

    def test_attention_factor_scales_rotation(self):
        pe = PE("rope", 8, 8, 10000.0, ps.NEOX)
        pe.set(ps.ROPE_SCALING, ps.SC_YARN)
        pe.set(ps.ROPE_ORIGINAL_MAX_POS, 64)
        pe.set(ps.ROPE_FACTOR, 10.0)
        x = np.arange(1, 9, dtype=np.float32)[None, None, :]
        got = rope(pe, x, [0])
        A = 0.1 * math.log(10.0) + 1
        self.assertTrue(np.array_equal(got, x * np.float32(A)))  # cos = (float)A, sin = 0

    def test_bad_input_leaves_x(self):
        pe = PE("rope", 8, 8, 10000.0, ps.NEOX)
        pe.set(ps.ROPE_SCALING, ps.SC_LONGROPE)
        pe.set(ps.ROPE_ORIGINAL_MAX_POS, 64)
        x = np.arange(16, dtype=np.float32).reshape(2, 1, 8)
        keep = x.copy()
        pos = i64arr([0, 1])
        self.assertEqual(lib.tokemb_rope_apply(pe.h, ptr(x), 2, 1, ptr(pos)), -1)
        self.assertIn(b"longrope", lib.tokemb_last_error().lower())
        self.assertEqual(lib.tokemb_posenc_set_param_f64(pe.h, ps.ROPE_FACTOR, float("nan")), -1)
        pos = i64arr([0, -3])
        pe.set(ps.ROPE_SCALING, ps.SC_NONE)
        self.assertEqual(lib.tokemb_rope_apply(pe.h, ptr(x), 2, 1, ptr(pos)), -2)
        self.assertTrue(np.array_equal(x, keep))


if __name__ == "__main__":
    unittest.main()
