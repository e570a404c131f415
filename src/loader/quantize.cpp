// q8 quantisation (see quantize.hpp).
#include "loader/quantize.hpp"

#include <algorithm>
#include <cmath>

#include "core/dtype.hpp"

#include "kernels/params.hpp"
#include "ssm/error.hpp"

namespace ssm {

void quantize_q8_rows(const float* x, int64_t rows, int64_t K, int8_t* q, uint16_t* scales, const std::string& what) {
  const int64_t B = kernels::kQ8Block;
  if (K % B != 0) throw Error("q8 quantisation needs rows that are a multiple of 32 values, got " + std::to_string(K));
  for (int64_t r = 0; r < rows; r++)
    for (int64_t b = 0; b < K / B; b++) {
      const float* xb = x + r * K + b * B;
      float amax = 0.f;
      for (int64_t i = 0; i < B; i++) amax = std::fmax(amax, std::fabs(xb[i]));
      const uint16_t d16 = f32_to_f16(amax / 127.f);
      const float d = f16_to_f32(d16);
      if (!std::isfinite(d))
        throw Error("q8 quantisation of " + what + ": row " + std::to_string(r) + " has a block with max |w| = " +
                    std::to_string(amax) + ", beyond what an f16 block scale holds (about 8.3e6); keep this tensor in f16/f32");
      const float inv = d > 0.f ? 1.f / d : 0.f;
      for (int64_t i = 0; i < B; i++) q[r * K + b * B + i] = int8_t(std::clamp(std::lrintf(xb[i] * inv), -127L, 127L));
      scales[r * (K / B) + b] = d16;
    }
}

}  // namespace ssm
