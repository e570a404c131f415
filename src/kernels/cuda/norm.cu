// Row-wise kernels: embedding gather, RMSNorm (grouped, gated, weightless — block pre-norm, final
// norm, FalconMamba's B/C/Δ norms, Mamba-2's gated norm), f32 -> bf16/f16 conversion with an
// optional fused RMSNorm (GEMM inputs), bias add. One block per row (or per row and norm group).
#include <algorithm>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "ssm/error.hpp"

namespace ssm::kernels::cuda {
namespace {

template <class WT>
__global__ void embed_kernel(const int32_t* ids, const WT* table, int64_t D, float* h) {
  const int64_t t = blockIdx.x;
  const WT* row = table + int64_t(ids[t]) * D;
  for (int64_t d = threadIdx.x; d < D; d += blockDim.x) h[t * D + d] = to_f(row[d]);
}

// grid (M, D/group): y = norm(x [· silu(g)]) · w [· silu(g)], see RmsNormParams. y is p.y (f32), or
// `yh` (row stride p.y_stride) in bf16/f16 when OT is one of those.
template <class OT>
__global__ void rms_norm_kernel(RmsNormParams p, bool gate_only, OT* yh) {
  __shared__ float tmp[32];
  const int64_t m = blockIdx.x, g0 = int64_t(blockIdx.y) * p.group;
  const float* x = p.x + m * p.x_stride;
  const float* g = p.gate ? p.gate + m * p.gate_stride : nullptr;
  float ss = 0.f;
  for (int64_t d = g0 + threadIdx.x; d < g0 + p.group; d += blockDim.x) {
    float v = x[d];
    if (g && !p.norm_before_gate) v *= silu_d(g[d]);
    ss += v * v;
  }
  const float r = gate_only ? 1.f : rsqrtf(block_sum(ss, tmp) / float(p.group) + p.eps);
  for (int64_t d = g0 + threadIdx.x; d < g0 + p.group; d += blockDim.x) {
    float v = x[d];
    if (g && !p.norm_before_gate) v *= silu_d(g[d]);
    float o = v * r * (p.w && !gate_only ? p.w[d] : 1.f);
    if (g && p.norm_before_gate) o *= silu_d(g[d]);
    if constexpr (std::is_same_v<OT, float>) p.y[m * p.y_stride + d] = o;
    else yh[m * p.y_stride + d] = from_f<OT>(o);
  }
}

template <class OT>
__global__ void to_half_kernel(const float* x, int64_t K, int64_t x_stride, const float* nw, float eps, OT* y) {
  __shared__ float tmp[32];
  const int64_t m = blockIdx.x;
  const float* xr = x + m * x_stride;
  float r = 1.f;
  if (nw) {
    float ss = 0.f;
    for (int64_t k = threadIdx.x; k < K; k += blockDim.x) ss += xr[k] * xr[k];
    r = rsqrtf(block_sum(ss, tmp) / float(K) + eps);
  }
  for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
    float v = xr[k] * (nw ? r * nw[k] : 1.f);
    y[m * K + k] = from_f<OT>(v);
  }
}

// The same with 16-byte loads, the row kept in registers (K % 4 == 0, K <= 4·256·kToHalfQuads,
// 16-byte-aligned rows): one read of x instead of two, a quarter of the load instructions.
constexpr int kToHalfThreads = 256, kToHalfQuads = 8;
template <class OT>
__global__ void __launch_bounds__(kToHalfThreads) to_half_vec_kernel(const float* x, int64_t K, int64_t x_stride, const float* nw,
                                                                    float eps, OT* y) {
  __shared__ float tmp[32];
  const float4* xr = reinterpret_cast<const float4*>(x + blockIdx.x * x_stride);
  const int K4 = int(K / 4);
  float4 v[kToHalfQuads];
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < kToHalfQuads; k++) {
    const int j = threadIdx.x + k * kToHalfThreads;
    v[k] = j < K4 ? xr[j] : make_float4(0.f, 0.f, 0.f, 0.f);
    ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
  }
  const float r = nw ? rsqrtf(block_sum(ss, tmp) / float(K) + eps) : 1.f;
  OT* yr = y + blockIdx.x * K;
#pragma unroll
  for (int k = 0; k < kToHalfQuads; k++) {
    const int j = threadIdx.x + k * kToHalfThreads;
    if (j >= K4) break;
    const float o[4] = {v[k].x, v[k].y, v[k].z, v[k].w};
    for (int q = 0; q < 4; q++) yr[4 * j + q] = from_f<OT>(o[q] * r * (nw ? nw[4 * j + q] : 1.f));
  }
}

__global__ void add_bias_kernel(float* y, int64_t M, int64_t N, int64_t ys, const float* b) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < M * N) y[(i / N) * ys + i % N] += b[i % N];
}

int threads_for(int64_t n) { return n >= 1024 ? 1024 : n >= 256 ? 256 : 128; }

}  // namespace

void embed(const int32_t* ids, int64_t T, const void* table, DType t, int64_t D, float* h, cudaStream_t s) {
  if (T <= 0) return;
  const int th = threads_for(D);
  switch (t) {
    case DType::BF16: embed_kernel<<<unsigned(T), th, 0, s>>>(ids, static_cast<const __nv_bfloat16*>(table), D, h); break;
    case DType::F16: embed_kernel<<<unsigned(T), th, 0, s>>>(ids, static_cast<const __half*>(table), D, h); break;
    case DType::F32: embed_kernel<<<unsigned(T), th, 0, s>>>(ids, static_cast<const float*>(table), D, h); break;
  }
  SSM_CUDA_LAUNCH_CHECK("embed");
}

void rms_norm(const RmsNormParams& p, cudaStream_t s, bool gate_only) {
  if (p.M <= 0) return;
  if (p.group <= 0 || p.D % p.group != 0) throw Error("rms_norm: group " + std::to_string(p.group) + " does not divide D=" + std::to_string(p.D));
  rms_norm_kernel<float><<<dim3(unsigned(p.M), unsigned(p.D / p.group)), threads_for(p.group), 0, s>>>(p, gate_only, nullptr);
  SSM_CUDA_LAUNCH_CHECK("rms_norm");
}

void rms_norm_half(const RmsNormParams& p, void* y, DType t, cudaStream_t s, bool gate_only) {
  if (p.M <= 0) return;
  if (p.group <= 0 || p.D % p.group != 0) throw Error("rms_norm: group " + std::to_string(p.group) + " does not divide D=" + std::to_string(p.D));
  if (t == DType::F32) throw Error("rms_norm_half: output dtype must be bf16 or f16 (internal)");
  const dim3 grid(unsigned(p.M), unsigned(p.D / p.group));
  if (t == DType::F16) rms_norm_kernel<__half><<<grid, threads_for(p.group), 0, s>>>(p, gate_only, static_cast<__half*>(y));
  else rms_norm_kernel<__nv_bfloat16><<<grid, threads_for(p.group), 0, s>>>(p, gate_only, static_cast<__nv_bfloat16*>(y));
  SSM_CUDA_LAUNCH_CHECK("rms_norm");
}

void to_half(const float* x, int64_t M, int64_t K, int64_t x_stride, const float* nw, float eps, void* y, DType t,
             cudaStream_t s) {
  if (M <= 0) return;
  const bool vec = K % 4 == 0 && x_stride % 4 == 0 && reinterpret_cast<uintptr_t>(x) % 16 == 0 && K <= 4 * kToHalfThreads * kToHalfQuads;
  if (vec && t == DType::F16)
    to_half_vec_kernel<<<unsigned(M), kToHalfThreads, 0, s>>>(x, K, x_stride, nw, eps, static_cast<__half*>(y));
  else if (vec)
    to_half_vec_kernel<<<unsigned(M), kToHalfThreads, 0, s>>>(x, K, x_stride, nw, eps, static_cast<__nv_bfloat16*>(y));
  else if (t == DType::F16) to_half_kernel<<<unsigned(M), threads_for(K), 0, s>>>(x, K, x_stride, nw, eps, static_cast<__half*>(y));
  else to_half_kernel<<<unsigned(M), threads_for(K), 0, s>>>(x, K, x_stride, nw, eps, static_cast<__nv_bfloat16*>(y));
  SSM_CUDA_LAUNCH_CHECK("to_half");
}

namespace {
__global__ void convert_state_kernel(const void* src, bool sb, void* dst, bool db, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st_state(dst, db, i, ld_state(src, sb, i));
}
}  // namespace

void convert_state(const void* src, bool src_bf16, void* dst, bool dst_bf16, int64_t n, cudaStream_t s) {
  if (n <= 0) return;
  convert_state_kernel<<<unsigned(std::min<int64_t>(blocks_for(n, 256), 4096)), 256, 0, s>>>(src, src_bf16, dst, dst_bf16, n);
  SSM_CUDA_LAUNCH_CHECK("convert_state");
}

void add_bias(float* y, int64_t M, int64_t N, int64_t ys, const float* b, cudaStream_t s) {
  if (M * N <= 0) return;
  add_bias_kernel<<<blocks_for(M * N, 256), 256, 0, s>>>(y, M, N, ys, b);
  SSM_CUDA_LAUNCH_CHECK("add_bias");
}

}  // namespace ssm::kernels::cuda
