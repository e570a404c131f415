// Mamba-1 selective scan (Gu & Dao 2023, Alg. 2) on the GPU; semantics of kernels/ref/scan.cpp.
// A group of GS lanes (GS = N rounded up to a power of two, at most 32) owns one channel: each lane
// keeps SPL = ceil(N/GS) states in registers for the whole sequence, and C·h is reduced with
// shuffles inside the group. dt softplus, the D skip and the z gate are fused; the step kernel also
// fuses dt_proj and FalconMamba's weightless B/C/Δ norms.
#include "kernels/cuda/common.cuh"
#include "ssm/error.hpp"

namespace ssm::kernels::cuda {
namespace {

constexpr int kScanThreads = 128;

__device__ __forceinline__ float group_sum(float v, int gs) {
  for (int o = gs / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <int SPL>
__global__ void __launch_bounds__(kScanThreads) scan_kernel(ScanParams p, int gs) {
  const int64_t e = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / gs;
  const int li = threadIdx.x % gs;
  const bool active = e < p.E;
  float h[SPL], A[SPL];
  for (int j = 0; j < SPL; j++) {
    const int64_t n = li + j * gs;
    const bool ok = active && n < p.N;
    h[j] = ok ? p.h[e * p.N + n] : 0.f;
    A[j] = ok ? p.A[e * p.N + n] : 0.f;
  }
  const float bias = active && p.dt_bias ? p.dt_bias[e] : 0.f;
  const float Dv = active && p.D ? p.D[e] : 0.f;
#pragma unroll 2
  for (int64_t t = 0; t < p.L; t++) {
    const float u = active ? p.u[t * p.u_stride + e] : 0.f;
    const float dt = softplus_d((active ? p.delta[t * p.delta_stride + e] : 0.f) + bias);
    const float* Bt = p.B + t * p.B_stride;
    const float* Ct = p.C + t * p.C_stride;
    float part = 0.f;
    for (int j = 0; j < SPL; j++) {
      const int64_t n = li + j * gs;
      if (active && n < p.N) {
        h[j] = expf(dt * A[j]) * h[j] + dt * Bt[n] * u;
        part = fmaf(h[j], Ct[n], part);
      }
    }
    part = group_sum(part, gs);
    if (active && li == 0) {
      float y = part + Dv * u;
      if (p.z) y *= silu_d(p.z[t * p.z_stride + e]);
      p.y[t * p.y_stride + e] = y;
    }
  }
  for (int j = 0; j < SPL; j++) {
    const int64_t n = li + j * gs;
    if (active && n < p.N) p.h[e * p.N + n] = h[j];
  }
}

// Weightless RMSNorm of v[0, n) in shared memory (all threads call).
__device__ void smem_rms(float* v, int64_t n, float eps, float* tmp) {
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += v[i] * v[i];
  const float r = rsqrtf(block_sum(ss, tmp) / float(n) + eps);
  __syncthreads();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) v[i] *= r;
  __syncthreads();
}

// grid (ceil(E / channels per block), B); dynamic shared: R + 2N floats (this row's δ | B | C).
template <int SPL>
__global__ void __launch_bounds__(kScanThreads) mamba1_step_kernel(Mamba1StepParams p, int gs) {
  extern __shared__ float row[];
  __shared__ float tmp[32];
  const int64_t b = blockIdx.y, RN = p.R + 2 * p.N;
  for (int64_t i = threadIdx.x; i < RN; i += blockDim.x) row[i] = p.dbc[b * p.dbc_stride + i];
  __syncthreads();
  if (p.bcdt_rms) {
    smem_rms(row, p.R, p.rms_eps, tmp);
    smem_rms(row + p.R, p.N, p.rms_eps, tmp);
    smem_rms(row + p.R + p.N, p.N, p.rms_eps, tmp);
  }
  const float* dl = row;
  const float* Bt = row + p.R;
  const float* Ct = row + p.R + p.N;
  const int64_t e = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) / gs;
  const int li = threadIdx.x % gs;
  const bool active = e < p.E;
  float dr = 0.f;  // dt_proj row e · δ
  if (active)
    for (int64_t r = li; r < p.R; r += gs) dr = fmaf(load_w(p.dt_w, p.dt_w_dtype, e * p.R + r), dl[r], dr);
  dr = group_sum(dr, gs);
  const float dt = softplus_d(dr + (active ? p.dt_bias[e] : 0.f));
  const float u = active ? p.u[b * p.u_stride + e] : 0.f;
  float* h = p.states + int64_t(p.slots[b]) * p.slot_stride + e * p.N;
  float part = 0.f;
  for (int j = 0; j < SPL; j++) {
    const int64_t n = li + j * gs;
    if (active && n < p.N) {
      const float hn = expf(dt * p.A[e * p.N + n]) * h[n] + dt * Bt[n] * u;
      h[n] = hn;
      part = fmaf(hn, Ct[n], part);
    }
  }
  part = group_sum(part, gs);
  if (active && li == 0) {
    float y = part + (p.D ? p.D[e] : 0.f) * u;
    if (p.z) y *= silu_d(p.z[b * p.z_stride + e]);
    p.y[b * p.y_stride + e] = y;
  }
}

int group_size(int64_t N) {
  int g = 1;
  while (g < N && g < 32) g *= 2;
  return g;
}

}  // namespace

void selective_scan(const ScanParams& p, cudaStream_t s) {
  if (p.L <= 0) return;
  const int gs = group_size(p.N);
  const int64_t spl = (p.N + gs - 1) / gs;
  const unsigned grid = blocks_for(p.E * gs, kScanThreads);
  switch (spl) {
    case 1: scan_kernel<1><<<grid, kScanThreads, 0, s>>>(p, gs); break;
    case 2: scan_kernel<2><<<grid, kScanThreads, 0, s>>>(p, gs); break;
    case 3: case 4: scan_kernel<4><<<grid, kScanThreads, 0, s>>>(p, gs); break;
    default: throw Error("selective_scan: state size " + std::to_string(p.N) + " exceeds 128");
  }
  SSM_CUDA_LAUNCH_CHECK("selective_scan");
}

void mamba1_step(const Mamba1StepParams& p, cudaStream_t s) {
  if (p.B <= 0) return;
  const int gs = group_size(p.N);
  const int64_t spl = (p.N + gs - 1) / gs;
  const dim3 grid(blocks_for(p.E * gs, kScanThreads), unsigned(p.B));
  const size_t sh = size_t(p.R + 2 * p.N) * sizeof(float);
  switch (spl) {
    case 1: mamba1_step_kernel<1><<<grid, kScanThreads, sh, s>>>(p, gs); break;
    case 2: mamba1_step_kernel<2><<<grid, kScanThreads, sh, s>>>(p, gs); break;
    case 3: case 4: mamba1_step_kernel<4><<<grid, kScanThreads, sh, s>>>(p, gs); break;
    default: throw Error("mamba1_step: state size " + std::to_string(p.N) + " exceeds 128");
  }
  SSM_CUDA_LAUNCH_CHECK("mamba1_step");
}

}  // namespace ssm::kernels::cuda
