// CPU Mamba-1 selective scan (prefill and decode step): channels are split over the thread pool and
// vectorised across channels: one vector holds one state index n of `lanes` neighbouring channels,
// so Δ = softplus(δ + bias), the D skip and the z gate are vector operations shared by the lanes,
// B_t[n] and C_t[n] are broadcasts, and C·h needs no horizontal sum. Channels left over (fewer than
// a vector) run one at a time, vectorised over N. The only memory traffic is the inputs, y, and the
// state once per call.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/scan.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include <hwy/contrib/math/math-inl.h>

#include <algorithm>
#include <cmath>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"
#include "kernels/cpu/silu-inl.h"

HWY_BEFORE_NAMESPACE();
namespace ssm::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// softplus(x) = log(1 + eˣ), x itself above 20 (as the scalar softplus in kernels/params.hpp).
template <class D, class V>
HWY_INLINE V Softplus(D d, V x) {
  const auto big = hn::Gt(x, hn::Set(d, 20.f));
  const auto sp = hn::Log1p(d, hn::Exp(d, hn::Min(x, hn::Set(d, 20.f))));
  return hn::IfThenElse(big, x, sp);
}

// Channels [e0, e0 + k·lanes): lanes = channels, one vector per state index.
int64_t ScanChannelGroups(const ScanParams& p, int64_t e0, int64_t e1) {
  const hn::ScalableTag<float> d;
  const int64_t V = int64_t(hn::Lanes(d)), N = p.N;
  // The transposes in and out cost about as much as a step: short blocks (decode) go per channel.
  if (V == 1 || p.L < 8) return e0;
  constexpr int64_t kMaxN = 256, kMaxV = 16;
  HWY_ALIGN float h[kMaxN * kMaxV], At[kMaxN * kMaxV];
  for (int64_t e = e0; e + V <= e1; e += V) {
    for (int64_t l = 0; l < V; l++)
      for (int64_t n = 0; n < N; n++) {
        h[n * V + l] = p.h[(e + l) * N + n];
        At[n * V + l] = p.A[(e + l) * N + n];
      }
    const auto bias = p.dt_bias ? hn::LoadU(d, p.dt_bias + e) : hn::Zero(d);
    const auto Dd = p.D ? hn::LoadU(d, p.D + e) : hn::Zero(d);
    for (int64_t t = 0; t < p.L; t++) {
      const auto u = hn::LoadU(d, p.u + t * p.u_stride + e);
      const auto dt = Softplus(d, hn::Add(hn::LoadU(d, p.delta + t * p.delta_stride + e), bias));
      const auto du = hn::Mul(dt, u);
      const float* B = p.B + t * p.B_stride;
      const float* C = p.C + t * p.C_stride;
      auto y = hn::Zero(d);
      for (int64_t n = 0; n < N; n++) {
        const auto dA = hn::Exp(d, hn::Mul(dt, hn::Load(d, At + n * V)));
        const auto hv = hn::MulAdd(dA, hn::Load(d, h + n * V), hn::Mul(du, hn::Set(d, B[n])));
        hn::Store(hv, d, h + n * V);
        y = hn::MulAdd(hv, hn::Set(d, C[n]), y);
      }
      y = hn::MulAdd(Dd, u, y);
      if (p.z) y = hn::Mul(y, Silu(d, hn::LoadU(d, p.z + t * p.z_stride + e)));
      hn::StoreU(y, d, p.y + t * p.y_stride + e);
    }
    for (int64_t l = 0; l < V; l++)
      for (int64_t n = 0; n < N; n++) p.h[(e + l) * N + n] = h[n * V + l];
  }
  return e0 + (e1 - e0) / V * V;
}

void ScanChannels(const ScanParams& p, int64_t e0, int64_t e1) {
  e0 = ScanChannelGroups(p, e0, e1);
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t N = p.N, Nv = N / L * L;  // vector part; the N % L tail is scalar
  // Decode (one step): Δ and silu(z) of a tile of channels first, vectorised across channels, so
  // the per-channel loop below has no scalar log1p/exp calls (they were ~1/3 of its time).
  constexpr int64_t kTile = 64;
  HWY_ALIGN float dt1[kTile], gate1[kTile];
  const bool one = p.L == 1;
  for (int64_t e = e0; e < e1; e++) {
    const int64_t j = (e - e0) % kTile;
    if (one && j == 0) {
      const int64_t n = std::min(kTile, e1 - e);
      int64_t i = 0;
      for (; i + L <= n; i += L) {
        const auto b = p.dt_bias ? hn::LoadU(d, p.dt_bias + e + i) : hn::Zero(d);
        hn::Store(Softplus(d, hn::Add(hn::LoadU(d, p.delta + e + i), b)), d, dt1 + i);
        if (p.z) hn::Store(Silu(d, hn::LoadU(d, p.z + e + i)), d, gate1 + i);
      }
      for (; i < n; i++) {
        dt1[i] = softplus(p.delta[e + i] + (p.dt_bias ? p.dt_bias[e + i] : 0.f));
        if (p.z) gate1[i] = silu(p.z[e + i]);
      }
    }
    float* h = p.h + e * N;  // updated in place (a copy to the stack cost two memcpy calls per channel)
    const float* A = p.A + e * N;
    const float bias = p.dt_bias ? p.dt_bias[e] : 0.f;
    const float Dd = p.D ? p.D[e] : 0.f;
    for (int64_t t = 0; t < p.L; t++) {
      const float u = p.u[t * p.u_stride + e];
      const float dt = one ? dt1[j] : softplus(p.delta[t * p.delta_stride + e] + bias);
      const float* B = p.B + t * p.B_stride;
      const float* C = p.C + t * p.C_stride;
      const auto vdt = hn::Set(d, dt), vdu = hn::Set(d, dt * u);
      auto acc = hn::Zero(d);
      for (int64_t n = 0; n < Nv; n += L) {
        const auto dA = hn::Exp(d, hn::Mul(vdt, hn::LoadU(d, A + n)));
        const auto hv = hn::MulAdd(dA, hn::LoadU(d, h + n), hn::Mul(vdu, hn::LoadU(d, B + n)));
        hn::StoreU(hv, d, h + n);
        acc = hn::MulAdd(hv, hn::LoadU(d, C + n), acc);
      }
      float y = hn::GetLane(hn::SumOfLanes(d, acc));
      for (int64_t n = Nv; n < N; n++) {
        h[n] = std::exp(dt * A[n]) * h[n] + dt * u * B[n];
        y += h[n] * C[n];
      }
      y += Dd * u;
      if (p.z) y *= one ? gate1[j] : silu(p.z[t * p.z_stride + e]);
      p.y[t * p.y_stride + e] = y;
    }
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
  // Multiples of 16 channels, so every part but the last is whole vectors.
  const int64_t grain = (std::max<int64_t>(16, 4096 / std::max<int64_t>(1, p.L * p.N)) + 15) / 16 * 16;
  parallel_for(p.E, grain, [&](int64_t e0, int64_t e1) { HWY_DYNAMIC_DISPATCH(ScanChannels)(p, e0, e1); });
}

}  // namespace ssm::kernels::cpu
#endif
