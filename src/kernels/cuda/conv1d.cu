// Depthwise causal conv1d + bias + SiLU (see params.hpp ConvParams). Prefill: one thread per
// (token, channel) reading its K inputs from the carried window or x, then one thread per channel
// advances the window (a second launch, so no thread overwrites a window value another still reads).
// Step: one thread per (sequence, channel) does window shift, conv and activation in registers.
#include "kernels/cuda/common.cuh"
#include "ssm/error.hpp"

namespace ssm::kernels::cuda {
namespace {

constexpr int kMaxK = 8;

__global__ void conv_prefill_kernel(ConvParams p) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.L * p.C) return;
  const int64_t t = i / p.C, c = i % p.C, K = p.K;
  float acc = p.bias ? p.bias[c] : 0.f;
  for (int64_t k = 0; k < K; k++) {
    const int64_t j = t - (K - 1) + k;  // input time of tap k
    const float v = j < 0 ? p.state[(K - 1 + j) * p.C + c] : p.x[j * p.x_stride + c];
    acc = fmaf(p.w[c * K + k], v, acc);
  }
  p.y[t * p.y_stride + c] = p.silu ? silu_d(acc) : acc;
}

__global__ void conv_state_kernel(ConvParams p) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= p.C) return;
  const int64_t K = p.K, L = p.L;
  float nw[kMaxK];
  for (int64_t k = 0; k < K - 1; k++) {  // new window = last K-1 of [old window | x]
    const int64_t j = L - (K - 1) + k;
    nw[k] = j < 0 ? p.state[(K - 1 + j) * p.C + c] : p.x[j * p.x_stride + c];
  }
  for (int64_t k = 0; k < K - 1; k++) p.state[k * p.C + c] = nw[k];
}

__global__ void conv_step_kernel(ConvStepParams p) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.B * p.C) return;
  const int64_t b = i / p.C, c = i % p.C, K = p.K;
  float* st = p.states + int64_t(p.slots[b]) * p.slot_stride;
  const float xn = p.x[b * p.x_stride + c];
  float acc = p.bias ? p.bias[c] : 0.f;
  for (int64_t k = 0; k < K - 1; k++) {
    const float v = st[k * p.C + c];
    acc = fmaf(p.w[c * K + k], v, acc);
    if (k > 0) st[(k - 1) * p.C + c] = v;  // shift the window left by one
  }
  acc = fmaf(p.w[c * K + K - 1], xn, acc);
  if (K > 1) st[(K - 2) * p.C + c] = xn;
  p.y[b * p.y_stride + c] = p.silu ? silu_d(acc) : acc;
}

}  // namespace

void causal_conv1d(const ConvParams& p, cudaStream_t s) {
  if (p.K > kMaxK) throw Error("causal_conv1d: conv width " + std::to_string(p.K) + " exceeds " + std::to_string(kMaxK));
  if (p.L <= 0) return;
  conv_prefill_kernel<<<blocks_for(p.L * p.C, 256), 256, 0, s>>>(p);
  SSM_CUDA_LAUNCH_CHECK("causal_conv1d");
  if (p.K > 1) conv_state_kernel<<<blocks_for(p.C, 256), 256, 0, s>>>(p);
  SSM_CUDA_LAUNCH_CHECK("causal_conv1d state");
}

void causal_conv1d_step(const ConvStepParams& p, cudaStream_t s) {
  if (p.B <= 0) return;
  conv_step_kernel<<<blocks_for(p.B * p.C, 256), 256, 0, s>>>(p);
  SSM_CUDA_LAUNCH_CHECK("causal_conv1d_step");
}

}  // namespace ssm::kernels::cuda
