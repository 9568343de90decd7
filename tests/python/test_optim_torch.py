"""Fused sparse optimizers against torch.optim (Debian torch 1.13, at test time): the same gradients
through torch.optim.SGD / Adagrad / SparseAdam (sparse COO gradients built from torch's own dense
backward, which tokemb's coalesced gradient equals bit for bit) must give the same weights over
several steps. Row-wise Adagrad (FBGEMM semantics, no torch.optim equivalent) is checked against a
float64 model of its formula."""
import ctypes
import unittest

import numpy as np
import torch

from tkctypes import P, lib, ok, ptr, wrap, TokembError

torch.set_num_threads(1)
SGD, ROWWISE, ADAGRAD, ADAM = 0, 1, 2, 3
LR, WD, EPS, BETA1, BETA2, LR_DECAY, INIT_ACC = 400, 401, 402, 403, 404, 405, 406


def bits(a):
    return np.ascontiguousarray(a).view(np.uint32)


def make(W, pad=None):
    h = P()
    ok(lib.tokemb_table_create(W.shape[0], W.shape[1], 0, ctypes.byref(h)))
    ctypes.memmove(lib.tokemb_table_data(h), W.ctypes.data, W.nbytes)
    if pad is not None:
        ok(lib.tokemb_table_set_param(h, 100, pad))
    return h


def weights(h, rows, dim):
    buf = (ctypes.c_float * (rows * dim)).from_address(lib.tokemb_table_data(h))
    return np.frombuffer(buf, np.float32).reshape(rows, dim).copy()


def steps_data(rng, rows, dim, n_steps, n):
    out = []
    for _ in range(n_steps):
        ids = ((rng.zipf(1.3, n) - 1) % rows).astype(np.int64)
        g = rng.standard_normal((n, dim)).astype(np.float32)
        out.append((ids, g))
    return out


def torch_sparse_grad(ids, g, rows, pad):
    dense = torch.ops.aten.embedding_dense_backward(torch.from_numpy(g), torch.from_numpy(ids), rows,
                                                    -1 if pad is None else pad, False)
    uniq = np.unique(ids)
    if pad is not None:
        uniq = uniq[uniq != pad]
    u = torch.from_numpy(uniq)
    return torch.sparse_coo_tensor(u[None, :], dense[u], dense.shape).coalesce()


class OptimTorch(unittest.TestCase):
    def run_torch_vs_tokemb(self, kind, make_opt, params, pad=None, rows=60, dim=12, n_steps=6):
        rng = np.random.default_rng(20 + kind)
        W = rng.standard_normal((rows, dim)).astype(np.float32)
        data = steps_data(rng, rows, dim, n_steps, 80)
        w = torch.nn.Parameter(torch.tensor(W))
        opt = make_opt([w])
        h = make(W, pad)
        try:
            ok(lib.tokemb_optim_select(h, kind))
            for p, v in params.items():
                ok(lib.tokemb_optim_set_param_f64(h, p, v))
            touched = set()
            for ids, g in data:
                w.grad = torch_sparse_grad(ids, g, rows, pad)
                opt.step()
                ok(lib.tokemb_optim_step(h, ptr(ids), len(ids), ptr(g)))
                touched |= set(ids.tolist()) - {pad}
            self.assertEqual(lib.tokemb_optim_step_count(h), n_steps)
            got = weights(h, rows, dim)
            ref = w.detach().numpy()
            untouched = sorted(set(range(rows)) - touched)
            np.testing.assert_array_equal(bits(got[untouched]), bits(W[untouched]))
            return got, ref
        finally:
            lib.tokemb_table_free(h)

    def test_sgd(self):
        got, ref = self.run_torch_vs_tokemb(SGD, lambda p: torch.optim.SGD(p, lr=0.05), {LR: 0.05}, pad=3)
        # bit-exact: one fused w + (-lr)*g per element, as torch's sparse add_ (axpy) on this build
        np.testing.assert_array_equal(bits(got), bits(ref))

    def test_adagrad(self):
        got, ref = self.run_torch_vs_tokemb(
            ADAGRAD, lambda p: torch.optim.Adagrad(p, lr=0.1, lr_decay=0.01, initial_accumulator_value=0.05),
            {LR: 0.1, LR_DECAY: 0.01, INIT_ACC: 0.05})
        np.testing.assert_array_equal(bits(got), bits(ref))

    def test_sparse_adam(self):
        got, ref = self.run_torch_vs_tokemb(
            ADAM, lambda p: torch.optim.SparseAdam(p, lr=0.01, betas=(0.8, 0.99), eps=1e-6),
            {LR: 0.01, BETA1: 0.8, BETA2: 0.99, EPS: 1e-6}, n_steps=8)
        np.testing.assert_array_equal(bits(got), bits(ref))

    def test_rowwise_adagrad_and_sgd_weight_decay_vs_float64_model(self):
        rng = np.random.default_rng(30)
        rows, dim = 40, 9
        W = rng.standard_normal((rows, dim)).astype(np.float32)
        data = steps_data(rng, rows, dim, 5, 50)
        for kind, params in [(ROWWISE, {LR: 0.2, EPS: 1e-8, WD: 0.01, INIT_ACC: 0.1}), (SGD, {LR: 0.05, WD: 0.1})]:
            h = make(W)
            try:
                ok(lib.tokemb_optim_select(h, kind))
                for p, v in params.items():
                    ok(lib.tokemb_optim_set_param_f64(h, p, v))
                w = W.astype(np.float64)
                acc = np.full(rows, params.get(INIT_ACC, 0.0))
                for ids, g in data:
                    ok(lib.tokemb_optim_step(h, ptr(ids), len(ids), ptr(g)))
                    G = np.zeros((rows, dim))
                    np.add.at(G, ids, g.astype(np.float64))
                    for r in np.unique(ids):
                        gr = G[r] + params[WD] * w[r]
                        if kind == ROWWISE:
                            acc[r] += np.mean(gr * gr)
                            w[r] -= params[LR] * gr / (np.sqrt(acc[r]) + params[EPS])
                        else:
                            w[r] -= params[LR] * gr
                got = weights(h, rows, dim)
                # float32 rounding of a few operations per step, 5 steps: relative 1e-5 is ~80 ulp of slack
                np.testing.assert_allclose(got, w, rtol=1e-5, atol=1e-6)
            finally:
                lib.tokemb_table_free(h)

    def test_coalesced_step_equals_ids_step(self):
        rng = np.random.default_rng(31)
        rows, dim = 30, 4
        W = rng.standard_normal((rows, dim)).astype(np.float32)
        ids = rng.integers(0, rows, 64).astype(np.int64)
        g = rng.standard_normal((64, dim)).astype(np.float32)
        a, b = make(W), make(W)
        try:
            for h in (a, b):
                ok(lib.tokemb_optim_select(h, ADAM))
            ok(lib.tokemb_optim_step(a, ptr(ids), 64, ptr(g)))
            u_ids = np.zeros(64, np.int64)
            u_rows = np.zeros((64, dim), np.float32)
            nu = ctypes.c_size_t(0)
            ok(lib.tokemb_grad_coalesce(b, ptr(ids), 64, ptr(g), ptr(u_ids), ptr(u_rows), ctypes.byref(nu)))
            ok(lib.tokemb_optim_step_coalesced(b, ptr(u_ids), nu.value, ptr(u_rows)))
            np.testing.assert_array_equal(bits(weights(a, rows, dim)), bits(weights(b, rows, dim)))
            bad = np.array([1, 1], np.int64)
            with self.assertRaises(TokembError) as cm:
                ok(lib.tokemb_optim_step_coalesced(b, ptr(bad), 2, ptr(u_rows)))
            self.assertIn("unique_ids[1]", str(cm.exception))
        finally:
            lib.tokemb_table_free(a)
            lib.tokemb_table_free(b)

    def test_frozen_and_readonly_refuse(self):
        W = np.arange(12, dtype=np.float32).reshape(4, 3)
        ids = np.array([0, 2], np.int64)
        g = np.ones((2, 3), np.float32)
        h = make(W)
        try:
            ok(lib.tokemb_optim_select(h, ADAGRAD))
            ok(lib.tokemb_table_set_param(h, 104, 1))
            with self.assertRaises(TokembError) as cm:
                ok(lib.tokemb_optim_step(h, ptr(ids), 2, ptr(g)))
            self.assertEqual(cm.exception.status, -8)
            np.testing.assert_array_equal(weights(h, 4, 3), W)
            self.assertEqual(lib.tokemb_optim_step_count(h), 0)
        finally:
            lib.tokemb_table_free(h)
        arr = W.copy()
        r = wrap(arr, readonly=True)
        try:
            ok(lib.tokemb_optim_select(r, SGD))
            with self.assertRaises(TokembError) as cm:
                ok(lib.tokemb_optim_step(r, ptr(ids), 2, ptr(g)))
            self.assertEqual(cm.exception.status, -8)
            np.testing.assert_array_equal(arr, W)
        finally:
            lib.tokemb_table_free(r)


if __name__ == "__main__":
    unittest.main()
