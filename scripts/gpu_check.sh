#!/usr/bin/env bash
# GPU check, run from the repository root on a machine with an NVIDIA GPU (Hopper by default):
# configure with CUDA, build, run the GPU tests (ctest -L gpu), print the fixture parity errors, and
# run the benchmarks on published shapes with random weights. About 6-8 minutes on an H100.
#   scripts/gpu_check.sh            # everything
#   ARCH=80 scripts/gpu_check.sh    # another GPU generation
#   QUICK=1 scripts/gpu_check.sh    # tests only, no benchmarks
#   BUILD_ONLY=1 scripts/gpu_check.sh  # configure and build only (TARGETS="ssm_cli ssm_gpu_tests": just those)
set -uo pipefail
cd "$(dirname "$0")/.."
ARCH=${ARCH:-90a}
BUILD=${BUILD:-build-gpu}
JOBS=${JOBS:-16}
status=0
section() { printf '\n==== %s ====\n' "$*"; }

section "GPU"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,clocks.max.mem,driver_version --format=csv || true

# Build dependencies for a bare GPU image: Debian .debs (scripts/fetch_build_deps.sh) in $DEPS are
# unpacked under /tmp/ssm-deps and found through pkg-config's sysroot and the CMake package dirs.
extra=()
DEPS=${DEPS:-.deps}
if ls "$DEPS"/*.deb >/dev/null 2>&1; then
  D=/tmp/ssm-deps
  mkdir -p $D && for f in "$DEPS"/*.deb; do dpkg-deb -x "$f" $D; done
  A=$D/usr/lib/x86_64-linux-gnu
  export PKG_CONFIG_SYSROOT_DIR=$D PKG_CONFIG_LIBDIR=$A/openblas-pthread/pkgconfig:$A/pkgconfig:$D/usr/share/pkgconfig
  export LD_LIBRARY_PATH=$A/openblas-pthread:$A${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  extra=(-DPKG_CONFIG_EXECUTABLE=$D/usr/bin/pkgconf -Dnlohmann_json_DIR=$D/usr/share/cmake/nlohmann_json
         -DCLI11_DIR=$D/usr/share/cmake/CLI11 -DGTest_DIR=$A/cmake/GTest -DCMAKE_PREFIX_PATH=$D/usr)
  echo "using build dependencies from $DEPS"
fi

section "configure + build (CUDA arch $ARCH)"
cmake -S . -B "$BUILD" -DSSM_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DCMAKE_BUILD_TYPE=Release "${extra[@]}" >"$BUILD.cmake.log" 2>&1 ||
  { tail -30 "$BUILD.cmake.log"; exit 1; }
t0=$(date +%s)
cmake --build "$BUILD" -j"$JOBS" ${TARGETS:+--target $TARGETS} 2>&1 | grep -E "error|warning: .*\.cu" ; test "${PIPESTATUS[0]}" -eq 0 || exit 1
echo "build: $(( $(date +%s) - t0 )) s"
[ -n "${BUILD_ONLY:-}" ] && exit 0

section "GPU tests (ctest -L gpu)"
(cd "$BUILD" && ctest -L gpu -j4 --timeout 300 --output-on-failure 2>&1 | tail -40) || status=1

section "GPU parity on the fixtures (max abs error vs transformers fp32 logits) and greedy vs CPU"
"$BUILD"/tests/ssm_gpu_tests --gtest_filter='All/CudaFixture.*:CudaModel.BundledModelGreedyEqualsCpu' 2>&1 |
  grep -E "gpu parity|gpu greedy|FAILED|PASSED" || status=1

section "kernel errors vs the scalar reference"
"$BUILD"/tests/ssm_gpu_tests --gtest_filter='Shapes/CudaLinear.*' 2>&1 | grep -E "^\[ linear|FAILED|PASSED"

section "CLI on CUDA"
"$BUILD"/bin/ssm generate --device cuda -p "In the beginning" -n 24 --temp 0 || status=1
"$BUILD"/bin/ssm generate --device cuda --dtype f32 -p "In the beginning" -n 24 --temp 0 || status=1
"$BUILD"/bin/ssm generate -p "In the beginning" -n 24 --temp 0 || status=1
"$BUILD"/bin/ssm perplexity --device cuda -m models/default -f tests/data/default_model_heldout.txt --ctx 512 || status=1

if [ -z "${QUICK:-}" ]; then
  section "benchmarks (random weights of published shapes, bf16 weights, f32 state)"
  B="$BUILD/bin/ssm bench --device cuda --dtype bf16 -r 3"
  $B --shape mamba-130m -p 512,2048 -n 128 -b 1,16,64 || status=1
  $B --shape mamba2-130m -p 512,2048 -n 128 -b 1,16,64 || status=1
  $B --shape mamba-2.8b -p 512,2048,8192 -n 128 -b 1,16,64 || status=1
  $B --shape mamba2-2.7b -p 512,2048,8192 -n 128 -b 1,16,64 || status=1
  $B --shape falcon-mamba-7b -p 2048 -n 64 -b 1,16 || status=1
fi
section "done (status $status)"
exit $status
