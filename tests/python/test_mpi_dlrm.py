"""python/examples/dlrm_mpi.py under mpirun: losses and final weights (sharded embedding and replicated
dense part) bitwise equal for 1 and 4 ranks (every sharding), and equal to a run without MPI on one
core tokemb.Table over the same global batches."""
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXAMPLE = os.path.join(REPO, "python", "examples", "dlrm_mpi.py")


def _mpi_library():
    env = os.environ.get("TOKEMB_MPI_LIBRARY")
    if env:
        return env if os.path.exists(env) else None
    lib = os.environ.get("TOKEMB_LIBRARY")
    if lib:
        hits = glob.glob(os.path.join(os.path.dirname(lib), "mpi", "libtokemb_mpi.so.*"))
        return hits[0] if hits else None
    hits = glob.glob(os.path.join(REPO, "build*", "mpi", "libtokemb_mpi.so.*"))
    return hits[0] if hits else None


def run_worker(case, np_, worker, *args):
    """Runs tests/python/<worker> under mpirun with np_ ranks and *args; asserts it exited 0 after its
    closing line "checked <np_> ranks, 0 failures" (mpi_worker_checks.finish)."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
               TOKEMB_MPI_LIBRARY=_mpi_library(), PYTHONPATH=os.path.join(REPO, "python"))
    cmd = ["mpirun", "-np", str(np_), "--oversubscribe", sys.executable, os.path.join(HERE, worker)] + [str(a) for a in args]
    r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    out = r.stdout.decode(errors="replace")
    case.assertEqual(r.returncode, 0, "np %d %s:\n%s" % (np_, " ".join(map(str, args)), out))
    case.assertIn("checked %d ranks, 0 failures" % np_, out)


def _why_skip():
    if shutil.which("mpirun") is None:
        return "mpirun not found (Debian: apt-get install openmpi-bin)"
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return "mpi4py not importable (Debian: apt-get install python3-mpi4py)"
    if _mpi_library() is None:
        return "libtokemb_mpi was not built (CMake did not find MPI): no build*/mpi/libtokemb_mpi.so.*"
    return None


@unittest.skipIf(_why_skip() is not None, _why_skip() or "")
class DlrmMpi(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="tokemb-dlrm-")
        cls.env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                       OMP_NUM_THREADS="1", TOKEMB_MPI_LIBRARY=_mpi_library(),
                       PYTHONPATH=os.path.join(REPO, "python"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_example(self, np_, sharding="row", extra=()):
        out = os.path.join(self.tmp, "np%s_%s.npz" % (np_, sharding))
        cmd = [sys.executable, EXAMPLE, "--steps", "4", "--sharding", sharding, "--out", out] + list(extra)
        if np_:
            cmd = ["mpirun", "-np", str(np_), "--oversubscribe"] + cmd
        r = subprocess.run(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        self.assertEqual(r.returncode, 0, r.stdout.decode(errors="replace"))
        with np.load(out) as z:
            return {k: z[k] for k in z.files}

    def assertBitwise(self, a, b, what):
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertEqual(a[k].dtype, b[k].dtype, "%s: %s" % (what, k))
            self.assertEqual(a[k].shape, b[k].shape, "%s: %s" % (what, k))
            diff = int(np.count_nonzero(a[k].view(np.uint32) != b[k].view(np.uint32)))
            self.assertEqual(diff, 0, "%s: %s differs in %d values" % (what, k, diff))

    def test_ranks_and_reference_agree_bitwise(self):
        one = self.run_example(1)
        ref = self.run_example(0, extra=["--no-mpi"])    # one core tokemb.Table, no MPI at all
        self.assertBitwise(one, ref, "mpirun -np 1 vs core table")
        for sharding in ("row", "row_modulo", "column"):
            four = self.run_example(4, sharding)
            self.assertBitwise(one, four, "mpirun -np 1 vs -np 4 (%s)" % sharding)
        # the run trains: the losses are finite, the embedding rows hit by the batches moved
        self.assertTrue(np.all(np.isfinite(one["losses"])))
        init = np.random.default_rng(7).standard_normal((1000, 8)).astype(np.float32) * 0.1
        moved = np.any(one["embedding"] != init, axis=1)
        self.assertGreater(int(moved.sum()), 10)
        self.assertLess(int(moved.sum()), 1000)  # untouched rows keep their values exactly


if __name__ == "__main__":
    unittest.main()
