// q8 quantisation (see quantize.hpp).
#include "loader/quantize.hpp"

#include <cmath>

#include "kernels/params.hpp"
#include "ssm/error.hpp"

namespace ssm {

void quantize_q8_rows(const float* x, int64_t rows, int64_t K, int8_t* q, float* scales) {
  const int64_t B = kernels::kQ8Block;
  if (K % B != 0) throw Error("q8 quantisation needs rows that are a multiple of 32 values, got " + std::to_string(K));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t b = 0; b < K / B; b++) {
      const float* xb = x + r * K + b * B;
      float amax = 0.f;
      for (int64_t i = 0; i < B; i++) amax = std::fmax(amax, std::fabs(xb[i]));
      const float d = amax / 127.f;
      const float inv = d > 0.f ? 1.f / d : 0.f;
      for (int64_t i = 0; i < B; i++) q[r * K + b * B + i] = int8_t(std::lrintf(xb[i] * inv));
      scales[r * (K / B) + b] = d;
    }
}

}  // namespace ssm
