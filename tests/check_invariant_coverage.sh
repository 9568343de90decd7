#!/usr/bin/env bash
# check_invariant_coverage.sh LIB REPO_ROOT
# Fails when a function exported by the library has no invariant test in tests/test_invariants.c:
#  - a function returning an int32_t status (per include/tokemb.h) must be the called function of at least
#    one INV(...) / INV_AS(...) check there (a failing call whose status, message, outputs and objects are
#    verified);
#  - any other function (void destructors, getters returning a value or NULL) must at least be called.
# Prints the coverage figure "covered/exported".
set -euo pipefail
lib=${1:?usage: check_invariant_coverage.sh path/to/libtokemb.so repo-root}
root=${2:?usage: check_invariant_coverage.sh path/to/libtokemb.so repo-root}
suite="$root/tests/test_invariants.c"
header="$root/include/tokemb.h"
[ -f "$suite" ] || { echo "missing $suite"; exit 1; }

# Exported functions: the dynamic symbol table, defined (T), tokemb_ prefix.
mapfile -t syms < <(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^tokemb_/ {sub(/@.*/, "", $3); print $3}' | sort -u)
[ "${#syms[@]}" -gt 0 ] || { echo "no exported tokemb_ functions found in $lib"; exit 1; }

# Status-returning functions according to the header: int32_t returns, except these int32_t getters
# that return a value (extend the list when a new one is added).
non_status_int32="tokemb_get_num_threads tokemb_table_dtype"
status_fns=$(tr '\n' ' ' < "$header" | grep -oE 'TOKEMB_API[[:space:]]+int32_t[[:space:]]+tokemb_[A-Za-z0-9_]+[[:space:]]*\(' |
             grep -oE 'tokemb_[A-Za-z0-9_]+' | grep -vxF -f <(tr ' ' '\n' <<<"$non_status_int32") | sort -u)

# The suite without comments; the called function of every INV / INV_AS check.
code=$(perl -0pe 's:/\*.*?\*/::gs; s://[^\n]*::g' "$suite")
inv_called=$(perl -0ne '
  while (/\bINV(_AS)?\s*\(((?:[^()]++|\((?2)\))*)\)/g) {
    my $args = $2;
    # INV(status, needle, call) / INV_AS(alias, status, needle, call): the call is the last argument;
    # its function is the last tokemb_ name that starts an argument-level call
    print "$1\n" while $args =~ /(?:^|,)\s*(tokemb_[A-Za-z0-9_]+)\s*\(/g;
  }' <<<"$code" | sort -u)

missing=()
for s in "${syms[@]}"; do
  if grep -qx "$s" <<<"$status_fns"; then
    grep -qx "$s" <<<"$inv_called" || missing+=("$s (status function: no INV check calls it)")
  else
    grep -Eq "(^|[^A-Za-z0-9_])${s}[[:space:]]*\(" <<<"$code" || missing+=("$s (never called)")
  fi
done
covered=$(( ${#syms[@]} - ${#missing[@]} ))
echo "invariant coverage: $covered/${#syms[@]} exported functions have invariant tests in tests/test_invariants.c"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "exported functions without an invariant test:"
  printf '  %s\n' "${missing[@]}"
  exit 1
fi
