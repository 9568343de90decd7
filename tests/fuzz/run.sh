#!/usr/bin/env bash
# tests/fuzz/run.sh [SECONDS] - builds the libFuzzer targets with clang (address + undefined sanitizers,
# the library's sources compiled in) and runs each for SECONDS (default 20) over its committed seed
# corpus tests/fuzz/corpus/<target>/ (new inputs go to a scratch copy, the committed corpus is not
# modified). Exit status is non-zero if a build fails or a target finds a crash.
# Usage in CI:  bash tests/fuzz/run.sh 20
set -euo pipefail
secs=${1:-20}
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=${TOKEMB_FUZZ_OUT:-$repo/build-fuzz}
cc=${CC_FUZZ:-clang}
mkdir -p "$out"
srcs=$(ls "$repo"/src/*/*.c)
flags=(-g -O1 -std=c11 -D_GNU_SOURCE -DTOKEMB_BUILDING_LIBRARY -ffp-contract=off -fno-sanitize-recover=all
       -fsanitize=fuzzer,address,undefined -I"$repo/include" -I"$repo/src")
blas=$(pkg-config --cflags --libs openblas 2>/dev/null || echo -lopenblas)
# the library once as objects (fuzzer-instrumented), then one binary per target
objdir="$out/obj"; mkdir -p "$objdir"
for s in $srcs; do
  o="$objdir/$(basename "$(dirname "$s")")_$(basename "$s" .c).o"
  "$cc" "${flags[@]}" -fsanitize=fuzzer-no-link $(pkg-config --cflags openblas 2>/dev/null) -c "$s" -o "$o" &
  while [ "$(jobs -r | wc -l)" -ge 2 ]; do sleep 0.2; done
done
wait
status=0
for tgt in npy safetensors vectors checkpoint; do
  "$cc" "${flags[@]}" "$here/fuzz_$tgt.c" "$objdir"/*.o $blas -lm -lpthread -o "$out/fuzz_$tgt"
  work="$out/corpus_$tgt"; rm -rf "$work"; mkdir -p "$work"
  cp "$here/corpus/$tgt"/* "$work"/ 2>/dev/null || true
  echo "== fuzz_$tgt: ${secs}s over $(ls "$work" | wc -l) seeds"
  if ! "$out/fuzz_$tgt" -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
       -artifact_prefix="$out/crash_${tgt}_" "$work" 2>"$out/fuzz_$tgt.log"; then
    echo "FAIL: fuzz_$tgt found a problem (see $out/fuzz_$tgt.log, artifacts $out/crash_${tgt}_*)"; tail -40 "$out/fuzz_$tgt.log"
    status=1
  else
    grep -E "^#[0-9]+.*DONE|Done [0-9]+ runs" "$out/fuzz_$tgt.log" | tail -1 || true
  fi
done
exit $status
