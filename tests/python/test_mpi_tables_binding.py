"""tokemb.mpi.ShardedTables under mpirun: tests/python/mpi_tables_worker.py checks TABLE sharding (placement,
lookups, bags, owner gradients, fused steps with a different optimizer per table, the torch
ShardedEmbeddingBagCollection's forward and backward + step, agreed errors) against one
core tokemb.Table per whole table over the concatenated batches, bit for bit: 7 tables on 1 and 3 ranks
(more tables than ranks) and 2 tables on 3 ranks (an idle rank)."""
import unittest

from test_mpi_dlrm import _why_skip, run_worker


@unittest.skipIf(_why_skip() is not None, _why_skip() or "")
class MpiTablesBinding(unittest.TestCase):
    def test_against_core_tables(self):
        for np_, n_tables in ((1, 7), (3, 7), (3, 2)):
            run_worker(self, np_, "mpi_tables_worker.py", n_tables)

if __name__ == "__main__":
    unittest.main()
