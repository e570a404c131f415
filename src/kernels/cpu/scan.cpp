// CPU Mamba-1 selective scan (prefill and decode step): channels are split over the thread pool; each
// channel runs through the sequence with its N states held in a small local array (registers for
// N = 16 on AVX-512), vectorised over N with Highway's exp. Δ = softplus(δ + bias) and the D skip
// and z gate are fused, so the only memory traffic is the inputs, y, and the state once per call.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/scan.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

HWY_BEFORE_NAMESPACE();
namespace ssm::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void ScanChannels(const ScanParams& p, int64_t e0, int64_t e1) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  constexpr int64_t kMaxN = 256;
  HWY_ALIGN float h[kMaxN + 64];
  const int64_t N = p.N, Nv = N / L * L;  // vector part; the N % L tail is scalar
  for (int64_t e = e0; e < e1; e++) {
    std::copy(p.h + e * N, p.h + (e + 1) * N, h);
    const float* A = p.A + e * N;
    const float bias = p.dt_bias ? p.dt_bias[e] : 0.f;
    const float Dd = p.D ? p.D[e] : 0.f;
    for (int64_t t = 0; t < p.L; t++) {
      const float u = p.u[t * p.u_stride + e];
      const float dt = softplus(p.delta[t * p.delta_stride + e] + bias);
      const float* B = p.B + t * p.B_stride;
      const float* C = p.C + t * p.C_stride;
      const auto vdt = hn::Set(d, dt), vdu = hn::Set(d, dt * u);
      auto acc = hn::Zero(d);
      for (int64_t n = 0; n < Nv; n += L) {
        const auto dA = hn::Exp(d, hn::Mul(vdt, hn::LoadU(d, A + n)));
        const auto hv = hn::MulAdd(dA, hn::Load(d, h + n), hn::Mul(vdu, hn::LoadU(d, B + n)));
        hn::Store(hv, d, h + n);
        acc = hn::MulAdd(hv, hn::LoadU(d, C + n), acc);
      }
      float y = hn::GetLane(hn::SumOfLanes(d, acc));
      for (int64_t n = Nv; n < N; n++) {
        h[n] = std::exp(dt * A[n]) * h[n] + dt * u * B[n];
        y += h[n] * C[n];
      }
      y += Dd * u;
      if (p.z) y *= silu(p.z[t * p.z_stride + e]);
      p.y[t * p.y_stride + e] = y;
    }
    std::copy(h, h + N, p.h + e * N);
  }
}

}  // namespace ssm::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssm::kernels::cpu {
HWY_EXPORT(ScanChannels);

void selective_scan(const ScanParams& p) {
  init_isa_from_env();
  if (p.N > 256) throw Error("selective_scan: d_state " + std::to_string(p.N) + " exceeds the CPU kernel's 256");
  // Enough channels per part that one part's work (L·N per channel) is worth a hand-off.
  const int64_t grain = std::max<int64_t>(8, 4096 / std::max<int64_t>(1, p.L * p.N));
  parallel_for(p.E, grain, [&](int64_t e0, int64_t e1) { HWY_DYNAMIC_DISPATCH(ScanChannels)(p, e0, e1); });
}

}  // namespace ssm::kernels::cpu
#endif
