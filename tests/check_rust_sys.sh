#!/usr/bin/env bash
# check_rust_sys.sh <libtokemb.so> <repo-root>
# Drift check: every function of include/tokemb.h must be declared in rust/tokemb-sys/src/lib.rs with the
# same name, arity and parameter/result types (C -> Rust mapping, pointer constness included), every
# integer constant with the same value, and nothing extra. Also proves the checker can fail: a copy of
# lib.rs with one parameter type changed and one declaration removed must be rejected.
set -euo pipefail
lib="$1"; repo="$2"
py=/usr/bin/python3; [ -x "$py" ] || py=python3
tool="$repo/scripts/tokemb_header.py"
hdr="$repo/include/tokemb.h"
sys="$repo/rust/tokemb-sys/src/lib.rs"
"$py" "$tool" "$hdr" --check-rust "$sys"
# Every declared function is exported by the built library.
if command -v nm >/dev/null; then
  missing=0
  exported=" $(nm -D --defined-only "$lib" | awk '{print $NF}' | sed 's/@.*//' | tr '\n' ' ') "
  for f in $(grep -o 'pub fn tokemb_[a-z0-9_]*' "$sys" | sed 's/pub fn //'); do
    case "$exported" in *" $f "*) ;; *) echo "DRIFT: $f declared in lib.rs but not exported by $lib"; missing=1 ;; esac
  done
  [ "$missing" = 0 ]
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
sed -e '0,/n: usize/s//n: u64/' -e '/pub fn tokemb_get_num_threads/d' "$sys" > "$tmp/lib.rs"
if "$py" "$tool" "$hdr" --check-rust "$tmp/lib.rs" > "$tmp/out" 2>&1; then
  echo "checker accepted a mutated lib.rs:"; cat "$tmp/out"; exit 1
fi
grep -q "tokemb_get_num_threads: declared in the header, missing" "$tmp/out"
grep -q "is u64 in Rust, header says usize" "$tmp/out"
echo "check_rust_sys: OK"
