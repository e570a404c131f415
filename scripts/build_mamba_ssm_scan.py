#!/usr/bin/env python3
"""Builds the one piece of the official mamba_ssm that its Mamba-1 path cannot run without: the
`selective_scan_cuda` extension, forward only, bf16 inputs with f32 weights (what a bf16 Mamba-1
model runs), for one GPU architecture. This is the peer for scripts/bench_peers_gpu.py's Mamba-1
rows (mamba_ssm raises "selective_scan_cuda is not installed" without it).

The full extension (forward and backward, three input types, real and complex weights) compiles
for a long time; the peer benchmark needs one instantiation. So this script compiles mamba_ssm's own
sources from a checkout -- its binding (csrc/selective_scan/selective_scan.cpp) and its forward
kernel header -- plus two small translation units written here: one that instantiates the forward
kernel for (bf16, f32) only, and one that gives the other instantiations the binding refers to a body
that raises an error. Nothing of mamba_ssm is copied into this repository; its checkout is read
where it lies.

  python3 scripts/build_mamba_ssm_scan.py --mamba-src MAMBA_CHECKOUT --out BUILD_DIR [--arch 90a]
  PYTHONPATH=BUILD_DIR python3 scripts/bench_peers_gpu.py ...   # or --scan-ext BUILD_DIR there

Needs torch (with its CUDA headers), nvcc and ninja (torch.utils.cpp_extension). Compiler flags follow
mamba_ssm's setup.py for this extension (-O3, --use_fast_math, relaxed constexpr, extended lambdas,
half/bf16 operators enabled).
"""
import argparse
import os
import sys
import time

FWD_TU = """// Forward selective scan of mamba_ssm for bf16 inputs and f32 weights only (see build_mamba_ssm_scan.py).
#include "selective_scan_fwd_kernel.cuh"

template void selective_scan_fwd_cuda<at::BFloat16, float>(SSMParamsBase &params, cudaStream_t stream);
"""

# The binding dispatches over every (input, weight) pair and names the backward too; these bodies
# stand in for the instantiations this build leaves out.
STUB_TU = """// Instantiations left out of this build (see build_mamba_ssm_scan.py): calling one is an error.
#include <stdexcept>

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <c10/util/complex.h>
#include <cuda_runtime.h>

#include "selective_scan.h"

template <typename input_t, typename weight_t> void selective_scan_fwd_cuda(SSMParamsBase &params, cudaStream_t stream);
template <typename input_t, typename weight_t> void selective_scan_bwd_cuda(SSMParamsBwd &params, cudaStream_t stream);

#define SSM_LEFT_OUT(FN, PARAMS, IT, WT)                                                              \\
  template <> void FN<IT, WT>(PARAMS &, cudaStream_t) {                                               \\
    throw std::runtime_error(#FN "<" #IT ", " #WT "> is not in this build (forward bf16 x f32 only)");  \\
  }

SSM_LEFT_OUT(selective_scan_fwd_cuda, SSMParamsBase, float, float)
SSM_LEFT_OUT(selective_scan_fwd_cuda, SSMParamsBase, at::Half, float)
SSM_LEFT_OUT(selective_scan_fwd_cuda, SSMParamsBase, float, c10::complex<float>)
SSM_LEFT_OUT(selective_scan_fwd_cuda, SSMParamsBase, at::Half, c10::complex<float>)
SSM_LEFT_OUT(selective_scan_fwd_cuda, SSMParamsBase, at::BFloat16, c10::complex<float>)
SSM_LEFT_OUT(selective_scan_bwd_cuda, SSMParamsBwd, float, float)
SSM_LEFT_OUT(selective_scan_bwd_cuda, SSMParamsBwd, at::Half, float)
SSM_LEFT_OUT(selective_scan_bwd_cuda, SSMParamsBwd, at::BFloat16, float)
SSM_LEFT_OUT(selective_scan_bwd_cuda, SSMParamsBwd, float, c10::complex<float>)
SSM_LEFT_OUT(selective_scan_bwd_cuda, SSMParamsBwd, at::Half, c10::complex<float>)
SSM_LEFT_OUT(selective_scan_bwd_cuda, SSMParamsBwd, at::BFloat16, c10::complex<float>)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mamba-src", required=True, help="mamba_ssm source checkout (holds csrc/selective_scan)")
    ap.add_argument("--out", required=True, help="build directory; the module lands here")
    ap.add_argument("--arch", default="90a", help="CUDA architecture, e.g. 90a (H100/H200), 80 (A100)")
    args = ap.parse_args()
    csrc = os.path.join(os.path.abspath(args.mamba_src), "csrc", "selective_scan")
    for f in ("selective_scan.cpp", "selective_scan.h", "selective_scan_fwd_kernel.cuh"):
        if not os.path.isfile(os.path.join(csrc, f)):
            sys.exit(f"error: {os.path.join(csrc, f)} not found: --mamba-src must be a mamba_ssm checkout with csrc/")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    fwd, stub = os.path.join(out, "fwd_bf16_f32.cu"), os.path.join(out, "left_out.cu")
    with open(fwd, "w") as f:
        f.write(FWD_TU)
    with open(stub, "w") as f:
        f.write(STUB_TU)
    import torch.utils.cpp_extension as ext

    # torch's own spelling of the architecture ("90a" -> "9.0a"); its C++ standard is torch's choice.
    a = args.arch
    os.environ["TORCH_CUDA_ARCH_LIST"] = f"{a[:-2] if a.endswith('a') else a[:-1]}.{a[-2] if a.endswith('a') else a[-1]}" + ("a" if a.endswith("a") else "")
    flags = ["-O3", "-U__CUDA_NO_HALF_OPERATORS__", "-U__CUDA_NO_HALF_CONVERSIONS__",
             "-U__CUDA_NO_BFLOAT16_OPERATORS__", "-U__CUDA_NO_BFLOAT16_CONVERSIONS__",
             "-U__CUDA_NO_BFLOAT162_OPERATORS__", "-U__CUDA_NO_BFLOAT162_CONVERSIONS__",
             "--expt-relaxed-constexpr", "--expt-extended-lambda", "--use_fast_math", "-lineinfo"]
    t0 = time.time()
    mod = ext.load(name="selective_scan_cuda", sources=[os.path.join(csrc, "selective_scan.cpp"), fwd, stub],
                   extra_include_paths=[csrc], extra_cflags=["-O3"], extra_cuda_cflags=flags,
                   build_directory=out, verbose=False)
    print(f"built {mod.__file__} in {time.time() - t0:.0f} s; use PYTHONPATH={out}")


if __name__ == "__main__":
    main()
