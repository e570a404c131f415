// Shape-checked weight access (see weights.hpp).
#include "loader/weights.hpp"

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
    throw Error(dir_ + ": tensor '" + name + "' has dtype " + ti.dtype_str + "; expected F32, F16 or BF16");
}

Tensor Weights::matrix(const std::string& name, const Shape& expect, const std::string& why) const {
  check(name, expect, why);
  return ck_.get(name);
}

std::vector<float> Weights::vec(const std::string& name, const Shape& expect, const std::string& why) const {
  check(name, expect, why);
  Tensor t = ck_.get(name);
  std::vector<float> v(static_cast<size_t>(t.numel()));
  to_f32(t.dtype(), t.raw(), v.data(), v.size());
  return v;
}

}  // namespace ssm
