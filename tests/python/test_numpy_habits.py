"""numpy habits of the Python package: Table.dtype as a name that also equals numpy's dtype, len(),
float64 inputs converted to float32 (as np.asarray(x, np.float32)), save_npy(path, table) in numpy's
order, Vocab repr, docstrings on every public method, py.typed; safetensors load_file / save_file /
metadata like the safetensors package, checked against a reference reader/writer of the format
written here from its specification (json + struct)."""
import importlib
import inspect
import json
import os
import struct
import tempfile
import unittest

import numpy as np

import tokemb
import tokemb.safetensors as st


def ref_write(path, tensors, metadata=None):
    """A .safetensors file per the format's specification: u64 header length, JSON header, data."""
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, a in tensors.items():
        b = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": {"float32": "F32", "float16": "F16", "int64": "I64"}[str(a.dtype)],
                        "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def ref_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


class TestNumpyHabits(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.TemporaryDirectory()

    def tearDown(self):
        self.d.cleanup()

    def p(self, name):
        return os.path.join(self.d.name, name)

    def test_dtype_is_a_name(self):
        for code, name, npd in ((tokemb.F32, "f32", np.float32), (tokemb.F16, "f16", np.float16),
                                (tokemb.BF16, "bf16", None), (tokemb.Q8_ROW, "q8_row", None)):
            t = tokemb.Table(4, 8, name)
            self.assertEqual(str(t.dtype), name)
            self.assertEqual(t.dtype, name)
            self.assertEqual(t.dtype, code)
            self.assertEqual(int(t.dtype), code)
            if npd is not None:
                self.assertEqual(t.dtype, npd)
                self.assertEqual(t.dtype.numpy, np.dtype(npd))
            else:
                self.assertIsNone(t.dtype.numpy)
                self.assertNotEqual(t.dtype, np.float32)
            self.assertIn("dtype=%s" % name, repr(t))
            # usable wherever a dtype is accepted
            self.assertEqual(tokemb.Table(2, 3, t.dtype).dtype, name)
        self.assertNotEqual(tokemb.Table(1, 1).dtype, "f16")

    def test_len(self):
        self.assertEqual(len(tokemb.Table(7, 3)), 7)
        self.assertEqual(len(tokemb.Table.from_numpy(np.zeros((5, 2)))), 5)

    def test_float64_inputs_converted(self):
        rng = np.random.default_rng(0)
        w64 = rng.standard_normal((6, 4))
        t = tokemb.Table(6, 4)
        t.write_rows(0, w64)
        np.testing.assert_array_equal(t.to_numpy(), w64.astype(np.float32))
        q64 = rng.standard_normal((3, 4))
        ids64, sc64 = t.nearest(q64, 2)
        ids32, sc32 = t.nearest(q64.astype(np.float32), 2)
        np.testing.assert_array_equal(ids64, ids32)
        np.testing.assert_array_equal(sc64, sc32)
        # a strided float32 view is copied, not refused
        big = rng.standard_normal((6, 8)).astype(np.float32)
        t.write_rows(0, big[:, ::2])
        np.testing.assert_array_equal(t.to_numpy(), big[:, ::2])
        with self.assertRaisesRegex(ValueError, "real numbers.*complex"):
            t.write_rows(0, np.zeros((1, 4), np.complex64))
        with self.assertRaisesRegex(ValueError, "float64.*from_numpy"):
            tokemb.Table.wrap(w64)

    def test_save_npy_numpy_order(self):
        t = tokemb.Table.from_numpy(np.arange(12, dtype=np.float32).reshape(4, 3))
        tokemb.save_npy(self.p("a.npy"), t)  # np.save(file, arr)
        np.testing.assert_array_equal(np.load(self.p("a.npy")), t.to_numpy())
        tokemb.save_npy(t, self.p("b.npy"))  # the older order still works
        np.testing.assert_array_equal(np.load(self.p("b.npy")), t.to_numpy())
        t.save_npy(self.p("c.npy"))
        np.testing.assert_array_equal(np.load(self.p("c.npy")), t.to_numpy())
        with self.assertRaisesRegex(TypeError, "np.save"):
            tokemb.save_npy(self.p("d.npy"), np.zeros((2, 2), np.float32))
        with self.assertRaisesRegex(TypeError, "path"):
            tokemb.save_npy(3, t)

    def test_vocab_repr(self):
        self.assertEqual(repr(tokemb.Vocab(["a", "b"])), "<tokemb.Vocab 2 words: ['a', 'b']>")
        self.assertEqual(repr(tokemb.Vocab("abcdefg")), "<tokemb.Vocab 7 words: ['a', 'b', 'c', 'd', 'e', ...]>")
        v = tokemb.Vocab(["x"])
        v.close()
        self.assertEqual(repr(v), "<tokemb.Vocab closed>")

    def test_docstrings_and_py_typed(self):
        missing = []
        for modname in ("table", "io", "posenc", "vectors", "safetensors"):
            mod = importlib.import_module("tokemb." + modname)
            for name in getattr(mod, "__all__", []) or [n for n in dir(mod) if not n.startswith("_")]:
                obj = getattr(mod, name)
                if getattr(obj, "__module__", None) != mod.__name__:
                    continue
                if (inspect.isfunction(obj) or inspect.isclass(obj)) and not inspect.getdoc(obj):
                    missing.append("%s.%s" % (modname, name))
                if inspect.isclass(obj):
                    for m, f in vars(obj).items():
                        if m.startswith("_") or not (inspect.isfunction(f) or isinstance(f, (property, classmethod,
                                                                                              staticmethod))):
                            continue
                        if not inspect.getdoc(getattr(f, "__func__", f)):
                            missing.append("%s.%s.%s" % (modname, name, m))
        self.maxDiff = None
        self.assertEqual(missing, [])
        self.assertTrue(os.path.isfile(os.path.join(os.path.dirname(tokemb.__file__), "py.typed")))


class TestSafetensorsFiles(unittest.TestCase):
    def setUp(self):
        self.d = tempfile.TemporaryDirectory()
        rng = np.random.default_rng(4)
        self.a = rng.standard_normal((5, 3)).astype(np.float32)
        self.b = rng.standard_normal((2, 7)).astype(np.float16)

    def tearDown(self):
        self.d.cleanup()

    def p(self, name):
        return os.path.join(self.d.name, name)

    def test_load_file_reads_reference_files(self):
        meta = {"format": "pt", "note": "ünïcode \"quoted\" \\ and\nnewline"}
        ref_write(self.p("r.safetensors"), {"emb": self.a, "pos": self.b}, meta)
        tabs = st.load_file(self.p("r.safetensors"))
        self.assertEqual(list(tabs), ["emb", "pos"])
        np.testing.assert_array_equal(tabs["emb"].to_numpy(), self.a)
        np.testing.assert_array_equal(tabs["pos"].to_numpy(), self.b.astype(np.float32))
        self.assertEqual(tabs["pos"].dtype, np.float16)
        self.assertEqual(st.metadata(self.p("r.safetensors")), meta)
        mm = st.load_file(self.p("r.safetensors"), names=["pos"], mmap=True)
        np.testing.assert_array_equal(mm["pos"].to_numpy(), self.b.astype(np.float32))
        ref_write(self.p("none.safetensors"), {"emb": self.a})
        self.assertEqual(st.metadata(self.p("none.safetensors")), {})
        ref_write(self.p("i64.safetensors"), {"emb": self.a, "ids": np.arange(4, dtype=np.int64).reshape(2, 2)})
        with self.assertRaisesRegex(tokemb.Unsupported, "ids.*I64"):
            st.load_file(self.p("i64.safetensors"))
        self.assertEqual(list(st.load_file(self.p("i64.safetensors"), names=["emb"])), ["emb"])

    def test_save_file_metadata_kept_on_resave(self):
        meta = {"format": "pt", "source": "ünïcode \"q\"\t"}
        tabs = {"emb": tokemb.Table.from_numpy(self.a), "pos": tokemb.Table.from_numpy(self.b, "f16")}
        st.save_file(tabs, self.p("s.safetensors"), metadata=meta)
        h = ref_header(self.p("s.safetensors"))
        self.assertEqual(h["__metadata__"], meta)
        self.assertEqual(list(h)[0], "__metadata__")
        self.assertEqual(h["emb"]["dtype"], "F32")
        self.assertEqual(h["pos"]["shape"], [2, 7])
        # re-save: load, save again with the metadata read back
        again = st.load_file(self.p("s.safetensors"))
        st.save_file(again, self.p("t.safetensors"), metadata=st.metadata(self.p("s.safetensors")))
        self.assertEqual(st.metadata(self.p("t.safetensors")), meta)
        with open(self.p("s.safetensors"), "rb") as f1, open(self.p("t.safetensors"), "rb") as f2:
            self.assertEqual(f1.read(), f2.read())
        st.save_file(again, self.p("u.safetensors"))
        self.assertNotIn("__metadata__", ref_header(self.p("u.safetensors")))
        with self.assertRaisesRegex(TypeError, "str to str"):
            st.save_file(again, self.p("v.safetensors"), metadata={"n": 3})
        with self.assertRaisesRegex(TypeError, "tokemb.Table"):
            st.save_file({"w": self.a}, self.p("v.safetensors"))
        self.assertFalse(os.path.exists(self.p("v.safetensors")))


if __name__ == "__main__":
    unittest.main()
