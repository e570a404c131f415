// Element types the engine stores weights in, and the scalar conversions between them.
// bf16 is the top half of an f32; f16 is IEEE binary16. Conversions are exact (f16/bf16 -> f32)
// or round-to-nearest-even (f32 -> f16/bf16), matching PyTorch's .to() casts.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace ssm {

// I8 holds block-quantised weights (q8: blocks of 32 along a row, one f16 scale per block kept in a
// separate tensor); on its own it is just int8 values.
enum class DType : uint8_t { F32, F16, BF16, I8 };

inline size_t dtype_size(DType t) { return t == DType::F32 ? 4 : t == DType::I8 ? 1 : 2; }
std::string_view dtype_name(DType t);
// Parses safetensors / CLI dtype names ("F32", "bf16", ...); returns false when unknown.
bool parse_dtype(std::string_view s, DType* out);

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);                                          // round to nearest even
  return uint16_t(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t man = h & 0x3ffu;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: renormalise
      int e = -1;
      do {
        e++;
        man <<= 1;
      } while ((man & 0x400u) == 0);
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ffu) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | man << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f);

// Converts n elements of type `t` at `src` to f32.
void to_f32(DType t, const void* src, float* dst, size_t n);

}  // namespace ssm
