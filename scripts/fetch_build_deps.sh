#!/usr/bin/env bash
# Downloads the Debian packages of the C++ build dependencies into .deps/ (ignored by git), for a
# GPU machine that has CUDA and CMake but no package access: scripts/gpu_check.sh unpacks them.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .deps && cd .deps
apt-get download nlohmann-json3-dev libcli11-dev libopenblas-pthread-dev libopenblas0-pthread libgfortran5 libpcre2-dev \
  libpcre2-8-0 libpcre2-16-0 libpcre2-32-0 libpcre2-posix3 libgtest-dev pkgconf-bin libpkgconf3 libhwy-dev libhwy1 \
  libdnnl-dev libdnnl2 libgomp1 ocl-icd-libopencl1
