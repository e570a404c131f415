// The sampling rule shared by the host (sample_logits) and the GPU sampler (kernels/cuda/sample.cu),
// written so both can follow it exactly:
//   temperature <= 0: argmax (lowest index among ties).
//   p_i = exp((l_i - max l) / T);  keep i iff p_i >= tau, tau = max(tau_k, tau_p), where
//   tau_k = the k-th largest p (top_k > 0) and tau_p = the largest t with sum(kept p_i >= t) >= top_p * sum(kept p).
//   u = uniform(seed, step, row) in [0, 1); return the first kept i (in index order) whose running
//   sum of kept p exceeds u * sum(kept p).
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define SSM_HOST_DEVICE __host__ __device__
#else
#define SSM_HOST_DEVICE
#endif

namespace ssm {

SSM_HOST_DEVICE inline uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// 24-bit uniform in [0, 1), identical on host and device.
SSM_HOST_DEVICE inline float sample_uniform(uint64_t seed, uint64_t step, uint64_t row) {
  uint64_t h = splitmix64(seed ^ splitmix64(step * 0x100000001b3ull + row));
  return float(h >> 40) * (1.0f / 16777216.0f);
}

}  // namespace ssm
