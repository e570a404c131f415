#!/usr/bin/env bash
# One GPU-machine call after a change: build, every GPU test with its full failure output, the
# decode-consistency tests with and without the fused Mamba-1 conv+x_proj step, prefill and decode
# A/B timings of the switchable variants (SSM_CUDA_SSD=f32|tf32: the Mamba-2 chunk products;
# SSM_CUDA_SCAN_CHUNKS=1: the sequential Mamba-1 scan; SSM_CUDA_SCAN_LANES=1: its lane-group kernel), and an Nsight Compute per-kernel summary of a
# 2,048-token prefill of mamba-2.8b and mamba2-2.7b. Logs go to $OUT (default /tmp/gpu_diag).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_diag}
BUILD=${BUILD:-build-gpu}
mkdir -p "$OUT"
BUILD_ONLY=1 bash scripts/gpu_check.sh 2>&1 | tail -5
(cd "$BUILD" && ctest -L gpu -j4 --timeout 300 --output-on-failure >"$OUT/ctest.log" 2>&1)
grep -E "tests passed|FAILED|Failed|Failure|Expected|Which is|actual|max \|difference|step's argmax" "$OUT/ctest.log" | head -40
"$BUILD"/tests/ssm_gpu_tests --gtest_filter='Shapes/CudaSsd.*:CudaKernels.SelectiveScan*:All/CudaFixture.*' 2>&1 |
  grep -E "^\[ (ssd|gpu parity)|FAILED" | head -60
for v in SSM_CUDA_FUSE_XPROJ=0 SSM_CUDA_FUSE_XPROJ=1; do
  echo "== $v"
  env "$v" "$BUILD"/tests/ssm_gpu_tests --gtest_filter='CudaModel.StepSample*:CudaModel.DecodeIs*' 2>&1 |
    grep -E "OK|FAILED|argmax|difference" | head -12
done
B="$BUILD/bin/ssm bench --device cuda --dtype bf16 -r 3"
# The variants' prefill, then the defaults' prefill and decode.
echo "== mamba2-2.7b, SSM_CUDA_SSD=f32"
SSM_CUDA_SSD=f32 $B --shape mamba2-2.7b -p 2048,8192 -n 0 | grep -E "pp|tg"
echo "== mamba2-2.7b, default (tf32 SSD)"
$B --shape mamba2-2.7b -p 2048,8192 -n 128 -b 1,64 | grep -E "pp|tg"
echo "== mamba-2.8b, SSM_CUDA_SCAN_LANES=1 SSM_CUDA_SCAN_CHUNKS=1 (the lane-group scan, sequential)"
SSM_CUDA_SCAN_LANES=1 SSM_CUDA_SCAN_CHUNKS=1 $B --shape mamba-2.8b -p 2048,8192 -n 0 | grep -E "pp|tg"
echo "== mamba-2.8b, SSM_CUDA_SCAN_CHUNKS=1 (thread-per-channel scan, sequential)"
SSM_CUDA_SCAN_CHUNKS=1 $B --shape mamba-2.8b -p 2048,8192 -n 0 | grep -E "pp|tg"
echo "== mamba-2.8b, default (chunked scan)"
$B --shape mamba-2.8b -p 2048,8192 -n 128 -b 1,64 | grep -E "pp|tg"
if command -v ncu >/dev/null && [ -z "${NO_NCU:-}" ]; then
  for s in mamba-2.8b mamba2-2.7b; do
    echo "== ncu $s prefill 2048"
    ncu --clock-control none --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed,sm__throughput.avg.pct_of_peak_sustained_elapsed \
      --print-summary per-kernel --launch-count ${NCU_PCOUNT:-200} \
      "$BUILD"/bin/ssm bench --device cuda --dtype bf16 -r 1 --shape "$s" -p 2048 -n 0 >"$OUT/ncu_prefill_$s.txt" 2>&1
    grep -E "^  [a-zA-Z_].*\(|gpu__time_duration.sum|throughput" "$OUT/ncu_prefill_$s.txt" | head -60
  done
fi
# Why the SSD output/state kernels run at ~35-41% SM throughput (NCU_SSD=1): occupancy, stall reasons
# and memory-pipe use of a few launches each, from a 2,048-token mamba2-2.7b prefill.
if command -v ncu >/dev/null && [ -n "${NCU_SSD:-}" ]; then
  echo "== ncu SSD kernels, detailed sections"
  ncu --clock-control none --kernel-name regex:"ssd_(out|state)_kernel" --launch-count 4 \
    --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section MemoryWorkloadAnalysis \
    "$BUILD"/bin/ssm bench --device cuda --dtype bf16 -r 1 --shape mamba2-2.7b -p 2048 -n 0 >"$OUT/ncu_ssd_detail.txt" 2>&1
  grep -E "ssd_|Duration|Achieved Occupancy|Theoretical Occupancy|Registers Per|Block Limit|Stall|Warp Cycles Per Issued|Mem Pipes|L1/TEX Hit|Compute \(SM\) Throughput" \
    "$OUT/ncu_ssd_detail.txt" | head -80
fi
