#!/usr/bin/env bash
# check_symbols.sh LIB REPO - the exported dynamic symbols, the version script's global list, the
# header's TOKEMB_API declarations and abi/exported-symbols.txt must be the same set, all tokemb_-prefixed,
# and the SONAME must be libtokemb.so.<major>.
set -euo pipefail
lib=$1 repo=$2
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | grep -v '^TOKEMB_' | sort -u > "$tmp/exported"
sed -n '/global:/,/local:/p' "$repo/src/tokemb.map" | grep -oE '^\s*[A-Za-z_][A-Za-z0-9_]*;' | tr -d ' ;' | sort -u > "$tmp/map"
# function names declared with TOKEMB_API (the name is the identifier right before the first '(')
awk '/^TOKEMB_API/,/;/' "$repo/include/tokemb.h" | tr '\n' ' ' | tr ';' '\n' | grep -oE '[A-Za-z_][A-Za-z0-9_]*\s*\(' | \
  grep -oE '^tokemb_[A-Za-z0-9_]*' | sort -u > "$tmp/header"
sort -u "$repo/abi/exported-symbols.txt" > "$tmp/baseline"
status=0
cmpset() {
  if ! diff -u "$tmp/$1" "$tmp/$2" > "$tmp/diff"; then
    echo "FAIL: $1 and $2 differ:"; cat "$tmp/diff"; status=1
  fi
}
cmpset exported map
cmpset exported header
cmpset exported baseline
if grep -v '^tokemb_' "$tmp/exported"; then echo "FAIL: unprefixed exported symbols above"; status=1; fi
major=$(grep -E '^#define TOKEMB_VERSION_MAJOR' "$repo/include/tokemb.h" | awk '{print $3}')
soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
if [ "$soname" != "libtokemb.so.$major" ]; then echo "FAIL: SONAME '$soname' != libtokemb.so.$major"; status=1; fi
if [ $status -eq 0 ]; then echo "ok: $(wc -l < "$tmp/exported") exported symbols match map, header and baseline; SONAME $soname"; fi
exit $status
