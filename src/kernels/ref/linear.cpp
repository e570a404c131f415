// Reference linear: y = x·Wᵀ + b with f64 accumulation (see params.hpp LinearParams); q8 weights
// take the Q8 × Q8 product of params.hpp, with its activation quantiser (shared by every backend).
#include <cmath>
#include <vector>

#include "kernels/ref/ref.hpp"

namespace ssm::kernels {

void quantize_q8_activations(const float* x, int64_t K, int8_t* q, float* scale) {
  for (int64_t b = 0; b * kQ8Block < K; b++) {
    const float* xb = x + b * kQ8Block;
    float amax = 0.f;
    bool finite = true;
    for (int64_t j = 0; j < kQ8Block; j++) {
      finite = finite && std::isfinite(xb[j]);
      amax = std::fmax(amax, std::fabs(xb[j]));
    }
    if (!finite || amax == 0.f) {
      scale[b] = finite ? 0.f : NAN;
      for (int64_t j = 0; j < kQ8Block; j++) q[b * kQ8Block + j] = 0;
      continue;
    }
    scale[b] = amax / 127.f;
    const float inv = 127.f / amax;
    for (int64_t j = 0; j < kQ8Block; j++)
      q[b * kQ8Block + j] = int8_t(std::fmax(-127.f, std::fmin(127.f, std::nearbyint(xb[j] * inv))));
  }
}

}  // namespace ssm::kernels

namespace ssm::kernels::ref {

void linear(const LinearParams& p) {
  const size_t es = dtype_size(p.w_dtype);
  const int64_t nb = p.K / kQ8Block;
  std::vector<int8_t> q(p.w_dtype == DType::I8 ? size_t(p.K) : 0);
  std::vector<float> qs(p.w_dtype == DType::I8 ? size_t(nb) : 0);
  for (int64_t m = 0; m < p.M; m++) {
    const float* x = p.x + m * p.x_stride;
    if (p.w_dtype == DType::I8) quantize_q8_activations(x, p.K, q.data(), qs.data());
    for (int64_t n = 0; n < p.N; n++) {
      const void* w = static_cast<const char*>(p.w) + size_t(n * p.K) * es;
      double acc = p.bias ? p.bias[n] : 0.0;
      if (p.w_dtype == DType::I8) {
        const int8_t* wi = static_cast<const int8_t*>(w);
        const float* sc = p.w_scale + n * nb;
        for (int64_t b = 0; b < nb; b++) {
          int64_t isum = 0;
          for (int64_t j = b * kQ8Block; j < (b + 1) * kQ8Block; j++) isum += int64_t(wi[j]) * q[size_t(j)];
          acc += double(sc[b]) * double(qs[size_t(b)]) * double(isum);
        }
      } else {
        for (int64_t k = 0; k < p.K; k++) acc += double(x[k]) * load_elem(w, p.w_dtype, k);
      }
      p.y[m * p.y_stride + n] = float(acc);
    }
  }
}

}  // namespace ssm::kernels::ref
