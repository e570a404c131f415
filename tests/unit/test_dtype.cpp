// dtype conversions on hand-computed bit patterns (IEEE binary16, bfloat16).
#include <gtest/gtest.h>

#include <cmath>

#include "core/dtype.hpp"

using namespace ssm;

TEST(DType, Bf16RoundTrip) {
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(f32_to_bf16(-2.0f), 0xc000);
  EXPECT_FLOAT_EQ(bf16_to_f32(0x3fc0), 1.5f);
  // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1.0078125: ties to even (1.0).
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80);
  // 1 + 3·2^-9 rounds up.
  EXPECT_EQ(f32_to_bf16(1.005859375f), 0x3f81);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(DType, F16Known) {
  EXPECT_EQ(f32_to_f16(1.0f), 0x3c00);
  EXPECT_EQ(f32_to_f16(-2.5f), 0xc100);
  EXPECT_EQ(f32_to_f16(65504.f), 0x7bff);
  EXPECT_EQ(f32_to_f16(65520.f), 0x7c00);         // rounds to +inf
  EXPECT_EQ(f32_to_f16(5.9604645e-08f), 0x0001);  // smallest subnormal 2^-24
  EXPECT_EQ(f32_to_f16(2.9802322e-08f), 0x0000);  // 2^-25 ties to even (0)
  EXPECT_FLOAT_EQ(f16_to_f32(0x0001), 5.9604645e-08f);
  EXPECT_FLOAT_EQ(f16_to_f32(0x03ff), 6.0975552e-05f);  // largest subnormal
  EXPECT_FLOAT_EQ(f16_to_f32(0x3555), 0.33325195f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7c00)));
}

TEST(DType, F16RoundTripAllFinite) {
  for (uint32_t h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) == 0x7c00) continue;  // inf / nan
    float f = f16_to_f32(uint16_t(h));
    uint16_t back = f32_to_f16(f);
    if ((h & 0x7fff) == 0) EXPECT_EQ(back & 0x7fff, 0);
    else EXPECT_EQ(back, h) << "f16 bits " << h;
  }
}

TEST(DType, Names) {
  DType t;
  EXPECT_TRUE(parse_dtype("BF16", &t));
  EXPECT_EQ(t, DType::BF16);
  EXPECT_TRUE(parse_dtype("float16", &t));
  EXPECT_EQ(t, DType::F16);
  EXPECT_FALSE(parse_dtype("I64", &t));
}
