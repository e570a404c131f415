#!/usr/bin/env bash
# Tokenizer encode speed: ssm::Tokenizer vs Hugging Face `tokenizers` (npm package, Rust core) on the
# same ~1 MB strings and the same tokenizer.json files, one thread each, one run. Prints a table with
# the ratio ssm / HF. Needs the npm package: `npm install --prefix .peers tokenizers`.
# Usage: bash scripts/bench_tokenizer.sh [TOKENIZER_DIR...]   (default: tests/data/tokenizers/*/)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/bin/bench_tokenizer ] || cmake --build build --target bench_tokenizer
dirs=("$@")
[ ${#dirs[@]} -gt 0 ] || dirs=(tests/data/tokenizers/*/)
ours=$(mktemp) theirs=$(mktemp)
trap 'rm -f "$ours" "$theirs"' EXIT
build/bin/bench_tokenizer "${dirs[@]}" > "$ours"
for d in "${dirs[@]}"; do
  d=${d%/}
  node scripts/tokenizer_reference.mjs --bench --dir "$(dirname "$d")" --only "$(basename "$d")" >> "$theirs"
done
echo "| tokenizer | text | ssm MB/s | HF tokenizers MB/s | ssm / HF |"
echo "|---|---|---|---|---|"
awk -F'\t' 'NR==FNR { hf[$1 "|" $2] = $3 + 0; next }
  { k = $1 "|" $2; printf "| %s | %s | %.2f | %.2f | %.2f |\n", $1, $2, $3 + 0, hf[k], ($3 + 0) / hf[k] }' "$theirs" "$ours"
