// CPU Mamba-2 SSD chunked prefill (Dao & Gu 2024, §6 "SSD algorithm"). Per chunk of Q tokens:
//   cs_l   = Σ_{i≤l} Δ_i·A_h                           (within-chunk cumulative log-decay)
//   Y_diag = (C·Bᵀ ∘ exp(cs_l − cs_s)·Δ_s, s ≤ l) · X    (quadratic "attention" form, GEMM)
//   Y_off  = exp(cs_l) · C · S_inᵀ                      (state entering the chunk, GEMM)
//   S_out  = exp(cs_last)·S_in + (X ∘ exp(cs_last − cs_s)·Δ_s)ᵀ · B   (GEMM)
// All in f32. Shapes: x (L, H·P), B/C (L, G·N), state (H, P, N).
// Heads of a group run in parallel over the thread pool (each with its own scratch); the small
// products inside a job are single-threaded OpenBLAS sgemm calls (oneDNN's matmul, whose partition
// of the work is fixed for the thread count it was created with, computed wrong results when run
// inside a parallel region).
#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/threadpool.hpp"
#include "kernels/cpu/cpu.hpp"

namespace ssm::kernels::cpu {

void ssd_chunked(const SsdParams& p) {
  init_blas_threads();
  const int64_t Q = std::max<int64_t>(1, p.chunk), H = p.H, P = p.P, N = p.N;
  const int64_t hpg = H / p.G;
  // Δ and the cumulative log-decay in f64: exp(cs_l − cs_s) of two large cumulative sums would lose
  // the low bits in f32 and drift from the token-by-token recurrence.
  std::vector<double> dt(static_cast<size_t>(Q * H)), cs(static_cast<size_t>(Q * H));  // (q, H)
  std::vector<float> CB(static_cast<size_t>(Q * Q));
  for (int64_t t0 = 0; t0 < p.L; t0 += Q) {
    const int64_t q = std::min(Q, p.L - t0);
    for (int64_t l = 0; l < q; l++)
      for (int64_t h = 0; h < H; h++) {
        float d = softplus(p.dt[(t0 + l) * p.dt_stride + h] + p.dt_bias[h]);
        d = std::fmin(std::fmax(d, p.dt_min), p.dt_max);
        dt[l * H + h] = d;
        cs[l * H + h] = (l ? cs[(l - 1) * H + h] : 0.0) + double(d) * p.A[h];
      }
    for (int64_t g = 0; g < p.G; g++) {
      const float* Bg = p.B + t0 * p.B_stride + g * N;
      const float* Cg = p.C + t0 * p.C_stride + g * N;
      // CB (q, q) = C_g · B_gᵀ
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(q), int(q), int(N), 1.f, Cg, int(p.C_stride), Bg,
                  int(p.B_stride), 0.f, CB.data(), int(q));
      parallel_for(hpg, 1, [&](int64_t h0, int64_t h1) {
        thread_local std::vector<float> Mb, Xb, Yb;  // each thread's scratch, kept across chunks and calls
        Mb.resize(size_t(q * q)), Xb.resize(size_t(q * P)), Yb.resize(size_t(q * P));
        float *M = Mb.data(), *Xw = Xb.data(), *Yc = Yb.data();
        for (int64_t h = g * hpg + h0; h < g * hpg + h1; h++) {
          const float* X = p.x + t0 * p.x_stride + h * P;
          float* S = p.state + h * P * N;
          float* Y = p.y + t0 * p.y_stride + h * P;
          // Masked, decayed scores M[l, s] = CB[l, s]·exp(cs_l − cs_s)·Δ_s for s ≤ l.
          for (int64_t l = 0; l < q; l++) {
            const double csl = cs[l * H + h];
            for (int64_t s = 0; s <= l; s++) M[l * q + s] = float(CB[l * q + s] * std::exp(csl - cs[s * H + h]) * dt[s * H + h]);
            for (int64_t s = l + 1; s < q; s++) M[l * q + s] = 0.f;
          }
          // Yc = M · X  (q, P)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(q), int(P), int(q), 1.f, M, int(q), X,
                      int(p.x_stride), 0.f, Yc, int(P));
          // Y_off: Yc[l] += exp(cs_l)·(C_l · Sᵀ); Xw is (q, P) scratch here.
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(q), int(P), int(N), 1.f, Cg, int(p.C_stride), S,
                      int(N), 0.f, Xw, int(P));
          const float Dh = p.D ? p.D[h] : 0.f;
          for (int64_t l = 0; l < q; l++) {
            const float e = float(std::exp(cs[l * H + h]));
            for (int64_t i = 0; i < P; i++) Y[l * p.y_stride + i] = Yc[l * P + i] + e * Xw[l * P + i] + Dh * X[l * p.x_stride + i];
          }
          // State passing: S = exp(cs_last)·S + (X ∘ w)ᵀ·B with w_s = exp(cs_last − cs_s)·Δ_s.
          const double cl = cs[(q - 1) * H + h];
          for (int64_t s = 0; s < q; s++) {
            const float w = float(std::exp(cl - cs[s * H + h]) * dt[s * H + h]);
            for (int64_t i = 0; i < P; i++) Xw[s * P + i] = X[s * p.x_stride + i] * w;
          }
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(P), int(N), int(q), 1.f, Xw, int(P), Bg,
                      int(p.B_stride), float(std::exp(cl)), S, int(N));
        }
      });
    }
  }
}

}  // namespace ssm::kernels::cpu
