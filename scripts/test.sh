#!/usr/bin/env bash
# Installs the build dependencies, builds ssm and runs the test suite (CTest labels other than
# gpu and long). Used by the README and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" -LE 'gpu|long' --timeout 900
