#!/usr/bin/env bash
# rust/run_tests.sh [BUILD_DIR] [cargo args...]
# Runs `cargo test --offline` for the Rust workspace (tokemb-sys + tokemb) against the libtokemb in
# BUILD_DIR (a CMake build tree; default: the installed library found by pkg-config), then runs the
# seed example. CARGO_TARGET_DIR defaults to BUILD_DIR/rust-target so the source tree stays clean.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [ $# -ge 1 ] && [ -d "$1" ]; then
  build="$(cd "$1" && pwd)"; shift
  export TOKEMB_LIB_DIR="$build"
  export LD_LIBRARY_PATH="$build${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$build/rust-target}"
fi
cd "$here"
cargo test --offline --workspace "$@"
cargo run --offline --quiet --example seed
