#!/usr/bin/env bash
# run_valgrind.sh BUILD_DIR [REPO_ROOT] [SUITE...]
# Builds tokemb and the cmocka suites (plain build, no sanitizer) in BUILD_DIR and runs every
# tests/test_* executable (or the SUITEs named, e.g. test_invariants) under valgrind memcheck:
# any invalid access, uninitialised use or leak (definite, indirect or possible) fails the run.
# OpenBLAS runs single-threaded (its idle thread pool only slows valgrind down).
set -euo pipefail
build=${1:?usage: run_valgrind.sh BUILD_DIR [REPO_ROOT] [SUITE...]}
root=${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
shift $(( $# >= 2 ? 2 : 1 ))
start=$(date +%s)

# An existing build directory (e.g. CI's release build) is used as it is; a new one is configured
# RelWithDebInfo (the library itself always carries -g).
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKEMB_BUILD_BENCH=OFF >/dev/null
fi
cmake --build "$build" -j2 >/dev/null

suites=("$@")
if [ ${#suites[@]} -eq 0 ]; then
  for f in "$root"/tests/test_*.c; do suites+=("$(basename "$f" .c)"); done
fi

export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 TK_CONC_QUICK=1
status=0
for s in "${suites[@]}"; do
  exe="$build/tests/$s"
  [ -x "$exe" ] || { echo "== $s: not built, skipped"; continue; }
  t0=$(date +%s)
  log="$build/valgrind-$s.log"
  if valgrind --tool=memcheck --error-exitcode=1 --leak-check=full --show-leak-kinds=definite,indirect,possible \
       --errors-for-leak-kinds=definite,indirect,possible --track-origins=yes --quiet \
       --suppressions="$root/tests/valgrind.supp" "$exe" >"$log" 2>&1; then
    echo "== $s: clean ($(( $(date +%s) - t0 )) s)"
  else
    echo "== $s: FAILED ($(( $(date +%s) - t0 )) s), log: $log"
    grep -E "==[0-9]+==" "$log" | head -40 || tail -20 "$log"
    status=1
  fi
done
echo "valgrind: $([ $status = 0 ] && echo '0 errors, 0 leaks' || echo FAILED) in $(( $(date +%s) - start )) s (build included)"
exit $status
