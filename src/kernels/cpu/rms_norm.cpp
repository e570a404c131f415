// CPU RMSNorm over groups of channels, optionally gated (Mamba-2 RMSNormGated), see params.hpp.
// Rows are split over the thread pool; each row is vectorised: v = gate ? x·silu(g) : x, sum of
// squares in f32 lanes, then y = v·r·w (·silu(g) when norm_before_gate). In-place (x == y) is allowed.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/rms_norm.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include "kernels/cpu/silu-inl.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

HWY_BEFORE_NAMESPACE();
namespace ssm::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;


void RmsRows(const RmsNormParams& p, int64_t m0, int64_t m1) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  thread_local std::vector<float> vbuf;
  vbuf.resize(size_t(p.D));
  float* v = vbuf.data();
  const bool pre_gate = p.gate && !p.norm_before_gate, post_gate = p.gate && p.norm_before_gate;
  for (int64_t m = m0; m < m1; m++) {
    const float* x = p.x + m * p.x_stride;
    const float* g = p.gate ? p.gate + m * p.gate_stride : nullptr;
    float* y = p.y + m * p.y_stride;
    int64_t i = 0;
    for (; i + L <= p.D; i += L) {
      auto xv = hn::LoadU(d, x + i);
      if (pre_gate) xv = hn::Mul(xv, Silu(d, hn::LoadU(d, g + i)));
      hn::StoreU(xv, d, v + i);
    }
    for (; i < p.D; i++) v[i] = pre_gate ? x[i] * silu(g[i]) : x[i];
    for (int64_t g0 = 0; g0 < p.D; g0 += p.group) {
      const int64_t g1 = g0 + p.group;
      auto ss = hn::Zero(d);
      int64_t k = g0;
      for (; k + L <= g1; k += L) {
        const auto t = hn::LoadU(d, v + k);
        ss = hn::MulAdd(t, t, ss);
      }
      float s = hn::GetLane(hn::SumOfLanes(d, ss));
      for (; k < g1; k++) s += v[k] * v[k];
      const float r = 1.f / std::sqrt(s / float(p.group) + p.eps);
      const auto vr = hn::Set(d, r);
      k = g0;
      for (; k + L <= g1; k += L) {
        auto o = hn::Mul(hn::LoadU(d, v + k), vr);
        if (p.w) o = hn::Mul(o, hn::LoadU(d, p.w + k));
        if (post_gate) o = hn::Mul(o, Silu(d, hn::LoadU(d, g + k)));
        hn::StoreU(o, d, y + k);
      }
      for (; k < g1; k++) {
        float o = v[k] * r * (p.w ? p.w[k] : 1.f);
        if (post_gate) o *= silu(g[k]);
        y[k] = o;
      }
    }
  }
}

}  // namespace ssm::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssm::kernels::cpu {
HWY_EXPORT(RmsRows);

void rms_norm(const RmsNormParams& p) {
  init_isa_from_env();
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, p.D));
  parallel_for(p.M, grain, [&](int64_t m0, int64_t m1) { HWY_DYNAMIC_DISPATCH(RmsRows)(p, m0, m1); });
}

}  // namespace ssm::kernels::cpu
#endif
