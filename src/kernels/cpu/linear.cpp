// CPU linear y = x·Wᵀ + b through OpenBLAS sgemm. bf16/f16 weights are converted to f32 in panels of
// rows small enough to stay in L2, so memory holds the checkpoint's dtype and the GEMM runs in f32.
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

namespace ssm::kernels::cpu {

void set_threads(int n) {
  set_num_threads(n);
  openblas_set_num_threads(num_threads());
}

void linear(const LinearParams& p) {
  if (p.M == 0 || p.N == 0) return;
  // Decode-sized products are bandwidth bound: fused-conversion GEMV over the thread pool.
  if (p.M <= kGemvMaxRows) {
    gemv(p);
    return;
  }
  if (p.w_dtype == DType::F32) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(p.M), int(p.N), int(p.K), 1.f, p.x, int(p.x_stride),
                static_cast<const float*>(p.w), int(p.K), 0.f, p.y, int(p.y_stride));
  } else {
    const int64_t panel = std::max<int64_t>(16, (256 * 1024) / (4 * std::max<int64_t>(p.K, 1)));
    thread_local std::vector<float> buf;
    buf.resize(size_t(panel * p.K));
    const size_t es = dtype_size(p.w_dtype);
    for (int64_t n0 = 0; n0 < p.N; n0 += panel) {
      int64_t nn = std::min(panel, p.N - n0);
      widen_to_f32(p.w_dtype, static_cast<const char*>(p.w) + size_t(n0 * p.K) * es, buf.data(), nn * p.K);
      if (p.w_dtype == DType::I8) {
        const int64_t nb = p.K / kQ8Block;
        for (int64_t r = 0; r < nn; r++)
          for (int64_t k = 0; k < p.K; k++) buf[size_t(r * p.K + k)] *= p.w_scale[(n0 + r) * nb + k / kQ8Block];
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(p.M), int(nn), int(p.K), 1.f, p.x, int(p.x_stride),
                  buf.data(), int(p.K), 0.f, p.y + n0, int(p.y_stride));
    }
  }
  if (p.bias)
    for (int64_t m = 0; m < p.M; m++)
      for (int64_t n = 0; n < p.N; n++) p.y[m * p.y_stride + n] += p.bias[n];
}

}  // namespace ssm::kernels::cpu
