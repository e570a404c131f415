// Kernels: scalar references on hand-computed cases, then every CPU kernel against its reference on
// odd sizes (tails) and real model shapes. Tolerances (max abs error relative to max |ref|):
//   f32 paths 2e-5 — f32 accumulation in a different order than the f64 oracle over K ≤ 1536 terms
//   measured ≤ 3e-6 here; 2e-5 leaves headroom for other BLAS kernels without hiding real bugs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/cpu/cpu.hpp"
#include "kernels/ref/ref.hpp"

using namespace ssm;
using namespace ssm::kernels;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.f, float offset = 0.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = offset + scale * nd(g);
  return v;
}

float rel_err(const std::vector<float>& a, const std::vector<float>& b) {
  float m = 0, r = 1e-30f;
  for (size_t i = 0; i < a.size(); i++) m = std::max(m, std::fabs(a[i] - b[i])), r = std::max(r, std::fabs(b[i]));
  return m / r;
}

constexpr float kTolF32 = 2e-5f;

}  // namespace

TEST(RefKernels, LinearHand) {
  float x[2] = {1, 2}, w[6] = {1, 0, 0.5f, -1, 2, 3}, b[3] = {0, 1, 0}, y[3];
  ref::linear({1, 3, 2, x, 2, w, DType::F32, b, y, 3});
  EXPECT_FLOAT_EQ(y[0], 1.f);
  EXPECT_FLOAT_EQ(y[1], -0.5f);
  EXPECT_FLOAT_EQ(y[2], 8.f);
}

TEST(RefKernels, RmsNormHand) {
  float x[2] = {3, 4}, w[2] = {1, 2}, y[2];
  ref::rms_norm({1, 2, 2, x, 2, w, nullptr, 0, false, 0.f, y, 2});
  EXPECT_NEAR(y[0], 3 / std::sqrt(12.5f), 1e-6);
  EXPECT_NEAR(y[1], 8 / std::sqrt(12.5f), 1e-6);
  // Grouped (two groups of one): each element becomes sign(x)·w.
  ref::rms_norm({1, 2, 1, x, 2, w, nullptr, 0, false, 0.f, y, 2});
  EXPECT_NEAR(y[0], 1.f, 1e-6);
  EXPECT_NEAR(y[1], 2.f, 1e-6);
  // Gated: norm(x·silu(g)) with g = 0 gives silu(0) = 0 -> 0 / sqrt(eps).
  float g[2] = {0, 0};
  ref::rms_norm({1, 2, 2, x, 2, w, g, 2, false, 1.f, y, 2});
  EXPECT_NEAR(y[0], 0.f, 1e-7);
}

TEST(RefKernels, ConvHand) {
  float x[2] = {1, 3}, w[2] = {0.5f, 1}, b[1] = {0.1f}, st[1] = {2}, y[2];
  ref::causal_conv1d({2, 1, 2, x, 1, w, b, st, false, y, 1});
  EXPECT_FLOAT_EQ(y[0], 2.1f);
  EXPECT_FLOAT_EQ(y[1], 3.6f);
  EXPECT_FLOAT_EQ(st[0], 3.f);
}

TEST(RefKernels, ScanHand) {
  // softplus(0) = ln 2; A = -1 -> decay exp(-ln 2) = 1/2.
  float u[2] = {1, 2}, delta[2] = {0, 0}, A[1] = {-1}, B[2] = {1, 1}, C[2] = {1, 1}, h[1] = {0}, y[2];
  ref::selective_scan({2, 1, 1, u, 1, delta, 1, nullptr, A, B, 1, C, 1, nullptr, nullptr, 0, h, y, 1});
  const float l2 = std::log(2.f);
  EXPECT_NEAR(y[0], l2, 1e-6);
  EXPECT_NEAR(y[1], 0.5f * l2 + 2 * l2, 1e-6);
  EXPECT_NEAR(h[0], 0.5f * l2 + 2 * l2, 1e-6);
}

TEST(RefKernels, SsdHandWithLimit) {
  // Δ = clamp(ln 2, 0, 0.5) = 0.5; a = exp(-0.5); S1 = 0.5·1·1; S2 = a·S1 + 0.5·2.
  float x[2] = {1, 2}, dt[2] = {0, 0}, bias[1] = {0}, A[1] = {-1}, B[2] = {1, 1}, C[2] = {1, 1}, D[1] = {0.25f}, S[1] = {0}, y[2];
  ref::ssd_recurrent({2, 1, 1, 1, 1, 1, x, 1, dt, 1, bias, A, B, 1, C, 1, D, 0.f, 0.5f, S, y, 1});
  EXPECT_NEAR(y[0], 0.5f + 0.25f, 1e-6);
  EXPECT_NEAR(y[1], std::exp(-0.5f) * 0.5f + 1.f + 0.5f, 1e-6);
}

class LinearVsRef : public ::testing::TestWithParam<std::tuple<DType, int, int, int>> {};

TEST_P(LinearVsRef, Matches) {
  auto [dt, M, N, K] = GetParam();
  auto x = randn(size_t(M * K), 1), wf = randn(size_t(N * K), 2, 0.1f), b = randn(size_t(N), 3);
  Tensor w = Tensor::from_f32(wf.data(), dt, {N, K});
  std::vector<float> y0(static_cast<size_t>(M * N)), y1(size_t(M * N));
  ref::linear({M, N, K, x.data(), K, w.raw(), dt, b.data(), y0.data(), N});
  cpu::linear({M, N, K, x.data(), K, w.raw(), dt, b.data(), y1.data(), N});
  EXPECT_LT(rel_err(y1, y0), kTolF32);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LinearVsRef,
                         ::testing::Values(std::make_tuple(DType::F32, 3, 37, 29), std::make_tuple(DType::BF16, 3, 37, 29),
                                           std::make_tuple(DType::F16, 1, 65, 7),
                                           std::make_tuple(DType::F32, 2, 3072, 768),    // mamba-130m in_proj
                                           std::make_tuple(DType::BF16, 5, 768, 1536),   // mamba-130m out_proj
                                           std::make_tuple(DType::F16, 1, 80, 1536)));   // mamba-130m x_proj

TEST(CpuKernels, SelectiveScanVsRef) {
  for (auto [L, E, N] : {std::tuple{50, 33, 16}, std::tuple{7, 1536, 16} /* mamba-130m */, std::tuple{1, 5, 3}}) {
    auto u = randn(size_t(L * E), 1), d = randn(size_t(L * E), 2), bias = randn(size_t(E), 3, 0.5f, -1.f);
    auto A = randn(size_t(E * N), 4, 0.5f, -1.f), B = randn(size_t(L * N), 5), C = randn(size_t(L * N), 6);
    auto D = randn(size_t(E), 7), z = randn(size_t(L * E), 8), h0 = randn(size_t(E * N), 9);
    for (auto& a : A) a = -std::fabs(a);
    auto h1 = h0;
    std::vector<float> y0(static_cast<size_t>(L * E)), y1(size_t(L * E));
    ref::selective_scan({L, E, N, u.data(), E, d.data(), E, bias.data(), A.data(), B.data(), N, C.data(), N, D.data(), z.data(), E, h0.data(), y0.data(), E});
    cpu::selective_scan({L, E, N, u.data(), E, d.data(), E, bias.data(), A.data(), B.data(), N, C.data(), N, D.data(), z.data(), E, h1.data(), y1.data(), E});
    EXPECT_LT(rel_err(y1, y0), kTolF32) << L << " " << E << " " << N;
    EXPECT_LT(rel_err(h1, h0), kTolF32);
  }
}

// The chunked SSD must equal the token-by-token recurrence for every chunk size, including chunks
// of one token, ragged last chunks and chunks longer than the sequence, from a non-zero state.
TEST(CpuKernels, SsdChunkedVsRecurrence) {
  struct S { int64_t L, H, P, G, N; float lo, hi; };
  for (S s : {S{45, 4, 5, 2, 7, 0.f, INFINITY}, S{33, 3, 4, 1, 9, 0.05f, 0.6f}, S{70, 24, 64, 1, 128, 0.f, INFINITY} /* mamba2-130m heads */}) {
    auto x = randn(size_t(s.L * s.H * s.P), 1), dt = randn(size_t(s.L * s.H), 2), bias = randn(size_t(s.H), 3, 0.5f, -1.f);
    auto A = randn(size_t(s.H), 4, 0.5f, -1.f), B = randn(size_t(s.L * s.G * s.N), 5), C = randn(size_t(s.L * s.G * s.N), 6);
    auto D = randn(size_t(s.H), 7), S0 = randn(size_t(s.H * s.P * s.N), 8, 0.3f);
    for (auto& a : A) a = -std::fabs(a);
    const int64_t HP = s.H * s.P, GN = s.G * s.N;
    std::vector<float> yr(static_cast<size_t>(s.L * HP));
    auto Sr = S0;
    ref::ssd_recurrent({s.L, s.H, s.P, s.G, s.N, 0, x.data(), HP, dt.data(), s.H, bias.data(), A.data(), B.data(), GN, C.data(), GN, D.data(), s.lo, s.hi, Sr.data(), yr.data(), HP});
    for (int64_t Q : {int64_t(1), int64_t(3), int64_t(8), int64_t(16), s.L, s.L + 5}) {
      std::vector<float> yc(static_cast<size_t>(s.L * HP));
      auto Sc = S0;
      cpu::ssd_chunked({s.L, s.H, s.P, s.G, s.N, Q, x.data(), HP, dt.data(), s.H, bias.data(), A.data(), B.data(), GN, C.data(), GN, D.data(), s.lo, s.hi, Sc.data(), yc.data(), HP});
      EXPECT_LT(rel_err(yc, yr), 5e-5f) << "L=" << s.L << " Q=" << Q;
      EXPECT_LT(rel_err(Sc, Sr), 5e-5f) << "L=" << s.L << " Q=" << Q;
    }
  }
}
