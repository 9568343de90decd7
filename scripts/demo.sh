#!/usr/bin/env bash
# demo.sh - the main job: build tokemb (Release), run the seed walkthrough demo, then a short benchmark.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bash "$repo/scripts/deps.sh" demo
build="$repo/build"
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
"$build/examples/tokemb-demo"
if [ -x "$build/bench/tokemb-bench" ]; then
  echo
  echo "== short benchmark (tokemb-bench --quick) =="
  "$build/bench/tokemb-bench" --quick --csv "$build/bench-quick.csv"
fi
