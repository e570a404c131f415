#!/usr/bin/env bash
# CPU kernel micro-benchmarks (bench/bench_kernels.cpp) after a build: GEMV bandwidth, the scans and
# the conv once, then the prefill GEMMs once per SSM_CPU_GEMM mode (each mode is read once per
# process), so oneDNN f32, oneDNN bf16 and OpenBLAS sgemm are compared in one run.
#   THREADS=2 scripts/bench_kernels.sh [extra Google Benchmark flags]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-build/bin/bench_kernels}
export SSM_THREADS=${THREADS:-2} OMP_NUM_THREADS=${THREADS:-2}
"$BIN" --benchmark_filter='Gemv|Scan|Ssd|Conv' --benchmark_min_time=0.5 "$@"
for m in openblas f32 bf16; do
  SSM_CPU_GEMM=$m "$BIN" --benchmark_filter='Gemm' --benchmark_min_time=0.5 "$@"
done
