"""Issue 15, checked against the reference readers at test time: a text vector value loads in tokemb
exactly when gensim's KeyedVectors.load_word2vec_format (Python float() then numpy float32) loads it,
with the same float32 bits; an npy header numpy's np.load refuses, tokemb refuses too, and what both
accept gives the same array."""
import ctypes
import io
import os
import shutil
import struct
import tempfile
import unittest
import warnings

import numpy as np
from gensim.models import KeyedVectors

from tkctypes import NO_PROGRESS, P, lib, ptr

TXT = 1

VALUES = [
    # Python float() / gensim accept
    "1", "-0", "+.5e-3", "1.", ".5", "1e5", "1E+05", "00012", "1_0", "1e1_0", "1_000.2_5", "inf", "Infinity",
    "-iNF", "+infinity", "nan", "+nan", "-NaN", "1e400", "4e-50", "\u0661\u0662", "\uff13.5", "1" * 200,
    "0." + "1" * 300, "3.4028235e38", "1e-45", "\u20001", "\u3000-2.5\u2028", "1\x1f", "\x85+7",
    # both refuse
    "0x1p3", "0x10", "nan(7)", "nan()", "1e", "1d0", "1,5", "infinit", "--1", "1__0", "_1", "1_", "1._5",
    "1_.5", "1e_1", "e5", ".", "+", "-", "0x", "1.2.3", "1e5.0", "inff", "nana", "\u00bd", "1\u00a0",
]


class TestValueGrammarMatchesGensim(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def gensim_value(self, path):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kv = KeyedVectors.load_word2vec_format(path)
            return kv["w"][0]
        except ValueError:
            return None

    def tokemb_value(self, path):
        t, v = P(), P()
        st = lib.tokemb_vectors_load(path.encode(), TXT, NO_PROGRESS, None, ctypes.byref(t), ctypes.byref(v))
        if st != 0:
            self.assertEqual(st, -5, lib.tokemb_last_error().decode())  # TOKEMB_FORMAT
            return None
        out = np.empty(1, np.float32)
        lib.tokemb_table_read_rows(t, 0, 1, ptr(out))
        lib.tokemb_table_free(t)
        lib.tokemb_vocab_free(v)
        return out[0]

    def test_both_directions(self):
        accepted = 0
        for k, val in enumerate(VALUES):
            path = os.path.join(self.dir, "v%d.txt" % k)
            with open(path, "w", encoding="utf-8") as f:
                f.write("1 1\nw %s\n" % val)
            want, got = self.gensim_value(path), self.tokemb_value(path)
            try:
                float(val)
                py_ok = True
            except ValueError:
                py_ok = False
            self.assertEqual(want is not None, py_ok, "gensim and float() disagree on %r" % val)
            self.assertEqual(got is not None, want is not None, "tokemb vs gensim on %r" % val[:40])
            if want is not None:
                accepted += 1
                self.assertEqual(np.float32(got).tobytes(), np.float32(want).tobytes(), repr(val[:40]))
        self.assertGreater(accepted, 20)


def npy_bytes(d, major=1, minor=0, after=b"", data=None):
    body = d.encode("latin-1")
    pre = 10 if major == 1 else 12
    total = pre + len(body) + 1 + len(after)
    padded = (total + 63) // 64 * 64
    body = body + b" " * (padded - total) + b"\n" + after
    hl = struct.pack("<H", len(body)) if major == 1 else struct.pack("<I", len(body))
    if data is None:
        data = np.arange(6, dtype=np.float32).tobytes()
    return b"\x93NUMPY" + bytes([major, minor]) + hl + body + data


HDR = "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }"
NPY_CASES = {
    "plain": npy_bytes(HDR % "(2, 3)"),
    "v2": npy_bytes(HDR % "(2, 3)", major=2),
    "v3": npy_bytes(HDR % "(2, 3)", major=3),
    "minor 1": npy_bytes(HDR % "(2, 3)", minor=1),
    "v2 minor 255": npy_bytes(HDR % "(2, 3)", major=2, minor=255),
    "major 4": npy_bytes(HDR % "(2, 3)", major=4),
    "major 0": npy_bytes(HDR % "(2, 3)", major=0),
    "2L v1": npy_bytes(HDR % "(2L, 3L)"),
    "2L v2": npy_bytes(HDR % "(2L, 3L)", major=2),
    "2L v3": npy_bytes(HDR % "(2L, 3L)", major=3),
    "leading zero": npy_bytes(HDR % "(02, 3)"),
    "zeros": npy_bytes(HDR % "(2, 03)"),
    "double quotes": npy_bytes('{"descr": "<f4", "fortran_order": False, "shape": (2, 3)}'),
    "spaces after newline": npy_bytes(HDR % "(2, 3)", after=b"   "),
    "x after newline": npy_bytes(HDR % "(2, 3)", after=b"x"),
    "NUL in padding": npy_bytes(HDR % "(2, 3)" + "\0"),
    "list shape": npy_bytes(HDR % "[2, 3]"),
    "fortran 0": npy_bytes("{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3), }"),
    "underscore": npy_bytes(HDR % "(2, 0_3)"),
    "f2": npy_bytes("{'descr': '<f2', 'fortran_order': False, 'shape': (2, 3), }",
                    data=np.arange(6, dtype=np.float16).tobytes()),
}


class TestNpyRefusesWhatNumpyRefuses(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_crafted_headers(self):
        both = 0
        for name, data in NPY_CASES.items():
            try:
                want = np.load(io.BytesIO(data))
            except ValueError:
                want = None
            path = os.path.join(self.dir, "c.npy")
            with open(path, "wb") as f:
                f.write(data)
            t = P()
            st = lib.tokemb_npy_load(path.encode(), ctypes.byref(t))
            if want is None:
                self.assertEqual(st, -5, "%s: numpy refuses it, tokemb returned %d" % (name, st))
                self.assertIn("byte", lib.tokemb_last_error().decode(), name)
            elif st == 0:
                both += 1
                rows, dim = lib.tokemb_table_rows(t), lib.tokemb_table_dim(t)
                got = np.empty((rows, dim), np.float32)
                lib.tokemb_table_read_rows(t, 0, rows, ptr(got))
                self.assertEqual(got.shape, want.shape, name)
                self.assertTrue(np.array_equal(got, want.astype(np.float32)), name)
            lib.tokemb_table_free(t)
        for must in ("minor 1", "v2 minor 255", "major 4", "2L v3", "leading zero"):
            self.assertRaises(ValueError, np.load, io.BytesIO(NPY_CASES[must]))
        self.assertGreaterEqual(both, 6)


if __name__ == "__main__":
    unittest.main()
