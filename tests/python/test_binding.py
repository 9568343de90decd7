"""The Python binding (python/tokemb): loading, errors, Table over numpy (zero-copy wraps, copies,
init, lookups, parameters), training entry points, lifetime (close, context managers, GC), and bad
input rejected before the call. References: torch 1.13 computed in this process, numpy float64."""
import gc
import os
import subprocess
import sys
import unittest
import weakref

import numpy as np
import torch

import tokemb


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def torch_normal(seed, rows, dim, mean=0.0, std=1.0):
    torch.manual_seed(seed)
    return torch.empty(rows, dim).normal_(mean, std).numpy()


class TestLoading(unittest.TestCase):
    def test_env_var_is_used(self):
        env = os.environ.get("TOKEMB_LIBRARY")
        if env:
            self.assertEqual(os.path.realpath(tokemb.library_path), os.path.realpath(env))
        self.assertEqual(tokemb.version(), "%d.%d.%d" % (tokemb.constants["TOKEMB_VERSION_MAJOR"],
                                                         tokemb.constants["TOKEMB_VERSION_MINOR"],
                                                         tokemb.constants["TOKEMB_VERSION_PATCH"]))
        self.assertEqual(tokemb.version_number(), tokemb.constants["TOKEMB_VERSION_NUMBER"])

    def test_import_error_names_where_it_looked(self):
        env = dict(os.environ, TOKEMB_LIBRARY="/nonexistent/libtokemb.so.1")
        r = subprocess.run([sys.executable, "-c", "import tokemb"], env=env, capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("ImportError", r.stderr)
        self.assertIn("TOKEMB_LIBRARY: /nonexistent/libtokemb.so.1 (not found)", r.stderr)

    def test_seed_example_runs(self):
        ex = os.path.join(os.path.dirname(tokemb.__file__), "..", "examples", "seed.py")
        r = subprocess.run([sys.executable, ex], capture_output=True, text=True, env=dict(os.environ))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("[-2.84   -0.7849 -1.4096]", r.stdout)
        self.assertIn("token id 6 at index 0 is outside [0, 6)", r.stdout)
        self.assertIn("bit for bit: True", r.stdout)

    def test_threads(self):
        tokemb.set_num_threads(3)
        self.assertEqual(tokemb.get_num_threads(), 3)
        with self.assertRaises(tokemb.InvalidArgument):
            tokemb.set_num_threads(-1)
        tokemb.set_num_threads(0)
        self.assertGreaterEqual(tokemb.get_num_threads(), 1)


class TestErrors(unittest.TestCase):
    def test_out_of_range_is_index_error_with_library_text(self):
        t = tokemb.Table(6, 3).init_normal(123)
        out = np.full((2, 3), -1, np.float32)
        with self.assertRaises(IndexError) as cm:
            t.lookup([1, 7], out=out)
        e = cm.exception
        self.assertIsInstance(e, tokemb.OutOfRange)
        self.assertIsInstance(e, tokemb.Error)
        self.assertEqual(e.status, tokemb.constants["TOKEMB_OUT_OF_RANGE"])
        self.assertIn("token id 7 at index 1 is outside [0, 6)", e.message)
        self.assertEqual(e.message, tokemb.last_error())
        self.assertIn("TOKEMB_OUT_OF_RANGE", str(e))
        self.assertTrue((out == -1).all())  # nothing written
        with self.assertRaises(IndexError):
            t.lookup([-1])

    def test_invalid_argument_is_value_error(self):
        with self.assertRaises(ValueError) as cm:
            tokemb.Table(0, 3)
        self.assertIsInstance(cm.exception, tokemb.InvalidArgument)
        self.assertEqual(cm.exception.status, -1)
        t = tokemb.Table(4, 2)
        with self.assertRaises(tokemb.InvalidArgument):
            t.init_normal(1, 0.0, -1.0)
        with self.assertRaises(IndexError):
            t.padding_idx = 4
        self.assertIsNone(t.padding_idx)
        with self.assertRaises(OverflowError):
            tokemb.Table(2 ** 62, 2 ** 10)


class TestTable(unittest.TestCase):
    def test_init_and_lookup_match_torch_bitwise(self):
        with tokemb.Table(6, 3) as t:
            t.init_normal(123)
            ref = torch_normal(123, 6, 3)
            self.assertTrue(np.array_equal(bits(t.numpy()), bits(ref)))
            out = t.lookup([2, 3, 5, 1])
            self.assertEqual(out.dtype, np.float32)
            self.assertTrue(np.array_equal(bits(out), bits(ref[[2, 3, 5, 1]])))
            ids2 = np.array([[0, 5], [4, 4]], dtype=np.int32)
            self.assertTrue(np.array_equal(t.lookup(ids2), ref[ids2]))
            self.assertTrue(np.array_equal(t.lookup_onehot(np.array([2, 3, 5, 1])), out))
            self.assertTrue(np.array_equal(t[np.int64(4)], ref[4]))
        torch.manual_seed(9)
        ref = torch.empty(5, 7).uniform_(-0.25, 0.5).numpy()
        t = tokemb.Table(5, 7).init_uniform(9, -0.25, 0.5)
        self.assertTrue(np.array_equal(bits(t.to_numpy()), bits(ref)))

    def test_wrap_is_zero_copy_and_keeps_the_array_alive(self):
        a = np.zeros((4, 3), np.float32)
        t = tokemb.Table.wrap(a)
        self.assertTrue(np.shares_memory(t.numpy(), a))
        t.init_normal(5)
        self.assertTrue(np.array_equal(bits(a), bits(torch_normal(5, 4, 3))))
        a[2] = [1, 2, 3]
        self.assertEqual(t.lookup([2]).tolist(), [[1, 2, 3]])
        ref = a.copy()
        r = weakref.ref(a)
        del a
        gc.collect()
        self.assertIsNotNone(r())  # the table holds the array
        self.assertTrue(np.array_equal(t.lookup([0, 1, 2, 3]), ref))
        del t
        gc.collect()
        self.assertIsNone(r())

    def test_wrap_strided_rows(self):
        big = np.full((5, 8), 7, np.float32)
        view = big[:, 2:6]  # row stride 8, dim 4
        t = tokemb.Table.wrap(view)
        self.assertEqual((t.rows, t.dim, t.row_stride), (5, 4, 8))
        t.init_uniform(3, -1, 1)
        torch.manual_seed(3)
        self.assertTrue(np.array_equal(bits(big[:, 2:6]), bits(torch.empty(5, 4).uniform_(-1, 1).numpy())))
        self.assertTrue((big[:, :2] == 7).all() and (big[:, 6:] == 7).all())

    def test_wrap_rejects_bad_layouts(self):
        for bad in (np.zeros((4, 3), np.float64), np.zeros((4, 3, 1), np.float32), np.zeros((4, 6), np.float32)[:, ::2],
                    np.asfortranarray(np.zeros((4, 3), np.float32)), np.zeros((0, 3), np.float32), [[1.0, 2.0]]):
            with self.assertRaises(ValueError):
                tokemb.Table.wrap(bad)
        ro = np.ones((2, 2), np.float32)
        ro.flags.writeable = False
        with self.assertRaises(ValueError):
            tokemb.Table.wrap(ro)
        t = tokemb.Table.wrap(ro, readonly=True)
        with self.assertRaises(tokemb.ReadOnly) as cm:
            t.init_normal(1)
        self.assertEqual(cm.exception.status, tokemb.constants["TOKEMB_READ_ONLY"])
        with self.assertRaises(tokemb.ReadOnly):
            t.write_rows(0, np.zeros((1, 2), np.float32))
        self.assertTrue((ro == 1).all())
        self.assertEqual(t.lookup([1]).tolist(), [[1, 1]])

    def test_from_numpy_and_copy_are_copies(self):
        a = np.arange(12, dtype=np.float64).reshape(4, 3)
        t = tokemb.Table.from_numpy(a)
        a[0, 0] = 100
        self.assertEqual(t.numpy()[0, 0], 0)
        t.padding_idx = -1
        t.max_norm = 2.5
        c = t.copy()
        self.assertFalse(np.shares_memory(c.numpy(), t.numpy()))
        self.assertTrue(np.array_equal(c.numpy(), t.numpy()))
        self.assertEqual((c.padding_idx, c.max_norm), (3, 2.5))
        self.assertTrue(np.array_equal(t.read_rows(1, 2), np.arange(3, 9, dtype=np.float32).reshape(2, 3)))

    def test_bad_arguments_raise_before_the_call(self):
        t = tokemb.Table(6, 3).init_normal(1)
        before = t.numpy().copy()
        with self.assertRaises(ValueError):
            t.lookup(np.array([1.0, 2.0]))
        with self.assertRaises(ValueError):
            t.lookup(np.array([1, 2], np.int16))
        with self.assertRaises(ValueError):
            t.lookup(np.arange(10)[::2])
        for out in (np.zeros((2, 3), np.float64), np.zeros((3, 3), np.float32), np.zeros((3, 2), np.float32).T,
                    [[0, 0, 0], [0, 0, 0]]):
            with self.assertRaises(ValueError):
                t.lookup([1, 2], out=out)
        with self.assertRaises(ValueError):
            t.write_rows(0, np.zeros((1, 2), np.float32))
        with self.assertRaises(ValueError):
            t.grad_accumulate([1, 2], np.zeros((2, 4), np.float32))
        self.assertTrue(np.array_equal(t.numpy(), before))

    def test_parameters(self):
        t = tokemb.Table(5, 2)
        self.assertIsNone(t.padding_idx)
        t.padding_idx = -2
        self.assertEqual(t.padding_idx, 3)
        t.padding_idx = None
        self.assertIsNone(t.padding_idx)
        t.max_norm, t.norm_type = 1.5, 3.0
        self.assertEqual((t.max_norm, t.norm_type), (1.5, 3.0))
        t.scale_grad_by_freq = True
        t.frozen = True
        self.assertTrue(t.scale_grad_by_freq and t.frozen)
        with self.assertRaises(ValueError):
            t.norm_type = float("nan")

    def test_max_norm_lookup_renormalises_like_torch(self):
        w = torch_normal(4, 8, 5, 0, 2)
        t = tokemb.Table.from_numpy(w)
        t.max_norm = 1.0
        ids = np.array([1, 3, 3, 6])
        out = t.lookup(ids)
        tw = torch.from_numpy(w.copy())
        ref = torch.nn.functional.embedding(torch.from_numpy(ids), tw, max_norm=1.0)
        # torch's norm is a vectorised float reduction, not correctly rounded (reference doc 1.5): 1e-6
        np.testing.assert_allclose(out, ref.numpy(), rtol=1e-6, atol=0)
        np.testing.assert_allclose(t.numpy(), tw.numpy(), rtol=1e-6, atol=0)


class TestLifetime(unittest.TestCase):
    def test_use_after_close_raises(self):
        t = tokemb.Table(3, 2)
        t.close()
        self.assertTrue(t.closed)
        for call in (lambda: t.rows, lambda: t.lookup([0]), lambda: t.init_normal(1), lambda: t.numpy(),
                     lambda: t.grad_accumulate([0], np.zeros((1, 2), np.float32))):
            with self.assertRaises(tokemb.Error):
                call()
        t.close()  # idempotent
        with tokemb.Table(3, 2) as t2:
            pass
        with self.assertRaises(ValueError):
            t2.lookup([0])

    def test_views_outlive_close_and_handles_are_freed(self):
        t = tokemb.Table(3, 2).init_normal(2)
        v = t.numpy()
        ref = v.copy()
        h = weakref.ref(t._h)
        t.close()
        gc.collect()
        self.assertIsNotNone(h())  # the view keeps the storage
        self.assertTrue(np.array_equal(v, ref))
        del v
        gc.collect()
        self.assertIsNone(h())
        t3 = tokemb.Table(3, 2)
        h3 = weakref.ref(t3._h)
        del t3
        gc.collect()
        self.assertIsNone(h3())


class TestThreads(unittest.TestCase):
    def test_concurrent_lookups_and_thread_local_errors(self):
        import threading
        t = tokemb.Table(5000, 32).init_normal(8)
        ids = (np.arange(20000) * 7919) % 5000
        want = t.numpy()[ids]
        results, msgs = [], []

        def reader():
            results.append(np.array_equal(t.lookup(ids), want))

        def failer(k):
            try:
                t.lookup([5000 + k])
            except IndexError as e:
                msgs.append((k, e.message))

        threads = [threading.Thread(target=reader) for _ in range(4)] + \
                  [threading.Thread(target=failer, args=(k,)) for k in range(4)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        self.assertEqual(results, [True] * 4)
        for k, m in msgs:  # each thread saw its own error text
            self.assertIn("token id %d at index 0" % (5000 + k), m)
        self.assertEqual(len(msgs), 4)


class TestTraining(unittest.TestCase):
    def setUp(self):
        self.rows, self.dim = 11, 4
        self.w = torch_normal(21, self.rows, self.dim)
        g = torch.Generator().manual_seed(3)
        self.ids = torch.randint(0, self.rows, (3, 7), generator=g)
        self.gout = torch.randn(3, 7, self.dim, generator=g)

    def torch_grad(self, padding_idx=None, scale=False):
        w = torch.tensor(self.w, requires_grad=True)
        torch.nn.functional.embedding(self.ids, w, padding_idx=padding_idx, scale_grad_by_freq=scale).backward(self.gout)
        return w.grad.numpy()

    def test_grad_accumulate_equals_torch_bitwise(self):
        for pad, scale in ((None, False), (int(self.ids[0, 0]), False), (None, True), (int(self.ids[1, 2]), True)):
            t = tokemb.Table.from_numpy(self.w)
            t.padding_idx, t.scale_grad_by_freq = pad, scale
            g = t.grad_accumulate(self.ids.numpy(), self.gout.numpy())
            self.assertTrue(np.array_equal(bits(g), bits(self.torch_grad(pad, scale))), (pad, scale))
            g32 = t.grad_accumulate(self.ids.numpy().astype(np.int32), self.gout.numpy())
            self.assertTrue(np.array_equal(bits(g32), bits(g)))
            u, rows = t.grad_coalesce(self.ids.numpy(), self.gout.numpy())
            present = sorted(set(self.ids.flatten().tolist()) - {pad})
            self.assertEqual(u.tolist(), present)
            self.assertTrue(np.array_equal(bits(rows), bits(g[u])))
            acc = np.ones((self.rows, self.dim), np.float32)
            t.grad_accumulate(self.ids.numpy(), self.gout.numpy(), grad_table=acc)
            np.testing.assert_allclose(acc, g + 1, rtol=1e-6)
        oh = tokemb.Table.from_numpy(self.w).lookup_onehot_backward(self.ids.numpy(), self.gout.numpy())
        np.testing.assert_allclose(oh, self.torch_grad(), rtol=1e-5, atol=1e-6)  # BLAS summation order

    def test_bags_match_torch(self):
        t = tokemb.Table.from_numpy(self.w)
        ids = np.array([1, 4, 4, 9, 2, 0, 7], np.int64)
        offs = np.array([0, 3, 3, 7], np.int64)  # an empty bag in the middle
        tw = torch.from_numpy(self.w)
        for mode in ("sum", "mean", "max"):
            ref = torch.nn.functional.embedding_bag(torch.from_numpy(ids), tw, torch.from_numpy(offs[:-1]), mode=mode)
            self.assertTrue(np.array_equal(bits(t.lookup_bags(ids, offs, mode)), bits(ref.numpy())), mode)
        psw = np.linspace(0.5, 2, 7).astype(np.float32)
        ref = torch.nn.functional.embedding_bag(torch.from_numpy(ids), tw, torch.from_numpy(offs[:-1]), mode="sum",
                                                per_sample_weights=torch.from_numpy(psw))
        np.testing.assert_allclose(t.lookup_bags(ids, offs, "sum", psw), ref.numpy(), rtol=1e-6)
        with self.assertRaises(ValueError):
            t.lookup_bags(ids, np.array([0, 3, 2, 7]), "sum")  # decreasing offsets: library InvalidArgument
        with self.assertRaises(ValueError):
            t.lookup_bags(ids, offs, "median")
        # backward: distinct ids per bag so torch's summation order cannot differ
        go = np.arange(3 * self.dim, dtype=np.float32).reshape(3, self.dim) / 7
        for mode in ("sum", "mean", "max"):
            w = tw.clone().requires_grad_(True)
            torch.nn.functional.embedding_bag(torch.from_numpy(ids), w, torch.from_numpy(offs[:-1]),
                                              mode=mode).backward(torch.from_numpy(go))
            g = t.lookup_bags_backward(ids, offs, go, mode)
            np.testing.assert_allclose(g, w.grad.numpy(), rtol=1e-6, atol=1e-7, err_msg=mode)
        w = tw.clone().requires_grad_(True)
        p = torch.from_numpy(psw).requires_grad_(True)
        torch.nn.functional.embedding_bag(torch.from_numpy(ids), w, torch.from_numpy(offs[:-1]), mode="sum",
                                          per_sample_weights=p).backward(torch.from_numpy(go))
        g, gp = t.lookup_bags_backward(ids, offs, go, "sum", psw, psw_grad=True)
        np.testing.assert_allclose(g, w.grad.numpy(), rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(gp, p.grad.numpy(), rtol=1e-6, atol=1e-7)

    def test_sgd_step_touches_only_referenced_rows(self):
        t = tokemb.Table.from_numpy(self.w)
        t.optimizer("sgd", lr=0.5)
        self.assertEqual(t.get_optim_param("lr"), 0.5)
        self.assertEqual(t.optim_step_count, 0)
        ids = np.array([2, 5, 2])
        g = np.ones((3, self.dim), np.float32)
        t.step(ids, g)
        self.assertEqual(t.optim_step_count, 1)
        want = self.w.copy()
        want[2] -= 0.5 * 2
        want[5] -= 0.5
        np.testing.assert_allclose(t.numpy(), want, rtol=1e-6)
        u, rows = t.grad_coalesce(ids, g)
        t.step_coalesced(u, rows)
        want[2] -= 0.5 * 2
        want[5] -= 0.5
        np.testing.assert_allclose(t.numpy(), want, rtol=1e-6)
        with self.assertRaises(ValueError):
            t.optimizer("lbfgs")
        t.frozen = True
        before = t.numpy().copy()
        with self.assertRaises(tokemb.ReadOnly):
            t.step(ids, g)
        self.assertTrue(np.array_equal(t.numpy(), before))

    def test_sparse_adam_matches_torch(self):
        w0 = self.w.copy()
        t = tokemb.Table.from_numpy(w0)
        t.optimizer("sparse_adam", lr=0.01, betas=(0.8, 0.9), eps=1e-8)
        p = torch.nn.Parameter(torch.from_numpy(w0.copy()))
        opt = torch.optim.SparseAdam([p], lr=0.01, betas=(0.8, 0.9), eps=1e-8)
        for step in range(3):
            ids = self.ids[step]
            go = self.gout[step]
            opt.zero_grad()
            torch.nn.functional.embedding(ids, p, sparse=True).backward(go)
            opt.step()
            t.step(ids.numpy(), go.numpy())
        # a binding smoke test with a tolerance; the bit-exact comparison with torch is test_optim_torch.py
        np.testing.assert_allclose(t.numpy(), p.detach().numpy(), rtol=1e-5, atol=1e-6)

    def test_logits(self):
        t = tokemb.Table.from_numpy(self.w)
        h = np.random.default_rng(0).standard_normal((2, 3, self.dim)).astype(np.float32)
        lg = t.logits(h)
        self.assertEqual(lg.shape, (2, 3, self.rows))
        np.testing.assert_allclose(lg, h.astype(np.float64) @ self.w.T.astype(np.float64), rtol=1e-5, atol=1e-5)
        gl = np.random.default_rng(1).standard_normal(lg.shape).astype(np.float32)
        gh, gt = t.logits_backward(h, gl, grad_hidden=True, grad_table=True)
        np.testing.assert_allclose(gh, gl.astype(np.float64) @ self.w, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(gt, gl.reshape(-1, self.rows).T.astype(np.float64) @ h.reshape(-1, self.dim),
                                   rtol=1e-5, atol=1e-5)
        with self.assertRaises(ValueError):
            t.logits(np.zeros((2, self.dim + 1), np.float32))


if __name__ == "__main__":
    unittest.main()
