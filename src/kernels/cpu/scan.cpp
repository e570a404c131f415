// CPU Mamba-1 selective scan: one channel at a time over the whole sequence, its N states held in a
// local array (registers for N ≤ 16), so the state never round-trips memory between tokens.
#include <cmath>

#include "kernels/cpu/cpu.hpp"

namespace ssm::kernels::cpu {

void selective_scan(const ScanParams& p) {
  constexpr int64_t kMaxN = 256;
  for (int64_t e = 0; e < p.E; e++) {
    float h[kMaxN];
    float A[kMaxN];
    for (int64_t n = 0; n < p.N; n++) h[n] = p.h[e * p.N + n], A[n] = p.A[e * p.N + n];
    const float bias = p.dt_bias ? p.dt_bias[e] : 0.f;
    const float D = p.D ? p.D[e] : 0.f;
    for (int64_t t = 0; t < p.L; t++) {
      const float u = p.u[t * p.u_stride + e];
      const float dt = softplus(p.delta[t * p.delta_stride + e] + bias);
      const float* B = p.B + t * p.B_stride;
      const float* C = p.C + t * p.C_stride;
      const float du = dt * u;
      float y = 0.f;
      for (int64_t n = 0; n < p.N; n++) {
        h[n] = std::exp(dt * A[n]) * h[n] + du * B[n];
        y += h[n] * C[n];
      }
      y += D * u;
      if (p.z) y *= silu(p.z[t * p.z_stride + e]);
      p.y[t * p.y_stride + e] = y;
    }
    for (int64_t n = 0; n < p.N; n++) p.h[e * p.N + n] = h[n];
  }
}

}  // namespace ssm::kernels::cpu
