#!/usr/bin/env bash
# test.sh - the whole test suite, as CI runs it on a fresh Debian 12 machine:
#   1. Release build with -Wall -Wextra -Werror, ctest (cmocka suites, torch comparisons, ABI/header checks)
#   2. ASan+UBSan build, ctest (C suites)
#   3. install into a staging prefix; out-of-tree consumers through pkg-config and find_package, run
#      without LD_LIBRARY_PATH (on CI also a root install to /usr/local: ldconfig, plain -ltokemb consumer);
#      pip install ./python into a fresh venv, import it and run the seed example
#   4. abidiff of the built library against the committed baseline abi/tokemb.abi.xml
#   5. the extra suites that exist: ThreadSanitizer, valgrind memcheck, libFuzzer smoke runs, Rust crates
# Every step runs; the script fails if any failed, and ends with one "N passed, N failed" line.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
out=${TOKEMB_TEST_DIR:-$repo/build-test}
jobs=$(nproc)
bash "$repo/scripts/deps.sh" test || exit 1
mkdir -p "$out"
passed=0 failed=0 failures=()

step() { # step NAME COMMAND...: run, time and count one step
  local name=$1; shift
  local t0=$SECONDS
  echo
  echo "=== $name"
  if "$@"; then
    passed=$((passed + 1)); echo "=== $name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "=== $name: FAILED ($((SECONDS - t0)) s)"
  fi
}

release() {
  cmake -S "$repo" -B "$out/release" -DCMAKE_BUILD_TYPE=Release -DTOKEMB_WERROR=ON >/dev/null &&
    cmake --build "$out/release" -j"$jobs" &&
    ctest --test-dir "$out/release" -j"$jobs" --output-on-failure
}

asan() {
  cmake -S "$repo" -B "$out/asan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTOKEMB_WERROR=ON \
    -DTOKEMB_SANITIZE=address,undefined -DTOKEMB_BUILD_BENCH=OFF >/dev/null &&
    cmake --build "$out/asan" -j"$jobs" &&
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
      ctest --test-dir "$out/asan" -j"$jobs" --output-on-failure -LE python
}

consumers() {
  local stage="$out/stage"
  rm -rf "$stage" "$out/consumer"
  cmake --install "$out/release" --prefix "$stage" >/dev/null || return 1
  # the SONAME follows the header's major version (the version's one source)
  local soname; soname="libtokemb.so.$(sed -n 's/^#define TOKEMB_VERSION_MAJOR \([0-9]*\)$/\1/p' "$repo/include/tokemb.h")"
  local libdir; libdir=$(dirname "$(find "$stage" -name "$soname" | head -1)")
  # pkg-config, by hand
  PKG_CONFIG_PATH="$libdir/pkgconfig" cc -std=c99 -Wall -Wextra -Werror -pedantic \
    "$repo/tests/consumer/consumer.c" -o "$out/consumer_pc" $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs tokemb) || return 1
  env -u LD_LIBRARY_PATH "$out/consumer_pc" || return 1  # the .pc file's -Wl,-rpath: no LD_LIBRARY_PATH
  readelf -d "$out/consumer_pc" | grep NEEDED | grep -F "[$soname]" >/dev/null || { echo "consumer does not need $soname"; return 1; }
  # CMake: find_package(tokemb) and pkg_check_modules in one project
  PKG_CONFIG_PATH="$libdir/pkgconfig" cmake -S "$repo/tests/consumer" -B "$out/consumer" -DCMAKE_PREFIX_PATH="$stage" >/dev/null &&
    cmake --build "$out/consumer" >/dev/null &&
    env -u LD_LIBRARY_PATH "$out/consumer/consumer_cmake" &&
    env -u LD_LIBRARY_PATH "$out/consumer/consumer_pkgconfig"
}

system_install() {
  # Only on a disposable machine as root (.ci/run sets TOKEMB_TEST_SYSTEM_INSTALL=1): cmake --install to the
  # default prefix /usr/local runs ldconfig, so a consumer linked with plain -ltokemb (no rpath) runs.
  local major; major=$(sed -n 's/^#define TOKEMB_VERSION_MAJOR \([0-9]*\)$/\1/p' "$repo/include/tokemb.h")
  cmake --install "$out/release" >/dev/null || return 1
  ldconfig -p | grep -F "libtokemb.so.$major " >/dev/null || { echo "libtokemb.so.$major is not in the loader cache"; return 1; }
  cc -std=c99 "$repo/tests/consumer/consumer.c" -I/usr/local/include -L/usr/local/lib -ltokemb -o "$out/consumer_sys" &&
    env -u LD_LIBRARY_PATH "$out/consumer_sys"
}

python_install() {
  # pip install ./python in a fresh venv (Debian's setuptools/wheel, no network, no build isolation):
  # setup.py builds libtokemb with CMake and bundles it; then import and the seed example from elsewhere.
  local venv="$out/venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv" &&  # Debian's interpreter (numpy, torch)
    "$venv/bin/pip" install --no-build-isolation --no-index --no-deps "$repo/python" >/dev/null || return 1
  local lib; lib=$(cd "$out" && env -u PYTHONPATH -u TOKEMB_LIBRARY "$venv/bin/python" -c \
    'import tokemb, tokemb._lib as l; print(l._load()[1])') || return 1
  echo "tokemb loads $lib"
  case "$lib" in "$venv"/*/site-packages/tokemb/libtokemb.so.*) ;; *) echo "not the bundled library"; return 1;; esac
  (cd "$out" && env -u PYTHONPATH -u TOKEMB_LIBRARY "$venv/bin/python" "$repo/python/examples/seed.py" >/dev/null)
}

abi() {
  # The built library is described with the same abidw flags as the baseline, then the two descriptions
  # are compared. Additions are allowed within a SONAME major (--no-added-syms); any other change fails.
  abidw --headers-dir "$repo/include" --drop-private-types --no-corpus-path --no-show-locs --short-locs --no-comp-dir-path \
    --out-file "$out/tokemb.abi.xml" "$out/release/libtokemb.so" || return 1
  abidiff --no-added-syms "$repo/abi/tokemb.abi.xml" "$out/tokemb.abi.xml"
  local rc=$?
  [ $rc -eq 0 ] && echo "abidiff: no incompatible change against abi/tokemb.abi.xml"
  return $rc
}

step "release build + ctest" release
step "asan+ubsan build + ctest" asan
step "install + out-of-tree consumers (pkg-config, find_package)" consumers
[ "${TOKEMB_TEST_SYSTEM_INSTALL:-0}" = 1 ] && [ "$(id -u)" -eq 0 ] &&
  step "cmake --install to /usr/local (ldconfig), consumer without rpath or LD_LIBRARY_PATH" system_install
step "pip install ./python in a fresh venv, import + seed example elsewhere" python_install
step "abidiff against abi/tokemb.abi.xml" abi
[ -f "$repo/tests/run_tsan.sh" ] && step "ThreadSanitizer" bash "$repo/tests/run_tsan.sh" "$out/tsan"
[ -f "$repo/tests/run_valgrind.sh" ] && step "valgrind memcheck" bash "$repo/tests/run_valgrind.sh" "$out/release"
[ -f "$repo/tests/fuzz/run.sh" ] && step "libFuzzer smoke runs (20 s per target)" env TOKEMB_FUZZ_OUT="$out/fuzz" bash "$repo/tests/fuzz/run.sh" 20
[ -f "$repo/rust/run_tests.sh" ] && step "Rust crates (cargo test --offline)" bash "$repo/rust/run_tests.sh" "$out/release"

echo
[ $failed -gt 0 ] && echo "failed steps: ${failures[*]}"
echo "tokemb: $passed passed, $failed failed"
[ $failed -eq 0 ]
