#!/usr/bin/env bash
# check_version.sh <libtokemb.so> <repo-root>
# The version's one source is the three TOKEMB_VERSION_* numbers of include/tokemb.h. Everything that
# cannot read them at build time (the Python and Rust package manifests) must agree with them, and the
# built library must report them (version string, version number, SONAME major).
set -euo pipefail
lib="$1"; repo="$2"
num() { sed -n "s/^#define TOKEMB_VERSION_$1 \([0-9]*\)$/\1/p" "$repo/include/tokemb.h"; }
ver="$(num MAJOR).$(num MINOR).$(num PATCH)"
status=0
for f in python/pyproject.toml rust/tokemb-sys/Cargo.toml rust/tokemb/Cargo.toml; do
  got=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/$f" | head -1)
  [ "$got" = "$ver" ] || { echo "VERSION DRIFT: $f says $got, include/tokemb.h says $ver"; status=1; }
done
soname=$(readelf -d "$lib" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
[ "$soname" = "libtokemb.so.$(num MAJOR)" ] || { echo "SONAME $soname is not libtokemb.so.$(num MAJOR)"; status=1; }
py=/usr/bin/python3; [ -x "$py" ] || py=python3
. "$(dirname "$0")/sanitizer_preload.sh"  # sets $preload for a sanitizer build
got=$(LD_PRELOAD="$preload" ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "$py" -c 'import ctypes,sys; l=ctypes.CDLL(sys.argv[1]); l.tokemb_version_string.restype=ctypes.c_char_p; print(l.tokemb_version_string().decode(), l.tokemb_version_number())' "$lib")
want="$ver $(( $(num MAJOR) * 10000 + $(num MINOR) * 100 + $(num PATCH) ))"
[ "$got" = "$want" ] || { echo "the library reports '$got', the header says '$want'"; status=1; }
[ $status -eq 0 ] && echo "version $ver: header, library, SONAME, pyproject.toml and both Cargo.toml agree"
exit $status
