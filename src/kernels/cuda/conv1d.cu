// Depthwise causal conv1d + bias + SiLU (see params.hpp ConvParams). Prefill: one thread per
// (token, channel) reading its K inputs from the carried window or x, then one thread per channel
// advances the window (a second launch, so no thread overwrites a window value another still reads).
// Step: one thread per (sequence, channel) does window shift, conv and activation in registers.
#include <cstdlib>
#include <string>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "ssm/error.hpp"

namespace ssm::kernels::cuda {
namespace {

constexpr int kMaxK = 8;

// grid (ceil(C / 256), ceil(L / kRun)): a thread computes kRun consecutive steps of one channel. It
// loads its K-1 + kRun inputs first (all in flight at once; each input is loaded once, not K
// times), then runs the taps over them in registers.
// XT: the input's element type (f32, or the weight dtype when in_proj wrote x in it); y (f32) is
// skipped when null, y_half (bf16/f16, type yt) when null.
constexpr int kRun = 16;
template <int K, class XT>
__global__ void __launch_bounds__(256) conv_prefill_kernel(ConvParams p, const XT* x, void* y_half, DType yt) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, t0 = int64_t(blockIdx.y) * kRun;
  if (c >= p.C) return;
  float w[K], in[K - 1 + kRun];
#pragma unroll
  for (int k = 0; k < K - 1; k++) {  // inputs at t0-(K-1) .. t0-1
    const int64_t j = t0 - (K - 1) + k;
    in[k] = j < 0 ? p.state[(K - 1 + j) * p.C + c] : to_f32(x[j * p.x_stride + c]);
  }
#pragma unroll
  for (int i = 0; i < kRun; i++) {
    const int64_t t = t0 + i;
    in[K - 1 + i] = t < p.L ? to_f32(x[t * p.x_stride + c]) : 0.f;
  }
#pragma unroll
  for (int k = 0; k < K; k++) w[k] = p.w[c * K + k];
  const float b = p.bias ? p.bias[c] : 0.f;
#pragma unroll
  for (int i = 0; i < kRun; i++) {
    const int64_t t = t0 + i;
    if (t >= p.L) break;
    float acc = b;
#pragma unroll
    for (int k = 0; k < K; k++) acc = fmaf(w[k], in[i + k], acc);
    const float v = p.silu ? silu_d(acc) : acc;
    if (p.y) p.y[t * p.y_stride + c] = v;
    if (y_half) st_half(y_half, yt, t * p.y_stride + c, v);
  }
}

template <class XT>
__global__ void conv_state_kernel(ConvParams p, const XT* x) {
  const int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= p.C) return;
  const int64_t K = p.K, L = p.L;
  float nw[kMaxK];
  for (int64_t k = 0; k < K - 1; k++) {  // new window = last K-1 of [old window | x]
    const int64_t j = L - (K - 1) + k;
    nw[k] = j < 0 ? p.state[(K - 1 + j) * p.C + c] : to_f32(x[j * p.x_stride + c]);
  }
  for (int64_t k = 0; k < K - 1; k++) p.state[k * p.C + c] = nw[k];
}

// One channel of one sequence: all loads (window, taps, input) first, then the window shift and the
// output (the stores would otherwise order the loads one after another).
__device__ __forceinline__ float conv_step_one(const ConvStepParams& p, int64_t b, int64_t c) {
  const int K = int(p.K);
  void* st = state_at(p.states, p.state_bf16, int64_t(p.slots[b]) * p.slot_stride);
  float win[kMaxK], w[kMaxK];
#pragma unroll
  for (int k = 0; k < kMaxK; k++) {
    win[k] = k < K - 1 ? ld_state(st, p.state_bf16, k * p.C + c) : 0.f;
    w[k] = k < K - 1 ? p.w[c * K + k] : 0.f;
  }
  const float wl = p.w[c * K + K - 1], xn = p.x[b * p.x_stride + c];
  float acc = p.bias ? p.bias[c] : 0.f;
#pragma unroll
  for (int k = 0; k < kMaxK; k++)
    if (k < K - 1) acc = fmaf(w[k], win[k], acc);
  acc = fmaf(wl, xn, acc);
#pragma unroll
  for (int k = 1; k < kMaxK; k++)
    if (k < K - 1) st_state(st, p.state_bf16, (k - 1) * p.C + c, win[k]);
  if (K > 1) st_state(st, p.state_bf16, (K - 2) * p.C + c, xn);
  return p.silu ? silu_d(acc) : acc;
}

__global__ void conv_step_kernel(ConvStepParams p) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  pdl_trigger();
  pdl_wait();
  if (i >= p.B * p.C) return;
  const int64_t b = i / p.C, c = i % p.C;
  const float out = conv_step_one(p, b, c);
  p.y[b * p.y_stride + c] = out;
  if (p.y_half) st_half(p.y_half, p.y_half_dtype, b * p.y_half_stride + c, out);
}

// Four adjacent channels per thread (C, the strides and the pointers 16-byte compatible, checked by
// the launcher): grid (ceil(C / 4 / 256), B), so no division, 16-byte loads of x, taps and bias, and
// 16- (f32) or 8-byte (bf16) window loads and stores (Pack4). Same arithmetic as conv_step_one.

constexpr int kConvStepThreads = 256;

template <class ST, int K>
__global__ void __launch_bounds__(kConvStepThreads) conv_step4_kernel(ConvStepParams p) {
  const int64_t c = (int64_t(blockIdx.x) * kConvStepThreads + threadIdx.x) * 4, b = blockIdx.y;
  const bool active = c < p.C;
  float w[4][K], bias[4] = {0.f, 0.f, 0.f, 0.f};
  if (active) {
#pragma unroll
    for (int j = 0; j < 4; j++)
#pragma unroll
      for (int k = 0; k < K; k++) w[j][k] = p.w[(c + j) * K + k];
    if (p.bias) {
      const float4 bv = *reinterpret_cast<const float4*>(p.bias + c);
      bias[0] = bv.x, bias[1] = bv.y, bias[2] = bv.z, bias[3] = bv.w;
    }
  }
  pdl_trigger();
  pdl_wait();
  if (!active) return;
  ST* st = static_cast<ST*>(p.states) + int64_t(p.slots[b]) * p.slot_stride + c;
  float4 win[K > 1 ? K - 1 : 1];
#pragma unroll
  for (int k = 0; k < K - 1; k++) win[k] = Pack4<ST>::ld(st + k * p.C);
  const float4 xn = *reinterpret_cast<const float4*>(p.x + b * p.x_stride + c);
  float o[4];
#pragma unroll
  for (int j = 0; j < 4; j++) {
    float acc = bias[j];
#pragma unroll
    for (int k = 0; k < K - 1; k++) acc = fmaf(w[j][k], (&win[k].x)[j], acc);
    acc = fmaf(w[j][K - 1], (&xn.x)[j], acc);
    o[j] = p.silu ? silu_d(acc) : acc;
  }
#pragma unroll
  for (int k = 1; k < K - 1; k++) Pack4<ST>::st(st + (k - 1) * p.C, win[k]);
  if (K > 1) Pack4<ST>::st(st + (K - 2) * p.C, xn);
  *reinterpret_cast<float4*>(p.y + b * p.y_stride + c) = make_float4(o[0], o[1], o[2], o[3]);
  if (p.y_half)
    for (int j = 0; j < 4; j++) st_half(p.y_half, p.y_half_dtype, b * p.y_half_stride + c + j, o[j]);
}

// One block per slice of kCs channels: conv step of its channels for every sequence (into shared
// memory and y), then the slice's share of x_proj: lanes own 16-byte weight vectors (row r, vector j
// of the slice); the kCs/V lanes of a row reduce by shuffles and one of them adds to dbc.
constexpr int kCs = 32, kXpThreads = 256, kXpU = 4;

template <class WT, int MB>
__global__ void __launch_bounds__(kXpThreads) conv_xproj_kernel(ConvXprojParams p) {
  constexpr int V = Vec<WT>::n, NV = kCs / V;
  __shared__ float xs[MB][kCs];
  const ConvStepParams& c = p.conv;
  const int64_t c0 = int64_t(blockIdx.x) * kCs;
  const WT* W = static_cast<const WT*>(p.xw);
  const int64_t nvec = p.RN * NV;
  // Weights first: they do not depend on the previous kernel.
  uint4 raw[kXpU];
#pragma unroll
  for (int u = 0; u < kXpU; u++) {
    const int64_t i = threadIdx.x + int64_t(u) * kXpThreads, r = i / NV, ch = c0 + (i % NV) * V;
    if (i < nvec && ch < c.C) raw[u] = Vec<WT>::raw(W + r * c.C + ch);
  }
  pdl_trigger();
  pdl_wait();
  if (blockIdx.x == 0 && p.zero)
    for (int64_t i = threadIdx.x; i < p.zero_n; i += kXpThreads) p.zero[i] = 0.f;
  if (threadIdx.x < MB * kCs) {
    const int b = threadIdx.x / kCs, k0 = threadIdx.x % kCs;
    const int64_t ch = c0 + k0;
    float out = 0.f;
    if (b < c.B && ch < c.C) {
      out = conv_step_one(c, b, ch);
      c.y[b * c.y_stride + ch] = out;
    }
    xs[b][k0] = out;
  }
  __syncthreads();
  for (int64_t base = 0; base < nvec; base += int64_t(kXpU) * kXpThreads) {
    if (base > 0) {
#pragma unroll
      for (int u = 0; u < kXpU; u++) {
        const int64_t i = base + threadIdx.x + int64_t(u) * kXpThreads, r = i / NV, ch = c0 + (i % NV) * V;
        if (i < nvec && ch < c.C) raw[u] = Vec<WT>::raw(W + r * c.C + ch);
      }
    }
#pragma unroll
    for (int u = 0; u < kXpU; u++) {
      const int64_t i = base + threadIdx.x + int64_t(u) * kXpThreads, r = i / NV;
      const int j = int(i % NV);
      const bool ok = i < nvec && c0 + j * V < c.C;
      float wv[V];
      if (ok) Vec<WT>::widen(raw[u], wv);
      float acc[MB];
#pragma unroll
      for (int b = 0; b < MB; b++) {
        acc[b] = 0.f;
        if (ok)
#pragma unroll
          for (int q = 0; q < V; q++) acc[b] = fmaf(wv[q], xs[b][j * V + q], acc[b]);
#pragma unroll
        for (int o = NV / 2; o > 0; o >>= 1) acc[b] += __shfl_xor_sync(0xffffffffu, acc[b], o);
      }
      if (ok && j == 0)
        for (int b = 0; b < c.B; b++) atomicAdd(p.dbc + b * p.dbc_stride + r, acc[b]);
    }
  }
}

template <class WT>
void launch_conv_xproj(const ConvXprojParams& p, cudaStream_t s) {
  const dim3 grid(blocks_for(p.conv.C, kCs));
  if (p.conv.B <= 1) launch("conv_xproj_step", conv_xproj_kernel<WT, 1>, grid, dim3(kXpThreads), 0, s, p);
  else if (p.conv.B <= 2) launch("conv_xproj_step", conv_xproj_kernel<WT, 2>, grid, dim3(kXpThreads), 0, s, p);
  else if (p.conv.B <= 4) launch("conv_xproj_step", conv_xproj_kernel<WT, 4>, grid, dim3(kXpThreads), 0, s, p);
  else launch("conv_xproj_step", conv_xproj_kernel<WT, 8>, grid, dim3(kXpThreads), 0, s, p);
}

}  // namespace

void conv_xproj_step(const ConvXprojParams& p, cudaStream_t s) {
  if (p.conv.B <= 0) return;
  if (p.conv.B > kConvXprojMaxB) throw Error("conv_xproj_step: batch " + std::to_string(p.conv.B) + " exceeds 8");
  if (p.conv.C % 8 != 0 || (reinterpret_cast<uintptr_t>(p.xw) & 15))
    throw Error("conv_xproj_step: channels must be a multiple of 8 and weights 16-byte aligned");
  switch (p.xw_dtype) {
    case DType::BF16: return launch_conv_xproj<__nv_bfloat16>(p, s);
    case DType::F16: return launch_conv_xproj<__half>(p, s);
    case DType::F32: return launch_conv_xproj<float>(p, s);
    default: throw Error("conv_xproj_step: unsupported weight dtype");
  }
}

void causal_conv1d(const ConvParams& p, cudaStream_t s, void* y_half, DType t, const void* x_half) {
  if (p.K > kMaxK) throw Error("causal_conv1d: conv width " + std::to_string(p.K) + " exceeds " + std::to_string(kMaxK));
  if (p.L <= 0) return;
  if (p.L > 65535 * int64_t(kRun)) throw Error("causal_conv1d: a block of more than 1M tokens (internal)");
  if (!p.y && !y_half) throw Error("causal_conv1d: no output (internal)");
  const dim3 grid(blocks_for(p.C, 256), blocks_for(p.L, kRun));
  auto go = [&](const auto* x) {
    using XT = std::remove_cv_t<std::remove_pointer_t<decltype(x)>>;
    switch (p.K) {
#define SSM_CONV_CASE(k) case k: conv_prefill_kernel<k, XT><<<grid, 256, 0, s>>>(p, x, y_half, t); break;
      SSM_CONV_CASE(1) SSM_CONV_CASE(2) SSM_CONV_CASE(3) SSM_CONV_CASE(4)
      SSM_CONV_CASE(5) SSM_CONV_CASE(6) SSM_CONV_CASE(7) SSM_CONV_CASE(8)
#undef SSM_CONV_CASE
      default: break;
    }
    SSM_CUDA_LAUNCH_CHECK("causal_conv1d");
    if (p.K > 1) conv_state_kernel<XT><<<blocks_for(p.C, 256), 256, 0, s>>>(p, x);
    SSM_CUDA_LAUNCH_CHECK("causal_conv1d state");
  };
  if (!x_half) go(p.x);
  else if (t == DType::F16) go(static_cast<const __half*>(x_half));
  else go(static_cast<const __nv_bfloat16*>(x_half));
}

void causal_conv1d_step(const ConvStepParams& p, cudaStream_t s) {
  if (p.B <= 0) return;
  if (p.K < 1 || p.K > kMaxK) throw Error("causal_conv1d_step: d_conv " + std::to_string(p.K) + " outside 1.." + std::to_string(kMaxK));
  auto a16 = [](const void* q) { return (reinterpret_cast<uintptr_t>(q) & 15) == 0; };
  // SSM_CUDA_CONV_SCALAR=1: one channel per thread always (measurement switch, read once).
  static const bool scalar = [] { const char* e = std::getenv("SSM_CUDA_CONV_SCALAR"); return e && *e && *e != '0'; }();
  // A quad of states (4 elements: 16 bytes f32, 8 bytes bf16) starts at slot·stride + k·C + c.
  const bool quad = !scalar && p.C % 4 == 0 && p.x_stride % 4 == 0 && p.y_stride % 4 == 0 && p.slot_stride % 4 == 0 &&
                    a16(p.x) && a16(p.y) && a16(p.w) && (!p.bias || a16(p.bias)) &&
                    (reinterpret_cast<uintptr_t>(p.states) & (p.state_bf16 ? 7 : 15)) == 0;
  if (quad && (p.K == 4 || p.K == 2)) {
    const dim3 grid(blocks_for(p.C / 4, kConvStepThreads), unsigned(p.B));
    auto go = [&](auto st) {
      using ST = decltype(st);
      if (p.K == 4) launch("causal_conv1d_step", conv_step4_kernel<ST, 4>, grid, dim3(kConvStepThreads), 0, s, p);
      else launch("causal_conv1d_step", conv_step4_kernel<ST, 2>, grid, dim3(kConvStepThreads), 0, s, p);
    };
    if (p.state_bf16) go(__nv_bfloat16{});
    else go(float{});
    return;
  }
  launch("causal_conv1d_step", conv_step_kernel, dim3(blocks_for(p.B * p.C, 256)), dim3(256), 0, s, p);
}

}  // namespace ssm::kernels::cuda
