// Weights: typed access to a checkpoint's tensors with the shape the config implies. Every lookup
// checks presence, dtype and shape and throws one line naming the tensor, the expected shape and the
// config fields behind it. Large matrices stay zero-copy in their stored dtype; small per-channel
// vectors are widened to f32 once at load.
#pragma once
#include <string>
#include <vector>

#include "loader/checkpoint.hpp"

namespace ssm {

class Weights {
 public:
  Weights(const Checkpoint& ck, std::string dir) : ck_(ck), dir_(std::move(dir)) {}

  bool has(const std::string& name) const { return ck_.has(name); }
  // A zero-copy view with the exact expected shape. `why` explains the shape (config fields).
  // With `q8_scale`, an I8 tensor is accepted as q8 (see loader/quantize.hpp) and its block scales
  // are read from '<name>_scale' ((rows, cols/32), kept as f16 bits: F16 as stored, F32/BF16 — files
  // written before the scales became f16 — rounded to nearest even); without, only F32/F16/BF16 are.
  Tensor matrix(const std::string& name, const Shape& expect, const std::string& why,
                std::vector<uint16_t>* q8_scale = nullptr) const;
  // An f32 copy of a tensor with `expect` elements' shape (per-channel vectors, conv kernels, A_log).
  std::vector<float> vec(const std::string& name, const Shape& expect, const std::string& why) const;

 private:
  void check(const std::string& name, const Shape& expect, const std::string& why) const;
  const Checkpoint& ck_;
  std::string dir_;
};

}  // namespace ssm
