#!/usr/bin/env bash
# Installs the build dependencies, builds ssm and generates text with the bundled model (no download).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)" --target ssm_cli
build/bin/ssm generate -p "In the beginning" -n 60
