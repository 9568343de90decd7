"""The library's thread count and runner inside host processes (docs/threading.md): the default follows
OMP_NUM_THREADS or the CPUs the process may use; tokemb.torch follows torch.get_num_threads() unless the
user pins a count; in a torch process the OpenMP runner is torch's own libgomp (one copy mapped); results
at every count are bitwise torch's. Each case runs in a fresh interpreter with a controlled environment
(ctest sets OMP_NUM_THREADS=1 for the other suites)."""
import os
import subprocess
import sys
import textwrap
import unittest

PY = sys.executable


def run(code, **env_changes):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    r = subprocess.run([PY, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError("child failed:\n" + r.stdout + r.stderr)
    return r.stdout.split()


class TestDefaults(unittest.TestCase):
    def test_default_is_the_cpus_the_process_may_use(self):
        got = run("import tokemb; print(tokemb.get_num_threads())")
        self.assertEqual(int(got[0]), len(os.sched_getaffinity(0)))

    def test_omp_num_threads_sets_the_default(self):
        self.assertEqual(run("import tokemb; print(tokemb.get_num_threads())", OMP_NUM_THREADS="3"), ["3"])
        self.assertEqual(run("import tokemb; print(tokemb.get_num_threads())", OMP_NUM_THREADS="5,2"), ["5"])
        # not a count: ignored, as OpenMP ignores it
        got = run("import tokemb; print(tokemb.get_num_threads())", OMP_NUM_THREADS="many")
        self.assertEqual(int(got[0]), len(os.sched_getaffinity(0)))

    def test_runner_is_openmp_and_shares_torchs_libgomp(self):
        got = run("""
            import torch, tokemb
            gomp = sorted({l.split()[-1] for l in open('/proc/self/maps') if 'libgomp' in l})
            print(tokemb.parallel_backend(), len(gomp))
        """)
        self.assertEqual(got, ["openmp", "1"])


class TestTorchFollows(unittest.TestCase):
    def test_modules_follow_torch_threads_unless_pinned(self):
        got = run("""
            import torch, tokemb
            from tokemb.torch import Embedding
            e = Embedding(1000, 64)
            ids = torch.randint(0, 1000, (4096,))
            out = []
            for n in (1, 2, 1):
                torch.set_num_threads(n); e(ids); out.append(tokemb.get_num_threads())
            tokemb.set_num_threads(3); torch.set_num_threads(2); e(ids); out.append(tokemb.get_num_threads())
            tokemb.set_num_threads(0); e(ids); out.append(tokemb.get_num_threads())
            print(*out)
        """)
        self.assertEqual(got, ["1", "2", "1", "3", "2"])

    def test_results_bitwise_equal_torch_at_every_thread_count(self):
        got = run("""
            import torch, tokemb
            import torch.nn.functional as F
            from tokemb.torch import Embedding, EmbeddingBag
            torch.manual_seed(0)
            e = Embedding(20000, 96); b = EmbeddingBag(20000, 96, mode="sum")
            b.weight.data.copy_(e.weight.data)
            ids = torch.randint(0, 20000, (65536,))
            offs = torch.arange(0, 65536, 16)
            res = []
            for n in (1, 2, 3):
                torch.set_num_threads(n)
                res.append(torch.equal(e(ids), F.embedding(ids, e.weight)))
                res.append(torch.equal(b(ids, offs), F.embedding_bag(ids, e.weight, offs, mode="sum")))
            print(*res)
        """)
        self.assertEqual(got, ["True"] * 6)


if __name__ == "__main__":
    unittest.main(verbosity=2)
