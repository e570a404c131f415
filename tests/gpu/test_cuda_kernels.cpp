// Every CUDA kernel against the scalar reference kernels (kernels/ref) on real model shapes
// (mamba-2.8b, mamba2-2.7b, falcon-mamba-7b widths) and odd sizes. Tolerances are relative to the
// reference's largest magnitude: 2e-5 for f32 paths (f32 vs f64 accumulation), 1.5e-2 where x is
// rounded to bf16/f16 for the tensor-core GEMM (see docs/numerics.md).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "core/dtype.hpp"
#include "core/tensor.hpp"
#include "gpu/gpu_util.hpp"
#include "kernels/cuda/cuda.hpp"
#include "kernels/ref/ref.hpp"
#include "models/sample.hpp"
#include "ssm/model.hpp"

using namespace ssm;
namespace kc = ssm::kernels::cuda;
namespace kr = ssm::kernels::ref;

namespace {

struct LinCase { int64_t M, N, K; DType t; bool norm, acc, bias; };

class CudaLinear : public ::testing::TestWithParam<LinCase> {};

TEST_P(CudaLinear, MatchesReference) {
  SKIP_WITHOUT_GPU();
  const LinCase c = GetParam();
  auto x = randn(static_cast<size_t>(c.M * c.K), 1), nw = randn(static_cast<size_t>(c.K), 2, 0.2f, 1.f), b = randn(static_cast<size_t>(c.N), 3);
  auto wf = randn(static_cast<size_t>(c.N * c.K), 4, 0.05f), y0 = randn(static_cast<size_t>(c.M * c.N), 5);
  Tensor w = Tensor::from_f32(wf.data(), c.t, {c.N, c.K});
  // Reference: optional pre-norm, then linear, then optional residual add.
  std::vector<float> xn = x, ref(static_cast<size_t>(c.M * c.N));
  if (c.norm) kr::rms_norm({c.M, c.K, c.K, x.data(), c.K, nw.data(), nullptr, 0, false, 1e-5f, xn.data(), c.K});
  kr::linear({c.M, c.N, c.K, xn.data(), c.K, w.raw(), c.t, c.bias ? b.data() : nullptr, ref.data(), c.N});
  if (c.acc)
    for (size_t i = 0; i < ref.size(); i++) ref[i] += y0[i];
  DevBuf<float> dx(x), dnw(nw), db(b), dy(y0);
  DevBuf<uint16_t> dw(static_cast<size_t>(w.numel()) * dtype_size(c.t) / 2);
  cudaMemcpy(dw.p, w.raw(), w.nbytes(), cudaMemcpyHostToDevice);
  kc::Blas blas;
  blas.reserve(c.M, c.K);
  blas.linear({c.M, c.N, c.K, dx.p, c.K, dw.p, c.t, c.bias ? db.p : nullptr, dy.p, c.N, c.norm ? dnw.p : nullptr, 1e-5f, c.acc}, nullptr);
  const bool rounded = c.M > kc::Blas::kGemvMaxM && c.t != DType::F32;
  const float err = rel_err(dy.host(), ref);
  EXPECT_LT(err, rounded ? 1.5e-2f : 2e-5f) << "M=" << c.M << " N=" << c.N << " K=" << c.K;
  std::printf("[ linear M=%lld N=%lld K=%lld %s ] rel err %.3g\n", (long long)c.M, (long long)c.N, (long long)c.K,
              std::string(dtype_name(c.t)).c_str(), err);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, CudaLinear,
    ::testing::Values(LinCase{1, 10240, 2560, DType::BF16, true, false, false},   // mamba-2.8b in_proj, decode
                      LinCase{1, 2560, 5120, DType::BF16, false, true, false},    // out_proj + residual
                      LinCase{4, 192, 5120, DType::F16, false, false, true},      // x_proj, batch 4
                      LinCase{8, 50280, 2560, DType::BF16, true, false, false},   // lm_head
                      LinCase{3, 37, 45, DType::F32, true, true, true},           // odd sizes, scalar path
                      LinCase{1, 33, 7, DType::BF16, false, false, true},
                      LinCase{64, 10576, 2560, DType::BF16, true, false, false},  // mamba2-2.7b in_proj, batch 64
                      LinCase{300, 2560, 5120, DType::BF16, false, true, false},  // prefill block
                      LinCase{77, 45, 37, DType::F32, true, true, true},          // f32 cuBLASLt, odd
                      LinCase{17, 129, 64, DType::F16, false, false, true}));

// The decode GEMV over shapes that exercise its three kernels (matrices of at most 1,024 rows take the
// pipelined one; larger ones at M = 3..8 on Hopper the bulk-copy one: whole-row chunks, rows split
// into segments (K = 4104 bf16, f32 K = 2560), warps with fewer units than others): rows that end inside a U-deep run of loads, K not a multiple of a warp group's
// vectors (ragged last vector per row), several warps-per-row splits, each loads-in-flight depth,
// f32 and half weights.
TEST(CudaKernels, GemvPipelineShapes) {
  SKIP_WITHOUT_GPU();
  struct Case { int64_t M, N, K; DType t; };
  for (const Case& c : {Case{1, 7, 296, DType::BF16}, Case{2, 192, 5120, DType::BF16}, Case{1, 1000, 2568, DType::F16},
                        Case{5, 2560, 5120, DType::BF16}, Case{1, 10240, 2560, DType::F32}, Case{8, 333, 1032, DType::F32},
                        Case{1, 12000, 136, DType::BF16}, Case{3, 10577, 2568, DType::F16},
                        Case{3, 4099, 4104, DType::BF16}, Case{4, 1500, 1024, DType::F32}, Case{6, 3001, 2056, DType::BF16},
                        Case{3, 10240, 2560, DType::F32}})
    for (int unroll : {4, 8, 16}) {
      auto x = randn(static_cast<size_t>(c.M * c.K), 1), nw = randn(static_cast<size_t>(c.K), 2, 0.2f, 1.f), b = randn(static_cast<size_t>(c.N), 3);
      auto wf = randn(static_cast<size_t>(c.N * c.K), 4, 0.05f), y0 = randn(static_cast<size_t>(c.M * c.N), 5);
      Tensor w = Tensor::from_f32(wf.data(), c.t, {c.N, c.K});
      std::vector<float> xn = x, ref(static_cast<size_t>(c.M * c.N));
      kr::rms_norm({c.M, c.K, c.K, x.data(), c.K, nw.data(), nullptr, 0, false, 1e-5f, xn.data(), c.K});
      kr::linear({c.M, c.N, c.K, xn.data(), c.K, w.raw(), c.t, b.data(), ref.data(), c.N});
      for (size_t i = 0; i < ref.size(); i++) ref[i] += y0[i];
      DevBuf<float> dx(x), dnw(nw), db(b), dy(y0);
      DevBuf<uint8_t> dw(w.nbytes());
      cudaMemcpy(dw.p, w.raw(), w.nbytes(), cudaMemcpyHostToDevice);
      kc::gemv({c.M, c.N, c.K, dx.p, c.K, dw.p, c.t, db.p, dy.p, c.N, dnw.p, 1e-5f, true}, nullptr, unroll);
      EXPECT_LT(rel_err(dy.host(), ref), 2e-5f) << "M=" << c.M << " N=" << c.N << " K=" << c.K << " unroll " << unroll;
    }
}

// Mamba-2 decode: the gated, grouped RMSNorm fused into out_proj's GEMV, against the reference norm
// followed by the reference linear (and the residual add).
TEST(CudaKernels, GemvGatedGroupNorm) {
  SKIP_WITHOUT_GPU();
  for (int64_t group : {int64_t(0), int64_t(5120), int64_t(640)})
    for (int64_t M : {int64_t(1), int64_t(3)}) {
      const int64_t K = 5120, N = 2560, gs = K + 336;
      auto x = randn(static_cast<size_t>(M * K), 1), g = randn(static_cast<size_t>(M * gs), 2), nw = randn(static_cast<size_t>(K), 3, 0.1f, 1.f);
      auto wf = randn(static_cast<size_t>(N * K), 4, 0.02f), y0 = randn(static_cast<size_t>(M * N), 5);
      Tensor w = Tensor::from_f32(wf.data(), DType::BF16, {N, K});
      std::vector<float> xn(x.size()), ref(y0.size());
      if (group == 0) {  // gate only
        for (int64_t m = 0; m < M; m++)
          for (int64_t k = 0; k < K; k++) xn[size_t(m * K + k)] = x[size_t(m * K + k)] * kernels::silu(g[size_t(m * gs + k)]);
      } else {
        kr::rms_norm({M, K, group, x.data(), K, nw.data(), g.data(), gs, false, 1e-5f, xn.data(), K});
      }
      kr::linear({M, N, K, xn.data(), K, w.raw(), DType::BF16, nullptr, ref.data(), N});
      for (size_t i = 0; i < ref.size(); i++) ref[i] += y0[i];
      DevBuf<float> dx(x), dg(g), dnw(nw), dy(y0);
      DevBuf<uint8_t> dw(w.nbytes());
      cudaMemcpy(dw.p, w.raw(), w.nbytes(), cudaMemcpyHostToDevice);
      kc::LinearArgs a{M, N, K, dx.p, K, dw.p, DType::BF16, nullptr, dy.p, N, group ? dnw.p : nullptr, 1e-5f, true};
      a.gate = dg.p;
      a.gate_stride = gs;
      a.norm_group = group;
      kc::gemv(a, nullptr);
      EXPECT_LT(rel_err(dy.host(), ref), 2e-5f) << "group " << group << " M " << M;
    }
}

TEST(CudaKernels, RmsNormGroupedGated) {
  SKIP_WITHOUT_GPU();
  for (bool nbg : {false, true})
    for (int64_t group : {int64_t(5120), int64_t(640), int64_t(7)}) {
      const int64_t M = 3, D = group == 7 ? 21 : 5120;
      auto x = randn(static_cast<size_t>(M * D), 1), g = randn(static_cast<size_t>(M * D), 2), w = randn(static_cast<size_t>(D), 3, 0.1f, 1.f);
      std::vector<float> ref(x.size());
      kr::rms_norm({M, D, group, x.data(), D, w.data(), g.data(), D, nbg, 1e-5f, ref.data(), D});
      DevBuf<float> dx(x), dg(g), dw(w), dy(x.size());
      kc::rms_norm({M, D, group, dx.p, D, dw.p, dg.p, D, nbg, 1e-5f, dy.p, D}, nullptr);
      EXPECT_LT(rel_err(dy.host(), ref), 2e-5f) << "group " << group << " norm_before_gate " << nbg;
    }
}

TEST(CudaKernels, WeightlessRmsNormStrided) {  // FalconMamba's δ / B / C norms inside x_proj's output
  SKIP_WITHOUT_GPU();
  const int64_t M = 5, R = 256, N = 16, RN = R + 2 * N;
  auto x = randn(static_cast<size_t>(M * RN), 4);
  std::vector<float> ref = x;
  kr::rms_norm({M, N, N, x.data() + R, RN, nullptr, nullptr, 0, false, 1e-6f, ref.data() + R, RN});
  DevBuf<float> dx(x);
  kc::rms_norm({M, N, N, dx.p + R, RN, nullptr, nullptr, 0, false, 1e-6f, dx.p + R, RN}, nullptr);
  EXPECT_LT(rel_err(dx.host(), ref), 2e-5f);
}

TEST(CudaKernels, ConvPrefillAndStep) {
  SKIP_WITHOUT_GPU();
  // Runs of 16 steps per thread: one step, a partial run, several runs with a ragged end; K = 2 too.
  for (auto [L, K] : {std::pair<int64_t, int64_t>{1, 4}, {2, 4}, {37, 4}, {300, 4}, {19, 2}}) {
    const int64_t C = 5376, xs = C + 11;  // mamba2-2.7b conv channels, strided input
    auto x = randn(static_cast<size_t>(L * xs), 1), w = randn(static_cast<size_t>(C * K), 2, 0.3f), b = randn(static_cast<size_t>(C), 3), st = randn(static_cast<size_t>((K - 1) * C), 4);
    std::vector<float> ref(static_cast<size_t>(L * C)), rst = st;
    kr::causal_conv1d({L, C, K, x.data(), xs, w.data(), b.data(), rst.data(), true, ref.data(), C});
    DevBuf<float> dx(x), dw(w), db(b), ds(st), dy(static_cast<size_t>(L * C));
    kc::causal_conv1d({L, C, K, dx.p, xs, dw.p, db.p, ds.p, true, dy.p, C}, nullptr);
    EXPECT_LT(rel_err(dy.host(), ref), 2e-5f) << "L=" << L << " K=" << K;
    EXPECT_LT(rel_err(ds.host(), rst), 1e-7f) << "state L=" << L << " K=" << K;
    // With the half-precision copy (the next GEMM's input): f32 y unchanged, the copy y rounded.
    DevBuf<uint16_t> yh(static_cast<size_t>(L * C));
    ds.upload(st);
    kc::causal_conv1d({L, C, K, dx.p, xs, dw.p, db.p, ds.p, true, dy.p, C}, nullptr, yh.p, DType::BF16);
    const auto raw = yh.host();
    std::vector<float> got(raw.size());
    for (size_t i = 0; i < raw.size(); i++) got[i] = bf16_to_f32(raw[i]);
    EXPECT_LT(rel_err(dy.host(), ref), 2e-5f) << "L=" << L << " K=" << K << " with the bf16 copy";
    EXPECT_LT(rel_err(got, ref), 4e-3f) << "bf16 copy L=" << L << " K=" << K;
    // x read in bf16 and f16 (in_proj's output in the weight dtype), only the half output written: the
    // reference is the f32 conv of the rounded x, so the window must match it exactly and y within
    // one rounding of the output.
    for (DType t : {DType::BF16, DType::F16}) {
      std::vector<uint16_t> x16(x.size());
      std::vector<float> xr(x.size()), ref_r(ref.size()), rst_r = st;
      for (size_t i = 0; i < x.size(); i++) {
        x16[i] = t == DType::BF16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
        xr[i] = t == DType::BF16 ? bf16_to_f32(x16[i]) : f16_to_f32(x16[i]);
      }
      kr::causal_conv1d({L, C, K, xr.data(), xs, w.data(), b.data(), rst_r.data(), true, ref_r.data(), C});
      DevBuf<uint16_t> dx16(x16), out16(static_cast<size_t>(L * C));
      ds.upload(st);
      kc::causal_conv1d({L, C, K, nullptr, xs, dw.p, db.p, ds.p, true, nullptr, C}, nullptr, out16.p, t, dx16.p);
      const auto r16 = out16.host();
      std::vector<float> g16(r16.size());
      for (size_t i = 0; i < r16.size(); i++) g16[i] = t == DType::BF16 ? bf16_to_f32(r16[i]) : f16_to_f32(r16[i]);
      EXPECT_LT(rel_err(g16, ref_r), t == DType::BF16 ? 4e-3f : 6e-4f) << "half x L=" << L << " K=" << K;
      EXPECT_LT(rel_err(ds.host(), rst_r), 1e-7f) << "state, half x, L=" << L << " K=" << K;
    }
  }
  // Step: 3 sequences in slots 2, 0, 1 of a pool with slot stride S.
  const int64_t B = 3, C = 130, K = 4, S = 1000;
  auto x = randn(static_cast<size_t>(B * C), 5), w = randn(static_cast<size_t>(C * K), 6), pool = randn(static_cast<size_t>(3 * S), 7);
  std::vector<int32_t> slots = {2, 0, 1};
  std::vector<float> ref(static_cast<size_t>(B * C)), rpool = pool;
  for (int64_t b = 0; b < B; b++)
    kr::causal_conv1d({1, C, K, x.data() + b * C, C, w.data(), nullptr, rpool.data() + slots[b] * S, true, ref.data() + b * C, C});
  DevBuf<float> dx(x), dw(w), dp(pool), dy(static_cast<size_t>(B * C));
  DevBuf<int32_t> dsl(slots);
  kc::causal_conv1d_step({B, C, K, dx.p, C, dw.p, nullptr, dp.p, S, dsl.p, true, dy.p, C}, nullptr);
  EXPECT_LT(rel_err(dy.host(), ref), 2e-5f);
  EXPECT_LT(rel_err(dp.host(), rpool), 1e-7f);
}

// Mamba-1 decode: conv step fused with x_proj (atomic adds into a zeroed dbc), against the reference
// conv step followed by the reference linear; the kernel also clears the next layer's buffer.
TEST(CudaKernels, ConvXprojStepFused) {
  SKIP_WITHOUT_GPU();
  struct Case { int64_t B, C, RN; DType t; };
  for (const Case& c : {Case{1, 5120, 192, DType::BF16}, Case{3, 5120, 192, DType::BF16}, Case{8, 136, 37, DType::F32},
                        Case{5, 8192, 288, DType::F16}}) {
    const int64_t K = 4, S = c.C * 3 + 5;
    auto x = randn(static_cast<size_t>(c.B * c.C), 1), w = randn(static_cast<size_t>(c.C * K), 2, 0.3f), b = randn(static_cast<size_t>(c.C), 3);
    auto pool = randn(static_cast<size_t>(9 * S), 4), xw = randn(static_cast<size_t>(c.RN * c.C), 5, 0.05f);
    std::vector<int32_t> slots;
    for (int64_t i = 0; i < c.B; i++) slots.push_back(int32_t((i * 5 + 2) % 9));
    Tensor W = Tensor::from_f32(xw.data(), c.t, {c.RN, c.C});
    std::vector<float> ref_y(static_cast<size_t>(c.B * c.C)), rpool = pool, ref_d(static_cast<size_t>(c.B * c.RN));
    for (int64_t i = 0; i < c.B; i++)
      kr::causal_conv1d({1, c.C, K, x.data() + i * c.C, c.C, w.data(), b.data(), rpool.data() + slots[size_t(i)] * S, true,
                         ref_y.data() + i * c.C, c.C});
    kr::linear({c.B, c.RN, c.C, ref_y.data(), c.C, W.raw(), c.t, nullptr, ref_d.data(), c.RN});
    DevBuf<float> dx(x), dw(w), db(b), dp(pool), dy(ref_y.size()), dd(ref_d.size()), dz(randn(50, 6));
    DevBuf<uint8_t> dW(W.nbytes());
    cudaMemcpy(dW.p, W.raw(), W.nbytes(), cudaMemcpyHostToDevice);
    DevBuf<int32_t> dsl(slots);
    kc::conv_xproj_step({{c.B, c.C, K, dx.p, c.C, dw.p, db.p, dp.p, S, dsl.p, true, dy.p, c.C}, dW.p, c.t, c.RN, dd.p, c.RN, dz.p, 50},
                        nullptr);
    EXPECT_LT(rel_err(dy.host(), ref_y), 2e-5f) << "B=" << c.B << " C=" << c.C;
    EXPECT_LT(rel_err(dp.host(), rpool), 1e-7f);
    EXPECT_LT(rel_err(dd.host(), ref_d), 2e-5f) << "x_proj B=" << c.B << " C=" << c.C;
    for (float v : dz.host()) ASSERT_EQ(v, 0.f);
  }
}

TEST(CudaKernels, SelectiveScanPrefill) {
  SKIP_WITHOUT_GPU();
  // Chunks of 32 steps are staged in shared memory: whole, partial and several chunks; N up to 128.
  for (auto [L, E, N] : {std::tuple<int64_t, int64_t, int64_t>{64, 5120, 16}, {37, 33, 7}, {5, 40, 48}, {300, 256, 16},
                         {70, 64, 128}, {1100, 768, 16}, {300, 64, 8}, {513, 72, 12}, {9, 16, 4}}) {
    auto u = randn(static_cast<size_t>(L * E), 1), dl = randn(static_cast<size_t>(L * E), 2), bias = randn(static_cast<size_t>(E), 3, 0.5f, -3.f);
    auto A = randn(static_cast<size_t>(E * N), 4, 0.5f, -1.f), Bm = randn(static_cast<size_t>(L * N), 5), Cm = randn(static_cast<size_t>(L * N), 6);
    auto D = randn(static_cast<size_t>(E), 7), z = randn(static_cast<size_t>(L * E), 8), h = randn(static_cast<size_t>(E * N), 9, 0.1f);
    for (auto& a : A) a = -std::fabs(a);  // A = -exp(A_log) < 0 (a positive one overflows over long sequences)
    std::vector<float> ref(static_cast<size_t>(L * E)), rh = h;
    kr::selective_scan({L, E, N, u.data(), E, dl.data(), E, bias.data(), A.data(), Bm.data(), N, Cm.data(), N, D.data(),
                        z.data(), E, rh.data(), ref.data(), E});
    DevBuf<float> du(u), ddl(dl), db(bias), dA(A), dB(Bm), dC(Cm), dD(D), dz(z), dh(h), dy(static_cast<size_t>(L * E));
    DevBuf<float> work(static_cast<size_t>(kc::selective_scan_workspace_floats(L, E, N)));
    // Sequential, then time-chunked (2 and 3 chunks: ragged last chunk; the auto choice): the chunk
    // boundaries reassociate the recurrence (exp(A·ΣΔ) for Π exp(ΔA)), ~1e-6 relative in f32.
    for (int64_t chunks : {int64_t(1), int64_t(2), int64_t(3), int64_t(0)}) {
      dh.upload(h);
      kc::selective_scan({L, E, N, du.p, E, ddl.p, E, db.p, dA.p, dB.p, N, dC.p, N, dD.p, dz.p, E, dh.p, dy.p, E}, nullptr,
                         work.p, chunks);
      EXPECT_LT(rel_err(dy.host(), ref), 2e-5f) << "L=" << L << " E=" << E << " N=" << N << " chunks " << chunks;
      EXPECT_LT(rel_err(dh.host(), rh), 2e-5f) << "state, chunks " << chunks;
    }
    // The single-pass warp-scan kernel (d_state 4, 8, 12, 16): the lanes' maps reassociate the
    // products the same way, so the same bound; with half-precision outputs, the rounding of y on top
    // (bf16: 2^-9 relative per element, f16: 2^-12).
    const kernels::ScanParams sp{L, E, N, du.p, E, ddl.p, E, db.p, dA.p, dB.p, N, dC.p, N, dD.p, dz.p, E, dh.p, dy.p, E};
    if (kc::selective_scan_warp_ok(sp)) {
      dh.upload(h);
      kc::selective_scan_warp(sp, nullptr);
      const float ey = rel_err(dy.host(), ref), eh = rel_err(dh.host(), rh);
      std::printf("[ scan warp ] L=%lld E=%lld N=%lld: rel err y %.2g state %.2g\n", (long long)L, (long long)E, (long long)N, ey, eh);
      EXPECT_LT(ey, 2e-5f) << "warp scan L=" << L << " E=" << E << " N=" << N;
      EXPECT_LT(eh, 2e-5f) << "warp scan state";
      for (DType t : {DType::BF16, DType::F16}) {
        DevBuf<uint16_t> yh(static_cast<size_t>(L * E));
        dh.upload(h);
        ASSERT_TRUE(kc::selective_scan_warp_ok(sp, yh.p, E));
        kc::selective_scan_warp(sp, nullptr, yh.p, t, E);
        const auto raw = yh.host();
        std::vector<float> got(raw.size());
        for (size_t i = 0; i < raw.size(); i++) got[i] = t == DType::BF16 ? bf16_to_f32(raw[i]) : f16_to_f32(raw[i]);
        EXPECT_LT(rel_err(got, ref), t == DType::BF16 ? 4e-3f : 6e-4f) << "warp scan, half y, L=" << L << " N=" << N;
        EXPECT_LT(rel_err(dh.host(), rh), 2e-5f) << "warp scan state, half y";
        // u and z read in the same half dtype (in_proj's and the conv's outputs kept in it): against
        // the reference run on the rounded u and z, the same bounds.
        std::vector<uint16_t> u16(u.size()), z16(z.size());
        std::vector<float> ur(u.size()), zr(z.size()), ref_r(ref.size()), rh_r = h;
        auto rnd = [&](float v, uint16_t& o) {
          o = t == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v);
          return t == DType::BF16 ? bf16_to_f32(o) : f16_to_f32(o);
        };
        for (size_t i = 0; i < u.size(); i++) ur[i] = rnd(u[i], u16[i]), zr[i] = rnd(z[i], z16[i]);
        kr::selective_scan({L, E, N, ur.data(), E, dl.data(), E, bias.data(), A.data(), Bm.data(), N, Cm.data(), N, D.data(),
                            zr.data(), E, rh_r.data(), ref_r.data(), E});
        DevBuf<uint16_t> du16(u16), dz16(z16);
        dh.upload(h);
        ASSERT_TRUE(kc::selective_scan_warp_ok(sp, yh.p, E, du16.p, dz16.p));
        kc::selective_scan_warp(sp, nullptr, yh.p, t, E, du16.p, dz16.p);
        const auto raw2 = yh.host();
        for (size_t i = 0; i < raw2.size(); i++) got[i] = t == DType::BF16 ? bf16_to_f32(raw2[i]) : f16_to_f32(raw2[i]);
        EXPECT_LT(rel_err(got, ref_r), t == DType::BF16 ? 4e-3f : 6e-4f) << "warp scan, half u z y, L=" << L << " N=" << N;
        EXPECT_LT(rel_err(dh.host(), rh_r), 2e-5f) << "warp scan state, half u z y";
      }
    } else {
      EXPECT_TRUE(N % 4 != 0 || N > 16 || E % 8 != 0) << "the warp scan should serve N=" << N << " E=" << E;
    }
  }
}

TEST(CudaKernels, Mamba1StepFused) {
  SKIP_WITHOUT_GPU();
  for (bool falcon : {false, true}) {
    const int64_t B = 6, E = falcon ? 8192 : 200, N = 16, R = falcon ? 256 : 13, RN = R + 2 * N, S = E * N + 7;
    auto u = randn(static_cast<size_t>(B * E), 1), dbc = randn(static_cast<size_t>(B * RN), 2), dtw = randn(static_cast<size_t>(E * R), 3, 0.1f);
    auto bias = randn(static_cast<size_t>(E), 4, 0.5f, -3.f), A = randn(static_cast<size_t>(E * N), 5, 0.5f, -1.f), D = randn(static_cast<size_t>(E), 6);
    auto z = randn(static_cast<size_t>(B * E), 7), pool = randn(static_cast<size_t>(7 * S), 8, 0.1f);
    std::vector<int32_t> slots = {3, 1, 0, 5, 6, 2};
    Tensor w = Tensor::from_f32(dtw.data(), DType::BF16, {E, R});
    std::vector<float> ref(static_cast<size_t>(B * E)), rpool = pool, row(static_cast<size_t>(RN)), delta(static_cast<size_t>(E));
    std::vector<float> rows_normed, deltas;  // for the batched kernel (dt_proj precomputed, norms applied)
    for (int64_t b = 0; b < B; b++) {
      std::copy(dbc.begin() + b * RN, dbc.begin() + (b + 1) * RN, row.begin());
      if (falcon)
        for (auto [o, n] : {std::pair<int64_t, int64_t>{0, R}, {R, N}, {R + N, N}})
          kr::rms_norm({1, n, n, row.data() + o, n, nullptr, nullptr, 0, false, 1e-6f, row.data() + o, n});
      kr::linear({1, E, R, row.data(), R, w.raw(), DType::BF16, nullptr, delta.data(), E});
      rows_normed.insert(rows_normed.end(), row.begin(), row.end());
      deltas.insert(deltas.end(), delta.begin(), delta.end());
      kr::selective_scan({1, E, N, u.data() + b * E, E, delta.data(), E, bias.data(), A.data(), row.data() + R, N,
                          row.data() + R + N, N, D.data(), z.data() + b * E, E, rpool.data() + slots[b] * S, ref.data() + b * E, E});
    }
    DevBuf<float> du(u), ddbc(dbc), db(bias), dA(A), dD(D), dz(z), dp(pool), dy(static_cast<size_t>(B * E));
    DevBuf<uint16_t> dw(static_cast<size_t>(E * R));
    cudaMemcpy(dw.p, w.raw(), w.nbytes(), cudaMemcpyHostToDevice);
    DevBuf<int32_t> dsl(slots);
    kc::mamba1_step({B, E, N, R, du.p, E, ddbc.p, RN, dw.p, DType::BF16, db.p, dA.p, dD.p, dz.p, E, falcon, 1e-6f, dp.p, S,
                     dsl.p, dy.p, E}, nullptr);
    EXPECT_LT(rel_err(dy.host(), ref), 2e-5f) << "falcon " << falcon;
    EXPECT_LT(rel_err(dp.host(), rpool), 2e-5f) << "falcon " << falcon;
    // Batched form (batches > 8 in the model): δ·dt_proj given, norms already applied to the rows.
    DevBuf<float> drows(rows_normed), ddel(deltas), dp2(pool), dy2(static_cast<size_t>(B * E));
    kc::Mamba1StepParams bp{B, E, N, R, du.p, E, drows.p, RN, nullptr, DType::BF16, db.p, dA.p, dD.p, dz.p, E, false, 1e-6f, dp2.p, S,
                            dsl.p, dy2.p, E};
    bp.delta = ddel.p;
    bp.delta_stride = E;
    kc::mamba1_step(bp, nullptr);
    EXPECT_LT(rel_err(dy2.host(), ref), 2e-5f) << "batched, falcon " << falcon;
    EXPECT_LT(rel_err(dp2.host(), rpool), 2e-5f) << "batched, falcon " << falcon;
    // Batched form with bf16 state storage: against the reference run on the bf16-rounded states; y is
    // computed before the store's rounding (f32 bound), the stored states carry it (2^-9 relative).
    std::vector<uint16_t> pool16(pool.size());
    std::vector<float> pool_r(pool.size()), ref_r(ref.size());
    for (size_t i = 0; i < pool.size(); i++) pool16[i] = f32_to_bf16(pool[i]), pool_r[i] = bf16_to_f32(pool16[i]);
    std::vector<float> rpool_r = pool_r;
    for (int64_t b = 0; b < B; b++) {
      const float* rw = rows_normed.data() + b * RN;
      kr::selective_scan({1, E, N, u.data() + b * E, E, deltas.data() + b * E, E, bias.data(), A.data(), rw + R, N, rw + R + N, N,
                          D.data(), z.data() + b * E, E, rpool_r.data() + slots[size_t(b)] * S, ref_r.data() + b * E, E});
    }
    DevBuf<uint16_t> dp16(pool16);
    bp.states = dp16.p;
    bp.state_bf16 = true;
    kc::mamba1_step(bp, nullptr);
    EXPECT_LT(rel_err(dy2.host(), ref_r), 2e-5f) << "batched bf16 state, falcon " << falcon;
    std::vector<float> got(pool.size());
    const auto h16 = dp16.host();
    for (size_t i = 0; i < got.size(); i++) got[i] = bf16_to_f32(h16[i]);
    EXPECT_LT(rel_err(got, rpool_r), 5e-3f) << "batched bf16 state, falcon " << falcon;
  }
}

// Batches > 8: the rows kernel (a thread per channel and sequence, dt_proj and FalconMamba's norms
// inside) against the reference norms + linear + scan, per sequence. Ragged sequence and channel
// tiles (B = 19, E not a multiple of 32), odd and vector-friendly dt_rank, N = 16 with 16-byte state
// rows and with unaligned ones, N = 7 and 12; bf16, f32 and f16 dt_proj weights; f32 and bf16 state
// storage; y in f32 and in bf16.
TEST(CudaKernels, Mamba1StepRows) {
  SKIP_WITHOUT_GPU();
  struct Case { int64_t B, E, N, R; bool falcon; int64_t pad; DType wt = DType::BF16; };
  for (const Case& c : {Case{19, 200, 16, 13, false, 0}, Case{19, 200, 16, 160, true, 7}, Case{64, 5120, 16, 160, false, 0},
                        Case{12, 8192, 16, 256, true, 0}, Case{9, 45, 7, 8, false, 3}, Case{19, 200, 16, 13, true, 0, DType::F32},
                        Case{64, 5120, 16, 160, false, 0, DType::F32}, Case{10, 96, 12, 48, false, 0, DType::F16}}) {
    const int64_t B = c.B, E = c.E, N = c.N, R = c.R, RN = R + 2 * N, S = E * N + c.pad, P = B + 3;
    auto u = randn(static_cast<size_t>(B * E), 1), dbc = randn(static_cast<size_t>(B * RN), 2), dtw = randn(static_cast<size_t>(E * R), 3, 0.1f);
    auto bias = randn(static_cast<size_t>(E), 4, 0.5f, -3.f), A = randn(static_cast<size_t>(E * N), 5, 0.5f, -1.f), D = randn(static_cast<size_t>(E), 6);
    auto z = randn(static_cast<size_t>(B * E), 7), pool = randn(static_cast<size_t>(P * S), 8, 0.1f);
    std::vector<int32_t> slots;
    for (int64_t b = 0; b < B; b++) slots.push_back(int32_t((b * 7 + 3) % P));
    Tensor w = Tensor::from_f32(dtw.data(), c.wt, {E, R});
    // Reference on f32 states, and on the bf16-rounded states (for the bf16-storage run).
    auto reference = [&](std::vector<float>& rp, std::vector<float>& ry) {
      std::vector<float> row(static_cast<size_t>(RN)), delta(static_cast<size_t>(E));
      for (int64_t b = 0; b < B; b++) {
        std::copy(dbc.begin() + b * RN, dbc.begin() + (b + 1) * RN, row.begin());
        if (c.falcon)
          for (auto [o, n] : {std::pair<int64_t, int64_t>{0, R}, {R, N}, {R + N, N}})
            kr::rms_norm({1, n, n, row.data() + o, n, nullptr, nullptr, 0, false, 1e-6f, row.data() + o, n});
        kr::linear({1, E, R, row.data(), R, w.raw(), c.wt, nullptr, delta.data(), E});
        kr::selective_scan({1, E, N, u.data() + b * E, E, delta.data(), E, bias.data(), A.data(), row.data() + R, N,
                            row.data() + R + N, N, D.data(), z.data() + b * E, E, rp.data() + slots[size_t(b)] * S, ry.data() + b * E, E});
      }
    };
    std::vector<float> ref(static_cast<size_t>(B * E)), rpool = pool;
    reference(rpool, ref);
    DevBuf<float> du(u), ddbc(dbc), db(bias), dA(A), dD(D), dz(z), dp(pool), dy(static_cast<size_t>(B * E));
    DevBuf<uint16_t> dw(w.nbytes() / 2), dyh(static_cast<size_t>(B * E));
    cudaMemcpy(dw.p, w.raw(), w.nbytes(), cudaMemcpyHostToDevice);
    DevBuf<int32_t> dsl(slots);
    kc::Mamba1StepParams p{B, E, N, R, du.p, E, ddbc.p, RN, dw.p, c.wt, db.p, dA.p, dD.p, dz.p, E, c.falcon, 1e-6f, dp.p, S,
                           dsl.p, dy.p, E};
    const std::string what = "B=" + std::to_string(B) + " E=" + std::to_string(E) + " N=" + std::to_string(N) + " R=" + std::to_string(R) + " " + std::string(dtype_name(c.wt));
    kc::mamba1_step_rows(p, nullptr);
    EXPECT_LT(rel_err(dy.host(), ref), 2e-5f) << what;
    EXPECT_LT(rel_err(dp.host(), rpool), 2e-5f) << what;
    // y in bf16 (the out_proj GEMM's input): the f32 result rounded once, 2^-9 relative per element.
    dp.upload(pool);
    p.y_half = dyh.p;
    kc::mamba1_step_rows(p, nullptr);
    std::vector<float> yh(ref.size());
    const auto h16 = dyh.host();
    for (size_t i = 0; i < yh.size(); i++) yh[i] = bf16_to_f32(h16[i]);
    EXPECT_LT(rel_err(yh, ref), 4e-3f) << what << " y bf16";
    EXPECT_LT(rel_err(dp.host(), rpool), 2e-5f) << what << " y bf16";
    // bf16 state storage.
    std::vector<uint16_t> pool16(pool.size());
    std::vector<float> pool_r(pool.size()), ref_r(ref.size());
    for (size_t i = 0; i < pool.size(); i++) pool16[i] = f32_to_bf16(pool[i]), pool_r[i] = bf16_to_f32(pool16[i]);
    std::vector<float> rpool_r = pool_r;
    reference(rpool_r, ref_r);
    DevBuf<uint16_t> dp16(pool16);
    p.states = dp16.p;
    p.state_bf16 = true;
    p.y_half = nullptr;
    kc::mamba1_step_rows(p, nullptr);
    EXPECT_LT(rel_err(dy.host(), ref_r), 2e-5f) << what << " bf16 state";
    std::vector<float> got(pool.size());
    const auto s16 = dp16.host();
    for (size_t i = 0; i < got.size(); i++) got[i] = bf16_to_f32(s16[i]);
    EXPECT_LT(rel_err(got, rpool_r), 5e-3f) << what << " bf16 state";
    // The dispatcher takes this kernel for batches > 8 and accepts y_half there.
    if (B > 8) {
      dp16.upload(pool16);
      p.y_half = dyh.p;
      kc::mamba1_step(p, nullptr);
      const auto g16 = dyh.host();
      for (size_t i = 0; i < yh.size(); i++) yh[i] = bf16_to_f32(g16[i]);
      EXPECT_LT(rel_err(yh, ref_r), 4e-3f) << what << " dispatch";
    }
  }
}

// The four-channel conv step (C % 4 == 0, aligned) and its bf16 copy of the output, against the
// reference, with f32 and bf16 window storage; K = 4 and 2; and the scalar kernel's bf16 copy.
TEST(CudaKernels, ConvStepQuadAndHalfOutput) {
  SKIP_WITHOUT_GPU();
  for (auto [B, C, K, S] : {std::tuple<int64_t, int64_t, int64_t, int64_t>{64, 5376, 4, 20000}, {13, 5120, 2, 6000}, {3, 130, 4, 1001}}) {
    const int64_t xs = 2 * C + 8;  // x inside in_proj's output
    auto x = randn(static_cast<size_t>(B * xs), 1), w = randn(static_cast<size_t>(C * K), 2, 0.3f), bias = randn(static_cast<size_t>(C), 3);
    auto pool = randn(static_cast<size_t>((B + 2) * S), 4);
    std::vector<int32_t> slots;
    for (int64_t b = 0; b < B; b++) slots.push_back(int32_t(B + 1 - b));  // distinct slots, reversed
    for (bool bf : {false, true}) {
      std::vector<uint16_t> p16(pool.size());
      std::vector<float> base = pool;
      if (bf)
        for (size_t i = 0; i < pool.size(); i++) p16[i] = f32_to_bf16(pool[i]), base[i] = bf16_to_f32(p16[i]);
      std::vector<float> ref(static_cast<size_t>(B * C)), rpool = base;
      for (int64_t b = 0; b < B; b++)
        kr::causal_conv1d({1, C, K, x.data() + b * xs, xs, w.data(), bias.data(), rpool.data() + slots[size_t(b)] * S, true,
                           ref.data() + b * C, C});
      DevBuf<float> dx(x), dw(w), db(bias), dp(base), dy(static_cast<size_t>(B * C));
      DevBuf<uint16_t> dp16(p16), dyh(static_cast<size_t>(B * C));
      DevBuf<int32_t> dsl(slots);
      kc::ConvStepParams p{B, C, K, dx.p, xs, dw.p, db.p, bf ? static_cast<void*>(dp16.p) : static_cast<void*>(dp.p), S, dsl.p, true,
                           dy.p, C, bf};
      p.y_half = dyh.p;
      p.y_half_stride = C;
      kc::causal_conv1d_step(p, nullptr);
      const std::string what = "B=" + std::to_string(B) + " C=" + std::to_string(C) + " K=" + std::to_string(K) + (bf ? " bf16" : " f32");
      EXPECT_LT(rel_err(dy.host(), ref), 2e-5f) << what;
      std::vector<float> yh(ref.size()), got(pool.size());
      const auto h16 = dyh.host();
      for (size_t i = 0; i < yh.size(); i++) yh[i] = bf16_to_f32(h16[i]);
      EXPECT_LT(rel_err(yh, ref), 4e-3f) << what << " y bf16";
      if (bf) {  // the new window element is x rounded to bf16; the moved ones are bf16 already
        const auto s16 = dp16.host();
        for (size_t i = 0; i < got.size(); i++) got[i] = bf16_to_f32(s16[i]), rpool[i] = bf16_to_f32(f32_to_bf16(rpool[i]));
      } else {
        got = dp.host();
      }
      EXPECT_EQ(rel_err(got, rpool), 0.f) << what << " window (moved, not recomputed)";
    }
  }
}

// GEMM inputs produced in the weight dtype: the gated norm written as bf16, then cuBLASLt with that
// x_half, equal to the f32 path that converts inside Blas::linear (the same rounding, so the same bits).
TEST(CudaKernels, HalfInputsEqualTheConvertingPath) {
  SKIP_WITHOUT_GPU();
  const int64_t M = 64, E = 5120, N = 2560, G = 640, W = 3 * E;
  auto y = randn(static_cast<size_t>(M * E), 1), g = randn(static_cast<size_t>(M * W), 2), nw = randn(static_cast<size_t>(E), 3, 0.2f, 1.f);
  auto wf = randn(static_cast<size_t>(N * E), 4, 0.02f), h0 = randn(static_cast<size_t>(M * N), 5);
  Tensor w = Tensor::from_f32(wf.data(), DType::BF16, {N, E});
  DevBuf<float> dy(y), dg(g), dnw(nw), dyn(static_cast<size_t>(M * E)), dh1(h0), dh2(h0);
  DevBuf<uint16_t> dyh(static_cast<size_t>(M * E)), dw(static_cast<size_t>(N * E));
  cudaMemcpy(dw.p, w.raw(), w.nbytes(), cudaMemcpyHostToDevice);
  const kernels::RmsNormParams rp{M, E, G, dy.p, E, dnw.p, dg.p, W, false, 1e-5f, dyn.p, E};
  kc::rms_norm(rp, nullptr);
  kc::rms_norm_half(rp, dyh.p, DType::BF16, nullptr);
  const auto yn = dyn.host();
  const auto yh = dyh.host();
  for (size_t i = 0; i < yn.size(); i++) ASSERT_EQ(yh[i], f32_to_bf16(yn[i])) << i;
  kc::Blas blas;
  blas.reserve(M, E);
  blas.linear({M, N, E, dyn.p, E, dw.p, DType::BF16, nullptr, dh1.p, N, nullptr, 1e-5f, true}, nullptr);
  kc::LinearArgs a{M, N, E, nullptr, E, dw.p, DType::BF16, nullptr, dh2.p, N, nullptr, 1e-5f, true};
  a.x_half = dyh.p;
  blas.linear(a, nullptr);
  EXPECT_LT(rel_err(dh2.host(), dh1.host()), 1e-6f);  // the same plan on the same bits (1e-6: in case of a split-K reduction order)
  a.M = 4;  // the GEMV path takes f32 x only
  EXPECT_THROW(blas.linear(a, nullptr), Error);
}

// Blas::gemm_batched against a double-precision loop on the same bf16-rounded operands, for every
// transpose combination, padded leading dimensions, strides between batches, beta = 1, and sizes
// that are not tile multiples (bf16 needs leading dimensions that are multiples of 8 elements).
TEST(CudaKernels, GemmBatchedMatchesLoop) {
  SKIP_WITHOUT_GPU();
  kc::Blas blas;
  const int64_t M = 40, N = 24, K = 56, batch = 3;
  for (int ta = 0; ta < 2; ta++)
    for (int tb = 0; tb < 2; tb++) {
      const int64_t lda = (ta ? M : K) + 8, ldb = (tb ? K : N) + 16, ldc = N + 4;
      const int64_t sa = (ta ? K : M) * lda + 8, sb = (tb ? N : K) * ldb, sc = M * ldc + 12;
      auto a = randn(static_cast<size_t>(batch * sa), 31 + ta), b = randn(static_cast<size_t>(batch * sb), 33 + tb);
      auto c0 = randn(static_cast<size_t>(batch * sc), 35);
      std::vector<uint16_t> a16(a.size()), b16(b.size());
      for (size_t i = 0; i < a.size(); i++) a16[i] = f32_to_bf16(a[i]), a[i] = bf16_to_f32(a16[i]);
      for (size_t i = 0; i < b.size(); i++) b16[i] = f32_to_bf16(b[i]), b[i] = bf16_to_f32(b16[i]);
      std::vector<float> ref = c0;
      for (int64_t q = 0; q < batch; q++)
        for (int64_t i = 0; i < M; i++)
          for (int64_t j = 0; j < N; j++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++)
              acc += double(a[size_t(q * sa + (ta ? k * lda + i : i * lda + k))]) * double(b[size_t(q * sb + (tb ? j * ldb + k : k * ldb + j))]);
            ref[size_t(q * sc + i * ldc + j)] += float(acc);  // beta = 1
          }
      DevBuf<uint16_t> da(a16), db(b16);
      DevBuf<float> dc(c0);
      kc::BatchedGemm g{M, N, K, batch, da.p, lda, sa, ta == 1, db.p, ldb, sb, tb == 1, dc.p, ldc, sc};
      g.beta = 1.f;
      blas.gemm_batched(g, nullptr);
      const auto got = dc.host();
      float err = 0.f;
      for (size_t i = 0; i < got.size(); i++) err = std::max(err, std::fabs(got[i] - ref[i]));
      // bf16 products are exact in f32; f32 sums of 56 terms of size ~1 (|c| ~ 8): ~1e-5. 2e-3 leaves room
      // for the tensor cores' accumulation order; a wrong transpose or stride gives errors of order 1.
      EXPECT_LT(err, 2e-3f) << "trans_a " << ta << " trans_b " << tb;
    }
}

struct SsdCase { int64_t L, H, P, G, N, Q; };

class CudaSsd : public ::testing::TestWithParam<SsdCase> {};

TEST_P(CudaSsd, ChunkedPrefillMatchesRecurrence) {
  SKIP_WITHOUT_GPU();
  const auto [L, H, P, G, N, Q] = GetParam();
  const int64_t HP = H * P, GN = G * N;
  auto x = randn(static_cast<size_t>(L * HP), 1), dt = randn(static_cast<size_t>(L * H), 2), bias = randn(static_cast<size_t>(H), 3, 0.5f, -3.f);
  auto A = randn(static_cast<size_t>(H), 4, 0.5f, -2.f), Bm = randn(static_cast<size_t>(L * GN), 5), Cm = randn(static_cast<size_t>(L * GN), 6);
  auto D = randn(static_cast<size_t>(H), 7), st = randn(static_cast<size_t>(HP * N), 8, 0.1f);
  for (auto& a : A) a = -std::fabs(a);
  std::vector<float> ref(static_cast<size_t>(L * HP)), rst = st;
  kernels::SsdParams p{L, H, P, G, N, Q, x.data(), HP, dt.data(), H, bias.data(), A.data(), Bm.data(), GN, Cm.data(), GN,
                       D.data(), 0.f, INFINITY, rst.data(), ref.data(), HP};
  kr::ssd_recurrent(p);
  DevBuf<float> dx(x), ddt(dt), db(bias), dA(A), dB(Bm), dC(Cm), dD(D), ds(st), dy(static_cast<size_t>(L * HP));
  DevBuf<float> work(static_cast<size_t>(kc::ssd_workspace_floats(L, H, P, G, N, Q, kc::SsdMath::BF16)));
  kc::Blas blas;
  kernels::SsdParams dp{L, H, P, G, N, Q, dx.p, HP, ddt.p, H, db.p, dA.p, dB.p, GN, dC.p, GN, dD.p, 0.f, INFINITY, ds.p, dy.p, HP};
  // TF32 (the bf16/f16 models' path): operands keep 10 of f32's 23 mantissa bits, so each product
  // carries ~2^-11 relative rounding; summed over hundreds of terms of mixed sign that stays ~1e-3.
  // BF16 (cuBLASLt batched GEMMs, the bf16/f16 models' default): Δ·x, B, C, the decayed CB and the
  // entering states are rounded to bf16 (8-bit mantissa, 2^-9 relative each) before f32-accumulated
  // products; measured ~3-5e-3 of max |y|, bounded at 2e-2. Shapes ssd_bf16_ok rejects run the f32
  // path and are held to its bound. The final state accumulates in f32 from bf16-rounded operands.
  // F32 runs last: the step check below continues from its state.
  const bool bf16_runs = kc::ssd_bf16_ok(P, N, Q);
  for (auto [math, tol] : {std::pair{kc::SsdMath::BF16, bf16_runs ? 2e-2f : 5e-5f}, std::pair{kc::SsdMath::TF32, 3e-3f},
                           std::pair{kc::SsdMath::F32, 5e-5f}}) {
    ds.upload(st);
    kc::ssd_prefill(dp, work.p, nullptr, math, &blas);
    const float ey = rel_err(dy.host(), ref), es = rel_err(ds.host(), rst);
    const char* name = math == kc::SsdMath::TF32 ? "tf32" : math == kc::SsdMath::F32 ? "f32" : bf16_runs ? "bf16" : "bf16->f32";
    std::printf("[ ssd ] L=%lld H=%lld P=%lld N=%lld %s: rel err y %.2g state %.2g\n", (long long)L, (long long)H,
                (long long)P, (long long)N, name, ey, es);
    EXPECT_LT(ey, tol);
    EXPECT_LT(es, tol);
    if (math != kc::SsdMath::BF16 || !bf16_runs) continue;
    // The BF16 path's fused epilogue: Mamba-2's gated RMSNorm (y·silu(z), normalised over groups of
    // `grp` columns, times the weight) written in bf16, against the reference norm of the reference y.
    // Same bound: the norm adds one bf16 rounding of the output (2^-9 relative).
    const int64_t grp = HP % 2 == 0 ? HP / 2 : HP;
    auto z = randn(static_cast<size_t>(L * HP), 13), nw = randn(static_cast<size_t>(HP), 14, 0.3f, 1.f);
    std::vector<float> refn(static_cast<size_t>(L * HP));
    kr::rms_norm({L, HP, grp, ref.data(), HP, nw.data(), z.data(), HP, false, 1e-5f, refn.data(), HP});
    DevBuf<float> dz(z), dnw(nw);
    DevBuf<uint16_t> dyh(static_cast<size_t>(L * HP));
    const kc::SsdGatedNorm gn{dz.p, HP, dnw.p, grp, false, false, 1e-5f, dyh.p, DType::BF16, HP};
    ASSERT_TRUE(kc::ssd_norm_fuses(dp, math, gn));
    ds.upload(st);
    kc::ssd_prefill(dp, work.p, nullptr, math, &blas, &gn);
    std::vector<float> got;
    for (uint16_t v : dyh.host()) got.push_back(bf16_to_f32(v));
    const float en = rel_err(got, refn);
    std::printf("[ ssd ] L=%lld H=%lld P=%lld N=%lld bf16 + gated norm: rel err %.2g\n", (long long)L, (long long)H,
                (long long)P, (long long)N, en);
    EXPECT_LT(en, tol);
    EXPECT_LT(rel_err(ds.host(), rst), tol);
    // z and dt read in bf16 (in_proj's output kept in the weight dtype), against the reference run
    // on the rounded z and dt: the same bound.
    std::vector<uint16_t> z16(z.size()), dt16(dt.size());
    std::vector<float> zr(z.size()), dtr(dt.size()), refr(ref.size()), rstr = st, refnr(refn.size());
    for (size_t i = 0; i < z.size(); i++) z16[i] = f32_to_bf16(z[i]), zr[i] = bf16_to_f32(z16[i]);
    for (size_t i = 0; i < dt.size(); i++) dt16[i] = f32_to_bf16(dt[i]), dtr[i] = bf16_to_f32(dt16[i]);
    kr::ssd_recurrent({L, H, P, G, N, Q, x.data(), HP, dtr.data(), H, bias.data(), A.data(), Bm.data(), GN, Cm.data(), GN,
                       D.data(), 0.f, INFINITY, rstr.data(), refr.data(), HP});
    kr::rms_norm({L, HP, grp, refr.data(), HP, nw.data(), zr.data(), HP, false, 1e-5f, refnr.data(), HP});
    DevBuf<uint16_t> dz16(z16), ddt16(dt16);
    kc::SsdGatedNorm hn = gn;
    hn.half_in = DType::BF16, hn.z_half = dz16.p, hn.dt_half = ddt16.p;
    ASSERT_TRUE(kc::ssd_norm_fuses(dp, math, hn));
    ds.upload(st);
    kc::ssd_prefill(dp, work.p, nullptr, math, &blas, &hn);
    got.clear();
    for (uint16_t v : dyh.host()) got.push_back(bf16_to_f32(v));
    const float eh = rel_err(got, refnr);
    std::printf("[ ssd ] L=%lld H=%lld P=%lld N=%lld bf16 + gated norm, bf16 z and dt: rel err %.2g\n", (long long)L,
                (long long)H, (long long)P, (long long)N, eh);
    EXPECT_LT(eh, tol);
    EXPECT_LT(rel_err(ds.host(), rstr), tol);
  }
  // Step kernel: one more token for the same sequence in slot 0, against one recurrence step.
  auto x1 = randn(static_cast<size_t>(HP), 9), dt1 = randn(static_cast<size_t>(H), 10), B1 = randn(static_cast<size_t>(GN), 11), C1 = randn(static_cast<size_t>(GN), 12);
  std::vector<float> ref1(static_cast<size_t>(HP));
  kr::ssd_recurrent({1, H, P, G, N, Q, x1.data(), HP, dt1.data(), H, bias.data(), A.data(), B1.data(), GN, C1.data(), GN,
                     D.data(), 0.f, INFINITY, rst.data(), ref1.data(), HP});
  DevBuf<float> dx1(x1), ddt1(dt1), dB1(B1), dC1(C1), dy1(static_cast<size_t>(HP));
  DevBuf<int32_t> slot(std::vector<int32_t>{0});
  kc::ssd_step({1, H, P, G, N, dx1.p, HP, ddt1.p, H, db.p, dA.p, dD.p, dB1.p, GN, dC1.p, GN, 0.f, INFINITY, ds.p, HP * N, slot.p,
                dy1.p, HP}, nullptr);
  EXPECT_LT(rel_err(dy1.host(), ref1), 5e-5f);
  EXPECT_LT(rel_err(ds.host(), rst), 5e-5f);
}

INSTANTIATE_TEST_SUITE_P(Shapes, CudaSsd,
                         ::testing::Values(SsdCase{300, 8, 64, 1, 128, 256},   // mamba2-2.7b head shape, 2 chunks
                                           SsdCase{64, 16, 64, 8, 128, 256},   // Codestral groups
                                           SsdCase{19, 3, 5, 3, 7, 8},         // odd sizes, ragged last chunk
                                           SsdCase{130, 4, 70, 2, 40, 64},     // P, N not tile multiples
                                           SsdCase{200, 6, 32, 2, 16, 64},     // bf16 path: groups, ragged last chunk
                                           SsdCase{2048, 80, 64, 1, 128, 128}));  // mamba2-2.7b prefill block

TEST(CudaKernels, SamplingMatchesHostRule) {
  SKIP_WITHOUT_GPU();
  const int64_t B = 6, V = 50280;
  auto l = randn(static_cast<size_t>(B * V), 1, 3.f);
  struct Cfg { float t; int k; float p; };
  for (Cfg c : {Cfg{0.f, 0, 1.f}, Cfg{1.f, 0, 1.f}, Cfg{0.8f, 40, 1.f}, Cfg{1.f, 0, 0.9f}, Cfg{0.7f, 50, 0.8f}}) {
    DevBuf<float> dl(l);
    DevBuf<int32_t> out(static_cast<size_t>(B));
    kc::sample(dl.p, B, V, c.t, c.k, c.p, 42, 7, out.p, nullptr);
    auto got = out.host();
    for (int64_t b = 0; b < B; b++)
      EXPECT_EQ(got[size_t(b)], sample_logits(l.data() + b * V, V, {c.t, c.k, c.p, 42}, 7, uint64_t(b)))
          << "row " << b << " T=" << c.t << " k=" << c.k << " p=" << c.p;
  }
}

}  // namespace

// The whole Mamba-1 layer of batch-1 decode in one kernel (decode_layer.cu) against the reference
// kernels run one after another: RMSNorm, in_proj, conv step, x_proj, (FalconMamba's δ/B/C norms),
// dt_proj, one scan step, out_proj + residual. Shapes: mamba-2.8b in bf16 (every out_proj row of a
// block prefetched into shared memory) and in f32 (only part of them fit: the rest stream from
// global), mamba-130m in f32 with biases, FalconMamba's norms and bf16 states, and an odd one
// (N = 7, K = 3, dt_rank 13, f16). Two steps per case (the grid barrier and the states carry over),
// the second repeated from the same inputs to check the result is bit-identical.
TEST(CudaKernels, Mamba1LayerFused) {
  SKIP_WITHOUT_GPU();
  struct Case { int64_t D, E, N, R, K; DType t; bool falcon, bias, sbf; };
  for (const Case c : {Case{2560, 5120, 16, 160, 4, DType::BF16, false, false, false}, Case{2560, 5120, 16, 160, 4, DType::F32, false, false, false},
                       Case{768, 1536, 16, 48, 4, DType::F32, true, true, true}, Case{264, 520, 7, 13, 3, DType::F16, false, true, false}}) {
    const int64_t D = c.D, E = c.E, N = c.N, R = c.R, K = c.K, RN = R + 2 * N;
    const int64_t coff = 5, soff = coff + (K - 1) * E, S = soff + E * N + 3, slot = 2;
    SCOPED_TRACE("D " + std::to_string(D) + " dtype " + std::string(dtype_name(c.t)) + (c.sbf ? " bf16 state" : ""));
    Tensor win = Tensor::from_f32(randn(size_t(2 * E * D), 11, 1.f / std::sqrt(float(D))).data(), c.t, {2 * E, D});
    Tensor wx = Tensor::from_f32(randn(size_t(RN * E), 12, 1.f / std::sqrt(float(E))).data(), c.t, {RN, E});
    Tensor wdt = Tensor::from_f32(randn(size_t(E * R), 13, 1.f / std::sqrt(float(R))).data(), c.t, {E, R});
    Tensor wout = Tensor::from_f32(randn(size_t(D * E), 14, 1.f / std::sqrt(float(E))).data(), c.t, {D, E});
    auto h = randn(size_t(D), 15), nw = randn(size_t(D), 16, 0.1f, 1.f), cw = randn(size_t(E * K), 17, 0.3f);
    auto cb = randn(size_t(E), 18, 0.1f), dtb = randn(size_t(E), 19, 0.5f, -3.f), A = randn(size_t(E * N), 20, 0.5f, -1.f);
    auto Dv = randn(size_t(E), 21), inb = randn(size_t(2 * E), 22, 0.1f), outb = randn(size_t(D), 23, 0.1f);
    auto pool = randn(size_t(3 * S), 24, 0.3f);
    if (c.sbf)
      for (float& v : pool) v = bf16_to_f32(f32_to_bf16(v));
    // Reference: two steps.
    std::vector<float> rh = h, rpool = pool, rhs[2];
    for (int step = 0; step < 2; step++) {
      std::vector<float> xn(static_cast<size_t>(D)), proj(static_cast<size_t>(2 * E)), xc(static_cast<size_t>(E)), dbc(static_cast<size_t>(RN)), delta(static_cast<size_t>(E)), y(static_cast<size_t>(E)), out(static_cast<size_t>(D));
      kr::rms_norm({1, D, D, rh.data(), D, nw.data(), nullptr, 0, false, 1e-5f, xn.data(), D});
      kr::linear({1, 2 * E, D, xn.data(), D, win.raw(), c.t, c.bias ? inb.data() : nullptr, proj.data(), 2 * E});
      kr::causal_conv1d({1, E, K, proj.data(), 2 * E, cw.data(), cb.data(), rpool.data() + slot * S + coff, true, xc.data(), E});
      kr::linear({1, RN, E, xc.data(), E, wx.raw(), c.t, nullptr, dbc.data(), RN});
      if (c.falcon)
        for (auto [o, n] : {std::pair<int64_t, int64_t>{0, R}, {R, N}, {R + N, N}})
          kr::rms_norm({1, n, n, dbc.data() + o, n, nullptr, nullptr, 0, false, 1e-6f, dbc.data() + o, n});
      kr::linear({1, E, R, dbc.data(), RN, wdt.raw(), c.t, nullptr, delta.data(), E});
      kr::selective_scan({1, E, N, xc.data(), E, delta.data(), E, dtb.data(), A.data(), dbc.data() + R, N, dbc.data() + R + N, N,
                          Dv.data(), proj.data() + E, 2 * E, rpool.data() + slot * S + soff, y.data(), E});
      kr::linear({1, D, E, y.data(), E, wout.raw(), c.t, c.bias ? outb.data() : nullptr, out.data(), D});
      for (int64_t i = 0; i < D; i++) rh[size_t(i)] += out[size_t(i)];
      rhs[step] = rh;
    }
    auto upload = [](const Tensor& t) {
      void* p = nullptr;
      EXPECT_EQ(cudaMalloc(&p, t.nbytes()), cudaSuccess);
      cudaMemcpy(p, t.raw(), t.nbytes(), cudaMemcpyHostToDevice);
      return p;
    };
    void *din = upload(win), *dx = upload(wx), *ddt = upload(wdt), *dout = upload(wout);
    DevBuf<float> dh(h), dnw(nw), dcw(cw), dcb(cb), ddtb(dtb), dA(A), dD(Dv), dinb(inb), doutb(outb);
    DevBuf<float> dxc(static_cast<size_t>(E)), dz(static_cast<size_t>(E)), dy(static_cast<size_t>(E)), dpart(size_t(kc::mamba1_layer_part_floats(E, N, R)));
    DevBuf<unsigned> dbar(1);
    DevBuf<int32_t> dsl(std::vector<int32_t>{int32_t(slot)});
    std::vector<uint16_t> pool16(pool.size());
    for (size_t i = 0; i < pool.size(); i++) pool16[i] = f32_to_bf16(pool[i]);
    DevBuf<float> dp(pool);
    DevBuf<uint16_t> dp16(pool16);
    kc::Mamba1LayerParams p{D, E, N, R, K, dh.p, dnw.p, 1e-5f, din, c.bias ? dinb.p : nullptr, dcw.p, dcb.p, dx, ddt, ddtb.p, dA.p, dD.p,
                            c.falcon, 1e-6f, dout, c.bias ? doutb.p : nullptr, c.t, c.sbf ? static_cast<void*>(dp16.p) : dp.p, S, dsl.p,
                            coff, soff, c.sbf, dxc.p, dz.p, dy.p, dpart.p, dbar.p};
    const std::string why = kc::mamba1_layer_unsupported(p);
    if (!why.empty()) {  // e.g. a GPU before compute capability 9.0
      for (void* q : {din, dx, ddt, dout}) cudaFree(q);
      GTEST_SKIP() << "fused layer kernel not available here: " << why;
    }
    cudaMemset(dbar.p, 0, 4);
    kc::mamba1_layer_step(p, nullptr);
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const auto h1 = dh.host();
    EXPECT_LT(rel_err(h1, rhs[0]), 2e-5f) << "step 1";
    const auto p1 = c.sbf ? std::vector<float>() : dp.host();
    const auto p1h = c.sbf ? dp16.host() : std::vector<uint16_t>();
    cudaMemset(dbar.p, 0, 4);
    kc::mamba1_layer_step(p, nullptr);
    const auto h2 = dh.host();
    EXPECT_LT(rel_err(h2, rhs[1]), c.sbf ? 5e-3f : 2e-5f) << "step 2";
    std::vector<float> got(pool.size());
    if (c.sbf) {
      const auto g16 = dp16.host();
      for (size_t i = 0; i < got.size(); i++) got[i] = bf16_to_f32(g16[i]);
    } else {
      got = dp.host();
    }
    EXPECT_LT(rel_err(got, rpool), c.sbf ? 1e-2f : 2e-5f) << "states after two steps";
    // The second step again, from the same inputs: bit-identical.
    dh.upload(h1);
    if (c.sbf) cudaMemcpy(dp16.p, p1h.data(), p1h.size() * 2, cudaMemcpyHostToDevice);
    else dp.upload(p1);
    cudaMemset(dbar.p, 0, 4);
    kc::mamba1_layer_step(p, nullptr);
    EXPECT_EQ(dh.host(), h2) << "rerun of step 2";
    if (std::getenv("SSM_M1L_PROF")) {  // measurement aid: per-phase times of this kernel (not a test)
      int dev = 0, sms = 0;
      cudaGetDevice(&dev);
      cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
      DevBuf<unsigned long long> prof(static_cast<size_t>(sms) * 8);
      p.prof = prof.p;
      std::vector<double> mean(8, 0.0), mx(8, 0.0);
      const int reps = 50;
      for (int rep = 0; rep < reps; rep++) {
        cudaMemset(dbar.p, 0, 4);
    kc::mamba1_layer_step(p, nullptr);
        const auto t = prof.host();
        unsigned long long t0 = ~0ull;
        for (int b = 0; b < sms; b++) t0 = std::min(t0, t[size_t(b) * 8]);
        for (int b = 0; b < sms; b++)
          for (int k = 0; k < 8; k++) {
            const double d = double(t[size_t(b) * 8 + size_t(k)] - t0) / 1000.0;
            mean[size_t(k)] += d / (sms * reps);
            mx[size_t(k)] = std::max(mx[size_t(k)], d);
          }
      }
      for (int k = 0; k < 8; k++) std::printf("  stamp %d: mean %.2f us, max %.2f us after the first block's start\n", k, mean[size_t(k)], mx[size_t(k)]);
      p.prof = nullptr;
    }
    for (void* q : {din, dx, ddt, dout}) cudaFree(q);
  }
}
