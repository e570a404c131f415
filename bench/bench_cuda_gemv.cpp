// Decode GEMV on the GPU: microseconds per call and weight-read rate (GB/s) on the matrices of
// published model shapes: at M = 1 for each loads-in-flight setting of the kernel (auto, 4, 8, 16), at M = 2 and 8 the default.
//
//   build/bin/bench_cuda_gemv [reps]
//
// Each shape gets enough weight copies (>= 512 MiB in all) that consecutive calls never hit L2, as
// in a real decode where every layer has its own matrices; the calls are captured in one CUDA graph
// (with programmatic dependent launch, like the decode graph) and replayed `reps` times. The rate
// counts weight bytes only (x and y are a few KiB).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/cuda/cuda.hpp"

namespace kc = ssm::kernels::cuda;

namespace {

struct Shape {
  const char* name;
  int64_t N, K;
  bool norm, acc;
};

void ck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "%s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int reps = argc > 1 ? std::max(1, std::atoi(argv[1])) : 20;
  int dev_count = 0;
  if (cudaGetDeviceCount(&dev_count) != cudaSuccess || dev_count == 0) {
    std::printf("no CUDA device; nothing to measure\n");
    return 0;
  }
  cudaDeviceProp prop{};
  ck(cudaGetDeviceProperties(&prop, 0), "properties");
  std::printf("device: %s\n", prop.name);
  const Shape shapes[] = {
      {"mamba-2.8b in_proj", 10240, 2560, true, false},   {"mamba-2.8b x_proj", 192, 5120, false, false},
      {"mamba-2.8b out_proj", 2560, 5120, false, true},   {"mamba-2.8b lm_head", 50280, 2560, true, false},
      {"mamba2-2.7b in_proj", 10576, 2560, true, false},  {"mamba-130m in_proj", 3072, 768, true, false},
  };
  cudaStream_t s;
  ck(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "stream");
  std::printf("%-22s %2s %6s %10s %10s\n", "matrix", "M", "unroll", "us/call", "GB/s");
  for (const Shape& sh : shapes) {
    const size_t bytes = size_t(sh.N) * size_t(sh.K) * 2;  // bf16
    const int copies = int(std::max<size_t>(2, ((size_t(512) << 20) + bytes - 1) / bytes));
    std::vector<void*> w(static_cast<size_t>(copies), nullptr);
    for (auto& p : w) {
      ck(cudaMalloc(&p, bytes), "weights");
      ck(cudaMemset(p, 0x3c, bytes), "weights");  // bf16 0x3c3c, about 0.0115
    }
    float *x, *y, *nw;
    ck(cudaMalloc(reinterpret_cast<void**>(&x), size_t(8 * sh.K) * 4), "x");
    ck(cudaMalloc(reinterpret_cast<void**>(&y), size_t(8 * sh.N) * 4), "y");
    ck(cudaMalloc(reinterpret_cast<void**>(&nw), size_t(sh.K) * 4), "norm");
    ck(cudaMemset(x, 0, size_t(8 * sh.K) * 4), "x");
    ck(cudaMemset(y, 0, size_t(8 * sh.N) * 4), "y");
    ck(cudaMemset(nw, 0, size_t(sh.K) * 4), "norm");
    for (int64_t M : {1, 2, 8}) {
      for (int unroll : {0, 4, 8, 16}) {
        if (M > 1 && unroll) continue;  // the loads-in-flight sweep at M = 1 only
        kc::LinearArgs a{M, sh.N, sh.K, x, sh.K, nullptr, ssm::DType::BF16, nullptr, y, sh.N,
                         sh.norm ? nw : nullptr, 1e-5f, sh.acc};
        const int calls = std::max(copies, 64);
        a.w = w[0];
        kc::gemv(a, s, unroll);  // plans, occupancy, first-launch costs outside the graph
        ck(cudaStreamSynchronize(s), "warm-up");
        cudaGraph_t g;
        ck(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), "capture");
        for (int c = 0; c < calls; c++) {
          a.w = w[size_t(c % copies)];
          kc::gemv(a, s, unroll);
        }
        ck(cudaStreamEndCapture(s, &g), "capture");
        cudaGraphExec_t ge;
        ck(cudaGraphInstantiate(&ge, g, 0), "instantiate");
        ck(cudaGraphLaunch(ge, s), "launch");  // warm-up
        cudaEvent_t e0, e1;
        cudaEventCreate(&e0);
        cudaEventCreate(&e1);
        ck(cudaEventRecord(e0, s), "event");
        for (int r = 0; r < reps; r++) ck(cudaGraphLaunch(ge, s), "launch");
        ck(cudaEventRecord(e1, s), "event");
        ck(cudaEventSynchronize(e1), "sync");
        float ms = 0.f;
        cudaEventElapsedTime(&ms, e0, e1);
        const double us = double(ms) * 1e3 / double(reps * calls);
        std::printf("%-22s %2lld %6s %10.2f %10.0f\n", sh.name, (long long)M,
                    unroll ? std::to_string(unroll).c_str() : "auto", us, double(bytes) / us / 1e3);
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
        cudaGraphExecDestroy(ge);
        cudaGraphDestroy(g);
      }
    }
    for (auto& p : w) cudaFree(p);
    cudaFree(x);
    cudaFree(y);
    cudaFree(nw);
  }
  cudaStreamDestroy(s);
  return 0;
}
