// SIMD (Highway) CPU kernels against the scalar references, on every ISA this CPU offers (forced one
// at a time through kernels::cpu::set_isa, the same switch as $SSM_ISA), on real model shapes and on
// odd sizes that exercise vector tails and row remainders. Bound for a dot product of K terms summed
// in f32 in any order: |err| <= γ_K · Σ|x_k w_k| with γ_K = K·2⁻²⁴/(1 − K·2⁻²⁴) (Higham, recursive
// summation), checked element by element — a real worst-case bound, not a tuned constant.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/dtype.hpp"
#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"
#include "kernels/ref/ref.hpp"
#include "loader/quantize.hpp"
#include "ssm/error.hpp"

using namespace ssm;
using namespace ssm::kernels;

namespace {

std::vector<float> randn(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(g);
  return v;
}

struct IsaGuard {
  ~IsaGuard() { cpu::set_isa("auto"); }
};

struct Shape {
  int64_t M, N, K;
};

// Weights of dtype t (and q8 scales when t == I8) built from f32 values.
struct W {
  std::vector<uint8_t> raw;
  std::vector<uint16_t> scale;  // f16 bits
  W(const std::vector<float>& v, int64_t N, int64_t K, DType t) {
    raw.resize(v.size() * dtype_size(t));
    if (t == DType::I8) {
      scale.resize(size_t(N * (K / kQ8Block)));
      quantize_q8_rows(v.data(), N, K, reinterpret_cast<int8_t*>(raw.data()), scale.data());
      return;
    }
    for (size_t i = 0; i < v.size(); i++) {
      if (t == DType::F32) std::memcpy(raw.data() + 4 * i, &v[i], 4);
      else {
        uint16_t h = t == DType::BF16 ? f32_to_bf16(v[i]) : f32_to_f16(v[i]);
        std::memcpy(raw.data() + 2 * i, &h, 2);
      }
    }
  }
};

void check_linear(DType t, Shape s, bool bias, const std::string& isa, bool via_linear = false) {
  auto x = randn(size_t(s.M * s.K), 1);
  auto wf = randn(size_t(s.N * s.K), 2);
  auto b = randn(size_t(s.N), 3);
  W w(wf, s.N, s.K, t);
  std::vector<float> y(size_t(s.M * s.N), NAN), yr(size_t(s.M * s.N));
  LinearParams p{s.M, s.N, s.K, x.data(), s.K, w.raw.data(), t, bias ? b.data() : nullptr, y.data(), s.N,
                 t == DType::I8 ? w.scale.data() : nullptr};
  via_linear ? cpu::linear(p) : cpu::gemv(p);
  LinearParams pr = p;
  pr.y = yr.data();
  ref::linear(pr);
  const double u = std::ldexp(1.0, -24), gamma = (s.K + 1) * u / (1 - (s.K + 1) * u);
  for (int64_t m = 0; m < s.M; m++)
    for (int64_t n = 0; n < s.N; n++) {
      double mag = bias ? std::fabs(b[n]) : 0.0;
      for (int64_t k = 0; k < s.K; k++) {
        float wv = t == DType::I8 ? float(reinterpret_cast<const int8_t*>(w.raw.data())[n * s.K + k]) *
                                        f16_to_f32(w.scale[size_t(n * (s.K / kQ8Block) + k / kQ8Block)])
                                  : ref::load_elem(w.raw.data() + size_t(n * s.K) * dtype_size(t), t, k);
        mag += std::fabs(double(x[m * s.K + k]) * wv);
      }
      const double err = std::fabs(double(y[m * s.N + n]) - yr[m * s.N + n]);
      ASSERT_LE(err, gamma * mag * 1.01 + 1e-30)
          << isa << " " << dtype_name(t) << " M=" << s.M << " N=" << s.N << " K=" << s.K << " at (" << m << "," << n
          << ")";
    }
}

// q8 GEMV (x rounded to int16 per block): against its scalar reference ref::linear_q8_x16 with the
// dot-product bound over the quantised terms (block sums are exact integers, so the terms are
// w_scale·xs·w·xq), and against the f32-x reference ref::linear with that bound plus the x
// rounding's own bound Σ_b xs_b/2 · Σ_{k∈b} |W[n,k]|.
void check_q8_gemv(Shape s, bool bias, const std::string& isa, bool via_linear = false) {
  auto x = randn(size_t(s.M * s.K), 1);
  for (int64_t k = 0; k < s.K; k += 7) x[size_t(k)] *= 30.f;  // outliers widen some blocks' range
  if (s.K >= 64)
    for (int64_t k = 32; k < 64; k++) x[size_t(k)] = 0.f;  // an all-zero block
  auto wf = randn(size_t(s.N * s.K), 2);
  auto b = randn(size_t(s.N), 3);
  W w(wf, s.N, s.K, DType::I8);
  std::vector<float> y(size_t(s.M * s.N), NAN), yq(size_t(s.M * s.N)), yf(size_t(s.M * s.N));
  LinearParams p{s.M, s.N, s.K, x.data(), s.K, w.raw.data(), DType::I8, bias ? b.data() : nullptr, y.data(), s.N,
                 w.scale.data()};
  via_linear ? cpu::linear(p) : cpu::gemv(p);
  LinearParams pq = p, pf = p;
  pq.y = yq.data();
  pf.y = yf.data();
  ref::linear_q8_x16(pq);
  ref::linear(pf);
  const int64_t nb = s.K / kQ8Block;
  std::vector<int16_t> xq(static_cast<size_t>(s.K));
  std::vector<float> xs(static_cast<size_t>(nb));
  const auto* wq = reinterpret_cast<const int8_t*>(w.raw.data());
  const double u = std::ldexp(1.0, -24), gamma = (s.K + 1) * u / (1 - (s.K + 1) * u);
  for (int64_t m = 0; m < s.M; m++) {
    ref::quantize_x16(x.data() + m * s.K, s.K, xq.data(), xs.data());
    for (int64_t n = 0; n < s.N; n++) {
      double mag = bias ? std::fabs(b[n]) : 0.0, xerr = 0.0;
      for (int64_t k = 0; k < s.K; k++) {
        const double ws = f16_to_f32(w.scale[size_t(n * nb + k / kQ8Block)]), wv = double(wq[n * s.K + k]);
        mag += std::fabs(ws * xs[size_t(k / kQ8Block)] * wv * xq[size_t(k)]);
        xerr += std::fabs(ws * wv) * xs[size_t(k / kQ8Block)] / 2;
      }
      const size_t i = size_t(m * s.N + n);
      ASSERT_LE(std::fabs(double(y[i]) - yq[i]), gamma * mag * 1.01 + 1e-30)
          << isa << " q8 M=" << s.M << " N=" << s.N << " K=" << s.K << " at (" << m << "," << n << ")";
      ASSERT_LE(std::fabs(double(y[i]) - yf[i]), (gamma * mag + xerr) * 1.01 + 1e-30)
          << isa << " q8 vs f32 x, M=" << s.M << " N=" << s.N << " K=" << s.K << " at (" << m << "," << n << ")";
    }
  }
}

}  // namespace

TEST(SimdKernels, QuantizeX16RoundTrips) {
  // Every element within half a step of its block's scale; the block's largest |x| maps to 32767.
  auto x = randn(256, 5);
  x[3] = 0.f;
  for (int64_t k = 64; k < 96; k++) x[size_t(k)] = 0.f;
  for (int64_t k = 128; k < 160; k++) x[size_t(k)] *= 1e-40f;  // subnormal block: 32767 / amax overflows
  std::vector<int16_t> xq(256);
  std::vector<float> xs(8);
  ref::quantize_x16(x.data(), 256, xq.data(), xs.data());
  EXPECT_EQ(xs[2], 0.f);
  for (int64_t k = 0; k < 256; k++) {
    EXPECT_LE(std::fabs(double(x[size_t(k)]) - double(xs[size_t(k / 32)]) * xq[size_t(k)]),
              0.5 * xs[size_t(k / 32)] * (1 + 1e-6) + 1e-30);
    EXPECT_LE(std::abs(int(xq[size_t(k)])), 32767);
  }
  // The SIMD quantiser of every ISA gives the same bits.
  IsaGuard g;
  for (const auto& isa : cpu::available_isas()) {
    cpu::set_isa(isa);
    std::vector<int16_t> q(256);
    std::vector<float> s(8);
    cpu::quantize_x16(x.data(), 256, q.data(), s.data());
    EXPECT_EQ(q, xq) << isa;
    EXPECT_EQ(s, xs) << isa;
  }
  // Non-finite x poisons its block's scale, so the GEMV's outputs are NaN rather than garbage.
  for (float bad : {NAN, INFINITY, -INFINITY}) {
    auto xb = x;
    xb[40] = bad;
    for (const auto& isa : cpu::available_isas()) {
      cpu::set_isa(isa);
      cpu::quantize_x16(xb.data(), 256, xq.data(), xs.data());
      EXPECT_TRUE(std::isnan(xs[1])) << isa << " " << bad;
      EXPECT_EQ(xq[40], 0) << isa;
      EXPECT_FALSE(std::isnan(xs[0])) << isa;
      std::vector<int8_t> w(size_t(2 * 256), 1);
      std::vector<uint16_t> ws(16, f32_to_f16(0.5f));
      std::vector<float> y(2);
      LinearParams p{1, 2, 256, xb.data(), 256, w.data(), DType::I8, nullptr, y.data(), 2, ws.data()};
      cpu::gemv(p);
      EXPECT_TRUE(std::isnan(y[0]) && std::isnan(y[1])) << isa << " " << bad;
    }
  }
}

// q8 quantiser: f16 block scales (d = max|x|/127 rounded to f16), q clamped to ±127, each element
// within d/2 of q·d; blocks so small that d is an f16 subnormal (d then carries few bits, and
// |x|/d may exceed 127 before the clamp) still give |q| <= 127 and an error of at most d/2 + the
// clamp's |x| - 127·d; a block beyond f16's range is an error naming the tensor.
TEST(SimdKernels, Q8QuantiserF16Scales) {
  const int64_t K = 96;
  std::vector<float> x = randn(size_t(K), 5);
  for (int64_t i = 32; i < 64; i++) x[size_t(i)] *= 3e-6f;  // d ~ 7e-8: an f16 subnormal
  for (int64_t i = 64; i < 96; i++) x[size_t(i)] = 0.f;      // an all-zero block
  std::vector<int8_t> q(static_cast<size_t>(K));
  std::vector<uint16_t> sc(3);
  quantize_q8_rows(x.data(), 1, K, q.data(), sc.data(), "'w'");
  for (int64_t b = 0; b < 3; b++) {
    float amax = 0.f;
    for (int64_t i = b * 32; i < (b + 1) * 32; i++) amax = std::max(amax, std::fabs(x[size_t(i)]));
    const float d = f16_to_f32(sc[size_t(b)]);
    EXPECT_EQ(sc[size_t(b)], f32_to_f16(amax / 127.f)) << "block " << b;
    for (int64_t i = b * 32; i < (b + 1) * 32; i++) {
      ASSERT_LE(std::abs(int(q[size_t(i)])), 127);
      const double over = std::max(0.0, double(std::fabs(x[size_t(i)])) - 127.0 * d);
      EXPECT_LE(std::fabs(double(q[size_t(i)]) * d - x[size_t(i)]), d / 2 + over + 1e-12) << "element " << i;
    }
  }
  EXPECT_EQ(sc[2], 0);
  for (int64_t i = 64; i < 96; i++) EXPECT_EQ(q[size_t(i)], 0);
  x[3] = 2e7f;
  try {
    quantize_q8_rows(x.data(), 1, K, q.data(), sc.data(), "'layers.0.w'");
    ADD_FAILURE() << "no error for a block beyond f16's range";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'layers.0.w'"), std::string::npos) << e.what();
  }
}

TEST(SimdKernels, HasIsas) {
  auto isas = cpu::available_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_THROW(cpu::set_isa("no-such-isa"), Error);
}

TEST(SimdKernels, GemvMatchesReferenceOnEveryIsa) {
  IsaGuard g;
  const std::vector<Shape> shapes = {{1, 1, 1},     {1, 7, 29},     {3, 37, 65},   {8, 5, 17},
                                     {1, 3072, 768}, {2, 768, 1536}, {1, 80, 1536}, {5, 129, 33}};
  for (const auto& isa : cpu::available_isas()) {
    std::printf("[ isa      ] %s\n", isa.c_str());
    cpu::set_isa(isa);
    EXPECT_EQ(cpu::current_isa(), isa);
    for (DType t : {DType::F32, DType::BF16, DType::F16})
      for (const Shape& s : shapes) check_linear(t, s, s.N % 2 == 1, isa);
    for (const Shape& s : std::vector<Shape>{{1, 7, 32}, {3, 37, 64}, {1, 1536, 768}, {4, 768, 1536}, {1, 160, 4096},
                                             {2, 9, 2080}, {8, 33, 96}})
      check_q8_gemv(s, s.N % 2 == 1, isa);
  }
}

TEST(SimdKernels, LinearUsesGemvForSmallBatchesAndBlasBeyond) {
  // Both paths of cpu::linear agree with the reference (M = 1 and M = 33).
  for (int64_t M : {1, 33}) {
    check_linear(DType::BF16, {M, 96, 160}, true, "auto", true);
    if (M == 1) check_q8_gemv({M, 96, 160}, true, "auto", true);
    else check_linear(DType::I8, {M, 96, 160}, true, "auto", true);
  }
}

TEST(ThreadPool, ParallelForCoversEachIndexOnce) {
  for (int threads : {1, 2, 3, 8}) {
    set_num_threads(threads);
    EXPECT_EQ(num_threads(), threads);
    for (int64_t n : {0, 1, 5, 64, 1000, 4097})
      for (int64_t grain : {1, 7, 64, 5000}) {
        std::vector<std::atomic<int>> hit(static_cast<size_t>(n));
        parallel_for(n, grain, [&](int64_t b, int64_t e) {
          ASSERT_LE(0, b);
          ASSERT_LE(e, n);
          if (e - b < grain) ASSERT_EQ(e, n);  // only the last range may be short
          for (int64_t i = b; i < e; i++) hit[size_t(i)]++;
        });
        for (int64_t i = 0; i < n; i++) ASSERT_EQ(hit[size_t(i)].load(), 1) << n << " " << grain << " " << i;
      }
  }
  set_num_threads(0);
}

TEST(ThreadPool, ParallelChunksCoverEachIndexOnceAndRethrow) {
  for (int threads : {1, 2, 3, 8}) {
    set_num_threads(threads);
    for (int64_t n : {0, 1, 5, 64, 1000, 4097})
      for (int64_t chunk : {1, 7, 64, 5000}) {
        std::vector<std::atomic<int>> hit(static_cast<size_t>(n));
        parallel_chunks(n, chunk, [&](int64_t b, int64_t e) {
          ASSERT_LE(0, b);
          ASSERT_LE(e, n);
          ASSERT_EQ(b % chunk, 0);  // chunks start on multiples of the chunk size
          if (e - b != chunk) ASSERT_EQ(e, n);  // only the last chunk may be short
          for (int64_t i = b; i < e; i++) hit[size_t(i)]++;
        });
        for (int64_t i = 0; i < n; i++) ASSERT_EQ(hit[size_t(i)].load(), 1) << n << " " << chunk << " " << i;
      }
    EXPECT_THROW(parallel_chunks(100, 3, [](int64_t b, int64_t e) { if (b <= 33 && 33 < e) throw std::runtime_error("item 33"); }),
                 std::runtime_error);
  }
  set_num_threads(0);
}

TEST(ThreadPool, NestedCallsRunSerially) {
  set_num_threads(4);
  std::atomic<int64_t> sum{0};
  parallel_for(8, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; i++) parallel_for(10, 1, [&](int64_t b2, int64_t e2) { sum += e2 - b2; });
  });
  EXPECT_EQ(sum.load(), 80);
  set_num_threads(0);
}

namespace {

std::vector<float> randn_s(size_t n, uint32_t seed, float scale, float offset) {
  auto v = randn(n, seed);
  for (auto& x : v) x = offset + scale * x;
  return v;
}

// max |a - b| / max |b|: for these element-wise kernels (f32 with at most N-term sums and 1-ulp
// exp) the reference differs by a few ulps of the largest value; 2e-5 (≈ 170 ulps) flags real bugs.
float rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0, r = 1e-30f;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(a[i] - b[i])), r = std::max(r, std::fabs(b[i]));
  return m / r;
}

constexpr float kTol = 2e-5f;

}  // namespace

TEST(SimdKernels, ScanConvNormSsdStepMatchReferenceOnEveryIsa) {
  IsaGuard guard;
  for (const auto& isa : cpu::available_isas()) {
    cpu::set_isa(isa);
    // Mamba-1 scan: prefill and decode step, real (E=1536, N=16) and odd (N=3, 19) shapes.
    for (auto [L, E, N] : {std::tuple{40, 33, 16}, std::tuple{1, 1536, 16}, std::tuple{3, 5, 3}, std::tuple{1, 7, 19},
                           std::tuple{70, 101, 16}, std::tuple{9, 37, 5}}) {
      auto u = randn(size_t(L * E), 1), dl = randn(size_t(L * E), 2), bias = randn_s(size_t(E), 3, 0.5f, -1.f);
      auto A = randn_s(size_t(E * N), 4, 0.5f, -1.f), B = randn(size_t(L * N), 5), C = randn(size_t(L * N), 6);
      auto D = randn(size_t(E), 7), z = randn(size_t(L * E), 8), h0 = randn(size_t(E * N), 9);
      for (auto& a : A) a = -std::fabs(a);
      auto h1 = h0;
      std::vector<float> y0(static_cast<size_t>(L * E)), y1(static_cast<size_t>(L * E));
      ScanParams sp{L, E, N, u.data(), E, dl.data(), E, bias.data(), A.data(), B.data(), N, C.data(), N, D.data(),
                    z.data(), E, h0.data(), y0.data(), E};
      ref::selective_scan(sp);
      sp.h = h1.data(), sp.y = y1.data();
      cpu::selective_scan(sp);
      EXPECT_LT(rel_err(y1, y0), kTol) << isa << " scan L=" << L << " E=" << E << " N=" << N;
      EXPECT_LT(rel_err(h1, h0), kTol) << isa << " scan state";
    }
    // Mamba-2 step: mamba2-130m heads (H=24, P=64, N=128), groups, odd N.
    struct S { int64_t H, P, G, N; };
    for (S s : {S{24, 64, 1, 128}, S{4, 5, 2, 7}, S{6, 3, 3, 17}}) {
      const int64_t HP = s.H * s.P, GN = s.G * s.N;
      auto x = randn(size_t(HP), 1), dt = randn(size_t(s.H), 2), bias = randn_s(size_t(s.H), 3, 0.5f, -1.f);
      auto A = randn_s(size_t(s.H), 4, 0.5f, -1.f), B = randn(size_t(GN), 5), C = randn(size_t(GN), 6);
      auto D = randn(size_t(s.H), 7), S0 = randn_s(size_t(HP * s.N), 8, 0.3f, 0.f);
      for (auto& a : A) a = -std::fabs(a);
      auto S1 = S0;
      std::vector<float> y0(static_cast<size_t>(HP)), y1(static_cast<size_t>(HP));
      SsdParams p{1, s.H, s.P, s.G, s.N, 0, x.data(), HP, dt.data(), s.H, bias.data(), A.data(), B.data(), GN,
                  C.data(), GN, D.data(), 0.01f, 0.5f, S0.data(), y0.data(), HP};
      ref::ssd_recurrent(p);
      p.state = S1.data(), p.y = y1.data();
      cpu::ssd_step(p);
      EXPECT_LT(rel_err(y1, y0), kTol) << isa << " ssd_step H=" << s.H << " N=" << s.N;
      EXPECT_LT(rel_err(S1, S0), kTol) << isa << " ssd_step state";
    }
    // Conv: mamba-130m (C=1536, K=4) decode and prefill, Mamba-2 conv width (C=1792+), odd sizes.
    for (auto [L, C, K] : {std::tuple{1, 1536, 4}, std::tuple{9, 1792, 4}, std::tuple{5, 37, 3}, std::tuple{2, 3, 2}}) {
      for (bool act : {true, false}) {
        auto x = randn(size_t(L * C), 1), w = randn(size_t(C * K), 2), b = randn(size_t(C), 3);
        auto st0 = randn(size_t((K - 1) * C), 4), st1 = st0;
        std::vector<float> y0(static_cast<size_t>(L * C)), y1(static_cast<size_t>(L * C));
        ConvParams p{L, C, K, x.data(), C, w.data(), b.data(), st0.data(), act, y0.data(), C};
        ref::causal_conv1d(p);
        p.state = st1.data(), p.y = y1.data();
        cpu::causal_conv1d(p);
        EXPECT_LT(rel_err(y1, y0), kTol) << isa << " conv L=" << L << " C=" << C << " K=" << K;
        EXPECT_EQ(st1, st0) << isa << " conv window";
        // With the (K, C) copy of the weights given (what the layers pass): the same bits.
        std::vector<float> wt(size_t(C * K)), y2(static_cast<size_t>(L * C));
        for (int64_t c = 0; c < C; c++)
          for (int64_t k = 0; k < K; k++) wt[size_t(k * C + c)] = w[size_t(c * K + k)];
        ConvParams p2 = p;
        auto st_in = randn(size_t((K - 1) * C), 4);  // the window before the calls above
        p2.state = st_in.data(), p2.y = y2.data(), p2.w_t = wt.data();
        cpu::causal_conv1d(p2);
        EXPECT_EQ(y2, y1) << isa << " conv with w_t";
      }
    }
    // RMSNorm: plain, weightless, grouped + gated both ways, odd widths, in place.
    for (auto [M, D, G] : {std::tuple{3, 768, 768}, std::tuple{2, 1536, 768}, std::tuple{4, 37, 37}, std::tuple{1, 30, 10}}) {
      for (int mode = 0; mode < 4; mode++) {
        auto x = randn(size_t(M * D), 1), w = randn(size_t(D), 2), g = randn(size_t(M * D), 3);
        std::vector<float> y0(static_cast<size_t>(M * D)), y1 = x;
        RmsNormParams p{M, D, G, x.data(), D, mode == 1 ? nullptr : w.data(), mode >= 2 ? g.data() : nullptr, D,
                        mode == 3, 1e-5f, y0.data(), D};
        ref::rms_norm(p);
        p.x = y1.data(), p.y = y1.data();  // in place
        cpu::rms_norm(p);
        EXPECT_LT(rel_err(y1, y0), kTol) << isa << " rms_norm D=" << D << " mode " << mode;
      }
    }
  }
}

TEST(SimdKernels, WidenToF32IsExactOnEveryIsa) {
  IsaGuard guard;
  const int64_t n = 70001;  // threaded ranges plus a vector tail
  auto v = randn(size_t(n), 11);
  std::vector<uint16_t> b(static_cast<size_t>(n)), h(static_cast<size_t>(n));
  std::vector<int8_t> q(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; i++) b[i] = f32_to_bf16(v[i]), h[i] = f32_to_f16(v[i]), q[i] = int8_t(i % 255 - 127);
  for (const auto& isa : cpu::available_isas()) {
    cpu::set_isa(isa);
    std::vector<float> got(static_cast<size_t>(n)), want(static_cast<size_t>(n));
    const std::pair<DType, const void*> cases[] = {{DType::BF16, b.data()}, {DType::F16, h.data()}, {DType::I8, q.data()}};
    for (auto [t, src] : cases) {
      cpu::widen_to_f32(t, src, got.data(), n);
      to_f32(t, src, want.data(), size_t(n));
      EXPECT_EQ(got, want) << isa << " " << dtype_name(t);
    }
  }
}
