#!/usr/bin/env bash
# A/B timings on the GPU machine in one call: each argument is "LABEL;ENV=V ENV2=V;ssm bench args"
# and runs `env ENV… build-gpu/bin/ssm bench --device cuda ARGS`, printing its table rows under the
# label. With PASSES=2 (default 1) each case runs again in reverse order, so drift shows up as
# disagreement.
#   scripts/gpu_ab.sh "ssd f32;SSM_CUDA_SSD=f32;--shape mamba2-2.7b -p 2048 -n 0" "ssd bf16;;--shape mamba2-2.7b -p 2048 -n 0"
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build-gpu/bin/ssm}
run_case() {
  IFS=';' read -r label envs args <<<"$1"
  echo "---- $label [${envs:-defaults}] $args"
  # shellcheck disable=SC2086
  env $envs "$BIN" bench --device cuda --dtype bf16 $args 2>&1 | grep -E "^\| |rror" | grep -v -- "---"
}
cases=("$@")
for c in "${cases[@]}"; do run_case "$c"; done
[ "${PASSES:-1}" -ge 2 ] || exit 0
echo "==== second pass, reverse order"
for ((i = ${#cases[@]} - 1; i >= 0; i--)); do run_case "${cases[$i]}"; done
