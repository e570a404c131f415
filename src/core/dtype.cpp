// Scalar dtype conversions (see dtype.hpp).
#include "core/dtype.hpp"

#include <cctype>

namespace ssm {

std::string_view dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::I8: return "i8";
  }
  return "?";
}

bool parse_dtype(std::string_view s, DType* out) {
  std::string l;
  for (char c : s) l += char(std::tolower(static_cast<unsigned char>(c)));
  if (l == "f32" || l == "float32" || l == "fp32") *out = DType::F32;
  else if (l == "f16" || l == "float16" || l == "fp16") *out = DType::F16;
  else if (l == "bf16" || l == "bfloat16") *out = DType::BF16;
  else if (l == "i8" || l == "int8") *out = DType::I8;
  else return false;
  return true;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return uint16_t(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u); // overflow (incl. rounding up) -> inf
  if (a < 0x38800000u) {                                 // result is subnormal or zero
    if (a < 0x33000000u) return uint16_t(sign);          // below half the smallest subnormal
    uint32_t e = a >> 23;
    uint32_t m = (a & 0x7fffffu) | 0x800000u;
    uint32_t shift = 126 - e;                            // 14 - (e - 112) + 10 - ...
    uint32_t half = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) half++;
    return uint16_t(sign | half);
  }
  uint32_t r = a - 0x38000000u;  // rebias exponent 127 -> 15
  r += 0xfffu + ((r >> 13) & 1u);
  return uint16_t(sign | (r >> 13));
}

void to_f32(DType t, const void* src, float* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = bf16_to_f32(s[i]);
      return;
    }
    case DType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(s[i]);
      return;
    }
    case DType::I8: {  // raw values; the caller applies block scales
      const auto* s = static_cast<const int8_t*>(src);
      for (size_t i = 0; i < n; i++) dst[i] = float(s[i]);
      return;
    }
  }
}

}  // namespace ssm
