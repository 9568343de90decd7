"""tokemb.mpi.ShardedTables under mpirun: tests/python/mpi_tables_worker.py checks TABLE sharding (placement,
lookups, bags, owner gradients, fused steps with a different optimizer per table, the torch
ShardedEmbeddingBagCollection's forward and backward + step, agreed errors) against one
core tokemb.Table per whole table over the concatenated batches, bit for bit: 7 tables on 1 and 3 ranks
(more tables than ranks) and 2 tables on 3 ranks (an idle rank)."""
import os
import subprocess
import sys
import unittest

from test_mpi_dlrm import HERE, REPO, _mpi_library, _why_skip


@unittest.skipIf(_why_skip() is not None, _why_skip() or "")
class MpiTablesBinding(unittest.TestCase):
    def test_against_core_tables(self):
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
                   TOKEMB_MPI_LIBRARY=_mpi_library(), PYTHONPATH=os.path.join(REPO, "python"))
        for np_, n_tables in ((1, 7), (3, 7), (3, 2)):
            cmd = ["mpirun", "-np", str(np_), "--oversubscribe", sys.executable,
                   os.path.join(HERE, "mpi_tables_worker.py"), str(n_tables)]
            r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
            out = r.stdout.decode(errors="replace")
            self.assertEqual(r.returncode, 0, "np %d, %d tables:\n%s" % (np_, n_tables, out))
            self.assertIn("checked %d ranks, 0 failures" % np_, out)


if __name__ == "__main__":
    unittest.main()
