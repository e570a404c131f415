// Reference RMSNorm, optionally grouped and gated (see params.hpp RmsNormParams). Gated form is
// Mamba-2's RMSNormGated: norm(x·silu(z))·w, or norm(x)·w·silu(z) when norm_before_gate.
#include <cmath>
#include <vector>

#include "kernels/ref/ref.hpp"

namespace ssm::kernels::ref {

void rms_norm(const RmsNormParams& p) {
  std::vector<double> v(static_cast<size_t>(p.D));
  for (int64_t m = 0; m < p.M; m++) {
    const float* x = p.x + m * p.x_stride;
    const float* g = p.gate ? p.gate + m * p.gate_stride : nullptr;
    float* y = p.y + m * p.y_stride;
    for (int64_t d = 0; d < p.D; d++) v[d] = (g && !p.norm_before_gate) ? double(x[d]) * silu(g[d]) : double(x[d]);
    for (int64_t g0 = 0; g0 < p.D; g0 += p.group) {
      double ss = 0;
      for (int64_t d = g0; d < g0 + p.group; d++) ss += v[d] * v[d];
      double r = 1.0 / std::sqrt(ss / double(p.group) + double(p.eps));
      for (int64_t d = g0; d < g0 + p.group; d++) {
        double o = v[d] * r * (p.w ? p.w[d] : 1.f);
        if (g && p.norm_before_gate) o *= silu(g[d]);
        y[d] = float(o);
      }
    }
  }
}

}  // namespace ssm::kernels::ref
