// Tensor: a contiguous, row-major block of one dtype on one device, with a shape and an owner that
// keeps the memory alive (an mmap of a checkpoint, a heap buffer, or a device allocation).
// Copying a Tensor copies the handle, not the data. Views (rows, reshape) share the owner.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.hpp"

namespace ssm {

enum class Device : uint8_t { CPU, CUDA };

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);

class Tensor {
 public:
  Tensor() = default;
  Tensor(std::shared_ptr<void> owner, void* data, DType dtype, Shape shape, Device dev = Device::CPU)
      : owner_(std::move(owner)), data_(data), dtype_(dtype), shape_(std::move(shape)), device_(dev) {}

  // Allocates zero-filled host memory (64-byte aligned).
  static Tensor zeros(DType dtype, Shape shape);
  // Copies f32 values into a new host tensor of the given dtype (rounding to nearest even).
  static Tensor from_f32(const float* v, DType dtype, Shape shape);

  bool defined() const { return data_ != nullptr; }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(int i) const { return shape_.at(i < 0 ? shape_.size() + i : i); }
  int ndim() const { return int(shape_.size()); }
  int64_t numel() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <class T> T* data() { return static_cast<T*>(data_); }
  template <class T> const T* data() const { return static_cast<const T*>(data_); }
  float* f32() { return data<float>(); }
  const float* f32() const { return data<float>(); }

  // Rows [begin, end) of the first dimension.
  Tensor rows(int64_t begin, int64_t end) const;
  // Same data, new shape with the same element count.
  Tensor reshape(Shape s) const;
  // A host f32 copy (converting from bf16/f16 when needed).
  Tensor to_f32() const;
  // A deep copy on the same device.
  Tensor clone() const;

 private:
  std::shared_ptr<void> owner_;
  void* data_ = nullptr;
  DType dtype_ = DType::F32;
  Shape shape_;
  Device device_ = Device::CPU;
};

}  // namespace ssm
