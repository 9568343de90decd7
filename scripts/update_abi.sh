#!/usr/bin/env bash
# update_abi.sh [BUILD_DIR] - regenerate the committed ABI baseline (abi/tokemb.abi.xml) and the
# exported-symbol list (abi/exported-symbols.txt) from a built library. Run it when the public ABI grows
# (additions only within a SONAME major: see docs/ABI.md), and commit the result with the header change.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$repo/build}
lib="$build/libtokemb.so"
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | grep '^tokemb_' | sort -u \
  > "$repo/abi/exported-symbols.txt"
# No source locations or build paths: the baseline describes the ABI only, so it is the same from any
# checkout and does not change when code moves between files (abidiff compares types, not places).
abidw --headers-dir "$repo/include" --drop-private-types --no-corpus-path --no-show-locs --short-locs \
  --no-comp-dir-path --out-file "$repo/abi/tokemb.abi.xml" "$lib"
echo "abi/exported-symbols.txt: $(wc -l < "$repo/abi/exported-symbols.txt") symbols; abi/tokemb.abi.xml regenerated"
