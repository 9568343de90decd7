"""Parts of a table initialised without the whole random stream (tokemb_table_init_normal_shard, MT19937
jump-ahead) against torch.manual_seed(s); nn.Embedding(V, D).weight computed here, bit for bit: row
blocks in the middle and at the tail, round-robin rows, column slices, D not a multiple of 16,
V * D < 16, and a table of 17 million values whose far rows are reached by jumps of > 2^22 draws."""
import unittest

import numpy as np
import torch

import tokemb


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def embedding(seed, rows, dim):
    torch.manual_seed(seed)
    return torch.nn.Embedding(rows, dim).weight.detach().numpy()


class InitShardTorch(unittest.TestCase):
    def check(self, w, seed, row0, n, step=1, col0=0, dim=None):
        rows, D = w.shape
        dim = D - col0 if dim is None else dim
        t = tokemb.Table(n, dim).init_normal_shard(seed, (rows, D), row0=row0, row_step=step, col0=col0)
        want = w[row0:row0 + (n - 1) * step + 1:step, col0:col0 + dim]
        np.testing.assert_array_equal(bits(t.numpy()), bits(want),
                                      err_msg="%s seed %d rows %d+l*%d (%d) cols %d+%d" %
                                      (w.shape, seed, row0, step, n, col0, dim))

    def test_blocks_slices_and_round_robin(self):
        shapes = [(1, 1), (3, 5), (2, 7), (1, 15), (1, 16), (17, 1), (4, 9), (6, 3), (10, 10), (100, 37),
                  (33, 64), (7, 130), (250, 17), (1000, 3)]
        for seed in (0, 123, 2**32 + 123):
            for rows, D in shapes:
                w = embedding(seed, rows, D)
                for P in (1, 2, 3, 4):
                    for r in range(min(P, rows)):
                        # contiguous block r of P (the middle ones and the last, inside the tail refill)
                        b0 = rows * r // P
                        b1 = rows * (r + 1) // P
                        if b1 > b0:
                            self.check(w, seed, b0, b1 - b0)
                        # round-robin rows r, r + P, ...
                        self.check(w, seed, r, (rows - r + P - 1) // P, step=P)
                    # column slices
                    for r in range(min(P, D)):
                        c0, c1 = D * r // P, D * (r + 1) // P
                        if c1 > c0:
                            self.check(w, seed, 0, rows, col0=c0, dim=c1 - c0)
                # a single last row and a middle window of a column slice
                self.check(w, seed, rows - 1, 1)
                if rows > 4 and D > 2:
                    self.check(w, seed, rows // 2 - 1, 3, col0=1, dim=D - 2)

    def test_far_rows_reached_by_jumps(self):
        rows, D = (1 << 18) + 1, 65  # 17,039,425 values (n % 16 = 1): offsets up to 2^24 draws
        w = embedding(11, rows, D)
        for row0, n, step in [(rows - 1, 1, 1), (rows - 40, 40, 1), (rows // 2 + 3, 5, 1), (70000, 3, 65537),
                              (100, 4, 80000)]:
            self.check(w, 11, row0, n, step=step)
        self.check(w, 11, rows - 3, 3, col0=60, dim=5)


if __name__ == "__main__":
    unittest.main()
