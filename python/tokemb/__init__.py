"""tokemb: token embedding tables and positional encoders (ctypes binding of libtokemb).

    import numpy as np, tokemb
    with tokemb.Table(6, 3) as t:
        t.init_normal(123)                 # == torch.manual_seed(123); nn.Embedding(6, 3)
        t.lookup([2, 3, 5, 1])             # float32 [4, 3]
    tokemb.load_sharded("ckpt/emb.index.json")   # a sharded checkpoint (tokemb.mpi) as one Table

The library is found through TOKEMB_LIBRARY, this package's folder, the repository's build*/ trees, or
the system loader path (see tokemb._lib). torch modules live in tokemb.torch (imported on demand).
"""
from . import _lib
from ._errors import (Cancelled, Error, FormatError, InvalidArgument, IoError, NoMemory, OutOfRange, Overflow, ReadOnly,
                      Unsupported)
from ._sigs import CONSTS as constants
from .table import BF16, F16, F32, NO_PADDING, Q8_ROW, Table
from .io import (Vocab, convert, load_npy, load_safetensors, load_vectors, nearest, nearest_ids, safetensors_names,
                 save_npy, save_safetensors, save_vectors)
from .vectors import Vectors
from .io import safetensors_metadata
from . import safetensors
from . import checkpoint
from .checkpoint import load_sharded
from .table import DType
from .posenc import Alibi, Learned, PositionalEncoding, Rope, Shaw, Sinusoidal, T5, embed, embed_backward
from . import _threads
from ._threads import backend as parallel_backend, follow_host_threads, set_parallel_for, use_host_openmp

__all__ = ["Table", "Error", "InvalidArgument", "OutOfRange", "NoMemory", "IoError", "FormatError", "Unsupported",
           "Overflow", "ReadOnly", "Cancelled", "Vocab", "load_npy", "save_npy", "load_safetensors",
           "save_safetensors", "safetensors_names", "load_vectors", "save_vectors", "nearest", "nearest_ids", "convert", "PositionalEncoding", "Sinusoidal", "Learned", "Rope", "Alibi", "T5", "Shaw",
           "embed", "embed_backward", "F32", "F16", "BF16", "Q8_ROW", "NO_PADDING", "constants", "version",
           "version_number", "set_num_threads", "get_num_threads", "follow_host_threads", "set_parallel_for", "use_host_openmp", "parallel_backend", "last_error", "status_string", "library_path",
           "Vectors", "DType", "safetensors_metadata", "safetensors", "checkpoint", "load_sharded"]

library_path = _lib.path
follow_host_threads()  # torch imported first: use torch.get_num_threads() (tokemb._threads)
__version__ = _lib.lib.tokemb_version_string().decode()


def version():
    """The loaded library's version string."""
    return _lib.lib.tokemb_version_string().decode()


def version_number() -> int:
    """The loaded library's version as one number (major * 10000 + minor * 100 + patch)."""
    return _lib.lib.tokemb_version_number()


def set_num_threads(n):
    """Threads the library's own loops use (0 = default: online CPUs). Results never depend on it."""
    _lib.check(_lib.lib.tokemb_set_num_threads(int(n)), "tokemb_set_num_threads")
    _threads.pin(int(n))


def get_num_threads() -> int:
    """Threads the library's own loops use."""
    return _lib.lib.tokemb_get_num_threads()


def last_error():
    """This thread's most recent library error text."""
    return _lib.last_error()


def status_string(status: int) -> str:
    """The text of a library status code."""
    return _lib.status_string(int(status))
