// Next-token choice on the GPU, one 1024-thread block per row of logits, following the rule of
// models/sample.hpp: argmax for temperature 0; otherwise top-k and top-p thresholds are found by
// bisection on the bit patterns of the (non-negative) probabilities — exact, no sort — and the
// token is drawn by a block-wide prefix sum in index order. Only the ids go back to the host.
#include "kernels/cuda/common.cuh"
#include "models/sample.hpp"

namespace ssm::kernels::cuda {
namespace {

constexpr int kThreads = 1024;

__device__ float count_ge(const float* p, int64_t V, float t, float* tmp, bool mass) {
  float c = 0.f;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
    if (p[i] >= t) c += mass ? p[i] : 1.f;
  return block_sum(c, tmp);
}

__global__ void __launch_bounds__(kThreads) sample_kernel(float* logits, int64_t V, float T, int top_k, float top_p,
                                                          uint64_t seed, uint64_t step, int32_t* out) {
  __shared__ float tmp[32], bv[32], pre[kThreads];
  __shared__ int64_t bi[32];
  __shared__ float sh_total;
  float* x = logits + int64_t(blockIdx.x) * V;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  float best = -INFINITY;
  int64_t bidx = V;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
    if (x[i] > best || (x[i] == best && i < bidx)) best = x[i], bidx = i;
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, best, o);
    const int64_t oi = __shfl_xor_sync(0xffffffffu, bidx, o);
    if (ov > best || (ov == best && oi < bidx)) best = ov, bidx = oi;
  }
  if (lane == 0) bv[warp] = best, bi[warp] = bidx;
  __syncthreads();
  if (threadIdx.x == 0) {
    for (int w = 1; w < kThreads / 32; w++)
      if (bv[w] > bv[0] || (bv[w] == bv[0] && bi[w] < bi[0])) bv[0] = bv[w], bi[0] = bi[w];
  }
  __syncthreads();
  const float mx = bv[0];
  const int64_t arg = bi[0];
  if (T <= 0.f || top_k == 1) {
    if (threadIdx.x == 0) out[blockIdx.x] = int32_t(arg);
    return;
  }
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) x[i] = expf((x[i] - mx) / T);
  __syncthreads();
  uint32_t lo = 0;
  if (top_k > 0 && top_k < V) {  // largest t with count(p >= t) >= k
    uint32_t hi = 0x3f800001u;
    while (hi - lo > 1) {
      const uint32_t mid = lo + (hi - lo) / 2;
      if (count_ge(x, V, __uint_as_float(mid), tmp, false) >= float(top_k)) lo = mid;
      else hi = mid;
    }
  }
  if (top_p < 1.f) {  // largest t >= tau_k with mass(p >= t) >= top_p · mass(p >= tau_k)
    const float z = count_ge(x, V, __uint_as_float(lo), tmp, true);
    uint32_t hi = 0x3f800001u;
    while (hi - lo > 1) {
      const uint32_t mid = lo + (hi - lo) / 2;
      if (count_ge(x, V, __uint_as_float(mid), tmp, true) >= top_p * z) lo = mid;
      else hi = mid;
    }
  }
  const float tau = __uint_as_float(lo);
  // Contiguous segment per thread, exclusive prefix over threads, then the crossing thread walks.
  const int64_t seg = (V + kThreads - 1) / kThreads, i0 = min(V, threadIdx.x * seg), i1 = min(V, i0 + seg);
  float mine = 0.f;
  for (int64_t i = i0; i < i1; i++)
    if (x[i] >= tau) mine += x[i];
  pre[threadIdx.x] = mine;
  __syncthreads();
  if (threadIdx.x == 0) {
    float run = 0.f;
    for (int t = 0; t < kThreads; t++) {
      const float v = pre[t];
      pre[t] = run;
      run += v;
    }
    sh_total = run;  // total kept mass
    out[blockIdx.x] = int32_t(arg);  // fallback if rounding leaves the target unreached
  }
  __syncthreads();
  const float target = sample_uniform(seed, step, blockIdx.x) * sh_total;
  float acc = pre[threadIdx.x];
  if (acc <= target && target < acc + mine) {
    for (int64_t i = i0; i < i1; i++) {
      if (x[i] < tau) continue;
      acc += x[i];
      if (acc > target) {
        out[blockIdx.x] = int32_t(i);
        break;
      }
    }
  }
}

}  // namespace

void sample(float* logits, int64_t B, int64_t V, float temperature, int top_k, float top_p, uint64_t seed, uint64_t step,
            int32_t* out, cudaStream_t s) {
  if (B <= 0) return;
  sample_kernel<<<unsigned(B), kThreads, 0, s>>>(logits, V, temperature, top_k, top_p, seed, step, out);
  SSM_CUDA_LAUNCH_CHECK("sample");
}

}  // namespace ssm::kernels::cuda
