"""Finds and loads libtokemb, installs restype/argtypes on every function (from _sigs.py) and maps
status codes to exceptions."""
import ctypes
import ctypes.util
import glob
import os

from . import _sigs

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_REPO_DIR = os.path.dirname(os.path.dirname(_PKG_DIR))  # python/tokemb -> python -> repo
_NAMES = ("libtokemb.so.%d" % _sigs.CONSTS["TOKEMB_VERSION_MAJOR"], "libtokemb.so", "libtokemb.dylib")


def _candidates():
    """(description, path) pairs in search order."""
    env = os.environ.get("TOKEMB_LIBRARY")
    if env:
        if os.path.isdir(env):
            for n in _NAMES:
                yield "TOKEMB_LIBRARY", os.path.join(env, n)
        else:
            yield "TOKEMB_LIBRARY", env
    for n in _NAMES:
        yield "package folder", os.path.join(_PKG_DIR, n)
    builds = []
    for d in glob.glob(os.path.join(_REPO_DIR, "build*")):
        for n in _NAMES:
            p = os.path.join(d, n)
            if os.path.exists(p):
                builds.append(p)
                break
    builds.sort(key=lambda p: -os.path.getmtime(p))  # the most recently built tree first
    for p in builds:
        yield "build tree", p
    found = ctypes.util.find_library("tokemb")
    for n in ((found,) if found else ()) + (_NAMES[0],):
        yield "system loader path", n


def _load():
    tried = []
    env = os.environ.get("TOKEMB_LIBRARY")
    for where, path in _candidates():
        if os.sep in path and not os.path.exists(path):
            tried.append("%s: %s (not found)" % (where, path))
            if where == "TOKEMB_LIBRARY" and env and not os.path.isdir(env):
                break
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append("%s: %s (%s)" % (where, path, e))
            if where == "TOKEMB_LIBRARY" and env and not os.path.isdir(env):
                break  # an explicit choice that fails is an error, not a reason to pick another copy
    raise ImportError("tokemb: cannot load libtokemb. Looked in (in order):\n  " + "\n  ".join(tried) +
                      "\nSet TOKEMB_LIBRARY to the library file, build the C library in ../build, or "
                      "install it where the loader finds it.")


lib, path = _load()

#: header functions this library file does not export (an older libtokemb): calling them raises.
UNBOUND = set()
for _name, (_res, _args) in _sigs.SIGS.items():
    try:
        _f = getattr(lib, _name)
    except AttributeError:
        UNBOUND.add(_name)
        continue
    _f.restype = _res
    _f.argtypes = _args


def has(name):
    return name in _sigs.SIGS and name not in UNBOUND


def fn(name):
    """The bound C function, or tokemb.Unsupported if neither header nor library has it."""
    if not has(name):
        from ._errors import Unsupported
        raise Unsupported(-6, "%s is not available in the loaded libtokemb (%s)" % (name, path), name)
    return getattr(lib, name)


def last_error():
    return lib.tokemb_last_error().decode("utf-8", "replace")


def status_string(status):
    return lib.tokemb_status_string(status).decode("utf-8", "replace")


def check(status, name=""):
    if status != 0:
        from ._errors import error_for
        raise error_for(status, last_error(), name)
    return status
