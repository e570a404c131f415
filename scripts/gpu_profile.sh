#!/usr/bin/env bash
# Where decode and prefill time goes on the GPU, run after scripts/gpu_check.sh built $BUILD:
#   * A/B decode and prefill timings of the switchable variants (SSM_GEMV_OLD=1: the previous GEMV;
#     SSM_PDL=0: no programmatic dependent launch; SSM_CUDA_NOFUSE=1: no fused decode kernels;
#     SSM_CUDA_FUSE_XPROJ=1: the fused, not bit-reproducible Mamba-1 conv+x_proj step);
#   * an Nsight Compute per-kernel summary (duration, DRAM throughput) of a short run per shape.
#   SHAPES="mamba-2.8b mamba2-2.7b" BATCHES=1,64 scripts/gpu_profile.sh
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
SHAPES=${SHAPES:-mamba-2.8b mamba2-2.7b}
BATCHES=${BATCHES:-1,64}
PROMPTS=${PROMPTS:-2048}
OUTDIR=${OUTDIR:-/tmp}
B="$BUILD/bin/ssm bench --device cuda --dtype bf16 -r 3"
for s in $SHAPES; do
  printf '\n==== %s: default ====\n' "$s"
  $B --shape "$s" -p "$PROMPTS" -n 128 -b "$BATCHES"
  if [ -n "${AB-1}" ]; then
    for v in SSM_GEMV_OLD=1 SSM_PDL=0 SSM_CUDA_NOFUSE=1 SSM_CUDA_FUSE_XPROJ=1; do
      printf '\n==== %s: %s ====\n' "$s" "$v"
      env "$v" $B --shape "$s" -p 0 -n 128 -b "$BATCHES"
    done
  fi
done
if command -v ncu >/dev/null && [ -z "${NO_NCU:-}" ]; then
  for s in $SHAPES; do
    for b in ${NCU_BATCHES:-1 64}; do
      printf '\n==== ncu %s decode batch %s (per-kernel means over one short run) ====\n' "$s" "$b"
      ncu --graph-profiling node --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
        --print-summary per-kernel --launch-count ${NCU_COUNT:-600} \
        $BUILD/bin/ssm bench --device cuda --dtype bf16 -r 1 --shape "$s" -p 0 -n 2 -b "$b" >"$OUTDIR/ncu_${s}_b$b.txt" 2>&1
      grep -E "^  [a-zA-Z_].*\(|gpu__time_duration.sum|dram__throughput" "$OUTDIR/ncu_${s}_b$b.txt" | head -80
    done
    printf '\n==== ncu %s prefill %s ====\n' "$s" "${NCU_PREFILL:-2048}"
    ncu --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed \
      --print-summary per-kernel --launch-count ${NCU_PCOUNT:-400} \
      $BUILD/bin/ssm bench --device cuda --dtype bf16 -r 1 --shape "$s" -p "${NCU_PREFILL:-2048}" -n 0 >"$OUTDIR/ncu_${s}_prefill.txt" 2>&1
    grep -E "^  [a-zA-Z_].*\(|gpu__time_duration.sum|throughput" "$OUTDIR/ncu_${s}_prefill.txt" | head -80
  done
fi
