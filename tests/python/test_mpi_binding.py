"""tokemb.mpi under mpirun (1 and 3 ranks, every sharding; the collectives of the row shardings): tests/python/mpi_binding_worker.py checks
lookups, bags, owner gradients, fused steps and agreed errors against one core tokemb.Table over the
concatenated batch, bit for bit; mpi_collectives_worker.py the pipelined lookup, coalesced owner
gradient and tied logits."""
import os
import subprocess
import sys
import unittest

from test_mpi_dlrm import HERE, REPO, _mpi_library, _why_skip


@unittest.skipIf(_why_skip() is not None, _why_skip() or "")
class MpiBinding(unittest.TestCase):
    def test_against_core_table(self):
        self._run("mpi_binding_worker.py")

    def test_collectives(self):
        """The pipelined lookup, the coalesced owner gradient and the tied logits (mpi_collectives_worker.py:
        against the core Table, a whole-table run on one rank, and float64)."""
        self._run("mpi_collectives_worker.py")

    def _run(self, worker):
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
                   TOKEMB_MPI_LIBRARY=_mpi_library(), PYTHONPATH=os.path.join(REPO, "python"))
        for np_ in (1, 3):
            for sharding in ("row", "row_modulo", "column") if worker == "mpi_binding_worker.py" else ("row", "row_modulo"):
                cmd = ["mpirun", "-np", str(np_), "--oversubscribe", sys.executable, os.path.join(HERE, worker), sharding]
                r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
                out = r.stdout.decode(errors="replace")
                self.assertEqual(r.returncode, 0, "np %d %s:\n%s" % (np_, sharding, out))
                self.assertIn("checked %d ranks, 0 failures" % np_, out)


if __name__ == "__main__":
    unittest.main()
