// Reference linear: y = x·Wᵀ + b with f64 accumulation (see params.hpp LinearParams).
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
        const float* sc = p.w_scale + n * (p.K / kQ8Block);
        for (int64_t k = 0; k < p.K; k++) acc += double(x[k]) * (double(load_elem(w, p.w_dtype, k)) * sc[k / kQ8Block]);
      } else {
        for (int64_t k = 0; k < p.K; k++) acc += double(x[k]) * load_elem(w, p.w_dtype, k);
      }
      p.y[m * p.y_stride + n] = float(acc);
    }
  }
}

}  // namespace ssm::kernels::ref
