"""tokemb._threads - the library follows the host's thread setting (docs/threading.md).

When torch is imported before tokemb (``import torch`` first, the usual order; importing tokemb.torch
does both), tokemb's thread count is set to ``torch.get_num_threads()`` at import, so tokemb's loops use
as many threads as torch's, and when torch's CPU ops run on OpenMP (``torch.__config__.parallel_info()``,
Debian's and PyPI's builds) tokemb's loops run on torch's own OpenMP workers (``use_host_openmp``)
instead of a second pool that would compete with them for the cores. Without
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
_backend = ["pool"]  # "pool", "openmp" (the host's runtime) or "hook" (set_parallel_for)
_chosen = [False]  # set_parallel_for was called: the user's backend stays


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


def host_uses_openmp() -> bool:
    """True when torch is imported and its CPU ops run on OpenMP (torch.__config__.parallel_info())."""
    torch = sys.modules.get("torch")
    try:
        return "parallel backend: OpenMP" in torch.__config__.parallel_info()
    except Exception:  # no torch, or one without __config__
        return False


def follow_host_threads() -> int:
    """Sets tokemb's thread count to the host's (torch.get_num_threads() when torch is imported; else the
    library default, the number of online CPUs) and, when torch runs on OpenMP and no C hook was set,
    runs tokemb's loops on torch's OpenMP workers (use_host_openmp). Returns the count now in use."""
    n = host_threads()
    _lib.check(_lib.lib.tokemb_set_num_threads(n or 0), "tokemb_set_num_threads")
    _pinned[0], _followed[0] = False, n
    share_host_pool()
    return _lib.lib.tokemb_get_num_threads()


def share_host_pool() -> None:
    """Runs tokemb's loops on torch's OpenMP workers when torch is imported and uses OpenMP, unless the
    user chose a backend with set_parallel_for. Called at import of tokemb and of tokemb.torch."""
    if _backend[0] == "pool" and not _chosen[0] and host_uses_openmp():
        use_host_openmp()


def use_host_openmp() -> bool:
    """Runs tokemb's parallel loops on the OpenMP runtime already loaded in the process (torch's libgomp)
    instead of the built-in pool: tokemb_use_host_openmp, see docs/threading.md. Returns True when a
    runtime was found; False (nothing changes) when none is loaded. ``set_parallel_for(None)`` returns
    to the built-in pool. Results are bitwise the same on every backend."""
    if _lib.lib.tokemb_use_host_openmp() != 0:
        return False
    _hook[0] = None
    _backend[0] = "openmp"
    return True


def backend() -> str:
    """Which runs tokemb's parallel loops: "pool" (built in), "openmp" (the host's runtime, see
    use_host_openmp) or "hook" (a C function given to set_parallel_for). In a fork()ed child the library
    uses its pool whatever this says (OpenMP runtimes are not fork-safe)."""
    return _backend[0]


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
    pointer (int or None). None restores the built-in pool (also after use_host_openmp). A Python callable is refused: the tasks run
    on the host's threads without the GIL, so the hook must be C code."""
    _chosen[0] = True
    if fn is None:
        _lib.lib.tokemb_set_parallel_for(_sigs.tokemb_parallel_fn(), None)
        _hook[0] = None
        _backend[0] = "pool"
        return
    if callable(fn) and not isinstance(fn, ctypes._CFuncPtr):
        raise TypeError("set_parallel_for: fn must be the address of a C function, not a Python callable")
    addr = fn if isinstance(fn, int) else ctypes.cast(fn, ctypes.c_void_p).value
    if not addr:
        raise ValueError("set_parallel_for: fn is a NULL function pointer")
    ptr = ctypes.cast(ctypes.c_void_p(addr), _sigs.tokemb_parallel_fn)
    _lib.lib.tokemb_set_parallel_for(ptr, ctypes.c_void_p(host_ctx) if host_ctx else None)
    _hook[0] = (fn, ptr)
    _backend[0] = "hook"
