"""Absolute and relative encoders against references computed here: the seed article's numpy
sinusoidal recipe, HF Marian's concatenated table and fairseq's get_embedding (both float64, rounded
once), torch's nn.Embedding for the fused input embedding and its autograd backward, transformers'
T5 _relative_position_bucket ported to torch float32, and the official ALiBi get_slopes."""
import ctypes
import math
import unittest

import numpy as np
import torch

import pe_sigs as ps
from pe_sigs import PE, i64arr
from tkctypes import lib, ok, ptr, P, TokembError, table_array


def encode(pe, pos, d):
    pos = i64arr(pos)
    out = np.empty((len(pos), d), np.float32)
    ok(lib.tokemb_posenc_encode(pe.h, ptr(pos), len(pos), ptr(out)))
    return out


def ulps(a, b):
    a = np.asarray(a, np.float32).view(np.int32).astype(np.int64)
    b = np.asarray(b, np.float32).view(np.int32).astype(np.int64)
    a = np.where(a < 0, -(a & 0x7FFFFFFF), a)
    b = np.where(b < 0, -(b & 0x7FFFFFFF), b)
    return np.abs(a - b)


def seed_positional_encoding(position, d_model):
    """The seed article's numpy recipe (TF tutorial): float64 angles via numpy promotion."""
    def get_angles(pos, i, d_model):
        angle_rates = 1 / np.power(10000, (2 * (i // 2)) / np.float32(d_model))
        return pos * angle_rates
    angle_rads = get_angles(np.arange(position)[:, np.newaxis], np.arange(d_model)[np.newaxis, :], d_model)
    angle_rads[:, 0::2] = np.sin(angle_rads[:, 0::2])
    angle_rads[:, 1::2] = np.cos(angle_rads[:, 1::2])
    return angle_rads[np.newaxis, ...]


def marian_table(n_pos, dim):
    """HF MarianSinusoidalPositionalEmbedding._init_weight (float64, then float32)."""
    position_enc = np.array([[pos / np.power(10000, 2 * (j // 2) / dim) for j in range(dim)] for pos in range(n_pos)])
    out = np.zeros((n_pos, dim))
    sentinel = dim // 2 if dim % 2 == 0 else (dim // 2) + 1
    out[:, 0:sentinel] = np.sin(position_enc[:, 0::2])
    out[:, sentinel:] = np.cos(position_enc[:, 1::2])
    return out


def fairseq_table64(n_pos, dim):
    """fairseq SinusoidalPositionalEmbedding.get_embedding evaluated in float64 (no padding row)."""
    half = dim // 2
    emb = math.log(10000) / (half - 1)
    emb = np.exp(np.arange(half, dtype=np.float64) * -emb)
    emb = np.arange(n_pos, dtype=np.float64)[:, None] * emb[None, :]
    emb = np.concatenate([np.sin(emb), np.cos(emb)], axis=1)
    if dim % 2 == 1:
        emb = np.concatenate([emb, np.zeros((n_pos, 1))], axis=1)
    return emb


def t5_bucket_torch(rel, bidirectional=True, num_buckets=32, max_distance=128):
    """Port of transformers' T5Attention._relative_position_bucket (torch, float32 log path)."""
    ret = 0
    if bidirectional:
        num_buckets //= 2
        ret += (rel > 0).to(torch.long) * num_buckets
        n = torch.abs(rel)
    else:
        n = -torch.min(rel, torch.zeros_like(rel))
    max_exact = num_buckets // 2
    is_small = n < max_exact
    large = max_exact + (
        torch.log(n.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    large = torch.min(large, torch.full_like(large, num_buckets - 1))
    return ret + torch.where(is_small, n, large)


def get_slopes(n):
    """Official ALiBi get_slopes (ofirpress/attention_with_linear_biases)."""
    def pow2(n):
        start = 2 ** (-2 ** -(math.log2(n) - 3))
        return [start * start ** i for i in range(n)]
    if math.log2(n).is_integer():
        return pow2(n)
    c = 2 ** math.floor(math.log2(n))
    return pow2(c) + get_slopes(2 * c)[0::2][: n - c]


class Sinusoidal(unittest.TestCase):
    def test_seed_recipe(self):
        for d in (512, 7, 1, 64):
            ref = seed_positional_encoding(50, d)[0]
            pe = PE("sinusoidal", d, 10000.0, ps.INTERLEAVED)
            got = encode(pe, np.arange(50), d)
            self.assertLessEqual(int(ulps(got, ref.astype(np.float32)).max()), 1, d)
        ref = seed_positional_encoding(10, 512)
        self.assertEqual(ref.shape, (1, 10, 512))

    def test_interleaved_far_positions(self):
        d = 128
        pos = np.array([0, 1, 4095, 65537, 10 ** 6, 2 ** 24 + 3])  # beyond, float64 itself is ill-conditioned
        i = np.arange(d)
        ang = pos[:, None].astype(np.float64) * (1 / np.power(10000.0, (2 * (i // 2)) / d))[None, :]
        ref = np.where(i % 2 == 0, np.sin(ang), np.cos(ang)).astype(np.float32)
        got = encode(PE("sinusoidal", d, 10000.0, ps.INTERLEAVED), pos, d)
        self.assertLessEqual(int(ulps(got, ref).max()), 1)
        # the PyTorch-tutorial float32 recipe drifts by ~1e-4 at a few thousand positions; tokemb does not
        p32 = torch.arange(0, 8192, dtype=torch.float32)[:, None]
        div = torch.exp(torch.arange(0, 512, 2).float() * (-math.log(10000.0) / 512))
        tut = torch.zeros(8192, 512)
        tut[:, 0::2] = torch.sin(p32 * div)
        tut[:, 1::2] = torch.cos(p32 * div)
        ours = encode(PE("sinusoidal", 512, 10000.0, ps.INTERLEAVED), np.arange(8192), 512)
        ref = seed_positional_encoding(8192, 512)[0]
        self.assertLess(np.abs(ours - ref).max(), 1e-7)
        self.assertGreater(np.abs(tut.numpy() - ref).max(), 1e-4)

    def test_marian_concat(self):
        for d in (8, 9, 512):
            ref = marian_table(300, d).astype(np.float32)
            got = encode(PE("sinusoidal", d, 10000.0, ps.CONCAT), np.arange(300), d)
            self.assertLessEqual(int(ulps(got, ref).max()), 1, d)

    def test_fairseq_t2t(self):
        for d in (8, 9, 512):
            ref = fairseq_table64(300, d).astype(np.float32)
            got = encode(PE("sinusoidal", d, 10000.0, ps.CONCAT_T2T), np.arange(300), d)
            self.assertLessEqual(int(ulps(got, ref).max()), 1, d)
            # fairseq itself (float32) agrees to float32 accuracy
            half = d // 2
            e = torch.exp(torch.arange(half, dtype=torch.float) * -(math.log(10000) / (half - 1)))
            e = torch.arange(300, dtype=torch.float).unsqueeze(1) * e.unsqueeze(0)
            fs = torch.cat([torch.sin(e), torch.cos(e)], dim=1)
            self.assertLess(np.abs(got[:, : 2 * half] - fs.numpy()).max(), 1e-4)


class Embed(unittest.TestCase):
    def setUp(self):
        self.V, self.D, self.B, self.S = 11, 16, 3, 5
        torch.manual_seed(0)
        self.W = torch.randn(self.V, self.D)
        self.Wnp = np.ascontiguousarray(self.W.numpy())
        self.tok = P()
        ok(lib.tokemb_table_create(self.V, self.D, 0, ctypes.byref(self.tok)))
        table_array(self.tok, self.V, self.D)[:] = self.Wnp
        self.ids = torch.randint(0, self.V, (self.B, self.S))

    def tearDown(self):
        lib.tokemb_table_free(self.tok)

    def run_embed(self, pe, start, scale):
        ids = i64arr(self.ids.numpy())
        out = np.empty((self.B, self.S, self.D), np.float32)
        ok(lib.tokemb_embed(self.tok, pe.h if pe else None, ptr(ids), self.B, self.S, start, scale, ptr(out)))
        return out

    def test_sinusoidal_vaswani(self):
        pe = PE("sinusoidal", self.D, 10000.0, ps.INTERLEAVED)
        scale = math.sqrt(self.D)
        pos_rows = torch.from_numpy(encode(pe, np.arange(4, 4 + self.S), self.D))
        ref = torch.nn.functional.embedding(self.ids, self.W) * np.float32(scale) + pos_rows
        got = self.run_embed(pe, 4, scale)
        self.assertTrue(np.array_equal(got, ref.numpy()))

    def test_learned_gpt2_and_backward(self):
        L = 9
        pe = PE("learned", L, self.D)
        wpe = table_array(lib.tokemb_posenc_table(pe.h), L, self.D)
        torch.manual_seed(1)
        wpe[:] = (torch.randn(L, self.D) * 0.01).numpy()
        start = 3
        emb = torch.nn.Embedding(self.V, self.D, padding_idx=2)
        with torch.no_grad():
            emb.weight.copy_(self.W)
        pos_emb = torch.nn.Embedding(L, self.D)
        with torch.no_grad():
            pos_emb.weight.copy_(torch.from_numpy(wpe))
        positions = torch.arange(start, start + self.S)
        scale = 1.5
        y = emb(self.ids) * scale + pos_emb(positions)[None]
        got = self.run_embed(pe, start, scale)
        self.assertTrue(np.array_equal(got, y.detach().numpy()))
        g = torch.randn(self.B, self.S, self.D)
        y.backward(g)
        ok(lib.tokemb_table_set_param(self.tok, 100, 2))  # padding_idx, as the torch module
        gtok = np.zeros((self.V, self.D), np.float32)
        gpe = np.zeros((L, self.D), np.float32)
        gn = np.ascontiguousarray(g.numpy())
        ids = i64arr(self.ids.numpy())
        ok(lib.tokemb_embed_backward(self.tok, pe.h, ptr(ids), self.B, self.S, start, scale, ptr(gn), ptr(gtok), ptr(gpe)))
        self.assertTrue(np.array_equal(gtok, emb.weight.grad.numpy()))
        self.assertTrue(np.allclose(gpe, pos_emb.weight.grad.numpy(), rtol=0, atol=1e-6))
        # learned positions past the table are OUT_OF_RANGE, out untouched
        out = np.full((self.B, self.S, self.D), 7.0, np.float32)
        st = lib.tokemb_embed(self.tok, pe.h, ptr(ids), self.B, self.S, L - self.S + 1, 1.0, ptr(out))
        self.assertEqual(st, -2)
        self.assertIn(b"outside [0, 9)", lib.tokemb_last_error())
        self.assertTrue(np.all(out == 7.0))


    def test_backward_scale_grad_by_freq(self):
        # the token gradient is torch's embedding backward of scale * grad_out, 1/count fused as on AVX2
        emb = torch.nn.Embedding(self.V, self.D, scale_grad_by_freq=True)
        with torch.no_grad():
            emb.weight.copy_(self.W)
        ids = torch.cat([self.ids.reshape(-1)[:-3], self.ids.reshape(-1)[:3]]).reshape(self.B, self.S)  # repeats
        scale = 2.3
        y = emb(ids) * scale
        g = torch.randn(self.B, self.S, self.D)
        y.backward(g)
        ok(lib.tokemb_table_set_param(self.tok, 103, 1))
        gtok = np.zeros((self.V, self.D), np.float32)
        gn = np.ascontiguousarray(g.numpy())
        ids_np = i64arr(ids.numpy())
        ok(lib.tokemb_embed_backward(self.tok, None, ptr(ids_np), self.B, self.S, 0, scale, ptr(gn), ptr(gtok), None))
        ok(lib.tokemb_table_set_param(self.tok, 103, 0))
        self.assertTrue(np.array_equal(gtok.view(np.uint32), emb.weight.grad.numpy().view(np.uint32)))

class T5(unittest.TestCase):
    def test_buckets_vs_torch(self):
        configs = [(32, 128), (64, 256), (16, 64), (32, 200), (10, 50), (33, 128), (128, 1000)]
        for nb, md in configs:
            for bidir in (1, 0):
                if bidir and nb < 4:
                    continue
                pe = PE("t5", 2, nb, md, bidir)
                q_off, klen = 3000, 6001
                got = np.empty((1, klen), np.int32)
                ok(lib.tokemb_posenc_buckets(pe.h, 1, klen, q_off, ptr(got)))
                rel = torch.arange(klen, dtype=torch.long) - q_off
                ref = t5_bucket_torch(rel, bool(bidir), nb, md).numpy()
                bad = np.nonzero(got[0] != ref)[0]
                self.assertEqual(len(bad), 0, "nb %d md %d bidir %d: rel %s ours %s torch %s" % (
                    nb, md, bidir, rel.numpy()[bad][:5], got[0][bad][:5], ref[bad][:5]))

    def test_knife_edges(self):
        pe = PE("t5", 1, 32, 128, 1)
        got = np.empty((1, 129), np.int32)
        ok(lib.tokemb_posenc_buckets(pe.h, 1, 129, 64, ptr(got)))  # rel = -64 .. 64
        for n, b in ((15, 9), (16, 10), (31, 11), (32, 12), (63, 13), (64, 14)):
            self.assertEqual(got[0][64 - n], b)
            self.assertEqual(got[0][64 + n], 16 + b)

    def test_bias_and_grad_vs_torch(self):
        H, nb, md, q, k, off = 4, 32, 128, 7, 40, 30
        pe = PE("t5", H, nb, md, 0)
        tab = table_array(lib.tokemb_posenc_table(pe.h), nb, H)
        torch.manual_seed(3)
        emb = torch.nn.Embedding(nb, H)
        tab[:] = emb.weight.detach().numpy()
        ctx = torch.arange(off, off + q)[:, None]
        mem = torch.arange(k)[None, :]
        bucket = t5_bucket_torch(mem - ctx, False, nb, md)
        bias = emb(bucket).permute(2, 0, 1)  # [H, q, k]
        got = np.empty((H, q, k), np.float32)
        ok(lib.tokemb_posenc_attn_bias(pe.h, q, k, off, ptr(got)))
        self.assertTrue(np.array_equal(got, bias.detach().numpy()))
        g = torch.randn(H, q, k)
        bias.backward(g)
        gt = np.zeros((nb, H), np.float32)
        gn = np.ascontiguousarray(g.numpy())
        ok(lib.tokemb_posenc_attn_bias_backward(pe.h, q, k, off, ptr(gn), ptr(gt)))
        self.assertTrue(np.allclose(gt, emb.weight.grad.numpy(), rtol=1e-6, atol=1e-5))


class ALiBi(unittest.TestCase):
    def test_slopes(self):
        for n in list(range(1, 33)) + [40, 48, 64, 80, 96, 112, 128, 200]:
            pe = PE("alibi", n)
            got = np.empty(n, np.float32)
            ok(lib.tokemb_posenc_alibi_slopes(pe.h, ptr(got)))
            ref = np.array(get_slopes(n), np.float64).astype(np.float32)
            self.assertTrue(np.array_equal(got, ref), n)

    def test_bias_forms(self):
        H, q, k, off = 6, 4, 9, 5
        pe = PE("alibi", H)
        s = np.array(get_slopes(H), np.float32).astype(np.float64)
        d = (off + np.arange(q))[:, None] - np.arange(k)[None, :]
        got = np.empty((H, q, k), np.float32)
        ok(lib.tokemb_posenc_attn_bias(pe.h, q, k, off, ptr(got)))
        ref = np.where(d[None] >= 0, -s[:, None, None] * d[None], -np.inf).astype(np.float32)
        self.assertTrue(np.array_equal(got, ref))
        # softmax with the causal bias equals the key-position (BLOOM) form plus a mask
        key_form = s[:, None, None] * np.arange(k)[None, None, :] + np.where(d[None] >= 0, 0, -np.inf)
        sm = lambda x: torch.softmax(torch.from_numpy(np.asarray(x, np.float64)), -1).numpy()
        self.assertTrue(np.allclose(sm(got), sm(key_form), atol=1e-6))
        pe.set(ps.ALIBI_CAUSAL, 0)
        ok(lib.tokemb_posenc_attn_bias(pe.h, q, k, off, ptr(got)))
        self.assertTrue(np.array_equal(got, (-s[:, None, None] * np.abs(d)[None]).astype(np.float32)))


if __name__ == "__main__":
    unittest.main()
