"""tokemb_lookup_bags / tokemb_lookup_bags_backward against torch.nn.functional.embedding_bag (Debian
torch 1.13, computed at test time). Forward: bit-exact in every mode (SUM fused weights on torch's fast
path, multiply-then-add when padding is set, MEAN true division, MAX first-of-ties). Backward: bit-exact
where torch's sort order cannot matter (no repeated ids), float32-rounding tolerance otherwise; the
scale_grad_by_freq case is compared with nn.Embedding's semantics (torch's bag backward is wrong there,
pytorch issue #190063)."""
import ctypes
import unittest

import numpy as np
import torch
import torch.nn.functional as F

from tkctypes import P, lib, ok, ptr, TokembError

torch.set_num_threads(1)
MODES = {0: "sum", 1: "mean", 2: "max"}


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


class Table:
    def __init__(self, W, pad=None, sgbf=False):
        self.W = np.ascontiguousarray(W, np.float32)
        self.h = P()
        ok(lib.tokemb_table_create(W.shape[0], W.shape[1], 0, ctypes.byref(self.h)))
        addr = lib.tokemb_table_data(self.h)
        ctypes.memmove(addr, self.W.ctypes.data, self.W.nbytes)
        if pad is not None:
            ok(lib.tokemb_table_set_param(self.h, 100, pad))
        if sgbf:
            ok(lib.tokemb_table_set_param(self.h, 103, 1))

    def __del__(self):
        lib.tokemb_table_free(self.h)

    def bags(self, ids, offsets, mode, psw=None):
        out = np.full((len(offsets) - 1, self.W.shape[1]), np.nan, np.float32)
        ok(lib.tokemb_lookup_bags(self.h, ptr(ids), len(ids), ptr(offsets), len(offsets) - 1, mode,
                                  None if psw is None else ptr(psw), ptr(out)))
        return out

    def bags_backward(self, ids, offsets, mode, grad_out, psw=None, want_psw=False):
        gt = np.zeros_like(self.W)
        gp = np.full(len(ids), np.nan, np.float32) if want_psw else None
        ok(lib.tokemb_lookup_bags_backward(self.h, ptr(ids), len(ids), ptr(offsets), len(offsets) - 1, mode,
                                           None if psw is None else ptr(psw), ptr(grad_out), ptr(gt),
                                           None if gp is None else ptr(gp)))
        return gt, gp


def random_bags(rng, rows, n_bags, max_len, pad=None, repeat=True):
    lens = rng.integers(0, max_len + 1, n_bags)
    lens[rng.integers(0, n_bags)] = 0  # at least one empty bag
    while not repeat and lens.sum() > rows:
        lens[int(np.argmax(lens))] -= 1
    n = int(lens.sum())
    if repeat:
        ids = rng.integers(0, rows, n)
    else:
        ids = rng.permutation(rows)[:n]
    if pad is not None and n:
        ids[rng.integers(0, n, max(1, n // 8))] = pad
    offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int64)
    return ids.astype(np.int64), offsets


def torch_bag(W, ids, offsets, mode, psw=None, pad=None, sgbf=False, grad_out=None):
    w = torch.tensor(W, requires_grad=True)
    p = None if psw is None else torch.tensor(psw, requires_grad=True)
    out = F.embedding_bag(torch.from_numpy(ids), w, torch.from_numpy(offsets[:-1]), mode=MODES[mode],
                          per_sample_weights=p, padding_idx=pad, scale_grad_by_freq=sgbf)
    if grad_out is None:
        return out.detach().numpy(), None, None
    out.backward(torch.from_numpy(grad_out))
    return out.detach().numpy(), w.grad.numpy(), None if p is None else p.grad.numpy()


class BagsTorch(unittest.TestCase):
    def tearDown(self):
        lib.tokemb_set_num_threads(0)

    def test_forward_bit_exact(self):
        rng = np.random.default_rng(10)
        for rows, dim in [(30, 1), (50, 7), (200, 64), (1000, 129)]:
            W = rng.standard_normal((rows, dim)).astype(np.float32)
            W[3, :] = W[4, :]  # ties for MAX
            for pad in (None, 2):
                t = Table(W, pad)
                for mode in (0, 1, 2):
                    ids, offsets = random_bags(rng, rows, 40, 12, pad)
                    ids[:4] = [3, 4, 4, 3]
                    psw_opts = [None, rng.standard_normal(len(ids)).astype(np.float32)] if mode == 0 else [None]
                    for psw in psw_opts:
                        ref, _, _ = torch_bag(W, ids, offsets, mode, psw, pad)
                        for threads in (1, 3):
                            lib.tokemb_set_num_threads(threads)
                            got = t.bags(ids, offsets, mode, psw)
                            np.testing.assert_array_equal(bits(got), bits(ref), err_msg="rows %d dim %d pad %s mode %d psw %s"
                                                          % (rows, dim, pad, mode, psw is not None))

    def test_backward_vs_torch(self):
        rng = np.random.default_rng(11)
        for rows, dim in [(40, 5), (300, 70)]:
            W = rng.standard_normal((rows, dim)).astype(np.float32)
            for pad in (None, 1):
                t = Table(W, pad)
                for mode in (0, 1, 2):
                    for repeat in (False, True):
                        ids, offsets = random_bags(rng, rows, 12, 6, pad, repeat)
                        psws = [None, rng.standard_normal(len(ids)).astype(np.float32)] if mode == 0 else [None]
                        for psw in psws:
                            g = rng.standard_normal((len(offsets) - 1, dim)).astype(np.float32)
                            _, ref, ref_p = torch_bag(W, ids, offsets, mode, psw, pad, grad_out=g)
                            got, got_p = t.bags_backward(ids, offsets, mode, g, psw, want_psw=(mode == 0))
                            msg = "rows %d pad %s mode %d repeat %s psw %s" % (rows, pad, mode, repeat, psw is not None)
                            if not repeat:
                                np.testing.assert_array_equal(bits(got), bits(ref), err_msg=msg)
                            else:  # torch sums duplicates in its (unstable) sort order: rounding differences only
                                np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6, err_msg=msg)
                            if ref_p is not None:
                                # torch: BLAS sdot in float; tokemb: double accumulation rounded once
                                np.testing.assert_allclose(got_p, ref_p, rtol=1e-5, atol=1e-5, err_msg=msg)
                            if mode == 0:
                                ex = np.array([0.0 if ids[j] == pad else
                                               float(np.dot(g[np.searchsorted(offsets, j, 'right') - 1].astype(np.float64),
                                                            W[ids[j]].astype(np.float64))) for j in range(len(ids))], np.float32)
                                np.testing.assert_array_equal(got_p, ex, err_msg=msg)

    def test_max_backward_routes_to_first_argmax(self):
        W = np.array([[1, 5, 0], [2, 5, -1], [2, 0, -1]], np.float32)
        t = Table(W)
        ids = np.array([0, 1, 2], np.int64)
        offsets = np.array([0, 3], np.int64)
        g = np.array([[10, 20, 30]], np.float32)
        got, _ = t.bags_backward(ids, offsets, 2, g)
        # col 0: max 2 first at row 1; col 1: 5 first at row 0; col 2: 0 at row 0
        np.testing.assert_array_equal(got, [[0, 20, 30], [10, 0, 0], [0, 0, 0]])
        _, ref, _ = torch_bag(W, ids, offsets, 2, grad_out=g)
        np.testing.assert_array_equal(got, ref)

    def test_scale_grad_by_freq_uses_true_counts(self):
        # torch issue #190063: ids [1,1,3] in one SUM bag, loss = out.sum() -> torch's bag backward gives
        # row 3 a gradient of 0.5; nn.Embedding semantics (and tokemb) give 1 (count of id 3 is 1).
        rng = np.random.default_rng(12)
        W = rng.standard_normal((5, 2)).astype(np.float32)
        t = Table(W, sgbf=True)
        ids = np.array([1, 1, 3], np.int64)
        offsets = np.array([0, 3], np.int64)
        g = np.ones((1, 2), np.float32)
        got, _ = t.bags_backward(ids, offsets, 0, g)
        emb_w = torch.tensor(W, requires_grad=True)
        F.embedding(torch.from_numpy(ids), emb_w, scale_grad_by_freq=True).sum().backward()
        np.testing.assert_array_equal(got, emb_w.grad.numpy())
        np.testing.assert_array_equal(got[:, 0], [0, 1, 0, 1, 0])
        _, bag_ref, _ = torch_bag(W, ids, offsets, 0, sgbf=True, grad_out=g)
        self.assertEqual(bag_ref[3, 0], 0.5)  # documents the torch bug this library does not copy
        # mean mode with repeats: nn.Embedding of the per-token gradient g[bag]/bag_size
        ids, offsets = random_bags(rng, 5, 6, 5, None, True)
        g = rng.standard_normal((6, 2)).astype(np.float32)
        got, _ = t.bags_backward(ids, offsets, 1, g)
        sizes = np.diff(offsets)
        bag_of = np.repeat(np.arange(6), sizes)
        per_tok = torch.tensor((g[bag_of] / np.maximum(sizes[bag_of], 1)[:, None]).astype(np.float32))
        emb_w = torch.tensor(W, requires_grad=True)
        F.embedding(torch.from_numpy(ids), emb_w, scale_grad_by_freq=True).backward(per_tok)
        np.testing.assert_allclose(got, emb_w.grad.numpy(), rtol=1e-6, atol=1e-7)

    def test_offsets_validation(self):
        W = np.ones((5, 3), np.float32)
        t = Table(W)
        ids = np.array([0, 1, 2, 3], np.int64)
        out = np.full((3, 3), 9, np.float32)
        cases = [([1, 2, 3, 4], "offsets[0] = 1"), ([0, 3, 2, 4], "offsets[2] = 2"), ([0, 1, 2, 3], "offsets[3] = 3"),
                 ([0, 1, 2, 5], "offsets[3] = 5")]
        for offs, needle in cases:
            o = np.array(offs, np.int64)
            with self.assertRaises(TokembError) as cm:
                ok(lib.tokemb_lookup_bags(t.h, ptr(ids), 4, ptr(o), 3, 0, None, ptr(out)))
            self.assertEqual(cm.exception.status, -1)
            self.assertIn(needle, str(cm.exception))
            self.assertTrue(np.all(out == 9))
        o = np.array([0, 1, 2, 4], np.int64)
        psw = np.ones(4, np.float32)
        with self.assertRaises(TokembError):
            ok(lib.tokemb_lookup_bags(t.h, ptr(ids), 4, ptr(o), 3, 1, ptr(psw), ptr(out)))
        self.assertTrue(np.all(out == 9))


if __name__ == "__main__":
    unittest.main()
