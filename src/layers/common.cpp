// Linear and RMSNorm helpers (see layer.hpp).
#include "layers/layer.hpp"
#include "ops/ops.hpp"

namespace ssm {

Linear Linear::load(const Weights& W, const std::string& prefix, int64_t out, int64_t in, bool bias, const std::string& why) {
  Linear l;
  l.out = out;
  l.in = in;
  l.w = W.matrix(prefix + ".weight", {out, in}, why, &l.scale);
  if (bias) l.b = W.vec(prefix + ".bias", {out}, why);
  return l;
}

void Linear::operator()(const float* x, int64_t M, int64_t x_stride, float* y, int64_t y_stride) const {
  ops::linear({M, out, in, x, x_stride, w.raw(), w.dtype(), b.empty() ? nullptr : b.data(), y, y_stride,
               scale.empty() ? nullptr : scale.data()});
}

std::vector<float> transpose_conv(const std::vector<float>& w, int64_t C, int64_t K) {
  std::vector<float> t(w.size());
  for (int64_t c = 0; c < C; c++)
    for (int64_t k = 0; k < K; k++) t[size_t(k * C + c)] = w[size_t(c * K + k)];
  return t;
}

void rms_norm_rows(const float* x, int64_t M, int64_t D, int64_t stride, const float* w, float eps, float* y) {
  ops::rms_norm({M, D, D, x, stride, w, nullptr, 0, false, eps, y, stride});
}

}  // namespace ssm
