// Linear layers on the GPU (see cuda.hpp LinearArgs). Two paths:
//  * GEMV (M <= 8, decode): bandwidth-bound, 128-bit weight loads, one or more warps per output row
//    (split-K inside the block when N is small, so enough bytes are in flight), optional RMS pre-norm
//    of x computed by each block, optional residual accumulate, all in one kernel.
//  * cuBLASLt (M > 8, prefill and batched decode): x is (normalised and) converted to the weight dtype,
//    f32 accumulation and f32 output (TF32 is never enabled, so f32 weights give f32 results).
#include <cublasLt.h>

#include <string>

#include "kernels/cuda/common.cuh"
#include "ssm/error.hpp"

namespace ssm::kernels::cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw Error(std::string(what) + ": " + cudaGetErrorString(e));
}

namespace {

void check_lt(cublasStatus_t s, const char* what) {
  if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLASLt ") + what + " failed (status " + std::to_string(int(s)) + ")");
}

// 16 bytes of weights -> VEC floats.
template <class WT> struct Vec;
template <> struct Vec<float> {
  static constexpr int n = 4;
  __device__ static void load(const float* p, float* o) {
    float4 v = *reinterpret_cast<const float4*>(p);
    o[0] = v.x, o[1] = v.y, o[2] = v.z, o[3] = v.w;
  }
};
template <> struct Vec<__nv_bfloat16> {
  static constexpr int n = 8;
  __device__ static void load(const __nv_bfloat16* p, float* o) {
    uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
    for (int i = 0; i < 4; i++) {
      float2 f = __bfloat1622float2(h[i]);
      o[2 * i] = f.x, o[2 * i + 1] = f.y;
    }
  }
};
template <> struct Vec<__half> {
  static constexpr int n = 8;
  __device__ static void load(const __half* p, float* o) {
    uint4 v = __ldg(reinterpret_cast<const uint4*>(p));
    const __half2* h = reinterpret_cast<const __half2*>(&v);
    for (int i = 0; i < 4; i++) {
      float2 f = __half22float2(h[i]);
      o[2 * i] = f.x, o[2 * i + 1] = f.y;
    }
  }
};

constexpr int kGemvThreads = 256;

// Block: 8 warps; `wpr` warps share one output row (split-K), so a block covers 8/wpr rows.
template <class WT, int M>
__global__ void __launch_bounds__(kGemvThreads) gemv_kernel(LinearArgs a, int wpr, bool vec) {
  __shared__ float red[kGemvThreads / 32][M];
  __shared__ float rs[M];
  __shared__ float tmp[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t K = a.K;
  if (a.norm_w) {  // RMS of each input row, computed redundantly by every block (rows are L2-resident)
    for (int m = 0; m < M; m++) {
      float ss = 0.f;
      for (int64_t k = threadIdx.x; k < K; k += blockDim.x) {
        float v = a.x[m * a.x_stride + k];
        ss += v * v;
      }
      ss = block_sum(ss, tmp);
      if (threadIdx.x == 0) rs[m] = rsqrtf(ss / float(K) + a.eps);
    }
    __syncthreads();
  }
  const int64_t n = int64_t(blockIdx.x) * (8 / wpr) + warp / wpr;
  const int part = warp % wpr;
  float acc[M];
  for (int m = 0; m < M; m++) acc[m] = 0.f;
  if (n < a.N) {
    const WT* w = static_cast<const WT*>(a.w) + n * K;
    if (vec) {
      constexpr int V = Vec<WT>::n;
      for (int64_t k = int64_t(part * 32 + lane) * V; k < K; k += int64_t(wpr) * 32 * V) {
        float wv[V];
        Vec<WT>::load(w + k, wv);
        if (a.norm_w) {
          float nw[V];
          Vec<float>::load(a.norm_w + k, nw);
          if constexpr (V == 8) Vec<float>::load(a.norm_w + k + 4, nw + 4);
          for (int i = 0; i < V; i++) wv[i] *= nw[i];
        }
        for (int m = 0; m < M; m++) {
          float xv[V];
          Vec<float>::load(a.x + m * a.x_stride + k, xv);
          if constexpr (V == 8) Vec<float>::load(a.x + m * a.x_stride + k + 4, xv + 4);
          for (int i = 0; i < V; i++) acc[m] = fmaf(wv[i], xv[i], acc[m]);
        }
      }
    } else {
      for (int64_t k = part * 32 + lane; k < K; k += int64_t(wpr) * 32) {
        float wv = to_f(w[k]) * (a.norm_w ? a.norm_w[k] : 1.f);
        for (int m = 0; m < M; m++) acc[m] = fmaf(wv, a.x[m * a.x_stride + k], acc[m]);
      }
    }
  }
  for (int m = 0; m < M; m++) acc[m] = warp_sum(acc[m]);
  if (wpr > 1) {
    if (lane == 0)
      for (int m = 0; m < M; m++) red[warp][m] = acc[m];
    __syncthreads();
    if (part == 0 && lane == 0)
      for (int m = 0; m < M; m++) {
        float s = 0.f;
        for (int q = 0; q < wpr; q++) s += red[warp + q][m];
        acc[m] = s;
      }
  }
  if (n < a.N && part == 0 && lane == 0) {
    for (int m = 0; m < M; m++) {
      float v = acc[m] * (a.norm_w ? rs[m] : 1.f) + (a.bias ? a.bias[n] : 0.f);
      float* y = a.y + m * a.y_stride + n;
      *y = a.accumulate ? *y + v : v;
    }
  }
}

template <class WT>
void launch_gemv(const LinearArgs& a, cudaStream_t s) {
  constexpr int V = Vec<WT>::n;
  auto aligned = [](const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; };
  const bool vec = a.K % V == 0 && a.K % 8 == 0 && a.x_stride % 4 == 0 && aligned(a.x) && aligned(a.w) &&
                   (!a.norm_w || aligned(a.norm_w));
  // Enough warps in flight to saturate HBM: split K across more warps when there are few rows.
  int wpr = a.N >= 8192 ? 1 : a.N >= 4096 ? 2 : a.N >= 2048 ? 4 : 8;
  while (wpr > 1 && a.K < int64_t(wpr) * 32 * V) wpr /= 2;
  const unsigned grid = unsigned((a.N + (8 / wpr) - 1) / (8 / wpr));
  switch (a.M) {
#define SSM_GEMV_CASE(m) case m: gemv_kernel<WT, m><<<grid, kGemvThreads, 0, s>>>(a, wpr, vec); break;
    SSM_GEMV_CASE(1) SSM_GEMV_CASE(2) SSM_GEMV_CASE(3) SSM_GEMV_CASE(4)
    SSM_GEMV_CASE(5) SSM_GEMV_CASE(6) SSM_GEMV_CASE(7) SSM_GEMV_CASE(8)
#undef SSM_GEMV_CASE
    default: throw Error("gemv: M=" + std::to_string(a.M) + " exceeds 8");
  }
  SSM_CUDA_LAUNCH_CHECK("gemv");
}

cudaDataType_t cuda_type(DType t) {
  return t == DType::BF16 ? CUDA_R_16BF : t == DType::F16 ? CUDA_R_16F : CUDA_R_32F;
}

}  // namespace

void gemv(const LinearArgs& a, cudaStream_t s) {
  if (a.M <= 0 || a.N <= 0) return;
  switch (a.w_dtype) {
    case DType::BF16: return launch_gemv<__nv_bfloat16>(a, s);
    case DType::F16: return launch_gemv<__half>(a, s);
    case DType::F32: return launch_gemv<float>(a, s);
  }
}

struct Blas::Plan {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t A = nullptr, B = nullptr, C = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

Blas::Blas() {
  cublasLtHandle_t h;
  check_lt(cublasLtCreate(&h), "create");
  handle_ = h;
  ws_bytes_ = size_t(32) << 20;
  if (cudaMalloc(&ws_, ws_bytes_) != cudaSuccess)
    throw Error("cuBLASLt workspace: cudaMalloc of 32 MiB failed (GPU out of memory)");
}

Blas::~Blas() {
  for (auto& [k, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p->A);
    cublasLtMatrixLayoutDestroy(p->B);
    cublasLtMatrixLayoutDestroy(p->C);
    cublasLtMatmulDescDestroy(p->op);
    delete p;
  }
  cudaFree(ws_);
  cudaFree(xbuf_);
  cublasLtDestroy(static_cast<cublasLtHandle_t>(handle_));
}

void Blas::reserve(int64_t max_m, int64_t max_k) {
  size_t need = size_t(max_m) * size_t(max_k) * 4;  // f32 when the weights are f32
  if (need <= xbuf_bytes_) return;
  cudaFree(xbuf_);
  xbuf_ = nullptr;
  xbuf_bytes_ = 0;
  if (cudaMalloc(&xbuf_, need) != cudaSuccess)
    throw Error("GEMM input scratch: cudaMalloc of " + std::to_string(need >> 20) +
                " MiB failed (GPU out of memory; lower max_block_tokens or max_batch)");
  xbuf_bytes_ = need;
}

// Largest power of two (<= 256) dividing the address: cuBLASLt assumes 256-byte alignment unless told.
static uint32_t alignment(const void* p) {
  uint32_t a = 256;
  while (a > 1 && reinterpret_cast<uintptr_t>(p) % a) a /= 2;
  return a;
}

Blas::Plan& Blas::plan(int64_t M, int64_t N, int64_t K, DType t, int64_t ldb, int64_t ldc, uint32_t align_b,
                       uint32_t align_c) {
  auto key = std::make_tuple(M, N, K, int(t), ldb, ldc, int64_t(align_b) << 16 | align_c);
  if (auto it = plans_.find(key); it != plans_.end()) return *it->second;
  auto* p = new Plan;
  const cudaDataType_t ct = cuda_type(t);
  check_lt(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F), "matmul desc");
  cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta));
  cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb));
  // Column-major view: Y^T (N, M) = W^T(N, K) · X^T (K, M), with W stored (N, K) row-major = (K, N) col-major.
  check_lt(cublasLtMatrixLayoutCreate(&p->A, ct, uint64_t(K), uint64_t(N), K), "layout A");
  check_lt(cublasLtMatrixLayoutCreate(&p->B, ct, uint64_t(K), uint64_t(M), ldb), "layout B");
  check_lt(cublasLtMatrixLayoutCreate(&p->C, CUDA_R_32F, uint64_t(N), uint64_t(M), ldc), "layout C");
  cublasLtMatmulPreference_t pref;
  check_lt(cublasLtMatmulPreferenceCreate(&pref), "preference");
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes_, sizeof(ws_bytes_));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align_b, sizeof(align_b));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_c, sizeof(align_c));
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_c, sizeof(align_c));
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(static_cast<cublasLtHandle_t>(handle_), p->op, p->A, p->B, p->C,
                                                     p->C, pref, 1, &res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found == 0)
    throw Error("cuBLASLt: no algorithm for M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K));
  p->algo = res.algo;
  plans_[key] = p;
  return *p;
}

void Blas::linear(const LinearArgs& a, cudaStream_t s) {
  if (a.M <= 0 || a.N <= 0) return;
  if (a.M <= kGemvMaxM) return gemv(a, s);
  const void* xb = a.x;
  int64_t ldb = a.x_stride;
  if (a.w_dtype != DType::F32 || a.norm_w) {
    // Convert (and normalise) x into the weight dtype; f32 weights with a pre-norm stay f32.
    const size_t es = a.w_dtype == DType::F32 ? 4 : 2;
    if (size_t(a.M) * size_t(a.K) * es > xbuf_bytes_)
      throw Error("GEMM input scratch too small for M=" + std::to_string(a.M) + " K=" + std::to_string(a.K) + " (internal: Blas::reserve)");
    if (a.w_dtype == DType::F32) {
      RmsNormParams rp{a.M, a.K, a.K, a.x, a.x_stride, a.norm_w, nullptr, 0, false, a.eps, static_cast<float*>(xbuf_), a.K};
      rms_norm(rp, s);
    } else {
      to_half(a.x, a.M, a.K, a.x_stride, a.norm_w, a.eps, xbuf_, a.w_dtype, s);
    }
    xb = xbuf_;
    ldb = a.K;
  }
  Plan& p = plan(a.M, a.N, a.K, a.w_dtype, ldb, a.y_stride, alignment(xb), alignment(a.y));
  const float alpha = 1.f, beta = a.accumulate ? 1.f : 0.f;
  check_lt(cublasLtMatmul(static_cast<cublasLtHandle_t>(handle_), p.op, &alpha, a.w, p.A, xb, p.B, &beta, a.y, p.C, a.y,
                          p.C, &p.algo, ws_, ws_bytes_, s),
           "matmul");
  if (a.bias) add_bias(a.y, a.M, a.N, a.y_stride, a.bias, s);
}

}  // namespace ssm::kernels::cuda
