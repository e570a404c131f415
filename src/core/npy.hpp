// Minimal NumPy .npy (format 1.0) reading and writing for little-endian f32 / i32 / i64 arrays,
// used for logits dumps and test fixtures.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ssm {

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;  // values widened to f32 (ints converted)
};

void write_npy_f32(const std::string& path, const float* data, const std::vector<int64_t>& shape);
// Reads '<f4', '<f8', '<i4' or '<i8' C-order arrays; throws ssm::Error naming the file otherwise.
NpyArray read_npy(const std::string& path);

}  // namespace ssm
