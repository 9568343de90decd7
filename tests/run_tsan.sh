#!/usr/bin/env bash
# run_tsan.sh BUILD_DIR [REPO_ROOT]
# Builds tokemb and its cmocka suites with clang -fsanitize=thread into BUILD_DIR and runs the
# concurrency stress test (library threads 1..4, shared and private tables, a thread changing
# tokemb_set_num_threads meanwhile) plus the quick suites. Exit status 0 = no data race reported.
#
# OpenBLAS (tokemb_lookup_onehot, logits, nearest, the one-hot backward) is a prebuilt, uninstrumented
# library. With its own thread pool running (OPENBLAS_NUM_THREADS > 1), its workers write the sgemm
# output (sgemm_beta_*) after a hand-off TSan cannot see, so every BLAS call is reported as racing with
# the caller's later use of the output buffer (measured: 21 such reports per run, all with a
# blas_thread_init / sgemm_beta_* frame). Therefore:
#  1. the main runs use OPENBLAS_NUM_THREADS=1 and NO suppressions at all: every report is a real one;
#  2. one extra run of the concurrency test keeps OpenBLAS's pool (OPENBLAS_NUM_THREADS=2) with
#     tests/tsan.supp, which suppresses only reports with a libopenblas frame;
#  3. TK_CONC_NO_BLAS=1 is available to skip the BLAS paths entirely (not needed on this system).
set -euo pipefail
build=${1:?usage: run_tsan.sh BUILD_DIR [REPO_ROOT]}
root=${2:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
start=$(date +%s)

# clang links the (static) TSan runtime only into executables, and the library is linked with
# --no-undefined, so libtokemb.so would miss the __tsan_* symbols. The executables export the runtime's
# symbols, so the library may leave them undefined: -z undefs at the end of the link line (through
# CMAKE_C_STANDARD_LIBRARIES) overrides --no-undefined for this build only. (clang 14's shared TSan
# runtime, -shared-libsan, crashes at start-up on this system, so it is not used.)
cmake -S "$root" -B "$build" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DTOKEMB_SANITIZE=thread -DTOKEMB_BUILD_BENCH=OFF "-DCMAKE_C_STANDARD_LIBRARIES=-Wl,-z,undefs" >/dev/null
# Every cmocka suite, the concurrency test first; test_alloc_failures is left out (it links the
# TOKEMB_TESTING static variant with --wrap'ed malloc/pthread_create and tests no concurrency), and so is
# test_host_openmp (its threads are an uninstrumented OpenMP runtime's, whose barriers TSan cannot see).
targets=(test_concurrency)
for f in "$root"/tests/test_*.c; do
  t=$(basename "$f" .c)
  case "$t" in test_concurrency | test_alloc_failures | test_host_openmp) ;; *) targets+=("$t") ;; esac
done
cmake --build "$build" -j2 --target "${targets[@]}" >/dev/null

export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
tsan_base="halt_on_error=1 second_deadlock_stack=1 history_size=4"
# Some kernels randomise mmap more than TSan's shadow layout allows; run without ASLR when possible.
run=()
if setarch "$(uname -m)" -R true 2>/dev/null; then run=(setarch "$(uname -m)" -R); fi

status=0
for t in "${targets[@]}"; do
  echo "== $t (OpenBLAS single-threaded, no suppressions)"
  TSAN_OPTIONS="$tsan_base" "${run[@]}" "$build/tests/$t" || status=1
done
echo "== test_concurrency with OpenBLAS's own threads (libopenblas frames suppressed: tests/tsan.supp)"
OPENBLAS_NUM_THREADS=2 TSAN_OPTIONS="$tsan_base suppressions=$root/tests/tsan.supp" "${run[@]}" \
  "$build/tests/test_concurrency" || status=1
echo "TSan: $([ $status = 0 ] && echo 'no data races reported' || echo FAILED) in $(( $(date +%s) - start )) s (build included)"
exit $status
