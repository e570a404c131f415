// Reference depthwise causal conv1d with carried state (see params.hpp ConvParams).
#include <vector>

#include "kernels/ref/ref.hpp"

namespace ssm::kernels::ref {

void causal_conv1d(const ConvParams& p) {
  const int64_t K = p.K, C = p.C;
  // window[k][c] for k in [0, K): the K most recent inputs, oldest first.
  std::vector<float> win(static_cast<size_t>(K * C));
  for (int64_t k = 0; k < K - 1; k++)
    for (int64_t c = 0; c < C; c++) win[k * C + c] = p.state[k * C + c];
  for (int64_t t = 0; t < p.L; t++) {
    for (int64_t c = 0; c < C; c++) win[(K - 1) * C + c] = p.x[t * p.x_stride + c];
    for (int64_t c = 0; c < C; c++) {
      double acc = p.bias ? p.bias[c] : 0.0;
      for (int64_t k = 0; k < K; k++) acc += double(p.w[c * K + k]) * win[k * C + c];
      float a = float(acc);
      p.y[t * p.y_stride + c] = p.silu ? silu(a) : a;
    }
    for (int64_t k = 0; k + 1 < K; k++)
      for (int64_t c = 0; c < C; c++) win[k * C + c] = win[(k + 1) * C + c];
  }
  for (int64_t k = 0; k < K - 1; k++)
    for (int64_t c = 0; c < C; c++) p.state[k * C + c] = win[k * C + c];
}

}  // namespace ssm::kernels::ref
