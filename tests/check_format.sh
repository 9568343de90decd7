#!/usr/bin/env bash
# check_format.sh <libtokemb.so> <repo-root>
# The C sources follow .clang-format (applied to the whole tree once for 1.0): scripts/format.sh --check
# lists every file clang-format would change and fails if there is one.
set -euo pipefail
repo="$2"
command -v clang-format-14 >/dev/null 2>&1 || command -v clang-format >/dev/null 2>&1 ||
  { echo "clang-format is not installed (scripts/deps.sh test installs it)"; exit 1; }
bash "$repo/scripts/format.sh" --check
echo "check_format: every C source follows .clang-format"
