#!/usr/bin/env bash
# check_invariant_coverage.sh LIB REPO_ROOT
# Fails when a function exported by the library (nm -D, defined text symbols) is never called in the API
# invariant suite tests/test_invariants.c. Prints the coverage figure "covered/exported".
set -euo pipefail
lib=${1:?usage: check_invariant_coverage.sh path/to/libtokemb.so repo-root}
root=${2:?usage: check_invariant_coverage.sh path/to/libtokemb.so repo-root}
suite="$root/tests/test_invariants.c"
[ -f "$suite" ] || { echo "missing $suite"; exit 1; }

# Exported functions: the dynamic symbol table, defined (T), tokemb_ prefix.
mapfile -t syms < <(nm -D --defined-only "$lib" | awk '$2 == "T" && $3 ~ /^tokemb_/ {sub(/@.*/, "", $3); print $3}' | sort -u)
[ "${#syms[@]}" -gt 0 ] || { echo "no exported tokemb_ functions found in $lib"; exit 1; }

# Strip comments so a name mentioned only in a comment does not count.
code=$(sed -e 's://.*$::' "$suite" | perl -0pe 's:/\*.*?\*/::gs')
missing=()
for s in "${syms[@]}"; do
  if ! grep -Eq "(^|[^A-Za-z0-9_])${s}[[:space:]]*\(" <<<"$code"; then
    missing+=("$s")
  fi
done
covered=$(( ${#syms[@]} - ${#missing[@]} ))
echo "invariant coverage: $covered/${#syms[@]} exported functions are called in tests/test_invariants.c"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "exported functions without an invariant test:"
  printf '  %s\n' "${missing[@]}"
  exit 1
fi
