// Test support: writes small random checkpoints (config.json + model.safetensors) in the
// transformers layout, for invariant tests that need a model but no reference numbers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.hpp"

namespace ssm::test {

struct TinySpec {
  std::string model_type = "mamba";  // mamba | falcon_mamba | mamba2
  int64_t vocab = 37, d_model = 16, n_layer = 2, d_state = 6, d_conv = 4, expand = 2, dt_rank = 3;
  int64_t n_heads = 4, head_dim = 8, n_groups = 2, chunk = 8;  // mamba2
  DType dtype = DType::F32;
  uint32_t seed = 1;
};

// Creates `dir` (replacing it) and writes the checkpoint there.
void write_tiny_model(const std::string& dir, const TinySpec& s);
// A fresh temporary directory path under the system temp dir.
std::string temp_dir(const std::string& tag);
std::vector<int32_t> random_ids(int64_t n, int64_t vocab, uint32_t seed);

}  // namespace ssm::test
