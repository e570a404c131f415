// `ssm convert`: rewrites a checkpoint's weights into a new model directory.
//   q8: the large matrices (embeddings, in_proj, x_proj, out_proj, lm_head) become int8 blocks of 32
//       with one f16 scale each ('<name>_scale', see quantize.hpp); A_log, D, dt_proj/dt_bias, conv1d
//       and norms stay as stored, since they set the recurrence's dynamics and are a negligible share
//       of the bytes.
//   f16/bf16/f32: every floating-point tensor is cast (round to nearest even).
// The output directory gets one model.safetensors plus config.json (with "ssm_quantization" added for
// q8) and the tokenizer/generation files copied over. Files appear only when complete (written to a
// temporary name, then renamed); the source directory is never written.
#pragma once
#include <cstdint>
#include <string>

#include "core/tensor.hpp"

namespace ssm {

struct ConvertResult {
  int64_t tensors = 0, quantized = 0, in_bytes = 0, out_bytes = 0;
};

// `to` is q8, f16, bf16 or f32.
ConvertResult convert_checkpoint(const std::string& dir, const std::string& to, const std::string& out);

// Whether q8 conversion quantises this tensor (name and shape rule above).
bool q8_quantizable(const std::string& name, const Shape& shape);

}  // namespace ssm
