// Shape-checked weight access (see weights.hpp).
#include "loader/weights.hpp"

#include <cstring>

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
                       std::vector<uint16_t>* q8_scale) const {
  check(name, expect, why);
  Tensor t = ck_.get(name);
  if (t.dtype() == DType::I8) {
    if (!q8_scale || expect.size() != 2)
      throw Error(dir_ + ": tensor '" + name + "' is int8 but this weight is only supported in F32, F16 or BF16");
    if (expect[1] % kernels::kQ8Block != 0)
      throw Error(dir_ + ": tensor '" + name + "' is q8 but its rows (" + std::to_string(expect[1]) +
                  ") are not a multiple of 32");
    const std::string sn = name + "_scale";
    check(sn, {expect[0], expect[1] / kernels::kQ8Block}, "q8 block scales of '" + name + "', one per 32 values of a row");
    const Tensor s = ck_.get(sn);
    if (s.dtype() == DType::I8) throw Error(dir_ + ": tensor '" + sn + "' is int8; q8 block scales are F16 (or F32/BF16)");
    q8_scale->resize(static_cast<size_t>(s.numel()));
    if (s.dtype() == DType::F16) {
      std::memcpy(q8_scale->data(), s.raw(), q8_scale->size() * 2);
    } else {
      std::vector<float> f(q8_scale->size());
      to_f32(s.dtype(), s.raw(), f.data(), f.size());
      for (size_t i = 0; i < f.size(); i++) (*q8_scale)[i] = f32_to_f16(f[i]);
    }
    for (uint16_t h : *q8_scale)
      if ((h & 0x7c00u) == 0x7c00u || (h & 0x8000u))
        throw Error(dir_ + ": tensor '" + sn + "' holds a negative, infinite or NaN block scale (or one beyond f16's range); re-run ssm convert");
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
