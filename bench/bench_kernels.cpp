// Micro-benchmarks of the CPU kernels (Google Benchmark), at the shapes of published models:
//   build/bin/bench_kernels [--benchmark_filter=Gemv] [SSM_THREADS=N]
// GEMV (decode) reports bytes of weights read per second (the decode floor is the memory's read
// bandwidth, bench/stream_read.cpp); the prefill GEMMs report FLOP/s for oneDNN f32, oneDNN bf16 and
// OpenBLAS sgemm side by side (SSM_CPU_GEMM picks one inside a process, so each runs in its own
// process: see scripts/bench_kernels.sh); scans and the conv report elements per second.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.hpp"
#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

using namespace ssm;
using namespace ssm::kernels;

namespace {

std::vector<float> randv(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(g);
  return v;
}

// Weights of one dtype, n values; several copies so decode-sized matrices are read from memory,
// not from the cache (the copies together exceed any L3 here).
struct Weights {
  DType t;
  int64_t n, copies;
  std::vector<uint8_t> raw;
  std::vector<uint16_t> scale;  // q8 block scales, f16 bits
  Weights(DType t_, int64_t N, int64_t K, bool from_memory) : t(t_), n(N * K) {
    const size_t es = t == DType::I8 ? 1 : dtype_size(t);
    copies = from_memory ? std::max<int64_t>(1, (int64_t(256) << 20) / int64_t(n * es)) : 1;
    raw.resize(size_t(n * copies) * es);
    uint32_t g = 1;  // LCG bytes with the top bits clear: small finite values in every dtype
    for (auto& b : raw) b = uint8_t((g = g * 1664525u + 1013904223u) >> 26);
    if (t == DType::I8) scale.assign(size_t(N * (K / kQ8Block) * copies), f32_to_f16(0.01f));
  }
  const void* at(int64_t i) const { return raw.data() + size_t(i % copies) * size_t(n) * (t == DType::I8 ? 1 : dtype_size(t)); }
  const uint16_t* sc(int64_t i, int64_t N, int64_t K) const {
    return t == DType::I8 ? scale.data() + size_t(i % copies) * size_t(N * (K / kQ8Block)) : nullptr;
  }
};

// from_memory = false: one copy, read from the cache after the first pass (the kernel's compute
// rate; "GemvHot" rows, e.g. with SSM_THREADS=1 on an L2-sized matrix).
void BM_Gemv(benchmark::State& st, DType t, int64_t N, int64_t K, bool from_memory) {
  Weights w(t, N, K, from_memory);
  auto x = randv(size_t(K), 2);
  std::vector<float> y(static_cast<size_t>(N));
  int64_t i = 0;
  for (auto _ : st) {
    LinearParams p{1, N, K, x.data(), K, w.at(i), t, nullptr, y.data(), N, w.sc(i, N, K)};
    cpu::linear(p);
    benchmark::DoNotOptimize(y.data());
    i++;
  }
  const double bytes = double(N * K) * (t == DType::I8 ? 1.0 + 2.0 / kQ8Block : double(dtype_size(t)));
  st.counters["GB/s"] = benchmark::Counter(bytes * double(st.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

void BM_Gemm(benchmark::State& st, DType t, int64_t M, int64_t N, int64_t K) {
  Weights w(t, N, K, false);  // prefill is compute bound: one copy
  auto x = randv(size_t(M * K), 2);
  std::vector<float> y(static_cast<size_t>(M * N));
  for (auto _ : st) {
    LinearParams p{M, N, K, x.data(), K, w.at(0), t, nullptr, y.data(), N, w.sc(0, N, K)};
    cpu::linear(p);
    benchmark::DoNotOptimize(y.data());
  }
  const char* g = std::getenv("SSM_CPU_GEMM");
  st.SetLabel(std::string("SSM_CPU_GEMM=") + (g ? g : "f32"));
  st.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(M * N * K) * double(st.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

void BM_Scan(benchmark::State& st, int64_t L, int64_t E, int64_t N) {
  auto u = randv(size_t(L * E), 1), dl = randv(size_t(L * E), 2), bias = randv(size_t(E), 3, 0.5f);
  auto A = randv(size_t(E * N), 4), B = randv(size_t(L * N), 5), C = randv(size_t(L * N), 6);
  auto D = randv(size_t(E), 7), z = randv(size_t(L * E), 8), h = randv(size_t(E * N), 9, 0.1f);
  for (auto& a : A) a = -std::abs(a) - 0.1f;
  std::vector<float> y(static_cast<size_t>(L * E));
  for (auto _ : st) {
    ScanParams p{L, E, N, u.data(), E, dl.data(), E, bias.data(), A.data(), B.data(), N, C.data(), N, D.data(),
                 z.data(), E, h.data(), y.data(), E};
    cpu::selective_scan(p);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["Mstate-updates/s"] =
      benchmark::Counter(double(L * E * N) * double(st.iterations()) / 1e6, benchmark::Counter::kIsRate);
}

void BM_Ssd(benchmark::State& st, int64_t L, int64_t H, int64_t P, int64_t N, int64_t Q) {
  auto x = randv(size_t(L * H * P), 1), dt = randv(size_t(L * H), 2), bias = randv(size_t(H), 3, 0.5f);
  auto A = randv(size_t(H), 4), B = randv(size_t(L * N), 5), C = randv(size_t(L * N), 6), D = randv(size_t(H), 7);
  for (auto& a : A) a = -std::abs(a) - 0.1f;
  std::vector<float> S(static_cast<size_t>(H * P * N)), y(size_t(L * H * P));
  for (auto _ : st) {
    SsdParams p{L, H, P, 1, N, Q, x.data(), H * P, dt.data(), H, bias.data(), A.data(), B.data(), N, C.data(), N,
                D.data(), 0.f, 1e30f, S.data(), y.data(), H * P};
    if (L == 1) cpu::ssd_step(p);
    else cpu::ssd_chunked(p);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["Mstate-updates/s"] =
      benchmark::Counter(double(L * H * P * N) * double(st.iterations()) / 1e6, benchmark::Counter::kIsRate);
}

void BM_Conv(benchmark::State& st, int64_t L, int64_t C, int64_t K) {
  auto x = randv(size_t(L * C), 1), w = randv(size_t(C * K), 2), b = randv(size_t(C), 3), s = randv(size_t((K - 1) * C), 4);
  std::vector<float> y(static_cast<size_t>(L * C));
  for (auto _ : st) {
    ConvParams p{L, C, K, x.data(), C, w.data(), b.data(), s.data(), true, y.data(), C};
    cpu::causal_conv1d(p);
    benchmark::DoNotOptimize(y.data());
  }
  st.counters["Melem/s"] = benchmark::Counter(double(L * C) * double(st.iterations()) / 1e6, benchmark::Counter::kIsRate);
}

// mamba-130m: d_model 768, d_inner 1536, dt_rank 48, N 16; mamba-1.4b: 2048, 4096, 128, 16.
// mamba2-130m: 24 heads of 64, N 128, chunk 256.
const struct { const char* name; int64_t N, K; } kGemv[] = {
    {"130m_in_proj", 3072, 768}, {"130m_out_proj", 768, 1536}, {"130m_lm_head", 50280, 768},
    {"1.4b_in_proj", 8192, 2048}, {"1.4b_out_proj", 2048, 4096}, {"1.4b_x_proj", 160, 4096}};
const struct { const char* name; int64_t M, N, K; } kGemm[] = {
    {"130m_in_proj", 512, 3072, 768}, {"130m_lm_head", 512, 50280, 768},
    {"1.4b_in_proj", 512, 8192, 2048}, {"1.4b_out_proj", 512, 2048, 4096}, {"1.4b_x_proj", 512, 160, 4096}};

int reg = [] {
  const std::pair<const char*, DType> types[] = {{"f32", DType::F32}, {"bf16", DType::BF16}, {"f16", DType::F16}, {"q8", DType::I8}};
  for (auto& g : kGemv)
    for (auto [tn, t] : types)
      benchmark::RegisterBenchmark((std::string("Gemv/") + g.name + "/" + tn).c_str(), BM_Gemv, t, g.N, g.K, true)->UseRealTime();
  for (auto [tn, t] : types) {  // 0.6-2.6 MB and 2.7-9.4 MB: L2/L3, rows of 4096 and of 768
    benchmark::RegisterBenchmark((std::string("GemvHot/1.4b_x_proj/") + tn).c_str(), BM_Gemv, t, 160, 4096, false)->UseRealTime();
    benchmark::RegisterBenchmark((std::string("GemvHot/130m_in_proj/") + tn).c_str(), BM_Gemv, t, 3072, 768, false)->UseRealTime();
  }
  for (auto& g : kGemm)
    for (auto [tn, t] : types)
      benchmark::RegisterBenchmark((std::string("Gemm/") + g.name + "/" + tn).c_str(), BM_Gemm, t, g.M, g.N, g.K)->UseRealTime();
  benchmark::RegisterBenchmark("Scan/130m_prefill512", BM_Scan, 512, 1536, 16)->UseRealTime();
  benchmark::RegisterBenchmark("Scan/130m_step", BM_Scan, 1, 1536, 16)->UseRealTime();
  benchmark::RegisterBenchmark("Ssd/mamba2_130m_prefill512", BM_Ssd, 512, 24, 64, 128, 256)->UseRealTime();
  benchmark::RegisterBenchmark("Ssd/mamba2_130m_step", BM_Ssd, 1, 24, 64, 128, 256)->UseRealTime();
  benchmark::RegisterBenchmark("Conv/130m_prefill512", BM_Conv, 512, 1536, 4)->UseRealTime();
  benchmark::RegisterBenchmark("Conv/130m_step", BM_Conv, 1, 1536, 4)->UseRealTime();
  return 0;
}();

}  // namespace

BENCHMARK_MAIN();
