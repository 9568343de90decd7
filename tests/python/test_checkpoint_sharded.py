"""Sharded checkpoints from Python: tokemb.load_sharded / tokemb.checkpoint.read against numpy for row
blocks, round-robin and column bands written with tokemb.save_safetensors + checkpoint.save_index; the
errors name the file and byte; and across separate mpirun runs (tokemb.mpi.ShardedTable.save at one
rank count, load at another, and tokemb.load_sharded in this process without MPI)."""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import tokemb
from tokemb import checkpoint

from test_mpi_dlrm import HERE, REPO, _mpi_library, _why_skip


def write_shards(folder, full, layout):
    """One .safetensors file per layout row (row_start, row_step, row_count, col_start, col_count)."""
    files = []
    for k, (r0, step, n, c0, cn) in enumerate(layout):
        name = "s%d.safetensors" % k
        part = np.ascontiguousarray(full[r0:r0 + step * (n - 1) + 1:step, c0:c0 + cn])
        tokemb.save_safetensors({"weight": tokemb.Table.from_numpy(part)}, os.path.join(folder, name))
        files.append(name)
    return files


class ShardedCheckpoint(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tokemb-ckpt-")
        self.full = np.random.default_rng(5).standard_normal((41, 7)).astype(np.float32)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def save(self, layout, name="t.index.json"):
        files = write_shards(self.tmp, self.full, layout)
        path = os.path.join(self.tmp, name)
        checkpoint.save_index(path, 41, 7, files, layout, generation=4)
        return path

    def check(self, path):
        np.testing.assert_array_equal(tokemb.load_sharded(path).numpy(), self.full)
        np.testing.assert_array_equal(checkpoint.read(path, (2, 3, 13), (1, 5)), self.full[2::3][:13, 1:6])
        np.testing.assert_array_equal(checkpoint.read(path, (40, 1, 1)), self.full[40:41])
        info = checkpoint.info(path)
        self.assertEqual((info["rows"], info["dim"], info["generation"]), (41, 7, 4))

    def test_row_blocks(self):
        self.check(self.save([(0, 1, 14, 0, 7), (14, 1, 14, 0, 7), (28, 1, 13, 0, 7)]))

    def test_round_robin(self):
        self.check(self.save([(r, 3, len(range(r, 41, 3)), 0, 7) for r in range(3)]))

    def test_column_bands(self):
        path = self.save([(0, 1, 41, 0, 3)] + [(r, 2, len(range(r, 41, 2)), 3, 4) for r in range(2)])
        self.check(path)
        self.assertEqual(checkpoint.info(path)["files"], ["s0.safetensors", "s1.safetensors", "s2.safetensors"])

    def test_errors(self):
        path = self.save([(0, 1, 20, 0, 7), (20, 1, 21, 0, 7)])
        os.remove(os.path.join(self.tmp, "s1.safetensors"))
        with self.assertRaisesRegex(tokemb.IoError, r"s1\.safetensors.*t\.index\.json' byte \d+"):
            tokemb.load_sharded(path)
        with open(path, "r+b") as f:
            f.truncate(50)
        with self.assertRaisesRegex(tokemb.FormatError, r"t\.index\.json' byte 50: expected"):
            tokemb.load_sharded(path)
        with self.assertRaisesRegex(tokemb.InvalidArgument, r"files\[1\]: rows from 19 overlap at row 19"):
            checkpoint.save_index(path, 41, 7, ["a", "b"], [(0, 1, 20, 0, 7), (19, 1, 22, 0, 7)])


@unittest.skipIf(_why_skip() is not None, _why_skip() or "")
class ShardedCheckpointMpi(unittest.TestCase):
    def test_save_and_load_at_other_rank_counts(self):
        tmp = tempfile.mkdtemp(prefix="tokemb-ckpt-mpi-")
        env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMP_NUM_THREADS="1",
                   TOKEMB_MPI_LIBRARY=_mpi_library(), PYTHONPATH=os.path.join(REPO, "python"))
        worker = os.path.join(HERE, "mpi_checkpoint_worker.py")
        rows, dim, seed = 53, 6, 9
        full = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)

        def run(np_, mode, path, sharding):
            cmd = ["mpirun", "-np", str(np_), "--oversubscribe", sys.executable, worker, mode, path, sharding,
                   str(rows), str(dim), str(seed)]
            r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
            out = r.stdout.decode(errors="replace")
            self.assertEqual(r.returncode, 0, "%s at np %d (%s):\n%s" % (mode, np_, sharding, out))
            self.assertIn("ok %d ranks" % np_, out)

        try:
            for save_np, save_sh, load_np, load_sh in ((3, "row", 2, "row_modulo"), (4, "row_modulo", 1, "row"),
                                                       (1, "row", 3, "row")):
                path = os.path.join(tmp, "np%d_%s.index.json" % (save_np, save_sh))
                run(save_np, "save", path, save_sh)
                self.assertEqual(len(checkpoint.info(path)["files"]), save_np)
                np.testing.assert_array_equal(tokemb.load_sharded(path).numpy(), full)  # no MPI here
                run(load_np, "load", path, load_sh)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
