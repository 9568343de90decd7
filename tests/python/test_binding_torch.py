"""tokemb.torch: Embedding / EmbeddingBag / RotaryEmbedding as drop-in nn.Modules, compared with torch
1.13 in this process. The real-client test trains the same small model (embedding -> mean pool ->
linear -> cross-entropy, SGD) with nn.Embedding and with tokemb.torch.Embedding from the same initial
weights: per-step losses and all final weights must be bitwise equal (the embedding forward is a copy
and the library's dense backward reproduces embedding_dense_backward's summation order, so nothing
downstream can differ)."""
import unittest
from unittest import mock

import numpy as np
import torch
from torch import nn

import tokemb
import tokemb.table
from tokemb.torch import Embedding, EmbeddingBag, RotaryEmbedding


def same_bits(a, b):
    a, b = a.detach().contiguous(), b.detach().contiguous()
    return a.shape == b.shape and torch.equal(a.view(torch.int32), b.view(torch.int32))


class Model(nn.Module):
    def __init__(self, emb, dim, classes):
        super().__init__()
        self.emb = emb
        self.fc = nn.Linear(dim, classes)

    def forward(self, ids):
        return self.fc(self.emb(ids).mean(dim=1))


def train(emb_cls, steps=25, **emb_kwargs):
    torch.manual_seed(0)
    vocab, dim, classes = 50, 8, 3
    emb = emb_cls(vocab, dim, **emb_kwargs)
    model = Model(emb, dim, classes)
    g = torch.Generator().manual_seed(1)
    data = torch.randint(0, vocab, (steps, 16, 12), generator=g)
    labels = torch.randint(0, classes, (steps, 16), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for s in range(steps):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(data[s]), labels[s])
        loss.backward()
        opt.step()
        losses.append(loss.detach().clone())
    return losses, model


class TestEmbedding(unittest.TestCase):
    def test_training_matches_nn_embedding_bitwise(self):
        for kwargs in ({}, {"padding_idx": 3}, {"scale_grad_by_freq": True, "padding_idx": -1}):
            ref_losses, ref = train(nn.Embedding, **kwargs)
            losses, model = train(Embedding, **kwargs)
            self.assertIsInstance(model.emb, Embedding)
            self.assertLess(float(losses[-1]), float(losses[0]))  # it learns
            for s, (a, b) in enumerate(zip(losses, ref_losses)):
                self.assertTrue(same_bits(a, b), "step %d loss %r vs %r (%s)" % (s, float(a), float(b), kwargs))
            for (n1, p1), (n2, p2) in zip(model.state_dict().items(), ref.state_dict().items()):
                self.assertEqual(n1, n2)
                self.assertTrue(same_bits(p1, p2), "%s differs (%s)" % (n1, kwargs))

    def test_drop_in_constructor_and_from_pretrained(self):
        torch.manual_seed(5)
        a = nn.Embedding(10, 4, padding_idx=-2, max_norm=2.0, norm_type=3.0)
        torch.manual_seed(5)
        b = Embedding(10, 4, padding_idx=-2, max_norm=2.0, norm_type=3.0)
        self.assertEqual(b.padding_idx, 8)
        self.assertTrue(same_bits(a.weight, b.weight))
        self.assertEqual(repr(a).replace("Embedding", "X"), repr(b).replace("Embedding", "X"))
        self.assertEqual(list(a.state_dict()), list(b.state_dict()))
        b.load_state_dict(a.state_dict())
        w = torch.randn(7, 3)
        e = Embedding.from_pretrained(w, freeze=True, padding_idx=1)
        self.assertIsInstance(e, Embedding)
        self.assertEqual(e.weight.data_ptr(), w.data_ptr())  # storage shared, as nn.Embedding
        self.assertFalse(e.weight.requires_grad)
        ids = torch.tensor([[1, 6], [0, 0]])
        self.assertTrue(same_bits(e(ids), w[ids]))

    def test_forward_backward_on_the_tensors_own_memory(self):
        emb = Embedding(20, 6)
        seen = []
        real_wrap = tokemb.table.Table.wrap.__func__

        def spy(cls, array, *a, **k):
            seen.append(np.shares_memory(array, emb.weight.detach().numpy()))
            return real_wrap(cls, array, *a, **k)

        ids = torch.tensor([[3, 4, 3], [19, 0, 1]])
        with mock.patch.object(tokemb.table.Table, "wrap", classmethod(spy)):
            out = emb(ids)
            out.backward(torch.ones_like(out))
        self.assertEqual(seen, [True, True])  # forward and backward wrapped the weight without a copy
        ref = nn.functional.embedding(ids, emb.weight.detach())
        self.assertTrue(same_bits(out, ref))
        self.assertEqual(emb.weight.grad[3].tolist(), [2.0] * 6)
        self.assertEqual(emb.weight.grad[2].tolist(), [0.0] * 6)

    def test_int32_ids_max_norm_sparse_and_errors(self):
        torch.manual_seed(2)
        ref = nn.Embedding(12, 5, max_norm=1.0)
        emb = Embedding(12, 5, max_norm=1.0)
        emb.load_state_dict(ref.state_dict())
        ids = torch.tensor([[1, 2, 2], [11, 0, 1]], dtype=torch.int32)
        # renorm: torch's float norm is not correctly rounded (reference 1.5): rtol 1e-6
        torch.testing.assert_close(emb(ids), ref(ids), rtol=1e-6, atol=0)
        torch.testing.assert_close(emb.weight, ref.weight, rtol=1e-6, atol=0)
        sp = Embedding(12, 5, sparse=True, padding_idx=0)
        dn = Embedding(12, 5, padding_idx=0)
        dn.load_state_dict(sp.state_dict())
        ids = torch.tensor([4, 0, 4, 7])
        sp(ids).sum().backward()
        dn(ids).sum().backward()
        self.assertTrue(sp.weight.grad.is_sparse)
        self.assertTrue(same_bits(sp.weight.grad.to_dense(), dn.weight.grad))
        with self.assertRaises(IndexError):
            emb(torch.tensor([12]))
        with self.assertRaises(RuntimeError):
            emb(torch.tensor([1.0]))
        d = Embedding(4, 2).double()  # not float32: falls back to torch's own op
        self.assertEqual(d(torch.tensor([1])).dtype, torch.float64)


class TestEmbeddingBag(unittest.TestCase):
    def pair(self, **kw):
        torch.manual_seed(3)
        ref = nn.EmbeddingBag(15, 4, **kw)
        bag = EmbeddingBag(15, 4, **kw)
        bag.load_state_dict(ref.state_dict())
        return ref, bag

    def test_forward_backward_match_torch(self):
        ids = torch.tensor([1, 2, 4, 5, 4, 3, 2, 9])
        offsets = torch.tensor([0, 2, 2, 5])
        for mode in ("sum", "mean", "max"):
            ref, bag = self.pair(mode=mode)
            a, b = ref(ids, offsets), bag(ids, offsets)
            self.assertTrue(same_bits(a, b), mode)
            g = torch.linspace(-1, 1, a.numel()).reshape(a.shape)
            a.backward(g)
            b.backward(g)
            # bags hold distinct ids here, so torch's (unstable-sort) summation order cannot matter
            torch.testing.assert_close(bag.weight.grad, ref.weight.grad, rtol=1e-6, atol=1e-7)
        ref, bag = self.pair(mode="mean", include_last_offset=True, padding_idx=2)
        off2 = torch.tensor([0, 2, 2, 5, 8])
        self.assertTrue(same_bits(ref(ids, off2), bag(ids, off2)))
        ref, bag = self.pair(mode="sum")
        x2 = torch.tensor([[1, 2, 3], [4, 5, 6]])
        w = torch.tensor([[0.5, 1.0, 2.0], [1.0, -1.0, 3.0]])
        pr, pb = w.clone().requires_grad_(True), w.clone().requires_grad_(True)
        a, b = ref(x2, per_sample_weights=pr), bag(x2, per_sample_weights=pb)
        torch.testing.assert_close(b, a, rtol=1e-6, atol=1e-7)
        a.sum().backward()
        b.sum().backward()
        torch.testing.assert_close(pb.grad, pr.grad, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(bag.weight.grad, ref.weight.grad, rtol=1e-6, atol=1e-7)
        with self.assertRaises(ValueError):
            bag(x2, torch.tensor([0]))
        with self.assertRaises(RuntimeError):  # torch's type for a bag id out of range
            bag(torch.tensor([15]), torch.tensor([0]))


class TestRotary(unittest.TestCase):
    @staticmethod
    def hf_rope64(x, pos, head_dim, base=10000.0):
        """transformers' rotate_half formula evaluated in float64 (x [n, heads, d])."""
        inv = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim))
        ang = pos.double()[:, None] * inv[None]
        emb = torch.cat([ang, ang], dim=-1)[:, None, :]
        x = x.double()
        rot = torch.cat([-x[..., head_dim // 2:], x[..., :head_dim // 2]], dim=-1)
        return x * emb.cos() + rot * emb.sin()

    def test_forward_backward_against_float64_reference(self):
        torch.manual_seed(4)
        rope = RotaryEmbedding(16)
        x = torch.randn(5, 3, 16, requires_grad=True)
        pos = torch.tensor([0, 1, 7, 100, 4096])
        y = rope(x, pos)
        ref = self.hf_rope64(x.detach(), pos, 16)
        torch.testing.assert_close(y.double(), ref, rtol=0, atol=2e-6)
        g = torch.randn_like(y)
        y.backward(g)
        x64 = x.detach().double().requires_grad_(True)
        self.hf_rope64(x64, pos, 16).backward(g.double())
        torch.testing.assert_close(x.grad.double(), x64.grad, rtol=0, atol=2e-6)
        # transformers' [batch, heads, seq, dim] layout, positions [seq] broadcast over the batch
        xb = x.detach().permute(1, 0, 2).unsqueeze(0).repeat(2, 1, 1, 1)  # [2, 3, 5, 16]
        yb = rope(xb, pos)
        self.assertTrue(same_bits(yb[1].permute(1, 0, 2), y.detach()))
        self.assertTrue(same_bits(x.detach(), x.detach()))  # input untouched (out of place)


if __name__ == "__main__":
    unittest.main()
