"""Ownership of C objects: one handle class and one lifetime mixin for Table, Vocab and the positional
encoders."""
from . import _lib
from ._errors import InvalidArgument
from ._sigs import CONSTS


class Handle:
    """Holds one C object pointer. `free` names the library function that releases it when the last Python
    reference (the wrapper, or a numpy view or table that needs the object) goes away; None for an object
    owned by something else. `keep` holds whatever must outlive the pointer (a wrapped array, the owner)."""

    __slots__ = ("ptr", "free", "keep", "__weakref__")

    def __init__(self, p, free, keep=None):
        self.ptr = p
        self.free = free
        self.keep = keep

    def __del__(self):
        p, self.ptr = self.ptr, None
        if p and self.free and _lib is not None and _lib.lib is not None:
            getattr(_lib.lib, self.free)(p)


class Lifetime:
    """`_p` (the live pointer, or InvalidArgument once closed), `closed`, `close()` and `with` support over
    self._h. Subclasses set _what (used in "the <what> is closed") and _where (the object's name)."""

    _what = "object"
    _where = None

    @property
    def _p(self):
        h = self.__dict__.get("_h")
        if h is None or not h.ptr:
            raise InvalidArgument(CONSTS["TOKEMB_INVALID_ARGUMENT"], "the %s is closed" % self._what,
                                  self._where or type(self).__name__)
        return h.ptr

    @property
    def closed(self):
        h = self.__dict__.get("_h")
        return h is None or not h.ptr

    def close(self):
        """Releases this object's reference (views and tables that need it keep it alive until they go)."""
        self.__dict__["_h"] = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
