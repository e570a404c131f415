// Shape-checked weight access (see weights.hpp).
#include "loader/weights.hpp"

#include "kernels/params.hpp"
#include "ssm/error.hpp"

namespace ssm {

void Weights::check(const std::string& name, const Shape& expect, const std::string& why) const {
  if (!ck_.has(name))
    throw Error(dir_ + ": missing tensor '" + name + "' (expected shape " + shape_str(expect) + " from " + why + ")");
  const TensorInfo& ti = ck_.info(name);
  if (ti.shape != expect)
    throw Error(dir_ + ": tensor '" + name + "' has shape " + shape_str(ti.shape) + " but config.json implies " +
                shape_str(expect) + " (" + why + ")");
  if (!ti.loadable)
    throw Error(dir_ + ": tensor '" + name + "' has dtype " + ti.dtype_str + "; expected F32, F16 or BF16 (or I8 for q8 matrices)");
}

Tensor Weights::matrix(const std::string& name, const Shape& expect, const std::string& why,
                       std::vector<float>* q8_scale) const {
  check(name, expect, why);
  Tensor t = ck_.get(name);
  if (t.dtype() == DType::I8) {
    if (!q8_scale || expect.size() != 2)
      throw Error(dir_ + ": tensor '" + name + "' is int8 but this weight is only supported in F32, F16 or BF16");
    if (expect[1] % kernels::kQ8Block != 0)
      throw Error(dir_ + ": tensor '" + name + "' is q8 but its rows (" + std::to_string(expect[1]) +
                  ") are not a multiple of 32");
    *q8_scale = vec(name + "_scale", {expect[0], expect[1] / kernels::kQ8Block},
                    "q8 block scales of '" + name + "', one per 32 values of a row");
  } else if (q8_scale) {
    q8_scale->clear();
  }
  return t;
}

std::vector<float> Weights::vec(const std::string& name, const Shape& expect, const std::string& why) const {
  check(name, expect, why);
  if (ck_.info(name).dtype == DType::I8)
    throw Error(dir_ + ": tensor '" + name + "' is int8; only F32, F16 or BF16 is supported for it");
  Tensor t = ck_.get(name);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  to_f32(t.dtype(), t.raw(), v.data(), v.size());
  return v;
}

}  // namespace ssm
