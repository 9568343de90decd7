"""Initialisation and lookup compared bit for bit with torch 1.13 computed in this process."""
import ctypes
import unittest

import numpy as np
import torch

import tkctypes as tk


def torch_seed(seed):
    torch.manual_seed(seed if seed < 2**63 else seed - 2**64)


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


class Table:
    def __init__(self, rows, dim):
        self.h = tk.P()
        tk.ok(tk.lib.tokemb_table_create(rows, dim, 0, ctypes.byref(self.h)))
        self.rows, self.dim = rows, dim

    def array(self):
        return tk.table_array(self.h, self.rows, self.dim)

    def close(self):
        tk.lib.tokemb_table_free(self.h)


SHAPES = [(1, 1), (1, 5), (3, 5), (2, 8), (6, 3), (1, 16), (17, 1), (4, 9), (10, 10), (100, 37), (250, 64),
          (1000, 77)]
SEEDS = [0, 1, 42, 123, 2**32 + 123, 2**64 - 1]


class InitTest(unittest.TestCase):
    def test_normal_matches_torch_bitwise(self):
        for seed in SEEDS:
            for rows, dim in SHAPES:
                for mean, std in [(0.0, 1.0), (0.5, 2.0), (-1.25, 0.02)]:
                    t = Table(rows, dim)
                    tk.ok(tk.lib.tokemb_table_init_normal(t.h, seed, mean, std))
                    torch_seed(seed)
                    w = torch.empty(rows, dim)
                    torch.nn.init.normal_(w, mean, std)
                    np.testing.assert_array_equal(bits(t.array()), bits(w.numpy()),
                                                  err_msg="seed %d shape %s" % (seed, (rows, dim)))
                    t.close()

    def test_embedding_module_init_with_padding(self):
        for rows, dim, pad in [(6, 3, 2), (50, 16, 0), (7, 2, -1), (3, 4, 1)]:
            torch.manual_seed(7)
            e = torch.nn.Embedding(rows, dim, padding_idx=pad)
            t = Table(rows, dim)
            tk.ok(tk.lib.tokemb_table_set_param(t.h, 100, pad))
            tk.ok(tk.lib.tokemb_table_init_normal(t.h, 7, 0.0, 1.0))
            np.testing.assert_array_equal(bits(t.array()), bits(e.weight.detach().numpy()))
            t.close()

    def test_large_table(self):
        rows, dim = 5003, 129  # 645387 values: many blocks plus the tail refill
        t = Table(rows, dim)
        tk.ok(tk.lib.tokemb_table_init_normal(t.h, 2024, 0.0, 1.0))
        torch.manual_seed(2024)
        w = torch.empty(rows, dim).normal_()
        np.testing.assert_array_equal(bits(t.array()), bits(w.numpy()))
        t.close()

    def test_uniform_matches_torch_bitwise(self):
        for seed in SEEDS:
            for rows, dim in SHAPES:
                for lo, hi in [(0.0, 1.0), (-0.3, 0.7), (-1 / 3, 1 / 3), (2.5, 2.5)]:
                    t = Table(rows, dim)
                    tk.ok(tk.lib.tokemb_table_init_uniform(t.h, seed, lo, hi))
                    torch_seed(seed)
                    w = torch.empty(rows, dim)
                    torch.nn.init.uniform_(w, lo, hi)
                    np.testing.assert_array_equal(bits(t.array()), bits(w.numpy()))
                    t.close()


class LookupTest(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(3)
        self.emb = torch.nn.Embedding(1000, 24)
        self.w = self.emb.weight.detach().numpy().copy()
        self.h = tk.wrap(self.w)

    def tearDown(self):
        tk.lib.tokemb_table_free(self.h)

    def test_lookup_int64_and_int32(self):
        rng = np.random.default_rng(0)
        ids = rng.integers(0, 1000, size=(7, 33)).astype(np.int64)
        ref = self.emb(torch.from_numpy(ids)).detach().numpy().reshape(-1, 24)
        out = np.empty((ids.size, 24), np.float32)
        tk.ok(tk.lib.tokemb_lookup(self.h, tk.ptr(ids), ids.size, tk.ptr(out)))
        np.testing.assert_array_equal(bits(out), bits(ref))
        ids32 = ids.astype(np.int32)
        out2 = np.empty_like(out)
        tk.ok(tk.lib.tokemb_lookup_i32(self.h, tk.ptr(ids32), ids32.size, tk.ptr(out2)))
        np.testing.assert_array_equal(bits(out2), bits(ref))

    def test_onehot_equals_linear(self):
        ids = np.array([2, 3, 5, 1, 999, 0, 2], np.int64)
        lin = torch.nn.Linear(1000, 24, bias=False)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(self.w.T.copy()))
        onehot = torch.nn.functional.one_hot(torch.from_numpy(ids), 1000).float()
        ref = lin(onehot).detach().numpy()
        out = np.empty((ids.size, 24), np.float32)
        tk.ok(tk.lib.tokemb_lookup_onehot(self.h, tk.ptr(ids), ids.size, tk.ptr(out)))
        np.testing.assert_array_equal(out, ref)
        np.testing.assert_array_equal(out, self.w[ids])

    def test_out_of_range_leaves_output(self):
        for bad in (1000, -1):
            ids = np.array([1, 2, bad, 4], np.int64)
            out = np.full((4, 24), 7.0, np.float32)
            st = tk.lib.tokemb_lookup(self.h, tk.ptr(ids), 4, tk.ptr(out))
            self.assertEqual(st, -2)
            self.assertIn("token id %d at index 2 is outside [0, 1000)" % bad, tk.lib.tokemb_last_error().decode())
            self.assertTrue((out == 7.0).all())
            with self.assertRaises(IndexError):  # torch raises too
                self.emb(torch.from_numpy(ids))

    def test_max_norm_matches_torch(self):
        for p in (1.0, 2.0, 3.0):
            torch.manual_seed(11)
            emb = torch.nn.Embedding(40, 17, max_norm=1.3, norm_type=p)
            w = emb.weight.detach().numpy().copy()
            h = tk.wrap(w)
            tk.ok(tk.lib.tokemb_table_set_param_f64(h, 101, 1.3))
            tk.ok(tk.lib.tokemb_table_set_param_f64(h, 102, p))
            ids = np.array([3, 5, 3, 39, 0, 5, 12], np.int64)
            ref = emb(torch.from_numpy(ids)).detach().numpy()
            out = np.empty((7, 17), np.float32)
            tk.ok(tk.lib.tokemb_lookup(h, tk.ptr(ids), 7, tk.ptr(out)))
            # torch's norm is a float reduction that is not correctly rounded: rtol 1e-6 (reference 1.5)
            np.testing.assert_allclose(out, ref, rtol=1e-6, atol=0)
            np.testing.assert_allclose(w, emb.weight.detach().numpy(), rtol=1e-6, atol=0)
            untouched = np.setdiff1d(np.arange(40), ids)
            np.testing.assert_array_equal(w[untouched], emb.weight.detach().numpy()[untouched])
            tk.lib.tokemb_table_free(h)

    def test_max_norm_validates_before_renorm(self):
        w = (np.arange(5 * 3, dtype=np.float32).reshape(5, 3) + 10)
        before = w.copy()
        h = tk.wrap(w)
        tk.ok(tk.lib.tokemb_table_set_param_f64(h, 101, 1.0))
        ids = np.array([1, -1], np.int64)  # torch would wrap -1 and renormalise row 4 before failing
        out = np.zeros((2, 3), np.float32)
        self.assertEqual(tk.lib.tokemb_lookup(h, tk.ptr(ids), 2, tk.ptr(out)), -2)
        np.testing.assert_array_equal(w, before)
        tk.lib.tokemb_table_free(h)

    def test_thread_count_independent(self):
        torch.manual_seed(5)
        w = torch.randn(5000, 300).numpy()
        h = tk.wrap(w)
        ids = np.random.default_rng(1).integers(0, 5000, 20000).astype(np.int64)
        outs = []
        for n in (1, 2, 3, 4):
            tk.ok(tk.lib.tokemb_set_num_threads(n))
            out = np.empty((ids.size, 300), np.float32)
            tk.ok(tk.lib.tokemb_lookup(h, tk.ptr(ids), ids.size, tk.ptr(out)))
            outs.append(out)
        tk.ok(tk.lib.tokemb_set_num_threads(0))
        for o in outs[1:]:
            np.testing.assert_array_equal(bits(o), bits(outs[0]))
        np.testing.assert_array_equal(outs[0], w[ids])
        tk.lib.tokemb_table_free(h)


if __name__ == "__main__":
    unittest.main()
