// q8 weight quantisation (block-wise, like GGML's Q8_0 but with f32 scales): each row of K values is
// cut into blocks of kQ8Block = 32; a block stores d = max|x|/127 and q = round(x/d) in int8, so
// x ≈ q·d with |error| ≤ d/2 per element. K must be a multiple of 32.
#pragma once
#include <cstdint>

namespace ssm {

void quantize_q8_rows(const float* x, int64_t rows, int64_t K, int8_t* q, float* scales);

}  // namespace ssm
