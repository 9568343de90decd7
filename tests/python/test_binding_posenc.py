"""Positional encoders through the Python binding: each family's numpy API checked against an
independent reference computed here (the seed article's numpy recipe in float64, the ALiBi slope rule,
transformers' T5 bucket function ported to torch float32, the Shaw clip formula, float64 RoPE), plus
lifetime and bad input."""
import gc
import math
import unittest
import weakref

import numpy as np
import torch

import tokemb


def within_ulps(got, ref64, ulps=1):
    ref32 = ref64.astype(np.float32)
    tol = ulps * np.spacing(np.abs(ref32).astype(np.float32))
    return np.all(np.abs(got.astype(np.float64) - ref32.astype(np.float64)) <= tol + 1e-45)


def seed_recipe64(positions, d):
    """The seed article's positional_encoding, evaluated in float64."""
    pos = np.asarray(positions, dtype=np.float64)[:, None]
    i = np.arange(d)[None, :]
    ang = pos / np.power(10000.0, (2 * (i // 2)) / d)
    out = ang.copy()
    out[:, 0::2] = np.sin(ang[:, 0::2])
    out[:, 1::2] = np.cos(ang[:, 1::2])
    return out


def t5_bucket(rel, bidirectional=True, num_buckets=32, max_distance=128):
    """transformers' T5Attention._relative_position_bucket (torch float32 path)."""
    ret = torch.zeros_like(rel)
    if bidirectional:
        num_buckets //= 2
        ret += (rel > 0).to(torch.long) * num_buckets
        rel = torch.abs(rel)
    else:
        rel = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    is_small = rel < max_exact
    large = max_exact + (torch.log(rel.float() / max_exact) / math.log(max_distance / max_exact)
                         * (num_buckets - max_exact)).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return ret + torch.where(is_small, rel, large)


class TestAbsolute(unittest.TestCase):
    def test_sinusoidal_matches_seed_recipe(self):
        with tokemb.Sinusoidal(512) as pe:
            self.assertEqual(pe.dim, 512)
            pos = np.arange(10)
            out = pe.encode(pos)
            self.assertEqual(out.shape, (10, 512))
            self.assertTrue(within_ulps(out, seed_recipe64(pos, 512)))
            far = np.array([[100000, 3], [7, 2 ** 20]])
            self.assertEqual(pe(far).shape, (2, 2, 512))
            self.assertTrue(within_ulps(pe(far).reshape(4, 512), seed_recipe64(far.ravel(), 512)))
        c = tokemb.Sinusoidal(8, layout="concat").encode([3])[0]
        w = 10000.0 ** (-np.arange(0, 8, 2) / 8)
        self.assertTrue(within_ulps(c, np.concatenate([np.sin(3 * w), np.cos(3 * w)])))
        with self.assertRaises(ValueError):
            tokemb.Sinusoidal(8, layout="spiral")
        with self.assertRaises(tokemb.InvalidArgument):
            tokemb.Sinusoidal(0)

    def test_learned_table_and_out_of_range(self):
        pe = tokemb.Learned(6, 4)
        t = pe.table
        self.assertEqual(t.shape, (6, 4))
        t.init_normal(11)
        w = t.numpy().copy()
        self.assertTrue(np.array_equal(pe.encode([5, 0, 5]), w[[5, 0, 5]]))
        with self.assertRaises(IndexError) as cm:
            pe.encode([1, 6])
        self.assertIn("6", cm.exception.message)
        # the table keeps the encoder alive after the encoder object is closed
        h = weakref.ref(pe._h)
        pe.close()
        gc.collect()
        self.assertIsNotNone(h())
        self.assertTrue(np.array_equal(t.lookup([2]), w[[2]]))
        with self.assertRaises(ValueError):
            pe.encode([0])
        del t
        gc.collect()
        self.assertIsNone(h())

    def test_fused_embed(self):
        tok = tokemb.Table(9, 6).init_normal(1)
        pe = tokemb.Sinusoidal(6)
        ids = np.array([[1, 8, 8], [0, 2, 3]])
        scale = math.sqrt(6)
        out = tokemb.embed(tok, pe, ids, start_pos=4, scale=scale)
        ref = np.float32(scale) * tok.numpy()[ids] + pe.encode(np.arange(4, 7))[None]
        self.assertTrue(np.array_equal(out, ref.astype(np.float32)))
        self.assertTrue(np.array_equal(tokemb.embed(tok, None, ids), tok.numpy()[ids]))
        g = np.ones((2, 3, 6), np.float32)
        gt, gp = tokemb.embed_backward(tok, pe, ids, g, start_pos=4, scale=scale)
        self.assertIsNone(gp)
        self.assertTrue(np.allclose(gt[8], 2 * np.float32(scale)) and np.all(gt[4] == 0))
        lpe = tokemb.Learned(8, 6)
        gt, gp = tokemb.embed_backward(tok, lpe, ids, g, start_pos=1, grad_pe=True)
        self.assertEqual(gp[1:4].tolist(), [[2.0] * 6] * 3)
        with self.assertRaises(IndexError):
            tokemb.embed(tok, pe, np.array([[9]]))
        with self.assertRaises(ValueError):
            tokemb.embed(tok, tokemb.Sinusoidal(4), ids)


class TestRope(unittest.TestCase):
    def test_apply_matches_float64_and_backward_inverts(self):
        d = 8
        rope = tokemb.Rope(d, layout="gptj")
        rng = np.random.default_rng(0)
        x = rng.standard_normal((4, 2, d)).astype(np.float32)
        pos = np.array([0, 3, 1000, 2 ** 20])
        y = rope.apply(x, pos)
        self.assertFalse(np.shares_memory(x, y))
        inv = 1.0 / 10000.0 ** (np.arange(0, d, 2) / d)
        f, a = rope.inv_freq()
        np.testing.assert_allclose(f, inv, rtol=1e-15)
        self.assertEqual(a, 1.0)
        ang = pos[:, None, None] * inv[None, None, :]
        x64 = x.astype(np.float64)
        ref = np.empty_like(x64)
        ref[..., 0::2] = x64[..., 0::2] * np.cos(ang) - x64[..., 1::2] * np.sin(ang)
        ref[..., 1::2] = x64[..., 0::2] * np.sin(ang) + x64[..., 1::2] * np.cos(ang)
        np.testing.assert_allclose(y, ref, rtol=0, atol=2e-6)
        back = rope.apply_backward(y, pos)
        np.testing.assert_allclose(back, x, rtol=0, atol=2e-6)
        z = x.copy()
        self.assertIs(rope.apply(z, pos, inplace=True), z)
        self.assertTrue(np.array_equal(z, y))
        c, s = rope.cos_sin(pos)
        np.testing.assert_allclose(c, np.cos(pos[:, None] * inv[None]), atol=1e-7)
        # strided [batch, heads, seq, dim] view of the same data
        xs = np.ascontiguousarray(x.transpose(1, 0, 2))[None]  # [1, 2, 4, d]
        rope.apply_strided(xs, pos[None])
        self.assertTrue(np.array_equal(xs[0].transpose(1, 0, 2), y))
        with self.assertRaises(IndexError):
            rope.apply(x, np.array([0, 1, 2, -1]))
        with self.assertRaises(ValueError):
            rope.apply(x[:, :, ::2], pos)
        with self.assertRaises(ValueError):
            rope.apply(x.astype(np.float64), pos)

    def test_scaling_params(self):
        r = tokemb.Rope(16, rotary_dim=8, base=500000.0, scaling="linear", factor=4.0)
        self.assertEqual(r.get_param("factor"), 4.0)
        self.assertEqual(r.get_param("scaling"), tokemb.constants["TOKEMB_ROPE_SCALING_LINEAR"])
        f, _ = r.inv_freq()
        np.testing.assert_allclose(f, 1.0 / 500000.0 ** (np.arange(0, 8, 2) / 8) / 4.0, rtol=1e-15)
        with self.assertRaises(ValueError):
            r.set_param("factor", float("nan"))
        with self.assertRaises(ValueError):
            r.set_param("colour", 1)
        with self.assertRaises(tokemb.InvalidArgument):
            tokemb.Rope(8, rotary_dim=3)


class TestRelative(unittest.TestCase):
    def test_alibi(self):
        a = tokemb.Alibi(6)
        c = 4
        want = [2.0 ** (-8 * (h + 1) / c) for h in range(c)] + [2.0 ** (-8 * (2 * j + 1) / (2 * c)) for j in range(2)]
        np.testing.assert_array_equal(a.slopes(), np.array(want, np.float32))
        b = a.attn_bias(3, 5, q_offset=2)
        self.assertEqual(b.shape, (6, 3, 5))
        s = a.slopes().astype(np.float64)
        for i in range(3):
            for j in range(5):
                if j <= 2 + i:
                    np.testing.assert_array_equal(b[:, i, j], (-s * (2 + i - j)).astype(np.float32))
                else:
                    self.assertTrue(np.all(np.isneginf(b[:, i, j])))
        sym = tokemb.Alibi(6, causal=False).attn_bias(2, 4)
        np.testing.assert_array_equal(sym[:, 0, 3], (-s * 3).astype(np.float32))

    def test_t5_buckets_and_bias(self):
        for bidir in (True, False):
            t5 = tokemb.T5(4, 32, 128, bidirectional=bidir)
            q, k = 40, 300
            got = t5.buckets(q, k, q_offset=100)
            rel = torch.arange(k)[None, :] - (100 + torch.arange(q))[:, None]
            self.assertTrue(np.array_equal(got, t5_bucket(rel, bidir).numpy().astype(np.int32)), bidir)
        t5 = tokemb.T5(4)
        t5.table.init_normal(2)
        w = t5.table.numpy()
        bias = t5.attn_bias(5, 6)
        bk = t5.buckets(5, 6)
        self.assertTrue(np.array_equal(bias, w[bk].transpose(2, 0, 1)))
        g = t5.attn_bias_backward(5, 6, np.ones((4, 5, 6), np.float32))
        counts = np.bincount(bk.ravel(), minlength=32).astype(np.float32)
        self.assertTrue(np.array_equal(g, np.repeat(counts[:, None], 4, axis=1)))

    def test_shaw(self):
        k = 3
        sh = tokemb.Shaw(k, 5)
        sh.table.init_uniform(4)
        idx = sh.buckets(4, 7, q_offset=2)
        want = np.clip(np.arange(7)[None, :] - (2 + np.arange(4))[:, None], -k, k) + k
        self.assertTrue(np.array_equal(idx, want))
        emb = sh.embed(4, 7, q_offset=2)
        self.assertTrue(np.array_equal(emb, sh.table.numpy()[want]))
        g = sh.embed_backward(4, 7, np.ones((4, 7, 5), np.float32), q_offset=2)
        self.assertTrue(np.array_equal(g[:, 0], np.bincount(want.ravel(), minlength=2 * k + 1).astype(np.float32)))
        with self.assertRaises(tokemb.InvalidArgument):
            sh.slopes() if hasattr(sh, "slopes") else tokemb.Alibi(0)


if __name__ == "__main__":
    unittest.main()
