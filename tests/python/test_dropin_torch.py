"""tokemb.torch as a drop-in for torch.nn.Embedding / EmbeddingBag: behaviours torch 1.13's own embedding
tests check (autograd version counters under max_norm, sparse gradients, dtype and argument errors, 2-D
input layouts), each compared with torch's module computed at test time."""
import io
import unittest

import torch
import torch.nn.functional as F
from torch import nn

import tokemb.torch as tt

torch.set_num_threads(1)


def pair(cls_t, cls_k, *args, **kw):
    torch.manual_seed(0)
    a = cls_t(*args, **kw)
    b = cls_k(*args, **kw)
    with torch.no_grad():
        b.weight.copy_(a.weight)
    return a, b


def raised(fn):
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return type(e), str(e)
    return None, None


class MaxNormVersion(unittest.TestCase):
    def tied(self, emb, x):
        """A tied head used before the max_norm lookup: torch raises at backward."""
        h = torch.randn(4, 5, generator=torch.Generator().manual_seed(2)).requires_grad_()
        logits = h @ emb.weight.t()  # saves the weight for h's gradient
        out = emb(x)
        return (logits.sum() + out.sum()).backward

    def test_tied_head_raises_like_torch(self):
        cases = ((nn.Embedding, tt.Embedding, {}, torch.tensor([1, 3, 3, 7])),
                 (nn.EmbeddingBag, tt.EmbeddingBag, {"mode": "sum"}, torch.tensor([[1, 3], [3, 7]])))
        for cls_t, cls_k, kw, x in cases:
            a, b = pair(cls_t, cls_k, 10, 5, max_norm=0.5, **kw)
            ea, eb = raised(self.tied(a, x)), raised(self.tied(b, x))
            self.assertIs(ea[0], RuntimeError)
            self.assertIn("modified by an inplace operation", ea[1])
            self.assertIs(eb[0], RuntimeError, cls_k.__name__)
            self.assertIn("modified by an inplace operation", eb[1])

    def test_version_bumped_and_rows_renormed(self):
        a, b = pair(nn.Embedding, tt.Embedding, 10, 5, max_norm=0.5)
        ids = torch.tensor([2, 4, 4])
        va, vb = a.weight._version, b.weight._version
        ra, rb = a(ids), b(ids)
        self.assertGreater(a.weight._version, va)
        self.assertGreater(b.weight._version, vb)
        torch.testing.assert_close(rb, ra)
        torch.testing.assert_close(b.weight, a.weight)


class BagErrors(unittest.TestCase):
    def test_max_mode_value_errors(self):
        for kw in ({"scale_grad_by_freq": True}, {"sparse": True}):
            a, b = pair(nn.EmbeddingBag, tt.EmbeddingBag, 10, 3, mode="max", **kw)
            x = torch.tensor([[1, 2]])
            ea, eb = raised(lambda: a(x)), raised(lambda: b(x))
            self.assertIs(ea[0], ValueError)
            self.assertEqual(eb, ea)

    def test_psw_dtype_mismatch(self):
        a, b = pair(nn.EmbeddingBag, tt.EmbeddingBag, 10, 3, mode="sum")
        x = torch.tensor([[1, 2]])
        psw = torch.ones(1, 2, dtype=torch.float64)
        ea, eb = raised(lambda: a(x, per_sample_weights=psw)), raised(lambda: b(x, per_sample_weights=psw))
        self.assertIs(ea[0], RuntimeError)
        self.assertIn("have the same type as", ea[1])
        self.assertEqual(eb, ea)


class BagLayouts(unittest.TestCase):
    def test_2d_include_last_offset(self):
        """torch treats the row starts as offsets and the last one as the closing offset: b - 1 bags, the last
        row in none. Sum matches torch; torch 1.13's mean divides by a count that includes ids outside the
        bag where we divide by the bag's l ids, and its max crashes (SIGSEGV / free(): invalid pointer), so max is checked against
        the rows' maximum."""
        for rows in (2, 4):
            x = torch.randint(0, 10, (rows, 3), generator=torch.Generator().manual_seed(rows))
            a, b = pair(nn.EmbeddingBag, tt.EmbeddingBag, 10, 3, mode="sum", include_last_offset=True)
            ra, rb = a(x), b(x)
            self.assertEqual(tuple(rb.shape), (rows - 1, 3))
            torch.testing.assert_close(rb, ra)
            am, bm = pair(nn.EmbeddingBag, tt.EmbeddingBag, 10, 3, mode="mean", include_last_offset=True)
            torch.testing.assert_close(bm(x), ra / 3)
            self.assertFalse(torch.allclose(am(x), bm(x)))  # torch 1.13 divides by another count
            _, bx = pair(nn.EmbeddingBag, tt.EmbeddingBag, 10, 3, mode="max", include_last_offset=True)
            torch.testing.assert_close(bx(x), a.weight[x[:-1]].amax(1))


class SparseBagGrad(unittest.TestCase):
    def test_sparse_coo_and_sparse_adam(self):
        for mode in ("sum", "mean"):
            a, b = pair(nn.EmbeddingBag, tt.EmbeddingBag, 12, 4, mode=mode, sparse=True)
            ids = torch.tensor([1, 5, 5, 9, 0, 1])
            offs = torch.tensor([0, 2, 4])
            g = torch.randn(3, 4, generator=torch.Generator().manual_seed(1))
            (a(ids, offs) * g).sum().backward()
            (b(ids, offs) * g).sum().backward()
            self.assertTrue(b.weight.grad.is_sparse)
            torch.testing.assert_close(b.weight.grad.to_dense(), a.weight.grad.to_dense())
            oa, ob = torch.optim.SparseAdam(a.parameters(), lr=0.1), torch.optim.SparseAdam(b.parameters(), lr=0.1)
            oa.step()
            ob.step()
            torch.testing.assert_close(b.weight, a.weight)


class Errors(unittest.TestCase):
    def test_out_of_range_like_torch_plus_ours(self):
        a, b = pair(nn.Embedding, tt.Embedding, 10, 3)
        for bad in (10, -1):
            ea, eb = raised(lambda: a(torch.tensor([1, bad]))), raised(lambda: b(torch.tensor([1, bad])))
            self.assertIs(eb[0], ea[0])
            self.assertIn(ea[1], eb[1])  # torch's text, then the library's
            self.assertIn("token id %d at index 1" % bad, eb[1])
        a, b = pair(nn.EmbeddingBag, tt.EmbeddingBag, 10, 3, mode="sum")
        ea = raised(lambda: a(torch.tensor([1, 10]), torch.tensor([0])))
        eb = raised(lambda: b(torch.tensor([1, 10]), torch.tensor([0])))
        self.assertIs(eb[0], ea[0])
        self.assertIn("out of bounds", ea[1])
        self.assertIn("out of bounds", eb[1])
        self.assertIn("token id 10 at index 1", eb[1])

    def test_bad_padding_idx(self):
        w = torch.randn(10, 3)
        for pad in (10, -11):
            for ft, fk in ((F.embedding, tt.functional.embedding),):
                ea = raised(lambda: ft(torch.tensor([1]), w, padding_idx=pad))
                eb = raised(lambda: fk(torch.tensor([1]), w, padding_idx=pad))
                self.assertIs(ea[0], AssertionError)
                self.assertEqual(eb, ea)
            for cls_t, cls_k in ((nn.Embedding, tt.Embedding), (nn.EmbeddingBag, tt.EmbeddingBag)):
                self.assertEqual(raised(lambda: cls_k(10, 3, padding_idx=pad)), raised(lambda: cls_t(10, 3, padding_idx=pad)))


class Functional(unittest.TestCase):
    def test_signatures_and_values(self):
        import inspect
        import tokemb.torch.functional as TF
        for name in ("embedding", "embedding_bag"):
            self.assertEqual(list(inspect.signature(getattr(TF, name)).parameters),
                             list(inspect.signature(getattr(F, name)).parameters))
        w = torch.randn(10, 4, generator=torch.Generator().manual_seed(3))
        ids = torch.tensor([[1, 0, 9], [3, 3, 0]])
        for pad in (None, 0, -1):
            torch.testing.assert_close(TF.embedding(ids, w, padding_idx=pad), F.embedding(ids, w, padding_idx=pad))
        for mode in ("sum", "mean", "max"):
            torch.testing.assert_close(TF.embedding_bag(ids, w, mode=mode), F.embedding_bag(ids, w, mode=mode))
            flat, offs = ids.reshape(-1), torch.tensor([0, 2, 6])
            torch.testing.assert_close(TF.embedding_bag(flat, w, offs, mode=mode, include_last_offset=True),
                                       F.embedding_bag(flat, w, offs, mode=mode, include_last_offset=True))


class Autograd(unittest.TestCase):
    def test_forward_mode_jvp(self):
        import torch.autograd.forward_ad as fwAD
        w = torch.randn(10, 4, generator=torch.Generator().manual_seed(4))
        tangent = torch.randn(10, 4, generator=torch.Generator().manual_seed(5))
        ids = torch.tensor([[2, 2, 7], [0, 9, 1]])
        outs = []
        for f in (F.embedding, tt.functional.embedding):
            with fwAD.dual_level():
                y = f(ids, fwAD.make_dual(w, tangent), padding_idx=0)
                outs.append(fwAD.unpack_dual(y))
        torch.testing.assert_close(outs[1].primal, outs[0].primal)
        torch.testing.assert_close(outs[1].tangent, outs[0].tangent)

    def test_forward_mode_jvp_bags(self):
        """torch 1.13 has no forward AD for embedding_bag: the reference is torch's forward AD of the same
        bags written as F.embedding x weights + a segment sum (/ count for mean)."""
        import torch.autograd.forward_ad as fwAD
        w = torch.randn(10, 4, generator=torch.Generator().manual_seed(4))
        wt = torch.randn(10, 4, generator=torch.Generator().manual_seed(5))
        ids, offs = torch.tensor([2, 2, 7, 0, 9, 1]), torch.tensor([0, 2, 2])
        seg, count = torch.tensor([0, 0, 2, 2, 2, 2]), torch.tensor([2.0, 1.0, 4.0])
        psw = torch.randn(6, generator=torch.Generator().manual_seed(6))
        pt = torch.randn(6, generator=torch.Generator().manual_seed(7))
        for mode, weighted in (("sum", False), ("mean", False), ("sum", True)):
            with fwAD.dual_level():
                dw = fwAD.make_dual(w, wt)
                p = fwAD.make_dual(psw, pt) if weighted else None
                rows = F.embedding(ids, dw) * (p.unsqueeze(1) if weighted else 1.0)
                ref = torch.zeros(3, 4).index_add(0, seg, rows)
                if mode == "mean":
                    ref = ref / count.unsqueeze(1)
                ref = fwAD.unpack_dual(ref)
                got = fwAD.unpack_dual(tt.functional.embedding_bag(ids, dw, offs, mode=mode, per_sample_weights=p))
            torch.testing.assert_close(got.primal, ref.primal)
            torch.testing.assert_close(got.tangent, ref.tangent)

    def test_double_backward(self):
        ids = torch.tensor([1, 4, 4, 0])
        res = []
        for cls in (nn.Embedding, tt.Embedding):
            torch.manual_seed(0)
            m = cls(6, 3, padding_idx=0)
            y = m(ids)
            g = torch.randn(4, 3, generator=torch.Generator().manual_seed(6), requires_grad=True)
            (gw,) = torch.autograd.grad(y, m.weight, g, create_graph=True)
            (gg,) = torch.autograd.grad((gw ** 2).sum(), g)
            res.append((gw.detach(), gg))
        torch.testing.assert_close(res[1][0], res[0][0])
        torch.testing.assert_close(res[1][1], res[0][1])


class Tied(nn.Module):
    def __init__(self, emb_cls, bag_cls):
        super().__init__()
        self.e = emb_cls(10, 4, padding_idx=0)
        self.b = bag_cls(10, 4, mode="sum")

    def forward(self, x):
        return self.e(x).sum(1) + self.b(x)


class TorchScript(unittest.TestCase):
    def test_script_and_trace_save_load(self):
        """Scripted and traced models run torch's op (the documented fallback) and save/load; eager runs
        tokemb; all three agree with torch's modules."""
        torch.manual_seed(0)
        ref = Tied(nn.Embedding, nn.EmbeddingBag)
        m = Tied(tt.Embedding, tt.EmbeddingBag)
        m.load_state_dict(ref.state_dict())
        x = torch.tensor([[1, 2, 0], [3, 3, 9]])
        want = ref(x)
        self.assertEqual(type(m.e(x).grad_fn).__name__, "_EmbeddingFunctionBackward")
        torch.testing.assert_close(m(x), want)
        for make in (torch.jit.script, lambda mod: torch.jit.trace(mod, (x,))):
            buf = io.BytesIO()
            torch.jit.save(make(m), buf)
            buf.seek(0)
            torch.testing.assert_close(torch.jit.load(buf)(x), want)


class Dtypes(unittest.TestCase):
    def test_float32_runs_tokemb_others_run_torch(self):
        """float32 runs the library (its grad_fn); float64 / float16 / bfloat16 run torch's own op (the same
        grad_fn as torch) with torch's results, forward and backward."""
        ids = torch.tensor([[1, 4, 4], [0, 2, 9]])
        for dt, ours in ((torch.float32, True), (torch.float64, False), (torch.float16, False),
                         (torch.bfloat16, False)):
            a, b = pair(nn.Embedding, tt.Embedding, 10, 3, padding_idx=0, dtype=dt)
            ya, yb = a(ids), b(ids)
            self.assertEqual(yb.dtype, dt)
            self.assertEqual(type(yb.grad_fn).__name__ == "_EmbeddingFunctionBackward", ours, dt)
            torch.testing.assert_close(yb, ya)
            ya.float().sum().backward()
            yb.float().sum().backward()
            torch.testing.assert_close(b.weight.grad, a.weight.grad)
            a, b = pair(nn.EmbeddingBag, tt.EmbeddingBag, 10, 3, mode="mean", dtype=dt)
            err = raised(lambda: a(ids))
            if err[0] is not None:  # torch 1.13 has no CPU bfloat16 bag: the same error
                self.assertEqual(raised(lambda: b(ids)), err)
                continue
            yb = b(ids)
            self.assertEqual(type(yb.grad_fn).__name__ == "_EmbeddingBagFunctionBackward", ours, dt)
            torch.testing.assert_close(yb, a(ids))


class ScaleGradByFreq(unittest.TestCase):
    def test_bag_counts_over_whole_input_torch_113_differs(self):
        """Deliberate difference: with scale_grad_by_freq the bag gradient divides by each id's count over
        the whole input (torch's documented meaning, = nn.Embedding + segment sum); torch 1.13's bag
        backward counts differently in this layout."""
        w = torch.randn(6, 3, generator=torch.Generator().manual_seed(7), requires_grad=True)
        ids, offs = torch.tensor([1, 1, 2, 1, 3, 1]), torch.tensor([0, 2, 5])
        seg = torch.tensor([0, 0, 1, 1, 1, 2])
        g = torch.randn(3, 3, generator=torch.Generator().manual_seed(8))

        def grad(f):
            w.grad = None
            (f() * g).sum().backward()
            return w.grad.clone()
        ref = grad(lambda: torch.zeros(3, 3).index_add(0, seg, F.embedding(ids, w, scale_grad_by_freq=True)))
        ours = grad(lambda: tt.functional.embedding_bag(ids, w, offs, mode="sum", scale_grad_by_freq=True))
        torch113 = grad(lambda: F.embedding_bag(ids, w, offs, mode="sum", scale_grad_by_freq=True))
        torch.testing.assert_close(ours, ref)
        self.assertFalse(torch.allclose(torch113, ref))


if __name__ == "__main__":
    unittest.main()
