#!/usr/bin/env bash
# Bounded libFuzzer run of the parsers (safetensors header, config.json) and the chat template engine. Needs clang with
# libFuzzer (Debian: clang, libclang-rt-dev). Usage: scripts/fuzz.sh [seconds per target, default 60]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-60}
cmake -S . -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang -DSSM_FUZZ=ON \
  -DSSM_BUILD_BENCH=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target fuzz_safetensors fuzz_chat_template
mkdir -p build-fuzz/corpus
# Seeds: one valid safetensors file (selector byte 1) and the fixture configs (selector byte 0).
for d in tests/fixtures/*/; do
  [ -f "$d/config.json" ] && { printf '\000'; cat "$d/config.json"; } > "build-fuzz/corpus/cfg_$(basename "$d")"
done
for f in tests/fixtures/*/model.safetensors; do
  [ -f "$f" ] && { printf '\001'; head -c 4096 "$f"; } > "build-fuzz/corpus/st_$(basename "$(dirname "$f")")"
done
build-fuzz/tests/fuzz_safetensors -max_total_time="$SECS" -rss_limit_mb=2048 build-fuzz/corpus
# Chat template engine, seeded with the real templates of the test corpus.
mkdir -p build-fuzz/corpus_chat
cp tests/data/chat_templates/*.jinja build-fuzz/corpus_chat/
build-fuzz/tests/fuzz_chat_template -max_total_time="$SECS" -rss_limit_mb=2048 build-fuzz/corpus_chat
