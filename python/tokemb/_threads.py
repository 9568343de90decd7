"""The library's thread count in a host process.

By default the library uses OMP_NUM_THREADS when it is set, else the CPUs the process may run on (see
docs/threading.md). In a torch process the modules of tokemb.torch follow torch instead: before each
call they set the library's count to ``torch.get_num_threads()``, so ``torch.set_num_threads(n)``
governs both, as it governs torch's own operators. An explicit ``tokemb.set_num_threads(n)`` with
n >= 1 takes precedence; ``tokemb.set_num_threads(0)`` hands control back to the default (or to torch).
The library's parallel loops run on OpenMP, which in a torch process is torch's own worker pool.
"""
from . import _lib

_explicit = False   # set by tokemb.set_num_threads(n >= 1)
_last = None        # the count last given to the library by follow()


def set_explicit(n: int) -> None:
    """Records a user's tokemb.set_num_threads(n) (n >= 1 pins the count; 0 releases it)."""
    global _explicit, _last
    _explicit = n >= 1
    _last = None


def follow(host_threads: int) -> None:
    """Sets the library's count to the host's (torch.get_num_threads()) unless the user pinned one.
    Costs one comparison when the count has not changed."""
    global _last
    if _explicit or host_threads == _last:
        return
    _lib.check(_lib.lib.tokemb_set_num_threads(int(max(1, min(host_threads, 1024)))), "tokemb_set_num_threads")
    _last = host_threads
