#!/usr/bin/env bash
# check_python_sigs.sh <libtokemb.so> <repo-root>
# Drift check for the Python binding: python/tokemb/_sigs.py (the restype/argtypes table the package
# installs on every function) must list every function of include/tokemb.h with the same arity and
# ctypes-compatible types, and every constant with the same value. Then the package itself is imported
# against the built library and must have bound every header function (nothing silently skipped).
set -euo pipefail
lib="$1"; repo="$2"
py=/usr/bin/python3; [ -x "$py" ] || py=python3
"$py" "$repo/scripts/tokemb_header.py" "$repo/include/tokemb.h" --check-python "$repo/python"
. "$(dirname "$0")/sanitizer_preload.sh"  # sets $preload for a sanitizer build
LD_PRELOAD="$preload" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
TOKEMB_LIBRARY="$lib" PYTHONPATH="$repo/python" "$py" - <<'PYEOF'
import sys
import tokemb
from tokemb import _lib, _sigs
missing = [n for n in _sigs.SIGS if not hasattr(_lib.lib, n) or n in _lib.UNBOUND]
if missing:
    print("DRIFT: functions in the header the loaded library lacks:", missing)
    sys.exit(1)
for n, (res, args) in _sigs.SIGS.items():
    f = getattr(_lib.lib, n)
    if f.restype is not res or list(f.argtypes) != list(args):
        print("DRIFT: %s has restype/argtypes %r/%r" % (n, f.restype, f.argtypes)); sys.exit(1)
print("python binding: %d functions bound with argtypes/restype" % len(_sigs.SIGS))
PYEOF
echo "check_python_sigs: OK"
# Coverage report (informational, does not fail): header functions no high-level wrapper calls yet.
py=/usr/bin/python3; [ -x "$py" ] || py=python3
for f in $("$py" -c "import sys; sys.path.insert(0, '$repo/scripts'); import tokemb_header as h; print(' '.join(f.name for f in h.Header('$repo/include/tokemb.h').funcs))"); do
  grep -qE "\"$f\"|lib\.$f\b" $(ls "$repo"/python/tokemb/*.py | grep -v _sigs.py) || echo "NOT WRAPPED (python): $f"
  grep -qE "sys::$f\b" "$repo"/rust/tokemb/src/*.rs || echo "NOT WRAPPED (rust): $f"
done
