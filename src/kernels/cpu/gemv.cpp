// CPU matrix-vector products for decode: y (M, N) = x (M, K) · W(N, K)ᵀ + b for small M, with the
// weight conversion (bf16/f16/q8 -> f32) fused into the dot products so each weight byte is read
// once from memory. Rows of W are split over the thread pool; four rows are processed together so
// there are four independent FMA chains per x row. Highway picks the widest ISA at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/gemv.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

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

// Dot products of R consecutive weight rows with one x row (K elements).
template <int R, class Row>
HWY_INLINE void dot_rows(const Row* rows, const float* x, int64_t K, float* out) {
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  hn::Vec<DF> acc[R];
  for (int r = 0; r < R; r++) acc[r] = hn::Zero(d);
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    const auto xv = hn::LoadU(d, x + k);
    for (int r = 0; r < R; r++) acc[r] = hn::MulAdd(rows[r].load(d, k), xv, acc[r]);
  }
  for (int r = 0; r < R; r++) {
    float s = hn::GetLane(hn::SumOfLanes(d, acc[r]));
    for (int64_t t = k; t < K; t++) s += rows[r].at(t) * x[t];
    out[r] = s;
  }
}

template <class Row, class MakeRow>
void gemv_rows(const LinearParams& p, MakeRow make_row, int64_t n0, int64_t n1) {
  constexpr int R = 4;
  int64_t n = n0;
  float out[R];
  for (; n + R <= n1; n += R) {
    Row rows[R];
    for (int r = 0; r < R; r++) rows[r] = make_row(n + r);
    for (int64_t m = 0; m < p.M; m++) {
      dot_rows<R>(rows, p.x + m * p.x_stride, p.K, out);
      for (int r = 0; r < R; r++) p.y[m * p.y_stride + n + r] = out[r] + (p.bias ? p.bias[n + r] : 0.f);
    }
  }
  for (; n < n1; n++) {
    Row row = make_row(n);
    for (int64_t m = 0; m < p.M; m++) {
      dot_rows<1>(&row, p.x + m * p.x_stride, p.K, out);
      p.y[m * p.y_stride + n] = out[0] + (p.bias ? p.bias[n] : 0.f);
    }
  }
}

// Q8: row n holds K int8 values in blocks of 32, each with an f32 scale (w_scale (N, K/32)).
void gemv_rows_q8(const LinearParams& p, int64_t n0, int64_t n1) {
  const DF d;
  const hn::Rebind<int8_t, DF> d8;
  const hn::Rebind<int32_t, DF> di;
  const int64_t L = int64_t(hn::Lanes(d));
  const int64_t nb = p.K / 32;
  const int8_t* W = static_cast<const int8_t*>(p.w);
  for (int64_t n = n0; n < n1; n++) {
    const int8_t* w = W + n * p.K;
    const float* sc = p.w_scale + n * nb;
    for (int64_t m = 0; m < p.M; m++) {
      const float* x = p.x + m * p.x_stride;
      auto acc = hn::Zero(d);
      for (int64_t b = 0; b < nb; b++) {
        auto bacc = hn::Zero(d);
        if (L <= 32) {
          for (int64_t j = 0; j < 32; j += L)
            bacc = hn::MulAdd(hn::ConvertTo(d, hn::PromoteTo(di, hn::LoadU(d8, w + b * 32 + j))),
                              hn::LoadU(d, x + b * 32 + j), bacc);
          acc = hn::MulAdd(hn::Set(d, sc[b]), bacc, acc);
        }
      }
      float s = hn::GetLane(hn::SumOfLanes(d, acc));
      if (L > 32)  // wider than a block: plain scalar (no such target today)
        for (int64_t k = 0; k < p.K; k++) s += sc[k / 32] * float(w[k]) * x[k];
      p.y[m * p.y_stride + n] = s + (p.bias ? p.bias[n] : 0.f);
    }
  }
}

void GemvImpl(const LinearParams& p, int64_t n0, int64_t n1) {
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
      gemv_rows_q8(p, n0, n1);
      break;
  }
}

}  // namespace ssm::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssm::kernels::cpu {
HWY_EXPORT(GemvImpl);

void gemv(const LinearParams& p) {
  init_isa_from_env();
  if (p.M == 0 || p.N == 0) return;
  // Each part gets at least ~64 KB of weights so the split pays for itself.
  const int64_t row_bytes = std::max<int64_t>(1, p.K * int64_t(dtype_size(p.w_dtype)));
  const int64_t grain = std::max<int64_t>(4, ((64 * 1024) / row_bytes + 3) / 4 * 4);
  parallel_for(p.N, grain, [&](int64_t n0, int64_t n1) { HWY_DYNAMIC_DISPATCH(GemvImpl)(p, n0, n1); });
}

}  // namespace ssm::kernels::cpu
#endif
