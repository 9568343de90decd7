"""tokemb_grad_accumulate / _coalesce / _onehot against torch's embedding_dense_backward (computed at
test time with Debian's torch 1.13). The dense and coalesced paths must match torch bit for bit."""
import ctypes
import unittest

import numpy as np
import torch

from tkctypes import P, lib, ok, ptr, sz, TokembError

torch.set_num_threads(1)


def make_table(rows, dim, padding_idx=None, sgbf=False):
    h = P()
    ok(lib.tokemb_table_create(rows, dim, 0, ctypes.byref(h)))
    if padding_idx is not None:
        ok(lib.tokemb_table_set_param(h, 100, padding_idx))
    if sgbf:
        ok(lib.tokemb_table_set_param(h, 103, 1))
    return h


def zipf_ids(rng, rows, n, a=1.2):
    return (rng.zipf(a, n) - 1) % rows


def torch_dense(ids, grad, rows, padding_idx, sgbf):
    return torch.ops.aten.embedding_dense_backward(torch.from_numpy(grad), torch.from_numpy(ids), rows,
                                                   -1 if padding_idx is None else padding_idx, sgbf).numpy()


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


class GradTorch(unittest.TestCase):
    def tearDown(self):
        lib.tokemb_set_num_threads(0)

    def dense(self, h, ids, grad, rows, dim, init=None, i32=False):
        out = np.zeros((rows, dim), np.float32) if init is None else init.copy()
        if i32:
            ids32 = ids.astype(np.int32)
            ok(lib.tokemb_grad_accumulate_i32(h, ptr(ids32), len(ids), ptr(grad), ptr(out)))
        else:
            ok(lib.tokemb_grad_accumulate(h, ptr(ids), len(ids), ptr(grad), ptr(out)))
        return out

    def test_dense_bit_exact_vs_torch(self):
        rng = np.random.default_rng(1)
        cases = [(50, 1, 40), (50, 3, 200), (1000, 16, 3000), (5000, 64, 2000), (300, 300, 700), (2000, 1031, 257)]
        for rows, dim, n in cases:
            for pad in (None, 0, 7):
                for sgbf in (False, True):
                    ids = zipf_ids(rng, rows, n).astype(np.int64)
                    if pad is not None:
                        ids[rng.integers(0, n, n // 10)] = pad
                    grad = (rng.standard_normal((n, dim)) * rng.choice([1e-3, 1, 1e3], (n, 1))).astype(np.float32)
                    ref = torch_dense(ids, grad, rows, pad, sgbf)
                    h = make_table(rows, dim, pad, sgbf)
                    try:
                        for threads in (1, 2, 3, 7):
                            lib.tokemb_set_num_threads(threads)
                            got = self.dense(h, ids, grad, rows, dim)
                            np.testing.assert_array_equal(bits(got), bits(ref),
                                                          err_msg="rows %d dim %d pad %s sgbf %s threads %d" %
                                                          (rows, dim, pad, sgbf, threads))
                        got32 = self.dense(h, ids, grad, rows, dim, i32=True)
                        np.testing.assert_array_equal(bits(got32), bits(ref))
                    finally:
                        lib.tokemb_table_free(h)

    def test_accumulates_in_input_order_from_buffer(self):
        # float64-free golden: a sequential float32 loop in input order, starting from the buffer's value
        rng = np.random.default_rng(2)
        rows, dim, n = 40, 5, 500
        ids = rng.integers(0, rows, n).astype(np.int64)
        grad = rng.standard_normal((n, dim)).astype(np.float32) * np.float32(1e4)
        init = rng.standard_normal((rows, dim)).astype(np.float32)
        ref = init.copy()
        for i in range(n):
            ref[ids[i]] = ref[ids[i]] + grad[i]
        h = make_table(rows, dim)
        try:
            got = self.dense(h, ids, grad, rows, dim, init=init)
            np.testing.assert_array_equal(bits(got), bits(ref))
        finally:
            lib.tokemb_table_free(h)

    def test_coalesce_equals_dense(self):
        rng = np.random.default_rng(3)
        for rows, dim, n, pad, sgbf in [(100, 8, 1000, None, False), (100, 8, 1000, 3, True), (70000, 33, 5000, 1, False)]:
            ids = zipf_ids(rng, rows, n).astype(np.int64)
            grad = rng.standard_normal((n, dim)).astype(np.float32)
            ref = torch_dense(ids, grad, rows, pad, sgbf)
            h = make_table(rows, dim, pad, sgbf)
            try:
                out_ids = np.full(n, -5, np.int64)
                out_rows = np.zeros((n, dim), np.float32)
                u = sz(0)
                for threads in (1, 4):
                    lib.tokemb_set_num_threads(threads)
                    ok(lib.tokemb_grad_coalesce(h, ptr(ids), n, ptr(grad), ptr(out_ids), ptr(out_rows), ctypes.byref(u)))
                    uniq = np.unique(ids)
                    if pad is not None:
                        uniq = uniq[uniq != pad]
                    self.assertEqual(u.value, len(uniq))
                    np.testing.assert_array_equal(out_ids[:u.value], uniq)
                    np.testing.assert_array_equal(bits(out_rows[:u.value]), bits(ref[uniq]))
            finally:
                lib.tokemb_table_free(h)

    def test_onehot_backward(self):
        rng = np.random.default_rng(4)
        rows, dim = 300, 24
        h = make_table(rows, dim, 5)
        try:
            # distinct ids: the sgemm sum is 1*g plus exact zeros -> bit-equal to the dense path
            ids = rng.permutation(rows)[:100].astype(np.int64)
            grad = rng.standard_normal((100, dim)).astype(np.float32)
            init = rng.standard_normal((rows, dim)).astype(np.float32)
            a = init.copy()
            ok(lib.tokemb_lookup_onehot_backward(h, ptr(ids), 100, ptr(grad), ptr(a)))
            b = self.dense(h, ids, grad, rows, dim, init=init)
            np.testing.assert_array_equal(bits(a), bits(b))
            # repeated ids: BLAS order, compare to float64 within float32 rounding of the sums
            ids = zipf_ids(rng, rows, 5000).astype(np.int64)
            grad = rng.standard_normal((5000, dim)).astype(np.float32)
            a = np.zeros((rows, dim), np.float32)
            ok(lib.tokemb_lookup_onehot_backward(h, ptr(ids), 5000, ptr(grad), ptr(a)))
            ref = torch_dense(ids.astype(np.int64), grad.astype(np.float64).astype(np.float32), rows, 5, False)
            exact = np.zeros((rows, dim), np.float64)
            np.add.at(exact, ids[ids != 5], grad[ids != 5].astype(np.float64))
            absg = np.zeros((rows, dim), np.float64)
            np.add.at(absg, ids, np.abs(grad).astype(np.float64))
            # each path's error is bounded by n_k * eps * sum|g|; use 5000 * 2^-24 as the loose bound
            np.testing.assert_array_less(np.abs(a - exact), absg * 5000 * 2.0**-24 + 1e-30)
            np.testing.assert_array_less(np.abs(ref - exact), absg * 5000 * 2.0**-24 + 1e-30)
            self.assertTrue(np.all(a[5] == 0))
        finally:
            lib.tokemb_table_free(h)

    def test_errors_leave_buffer_unchanged(self):
        h = make_table(10, 4)
        try:
            ids = np.array([1, 2, 10, 3], np.int64)
            grad = np.ones((4, 4), np.float32)
            buf = np.full((10, 4), 7, np.float32)
            with self.assertRaises(TokembError) as cm:
                ok(lib.tokemb_grad_accumulate(h, ptr(ids), 4, ptr(grad), ptr(buf)))
            self.assertEqual(cm.exception.status, -2)
            self.assertIn("10 at index 2", str(cm.exception))
            self.assertTrue(np.all(buf == 7))
        finally:
            lib.tokemb_table_free(h)


if __name__ == "__main__":
    unittest.main()
