"""tokemb.mpi under mpirun (1 and 3 ranks, every sharding; the collectives of the row shardings): tests/python/mpi_binding_worker.py checks
lookups, bags, owner gradients, fused steps and agreed errors against one core tokemb.Table over the
concatenated batch, bit for bit; mpi_collectives_worker.py the pipelined lookup, coalesced owner
gradient and tied logits."""
import unittest

from test_mpi_dlrm import _why_skip, run_worker


@unittest.skipIf(_why_skip() is not None, _why_skip() or "")
class MpiBinding(unittest.TestCase):
    def test_against_core_table(self):
        self._run("mpi_binding_worker.py")

    def test_collectives(self):
        """The pipelined lookup, the coalesced owner gradient and the tied logits (mpi_collectives_worker.py:
        against the core Table, a whole-table run on one rank, and float64)."""
        self._run("mpi_collectives_worker.py")

    def _run(self, worker):
        for np_ in (1, 3):
            for sharding in ("row", "row_modulo", "column") if worker == "mpi_binding_worker.py" else ("row", "row_modulo"):
                run_worker(self, np_, worker, sharding)

if __name__ == "__main__":
    unittest.main()
