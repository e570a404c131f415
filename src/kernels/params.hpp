// POD parameter structs shared by every backend's version of an op (kernels/ref, kernels/cpu,
// kernels/cuda). Pointers are to f32 activations unless a field says otherwise; strides are in
// elements between consecutive rows (tokens). Dimension letters follow docs/numerics.md.
#pragma once
#include <cstdint>

#include "core/dtype.hpp"

namespace ssm::kernels {

// y (M, N) = x (M, K) · W(N, K)ᵀ + bias (N).  W in `w_dtype`, everything else f32.
// I8 weights are q8: W[n,k] = w[n,k] · w_scale[n, k/32] (K a multiple of kQ8Block), the scales f16.
inline constexpr int64_t kQ8Block = 32;
struct LinearParams {
  int64_t M, N, K;
  const float* x; int64_t x_stride;
  const void* w; DType w_dtype;
  const float* bias;  // nullable
  float* y; int64_t y_stride;
  const uint16_t* w_scale = nullptr;  // (N, K/32) f16 bits (exact in f32) for I8 weights
};

// y = x / sqrt(mean(x²) + eps) · w over groups of `group` consecutive channels of each row.
// With `gate`: norm_before_gate ? norm(x)·silu(g) : norm(x·silu(g)).  w nullable (weightless).
struct RmsNormParams {
  int64_t M, D, group;
  const float* x; int64_t x_stride;
  const float* w;
  const float* gate; int64_t gate_stride;  // nullable
  bool norm_before_gate;
  float eps;
  float* y; int64_t y_stride;
};

// Depthwise causal conv over time, one sequence: y_t[c] = act(b[c] + Σ_k w[c,k]·x_{t-K+1+k}[c]).
// `state` (K-1, C) holds the K-1 inputs before x_0 (oldest first) and is advanced to the last K-1.
struct ConvParams {
  int64_t L, C, K;
  const float* x; int64_t x_stride;
  const float* w;     // (C, K)
  const float* bias;  // (C) nullable
  float* state;       // (K-1, C)
  bool silu;
  float* y; int64_t y_stride;
  const float* w_t = nullptr;  // optional (K, C) copy of w: the CPU kernel then skips its per-call transpose
};

// Mamba-1 selective scan, one sequence, E channels of N states:
//   Δ = softplus(delta + dt_bias);  h = exp(Δ·A)·h + Δ·B_t·u;  y = C_t·h + D·u;  y *= silu(z)
struct ScanParams {
  int64_t L, E, N;
  const float* u; int64_t u_stride;          // (L, E)
  const float* delta; int64_t delta_stride;  // (L, E), before bias and softplus
  const float* dt_bias;                      // (E) nullable
  const float* A;                            // (E, N), already -exp(A_log)
  const float* B; int64_t B_stride;          // (L, N)
  const float* C; int64_t C_stride;          // (L, N)
  const float* D;                            // (E) nullable
  const float* z; int64_t z_stride;          // (L, E) nullable
  float* h;                                  // (E, N) in/out
  float* y; int64_t y_stride;                // (L, E)
};

// Mamba-2 SSD, one sequence, H heads of P channels, G groups of N states (head h uses group h/(H/G)):
//   Δ = clamp(softplus(dt + dt_bias), lo, hi);  S_h = exp(Δ·A_h)·S_h + Δ·x_h ⊗ B_g;  y_h = S_h·C_g + D_h·x_h
struct SsdParams {
  int64_t L, H, P, G, N;
  int64_t chunk;                           // Q, used by the chunked algorithm only
  const float* x; int64_t x_stride;        // (L, H·P)
  const float* dt; int64_t dt_stride;      // (L, H), before bias and softplus
  const float* dt_bias;                    // (H)
  const float* A;                          // (H), already -exp(A_log)
  const float* B; int64_t B_stride;        // (L, G·N)
  const float* C; int64_t C_stride;        // (L, G·N)
  const float* D;                          // (H) nullable
  float dt_min, dt_max;                    // time_step_limit
  float* state;                            // (H, P, N) in/out
  float* y; int64_t y_stride;              // (L, H·P)
};

inline float softplus(float x) { return x > 20.f ? x : __builtin_log1pf(__builtin_expf(x)); }
inline float silu(float x) { return x / (1.f + __builtin_expf(-x)); }

}  // namespace ssm::kernels
