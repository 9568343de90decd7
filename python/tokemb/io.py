"""Files (npy, safetensors, word2vec/GloVe), vocabularies, nearest neighbours, dtype conversion."""
import contextlib
import ctypes
import os
import signal
import threading
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import numpy as np

from . import _lib
from ._arrays import check_shape, f32_array, ids_array, ptr
from ._handle import Handle, Lifetime
from ._sigs import CONSTS
from . import _sigs
from ._errors import OutOfRange
from .table import ArrayLike, PathLike, Table, _dtype_code


def _path(p):
    p = os.fspath(p)
    return p.encode("utf-8") if isinstance(p, str) else p


def _new_table(fname, *args):
    h = ctypes.c_void_p()
    _lib.check(_lib.fn(fname)(*args, ctypes.byref(h)), fname)
    return Table._adopt(h.value)


def load_npy(path: PathLike, mmap: bool = False) -> Table:
    """A table from a 2-D '<f4'/'<f2' C-order .npy file: a copy, or with mmap=True a read-only
    zero-copy mapping (owned by the table)."""
    return _new_table("tokemb_npy_mmap" if mmap else "tokemb_npy_load", _path(path))


def save_npy(path: Any, table: Any) -> None:
    """Atomic save of an F32/F16 table as .npy, in numpy's argument order: save_npy(path, table) as
    np.save(file, arr). The older order save_npy(table, path) is accepted too (the types tell them
    apart); anything else raises TypeError."""
    if isinstance(path, Table) and not isinstance(table, Table):
        path, table = table, path
    if not isinstance(table, Table):
        raise TypeError("save_npy(path, table) needs a tokemb.Table, got %s (for a numpy array use np.save, or "
                        "tokemb.Table.from_numpy(array) first)" % type(table).__name__)
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError("save_npy(path, table): path must be a str, bytes or os.PathLike, got %s"
                        % type(path).__name__)
    _lib.check(_lib.fn("tokemb_npy_save")(table._p, _path(path)), "tokemb_npy_save")


def load_safetensors(path: PathLike, name: Optional[str] = None, mmap: bool = False) -> Table:
    """Tensor `name` (None: the file's only tensor) of a .safetensors file as a table (copy or mmap)."""
    n = None if name is None else name.encode("utf-8")
    return _new_table("tokemb_safetensors_mmap" if mmap else "tokemb_safetensors_load", _path(path), n)


def _packed(fname: str, path: PathLike) -> Tuple[List[str], int]:
    """The NUL-separated strings a size-query function (tokemb_safetensors_names/_metadata) returns."""
    f = _lib.fn(fname)
    n, nb = ctypes.c_size_t(), ctypes.c_size_t()
    p = _path(path)
    _lib.check(f(p, None, 0, ctypes.byref(n), ctypes.byref(nb)), fname)
    buf = ctypes.create_string_buffer(max(nb.value, 1))
    _lib.check(f(p, buf, len(buf), ctypes.byref(n), ctypes.byref(nb)), fname)
    return [w.decode("utf-8") for w in buf.raw[:nb.value].split(b"\0")[:-1]], n.value


def safetensors_names(path: PathLike) -> List[str]:
    """Tensor names of a .safetensors file, in header order."""
    return _packed("tokemb_safetensors_names", path)[0]


def safetensors_metadata(path: PathLike) -> Dict[str, str]:
    """The "__metadata__" of a .safetensors file as a dict (empty if none; a key written twice keeps the
    last value, as a JSON reader)."""
    words, n = _packed("tokemb_safetensors_metadata", path)
    return {words[2 * i]: words[2 * i + 1] for i in range(n)}


def save_safetensors(tensors: Mapping[str, Table], path: PathLike, metadata: Optional[Mapping[str, str]] = None) -> None:
    """Atomic save of {name: Table} (insertion order) as one .safetensors file, with optional str -> str
    metadata (the header's "__metadata__")."""
    items = list(tensors.items())
    if not items:
        raise ValueError("save_safetensors needs at least one tensor")
    for name, t in items:
        if not isinstance(name, str):
            raise TypeError("tensor names must be str, got %s" % type(name).__name__)
        if not isinstance(t, Table):
            raise TypeError("tensor %r must be a tokemb.Table, got %s (Table.from_numpy converts arrays)"
                            % (name, type(t).__name__))
    meta = dict(metadata or {})
    for k, v in meta.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise TypeError("metadata must map str to str, got %r: %r" % (k, v))
    tabs = (ctypes.c_void_p * len(items))(*[t._p for _, t in items])
    names = (ctypes.c_char_p * len(items))(*[n.encode("utf-8") for n, _ in items])
    mk = (ctypes.c_char_p * max(len(meta), 1))(*[k.encode("utf-8") for k in meta])
    mv = (ctypes.c_char_p * max(len(meta), 1))(*[v.encode("utf-8") for v in meta.values()])
    _lib.check(_lib.fn("tokemb_safetensors_save_ex")(ctypes.cast(tabs, ctypes.c_void_p), ctypes.cast(names, ctypes.c_void_p),
                                                     len(items), ctypes.cast(mk, ctypes.c_void_p),
                                                     ctypes.cast(mv, ctypes.c_void_p), len(meta), _path(path)),
               "tokemb_safetensors_save_ex")


class Vocab(Lifetime):
    """Words (str, stored as UTF-8) <-> ids in insertion order. v["king"] -> id, v[3] -> word."""

    _what = "vocabulary"
    _where = "tokemb.Vocab"

    def __init__(self, words: Iterable[Union[str, bytes]] = ()) -> None:
        h = ctypes.c_void_p()
        _lib.check(_lib.fn("tokemb_vocab_create")(ctypes.byref(h)), "tokemb_vocab_create")
        self._h = Handle(h.value, "tokemb_vocab_free")
        for w in words:
            self.add(w)

    @classmethod
    def _adopt(cls, p):
        v = cls.__new__(cls)
        v._h = Handle(p, "tokemb_vocab_free")
        return v

    def __len__(self) -> int:
        return _lib.fn("tokemb_vocab_size")(self._p)

    def __repr__(self) -> str:
        if self.closed:
            return "<tokemb.Vocab closed>"
        n = len(self)
        head = ", ".join(repr(self.word(i)) for i in range(min(n, 5)))
        return "<tokemb.Vocab %d words: [%s%s]>" % (n, head, ", ..." if n > 5 else "")

    def add(self, word: Union[str, bytes]) -> int:
        """Appends word (str or UTF-8 bytes) with the next id and returns the id; a word already present
        raises tokemb.InvalidArgument."""
        b = word.encode("utf-8") if isinstance(word, str) else bytes(word)
        i = ctypes.c_int64()
        _lib.check(_lib.fn("tokemb_vocab_add")(self._p, b, len(b), ctypes.byref(i)), "tokemb_vocab_add")
        return i.value

    def find(self, word: Union[str, bytes]) -> int:
        """The id of word, or -1."""
        b = word.encode("utf-8") if isinstance(word, str) else bytes(word)
        return _lib.fn("tokemb_vocab_find")(self._p, b, len(b))

    def __contains__(self, word: Union[str, bytes]) -> bool:
        return self.find(word) >= 0

    def word(self, i: int) -> str:
        """The word of id i (IndexError outside [0, len))."""
        n = ctypes.c_size_t()
        w = _lib.fn("tokemb_vocab_word")(self._p, int(i), ctypes.byref(n))
        if w is None:
            raise IndexError("word id %d is outside [0, %d)" % (i, len(self)))
        return w.decode("utf-8")

    def __getitem__(self, key: Union[str, bytes, int]) -> Union[int, str]:
        if isinstance(key, (str, bytes)):
            i = self.find(key)
            if i < 0:
                raise KeyError(key)
            return i
        return self.word(key)

    def __iter__(self) -> Iterator[str]:
        return (self.word(i) for i in range(len(self)))

    def words(self) -> List[str]:
        """Every word in id order (a list)."""
        return list(self)


_FORMATS = {"word2vec_binary": 0, "word2vec": 0, "bin": 0, "word2vec_text": 1, "text": 1, "vec": 1, "glove": 2,
            "auto": 3}


def _format(f):
    if isinstance(f, str):
        try:
            return _FORMATS[f.lower()]
        except KeyError:
            raise ValueError("unknown vectors format %r (%s)" % (f, ", ".join(_FORMATS))) from None
    return int(f)


_UNICODE = {"strict": 0, "ignore": 1, "replace": 2}


def _progress_cb(progress: Optional[Callable[[int, int], Any]], raised: List[BaseException]):
    """A C progress callback around progress(done, total) (True cancels). An exception inside it, or one
    that a signal handler raised while the library worked (see _interruptible), cancels the call; the
    exception is kept in `raised` for the caller to re-raise once the C call has returned."""
    def _cb(user, done, total):
        try:
            if raised:
                return 1
            return 1 if progress is not None and progress(done, total) else 0
        except BaseException as e:  # noqa: BLE001 - handed back after the C call returns
            raised.append(e)
            return 1
    return _sigs.tokemb_progress_fn(_cb)


@contextlib.contextmanager
def _interruptible(raised: List[BaseException]):
    """While a long C call runs on the main thread, SIGINT's Python handler (KeyboardInterrupt by
    default) runs inside the progress callback; an exception it raises there would be lost by ctypes, so
    the handler is wrapped to record it in `raised`, which makes the next callback cancel the call."""
    old = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    if not callable(old):
        yield
        return

    def handler(signum, frame):
        try:
            old(signum, frame)
        except BaseException as e:  # noqa: BLE001 - re-raised after the C call returns
            raised.append(e)
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _vectors_format(path, format, binary, no_header):
    if format is not None:
        if binary is not None or no_header is not None:
            raise ValueError("pass either format= or binary=/no_header=, not both")
        return _format(format)
    if no_header:
        if binary:
            raise ValueError("no_header=True is only available for text files (GloVe); binary word2vec files "
                             "always have a header")
        return _FORMATS["glove"]
    if binary is None:
        return _FORMATS["auto"]
    return _FORMATS["word2vec_binary"] if binary else _FORMATS["word2vec_text"]


def load_vectors(path: PathLike, format: Union[str, int, None] = None, progress: Optional[Callable[[int, int], Any]] = None,
                 *, binary: Optional[bool] = None, no_header: Optional[bool] = None, limit: Optional[int] = None,
                 unicode_errors: str = "strict") -> Tuple[Table, "Vocab"]:
    """(Table, Vocab) from a word2vec binary/text (fastText .vec) or GloVe file.

    With neither `format` nor `binary`/`no_header` the format is detected from the file (a "count dim"
    header, then text or binary records; no header means GloVe). As gensim's load_word2vec_format:
    binary=True/False picks word2vec binary/text, no_header=True a GloVe-style text file, `limit` reads
    at most that many vectors, unicode_errors='ignore'/'replace' reads words that are not valid UTF-8
    (Python's bytes.decode errors=). progress(bytes_done, bytes_total) may return True to cancel
    (tokemb.Cancelled); an exception inside it cancels and is re-raised."""
    if unicode_errors not in _UNICODE:
        raise ValueError("unicode_errors must be 'strict', 'ignore' or 'replace', got %r" % (unicode_errors,))
    if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
        raise ValueError("limit must be a non-negative int or None, got %r" % (limit,))
    fmt = _vectors_format(path, format, binary, no_header)
    raised: List[BaseException] = []
    cb = _progress_cb(progress, raised)
    t, v = ctypes.c_void_p(), ctypes.c_void_p()
    with _interruptible(raised):
        st = _lib.fn("tokemb_vectors_load_ex")(_path(path), fmt, int(limit or 0), _UNICODE[unicode_errors], cb, None,
                                               ctypes.byref(t), ctypes.byref(v))
    if raised:
        raise raised[0]
    _lib.check(st, "tokemb_vectors_load_ex")
    return Table._adopt(t.value), Vocab._adopt(v.value)


def save_vectors(table: Table, vocab: "Vocab", path: PathLike, format: Union[str, int] = "word2vec_binary") -> None:
    """Atomic save of table rows with their words (len(vocab) == rows)."""
    _lib.check(_lib.fn("tokemb_vectors_save")(table._p, vocab._p, _path(path), _format(format)), "tokemb_vectors_save")


def _metric(m):
    if isinstance(m, str):
        key = "TOKEMB_METRIC_" + m.upper()
        if key not in CONSTS:
            raise ValueError("unknown metric %r (cosine, dot)" % m)
        return CONSTS[key]
    return int(m)


def nearest(table: Table, queries: ArrayLike, k: int = 10, metric: Union[str, int] = "cosine",
            exclude_ids: Optional[ArrayLike] = None,
            progress: Optional[Callable[[int, int], Any]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k rows for each query vector: (ids int64 [n, k], scores float32 [n, k]), best first.

    Cosine scores an all-zero row NaN (as gensim), ranked after every number. progress(done, total) is
    called after every block of scored (query, row) pairs; returning True cancels (tokemb.Cancelled).
    Ctrl-C (KeyboardInterrupt) stops the search within one block."""
    q = f32_array(queries, "queries")
    single = q.ndim == 1
    if single:
        q = q.reshape(1, -1)
    check_shape(q, "queries", (None, table.dim))
    n = q.shape[0]
    ex = None
    if exclude_ids is not None:
        ex = ids_array(np.atleast_1d(exclude_ids), "exclude_ids", allow_i32=False)
        check_shape(ex, "exclude_ids", (n,))
    ids = np.empty((n, int(k)), np.int64)
    sc = np.empty((n, int(k)), np.float32)
    raised: List[BaseException] = []
    cb = _progress_cb(progress, raised)
    with _interruptible(raised):
        st = _lib.fn("tokemb_nearest_ex")(table._p, ptr(q), n, int(k), _metric(metric), ptr(ex), cb, None, ptr(ids),
                                          ptr(sc))
    if raised:
        raise raised[0]
    _lib.check(st, "tokemb_nearest_ex")
    return (ids[0], sc[0]) if single else (ids, sc)


def nearest_ids(table: Table, ids: ArrayLike, k: int = 10, metric: Union[str, int] = "cosine",
                exclude_self: bool = True,
                progress: Optional[Callable[[int, int], Any]] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Top-k rows for table rows used as queries (gensim most_similar(word) with exclude_self).
    progress and Ctrl-C as in nearest()."""
    a = ids_array(np.atleast_1d(ids), allow_i32=False)
    check_shape(a, "ids", ndim=1)
    if a.size and (a.min() < 0 or a.max() >= table.rows):
        bad = a[(a < 0) | (a >= table.rows)][0]
        raise OutOfRange(CONSTS["TOKEMB_OUT_OF_RANGE"], "id %d is outside [0, %d)" % (bad, table.rows),
                         "tokemb.nearest_ids")
    q = (np.concatenate([table.read_rows(int(i), 1) for i in a]) if a.size  # no lookup: max_norm would write
         else np.empty((0, table.dim), np.float32))
    oi, sc = nearest(table, q, k, metric, a if exclude_self else None, progress)
    return (oi[0], sc[0]) if np.ndim(ids) == 0 else (oi, sc)


def convert(table: Table, dtype: Any) -> Table:
    """A new table holding `table` converted to dtype ("f32", "f16", "bf16", "q8_row")."""
    return _new_table("tokemb_table_convert", table._p, _dtype_code(dtype))


# Methods on Table for the same operations.
Table.load_npy = staticmethod(load_npy)
def _table_save_npy(self: Table, path: PathLike) -> None:
    """Atomic save of this F32/F16 table as .npy (tokemb.save_npy(path, table))."""
    save_npy(path, self)


def _table_save_safetensors(self: Table, path: PathLike, name: str = "weight",
                            metadata: Optional[Mapping[str, str]] = None) -> None:
    """Atomic save of this table as the tensor `name` of a .safetensors file (optional metadata)."""
    save_safetensors({name: self}, path, metadata)


Table.save_npy = _table_save_npy
Table.load_safetensors = staticmethod(load_safetensors)
Table.save_safetensors = _table_save_safetensors
Table.nearest = nearest
Table.nearest_ids = nearest_ids
Table.convert = convert

__all__ = ["load_npy", "save_npy", "load_safetensors", "safetensors_names", "safetensors_metadata", "save_safetensors", "Vocab",
           "load_vectors", "save_vectors", "nearest", "nearest_ids", "convert"]
