"""tokemb.Vectors against gensim 4's KeyedVectors (Debian's python3-gensim) on the same real files
(gensim's own test data in /work/shared/data/gensim_upstream): loading (format detection, binary=,
no_header=, limit=, unicode_errors=), lookups, similarity, analogies, doesnt_match, distances,
add_vectors and saves that gensim reads back; zero vectors; progress, cancel and Ctrl-C of the search."""
import os
import tempfile
import threading
import time
import unittest
import _thread

import numpy as np
from gensim.models import KeyedVectors

import tokemb

DATA = os.environ.get("TOKEMB_GENSIM_DATA", "/work/shared/data/gensim_upstream")
# file -> gensim's loader options for it
FILES = {
    "test_glove.txt": dict(no_header=True),
    "euclidean_vectors.bin": dict(binary=True),
    "crime-and-punishment.vec": {},
    "lee_fasttext.vec": {},
    "pang_lee_polarity_fasttext.vec": dict(unicode_errors="ignore"),
    "EN.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt": {},
}


def path(name):
    return os.path.join(DATA, name)


def gensim_load(name, **kw):
    opts = dict(FILES[name])
    opts.update(kw)
    return KeyedVectors.load_word2vec_format(path(name), **opts)


@unittest.skipUnless(os.path.isdir(DATA), "gensim's test data not found (set TOKEMB_GENSIM_DATA)")
class TestVectorsGensim(unittest.TestCase):
    def assertSameVectors(self, kv, g):
        self.assertEqual(kv.index_to_key, g.index_to_key)
        self.assertEqual(kv.key_to_index, g.key_to_index)
        np.testing.assert_array_equal(kv.vectors, g.vectors)

    def assertSameHits(self, got, want, tol=2e-6):
        self.assertEqual([w for w, _ in got], [w for w, _ in want])
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=tol)

    def test_load_detected_and_explicit(self):
        for name, opts in FILES.items():
            with self.subTest(name):
                g = gensim_load(name)
                ue = opts.get("unicode_errors", "strict")
                self.assertSameVectors(tokemb.Vectors.load_word2vec_format(path(name), unicode_errors=ue), g)
                self.assertSameVectors(tokemb.Vectors.load_word2vec_format(path(name), unicode_errors=ue, **{
                    k: v for k, v in opts.items() if k != "unicode_errors"} or {"binary": False}), g)

    def test_binary_default_on_text_is_not_needed(self):
        # gensim's binary default would fail on a text file; detection reads it
        kv = tokemb.Vectors.load(path("test_glove.txt"))
        self.assertEqual(len(kv), 76)
        with self.assertRaises(tokemb.FormatError):
            tokemb.Vectors.load_word2vec_format(path("test_glove.txt"), binary=True)

    def test_limit(self):
        for name in ("euclidean_vectors.bin", "lee_fasttext.vec", "test_glove.txt"):
            for limit in (1, 10, 75):
                with self.subTest(name=name, limit=limit):
                    ue = FILES[name].get("unicode_errors", "strict")
                    kv = tokemb.Vectors.load_word2vec_format(path(name), limit=limit, unicode_errors=ue)
                    self.assertSameVectors(kv, gensim_load(name, limit=limit))

    def test_unicode_errors(self):
        name = "pang_lee_polarity_fasttext.vec"
        with self.assertRaisesRegex(tokemb.FormatError, "not valid UTF-8"):
            tokemb.Vectors.load_word2vec_format(path(name))
        for ue in ("ignore", "replace"):
            with self.subTest(ue):
                kv = tokemb.Vectors.load_word2vec_format(path(name), unicode_errors=ue)
                self.assertSameVectors(kv, gensim_load(name, unicode_errors=ue))
        with self.assertRaises(ValueError):
            tokemb.Vectors.load_word2vec_format(path(name), unicode_errors="surrogateescape")

    def test_cyrillic_lookups(self):
        name = "crime-and-punishment.vec"
        kv, g = tokemb.Vectors.load_word2vec_format(path(name)), gensim_load(name)
        for w in g.index_to_key[::37]:
            self.assertIn(w, kv)
            np.testing.assert_array_equal(kv[w], g[w])
            np.testing.assert_allclose(kv.get_vector(w, norm=True), g.get_vector(w, norm=True), rtol=1e-6)
        self.assertNotIn("нет-такого-слова", kv)
        self.assertEqual(len(kv), len(g))
        with self.assertRaises(KeyError):
            kv["нет-такого-слова"]
        np.testing.assert_array_equal(kv[g.index_to_key[:3]], g[g.index_to_key[:3]])

    def test_similarity_and_most_similar(self):
        for name in ("lee_fasttext.vec", "EN.1-10.cbow1_wind5_hs0_neg10_size300_smpl1e-05.txt",
                     "euclidean_vectors.bin"):
            kv, g = tokemb.Vectors.load_word2vec_format(path(name)), gensim_load(name)
            words = g.index_to_key
            with self.subTest(name):
                for a, b in ((words[1], words[2]), (words[10], words[19])):
                    self.assertAlmostEqual(kv.similarity(a, b), float(g.similarity(a, b)), places=6)
                    self.assertAlmostEqual(kv.distance(a, b), float(g.distance(a, b)), places=6)
                for w in words[:40:7]:
                    self.assertSameHits(kv.most_similar(w, topn=7), g.most_similar(w, topn=7))
                    self.assertSameHits(kv.similar_by_word(w, topn=3), g.similar_by_word(w, topn=3))
                # analogies: 3CosAdd over unit vectors, input words excluded
                pos, neg = [words[3], words[8]], [words[5]]
                self.assertSameHits(kv.most_similar(positive=pos, negative=neg, topn=10),
                                    g.most_similar(positive=pos, negative=neg, topn=10))
                self.assertSameHits(kv.most_similar(positive=[(words[3], 2.0)], negative=[words[4]], topn=5),
                                    g.most_similar(positive=[(words[3], 2.0)], negative=[words[4]], topn=5))
                vec = g[words[12]] * 3 - g[words[13]]
                self.assertSameHits(kv.similar_by_vector(vec, topn=6), g.similar_by_vector(vec, topn=6))
                self.assertSameHits(kv.most_similar(words[16], topn=5, restrict_vocab=15),
                                    g.most_similar(words[16], topn=5, restrict_vocab=15))
                np.testing.assert_allclose(kv.most_similar(words[2], topn=None), g.most_similar(words[2], topn=None),
                                           rtol=1e-5, atol=1e-6)
                group = [words[4], words[9], words[13], words[17]]
                self.assertEqual(kv.doesnt_match(group), g.doesnt_match(group))
                np.testing.assert_allclose(kv.distances(words[1]), g.distances(words[1]), rtol=1e-5, atol=1e-6)
                np.testing.assert_allclose(kv.distances(words[1], words[5:9]), g.distances(words[1], words[5:9]),
                                           rtol=1e-5, atol=1e-6)
                self.assertEqual(kv.rank(words[1], words[7]), g.rank(words[1], words[7]))
                self.assertAlmostEqual(kv.n_similarity(words[1:3], words[5:8]),
                                       float(g.n_similarity(words[1:3], words[5:8])), places=6)

    def test_zero_vectors_never_ranked(self):
        rng = np.random.default_rng(3)
        vecs = rng.standard_normal((40, 8)).astype(np.float32)
        vecs[[5, 17]] = 0.0
        words = ["w%d" % i for i in range(40)]
        g = KeyedVectors(8)
        g.add_vectors(words, vecs)
        kv = tokemb.Vectors(vector_size=8)
        kv.add_vectors(words, vecs)
        for q in ("w0", "w3", "w33"):
            # gensim scores zero rows NaN and ranks them last; so does tokemb (before: 0, above negatives)
            self.assertSameHits(kv.most_similar(q, topn=37), g.most_similar(q, topn=37))
            hits = kv.most_similar(q, topn=39)
            self.assertEqual({w for w, _ in hits[-2:]}, {"w5", "w17"})
            self.assertTrue(all(np.isnan(s) for _, s in hits[-2:]))
            self.assertTrue(np.isnan(g.most_similar(q, topn=39)[-1][1]))

    def test_add_vectors_and_save_roundtrip(self):
        name = "crime-and-punishment.vec"
        kv, g = tokemb.Vectors.load_word2vec_format(path(name)), gensim_load(name)
        rng = np.random.default_rng(5)
        new = rng.standard_normal((3, kv.vector_size)).astype(np.float32)
        keys = ["новое", g.index_to_key[0], "extra"]
        kv.add_vectors(keys, new)
        g.add_vectors(keys, new)
        self.assertSameVectors(kv, g)
        kv.add_vectors(keys[1:2], new[2:3], replace=True)
        g.add_vectors(keys[1:2], new[2:3], replace=True)
        self.assertSameVectors(kv, g)
        kv["один"] = new[0]
        g["один"] = new[0]
        self.assertSameVectors(kv, g)
        self.assertSameHits(kv.most_similar("новое", topn=5), g.most_similar("новое", topn=5))
        with tempfile.TemporaryDirectory() as d:
            for binary in (False, True):
                p = os.path.join(d, "kv.bin" if binary else "kv.txt")
                kv.save_word2vec_format(p, binary=binary)
                self.assertSameVectors(tokemb.Vectors.load(p), KeyedVectors.load_word2vec_format(p, binary=binary))
                self.assertSameVectors(tokemb.Vectors.load(p), g)
            p = os.path.join(d, "glove.txt")
            kv.save_word2vec_format(p, write_header=False)
            self.assertSameVectors(KeyedVectors.load_word2vec_format(p, no_header=True), g)

    def test_empty_and_bad_arguments(self):
        kv = tokemb.Vectors(vector_size=4)
        self.assertEqual(len(kv), 0)
        self.assertNotIn("a", kv)
        with self.assertRaises(ValueError):
            kv.add_vectors(["a", "b"], np.zeros((3, 4)))
        with self.assertRaises(KeyError):
            kv.get_vector("a")
        with self.assertRaises(ValueError):
            tokemb.Vectors.load_word2vec_format(path("test_glove.txt"), limit=-1)
        with self.assertRaises(ValueError):
            tokemb.Vectors.load_word2vec_format(path("euclidean_vectors.bin"), binary=True, no_header=True)


class TestSearchProgress(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        rng = np.random.default_rng(1)
        cls.rows, cls.dim = 60000, 64
        cls.t = tokemb.Table.from_numpy(rng.standard_normal((cls.rows, cls.dim)).astype(np.float32))
        cls.q = rng.standard_normal((600, cls.dim)).astype(np.float32)

    def test_progress_reports_and_matches_plain(self):
        seen = []
        ids, sc = tokemb.nearest(self.t, self.q[:300], 5, progress=lambda d, tot: seen.append((d, tot)))
        self.assertEqual(seen[0], (0, 300 * self.rows))
        self.assertEqual(seen[-1], (300 * self.rows, 300 * self.rows))
        self.assertEqual([d for d, _ in seen], sorted(d for d, _ in seen))
        self.assertGreater(len(seen), 10)
        # the same answers as brute force in float64
        w = self.t.to_numpy().astype(np.float64)
        s = (self.q[:300].astype(np.float64) @ w.T) / np.linalg.norm(w, axis=1) / \
            np.linalg.norm(self.q[:300].astype(np.float64), axis=1)[:, None]
        np.testing.assert_array_equal(ids[:, 0], s.argmax(axis=1))

    def test_cancel_through_callback(self):
        calls = []

        def stop(done, total):
            calls.append(done)
            return done > 0
        with self.assertRaises(tokemb.Cancelled) as cm:
            tokemb.nearest(self.t, self.q, 5, progress=stop)
        self.assertIn("cancelled by the progress callback", str(cm.exception))
        # called at the start and after each of the 30 row-norm blocks (done = 0), stopped after the first
        # scored block of 256 queries x 2048 rows
        self.assertEqual(calls, [0] * 31 + [256 * 2048])

    def test_exception_in_callback_is_raised(self):
        def boom(done, total):
            if done:
                raise RuntimeError("boom")
        with self.assertRaisesRegex(RuntimeError, "boom"):
            tokemb.nearest(self.t, self.q, 5, progress=boom)

    def test_ctrl_c_stops_within_a_second(self):
        big = tokemb.Table(400000, 128)
        big.init_normal(1)
        q = np.random.default_rng(2).standard_normal((2048, 128)).astype(np.float32)
        fired = []

        def interrupt():
            time.sleep(0.3)
            fired.append(time.monotonic())
            _thread.interrupt_main()  # what Ctrl-C does: KeyboardInterrupt in the main thread
        th = threading.Thread(target=interrupt)
        t0 = time.monotonic()
        th.start()
        with self.assertRaises(KeyboardInterrupt):
            tokemb.nearest(big, q, 10)  # uninterrupted: ~100 GFLOP, minutes on this machine
        stopped = time.monotonic()
        th.join()
        self.assertTrue(fired)
        # one block is 256 queries x 2048 rows x 128 (67 MFLOP): well under a second even on a busy machine
        self.assertLess(stopped - fired[0], 1.0, "stopped %.2f s after the interrupt" % (stopped - fired[0]))
        self.assertLess(stopped - t0, 5.0)


if __name__ == "__main__":
    unittest.main()
