// Reference Mamba-1 selective scan and Mamba-2 SSD: the recurrences written out token by token
// (Gu & Dao 2023, eq. 2; Dao & Gu 2024, §3). Fast and chunked kernels are checked against these.
#include <cmath>
#include <vector>

#include "kernels/ref/ref.hpp"

namespace ssm::kernels::ref {

void selective_scan(const ScanParams& p) {
  for (int64_t t = 0; t < p.L; t++) {
    const float* u = p.u + t * p.u_stride;
    const float* B = p.B + t * p.B_stride;
    const float* C = p.C + t * p.C_stride;
    for (int64_t e = 0; e < p.E; e++) {
      float dt = softplus(p.delta[t * p.delta_stride + e] + (p.dt_bias ? p.dt_bias[e] : 0.f));
      float* h = p.h + e * p.N;
      double y = 0;
      for (int64_t n = 0; n < p.N; n++) {
        h[n] = std::exp(dt * p.A[e * p.N + n]) * h[n] + dt * B[n] * u[e];
        y += double(h[n]) * C[n];
      }
      y += p.D ? double(p.D[e]) * u[e] : 0.0;
      if (p.z) y *= silu(p.z[t * p.z_stride + e]);
      p.y[t * p.y_stride + e] = float(y);
    }
  }
}

void ssd_recurrent(const SsdParams& p) {
  const int64_t heads_per_group = p.H / p.G;
  for (int64_t t = 0; t < p.L; t++) {
    for (int64_t h = 0; h < p.H; h++) {
      const int64_t g = h / heads_per_group;
      float dt = softplus(p.dt[t * p.dt_stride + h] + p.dt_bias[h]);
      dt = std::fmin(std::fmax(dt, p.dt_min), p.dt_max);
      const float a = std::exp(dt * p.A[h]);
      const float* B = p.B + t * p.B_stride + g * p.N;
      const float* C = p.C + t * p.C_stride + g * p.N;
      for (int64_t i = 0; i < p.P; i++) {
        const float x = p.x[t * p.x_stride + h * p.P + i];
        float* S = p.state + (h * p.P + i) * p.N;
        double y = 0;
        for (int64_t n = 0; n < p.N; n++) {
          S[n] = a * S[n] + dt * x * B[n];
          y += double(S[n]) * C[n];
        }
        y += p.D ? double(p.D[h]) * x : 0.0;
        p.y[t * p.y_stride + h * p.P + i] = float(y);
      }
    }
  }
}

}  // namespace ssm::kernels::ref
