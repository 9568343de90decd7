"""Files, vocabularies, nearest neighbours and compact dtypes through the Python binding, checked against
numpy (np.save/np.load, float16 rounding), a .safetensors file written here from the format spec,
gensim's KeyedVectors (word2vec binary and text) and a float64 cosine ranking."""
import json
import os
import struct
import tempfile
import unittest

import numpy as np

import tokemb


class TestFiles(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.w = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)

    def tearDown(self):
        self.dir.cleanup()

    def p(self, name):
        return os.path.join(self.dir.name, name)

    def test_npy_roundtrip_with_numpy_and_mmap(self):
        np.save(self.p("a.npy"), self.w)
        t = tokemb.load_npy(self.p("a.npy"))
        self.assertTrue(np.array_equal(t.numpy(), self.w))
        m = tokemb.Table.load_npy(self.p("a.npy"), mmap=True)
        self.assertTrue(np.array_equal(m.lookup([6, 0]), self.w[[6, 0]]))
        with self.assertRaises(tokemb.ReadOnly):
            m.init_normal(1)
        t.init_normal(3)
        t.save_npy(self.p("b.npy"))
        self.assertTrue(np.array_equal(np.load(self.p("b.npy")), t.numpy()))
        with open(self.p("bad.npy"), "wb") as f:
            f.write(b"\x93NUMPY\x01\x00garbage")
        with self.assertRaises(tokemb.FormatError) as cm:
            tokemb.load_npy(self.p("bad.npy"))
        self.assertEqual(cm.exception.status, tokemb.constants["TOKEMB_FORMAT"])
        with self.assertRaises(OSError):
            tokemb.load_npy(self.p("missing.npy"))

    def test_safetensors(self):
        a, b = self.w, np.arange(6, dtype=np.float16).reshape(2, 3)
        header = {"__metadata__": {"k": "v"},
                  "emb": {"dtype": "F32", "shape": [7, 5], "data_offsets": [0, a.nbytes]},
                  "small": {"dtype": "F16", "shape": [2, 3], "data_offsets": [a.nbytes, a.nbytes + b.nbytes]}}
        hj = json.dumps(header).encode()
        hj += b" " * (-len(hj) % 8)
        with open(self.p("m.safetensors"), "wb") as f:
            f.write(struct.pack("<Q", len(hj)) + hj + a.tobytes() + b.tobytes())
        self.assertEqual(tokemb.safetensors_names(self.p("m.safetensors")), ["emb", "small"])
        t = tokemb.load_safetensors(self.p("m.safetensors"), "emb")
        self.assertTrue(np.array_equal(t.numpy(), a))
        s = tokemb.load_safetensors(self.p("m.safetensors"), "small", mmap=True)
        self.assertEqual(s.dtype, tokemb.F16)
        self.assertTrue(np.array_equal(s.to_numpy(), b.astype(np.float32)))
        with self.assertRaises(ValueError):
            tokemb.load_safetensors(self.p("m.safetensors"), "nope")
        tokemb.save_safetensors({"x": t, "y": s}, self.p("o.safetensors"))
        self.assertEqual(tokemb.safetensors_names(self.p("o.safetensors")), ["x", "y"])
        self.assertTrue(np.array_equal(tokemb.load_safetensors(self.p("o.safetensors"), "x").numpy(), a))

    def test_word2vec_with_gensim_and_progress(self):
        try:
            from gensim.models import KeyedVectors
        except ImportError:  # pragma: no cover - Debian's gensim is a test dependency
            self.fail("gensim (python3-gensim) is needed")
        words = ["king", "queen", "man", "woman", "apple", "pear", "car"]
        kv = KeyedVectors(vector_size=5)
        kv.add_vectors(words, self.w)
        for binary, fmt in ((True, "word2vec_binary"), (False, "word2vec_text")):
            path = self.p("v.%s" % fmt)
            kv.save_word2vec_format(path, binary=binary)
            calls = []
            t, v = tokemb.load_vectors(path, fmt, progress=lambda d, n: calls.append((d, n)) and False)
            self.assertTrue(calls and calls[-1][0] == calls[-1][1] == os.path.getsize(path))
            self.assertEqual(v.words(), words)
            self.assertEqual(v["queen"], 1)
            self.assertEqual(v[4], "apple")
            self.assertNotIn("banana", v)
            self.assertTrue(np.array_equal(t.numpy(), kv.vectors))
            with self.assertRaises(tokemb.Cancelled):
                tokemb.load_vectors(path, fmt, progress=lambda d, n: True)
            t.init_uniform(2, -1, 1)
            tokemb.save_vectors(t, v, self.p("out"), fmt)
            back = KeyedVectors.load_word2vec_format(self.p("out"), binary=binary)
            self.assertEqual(list(back.index_to_key), words)
            self.assertTrue(np.array_equal(back.vectors, t.numpy()))
        # nearest neighbours: gensim's most_similar ordering
        t = tokemb.Table.from_numpy(self.w)
        ids, scores = t.nearest_ids(2, k=3)
        ref = kv.most_similar("man", topn=3)
        self.assertEqual([words[i] for i in ids], [w for w, _ in ref])
        np.testing.assert_allclose(scores, [s for _, s in ref], rtol=1e-5)
        q = self.w[[0, 4]]
        ids, scores = tokemb.nearest(t, q, k=2, exclude_ids=[0, -1])
        n = self.w / np.linalg.norm(self.w.astype(np.float64), axis=1, keepdims=True)
        cos = (q / np.linalg.norm(q.astype(np.float64), axis=1, keepdims=True)) @ n.T
        cos[0, 0] = -np.inf
        self.assertEqual(ids.tolist(), np.argsort(-cos, axis=1, kind="stable")[:, :2].tolist())
        with self.assertRaises(ValueError):
            t.nearest_ids([0], k=0)


class TestVocabAndDtypes(unittest.TestCase):
    def test_vocab(self):
        with tokemb.Vocab(["a", "b"]) as v:
            self.assertEqual(v.add("héllo"), 2)
            self.assertEqual(len(v), 3)
            self.assertEqual(v.word(2), "héllo")
            with self.assertRaises(ValueError):
                v.add("a")
            with self.assertRaises(IndexError):
                v.word(3)
        with self.assertRaises(ValueError):
            len(v)

    def test_convert_f16_bf16_q8(self):
        w = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)
        t = tokemb.Table.from_numpy(w)
        h = t.convert("f16")
        self.assertEqual(h.dtype, tokemb.F16)
        self.assertTrue(np.array_equal(h.lookup([3, 1]), w[[3, 1]].astype(np.float16).astype(np.float32)))
        with self.assertRaises(ValueError):
            h.numpy()
        with self.assertRaises(NotImplementedError):
            h.init_normal(1)
        b = t.convert("bf16").to_numpy()
        np.testing.assert_allclose(b, w, rtol=2 ** -8)
        q = t.convert("q8_row").to_numpy()
        scale = (w.max(1) - w.min(1)) / 255
        self.assertTrue(np.all(np.abs(q - w) <= scale[:, None] / 2 + 1e-6))
        a16 = w.astype(np.float16)
        self.assertTrue(np.array_equal(tokemb.Table.wrap(a16).to_numpy(), a16.astype(np.float32)))


if __name__ == "__main__":
    unittest.main()
