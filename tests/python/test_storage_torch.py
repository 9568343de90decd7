"""Compact storage against torch 1.13 at test time: F16 and BF16 rounding bit for bit (.half(),
.bfloat16()), Q8_ROW rows byte for byte against torch.ops.quantized.embedding_bag_byte_prepack (FBGEMM's
fused 8-bit row-wise layout), dequantised lookups against embedding_bag_byte_unpack, and pooled Q8_ROW
bags (SUM, with and without per-sample weights) bit for bit against embedding_bag_byte_rowwise_offsets."""
import ctypes
import unittest

import numpy as np
import torch

from tkctypes import P, lib, ok, ptr

F16, BF16, Q8 = 1, 2, 3


def encode(x, dtype):
    """x [rows, dim] float32 -> the storage bytes tokemb writes (through a wrapped buffer)."""
    rows, dim = x.shape
    if dtype == Q8:
        buf = np.zeros((rows, dim + 8), np.uint8)
        stride = dim + 8
    else:
        buf = np.zeros((rows, dim), np.uint16)
        stride = dim
    t = P()
    ok(lib.tokemb_table_wrap(ptr(buf), rows, dim, stride, dtype, 0, ctypes.byref(t)))
    ok(lib.tokemb_table_write_rows(t, 0, rows, ptr(np.ascontiguousarray(x))))
    ids = np.arange(rows, dtype=np.int64)
    out = np.empty((rows, dim), np.float32)
    ok(lib.tokemb_lookup(t, ptr(ids), rows, ptr(out)))
    lib.tokemb_table_free(t)
    return buf, out


class TestStorageTorch(unittest.TestCase):
    def setUp(self):
        rng = np.random.default_rng(21)
        x = rng.standard_normal((64, 67)).astype(np.float32)
        x[0] *= 1e5  # overflow to inf in f16
        x[1] *= 1e-6  # f16 subnormals
        # exact ties between neighbours of both formats
        x[2, :40] = (np.arange(40, dtype=np.float32) + 1024.5)
        x[3, :40] = (np.arange(1, 41).astype(np.uint32) << 16 | 0x8000).view(np.float32)
        self.x = x

    def test_f16_bf16_bitwise(self):
        for dtype, tdt in ((F16, torch.float16), (BF16, torch.bfloat16)):
            buf, out = encode(self.x, dtype)
            ref = torch.from_numpy(self.x).to(tdt)
            ref_bits = ref.view(torch.int16).numpy().view(np.uint16)
            self.assertTrue(np.array_equal(buf, ref_bits), dtype)
            self.assertTrue(np.array_equal(out.view(np.uint32), ref.float().numpy().view(np.uint32)), dtype)

    def test_q8_row_matches_fbgemm_prepack(self):
        x = self.x[4:]
        buf, out = encode(x, Q8)
        packed = torch.ops.quantized.embedding_bag_byte_prepack(torch.from_numpy(x)).numpy()
        self.assertEqual(packed.shape, buf.shape)
        self.assertTrue(np.array_equal(buf, packed))
        unpacked = torch.ops.quantized.embedding_bag_byte_unpack(torch.from_numpy(packed)).numpy()
        np.testing.assert_allclose(out, unpacked, rtol=0, atol=1e-6 * np.abs(x).max())
        scale = packed[:, -8:-4].copy().view(np.float32)
        # quantisation error bound: half a step plus float rounding
        err = np.abs(out - x)
        self.assertTrue(np.all(err <= 0.5 * scale + 1e-6 * np.abs(x).max(axis=1, keepdims=True)))


    def test_q8_bags_match_embedding_bag_byte(self):
        """Pooled Q8_ROW sums accumulate as torch's quantized embedding bag (fma(w*scale, q, acc + w*bias)),
        not as a sum of dequantised rows; the results are equal bit for bit (test_kernels.c checks that the
        portable, AVX2 and AVX-512 paths give the same bits)."""
        rng = np.random.default_rng(5)
        for rows, dim, n, seed in ((300, 67, 2000, 1), (1000, 256, 6000, 2), (64, 1030, 700, 3), (40, 5, 90, 4)):
            x = (rng.standard_normal((rows, dim)) * rng.uniform(0.01, 10.0, (rows, 1))).astype(np.float32)
            buf, _ = encode(x, Q8)
            ids = rng.integers(0, rows, n).astype(np.int64)
            cuts = np.sort(rng.integers(0, n + 1, n // 20))
            offsets = np.concatenate(([0], cuts, [n])).astype(np.int64)  # some bags empty
            nb = len(offsets) - 1
            psw = rng.uniform(-2.0, 2.0, n).astype(np.float32)
            t = P()
            ok(lib.tokemb_table_wrap(ptr(buf), rows, dim, dim + 8, Q8, 1, ctypes.byref(t)))
            for w in (None, psw):
                ref = torch.ops.quantized.embedding_bag_byte_rowwise_offsets(
                    torch.from_numpy(buf), torch.from_numpy(ids), torch.from_numpy(offsets), False, 0, False,
                    None if w is None else torch.from_numpy(w), None, True).numpy()
                out = np.full((nb, dim), np.nan, np.float32)
                ok(lib.tokemb_lookup_bags(t, ptr(ids), n, ptr(offsets), nb, 0, None if w is None else ptr(w),
                                          ptr(out)))
                self.assertEqual(ref.shape, out.shape)
                bad = np.flatnonzero(out.view(np.uint32) != ref.view(np.uint32))
                self.assertEqual(bad.size, 0, "rows %d dim %d weights %s: %d differ, first at %s: %r vs %r" % (
                    rows, dim, w is not None, bad.size, bad[:1], out.ravel()[bad[:1]], ref.ravel()[bad[:1]]))
            lib.tokemb_table_free(t)

    def test_portable_and_simd_decoders_agree(self):
        """The dequantising gather has AVX2/F16C row decoders; TOKEMB_ISA=portable must give the same bytes."""
        import os
        import subprocess
        import sys
        code = ("import sys, numpy as np\n"
                "sys.path.insert(0, %r)\n"
                "import test_storage_torch as m\n"
                "x = np.load(sys.argv[1])\n"
                "outs = [m.encode(x, d)[1] for d in (1, 2, 3)]\n"
                "np.save(sys.argv[2], np.stack(outs))\n") % os.path.dirname(os.path.abspath(__file__))
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            np.save(os.path.join(d, "x.npy"), self.x)
            env = dict(os.environ, TOKEMB_ISA="portable")
            subprocess.run([sys.executable, "-c", code, os.path.join(d, "x.npy"), os.path.join(d, "o.npy")],
                           check=True, env=env)
            portable = np.load(os.path.join(d, "o.npy"))
        here = np.stack([encode(self.x, dt)[1] for dt in (F16, BF16, Q8)])
        self.assertTrue(np.array_equal(portable.view(np.uint32), here.view(np.uint32)))


if __name__ == "__main__":
    unittest.main()
