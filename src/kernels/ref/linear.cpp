// Reference linear: y = x·Wᵀ + b with f64 accumulation (see params.hpp LinearParams).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/ref/ref.hpp"

namespace ssm::kernels::ref {

void linear(const LinearParams& p) {
  const size_t es = dtype_size(p.w_dtype);
  for (int64_t m = 0; m < p.M; m++) {
    const float* x = p.x + m * p.x_stride;
    for (int64_t n = 0; n < p.N; n++) {
      const void* w = static_cast<const char*>(p.w) + size_t(n * p.K) * es;
      double acc = p.bias ? p.bias[n] : 0.0;
      if (p.w_dtype == DType::I8) {
        const uint16_t* sc = p.w_scale + n * (p.K / kQ8Block);
        for (int64_t k = 0; k < p.K; k++)
          acc += double(x[k]) * (double(load_elem(w, p.w_dtype, k)) * f16_to_f32(sc[k / kQ8Block]));
      } else {
        for (int64_t k = 0; k < p.K; k++) acc += double(x[k]) * load_elem(w, p.w_dtype, k);
      }
      p.y[m * p.y_stride + n] = float(acc);
    }
  }
}

void quantize_x16(const float* x, int64_t K, int16_t* xq, float* xs) {
  for (int64_t b = 0; b < K / kQ8Block; b++) {
    const float* xb = x + b * kQ8Block;
    float amax = 0.f;
    bool finite = true;
    for (int64_t j = 0; j < kQ8Block; j++) {
      amax = std::fmax(amax, std::fabs(xb[j]));
      finite = finite && std::isfinite(xb[j]);
    }
    if (!finite) {  // NaN or ±inf: the block's scale is NaN, so every output of this x row is NaN
      std::fill(xq + b * kQ8Block, xq + (b + 1) * kQ8Block, int16_t(0));
      xs[b] = std::numeric_limits<float>::quiet_NaN();
      continue;
    }
    // Capped at the largest float: for amax below ~1e-34, 32767 / amax overflows, and x·inf would
    // not convert to int16 (the capped product stays below 1, so such a block rounds to zeros).
    const float inv = amax > 0.f ? std::fmin(32767.f / amax, std::numeric_limits<float>::max()) : 0.f;
    for (int64_t j = 0; j < kQ8Block; j++) xq[b * kQ8Block + j] = int16_t(std::nearbyint(xb[j] * inv));
    xs[b] = amax / 32767.f;
  }
}

void linear_q8_x16(const LinearParams& p) {
  const int64_t nb = p.K / kQ8Block;
  std::vector<int16_t> xq(static_cast<size_t>(p.K));
  std::vector<float> xs(static_cast<size_t>(nb));
  for (int64_t m = 0; m < p.M; m++) {
    quantize_x16(p.x + m * p.x_stride, p.K, xq.data(), xs.data());
    for (int64_t n = 0; n < p.N; n++) {
      const int8_t* w = static_cast<const int8_t*>(p.w) + n * p.K;
      double acc = p.bias ? p.bias[n] : 0.0;
      for (int64_t b = 0; b < nb; b++) {
        int64_t isum = 0;
        for (int64_t j = 0; j < kQ8Block; j++) isum += int64_t(w[b * kQ8Block + j]) * xq[size_t(b * kQ8Block + j)];
        acc += double(f16_to_f32(p.w_scale[n * nb + b]) * xs[size_t(b)]) * double(isum);  // the scale product in f32, as the kernel
      }
      p.y[m * p.y_stride + n] = float(acc);
    }
  }
}

}  // namespace ssm::kernels::ref
