"""Sharded checkpoints without MPI: one table split over several .safetensors files plus a JSON index
(written by libtokemb_mpi's tokemb_mpi_table_save / tokemb.mpi.ShardedTable.save, or by
save_sharded_index after saving the shards yourself). Everything here is the core library's
tokemb_checkpoint_* functions: the index is parsed strictly and every shard's header is validated.

    import tokemb
    t = tokemb.load_sharded("ckpt/emb.index.json")          # the whole table, any rank count / sharding
    info = tokemb.checkpoint.info("ckpt/emb.index.json")     # {"rows", "dim", "generation", "files"}
    part = tokemb.checkpoint.read("ckpt/emb.index.json", rows=(0, 4, 10), cols=(2, 3))   # float32 [10, 3]
"""
import ctypes
from typing import Any, Dict, Sequence, Tuple

import numpy as np

from . import _lib
from ._arrays import ptr
from .io import _packed, _path, _new_table
from .table import PathLike, Table

__all__ = ["load_sharded", "info", "read", "save_index"]


def load_sharded(path: PathLike) -> Table:
    """The whole float32 table of the checkpoint whose index is `path` (tokemb_checkpoint_load), assembled
    from every shard whatever rank count and sharding saved it."""
    return _new_table("tokemb_checkpoint_load", _path(path))


def info(path: PathLike) -> Dict[str, Any]:
    """{"rows", "dim", "generation", "files"} of the index `path` (files: shard names in index order,
    relative to the index's folder). Validates the index, opens no shard."""
    r, d, g, n = ctypes.c_int64(), ctypes.c_int64(), ctypes.c_int64(), ctypes.c_size_t()
    _lib.check(_lib.fn("tokemb_checkpoint_info")(_path(path), ctypes.byref(r), ctypes.byref(d), ctypes.byref(g),
                                                 ctypes.byref(n)), "tokemb_checkpoint_info")
    files = _packed("tokemb_checkpoint_files", path)[0]
    return {"rows": r.value, "dim": d.value, "generation": g.value, "files": files}


def read(path: PathLike, rows: Tuple[int, int, int], cols: Tuple[int, int] = None) -> np.ndarray:
    """float32 [count, col_count]: the global rows start + i * step (rows = (start, step, count)) and the
    columns [col_start, col_start + col_count) (cols = (col_start, col_count); None: every column), read
    only from the shards holding them (tokemb_checkpoint_read)."""
    start, step, count = (int(v) for v in rows)
    if cols is None:
        cols = (0, info(path)["dim"])
    c0, cn = (int(v) for v in cols)
    out = np.empty((max(count, 0), max(cn, 0)), dtype=np.float32)
    _lib.check(_lib.fn("tokemb_checkpoint_read")(_path(path), start, step, count, c0, cn, ptr(out) if out.size else None),
               "tokemb_checkpoint_read")
    return out


def save_index(path: PathLike, rows: int, dim: int, files: Sequence[str], layout: Any, generation: int = 0) -> None:
    """Atomic write of the index of shards you saved yourself (tensor "weight" in each, e.g. with
    tokemb.save_safetensors): layout[k] = (row_start, row_step, row_count, col_start, col_count) of
    files[k] (tokemb_checkpoint_save_index; the files must tile the table, see docs/formats.md)."""
    lay = np.ascontiguousarray(np.asarray(layout, dtype=np.int64).reshape(-1, 5))
    if lay.shape[0] != len(files):
        raise ValueError("layout has %d rows for %d files" % (lay.shape[0], len(files)))
    names = (ctypes.c_char_p * max(len(files), 1))(*[f.encode("utf-8") for f in files])
    _lib.check(_lib.fn("tokemb_checkpoint_save_index")(_path(path), int(rows), int(dim), int(generation), len(files),
                                                       ctypes.cast(names, ctypes.c_void_p), ptr(lay)),
               "tokemb_checkpoint_save_index")
