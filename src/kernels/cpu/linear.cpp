// CPU linear y = x·Wᵀ + b. Decode-sized products (M <= kGemvMaxRows) take the fused-conversion GEMV;
// larger ones go through oneDNN's matmul, which on this project's machines ran 2.5-4x faster than
// OpenBLAS sgemm at the prefill shapes (docs/cpu.md has the measurement; OpenBLAS 0.3.21 has no
// kernel for newer AVX-512 cores and falls back to its AVX2 one).
//
// Precision: by default every GEMM runs in f32 (oneDNN never drops to bf16 unless asked), so f32
// checkpoints give f32 results and bf16/f16/int8 weights are widened exactly to f32 panel by panel
// first (memory keeps the checkpoint's dtype). SSM_CPU_GEMM=bf16 instead feeds bf16 weights to a
// bf16 x bf16 -> f32 matmul with the activations rounded to bf16 (what llama.cpp and transformers'
// bf16 runs do): about twice the speed, with the error documented in docs/numerics.md.
// SSM_CPU_GEMM=openblas keeps the OpenBLAS sgemm path, for the side-by-side measurement.
#include <cblas.h>
#include <dnnl.hpp>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

namespace ssm::kernels::cpu {

namespace {

using dt = dnnl::memory::data_type;

dnnl::engine& engine() {
  static dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}

enum class Gemm { F32, BF16, OpenBlas };
Gemm gemm_mode() {
  static const Gemm g = [] {
    const char* e = std::getenv("SSM_CPU_GEMM");
    if (!e || !*e || std::strcmp(e, "f32") == 0) return Gemm::F32;
    if (std::strcmp(e, "bf16") == 0) return Gemm::BF16;
    if (std::strcmp(e, "openblas") == 0) return Gemm::OpenBlas;
    throw Error(std::string("SSM_CPU_GEMM='") + e + "': expected f32 (default), bf16 or openblas");
  }();
  return g;
}

// One matmul primitive per (shape, strides, dtype); oneDNN JIT-compiles each, so they are kept.
// A (M, K) with strides (ar, ac), B (K, N) with strides (br, bc), C (M, N) with row stride cr.
struct Key {
  int64_t M, N, K, ar, ac, br, bc, cr;
  dt type;
  bool operator<(const Key& o) const {
    return std::tie(M, N, K, ar, ac, br, bc, cr, type) < std::tie(o.M, o.N, o.K, o.ar, o.ac, o.br, o.bc, o.cr, o.type);
  }
};

std::shared_ptr<dnnl::matmul> primitive(const Key& k) {
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<dnnl::matmul>> cache;
  std::lock_guard<std::mutex> lk(mu);
  auto it = cache.find(k);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 512) cache.clear();  // prompts of many different lengths: start over
  using md = dnnl::memory::desc;
  const md src({k.M, k.K}, k.type, {k.ar, k.ac});
  const md wei({k.K, k.N}, k.type, {k.br, k.bc});
  const md dst({k.M, k.N}, dt::f32, {k.cr, 1});
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), engine());
  return cache.emplace(k, std::make_shared<dnnl::matmul>(pd)).first->second;
}

// C = A·B (see Key for the layouts), A and B of `type`, C f32. Not from inside a parallel region:
// a primitive's split of the work is fixed for the thread count it was made with.
void run_matmul(const Key& k, const void* a, const void* b, float* c) {
  const auto mm = primitive(k);
  using md = dnnl::memory::desc;
  auto& e = engine();
  dnnl::memory src(md({k.M, k.K}, k.type, {k.ar, k.ac}), e, const_cast<void*>(a));
  dnnl::memory wei(md({k.K, k.N}, k.type, {k.br, k.bc}), e, const_cast<void*>(b));
  dnnl::memory dst(md({k.M, k.N}, dt::f32, {k.cr, 1}), e, c);
  thread_local dnnl::stream st(e);
  mm->execute(st, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
  st.wait();
}

// y (M, N; stride ys) = x (M, K; stride xs) · W(N, K; row stride ws)ᵀ, all of `type` but y (f32).
void matmul(int64_t M, int64_t N, int64_t K, const void* x, int64_t xs, const void* w, int64_t ws, float* y,
            int64_t ys, dt type) {
  if (type == dt::f32 && gemm_mode() == Gemm::OpenBlas) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.f, static_cast<const float*>(x),
                int(xs), static_cast<const float*>(w), int(ws), 0.f, y, int(ys));
    return;
  }
  // W (N, K) row-major is Wᵀ (K, N) with strides (1, ws).
  run_matmul(Key{M, N, K, xs, 1, 1, ws, ys, type}, x, w, y);
}

// f32 -> bf16, round to nearest even (NaN kept a NaN).
inline uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

}  // namespace

// OpenBLAS serves only the small products inside the pool's jobs (kernels/cpu/ssd.cpp): one thread
// each, unless it is the measured GEMM (SSM_CPU_GEMM=openblas).
static void apply_blas_threads() { openblas_set_num_threads(gemm_mode() == Gemm::OpenBlas ? num_threads() : 1); }

void init_blas_threads() {
  static const bool once = (apply_blas_threads(), true);
  (void)once;
}

void set_threads(int n) {
  set_num_threads(n);
  omp_set_num_threads(num_threads());
  apply_blas_threads();
}

void linear(const LinearParams& p) {
  if (p.M == 0 || p.N == 0) return;
  init_blas_threads();
  // Decode-sized products are bandwidth bound: fused-conversion GEMV over the thread pool.
  if (p.M <= kGemvMaxRows) {
    gemv(p);
    return;
  }
  if (p.w_dtype == DType::F32) {
    matmul(p.M, p.N, p.K, p.x, p.x_stride, p.w, p.K, p.y, p.y_stride, dt::f32);
  } else if (p.w_dtype == DType::BF16 && gemm_mode() == Gemm::BF16) {
    thread_local std::vector<uint16_t> xb;
    xb.resize(size_t(p.M * p.K));
    uint16_t* xp = xb.data();  // thread_local: the pool's workers must see this thread's buffer
    parallel_for(p.M, 1, [&](int64_t m0, int64_t m1) {
      for (int64_t m = m0; m < m1; m++)
        for (int64_t k = 0; k < p.K; k++) xp[m * p.K + k] = to_bf16(p.x[m * p.x_stride + k]);
    });
    matmul(p.M, p.N, p.K, xp, p.K, p.w, p.K, p.y, p.y_stride, dt::bf16);
  } else {
    // Panels of up to 64 MiB of f32 weights (multiples of 64 rows; one panel for most projection
    // matrices): on the 1.4b in_proj, 4 MiB panels ran the product at ~230 GFLOP/s, 16 MiB at ~260,
    // the whole 64 MiB matrix at ~340-375 (f32 weights: ~370). The scratch is kept per thread.
    int64_t panel = std::max<int64_t>(64, (int64_t(64) << 20) / (4 * std::max<int64_t>(p.K, 1)));
    panel = std::min(p.N, panel / 64 * 64);
    thread_local std::vector<float> buf;
    buf.resize(size_t(panel * p.K));
    float* bp = buf.data();  // thread_local: the pool's workers must see this thread's buffer
    const size_t es = dtype_size(p.w_dtype);
    for (int64_t n0 = 0; n0 < p.N; n0 += panel) {
      const int64_t nn = std::min(panel, p.N - n0);
      widen_to_f32(p.w_dtype, static_cast<const char*>(p.w) + size_t(n0 * p.K) * es, bp, nn * p.K);
      if (p.w_dtype == DType::I8) {
        const int64_t nb = p.K / kQ8Block;
        parallel_for(nn, 8, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; r++) {
            float* row = bp + r * p.K;
            const float* sc = p.w_scale + (n0 + r) * nb;
            for (int64_t k = 0; k < p.K; k++) row[k] *= sc[k / kQ8Block];
          }
        });
      }
      matmul(p.M, nn, p.K, p.x, p.x_stride, bp, p.K, p.y + n0, p.y_stride, dt::f32);
    }
  }
  if (p.bias)
    for (int64_t m = 0; m < p.M; m++)
      for (int64_t n = 0; n < p.N; n++) p.y[m * p.y_stride + n] += p.bias[n];
}

}  // namespace ssm::kernels::cpu
