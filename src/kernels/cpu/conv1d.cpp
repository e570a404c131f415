// CPU depthwise causal conv1d + bias + SiLU with carried window (see params.hpp ConvParams),
// vectorised over channels. Weights arrive as (C, K); every tap must be a contiguous vector load, so
// they are used as the (K, C) copy in p.w_t (the layers make it at load) or else transposed per
// call into a scratch (at decode that serial transpose took longer than the conv itself). Channels
// are split over the thread pool.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/conv1d.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include "kernels/cpu/silu-inl.h"

#include <algorithm>
#include <vector>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

HWY_BEFORE_NAMESPACE();
namespace ssm::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;


// Channels [c0, c1): wt is (K, C) transposed weights.
void ConvChannels(const ConvParams& p, const float* wt, int64_t c0, int64_t c1) {
  const hn::ScalableTag<float> d;
  const int64_t L = int64_t(hn::Lanes(d)), K = p.K, C = p.C;
  int64_t c = c0;
  for (; c + L <= c1; c += L) {
    // win[k] holds inputs t-K+1+k for this vector of channels.
    hn::Vec<decltype(d)> win[8];
    for (int64_t k = 0; k < K - 1; k++) win[k] = hn::LoadU(d, p.state + k * C + c);
    const auto bias = p.bias ? hn::LoadU(d, p.bias + c) : hn::Zero(d);
    for (int64_t t = 0; t < p.L; t++) {
      win[K - 1] = hn::LoadU(d, p.x + t * p.x_stride + c);
      auto acc = bias;
      for (int64_t k = 0; k < K; k++) acc = hn::MulAdd(hn::LoadU(d, wt + k * C + c), win[k], acc);
      hn::StoreU(p.silu ? Silu(d, acc) : acc, d, p.y + t * p.y_stride + c);
      for (int64_t k = 0; k + 1 < K; k++) win[k] = win[k + 1];
    }
    for (int64_t k = 0; k < K - 1; k++) hn::StoreU(win[k], d, p.state + k * C + c);
  }
  for (; c < c1; c++) {  // channel tail
    float win[8];
    for (int64_t k = 0; k < K - 1; k++) win[k] = p.state[k * C + c];
    for (int64_t t = 0; t < p.L; t++) {
      win[K - 1] = p.x[t * p.x_stride + c];
      float acc = p.bias ? p.bias[c] : 0.f;
      for (int64_t k = 0; k < K; k++) acc += wt[k * C + c] * win[k];
      p.y[t * p.y_stride + c] = p.silu ? silu(acc) : acc;
      for (int64_t k = 0; k + 1 < K; k++) win[k] = win[k + 1];
    }
    for (int64_t k = 0; k < K - 1; k++) p.state[k * C + c] = win[k];
  }
}

}  // namespace ssm::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssm::kernels::cpu {
HWY_EXPORT(ConvChannels);

void causal_conv1d(const ConvParams& p) {
  init_isa_from_env();
  if (p.K < 1 || p.K > 8) throw Error("causal_conv1d: conv kernel width " + std::to_string(p.K) + " is outside 1..8");
  const float* w = p.w_t;
  if (!w) {
    thread_local std::vector<float> wt;
    wt.resize(size_t(p.K * p.C));
    for (int64_t c = 0; c < p.C; c++)
      for (int64_t k = 0; k < p.K; k++) wt[size_t(k * p.C + c)] = p.w[c * p.K + k];
    w = wt.data();
  }
  const int64_t grain = std::max<int64_t>(64, (16384 / std::max<int64_t>(1, p.L * p.K)) / 16 * 16);
  parallel_for(p.C, grain, [&](int64_t c0, int64_t c1) { HWY_DYNAMIC_DISPATCH(ConvChannels)(p, w, c0, c1); });
}

}  // namespace ssm::kernels::cpu
#endif
