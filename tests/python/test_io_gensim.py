"""File interop, checked at test time against the reference tools: gensim's KeyedVectors
(save_word2vec_format binary/text, load_word2vec_format incl. no_header GloVe), fastText's .vec
output, and numpy's np.save/np.load (npy v1/v2, f4/f2, Fortran order)."""
import ctypes
import os
import shutil
import subprocess
import tempfile
import unittest

import numpy as np
from gensim.models import KeyedVectors

from tkctypes import NO_PROGRESS, P, TokembError, i64, lib, ok, ptr, sz

BIN, TXT, GLOVE = 0, 1, 2


def load_vectors(path, fmt):
    t, v = P(), P()
    ok(lib.tokemb_vectors_load(path.encode(), fmt, NO_PROGRESS, None, ctypes.byref(t), ctypes.byref(v)))
    rows, dim = lib.tokemb_table_rows(t), lib.tokemb_table_dim(t)
    arr = np.empty((rows, dim), np.float32)
    ok(lib.tokemb_table_read_rows(t, 0, rows, ptr(arr)))
    words = [lib.tokemb_vocab_word(v, i, None).decode("utf-8") for i in range(rows)]
    return t, v, arr, words


def free(t, v):
    lib.tokemb_table_free(t)
    lib.tokemb_vocab_free(v)


def make_kv(n=300, dim=17, seed=0):
    rng = np.random.default_rng(seed)
    words = ["w%d" % i for i in range(n - 4)] + ["king", "queen", "\u00e9t\u00e9", "\u65e5\u672c\u8a9e"]
    kv = KeyedVectors(dim)
    vecs = rng.standard_normal((n, dim)).astype(np.float32)
    vecs[0, :3] = [1e-30, -3.4028235e38, 0.1]
    kv.add_vectors(words, vecs)
    return kv, words, vecs


class TestGensimInterop(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def p(self, name):
        return os.path.join(self.dir, name)

    def test_gensim_files_load_identically(self):
        kv, words, vecs = make_kv()
        for binary, fmt in ((True, BIN), (False, TXT)):
            path = self.p("g.%s" % fmt)
            kv.save_word2vec_format(path, binary=binary)
            ref = KeyedVectors.load_word2vec_format(path, binary=binary)
            t, v, arr, got_words = load_vectors(path, fmt)
            self.assertEqual(got_words, list(ref.index_to_key))
            self.assertEqual(got_words, words)
            self.assertTrue(np.array_equal(arr.view(np.uint32), ref.vectors.view(np.uint32)), fmt)
            if binary:
                self.assertTrue(np.array_equal(arr.view(np.uint32), vecs.view(np.uint32)))
            free(t, v)

    def test_tokemb_files_load_in_gensim_identically(self):
        kv, words, vecs = make_kv(seed=1)
        t = P()
        ok(lib.tokemb_table_create(len(words), vecs.shape[1], 0, ctypes.byref(t)))
        ok(lib.tokemb_table_write_rows(t, 0, len(words), ptr(vecs)))
        v = P()
        ok(lib.tokemb_vocab_create(ctypes.byref(v)))
        for w in words:
            b = w.encode()
            ok(lib.tokemb_vocab_add(v, b, len(b), None))
        for fmt, kwargs in ((BIN, dict(binary=True)), (TXT, dict(binary=False)),
                            (GLOVE, dict(binary=False, no_header=True))):
            path = self.p("t.%d" % fmt)
            ok(lib.tokemb_vectors_save(t, v, path.encode(), fmt))
            ref = KeyedVectors.load_word2vec_format(path, **kwargs)
            self.assertEqual(list(ref.index_to_key), words)
            self.assertTrue(np.array_equal(ref.vectors.view(np.uint32), vecs.view(np.uint32)), fmt)
        free(t, v)

    def test_duplicates_and_bad_utf8_like_gensim(self):
        path = self.p("dup.txt")
        with open(path, "w") as f:
            f.write("5 2\na 1 2\nb 3 4\na 5 6\nc 7 8\nb 9 10\n")
        ref = KeyedVectors.load_word2vec_format(path)
        t, v, arr, words = load_vectors(path, TXT)
        # gensim keeps the first vector of a repeated word; 4.2 then fails to shrink its matrix and leaves
        # None keys with zero rows at the end (its log says "shrinking"): tokemb drops them.
        n = len(ref.key_to_index)
        self.assertEqual(n, 3)
        self.assertEqual(words, list(ref.index_to_key)[:n])
        self.assertTrue(all(k is None for k in ref.index_to_key[n:]))
        self.assertTrue(np.array_equal(arr, ref.vectors[:n]))
        free(t, v)
        with open(path, "wb") as f:
            f.write(b"1 2\nab\xff 1 2\n")
        with self.assertRaises(UnicodeDecodeError):
            KeyedVectors.load_word2vec_format(path)
        with self.assertRaises(TokembError) as cm:
            load_vectors(path, TXT)
        self.assertEqual(cm.exception.status, -5)
        self.assertIn("byte 6", str(cm.exception))

    def test_fasttext_vec(self):
        if not shutil.which("fasttext"):
            self.skipTest("fasttext binary not installed")
        corpus = self.p("corpus.txt")
        rng = np.random.default_rng(3)
        vocab = ["alpha", "beta", "gamma", "delta", "\u00e9psilon", "zeta", "eta", "theta"]
        with open(corpus, "w") as f:
            for _ in range(400):
                f.write(" ".join(rng.choice(vocab, 12)) + "\n")
        subprocess.run(["fasttext", "skipgram", "-input", corpus, "-output", self.p("ft"), "-dim", "12",
                        "-epoch", "2", "-minCount", "1", "-thread", "1", "-verbose", "0"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ref = KeyedVectors.load_word2vec_format(self.p("ft.vec"))
        t, v, arr, words = load_vectors(self.p("ft.vec"), TXT)
        self.assertEqual(words, list(ref.index_to_key))
        self.assertTrue(np.array_equal(arr.view(np.uint32), ref.vectors.view(np.uint32)))
        self.assertIn("</s>", words)
        free(t, v)


class TestNpyInterop(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def load(self, path, mmap=False):
        t = P()
        f = lib.tokemb_npy_mmap if mmap else lib.tokemb_npy_load
        ok(f(path.encode(), ctypes.byref(t)))
        rows, dim = lib.tokemb_table_rows(t), lib.tokemb_table_dim(t)
        out = np.empty((rows, dim), np.float32)
        ok(lib.tokemb_table_read_rows(t, 0, rows, ptr(out)))
        dt = lib.tokemb_table_dtype(t)
        return t, out, dt

    def test_numpy_written_files(self):
        rng = np.random.default_rng(5)
        a = rng.standard_normal((9, 13)).astype(np.float32)
        cases = [("v1f4.npy", a, (1, 0), 0), ("v2f4.npy", a, (2, 0), 0),
                 ("v1f2.npy", a.astype(np.float16), (1, 0), 1), ("v3f2.npy", a.astype(np.float16), (3, 0), 1)]
        for name, arr, ver, dt in cases:
            path = os.path.join(self.dir, name)
            with open(path, "wb") as f:
                np.lib.format.write_array(f, arr, version=ver)
            for mmap in (False, True):
                t, out, got_dt = self.load(path, mmap)
                self.assertEqual(got_dt, dt)
                self.assertTrue(np.array_equal(out, arr.astype(np.float32)), (name, mmap))
                lib.tokemb_table_free(t)
        # tokemb writes, numpy reads (f4 and f2)
        t = P()
        ok(lib.tokemb_table_create(9, 13, 0, ctypes.byref(t)))
        ok(lib.tokemb_table_write_rows(t, 0, 9, ptr(a)))
        h = P()
        ok(lib.tokemb_table_convert(t, 1, ctypes.byref(h)))
        for tab, want in ((t, a), (h, a.astype(np.float16))):
            path = os.path.join(self.dir, "out.npy")
            ok(lib.tokemb_npy_save(tab, path.encode()))
            got = np.load(path)
            self.assertEqual(got.dtype, want.dtype)
            self.assertTrue(np.array_equal(got.view(np.uint8), want.view(np.uint8)))
        lib.tokemb_table_free(t)
        lib.tokemb_table_free(h)

    def test_numpy_files_tokemb_rejects(self):
        rng = np.random.default_rng(6)
        a = rng.standard_normal((4, 3)).astype(np.float32)
        bad = [("fortran.npy", np.asfortranarray(a), "Fortran order"), ("f8.npy", a.astype(np.float64), "'<f8'"),
               ("be.npy", a.astype(">f4"), "big-endian"), ("1d.npy", a.ravel(), "1 dimensions"),
               ("i4.npy", a.astype(np.int32), "'<i4'")]
        for name, arr, needle in bad:
            path = os.path.join(self.dir, name)
            np.save(path, arr)
            with self.assertRaises(TokembError) as cm:
                self.load(path)
            self.assertEqual(cm.exception.status, -5, name)
            self.assertIn(needle, str(cm.exception))
        path = os.path.join(self.dir, "trunc.npy")
        np.save(path, a)
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) - 1)
        with self.assertRaises(TokembError) as cm:
            self.load(path, mmap=True)
        self.assertIn("has 47", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
