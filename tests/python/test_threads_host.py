"""tokemb follows the host's thread setting (tokemb._threads, docs/threading.md): torch.get_num_threads()
when torch is imported first, the library default (online CPUs) without torch; results stay the bits
of torch's index_select at every thread count."""
import os
import subprocess
import sys
import unittest

import numpy as np


def run(code):
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    if r.returncode:
        raise AssertionError(r.stderr)
    return r.stdout.split()


class HostThreads(unittest.TestCase):
    def test_follows_torch_imported_first(self):
        for n in (1, 2, 3):
            out = run("import torch; torch.set_num_threads(%d); import tokemb; print(tokemb.get_num_threads())" % n)
            self.assertEqual(out, [str(n)])

    def test_follow_again_after_torch_changes(self):
        out = run("import torch, tokemb; torch.set_num_threads(3); print(tokemb.follow_host_threads());"
                  "torch.set_num_threads(1); print(tokemb.follow_host_threads(), tokemb.get_num_threads())")
        self.assertEqual(out, ["3", "1", "1"])

    def test_torch_modules_follow_later_changes_unless_pinned(self):
        out = run("""
import torch
from tokemb.torch import Embedding
import tokemb
e = Embedding(1000, 64); ids = torch.randint(0, 1000, (4096,)); seen = []
for n in (1, 2, 1):
    torch.set_num_threads(n); e(ids); seen.append(tokemb.get_num_threads())
tokemb.set_num_threads(3); torch.set_num_threads(2); e(ids); seen.append(tokemb.get_num_threads())
tokemb.set_num_threads(0); e(ids); seen.append(tokemb.get_num_threads())
print(*seen)
""")
        self.assertEqual(out, ["1", "2", "1", "3", "2"])

    def test_torch_imported_through_tokemb_torch(self):
        out = run("import tokemb.torch, torch; torch.set_num_threads(2); import tokemb;"
                  "tokemb.torch.Embedding(10, 4)(torch.tensor([1])); print(tokemb.get_num_threads())")
        self.assertEqual(out, ["2"])

    def test_without_torch_library_default(self):
        out = run("import sys, os, tokemb; assert 'torch' not in sys.modules;"
                  "print(tokemb.get_num_threads(), os.sysconf('SC_NPROCESSORS_ONLN'))")
        self.assertEqual(out[0], out[1])

    def test_python_callable_hook_refused(self):
        import tokemb
        with self.assertRaises(TypeError):
            tokemb.set_parallel_for(lambda *a: None)
        tokemb.set_parallel_for(None)  # the built-in pool again

    def test_bits_at_every_thread_count(self):
        import torch
        import tokemb
        rng = np.random.default_rng(3)
        w = rng.standard_normal((1000, 64), dtype=np.float32)
        ids = rng.integers(0, 1000, 70000)
        ref = torch.index_select(torch.from_numpy(w), 0, torch.from_numpy(ids)).numpy()
        t = tokemb.Table.from_numpy(w)
        for n in (1, 2, 3, 4):
            tokemb.set_num_threads(n)
            np.testing.assert_array_equal(t.lookup(ids), ref)
        tokemb.follow_host_threads()

    def test_openmp_hook_same_bits(self):
        """A C hook given by address (bench/omp_hook.c, OpenMP): same bits as torch at 1-3 threads."""
        import ctypes
        import torch
        import tokemb
        hook = os.path.join(os.path.dirname(os.path.abspath(tokemb.library_path)), "bench", "libtokemb-omp-hook.so")
        if not os.path.exists(hook):
            self.skipTest("built without the benchmarks or without OpenMP")
        fn = ctypes.CDLL(hook).tokemb_omp_parallel_for
        rng = np.random.default_rng(4)
        w = rng.standard_normal((3000, 96), dtype=np.float32)
        ids = rng.integers(0, 3000, 90000)
        ref = torch.index_select(torch.from_numpy(w), 0, torch.from_numpy(ids)).numpy()
        t = tokemb.Table.from_numpy(w)
        tokemb.set_parallel_for(fn)
        try:
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                tokemb.set_num_threads(n)
                np.testing.assert_array_equal(t.lookup(ids), ref)
        finally:
            tokemb.set_parallel_for(None)
            tokemb.follow_host_threads()


if __name__ == "__main__":
    unittest.main()
