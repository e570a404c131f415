// CPU Mamba-2 recurrent update for single-token segments (decode): heads are split over the thread
// pool; for each head Δ and exp(Δ·A) are scalars, and every (P, N) state row is updated and
// contracted with C in one pass vectorised over N:  S = a·S + (Δ·x)·B;  y = S·C + D·x.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/ssd_step.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

HWY_BEFORE_NAMESPACE();
namespace ssm::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

void SsdStepHeads(const SsdParams& p, int64_t h0, int64_t h1) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t N = p.N, Nv = N / L * L, heads_per_group = p.H / p.G;
  for (int64_t t = 0; t < p.L; t++)
    for (int64_t h = h0; h < h1; h++) {
      const int64_t g = h / heads_per_group;
      float dt = softplus(p.dt[t * p.dt_stride + h] + p.dt_bias[h]);
      dt = std::fmin(std::fmax(dt, p.dt_min), p.dt_max);
      const float a = std::exp(dt * p.A[h]);
      const float* B = p.B + t * p.B_stride + g * N;
      const float* C = p.C + t * p.C_stride + g * N;
      const auto va = hn::Set(d, a);
      for (int64_t i = 0; i < p.P; i++) {
        const float x = p.x[t * p.x_stride + h * p.P + i];
        float* S = p.state + (h * p.P + i) * N;
        const auto vdx = hn::Set(d, dt * x);
        auto acc = hn::Zero(d);
        for (int64_t n = 0; n < Nv; n += L) {
          const auto s = hn::MulAdd(va, hn::LoadU(d, S + n), hn::Mul(vdx, hn::LoadU(d, B + n)));
          hn::StoreU(s, d, S + n);
          acc = hn::MulAdd(s, hn::LoadU(d, C + n), acc);
        }
        float y = hn::GetLane(hn::SumOfLanes(d, acc));
        for (int64_t n = Nv; n < N; n++) {
          S[n] = a * S[n] + dt * x * B[n];
          y += S[n] * C[n];
        }
        p.y[t * p.y_stride + h * p.P + i] = y + (p.D ? p.D[h] * x : 0.f);
      }
    }
}

}  // namespace ssm::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssm::kernels::cpu {
HWY_EXPORT(SsdStepHeads);

void ssd_step(const SsdParams& p) {
  init_isa_from_env();
  // Tokens stay sequential inside each head, so heads are the parallel dimension.
  const int64_t grain = std::max<int64_t>(1, 8192 / std::max<int64_t>(1, p.P * p.N));
  parallel_for(p.H, grain, [&](int64_t h0, int64_t h1) { HWY_DYNAMIC_DISPATCH(SsdStepHeads)(p, h0, h1); });
}

}  // namespace ssm::kernels::cpu
#endif
