// CPU linear y = x·Wᵀ + b. Decode-sized products (M <= kGemvMaxRows) take the fused-conversion GEMV;
// larger ones go through oneDNN's matmul, which on this project's machines ran 2.5-4x faster than
// OpenBLAS sgemm at the prefill shapes (docs/cpu.md has the measurement; OpenBLAS 0.3.21 has no
// kernel for newer AVX-512 cores and falls back to its AVX2 one).
//
// Precision: by default every GEMM runs in f32 (oneDNN never drops to bf16 unless asked), so f32
// checkpoints give f32 results and bf16/f16/int8 weights are widened exactly to f32 panel by panel
// first (memory keeps the checkpoint's dtype). SSM_CPU_GEMM=bf16 instead runs every product of a
// non-f32 checkpoint as bf16 x bf16 -> f32 with the activations rounded to bf16 (what transformers'
// bf16 runs do; llama.cpp rounds them to the f16 of f16 models): bf16 weights as stored, f16 and
// 8-bit weights rounded to bf16 panel by panel. About twice the GEMM rate, with the error
// documented in docs/numerics.md.
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

#include "core/dtype.hpp"
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
// y (M, N; row stride ys) = x (M, K; row stride xs) · Wᵀ, W (N, K) row-major with row stride ws.
struct Key {
  int64_t M, N, K, xs, ws, ys;
  dt type;
  bool operator<(const Key& o) const {
    return std::tie(M, N, K, xs, ws, ys, type) < std::tie(o.M, o.N, o.K, o.xs, o.ws, o.ys, o.type);
  }
  dnnl::memory::desc src() const { return {{M, K}, type, {xs, 1}}; }
  dnnl::memory::desc wei() const { return {{K, N}, type, {1, ws}}; }  // Wᵀ (K, N): strides (1, ws)
  dnnl::memory::desc dst() const { return {{M, N}, dt::f32, {ys, 1}}; }
};

std::shared_ptr<dnnl::matmul> primitive(const Key& k) {
  static std::mutex mu;
  static std::map<Key, std::shared_ptr<dnnl::matmul>> cache;
  std::lock_guard<std::mutex> lk(mu);
  auto it = cache.find(k);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 512) cache.clear();  // prompts of many different lengths: start over
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(k.src(), k.wei(), k.dst()), engine());
  return cache.emplace(k, std::make_shared<dnnl::matmul>(pd)).first->second;
}

// x and W of `type`, y f32. Not from inside a parallel region: a primitive's split of the work is
// fixed for the thread count it was made with.
void matmul(int64_t M, int64_t N, int64_t K, const void* x, int64_t xs, const void* w, int64_t ws, float* y,
            int64_t ys, dt type) {
  if (type == dt::f32 && gemm_mode() == Gemm::OpenBlas) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(M), int(N), int(K), 1.f, static_cast<const float*>(x),
                int(xs), static_cast<const float*>(w), int(ws), 0.f, y, int(ys));
    return;
  }
  const Key k{M, N, K, xs, ws, ys, type};
  const auto mm = primitive(k);
  auto& e = engine();
  dnnl::memory src(k.src(), e, const_cast<void*>(x)), wei(k.wei(), e, const_cast<void*>(w)), dst(k.dst(), e, y);
  thread_local dnnl::stream st(e);
  mm->execute(st, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
  st.wait();
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
  } else {
    // Half and 8-bit weights are widened to f32 in panels of up to 64 MiB (multiples of 64 rows; one
    // panel for most projection matrices), and in bf16 mode then rounded to bf16 (bf16 weights skip
    // both there): on the 1.4b in_proj, 4 MiB panels ran the f32 product at ~230 GFLOP/s, 16 MiB at
    // ~260, the whole 64 MiB matrix at ~340-375 (f32 weights: ~370). The scratch is kept per thread.
    int64_t panel = std::max<int64_t>(64, (int64_t(64) << 20) / (4 * std::max<int64_t>(p.K, 1)));
    panel = std::min(p.N, panel / 64 * 64);
    const size_t es = dtype_size(p.w_dtype);
    thread_local std::vector<float> buf;
    // Panel of rows n0 .. n0+nn-1 as exact f32 values (q8: int8 times the block's f16 scale).
    auto widen_panel = [&](int64_t n0, int64_t nn) {
      buf.resize(size_t(panel * p.K));
      float* bp = buf.data();  // thread_local: the pool's workers must see this thread's buffer
      widen_to_f32(p.w_dtype, static_cast<const char*>(p.w) + size_t(n0 * p.K) * es, bp, nn * p.K);
      if (p.w_dtype == DType::I8) {
        const int64_t nb = p.K / kQ8Block;
        parallel_for(nn, 8, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; r++) {
            float* row = bp + r * p.K;
            const uint16_t* sc = p.w_scale + (n0 + r) * nb;
            for (int64_t b = 0; b < nb; b++) {
              const float s = f16_to_f32(sc[b]);
              for (int64_t k = b * kQ8Block; k < (b + 1) * kQ8Block; k++) row[k] *= s;
            }
          }
        });
      }
      return bp;
    };
    if (gemm_mode() == Gemm::BF16) {
      // bf16 products: the activations rounded to bf16; bf16 weights as stored, f16 and q8 weights
      // rounded to bf16 from their exact f32 values, panel by panel (docs/numerics.md has the error).
      thread_local std::vector<uint16_t> xb, wb;
      xb.resize(size_t(p.M * p.K));
      uint16_t* xp = xb.data();  // thread_local: the pool's workers must see this thread's buffer
      parallel_for(p.M, 1, [&](int64_t m0, int64_t m1) {
        for (int64_t m = m0; m < m1; m++)
          for (int64_t k = 0; k < p.K; k++) xp[m * p.K + k] = f32_to_bf16(p.x[m * p.x_stride + k]);
      });
      if (p.w_dtype == DType::BF16) {
        matmul(p.M, p.N, p.K, xp, p.K, p.w, p.K, p.y, p.y_stride, dt::bf16);
      } else {
        wb.resize(size_t(panel * p.K));
        uint16_t* wp = wb.data();
        for (int64_t n0 = 0; n0 < p.N; n0 += panel) {
          const int64_t nn = std::min(panel, p.N - n0);
          const float* bp = widen_panel(n0, nn);
          parallel_for(nn * p.K, 1 << 15, [&](int64_t i0, int64_t i1) {
            for (int64_t i = i0; i < i1; i++) wp[i] = f32_to_bf16(bp[i]);
          });
          matmul(p.M, nn, p.K, xp, p.K, wp, p.K, p.y + n0, p.y_stride, dt::bf16);
        }
      }
    } else {
      for (int64_t n0 = 0; n0 < p.N; n0 += panel) {
        const int64_t nn = std::min(panel, p.N - n0);
        matmul(p.M, nn, p.K, p.x, p.x_stride, widen_panel(n0, nn), p.K, p.y + n0, p.y_stride, dt::f32);
      }
    }
  }
  if (p.bias)
    for (int64_t m = 0; m < p.M; m++)
      for (int64_t n = 0; n < p.N; n++) p.y[m * p.y_stride + n] += p.bias[n];
}

}  // namespace ssm::kernels::cpu
