// CPU matrix-vector products for decode: y (M, N) = x (M, K) · W(N, K)ᵀ + b for small M, with the
// weight conversion (bf16/f16 -> f32; q8: int8 · int16-rounded x, exact block sums) fused into the
// dot products so each weight byte is read once from memory. Rows of W are split over the thread
// pool and walked in order. Highway picks the widest ISA at run time.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/gemv.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <limits>
#include <string>
#include <vector>

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

// Software prefetches of the weight stream (f32/bf16/f16 rows; the q8 loop measured no gain): before
// its loads, each step of a GEMV loop issues a prefetch for every 64-byte line it is about to read,
// offset by SSM_GEMV_PREFETCH bytes (default 64; 0 turns them off). On the 2-core AMD EPYC VM
// (scripts/ab_cpu.sh, medians of 8-12 interleaved runs, mmapped checkpoints) mamba-130m f16 decode
// measured +6% to +10% over four rounds (one earlier round +34%), mamba-1.4b f16 +3% and +16%,
// 130m f32 -2% and q8 -2% to -5% (noise level); offsets of 1 or 32 bytes measure like 64 and
// 1-4 KiB ahead measured 15-22% slower, so it is the early notice of the lines being read that
// helps, not reaching ahead (docs/cpu.md).
int64_t prefetch_bytes() {
  static const int64_t v = [] {
    const char* e = std::getenv("SSM_GEMV_PREFETCH");
    return e && *e ? std::max<int64_t>(0, std::atoll(e)) : int64_t(64);
  }();
  return v;
}
// Prefetches the lines of [p + off, p + off + bytes) (off: prefetch_bytes(), read once per range of rows; nothing when 0).
HWY_INLINE void prefetch_lines(const void* p, int64_t bytes, int64_t off) {
  if (!off) return;
  const char* c = static_cast<const char*>(p) + off;
  for (int64_t o = 0; o < bytes; o += 64) hwy::Prefetch(c + o);
}

// One weight row against one x row, four independent accumulators over k.
template <class Row>
HWY_INLINE float dot_row(const Row& row, const float* x, int64_t K, int64_t pf) {
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t k = 0;
  const int64_t step = 4 * L * int64_t(sizeof(*row.p));  // weight bytes per loop step
  for (; k + 4 * L <= K; k += 4 * L) {
    prefetch_lines(row.p + k, step, pf);
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
HWY_INLINE void dot_row_m(const Row& row, const float* x, int64_t xs, int64_t K, float* out, int64_t pf) {
  const DF d;
  const int64_t L = int64_t(hn::Lanes(d));
  hn::Vec<DF> acc[M];
  for (int m = 0; m < M; m++) acc[m] = hn::Zero(d);
  int64_t k = 0;
  for (; k + L <= K; k += L) {
    if (k % 64 == 0) prefetch_lines(row.p + k, 64 * int64_t(sizeof(*row.p)), pf);  // every 64 weights
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
  const int64_t pf = prefetch_bytes();
  for (int64_t n = n0; n < n1; n++) {
    const float b = p.bias ? p.bias[n] : 0.f;
    if constexpr (M == 1) {
      y[n] = dot_row(make_row(n), x, p.K, pf) + b;
    } else {
      dot_row_m<M>(make_row(n), x, p.x_stride, p.K, out, pf);
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

// Q8: row n holds K int8 values in blocks of 32, each with an f16 scale (w_scale (N, K/32)). The x
// row is first rounded to int16 per block of 32 (QuantizeX16, bit-identical to ref::quantize_x16),
// so a block's dot product is an exact integer sum: int8 -> int16 widening and one pairwise
// multiply-add (vpmaddwd) per 32 weights on AVX-512, then one conversion and one FMA by
// w_scale·xs per block. Converting every weight to f32 instead (two widenings, a conversion and
// an FMA per 16 weights) was compute bound at ~24 GB/s per core even on cached weights; the
// int16 x moves each product by at most 2⁻¹⁶ of its block's largest |x| (docs/numerics.md).
#if HWY_TARGET != HWY_SCALAR
using DI = hn::RebindToSigned<DF>;         // int32, as many lanes as DF
using D16 = hn::Repartition<int16_t, DI>;  // int16, twice as many
using D8 = hn::Rebind<int8_t, D16>;        // int8, as many as D16
#endif

void QuantizeX16(const float* x, int64_t K, int16_t* xq, float* xs) {
  const DF d;
  const hn::Rebind<int16_t, DF> dh;
  const int64_t L = int64_t(hn::Lanes(d));  // divides 32 on every x86 target
  for (int64_t b = 0; b < K / 32; b++) {
    const float* xb = x + b * 32;
    auto m = hn::Zero(d);
    bool finite = true;
    for (int64_t j = 0; j < 32; j += L) {
      const auto v = hn::LoadU(d, xb + j);
      m = hn::Max(m, hn::Abs(v));
      finite = finite && hn::AllTrue(d, hn::IsFinite(v));
    }
    const float amax = finite ? hn::GetLane(hn::MaxOfLanes(d, m)) : 0.f;
    const auto inv = hn::Set(d, amax > 0.f ? std::fmin(32767.f / amax, std::numeric_limits<float>::max()) : 0.f);
    for (int64_t j = 0; j < 32; j += L)
      hn::StoreU(hn::DemoteTo(dh, hn::NearestInt(hn::Mul(hn::LoadU(d, xb + j), inv))), dh, xq + b * 32 + j);
    if (!finite) std::fill(xq + b * 32, xq + b * 32 + 32, int16_t(0));  // x·0 gave NaN for inf and NaN
    xs[b] = finite ? amax / 32767.f : std::numeric_limits<float>::quiet_NaN();
  }
}

// Σ w·xq over one block of 32, as f32 lanes (exact integer lane sums below 2²⁴ on AVX-512/AVX2).
HWY_INLINE hn::Vec<DF> q8_block(const int8_t* w, const int16_t* xq) {
  const DF df;
#if HWY_TARGET == HWY_SCALAR  // one lane: no int16 pairs to multiply-add
  int32_t s = 0;
  for (int64_t j = 0; j < 32; j++) s += int32_t(w[j]) * xq[j];
  return hn::Set(df, float(s));
#else
  const DI di;
  const D16 d16;
  const D8 d8;
  const int64_t L16 = int64_t(hn::Lanes(d16));
  auto s0 = hn::Zero(di), s1 = hn::Zero(di);
  for (int64_t j = 0; j < 32; j += L16)
    s0 = hn::ReorderWidenMulAccumulate(di, hn::PromoteTo(d16, hn::LoadU(d8, w + j)), hn::LoadU(d16, xq + j), s0, s1);
  return hn::ConvertTo(df, hn::RearrangeToOddPlusEven(s0, s1));
#endif
}

// Σ_b c[b] · (block b of w · block b of xq) over nb blocks, four blocks per step into four
// accumulators, left as lanes (the caller reduces).
HWY_INLINE hn::Vec<DF> q8_blocks(const int8_t* w, const int16_t* xq, const float* c, int64_t nb) {
  const DF d;
  auto a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  int64_t b = 0;
  for (; b + 4 <= nb; b += 4) {
    a0 = hn::MulAdd(q8_block(w + b * 32, xq + b * 32), hn::Set(d, c[b]), a0);
    a1 = hn::MulAdd(q8_block(w + (b + 1) * 32, xq + (b + 1) * 32), hn::Set(d, c[b + 1]), a1);
    a2 = hn::MulAdd(q8_block(w + (b + 2) * 32, xq + (b + 2) * 32), hn::Set(d, c[b + 2]), a2);
    a3 = hn::MulAdd(q8_block(w + (b + 3) * 32, xq + (b + 3) * 32), hn::Set(d, c[b + 3]), a3);
  }
  for (; b < nb; b++) a0 = hn::MulAdd(q8_block(w + b * 32, xq + b * 32), hn::Set(d, c[b]), a0);
  return hn::Add(hn::Add(a0, a1), hn::Add(a2, a3));
}

// c[i] = ws[i] · xs[i], i < n, the f16 scales widened exactly.
HWY_INLINE void scale_products(const uint16_t* ws, const float* xs, int64_t n, float* c) {
  const DF d;
  const hn::Rebind<hwy::float16_t, DF> dh;
  const int64_t L = int64_t(hn::Lanes(d));
  const hwy::float16_t* wh = reinterpret_cast<const hwy::float16_t*>(ws);
  int64_t i = 0;
  for (; i + L <= n; i += L) hn::StoreU(hn::Mul(hn::PromoteTo(d, hn::LoadU(dh, wh + i)), hn::LoadU(d, xs + i)), d, c + i);
  for (; i < n; i++) c[i] = f16_to_f32(ws[i]) * xs[i];
}

// One q8 row against one quantised x row, blocks in chunks of kChunk (c = w_scale·xs per chunk).
HWY_INLINE float q8_row(const int8_t* w, const uint16_t* ws, const int16_t* xq, const float* xs, int64_t nb) {
  const DF d;
  constexpr int64_t kChunk = 64;
  HWY_ALIGN float c[kChunk];
  auto acc = hn::Zero(d);
  for (int64_t b0 = 0; b0 < nb; b0 += kChunk) {
    const int64_t cb = std::min(kChunk, nb - b0);
    scale_products(ws + b0, xs + b0, cb, c);
    acc = hn::Add(acc, q8_blocks(w + b0 * 32, xq + b0 * 32, c, cb));
  }
  return hn::GetLane(hn::SumOfLanes(d, acc));
}

#if HWY_TARGET != HWY_SCALAR
// Lane sums of four vectors: out[r] = Σ lanes of vr. Two interleave levels leave, in every 128-bit
// block, [Σ r0, Σ r1, Σ r2, Σ r3] of that block; the blocks are then added in scalar.
HWY_INLINE void sum4(hn::Vec<DF> r0, hn::Vec<DF> r1, hn::Vec<DF> r2, hn::Vec<DF> r3, float* out) {
  const DF d;
  const hn::Repartition<uint64_t, DF> d64;
  const auto u0 = hn::BitCast(d64, hn::Add(hn::InterleaveLower(d, r0, r1), hn::InterleaveUpper(d, r0, r1)));
  const auto u1 = hn::BitCast(d64, hn::Add(hn::InterleaveLower(d, r2, r3), hn::InterleaveUpper(d, r2, r3)));
  const auto v = hn::Add(hn::BitCast(d, hn::InterleaveLower(d64, u0, u1)), hn::BitCast(d, hn::InterleaveUpper(d64, u0, u1)));
  HWY_ALIGN float buf[hn::MaxLanes(d)];
  hn::Store(v, d, buf);
  for (int r = 0; r < 4; r++) {
    float s = 0.f;
    for (size_t j = 0; j < hn::Lanes(d); j += 4) s += buf[j + size_t(r)];
    out[r] = s;
  }
}

// Four consecutive q8 rows (rows of at most kMaxNb4 blocks) against one quantised x row: the
// scales of the four rows are contiguous, so c = w_scale·xs for all four is one vector loop
// against x's scales repeated four times (xs4), and the four rows share one lane reduction.
// Short rows (mamba-130m's 768 values: 24 blocks) spent about a quarter of their time on these
// per-row steps when each row did them alone.
constexpr int64_t kMaxNb4 = 64;
HWY_INLINE void q8_rows4(const int8_t* w, const uint16_t* ws, const int16_t* xq, const float* xs4, int64_t nb,
                         float* out) {
  HWY_ALIGN float c[4 * kMaxNb4];
  scale_products(ws, xs4, 4 * nb, c);
  hn::Vec<DF> r[4];
  for (int64_t row = 0; row < 4; row++) r[row] = q8_blocks(w + row * nb * 32, xq, c + row * nb, nb);
  sum4(r[0], r[1], r[2], r[3], out);
}
#endif

// xq (M, K) and xs (M, K/32): the x rows quantised by QuantizeX16; xs4: xs of x row 0 repeated
// four times (for q8_rows4).
void GemvQ8Impl(const LinearParams& p, const int16_t* xq, const float* xs, const float* xs4, int64_t n0,
                int64_t n1) {
  const int64_t nb = p.K / 32;
  const int8_t* W = static_cast<const int8_t*>(p.w);
  int64_t n = n0;
#if HWY_TARGET != HWY_SCALAR
  if (p.M == 1 && nb <= kMaxNb4 && hn::Lanes(DF()) >= 4) {
    float out[4];
    for (; n + 4 <= n1; n += 4) {
      q8_rows4(W + n * p.K, p.w_scale + n * nb, xq, xs4, nb, out);
      for (int r = 0; r < 4; r++) p.y[n + r] = out[r] + (p.bias ? p.bias[n + r] : 0.f);
    }
  }
#endif
  for (; n < n1; n++)
    for (int64_t m = 0; m < p.M; m++)
      p.y[m * p.y_stride + n] = q8_row(W + n * p.K, p.w_scale + n * nb, xq + m * p.K, xs + m * nb, nb) +
                                (p.bias ? p.bias[n] : 0.f);
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
      break;  // not reached: gemv() sends q8 weights to GemvQ8Impl
  }
}

}  // namespace ssm::kernels::cpu::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ssm::kernels::cpu {
HWY_EXPORT(GemvImpl);
HWY_EXPORT(GemvQ8Impl);
HWY_EXPORT(QuantizeX16);

void quantize_x16(const float* x, int64_t K, int16_t* xq, float* xs) {
  init_isa_from_env();
  HWY_DYNAMIC_DISPATCH(QuantizeX16)(x, K, xq, xs);
}

// How the rows are shared between threads: dynamic (default: chunks of ~256 KB claimed one at a
// time, so a thread on a slower or busier core takes fewer) or SSM_GEMV_SPLIT=static (one contiguous
// range per thread); read once. On the 2-core VM the static split left one thread waiting at the end
// of most products (perf, mamba-1.4b f16 decode: 13.5% of samples in libgomp's wait, 3.3% dynamic);
// decode tok/s medians of 10 interleaved runs, dynamic vs static: 1.4b f16 +3.4%, 1.4b q8 +1.3%,
// 130m f16 +6.9%, 130m f32 -4.3% -- inside this machine's noise. Dynamic is the default for
// machines whose cores differ (hybrid CPUs, shared hosts), where a static split waits for the
// slowest core.
bool gemv_dynamic() {
  static const bool v = [] {
    const char* e = std::getenv("SSM_GEMV_SPLIT");
    if (!e || !*e || std::string(e) == "dynamic") return true;
    if (std::string(e) == "static") return false;
    throw Error(std::string("SSM_GEMV_SPLIT=") + e + ": expected static or dynamic");
  }();
  return v;
}

// Runs job(n0, n1) over the N weight rows: dynamically in chunks of ~256 KB of weights (a multiple of
// the 4-row grain, at least 4 chunks per thread), or statically in ranges of at least `grain` rows.
void split_rows(int64_t N, int64_t row_bytes, int64_t grain, const std::function<void(int64_t, int64_t)>& job) {
  if (!gemv_dynamic()) return parallel_for(N, grain, job);
  const int64_t rows = std::max<int64_t>(grain, (256 * 1024) / row_bytes / 4 * 4);
  const int64_t most = std::max<int64_t>(grain, N / (4 * int64_t(num_threads())) / 4 * 4);
  parallel_chunks(N, std::min(rows, most), job);
}

void gemv(const LinearParams& p) {
  init_isa_from_env();
  if (p.M == 0 || p.N == 0) return;
  // Each part gets at least ~64 KB of weights so the split pays for itself.
  const int64_t row_bytes = std::max<int64_t>(1, p.K * int64_t(dtype_size(p.w_dtype)));
  const int64_t grain = std::max<int64_t>(4, ((64 * 1024) / row_bytes + 3) / 4 * 4);
  if (p.w_dtype == DType::I8) {
    // The x rows are quantised once by the calling thread (a few hundred ns), read by every part.
    const int64_t nb = p.K / kQ8Block;
    thread_local std::vector<int16_t> xq;
    thread_local std::vector<float> xs, xs4;
    xq.resize(size_t(p.M * p.K));
    xs.resize(size_t(p.M * nb));
    for (int64_t m = 0; m < p.M; m++)
      quantize_x16(p.x + m * p.x_stride, p.K, xq.data() + m * p.K, xs.data() + m * nb);
    xs4.resize(size_t(4 * nb));
    for (int r = 0; r < 4; r++) std::copy(xs.begin(), xs.begin() + nb, xs4.begin() + r * nb);
    const int16_t* xqp = xq.data();  // thread_local: the pool's workers must see this thread's buffers
    const float *xsp = xs.data(), *xs4p = xs4.data();
    split_rows(p.N, row_bytes, grain,
               [&](int64_t n0, int64_t n1) { HWY_DYNAMIC_DISPATCH(GemvQ8Impl)(p, xqp, xsp, xs4p, n0, n1); });
    return;
  }
  split_rows(p.N, row_bytes, grain, [&](int64_t n0, int64_t n1) { HWY_DYNAMIC_DISPATCH(GemvImpl)(p, n0, n1); });
}

}  // namespace ssm::kernels::cpu
#endif
