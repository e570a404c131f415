// CPU matrix-vector products for decode: y (M, N) = x (M, K) · W(N, K)ᵀ + b for small M, with the
// weight conversion (bf16/f16/q8 -> f32) fused into the dot products so each weight byte is read
// once from memory. Rows of W are split over the thread pool and walked in order. Highway picks the
// widest ISA at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/gemv.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

#ifndef SSM_GEMV_Q8ACT  // once, outside the per-target namespaces (this file is included per target)
#define SSM_GEMV_Q8ACT
namespace ssm::kernels::cpu {
struct Q8Act {       // activations of a q8 product, quantised (see gemv_rows_q8_m)
  const int16_t* q;  // (M, K)
  const float* s;    // (M, K/32)
};
}  // namespace ssm::kernels::cpu
#endif

HWY_BEFORE_NAMESPACE();
namespace ssm::kernels::cpu::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using DF = hn::ScalableTag<float>;

// Loads Lanes(DF) weights starting at element k of a row, widened to f32.
struct RowF32 {
  const float* p;
  HWY_INLINE hn::Vec<DF> load(DF d, int64_t k) const { return hn::LoadU(d, p + k); }
  HWY_INLINE float at(int64_t k) const { return p[k]; }
};
struct RowBF16 {
  const uint16_t* p;
  HWY_INLINE hn::Vec<DF> load(DF d, int64_t k) const {
    const hn::Rebind<uint16_t, DF> d16;
    const hn::Rebind<uint32_t, DF> d32;
    return hn::BitCast(d, hn::ShiftLeft<16>(hn::PromoteTo(d32, hn::LoadU(d16, p + k))));
  }
  HWY_INLINE float at(int64_t k) const { return bf16_to_f32(p[k]); }
};
struct RowF16 {
  const uint16_t* p;
  HWY_INLINE hn::Vec<DF> load(DF d, int64_t k) const {
    const hn::Rebind<hwy::float16_t, DF> dh;
    return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p + k)));
  }
  HWY_INLINE float at(int64_t k) const { return f16_to_f32(p[k]); }
};

// One weight row against one x row, four independent accumulators over k.
template <class Row>
HWY_INLINE float dot_row(const Row& row, const float* x, int64_t K) {
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t k = 0;
  for (; k + 4 * L <= K; k += 4 * L) {
    a0 = hn::MulAdd(row.load(d, k), hn::LoadU(d, x + k), a0);
    a1 = hn::MulAdd(row.load(d, k + L), hn::LoadU(d, x + k + L), a1);
    a2 = hn::MulAdd(row.load(d, k + 2 * L), hn::LoadU(d, x + k + 2 * L), a2);
    a3 = hn::MulAdd(row.load(d, k + 3 * L), hn::LoadU(d, x + k + 3 * L), a3);
  }
  for (; k + L <= K; k += L) a0 = hn::MulAdd(row.load(d, k), hn::LoadU(d, x + k), a0);
  float s = hn::GetLane(hn::SumOfLanes(d, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; k < K; k++) s += row.at(k) * x[k];
  return s;
}

// One weight row against M x rows (stride xs): each weight vector is loaded once for all M.
template <int M, class Row>
HWY_INLINE void dot_row_m(const Row& row, const float* x, int64_t xs, int64_t K, float* out) {
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  hn::Vec<DF> acc[M];
  for (int m = 0; m < M; m++) acc[m] = hn::Zero(d);
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    const auto w = row.load(d, k);
    for (int m = 0; m < M; m++) acc[m] = hn::MulAdd(w, hn::LoadU(d, x + m * xs + k), acc[m]);
  }
  for (int m = 0; m < M; m++) {
    float s = hn::GetLane(hn::SumOfLanes(d, acc[m]));
    for (int64_t t = k; t < K; t++) s += row.at(t) * x[m * xs + t];
    out[m] = s;
  }
}

template <int M, class Row, class MakeRow>
void gemv_rows_m(const LinearParams& p, const float* x, float* y, MakeRow make_row, int64_t n0, int64_t n1) {
  float out[M];
  for (int64_t n = n0; n < n1; n++) {
    const float b = p.bias ? p.bias[n] : 0.f;
    if constexpr (M == 1) {
      y[n] = dot_row(make_row(n), x, p.K) + b;
    } else {
      dot_row_m<M>(make_row(n), x, p.x_stride, p.K, out);
      for (int m = 0; m < M; m++) y[m * p.y_stride + n] = out[m] + b;
    }
  }
}

// Rows are walked one after another, so the weights are one sequential stream (what the hardware
// prefetchers follow best: interleaving four rows measured 20-35% less bandwidth for bf16/f16), and
// each row serves up to 8 x rows at once.
template <class Row, class MakeRow>
void gemv_rows(const LinearParams& p, MakeRow make_row, int64_t n0, int64_t n1) {
  for (int64_t m0 = 0; m0 < p.M; m0 += 8) {
    const float* x = p.x + m0 * p.x_stride;
    float* y = p.y + m0 * p.y_stride;
    switch (std::min<int64_t>(8, p.M - m0)) {
      case 1: gemv_rows_m<1, Row>(p, x, y, make_row, n0, n1); break;
      case 2: gemv_rows_m<2, Row>(p, x, y, make_row, n0, n1); break;
      case 3: gemv_rows_m<3, Row>(p, x, y, make_row, n0, n1); break;
      case 4: gemv_rows_m<4, Row>(p, x, y, make_row, n0, n1); break;
      case 5: gemv_rows_m<5, Row>(p, x, y, make_row, n0, n1); break;
      case 6: gemv_rows_m<6, Row>(p, x, y, make_row, n0, n1); break;
      case 7: gemv_rows_m<7, Row>(p, x, y, make_row, n0, n1); break;
      default: gemv_rows_m<8, Row>(p, x, y, make_row, n0, n1); break;
    }
  }
}

// Q8 × Q8 (params.hpp): row n holds K int8 weights in blocks of 32 with f32 scales (w_scale (N, K/32));
// the activations arrive quantised the same way, widened to int16 (xq (M, K)) with their scales
// (xs (M, K/32)). Per block, int16 pairs multiply-add into int32 lanes (exact: |Σ| <= 32·127²), and
// the block total scaled by w_scale·x_scale joins an f32 accumulator; one weight vector serves all
// M rows, and for M = 1 four accumulators rotate over blocks to cover the FMA latency.
// Block b of one weight row against M activation rows: the exact integer sums (int32 lanes).
template <int M, class D32>
HWY_INLINE void q8_block_sums(D32 d32, const int8_t* w, const int16_t* xq, int64_t K, hn::Vec<D32> (&is)[M]) {
#if HWY_TARGET == HWY_SCALAR
  for (int m = 0; m < M; m++) {
    int32_t t = 0;
    for (int64_t j = 0; j < kQ8Block; j++) t += int32_t(w[j]) * xq[m * K + j];
    is[m] = hn::Set(d32, t);
  }
#else
  const hn::Repartition<int16_t, D32> d16;
  const hn::Rebind<int8_t, decltype(d16)> d8;
  const int64_t L16 = int64_t(hn::Lanes(d16));
  for (int m = 0; m < M; m++) is[m] = hn::Zero(d32);
  for (int64_t j = 0; j < kQ8Block; j += L16) {
    const auto wv = hn::PromoteTo(d16, hn::LoadU(d8, w + j));
    for (int m = 0; m < M; m++) {
      auto odd = hn::Zero(d32);
      is[m] = hn::ReorderWidenMulAccumulate(d32, wv, hn::LoadU(d16, xq + m * K + j), is[m], odd);
      is[m] = hn::Add(is[m], odd);
    }
  }
#endif
}

template <int M>
void gemv_rows_q8_m(const LinearParams& p, const Q8Act& xa, int64_t m0, int64_t n0, int64_t n1) {
  const DF df;
  const hn::Repartition<int32_t, DF> d32;
  using VI = hn::Vec<decltype(d32)>;
  const int64_t nb = p.K / kQ8Block;
  const int8_t* W = static_cast<const int8_t*>(p.w);
  const int16_t* xq = xa.q + m0 * p.K;
  const float* xs = xa.s + m0 * nb;
  for (int64_t n = n0; n < n1; n++) {
    const int8_t* w = W + n * p.K;
    const float* sw = p.w_scale + n * nb;
    const float bias = p.bias ? p.bias[n] : 0.f;
    if constexpr (M == 1) {  // four accumulators over consecutive blocks
      auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
      VI i0[1], i1[1], i2[1], i3[1];
      int64_t b = 0;
      for (; b + 4 <= nb; b += 4) {
        const int64_t k = b * kQ8Block;
        q8_block_sums<1>(d32, w + k, xq + k, p.K, i0);
        q8_block_sums<1>(d32, w + k + kQ8Block, xq + k + kQ8Block, p.K, i1);
        q8_block_sums<1>(d32, w + k + 2 * kQ8Block, xq + k + 2 * kQ8Block, p.K, i2);
        q8_block_sums<1>(d32, w + k + 3 * kQ8Block, xq + k + 3 * kQ8Block, p.K, i3);
        a0 = hn::MulAdd(hn::ConvertTo(df, i0[0]), hn::Set(df, sw[b] * xs[b]), a0);
        a1 = hn::MulAdd(hn::ConvertTo(df, i1[0]), hn::Set(df, sw[b + 1] * xs[b + 1]), a1);
        a2 = hn::MulAdd(hn::ConvertTo(df, i2[0]), hn::Set(df, sw[b + 2] * xs[b + 2]), a2);
        a3 = hn::MulAdd(hn::ConvertTo(df, i3[0]), hn::Set(df, sw[b + 3] * xs[b + 3]), a3);
      }
      for (; b < nb; b++) {
        q8_block_sums<1>(d32, w + b * kQ8Block, xq + b * kQ8Block, p.K, i0);
        a0 = hn::MulAdd(hn::ConvertTo(df, i0[0]), hn::Set(df, sw[b] * xs[b]), a0);
      }
      p.y[m0 * p.y_stride + n] = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)))) + bias;
    } else {
      hn::Vec<DF> acc[M];
      VI is[M];
      for (int m = 0; m < M; m++) acc[m] = hn::Zero(df);
      for (int64_t b = 0; b < nb; b++) {
        q8_block_sums<M>(d32, w + b * kQ8Block, xq + b * kQ8Block, p.K, is);
        for (int m = 0; m < M; m++) acc[m] = hn::MulAdd(hn::ConvertTo(df, is[m]), hn::Set(df, sw[b] * xs[m * nb + b]), acc[m]);
      }
      for (int m = 0; m < M; m++) p.y[(m0 + m) * p.y_stride + n] = hn::GetLane(hn::SumOfLanes(df, acc[m])) + bias;
    }
  }
}

// params.hpp's activation quantiser, vectorised, writing int16: the same operations in the same
// order as quantize_q8_activations (max |x|, scale = amax/127, q = round-half-even(x·(127/amax))
// clamped), so its output equals the scalar one bit for bit (tested on every ISA).
void QuantizeQ8Impl(const float* x, int64_t K, int16_t* q, float* scale) {
  const DF df;
  const hn::Rebind<int32_t, DF> di;
  const hn::Rebind<int16_t, DF> d16;
  const int64_t L = int64_t(hn::Lanes(df));
  if (HWY_TARGET == HWY_SCALAR || L > kQ8Block) {  // the definition itself
    std::vector<int8_t> t(static_cast<size_t>(K));
    quantize_q8_activations(x, K, t.data(), scale);
    for (int64_t k = 0; k < K; k++) q[k] = t[size_t(k)];
    return;
  }
  for (int64_t b = 0; b * kQ8Block < K; b++) {
    const float* xb = x + b * kQ8Block;
    auto mx = hn::Zero(df), bad = hn::Zero(df);
    for (int64_t j = 0; j < kQ8Block; j += L) {
      const auto v = hn::LoadU(df, xb + j);
      mx = hn::Max(mx, hn::Abs(v));
      bad = hn::Add(bad, hn::Mul(v, hn::Zero(df)));  // NaN iff some element is Inf or NaN
    }
    const float amax = hn::GetLane(hn::MaxOfLanes(df, mx));
    const bool finite = !std::isnan(hn::GetLane(hn::SumOfLanes(df, bad)));
    if (!finite || amax == 0.f) {
      scale[b] = finite ? 0.f : NAN;
      for (int64_t j = 0; j < kQ8Block; j++) q[b * kQ8Block + j] = 0;
      continue;
    }
    scale[b] = amax / 127.f;
    const auto inv = hn::Set(df, 127.f / amax);
    const auto lo = hn::Set(di, -127), hi = hn::Set(di, 127);
    for (int64_t j = 0; j < kQ8Block; j += L) {
      const auto r = hn::Min(hi, hn::Max(lo, hn::NearestInt(hn::Mul(hn::LoadU(df, xb + j), inv))));
      hn::StoreU(hn::DemoteTo(d16, r), d16, q + b * kQ8Block + j);
    }
  }
}

void gemv_rows_q8(const LinearParams& p, const Q8Act& xa, int64_t n0, int64_t n1) {
  for (int64_t m0 = 0; m0 < p.M; m0 += 8) {
    switch (std::min<int64_t>(8, p.M - m0)) {
      case 1: gemv_rows_q8_m<1>(p, xa, m0, n0, n1); break;
      case 2: gemv_rows_q8_m<2>(p, xa, m0, n0, n1); break;
      case 3: gemv_rows_q8_m<3>(p, xa, m0, n0, n1); break;
      case 4: gemv_rows_q8_m<4>(p, xa, m0, n0, n1); break;
      case 5: gemv_rows_q8_m<5>(p, xa, m0, n0, n1); break;
      case 6: gemv_rows_q8_m<6>(p, xa, m0, n0, n1); break;
      case 7: gemv_rows_q8_m<7>(p, xa, m0, n0, n1); break;
      default: gemv_rows_q8_m<8>(p, xa, m0, n0, n1); break;
    }
  }
}

void GemvImpl(const LinearParams& p, const Q8Act& xa, int64_t n0, int64_t n1) {
  switch (p.w_dtype) {
    case DType::F32: {
      const float* W = static_cast<const float*>(p.w);
      gemv_rows<RowF32>(p, [&](int64_t n) { return RowF32{W + n * p.K}; }, n0, n1);
      break;
    }
    case DType::BF16: {
      const uint16_t* W = static_cast<const uint16_t*>(p.w);
      gemv_rows<RowBF16>(p, [&](int64_t n) { return RowBF16{W + n * p.K}; }, n0, n1);
      break;
    }
    case DType::F16: {
      const uint16_t* W = static_cast<const uint16_t*>(p.w);
      gemv_rows<RowF16>(p, [&](int64_t n) { return RowF16{W + n * p.K}; }, n0, n1);
      break;
    }
    case DType::I8:
      gemv_rows_q8(p, xa, n0, n1);
      break;
  }
}

}  // namespace ssm::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssm::kernels::cpu {
HWY_EXPORT(GemvImpl);
HWY_EXPORT(QuantizeQ8Impl);

void quantize_q8_activations_i16(const float* x, int64_t K, int16_t* q, float* scale) {
  init_isa_from_env();
  HWY_DYNAMIC_DISPATCH(QuantizeQ8Impl)(x, K, q, scale);
}

void gemv(const LinearParams& p) {
  init_isa_from_env();
  if (p.M == 0 || p.N == 0) return;
  // Each part gets at least ~64 KB of weights so the split pays for itself.
  const int64_t row_bytes = std::max<int64_t>(1, p.K * int64_t(dtype_size(p.w_dtype)));
  const int64_t grain = std::max<int64_t>(4, ((64 * 1024) / row_bytes + 3) / 4 * 4);
  Q8Act xa{nullptr, nullptr};
  thread_local std::vector<int16_t> xq;  // q8 activations (thread_local: the workers see this thread's)
  thread_local std::vector<float> xs;
  if (p.w_dtype == DType::I8) {
    if (p.K % kQ8Block) throw Error("gemv: q8 weights need K a multiple of 32 (K=" + std::to_string(p.K) + ")");
    const int64_t nb = p.K / kQ8Block;
    xq.resize(size_t(p.M * p.K));
    xs.resize(size_t(p.M * nb));
    for (int64_t m = 0; m < p.M; m++)
      HWY_DYNAMIC_DISPATCH(QuantizeQ8Impl)(p.x + m * p.x_stride, p.K, xq.data() + m * p.K, xs.data() + m * nb);
    xa = {xq.data(), xs.data()};
  }
  parallel_for(p.N, grain, [&](int64_t n0, int64_t n1) { HWY_DYNAMIC_DISPATCH(GemvImpl)(p, xa, n0, n1); });
}

}  // namespace ssm::kernels::cpu
#endif
