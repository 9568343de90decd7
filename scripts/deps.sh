#!/usr/bin/env bash
# deps.sh [test|demo] - make sure the Debian 12 packages tokemb needs are installed. As root, installs
# what is missing with apt-get; otherwise prints the exact install line and fails.
set -euo pipefail
what=${1:-test}
pkgs=(build-essential cmake pkg-config libopenblas-dev libcmocka-dev python3-numpy python3-torch)
if [ "$what" = test ]; then
  pkgs+=(python3-venv python3-pip python3-setuptools python3-wheel abigail-tools clang clang-format libclang-rt-14-dev valgrind python3-gensim fasttext python3-matplotlib)
  # libtokemb_mpi and its mpirun suites
  pkgs+=(libopenmpi-dev openmpi-bin python3-mpi4py)
  # the Rust crates need cargo; Debian's is used unless a toolchain is already on PATH
  command -v cargo >/dev/null 2>&1 || pkgs+=(cargo)
fi
if [ "$what" = demo ]; then
  pkgs+=(gnuplot-nox)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -eq 0 ]; then
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "deps: missing Debian packages. Run as root:"
  echo "  apt-get install -y ${missing[*]}"
  exit 1
fi
