"""tokemb_nearest / tokemb_nearest_ids against gensim's KeyedVectors.most_similar on the same vectors
(order and scores), for words (the query word excluded) and for raw vectors, on F32 and F16 tables."""
import ctypes
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
from gensim.models import KeyedVectors

from tkctypes import NO_PROGRESS, P, lib, ok, ptr

COSINE, DOT = 0, 1


class TestNearestGensim(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(11)
        cls.n, cls.dim = 2500, 32
        cls.vecs = rng.standard_normal((cls.n, cls.dim)).astype(np.float32)
        cls.vecs[7] *= 50.0  # norms differ: cosine != dot ranking
        cls.kv = KeyedVectors(cls.dim)
        cls.kv.add_vectors(["w%d" % i for i in range(cls.n)], cls.vecs)
        cls.t = P()
        ok(lib.tokemb_table_create(cls.n, cls.dim, 0, ctypes.byref(cls.t)))
        ok(lib.tokemb_table_write_rows(cls.t, 0, cls.n, ptr(cls.vecs)))

    @classmethod
    def tearDownClass(cls):
        lib.tokemb_table_free(cls.t)

    def nearest_ids(self, table, ids, k, metric=COSINE, exclude_self=1):
        ids = np.asarray(ids, np.int64)
        out = np.empty((len(ids), k), np.int64)
        sc = np.empty((len(ids), k), np.float32)
        ok(lib.tokemb_nearest_ids(table, ptr(ids), len(ids), k, metric, exclude_self, ptr(out), ptr(sc)))
        return out, sc

    def check_same(self, ref, ids, sc):
        self.assertEqual(["w%d" % i for i in ids], [w for w, _ in ref])
        np.testing.assert_allclose(sc, [s for _, s in ref], rtol=0, atol=2e-6)

    def test_words(self):
        q = [0, 7, 123, 2499, 1000, 42]
        out, sc = self.nearest_ids(self.t, q, 10)
        for i, qi in enumerate(q):
            self.check_same(self.kv.most_similar("w%d" % qi, topn=10), out[i], sc[i])

    def test_vectors(self):
        rng = np.random.default_rng(12)
        qs = rng.standard_normal((4, self.dim)).astype(np.float32)
        out = np.empty((4, 15), np.int64)
        sc = np.empty((4, 15), np.float32)
        ok(lib.tokemb_nearest(self.t, ptr(qs), 4, 15, COSINE, None, ptr(out), ptr(sc)))
        for i in range(4):
            self.check_same(self.kv.most_similar(positive=[qs[i]], topn=15), out[i], sc[i])
        # dot product: gensim's raw dot ranking is vectors @ q
        ok(lib.tokemb_nearest(self.t, ptr(qs), 4, 15, DOT, None, ptr(out), ptr(sc)))
        for i in range(4):
            d = self.vecs @ qs[i]
            order = np.argsort(-d.astype(np.float64), kind="stable")[:15]
            self.assertEqual(list(out[i]), list(order))
            np.testing.assert_allclose(sc[i], d[order], rtol=1e-5)

    def test_f16_table(self):
        h = P()
        ok(lib.tokemb_table_convert(self.t, 1, ctypes.byref(h)))
        kvh = KeyedVectors(self.dim)
        kvh.add_vectors(["w%d" % i for i in range(self.n)], self.vecs.astype(np.float16).astype(np.float32))
        out, sc = self.nearest_ids(h, [3, 77], 8)
        for i, qi in enumerate([3, 77]):
            self.check_same(kvh.most_similar("w%d" % qi, topn=8), out[i], sc[i])
        lib.tokemb_table_free(h)


class TestDemoModel(unittest.TestCase):
    """The demo's fastText model (examples/data/tiny.vec): tokemb's neighbours are gensim's, and the
    committed file is what examples/data/make_tiny_vec.sh produces."""
    data = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "data")

    def test_neighbours_equal_gensim(self):
        path = os.path.join(self.data, "tiny.vec")
        kv = KeyedVectors.load_word2vec_format(path)
        t, v = P(), P()
        ok(lib.tokemb_vectors_load(path.encode(), 1, NO_PROGRESS, None, ctypes.byref(t), ctypes.byref(v)))
        n = lib.tokemb_table_rows(t)
        ids = np.arange(n, dtype=np.int64)
        out = np.empty((n, 5), np.int64)
        sc = np.empty((n, 5), np.float32)
        ok(lib.tokemb_nearest_ids(t, ptr(ids), n, 5, COSINE, 1, ptr(out), ptr(sc)))
        for i in range(n):
            ref = kv.most_similar(kv.index_to_key[i], topn=5)
            self.assertEqual([lib.tokemb_vocab_word(v, j, None).decode() for j in out[i]], [w for w, _ in ref])
            np.testing.assert_allclose(sc[i], [s for _, s in ref], atol=2e-6)
        self.assertEqual(lib.tokemb_vocab_word(v, out[kv.key_to_index["king"]][0], None), b"queen")
        lib.tokemb_table_free(t)
        lib.tokemb_vocab_free(v)

    def test_committed_model_is_reproducible(self):
        if not shutil.which("fasttext"):
            self.skipTest("fasttext binary not installed")
        with tempfile.TemporaryDirectory() as d:
            subprocess.run(["bash", os.path.join(self.data, "make_tiny_vec.sh"), d], check=True,
                           stdout=subprocess.DEVNULL)
            with open(os.path.join(d, "tiny.vec"), "rb") as a, open(os.path.join(self.data, "tiny.vec"), "rb") as b:
                self.assertEqual(a.read(), b.read())


if __name__ == "__main__":
    unittest.main()
