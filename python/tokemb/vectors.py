"""tokemb.Vectors: word vectors by word (a table plus its vocabulary), with the methods gensim 4's
KeyedVectors users reach for, giving the same answers on the same files.

    kv = tokemb.Vectors.load_word2vec_format("vectors.bin")       # format detected, or binary=True/False
    kv["king"], "king" in kv, len(kv), kv.key_to_index["king"], kv.index_to_key[0]
    kv.most_similar(positive=["king", "woman"], negative=["man"], topn=5)   # analogies (3CosAdd)
    kv.similarity("king", "queen"), kv.doesnt_match(["breakfast", "lunch", "cereal", "dinner"])

Differences from gensim, on purpose: the search runs in the library (tokemb_nearest_ex, float32 BLAS),
reports progress and stops on Ctrl-C; ties between equal scores go to the lower index.
"""
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np

from .io import Vocab, _FORMATS, load_vectors, nearest, save_vectors
from .table import ArrayLike, PathLike, Table

Key = Union[str, int, np.integer]
Progress = Optional[Callable[[int, int], Any]]


def _unitvec(v: np.ndarray) -> np.ndarray:
    """v / |v| (float32), a zero vector unchanged (gensim's matutils.unitvec)."""
    n = np.linalg.norm(v)
    return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)


class Vectors:
    """Word vectors: row i of `table` is the vector of word `vocab[i]`.

    Vectors(table, vocab) joins an F32 table and a vocabulary of the same length; Vectors(vector_size=d)
    starts empty (add words with add_vectors). Load files with Vectors.load_word2vec_format /
    Vectors.load. `vectors` is a float32 numpy view of the rows (as KeyedVectors.vectors)."""

    def __init__(self, table: Optional[Table] = None, vocab: Optional[Vocab] = None, *,
                 vector_size: Optional[int] = None) -> None:
        if table is None:
            if vector_size is None or int(vector_size) < 1:
                raise ValueError("Vectors() needs a table and vocabulary, or vector_size >= 1 for an empty set")
            self._dim = int(vector_size)
            self._table: Optional[Table] = None
            self._vocab = vocab if vocab is not None else Vocab()
            if len(self._vocab):
                raise ValueError("an empty Vectors(vector_size=...) takes no vocabulary")
        else:
            if vocab is None:
                raise ValueError("Vectors(table, vocab): the vocabulary is missing")
            if len(vocab) != table.rows:
                raise ValueError("the vocabulary has %d words but the table %d rows" % (len(vocab), table.rows))
            if table.dtype != "f32":
                table = table.convert("f32")
            self._table, self._vocab, self._dim = table, vocab, table.dim
        self._keys: Optional[List[str]] = None
        self._index: Optional[Dict[str, int]] = None
        self._norms: Optional[np.ndarray] = None

    # ---- loading and saving -----------------------------------------------------------------------
    @classmethod
    def load_word2vec_format(cls, fname: PathLike, fvocab: None = None, binary: Optional[bool] = None,
                             encoding: str = "utf8", unicode_errors: str = "strict", limit: Optional[int] = None,
                             no_header: Optional[bool] = None, progress: Progress = None) -> "Vectors":
        """gensim's KeyedVectors.load_word2vec_format: binary=True/False (None: detected from the file),
        no_header=True for GloVe-style text, limit=N reads the first N vectors, unicode_errors='ignore'
        or 'replace' for words that are not valid UTF-8. Only UTF-8 files and no fvocab are supported.
        progress(bytes_done, bytes_total) may return True to cancel (tokemb.Cancelled)."""
        if fvocab is not None:
            raise NotImplementedError("fvocab (word counts) is not supported: tokemb keeps no counts")
        if encoding.lower().replace("-", "") not in ("utf8",):
            raise ValueError("only UTF-8 files are supported, got encoding=%r" % (encoding,))
        t, v = load_vectors(fname, binary=binary, no_header=no_header, limit=limit, unicode_errors=unicode_errors,
                            progress=progress)
        return cls(t, v)

    @classmethod
    def load(cls, path: PathLike, format: Union[str, int] = "auto", **options: Any) -> "Vectors":
        """Vectors from a word2vec binary/text, fastText .vec or GloVe file; format is one of "auto"
        (detect), "word2vec_binary", "word2vec_text", "glove". options: limit, unicode_errors, progress."""
        t, v = load_vectors(path, format=format, **options)
        return cls(t, v)

    def save_word2vec_format(self, fname: PathLike, fvocab: None = None, binary: bool = False,
                             write_header: bool = True) -> None:
        """gensim's save_word2vec_format: word2vec text (default) or binary=True; write_header=False writes
        GloVe-style text (no "count dim" line). Atomic (temp file + rename). Values written in text read
        back to the same float32."""
        if fvocab is not None:
            raise NotImplementedError("fvocab (word counts) is not supported: tokemb keeps no counts")
        if not write_header and binary:
            raise ValueError("write_header=False is only available for text files")
        fmt = "word2vec_binary" if binary else ("word2vec_text" if write_header else "glove")
        self.save(fname, fmt)

    def save(self, path: PathLike, format: Union[str, int] = "word2vec_binary") -> None:
        """Atomic save in format "word2vec_binary", "word2vec_text" or "glove"."""
        if _FORMATS.get(str(format).lower(), format) == _FORMATS["auto"]:
            raise ValueError("save needs an explicit format (word2vec_binary, word2vec_text, glove)")
        if not len(self):
            raise ValueError("cannot save an empty set of vectors")
        save_vectors(self.table, self._vocab, path, format)

    # ---- the mapping ----------------------------------------------------------------------------
    @property
    def table(self) -> Table:
        """The F32 tokemb.Table holding the vectors (row i = word i)."""
        if self._table is None:
            raise ValueError("the set of vectors is empty")
        return self._table

    @property
    def vocab(self) -> Vocab:
        """The tokemb.Vocab of the words (id i = row i)."""
        return self._vocab

    @property
    def vectors(self) -> np.ndarray:
        """A float32 [len, vector_size] view of the vectors (writes change the table)."""
        if self._table is None:
            return np.zeros((0, self._dim), np.float32)
        return self._table.numpy()

    @property
    def vector_size(self) -> int:
        """The dimension of the vectors."""
        return self._dim

    @property
    def index_to_key(self) -> List[str]:
        """The words in index order (a list, as gensim's)."""
        if self._keys is None:
            self._keys = list(self._vocab)
        return self._keys

    @property
    def key_to_index(self) -> Dict[str, int]:
        """word -> index (a dict, as gensim's)."""
        if self._index is None:
            self._index = {w: i for i, w in enumerate(self.index_to_key)}
        return self._index

    def __len__(self) -> int:
        return len(self._vocab)

    def __contains__(self, key: object) -> bool:
        """True for a known word (or an int index in range, as gensim's has_index_for)."""
        return isinstance(key, (str, int, np.integer)) and self.has_index_for(key)  # type: ignore[arg-type]

    def has_index_for(self, key: Key) -> bool:
        """True if get_index(key) succeeds (a known word, or an int index in range)."""
        return self.get_index(key, -1) >= 0

    def __iter__(self):
        return iter(self.index_to_key)

    def __repr__(self) -> str:
        return "<tokemb.Vectors %d x %d>" % (len(self), self._dim)

    def get_index(self, key: Key, default: Optional[int] = None) -> int:
        """The index of a word (or an int index, checked), else `default`, else KeyError."""
        if isinstance(key, str):
            i = self._vocab.find(key)
            if i >= 0:
                return i
        elif isinstance(key, (int, np.integer)) and not isinstance(key, bool) and 0 <= key < len(self):
            return int(key)
        if default is not None:
            return default
        raise KeyError("Key '%s' not present" % (key,))

    def get_vector(self, key: Key, norm: bool = False) -> np.ndarray:
        """The vector of `key` (a float32 copy); norm=True divides it by its length (a zero vector gives
        NaN, as gensim)."""
        i = self.get_index(key)
        v = self.table.read_rows(i, 1)[0]
        if norm:
            with np.errstate(invalid="ignore", divide="ignore"):
                v = v / self.norms[i]
        return v

    word_vec = get_vector

    def __getitem__(self, key: Union[Key, Sequence[Key]]) -> np.ndarray:
        """kv["word"] -> vector [dim]; kv[["a", "b"]] -> [2, dim]."""
        if isinstance(key, (str, int, np.integer)):
            return self.get_vector(key)
        return np.vstack([self.get_vector(k) for k in key])

    def __setitem__(self, keys: Union[Key, List[Key]], weights: ArrayLike) -> None:
        """kv[key] = vector: add_vectors with replace=True."""
        if not isinstance(keys, list):
            keys = [keys]
            weights = np.asarray(weights).reshape(1, -1)
        self.add_vectors(keys, weights, replace=True)

    @property
    def norms(self) -> np.ndarray:
        """Length of every vector (float32 [len]), computed once and kept until vectors are added."""
        if self._norms is None:
            self._norms = np.linalg.norm(self.vectors, axis=1).astype(np.float32)
        return self._norms

    def fill_norms(self, force: bool = False) -> None:
        """Computes the vector lengths (again with force=True, e.g. after writing to `vectors`)."""
        if force:
            self._norms = None
        _ = self.norms

    def get_normed_vectors(self) -> np.ndarray:
        """vectors / norms (a float32 copy)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.vectors / self.norms[:, None]

    def add_vectors(self, keys: Union[Key, List[str]], weights: ArrayLike, replace: bool = False) -> None:
        """Appends words with their vectors (gensim's add_vectors): a word already present keeps its
        vector unless replace=True. weights: one vector, a list of vectors or a 2-D array."""
        if isinstance(keys, (str, int, np.integer)):
            keys = [keys]  # type: ignore[list-item]
            weights = np.asarray(weights).reshape(1, -1)
        w = np.asarray(weights, dtype=np.float32)
        if w.ndim != 2 or w.shape != (len(keys), self._dim):
            raise ValueError("weights must have shape (%d, %d) for %d keys, got %s"
                             % (len(keys), self._dim, len(keys), w.shape))
        for k in keys:
            if not isinstance(k, str):
                raise TypeError("keys must be str, got %s" % type(k).__name__)
        new, seen = [], set()
        for j, k in enumerate(keys):
            if k not in self and k not in seen:
                new.append(j)
                seen.add(k)
        if new:
            n0 = len(self)
            t = Table(n0 + len(new), self._dim)
            if n0:
                t.write_rows(0, self.vectors)
            t.write_rows(n0, w[new])
            for j in new:
                self._vocab.add(keys[j])
            self._table = t
        if replace:
            for j, k in enumerate(keys):
                if j not in new:
                    self.table.write_rows(self.get_index(k), w[j:j + 1])
        self._keys = self._index = self._norms = None

    # ---- similarity ---------------------------------------------------------------------------
    def similarity(self, w1: Key, w2: Key) -> float:
        """Cosine similarity of two words."""
        return float(np.dot(_unitvec(self[w1]), _unitvec(self[w2])))

    def distance(self, w1: Key, w2: Key) -> float:
        """Cosine distance 1 - similarity(w1, w2)."""
        return 1 - self.similarity(w1, w2)

    def n_similarity(self, ws1: Sequence[Key], ws2: Sequence[Key]) -> float:
        """Cosine similarity of the means of two lists of words."""
        if not (len(ws1) and len(ws2)):
            raise ZeroDivisionError("At least one of the passed list is empty.")
        m1 = self.get_mean_vector(ws1, pre_normalize=False)
        m2 = self.get_mean_vector(ws2, pre_normalize=False)
        return float(np.dot(_unitvec(m1), _unitvec(m2)))

    @staticmethod
    def cosine_similarities(vector_1: ArrayLike, vectors_all: ArrayLike) -> np.ndarray:
        """Cosine similarity between one vector and each row of vectors_all."""
        v, a = np.asarray(vector_1), np.asarray(vectors_all)
        with np.errstate(invalid="ignore", divide="ignore"):
            return a.dot(v) / (np.linalg.norm(v) * np.linalg.norm(a, axis=1))

    def distances(self, word_or_vector: Union[Key, ArrayLike], other_words: Iterable[Key] = ()) -> np.ndarray:
        """Cosine distances from a word or vector to other_words (all words if empty)."""
        v = self.get_vector(word_or_vector) if isinstance(word_or_vector, (str, int, np.integer)) \
            else np.asarray(word_or_vector)
        other = list(other_words)
        rows = self.vectors if not other else self.vectors[[self.get_index(w) for w in other]]
        return 1 - self.cosine_similarities(v, rows)

    def get_mean_vector(self, keys: Sequence[Union[Key, ArrayLike]], weights: Optional[ArrayLike] = None,
                        pre_normalize: bool = True, post_normalize: bool = False,
                        ignore_missing: bool = True) -> np.ndarray:
        """Weighted mean of word vectors (unit vectors if pre_normalize) and raw vectors, divided by the
        total |weight|; unit length if post_normalize (gensim's get_mean_vector)."""
        wts = np.ones(len(keys)) if weights is None else np.asarray(weights)
        if len(keys) != wts.shape[0]:
            raise ValueError("keys and weights array must have same number of elements")
        mean = np.zeros(self._dim, np.float32)
        total = 0.0
        for j, k in enumerate(keys):
            if isinstance(k, np.ndarray):
                mean += wts[j] * k
                total += abs(wts[j])
            elif self.has_index_for(k):
                mean += wts[j] * self.get_vector(k, norm=pre_normalize)
                total += abs(wts[j])
            elif not ignore_missing:
                raise KeyError("Key '%s' not present in vocabulary" % (k,))
        if total > 0:
            mean = mean / total
        return _unitvec(mean) if post_normalize else mean

    def most_similar(self, positive: Any = None, negative: Any = None, topn: Optional[int] = 10,
                     restrict_vocab: Optional[int] = None, progress: Progress = None
                     ) -> Union[List[Tuple[str, float]], np.ndarray]:
        """The topn words most similar to the mean of the positive words minus the negative ones
        (gensim 4's most_similar: unit vectors averaged with weights +1/-1, or (word, weight) pairs;
        cosine against every word; the input words are excluded). Arguments may be words, indices or
        vectors. topn=None returns the similarity to every word (an array). restrict_vocab=N searches
        only the first N words. All-zero vectors score NaN and come last. progress(done, total) may
        return True to cancel (tokemb.Cancelled); Ctrl-C stops the search within one block."""
        if isinstance(topn, int) and topn < 1:
            return []
        positive = _as_list(positive)
        negative = _as_list(negative)
        keys: List[Any] = []
        weight = np.concatenate((np.ones(len(positive)), -1.0 * np.ones(len(negative))))
        for j, item in enumerate(positive + negative):
            if isinstance(item, (str, int, np.integer, np.ndarray)):
                keys.append(item)
            else:
                keys.append(item[0])
                weight[j] = item[1]
        mean = self.get_mean_vector(keys, weight, pre_normalize=True, post_normalize=True, ignore_missing=False)
        exclude = {self.get_index(k) for k in keys if isinstance(k, (str, int, np.integer)) and self.has_index_for(k)}
        table = self.table
        if restrict_vocab:
            table = Table.wrap(self.vectors[:int(restrict_vocab)], readonly=True)
        if not topn:
            with np.errstate(invalid="ignore", divide="ignore"):
                return table.numpy().dot(mean) / self.norms[:table.rows]
        k = min(int(topn) + len(exclude), table.rows)
        ids, scores = nearest(table, mean, k, "cosine", progress=progress)
        out = [(self.index_to_key[i], float(s)) for i, s in zip(ids.tolist(), scores.tolist())
               if i >= 0 and i not in exclude]
        return out[:int(topn)]

    def similar_by_word(self, word: Key, topn: Optional[int] = 10, restrict_vocab: Optional[int] = None,
                        progress: Progress = None) -> Union[List[Tuple[str, float]], np.ndarray]:
        """most_similar(positive=[word])."""
        return self.most_similar(positive=[word], topn=topn, restrict_vocab=restrict_vocab, progress=progress)

    similar_by_key = similar_by_word

    def similar_by_vector(self, vector: ArrayLike, topn: Optional[int] = 10, restrict_vocab: Optional[int] = None,
                          progress: Progress = None) -> Union[List[Tuple[str, float]], np.ndarray]:
        """The topn words most similar to a vector (no word is excluded)."""
        return self.most_similar(positive=[np.asarray(vector, np.float32)], topn=topn,
                                 restrict_vocab=restrict_vocab, progress=progress)

    def rank_by_centrality(self, words: Sequence[str], use_norm: bool = True) -> List[Tuple[float, str]]:
        """(similarity to the centroid, word), most central first; unknown words are ignored."""
        used = [w for w in words if w in self]
        if not used:
            raise ValueError("cannot select a word from an empty list")
        vecs = np.vstack([self.get_vector(w, norm=use_norm) for w in used]).astype(np.float32)
        mean = self.get_mean_vector(list(vecs), post_normalize=True)
        return sorted(zip(vecs.dot(mean), used), reverse=True)

    def doesnt_match(self, words: Sequence[str]) -> str:
        """The word furthest from the mean of the (unit) vectors of all the words."""
        return self.rank_by_centrality(words)[-1][1]

    def closer_than(self, key1: Key, key2: Key) -> List[str]:
        """Words closer to key1 than key2 is (key1 itself left out)."""
        d = self.distances(key1)
        i1, i2 = self.get_index(key1), self.get_index(key2)
        return [self.index_to_key[i] for i in np.where(d < d[i2])[0] if i != i1]

    def rank(self, key1: Key, key2: Key) -> int:
        """1 + the number of words closer to key1 than key2."""
        return len(self.closer_than(key1, key2)) + 1


def _as_list(x: Any) -> List[Any]:
    if x is None:
        return []
    if isinstance(x, (str, int, np.integer, np.ndarray)):
        return [x]
    return list(x)


__all__ = ["Vectors"]
