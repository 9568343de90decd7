"""safetensors files the way the `safetensors` package's numpy/torch helpers are used:

    from tokemb.safetensors import load_file, save_file, metadata
    tables = load_file("model.safetensors")                 # {name: tokemb.Table}, header order
    save_file(tables, "copy.safetensors", metadata={"format": "pt"})
    metadata("copy.safetensors")                             # {"format": "pt"}

Tables hold 2-D F32, F16 or BF16 tensors; a file with other tensors loads with names=[...] selecting the
tables (the error of load_file names the tensor that cannot be a table). Saves are atomic.
"""
from typing import Dict, Iterable, Mapping, Optional

from .io import load_safetensors, safetensors_metadata, safetensors_names, save_safetensors
from .table import PathLike, Table


def metadata(path: PathLike) -> Dict[str, str]:
    """The file's "__metadata__" as a dict (empty if it has none; a key written twice keeps the last
    value, as a JSON reader)."""
    return safetensors_metadata(path)


def load_file(path: PathLike, names: Optional[Iterable[str]] = None, mmap: bool = False) -> Dict[str, Table]:
    """{name: Table} for every tensor of the file (or the given names), in header order. mmap=True maps
    the file read-only instead of copying (each table keeps its own mapping)."""
    wanted = safetensors_names(path) if names is None else list(names)
    return {n: load_safetensors(path, n, mmap=mmap) for n in wanted}


def save_file(tensors: Mapping[str, Table], filename: PathLike, metadata: Optional[Mapping[str, str]] = None) -> None:
    """Atomic save of {name: Table} (insertion order) with optional str -> str metadata, as the
    safetensors package's save_file(tensors, filename, metadata=None)."""
    save_safetensors(tensors, filename, metadata)


__all__ = ["load_file", "save_file", "metadata"]
