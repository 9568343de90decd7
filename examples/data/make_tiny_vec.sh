#!/usr/bin/env bash
# examples/data/make_tiny_vec.sh [OUT_DIR] - regenerates tiny.vec, the small fastText model the demo's
# neighbours section loads: a deterministic synthetic corpus (make_corpus.py: sentences built from four
# topical word clusters - royalty, animals, colours, food - plus function words) trained with
# `fasttext skipgram` on one thread. The committed tiny.vec was produced by this script with Debian's
# fasttext 0.9.2; run it again to rebuild (needs `fasttext` and python3).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here}
py=/usr/bin/python3; [ -x "$py" ] || py=python3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
"$py" "$here/make_corpus.py" > "$tmp/corpus.txt"
fasttext skipgram -input "$tmp/corpus.txt" -output "$tmp/tiny" -dim 16 -epoch 30 -lr 0.2 -neg 20 -t 1 -minCount 5 -ws 4 \
  -minn 0 -maxn 0 -thread 1 -seed 0 -verbose 0
mv "$tmp/tiny.vec" "$out/tiny.vec"
echo "wrote $out/tiny.vec ($(head -1 "$out/tiny.vec"))"
