#!/usr/bin/env bash
# One GPU-machine call for decode work: build, the decode GEMV micro-benchmark (bench_cuda_gemv:
# us per call and GB/s per loads-in-flight setting), the GPU tests, decode tokens/s at batch 1 and 64
# on mamba-2.8b and mamba2-2.7b (defaults, then SSM_CUDA_NOFUSE=1 for the fused-kernel A/B), and an
# Nsight Compute per-launch duration list of a few decode steps at the batches in NCU_BATCHES
# (default 64), written as CSV to $OUT (default /tmp/gpu_decode) for per-kernel sums off the machine.
#   SKIP_TESTS=1 NO_NCU=1 REPS=3 STATE=bf16 (adds --state-dtype bf16 runs at STATE_BATCHES, default 64)
#   NCU_SHAPES="mamba-2.8b mamba2-2.7b" NCU_BATCHES=64 NCU_COUNT=700
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_decode}
BUILD=${BUILD:-build-gpu}
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem,driver_version --format=csv,noheader
BUILD_ONLY=1 bash scripts/gpu_check.sh 2>&1 | grep -E "build:|error" | head -20
test -x "$BUILD/bin/ssm" || { echo "build failed"; exit 1; }
echo "== bench_cuda_gemv"
"$BUILD"/bin/bench_cuda_gemv 20 | tee "$OUT/gemv.txt"
B="$BUILD/bin/ssm bench --device cuda --dtype bf16 -r ${REPS:-3} -p 0 -n 128"
for s in mamba-2.8b mamba2-2.7b; do
  echo "== $s decode (default)"
  $B --shape $s -b 1,64 | grep -E "tg"
  if [ "$s" = mamba-2.8b ]; then
    echo "== $s decode, SSM_CUDA_NOFUSE=1"
    SSM_CUDA_NOFUSE=1 $B --shape $s -b 1 | grep -E "tg"
  fi
  if [ -n "${STATE:-}" ]; then
    echo "== $s decode, --state-dtype $STATE"
    $B --shape $s -b ${STATE_BATCHES:-64} --state-dtype "$STATE" | grep -E "tg|state"
  fi
done
if [ -z "${SKIP_TESTS:-}" ]; then
  echo "== GPU tests"
  (cd "$BUILD" && ctest -L gpu --timeout 300 --output-on-failure >"$OUT/ctest.log" 2>&1)
  grep -E "tests passed|FAILED|Failed|Failure|Expected|Which is|actual|max \|difference" "$OUT/ctest.log" | head -30
fi
"$BUILD"/tests/ssm_gpu_tests --gtest_filter='All/CudaFixture.*' 2>&1 | grep -E "gpu parity" >"$OUT/parity.txt"
grep -E "state bf16" "$OUT/parity.txt"
if command -v ncu >/dev/null && [ -z "${NO_NCU:-}" ]; then
  for b in ${NCU_BATCHES:-64}; do
    for s in ${NCU_SHAPES:-mamba-2.8b mamba2-2.7b}; do
      echo "== ncu $s decode batch $b"
      ncu --clock-control none --graph-profiling node --metrics gpu__time_duration.sum,dram__throughput.avg.pct_of_peak_sustained_elapsed \
        --csv --page raw --launch-count ${NCU_COUNT:-700} \
        "$BUILD"/bin/ssm bench --device cuda --dtype bf16 -r 1 --shape "$s" -p 0 -n 2 -b "$b" >"$OUT/ncu_${s}_b$b.csv" 2>"$OUT/ncu_${s}_b$b.err"
      wc -l "$OUT/ncu_${s}_b$b.csv"
    done
  done
fi
