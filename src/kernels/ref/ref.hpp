// Scalar reference kernels: plain loops with f64 accumulation where a sum is taken. They are the
// oracle every fast kernel (kernels/cpu, kernels/cuda) is tested against, and are never tuned.
#pragma once
#include "kernels/params.hpp"

namespace ssm::kernels::ref {

void linear(const LinearParams& p);
// Decode form of a q8 product (what cpu::gemv computes for I8 weights): each x row is first
// rounded to int16 per block of 32 (quantize_x16), then y = Σ_b w_scale[n,b]·xs[b] · Σ_{k∈b} w·xq
// (integer block sums, f64 across blocks). Error against linear(): |Σ_k W[n,k]·(x_k − xs·xq_k)|
// <= Σ_b xs[b]/2 · Σ_{k∈b} |W[n,k]|, i.e. x to within 2⁻¹⁶ of each block's largest |x|.
void linear_q8_x16(const LinearParams& p);
// x (K, a multiple of 32) -> xq (K) int16 and xs (K/32): per block, amax = max |x|,
// inv = 32767 / amax (f32, capped at the largest float; 0 when amax is 0), xq = nearest-even(x·inv) (f32 product),
// xs = amax / 32767. A block holding NaN or ±inf gets xq = 0 and xs = NaN (the product's outputs
// for that x row are NaN, as an f32 product's would be NaN or ±inf). The SIMD quantiser does the
// same f32 operations, so both are bit-identical.
void quantize_x16(const float* x, int64_t K, int16_t* xq, float* xs);
void rms_norm(const RmsNormParams& p);
void causal_conv1d(const ConvParams& p);
// Sequential recurrence over time: the definition of the Mamba-1 scan.
void selective_scan(const ScanParams& p);
// Sequential recurrence over time: the definition of the Mamba-2 SSD (ignores p.chunk).
void ssd_recurrent(const SsdParams& p);

// Reads element i of a weight row stored in `t`.
inline float load_elem(const void* base, DType t, int64_t i) {
  switch (t) {
    case DType::F32: return static_cast<const float*>(base)[i];
    case DType::BF16: return bf16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::F16: return f16_to_f32(static_cast<const uint16_t*>(base)[i]);
    case DType::I8: return float(static_cast<const int8_t*>(base)[i]);  // unscaled
  }
  return 0.f;
}

}  // namespace ssm::kernels::ref
