// Tensor handle and host allocation (see tensor.hpp).
#include "core/tensor.hpp"

#include <cstdlib>
#include <cstring>

#include "ssm/error.hpp"

namespace ssm {

std::string shape_str(const Shape& s) {
  std::string r = "(";
  for (size_t i = 0; i < s.size(); i++) {
    if (i) r += ", ";
    r += std::to_string(s[i]);
  }
  if (s.size() == 1) r += ",";
  return r + ")";
}

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw Error("Tensor::zeros: negative dimension in shape " + shape_str(shape));
    n *= d;
  }
  size_t bytes = size_t(n) * dtype_size(dtype);
  size_t rounded = (bytes + 63) / 64 * 64;
  void* p = rounded ? std::aligned_alloc(64, rounded) : std::malloc(1);
  if (!p) throw Error("out of memory: could not allocate " + std::to_string(bytes) + " bytes for tensor " + shape_str(shape));
  std::memset(p, 0, rounded ? rounded : 1);
  std::shared_ptr<void> owner(p, [](void* q) { std::free(q); });
  return Tensor(owner, p, dtype, std::move(shape));
}

Tensor Tensor::from_f32(const float* v, DType dtype, Shape shape) {
  Tensor t = zeros(dtype, std::move(shape));
  int64_t n = t.numel();
  switch (dtype) {
    case DType::F32: std::memcpy(t.raw(), v, size_t(n) * 4); break;
    case DType::BF16: for (int64_t i = 0; i < n; i++) t.data<uint16_t>()[i] = f32_to_bf16(v[i]); break;
    case DType::F16: for (int64_t i = 0; i < n; i++) t.data<uint16_t>()[i] = f32_to_f16(v[i]); break;
    case DType::I8: throw Error("from_f32: i8 needs block quantisation (see loader/quantize.hpp)");
  }
  return t;
}

Tensor Tensor::rows(int64_t begin, int64_t end) const {
  if (shape_.empty() || begin < 0 || end < begin || end > shape_[0])
    throw Error("Tensor::rows: range [" + std::to_string(begin) + ", " + std::to_string(end) + ") outside " + shape_str(shape_));
  int64_t row = numel() / (shape_[0] ? shape_[0] : 1);
  Shape s = shape_;
  s[0] = end - begin;
  auto* p = static_cast<char*>(data_) + size_t(begin * row) * dtype_size(dtype_);
  return Tensor(owner_, p, dtype_, std::move(s), device_);
}

Tensor Tensor::reshape(Shape s) const {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  if (n != numel()) throw Error("Tensor::reshape: cannot view " + shape_str(shape_) + " as " + shape_str(s));
  return Tensor(owner_, data_, dtype_, std::move(s), device_);
}

Tensor Tensor::to_f32() const {
  if (device_ != Device::CPU) throw Error("Tensor::to_f32: tensor is not on the host");
  Tensor t = zeros(DType::F32, shape_);
  ssm::to_f32(dtype_, data_, t.f32(), size_t(numel()));
  return t;
}

Tensor Tensor::clone() const {
  if (device_ != Device::CPU) throw Error("Tensor::clone: tensor is not on the host");
  Tensor t = zeros(dtype_, shape_);
  std::memcpy(t.raw(), data_, nbytes());
  return t;
}

}  // namespace ssm
