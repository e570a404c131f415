#!/usr/bin/env bash
# One GPU-machine call after a change: build, every GPU test with its full failure output, the
# decode-consistency tests with and without the fused Mamba-1 conv+x_proj step, decode/prefill A/B
# timings of the switchable variants, and an Nsight Compute per-kernel summary of batch-1 decode
# (mamba-2.8b) and of a 2,048-token prefill (mamba2-2.7b). Logs go to $OUT (default /tmp/gpu_diag).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_diag}
BUILD=${BUILD:-build-gpu}
mkdir -p "$OUT"
BUILD_ONLY=1 bash scripts/gpu_check.sh 2>&1 | tail -5
(cd "$BUILD" && ctest -L gpu -j4 --timeout 300 --output-on-failure >"$OUT/ctest.log" 2>&1)
grep -E "tests passed|FAILED|Failed|Failure|Expected|Which is|actual|max \|difference|step's argmax" "$OUT/ctest.log" | head -40
for v in SSM_CUDA_FUSE_XPROJ=0 SSM_CUDA_FUSE_XPROJ=1 SSM_PDL=0; do
  echo "== $v"
  env "$v" "$BUILD"/tests/ssm_gpu_tests --gtest_filter='CudaModel.StepSample*:CudaModel.DecodeIs*' 2>&1 |
    grep -E "OK|FAILED|argmax|difference" | head -12
done
B="$BUILD/bin/ssm bench --device cuda --dtype bf16 -r 3"
for v in SSM_CUDA_FUSE_XPROJ=0 SSM_CUDA_FUSE_XPROJ=1 SSM_CUDA_NOFUSE=1 SSM_GEMV_OLD=1 SSM_PDL=0; do
  echo "== mamba-2.8b decode, $v"
  env "$v" $B --shape mamba-2.8b -p 0 -n 128 -b 1,8 | grep "tg128"
done
if command -v ncu >/dev/null; then
  ncu --clock-control none --graph-profiling node --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
    --print-summary per-kernel --launch-count 400 \
    "$BUILD"/bin/ssm bench --device cuda --dtype bf16 -r 1 --shape mamba-2.8b -p 0 -n 2 -b 1 >"$OUT/ncu_decode.txt" 2>&1
  grep -E "^  [a-zA-Z_].*\(|gpu__time_duration.sum|dram__throughput" "$OUT/ncu_decode.txt" | head -60
  ncu --clock-control none --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed \
    --print-summary per-kernel --launch-count 300 \
    "$BUILD"/bin/ssm bench --device cuda --dtype bf16 -r 1 --shape mamba2-2.7b -p 2048 -n 0 >"$OUT/ncu_prefill.txt" 2>&1
  grep -E "^  [a-zA-Z_].*\(|gpu__time_duration.sum|throughput" "$OUT/ncu_prefill.txt" | head -60
fi
