"""The seed walkthrough through the Python binding: torch.manual_seed(123); nn.Embedding(6, 3); lookup
of [2, 3, 5, 1]; an out-of-range id; the one-hot x W view. Run: PYTHONPATH=python python3 python/examples/seed.py"""
import numpy as np

import tokemb

np.set_printoptions(precision=4, suppress=True)
with tokemb.Table(6, 3) as emb:
    emb.init_normal(123)  # torch.manual_seed(123); nn.Embedding(6, 3)
    print("embedding.weight =\n", emb.numpy())
    ids = np.array([2, 3, 5, 1])
    out = emb.lookup(ids)
    print("embedding(torch.tensor([2, 3, 5, 1])) =\n", out)
    try:
        emb.lookup([6])
    except IndexError as e:
        print("embedding(torch.tensor([6])) ->", type(e).__name__ + ":", e.message)
    print("one-hot x W equals the gather bit for bit:", np.array_equal(emb.lookup_onehot(ids).view(np.uint32),
                                                                         out.view(np.uint32)))
