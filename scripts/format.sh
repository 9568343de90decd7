#!/usr/bin/env bash
# format.sh [--check] - applies .clang-format (clang-format from Debian 12) to the project's C sources:
# src/, include/, tests/, bench/, examples/ and mpi/ when present. With --check nothing is written; the
# files that would change are listed and the exit status is 1 if there are any.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cf=${CLANG_FORMAT:-$(command -v clang-format-14 || command -v clang-format)}  # the style was tuned on 14
mapfile -t files < <(cd "$repo" && git ls-files -- 'src/*.c' 'src/*.h' 'include/*.h' 'tests/*.c' 'tests/*.h' \
  'bench/*.c' 'examples/*.c' 'examples/*.h' 'mpi/*.c' 'mpi/*.h')
if [ "${1:-}" = --check ]; then
  bad=0
  for f in "${files[@]}"; do
    if ! "$cf" --style=file "$repo/$f" | cmp -s - "$repo/$f"; then echo "needs formatting: $f"; bad=1; fi
  done
  exit $bad
fi
(cd "$repo" && "$cf" --style=file -i "${files[@]}")
echo "formatted ${#files[@]} files"
