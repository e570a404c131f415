// q8 weight quantisation (block-wise, like GGML's Q8_0: 34 bytes per 32 weights): each row of K
// values is cut into blocks of kQ8Block = 32; a block stores d = max|x|/127 rounded to f16 and
// q = round(x/d) in int8, clamped to ±127 (d's rounding can put the largest |x|/d a hair above 127,
// and far above it for blocks so small that d is an f16 subnormal), so x ≈ q·d with |error| ≤ d/2
// per element wherever |x| ≤ 127·d. K must be a multiple of 32. A block whose d exceeds f16's
// largest value (max |x| above ~8.3e6) is an error naming `what`.
#pragma once
#include <cstdint>
#include <string>

namespace ssm {

void quantize_q8_rows(const float* x, int64_t rows, int64_t K, int8_t* q, uint16_t* scales, const std::string& what = "tensor");

}  // namespace ssm
