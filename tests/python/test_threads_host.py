"""tokemb follows the host's thread setting (tokemb._threads, docs/threading.md): torch.get_num_threads()
when torch is imported first, the library default (online CPUs) without torch; results stay the bits
of torch's index_select at every thread count."""
import os
import subprocess
import sys
import unittest

import numpy as np


def run(code, **extra_env):
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    env.update(extra_env)
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


    def test_shares_torchs_openmp_by_default(self):
        """With torch (OpenMP backend) imported, tokemb's loops go to torch's OpenMP workers; without torch,
        or after the user chose a backend, the built-in pool stays."""
        self.assertEqual(run("import torch, tokemb; print(tokemb.parallel_backend())"), ["openmp"])
        self.assertEqual(run("import tokemb.torch, tokemb; print(tokemb.parallel_backend())"), ["openmp"])
        self.assertEqual(run("import tokemb, sys; assert 'torch' not in sys.modules; print(tokemb.parallel_backend())"),
                         ["pool"])
        self.assertEqual(run("import tokemb; tokemb.set_parallel_for(None); import tokemb.torch;"
                             "print(tokemb.parallel_backend())"), ["pool"])

    def test_loops_run_on_torchs_workers(self):
        """Observed, not assumed: with passive waits torch's idle OpenMP workers sleep, so each region that
        uses one is a voluntary context switch of that worker. tokemb's lookups wake them, start no thread
        of their own, and give index_select's bits; after set_parallel_for(None) the pool's worker
        appears and torch's stay asleep."""
        out = run("""
import os, time, torch, numpy as np
torch.set_num_threads(2)
w = torch.randn(4096, 256); ids = torch.randint(0, 4096, (40000,))
ref = torch.index_select(w, 0, ids)                    # starts torch's worker
import tokemb
def tasks(): return set(os.listdir('/proc/self/task'))
def switches(ts):
    n = 0
    for t in ts:
        for line in open('/proc/self/task/%s/status' % t):
            if line.startswith('voluntary_ctxt_switches'): n += int(line.split()[1])
    return n
t = tokemb.Table.wrap(w.numpy())
torch_workers = tasks() - {str(os.getpid())}
time.sleep(0.2); before_tasks = tasks(); s0 = switches(torch_workers)
for _ in range(20): assert np.array_equal(t.lookup(ids.numpy()), ref.numpy())
print(tokemb.parallel_backend(), len(tasks() - before_tasks), switches(torch_workers) - s0 >= 10)
tokemb.set_parallel_for(None); time.sleep(0.2)  # the last region's worker back asleep
s1 = switches(torch_workers)
for _ in range(20): assert np.array_equal(t.lookup(ids.numpy()), ref.numpy())
print(len(tasks() - before_tasks), switches(torch_workers) - s1)
""", OMP_WAIT_POLICY="PASSIVE")
        self.assertEqual(out, ["openmp", "0", "True", "1", "0"])

    def test_forked_child_after_openmp(self):
        """A fork()ed child (DataLoader workers) does not hang in libgomp: the library uses its pool there."""
        out = run("""
import os, signal, torch, numpy as np, tokemb
torch.set_num_threads(2)
w = torch.randn(2048, 512); ids = torch.randint(0, 2048, (20000,))
t = tokemb.Table.wrap(w.numpy()); ref = torch.index_select(w, 0, ids).numpy()
assert np.array_equal(t.lookup(ids.numpy()), ref)
pid = os.fork()
if pid == 0:
    signal.alarm(60)
    os._exit(0 if np.array_equal(t.lookup(ids.numpy()), ref) else 3)
_, st = os.waitpid(pid, 0)
print(tokemb.parallel_backend(), os.waitstatus_to_exitcode(st))
""")
        self.assertEqual(out, ["openmp", "0"])


if __name__ == "__main__":
    unittest.main()
