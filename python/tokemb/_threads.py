"""tokemb._threads - the library follows the host's thread setting (docs/threading.md).

When torch is imported before tokemb (``import torch`` first, the usual order), tokemb's thread count is
set to ``torch.get_num_threads()`` at import, so tokemb's loops use as many threads as torch's. Without
torch the library default stays (the number of online CPUs). ``follow_host_threads()`` applies the host's
setting again (after ``torch.set_num_threads``, or when torch was imported after tokemb);
``set_num_threads`` overrides it. ``set_parallel_for`` hands the library's loops to a host's C pool.
"""
import ctypes
import sys

from . import _lib, _sigs

_hook = [None]  # keeps a ctypes function object alive while the library holds its address
_pinned = [False]  # tokemb.set_num_threads(n >= 1) pins the count: tokemb.torch stops following torch
_followed = [None]  # the torch count last applied by track_torch()


def host_threads():
    """The host runtime's thread count (torch.get_num_threads() when torch is imported), or None."""
    torch = sys.modules.get("torch")
    get = getattr(torch, "get_num_threads", None) if torch is not None else None
    if get is None:
        return None
    try:
        n = int(get())
    except Exception:  # a partially imported or mocked torch: keep the library default
        return None
    return min(max(n, 1), 1024)


def follow_host_threads() -> int:
    """Sets tokemb's thread count to the host's (torch.get_num_threads() when torch is imported; else the
    library default, the number of online CPUs) and returns the count now in use."""
    n = host_threads()
    _lib.check(_lib.lib.tokemb_set_num_threads(n or 0), "tokemb_set_num_threads")
    _pinned[0], _followed[0] = False, n
    return _lib.lib.tokemb_get_num_threads()


def pin(n: int) -> None:
    """Records tokemb.set_num_threads(n): n >= 1 pins the count, 0 hands it back to the host."""
    _pinned[0], _followed[0] = n >= 1, None


def track_torch(torch_threads: int) -> None:
    """Called by tokemb.torch before each call: follows torch.set_num_threads() changes made after import
    (one comparison when nothing changed), unless the user pinned a count."""
    if _pinned[0] or torch_threads == _followed[0]:
        return
    _lib.check(_lib.lib.tokemb_set_num_threads(min(max(int(torch_threads), 1), 1024)), "tokemb_set_num_threads")
    _followed[0] = torch_threads


def set_parallel_for(fn=None, host_ctx=None):
    """Runs tokemb's parallel loops on a host's C thread pool: ``fn`` is the address (int) or ctypes
    function pointer of a C function with the tokemb_parallel_fn signature, ``host_ctx`` its context
    pointer (int or None). None restores the built-in pool. A Python callable is refused: the tasks run
    on the host's threads without the GIL, so the hook must be C code."""
    if fn is None:
        _lib.lib.tokemb_set_parallel_for(_sigs.tokemb_parallel_fn(), None)
        _hook[0] = None
        return
    if callable(fn) and not isinstance(fn, ctypes._CFuncPtr):
        raise TypeError("set_parallel_for: fn must be the address of a C function, not a Python callable")
    addr = fn if isinstance(fn, int) else ctypes.cast(fn, ctypes.c_void_p).value
    if not addr:
        raise ValueError("set_parallel_for: fn is a NULL function pointer")
    ptr = ctypes.cast(ctypes.c_void_p(addr), _sigs.tokemb_parallel_fn)
    _lib.lib.tokemb_set_parallel_for(ptr, ctypes.c_void_p(host_ctx) if host_ctx else None)
    _hook[0] = (fn, ptr)
