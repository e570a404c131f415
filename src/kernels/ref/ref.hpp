// Scalar reference kernels: plain loops with f64 accumulation where a sum is taken. They are the
// oracle every fast kernel (kernels/cpu, kernels/cuda) is tested against, and are never tuned.
#pragma once
#include "kernels/params.hpp"

namespace ssm::kernels::ref {

void linear(const LinearParams& p);
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
