#!/usr/bin/env bash
# check_layers.sh LIB REPO - the layer rule of src/ (src/README.md) holds: scripts/check_layers.py over the
# #include lines and over the calls between the library's objects (those of the build that made LIB when
# they are there, else the sources compiled afresh).
set -euo pipefail
lib=$1
repo=$2
objs=$(dirname "$lib")/CMakeFiles/tokemb.dir
if [ -d "$objs/src" ]; then
  exec /usr/bin/python3 "$repo/scripts/check_layers.py" --repo "$repo" --objects "$objs"
fi
exec /usr/bin/python3 "$repo/scripts/check_layers.py" --repo "$repo"
