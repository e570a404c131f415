// Mamba-2 SSD on the GPU (Dao & Gu 2024, §6 "SSD algorithm"); semantics of kernels/ref/scan.cpp
// ssd_recurrent. Prefill is chunked (chunk Q) in five launches over one sequence:
//   1 dt:    Δ = clamp(softplus(dt + bias)), cs = within-chunk cumsum of Δ·A        (H, L)
//   2 CB:    CB[c, g] = C_c · B_cᵀ                                                    (nc, G, Q, Q)
//   3 state: S_c[h] = Σ_s exp(cs_end - cs_s) Δ_s x_s ⊗ B_s                           (nc, H, P, N)
//   4 pass:  S_in[c] = state entering chunk c (sequential over chunks, in place); final state out
//   5 out:   y_t = Σ_{s≤t} CB[t,s] exp(cs_t - cs_s) Δ_s x_s + exp(cs_t) C_t·S_in + D x_t
// Three arithmetics (SsdMath). BF16 (the default for bf16/f16 checkpoints): the products of 2, 3
// and 5 are cuBLASLt strided-batched bf16 GEMMs around small layout kernels (the "BF16 path" section
// below), with the gated RMSNorm optionally fused into the output. F32 (f32 checkpoints) and TF32
// (opt-in, SSM_CUDA_SSD=tf32): 2, 3 and 5 are 64×64-tiled matrix products staged in shared memory,
// f32 FMA on the CUDA cores (f32 accuracy) or TF32 WMMA m16n16k8 (operands rounded to TF32's 10-bit
// mantissa, f32 accumulation and chunk states).
// The step kernel updates 32 state rows of one head of one sequence per block: a warp per four rows,
// lanes across N (up to four adjacent states per access), B and C held in registers, the four rows'
// C·S sums reduced together (warp_sum_rows).
#include <mma.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "ssm/error.hpp"

namespace ssm::kernels::cuda {
namespace {

constexpr int kTile = 64, kTk = 16, kThreads = 256;

struct Work {
  float *dt, *cs, *S, *CB;
};

Work carve(float* w, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t Q) {
  const int64_t nc = (L + Q - 1) / Q;
  Work k;
  k.dt = w;
  k.cs = k.dt + L * H;
  k.S = k.cs + L * H;
  k.CB = k.S + nc * H * P * N;
  return k;
}

// grid (nc, H), 256 threads: thread j owns a run of consecutive steps of the chunk; the runs' sums
// are scanned across the block, then each run writes its cumsum from its exclusive prefix.
constexpr int kDtThreads = 256;
template <class DT>  // dt's element type: f32, or the weight dtype when in_proj wrote it so
__global__ void __launch_bounds__(kDtThreads) ssd_dt_kernel(SsdParams p, Work w, const DT* dtin) {
  __shared__ float part[kDtThreads];
  const int64_t c = blockIdx.x, h = blockIdx.y, tid = threadIdx.x;
  const int64_t t0 = c * p.chunk, len = min(p.chunk, p.L - t0), per = (len + kDtThreads - 1) / kDtThreads;
  const int64_t a = t0 + tid * per, b = min(t0 + len, a + per);
  const float Ah = p.A[h], bias = p.dt_bias[h];
  float sum = 0.f;
  for (int64_t t = a; t < b; t++) {
    const float dt = fminf(fmaxf(softplus_d(to_f32(dtin[t * p.dt_stride + h]) + bias), p.dt_min), p.dt_max);
    w.dt[h * p.L + t] = dt;
    sum += dt * Ah;
  }
  part[tid] = sum;
  __syncthreads();
  for (int off = 1; off < kDtThreads; off *= 2) {  // inclusive scan (Hillis-Steele)
    const float v = tid >= off ? part[tid - off] : 0.f;
    __syncthreads();
    part[tid] += v;
    __syncthreads();
  }
  float run = part[tid] - sum;
  for (int64_t t = a; t < b; t++) {
    run += w.dt[h * p.L + t] * Ah;
    w.cs[h * p.L + t] = run;
  }
}

// acc (4×4 per thread) += Σ_k A(k, i)·B(k, j) over k in [0, K) for a 64×64 tile, i = 4·ty + a,
// j = 4·tx + b. KA/KB: the operand is contiguous along k (threads then walk k fastest when loading).
template <bool KA, bool KB, class FA, class FB>
__device__ void tile_mm(int64_t K, FA fa, FB fb, float (&acc)[4][4], float (*As)[kTile + 1], float (*Bs)[kTile + 1]) {
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  for (int64_t k0 = 0; k0 < K; k0 += kTk) {
    for (int i = threadIdx.x; i < kTk * kTile; i += kThreads) {
      const int kk = KA ? i % kTk : i / kTile, r = KA ? i / kTk : i % kTile;
      As[kk][r] = k0 + kk < K ? fa(k0 + kk, r) : 0.f;
    }
    for (int i = threadIdx.x; i < kTk * kTile; i += kThreads) {
      const int kk = KB ? i % kTk : i / kTile, r = KB ? i / kTk : i % kTile;
      Bs[kk][r] = k0 + kk < K ? fb(k0 + kk, r) : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTk; kk++) {
      float a[4], b[4];
      for (int q = 0; q < 4; q++) a[q] = As[kk][ty * 4 + q], b[q] = Bs[kk][tx * 4 + q];
      for (int q = 0; q < 4; q++)
        for (int r = 0; r < 4; r++) acc[q][r] = fmaf(a[q], b[r], acc[q][r]);
    }
    __syncthreads();
  }
}

namespace wm = nvcuda::wmma;
constexpr int kTcK = 32;                         // k-step of the tensor-core tiles
constexpr int kLdK = kTcK + 4, kLdR = kTile + 4;  // row pitches (floats) of the staged operands
constexpr int kSmemFloats = 2 * kTile * kLdK;    // holds either path's operands and the 64×68 output
static_assert(kSmemFloats >= 2 * kTk * (kTile + 1) && kSmemFloats >= kTile * kLdR && kTile * kLdK >= kTcK * kLdR);
using FragC = wm::fragment<wm::accumulator, 16, 16, 8, float>;

// The same product on TF32 tensor cores. Each operand is staged so that the loader's fastest index
// is contiguous in shared memory: [i][k] (a row-major A fragment) when the source is contiguous
// along k, else [k][i] (column-major); likewise B. Warp w owns the 16×32 strip of fragments at rows
// 16·(w % 4), columns 32·(w / 4).
template <bool KA, bool KB, class FA, class FB>
__device__ void tile_mm_tc(int64_t K, FA fa, FB fb, FragC (&acc)[2], float* sm) {
  using LA = std::conditional_t<KA, wm::row_major, wm::col_major>;
  using LB = std::conditional_t<KB, wm::col_major, wm::row_major>;
  float* As = sm;
  float* Bs = sm + kTile * kLdK;
  const int warp = threadIdx.x >> 5, fr = warp % 4, fc = (warp / 4) * 2;
  for (int64_t k0 = 0; k0 < K; k0 += kTcK) {
    for (int i = threadIdx.x; i < kTcK * kTile; i += kThreads) {
      const int kk = KA ? i % kTcK : i / kTile, r = KA ? i / kTcK : i % kTile;
      As[KA ? r * kLdK + kk : kk * kLdR + r] = wm::__float_to_tf32(k0 + kk < K ? fa(k0 + kk, r) : 0.f);
    }
    for (int i = threadIdx.x; i < kTcK * kTile; i += kThreads) {
      const int kk = KB ? i % kTcK : i / kTile, r = KB ? i / kTcK : i % kTile;
      Bs[KB ? r * kLdK + kk : kk * kLdR + r] = wm::__float_to_tf32(k0 + kk < K ? fb(k0 + kk, r) : 0.f);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTcK; kk += 8) {
      wm::fragment<wm::matrix_a, 16, 16, 8, wm::precision::tf32, LA> a;
      wm::load_matrix_sync(a, KA ? As + fr * 16 * kLdK + kk : As + kk * kLdR + fr * 16, KA ? kLdK : kLdR);
#pragma unroll
      for (int q = 0; q < 2; q++) {
        wm::fragment<wm::matrix_b, 16, 16, 8, wm::precision::tf32, LB> b;
        const int j = (fc + q) * 16;
        wm::load_matrix_sync(b, KB ? Bs + j * kLdK + kk : Bs + kk * kLdR + j, KB ? kLdK : kLdR);
        wm::mma_sync(acc[q], a, b, acc[q]);
      }
    }
    __syncthreads();
  }
}

// A 64×64 f32 accumulator tile in either arithmetic; finish() leaves element (4·ty + q, 4·tx + r) of
// the tile in v[q][r] of thread (ty, tx) = (threadIdx.x / 16, threadIdx.x % 16), as tile_mm does.
template <bool TC> struct Acc {
  float v[4][4] = {};
  template <bool KA, bool KB, class FA, class FB>
  __device__ void mm(int64_t K, FA fa, FB fb, float* sm) {
    tile_mm<KA, KB>(K, fa, fb, v, reinterpret_cast<float(*)[kTile + 1]>(sm),
                    reinterpret_cast<float(*)[kTile + 1]>(sm + kTk * (kTile + 1)));
  }
  __device__ void finish(float*) {}
};
template <> struct Acc<true> {
  FragC f[2];
  float v[4][4];
  __device__ Acc() {
    wm::fill_fragment(f[0], 0.f);
    wm::fill_fragment(f[1], 0.f);
  }
  template <bool KA, bool KB, class FA, class FB>
  __device__ void mm(int64_t K, FA fa, FB fb, float* sm) { tile_mm_tc<KA, KB>(K, fa, fb, f, sm); }
  __device__ void finish(float* sm) {  // the operands' shared memory is free (mm ends synchronised)
    const int warp = threadIdx.x >> 5, fr = warp % 4, fc = (warp / 4) * 2;
    for (int q = 0; q < 2; q++) wm::store_matrix_sync(sm + fr * 16 * kLdR + (fc + q) * 16, f[q], kLdR, wm::mem_row_major);
    __syncthreads();
    const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
    for (int q = 0; q < 4; q++)
      for (int r = 0; r < 4; r++) v[q][r] = sm[(ty * 4 + q) * kLdR + tx * 4 + r];
  }
};

// grid (tiles of (t, s), G, nc): CB[c, g, t, s] = Σ_n C[t, n] B[s, n], lower-triangular tiles only.
template <bool TC>
__global__ void __launch_bounds__(kThreads) ssd_cb_kernel(SsdParams p, Work w) {
  __shared__ __align__(128) float sm[kSmemFloats];
  const int64_t Q = p.chunk, c = blockIdx.z, g = blockIdx.y, nt = (Q + kTile - 1) / kTile;
  const int64_t ti = blockIdx.x / nt, si = blockIdx.x % nt;
  if (si > ti) return;
  const int64_t t0 = c * Q, len = min(Q, p.L - t0);
  const int64_t tb = ti * kTile, sb = si * kTile;
  if (tb >= len) return;
  const float* C = p.C + t0 * p.C_stride + g * p.N;
  const float* B = p.B + t0 * p.B_stride + g * p.N;
  Acc<TC> acc;
  acc.template mm<true, true>(
      p.N, [&](int64_t n, int r) { return tb + r < len ? C[(tb + r) * p.C_stride + n] : 0.f; },
      [&](int64_t n, int r) { return sb + r < len ? B[(sb + r) * p.B_stride + n] : 0.f; }, sm);
  acc.finish(sm);
  float* out = w.CB + (c * p.G + g) * Q * Q;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  for (int q = 0; q < 4; q++)
    for (int r = 0; r < 4; r++) {
      const int64_t t = tb + ty * 4 + q, s = sb + tx * 4 + r;
      if (t < len && s < len) out[t * Q + s] = acc.v[q][r];
    }
}

// grid (tiles of (p, n), H, nc): S_c[h, p, n] = Σ_s exp(cs_end - cs_s) Δ_s x[s, p] B[s, n].
template <bool TC>
__global__ void __launch_bounds__(kThreads) ssd_state_kernel(SsdParams p, Work w) {
  __shared__ __align__(128) float sm[kSmemFloats];
  const int64_t Q = p.chunk, c = blockIdx.z, h = blockIdx.y, g = h / (p.H / p.G);
  const int64_t ntn = (p.N + kTile - 1) / kTile, pb = (blockIdx.x / ntn) * kTile, nb = (blockIdx.x % ntn) * kTile;
  const int64_t t0 = c * Q, len = min(Q, p.L - t0);
  const float cs_end = w.cs[h * p.L + t0 + len - 1];
  Acc<TC> acc;
  acc.template mm<false, false>(
      len,
      [&](int64_t s, int r) {
        const int64_t t = t0 + s;
        return pb + r < p.P ? p.x[t * p.x_stride + h * p.P + pb + r] * expf(cs_end - w.cs[h * p.L + t]) * w.dt[h * p.L + t] : 0.f;
      },
      [&](int64_t s, int r) { return nb + r < p.N ? p.B[(t0 + s) * p.B_stride + g * p.N + nb + r] : 0.f; }, sm);
  acc.finish(sm);
  float* S = w.S + (c * p.H + h) * p.P * p.N;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  for (int q = 0; q < 4; q++)
    for (int r = 0; r < 4; r++) {
      const int64_t pi = pb + ty * 4 + q, ni = nb + tx * 4 + r;
      if (pi < p.P && ni < p.N) S[pi * p.N + ni] = acc.v[q][r];
    }
}

// One thread per state element: walk the chunks, replacing S_c by the state entering chunk c. Eight
// chunks' values are loaded before any is used, so the walk waits on memory once per eight chunks.
__global__ void ssd_pass_kernel(SsdParams p, Work w, int64_t nc) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, HPN = p.H * p.P * p.N;
  if (i >= HPN) return;
  const int64_t h = i / (p.P * p.N);
  float run = p.state[i];
  constexpr int U = 8;
  for (int64_t c0 = 0; c0 < nc; c0 += U) {
    float v[U], decay[U];
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int64_t c = c0 + u;
      if (c < nc) {
        v[u] = w.S[c * HPN + i];
        decay[u] = expf(w.cs[h * p.L + min(p.L, (c + 1) * p.chunk) - 1]);
      }
    }
#pragma unroll
    for (int u = 0; u < U; u++) {
      const int64_t c = c0 + u;
      if (c < nc) {
        w.S[c * HPN + i] = run;
        run = decay[u] * run + v[u];
      }
    }
  }
  p.state[i] = run;
}

// grid (tiles of (t, p), H, nc): the chunk's outputs, intra-chunk and from the entering state.
template <bool TC>
__global__ void __launch_bounds__(kThreads) ssd_out_kernel(SsdParams p, Work w) {
  __shared__ __align__(128) float sm[kSmemFloats];
  const int64_t Q = p.chunk, c = blockIdx.z, h = blockIdx.y, g = h / (p.H / p.G);
  const int64_t ntp = (p.P + kTile - 1) / kTile, tb = (blockIdx.x / ntp) * kTile, pb = (blockIdx.x % ntp) * kTile;
  const int64_t t0 = c * Q, len = min(Q, p.L - t0);
  if (tb >= len) return;
  const float* CB = w.CB + (c * p.G + g) * Q * Q;
  const float* cs = w.cs + h * p.L + t0;  // this chunk of head h: contiguous over t
  const float* dt = w.dt + h * p.L + t0;
  Acc<TC> acc;
  acc.template mm<true, false>(
      min(len, tb + kTile),
      [&](int64_t s, int r) {
        const int64_t t = tb + r;
        return (t < len && s <= t) ? CB[t * Q + s] * expf(cs[t] - cs[s]) * dt[s] : 0.f;
      },
      [&](int64_t s, int r) { return pb + r < p.P ? p.x[(t0 + s) * p.x_stride + h * p.P + pb + r] : 0.f; }, sm);
  const float* Sin = w.S + (c * p.H + h) * p.P * p.N;
  acc.template mm<true, true>(
      p.N,
      [&](int64_t n, int r) {
        const int64_t t = tb + r;
        return t < len ? p.C[(t0 + t) * p.C_stride + g * p.N + n] * expf(cs[t]) : 0.f;
      },
      [&](int64_t n, int r) { return pb + r < p.P ? Sin[(pb + r) * p.N + n] : 0.f; }, sm);
  acc.finish(sm);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float Dh = p.D ? p.D[h] : 0.f;
  for (int q = 0; q < 4; q++)
    for (int r = 0; r < 4; r++) {
      const int64_t t = tb + ty * 4 + q, pi = pb + tx * 4 + r;
      if (t < len && pi < p.P) {
        const float xv = p.x[(t0 + t) * p.x_stride + h * p.P + pi];
        p.y[(t0 + t) * p.y_stride + h * p.P + pi] = acc.v[q][r] + Dh * xv;
      }
    }
}

// grid (H, ceil(P / kStepRows), B), 8 warps: each warp owns kStepRows/8 state rows of one head and
// loads all of them (and its x values) before it updates any, so a block waits on memory once.
// State elements of type ST (float, or bf16 storage); a lane owns PK adjacent states of a row per
// 32·PK-wide slice (PK = 2 for bf16: 4-byte loads, so a warp moves 128 bytes per row either way).
template <class ST, int PK> struct StatePack {  // PK = 1: one element
  __device__ static void ld(const void* s, int64_t i, float* v) { v[0] = to_f(static_cast<const ST*>(s)[i]); }
  __device__ static void st(void* s, int64_t i, const float* v) { static_cast<ST*>(s)[i] = from_f<ST>(v[0]); }
};
template <> struct StatePack<__nv_bfloat16, 2> {
  __device__ static void ld(const void* s, int64_t i, float* v) {
    const float2 f = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162*>(static_cast<const __nv_bfloat16*>(s) + i));
    v[0] = f.x, v[1] = f.y;
  }
  __device__ static void st(void* s, int64_t i, const float* v) {
    *reinterpret_cast<__nv_bfloat162*>(static_cast<__nv_bfloat16*>(s) + i) = __floats2bfloat162_rn(v[0], v[1]);
  }
};

template <class ST> struct StatePack<ST, 4> {  // four states: 16-byte f32 / 8-byte bf16 accesses
  __device__ static void ld(const void* s, int64_t i, float* v) {
    const float4 f = Pack4<ST>::ld(static_cast<const ST*>(s) + i);
    v[0] = f.x, v[1] = f.y, v[2] = f.z, v[3] = f.w;
  }
  __device__ static void st(void* s, int64_t i, const float* v) {
    Pack4<ST>::st(static_cast<ST*>(s) + i, make_float4(v[0], v[1], v[2], v[3]));
  }
};

// Sums of K per-lane values over the warp (K a power of two ≤ 32), transposed: each halving
// round keeps half of the values and adds the partner's copy of them, so K sums cost
// K - 1 + log2(32 / K) shuffles instead of 5 K. `row` is the value whose sum the lane returns;
// lanes whose low log2(32 / K) bits are zero are the first to hold each row's sum.
template <int K>
__device__ __forceinline__ float warp_sum_rows(const float (&v)[K], int& row) {
  const int lane = threadIdx.x & 31;
  float c[K];
#pragma unroll
  for (int i = 0; i < K; i++) c[i] = v[i];
  row = 0;
  int o = 16;
#pragma unroll
  for (int n = K; n > 1; n /= 2, o /= 2) {
    const bool hi = lane & o;
#pragma unroll
    for (int i = 0; i < n / 2; i++) {
      const float keep = hi ? c[n / 2 + i] : c[i], send = hi ? c[i] : c[n / 2 + i];
      c[i] = keep + __shfl_xor_sync(0xffffffffu, send, o);
    }
    if (hi) row += n / 2;
  }
  for (; o >= 1; o /= 2) c[0] += __shfl_xor_sync(0xffffffffu, c[0], o);
  return c[0];
}

template <int NPL, int kStepRpw, class ST, int PK>
__global__ void __launch_bounds__(256) ssd_step_kernel(SsdStepParams p) {
  constexpr int kStepRows = 8 * kStepRpw, J = NPL / PK;  // J slices of 32·PK states per lane and row
  using SP = StatePack<ST, PK>;
  const int h = int(blockIdx.x), g = h / int(p.H / p.G), N = int(p.N), P = int(p.P);
  const int64_t b = blockIdx.z;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float Ah = p.A[h], bias = p.dt_bias[h], Dh = p.D ? p.D[h] : 0.f;
  pdl_trigger();
  pdl_wait();
  const float dt = fminf(fmaxf(softplus_d(p.dt[b * p.dt_stride + h] + bias), p.dt_min), p.dt_max);
  const float a = expf(dt * Ah);
  ST* S = static_cast<ST*>(p.states) + int64_t(p.slots[b]) * p.slot_stride + int64_t(h) * P * N;
  const float* Bp = p.Bm + b * p.B_stride + g * N;
  const float* Cp = p.Cm + b * p.C_stride + g * N;
  // B and C as 16-byte loads when a lane's four states are adjacent and the rows aligned.
  const bool bc4 = PK == 4 && ((reinterpret_cast<uintptr_t>(Bp) | reinterpret_cast<uintptr_t>(Cp)) & 15) == 0;
  float Bv[J][PK], Cv[J][PK], Sv[kStepRpw][J][PK], xv[kStepRpw];
  const int i0 = int(blockIdx.y) * kStepRows + warp * kStepRpw;
  // State n of slice j, element e: n = (lane + 32 j) PK + e. With PK = 2, N is even (checked by the
  // launcher), so a pair is either wholly inside the row or wholly past it.
#pragma unroll
  for (int j = 0; j < J; j++) {
    const int n0 = (lane + 32 * j) * PK;
    if (bc4) {
      const float4 bq = n0 < N ? *reinterpret_cast<const float4*>(Bp + n0) : make_float4(0.f, 0.f, 0.f, 0.f);
      const float4 cq = n0 < N ? *reinterpret_cast<const float4*>(Cp + n0) : make_float4(0.f, 0.f, 0.f, 0.f);
      const float bs[4] = {bq.x, bq.y, bq.z, bq.w}, cs[4] = {cq.x, cq.y, cq.z, cq.w};
#pragma unroll
      for (int e = 0; e < PK; e++) Bv[j][e] = bs[e], Cv[j][e] = cs[e];
    } else {
#pragma unroll
      for (int e = 0; e < PK; e++) {
        const int n = n0 + e;
        Bv[j][e] = n < N ? Bp[n] : 0.f;
        Cv[j][e] = n < N ? Cp[n] : 0.f;
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kStepRpw; r++) {
    const int i = i0 + r;
    xv[r] = i < P ? p.x[b * p.x_stride + h * P + i] : 0.f;
#pragma unroll
    for (int j = 0; j < J; j++) {
      const int n = (lane + 32 * j) * PK;
      if (i < P && n < N) SP::ld(S, i * N + n, Sv[r][j]);
      else
#pragma unroll
        for (int e = 0; e < PK; e++) Sv[r][j][e] = 0.f;
    }
  }
  float part[kStepRpw];
#pragma unroll
  for (int r = 0; r < kStepRpw; r++) {
    const int i = i0 + r;
    const float dx = dt * xv[r];
    part[r] = 0.f;
#pragma unroll
    for (int j = 0; j < J; j++) {
      const int n = (lane + 32 * j) * PK;
      float sv[PK];
#pragma unroll
      for (int e = 0; e < PK; e++) {
        sv[e] = fmaf(dx, Bv[j][e], a * Sv[r][j][e]);
        part[r] = fmaf(sv[e], Cv[j][e], part[r]);
      }
      if (i < P && n < N) SP::st(S, i * N + n, sv);
    }
  }
  float* y = p.y + b * p.y_stride + h * P;
  int r = 0;
  const float sum = warp_sum_rows(part, r);
  float xr = xv[0];
#pragma unroll
  for (int k = 1; k < kStepRpw; k++) xr = r == k ? xv[k] : xr;
  if ((lane & (32 / kStepRpw - 1)) == 0 && i0 + r < P) y[i0 + r] = sum + Dh * xr;
}

// ---- BF16 path: the chunk products as cuBLASLt strided-batched bf16 GEMMs (f32 accumulation) ----------
// Elementwise kernels lay the operands out so that every product is one batched GEMM (or one per
// group): Lp = nc·Q rows, padded rows zero.
//   prep:  Xd (H, Lp, P) = Δ·x; Xs (Lp, H·P) = exp(cs_end − cs)·Δ·x; Bb, Cb (Lp, G·N) = B, C   (bf16)
//   GEMM:  CB[c, g] (Q, Q) = C_cg · B_cgᵀ                                                       (f32)
//   mask:  Mm[h, c] (Q, Q) = CB[c, g] ∘ exp(cs_t − cs_s) for s ≤ t, else 0                    (bf16)
//   GEMM:  Yd[h, c] (Q, P) = Mm[h, c] · Xd[h, c]                                              (f32)
//   GEMM:  S[c] (H·P, N)  = Xs_cᵀ · B_c (per group: its heads' rows; the state's own layout)    (f32)
//   pass:  Sin[c] = state entering chunk c (bf16 copy; the f32 state runs on), final state out
//   GEMM:  Yo[c] (Q, H·P) = C_c · Sin[c]ᵀ (per group)                                         (f32)
//   out:   y = Yd + exp(cs)·Yo + D·x
struct TcWork {
  float *dt, *cs, *CB, *Yd, *S, *Yo;
  __nv_bfloat16 *Bb, *Cb, *Xd, *Xs, *Mm, *Sin;
};

// Carves the workspace (nullptr base: only sizes it); returns the bytes used.
size_t carve_tc(char* base, TcWork& w, int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t Q) {
  const int64_t nc = (L + Q - 1) / Q, Lp = nc * Q, HP = H * P, GN = G * N;
  size_t off = 0;
  auto take = [&](auto*& ptr, int64_t n) {
    using T = std::remove_reference_t<decltype(*ptr)>;
    ptr = base ? reinterpret_cast<T*>(base + off) : nullptr;
    off += (size_t(n) * sizeof(T) + 255) / 256 * 256;
  };
  take(w.dt, L * H), take(w.cs, L * H), take(w.CB, nc * G * Q * Q), take(w.Yd, H * Lp * P), take(w.S, nc * N * HP);
  take(w.Yo, Lp * HP), take(w.Bb, Lp * GN), take(w.Cb, Lp * GN), take(w.Xd, H * Lp * P), take(w.Xs, Lp * HP);
  take(w.Mm, H * nc * Q * Q), take(w.Sin, nc * N * HP);
  return off;
}

// grid (Lp): row t of every operand. The per-head scalars (Δ_t and the decay to the chunk's end) are
// staged in shared memory; elements go in pairs (P even), 32-bit indices.
__global__ void __launch_bounds__(256) ssd_tc_prep_kernel(SsdParams p, TcWork w) {
  extern __shared__ float sh[];  // dt[H] | decay[H]
  const int t = blockIdx.x, Lp = int(gridDim.x), Q = int(p.chunk), H = int(p.H), P = int(p.P), HP = H * P, GN = int(p.G * p.N);
  const int L = int(p.L);
  const bool live = t < L;
  const int tend = min(L, (t / Q + 1) * Q) - 1;
  for (int h = threadIdx.x; h < H; h += blockDim.x) {
    const float dt = live ? w.dt[int64_t(h) * L + t] : 0.f;
    sh[h] = dt;
    sh[H + h] = live ? __expf(w.cs[int64_t(h) * L + tend] - w.cs[int64_t(h) * L + t]) * dt : 0.f;
  }
  __syncthreads();
  const float* x = p.x + int64_t(t) * p.x_stride;
  __nv_bfloat162* xs = reinterpret_cast<__nv_bfloat162*>(w.Xs + int64_t(t) * HP);
  for (int i = 2 * threadIdx.x; i < HP; i += 2 * blockDim.x) {
    const int h = i / P, pp = i - h * P;
    const float2 v = live ? make_float2(x[i], x[i + 1]) : make_float2(0.f, 0.f);
    const float d = sh[h], e = sh[H + h];
    *reinterpret_cast<__nv_bfloat162*>(w.Xd + (int64_t(h) * Lp + t) * P + pp) = __floats2bfloat162_rn(d * v.x, d * v.y);
    xs[i / 2] = __floats2bfloat162_rn(e * v.x, e * v.y);
  }
  for (int i = threadIdx.x; i < GN; i += blockDim.x) {
    w.Bb[int64_t(t) * GN + i] = __float2bfloat16_rn(live ? p.B[int64_t(t) * p.B_stride + i] : 0.f);
    w.Cb[int64_t(t) * GN + i] = __float2bfloat16_rn(live ? p.C[int64_t(t) * p.C_stride + i] : 0.f);
  }
}

// grid (nc, H): the masked, decayed CB of one head and chunk; each thread 8 adjacent s of a row t
// (two 16-byte loads of CB, one 16-byte store), blocks of s above the diagonal or rows past the
// sequence written as zeros without arithmetic.
constexpr int kTcMaxQ = 256;
__global__ void __launch_bounds__(256) ssd_tc_mask_kernel(SsdParams p, TcWork w) {
  __shared__ float cs[kTcMaxQ];
  const int Q = int(p.chunk), Q8 = Q / 8, nc = int(gridDim.x), c = blockIdx.x, h = blockIdx.y, g = h / int(p.H / p.G);
  const int t0 = c * Q, len = min(Q, int(p.L) - t0);
  for (int i = threadIdx.x; i < Q; i += blockDim.x) cs[i] = i < len ? w.cs[int64_t(h) * p.L + t0 + i] : 0.f;
  __syncthreads();
  const float* CB = w.CB + (int64_t(c) * p.G + g) * Q * Q;
  uint4* M = reinterpret_cast<uint4*>(w.Mm + (int64_t(h) * nc + c) * Q * Q);
  for (int e = threadIdx.x; e < Q * Q8; e += blockDim.x) {
    const int t = e / Q8, s0 = (e - t * Q8) * 8;
    float o[8] = {};
    if (t < len && s0 <= t) {
      const float4 u = *reinterpret_cast<const float4*>(CB + t * Q + s0), v = *reinterpret_cast<const float4*>(CB + t * Q + s0 + 4);
      const float cb[8] = {u.x, u.y, u.z, u.w, v.x, v.y, v.z, v.w}, ct = cs[t];
#pragma unroll
      for (int k = 0; k < 8; k++) o[k] = s0 + k <= t ? cb[k] * __expf(ct - cs[s0 + k]) : 0.f;
    }
    __nv_bfloat162 q[4];
#pragma unroll
    for (int k = 0; k < 4; k++) q[k] = __floats2bfloat162_rn(o[2 * k], o[2 * k + 1]);
    M[e] = *reinterpret_cast<uint4*>(q);
  }
}

// Four adjacent entries of the (H·P, N) state per thread (N % 4 == 0 keeps them in one row): walks
// the chunks, keeping the f32 state; writes the bf16 entering states. S, Sin and the state share
// the layout, so every access is a 16-byte (8 for Sin) coalesced one.
__global__ void ssd_tc_pass_kernel(SsdParams p, TcWork w, int nc) {
  const int N = int(p.N), P = int(p.P), L = int(p.L), Q = int(p.chunk), NHP4 = int(p.H * p.P) * N / 4;
  const int i4 = blockIdx.x * blockDim.x + threadIdx.x;
  if (i4 >= NHP4) return;
  const int h = (4 * i4 / N) / P;
  float4 run = Pack4<float>::ld(p.state + 4 * int64_t(i4));
  const float4* S = reinterpret_cast<const float4*>(w.S);
  const float* cs = w.cs + int64_t(h) * L;
  constexpr int U = 8;
  for (int c0 = 0; c0 < nc; c0 += U) {
    float4 v[U];
    float decay[U];
#pragma unroll
    for (int u = 0; u < U; u++)
      if (c0 + u < nc) {
        v[u] = S[int64_t(c0 + u) * NHP4 + i4];
        decay[u] = __expf(cs[min(L, (c0 + u + 1) * Q) - 1]);
      }
#pragma unroll
    for (int u = 0; u < U; u++)
      if (c0 + u < nc) {
        Pack4<__nv_bfloat16>::st(w.Sin + 4 * (int64_t(c0 + u) * NHP4 + i4), run);
        run.x = decay[u] * run.x + v[u].x;
        run.y = decay[u] * run.y + v[u].y;
        run.z = decay[u] * run.z + v[u].z;
        run.w = decay[u] * run.w + v[u].w;
      }
  }
  Pack4<float>::st(p.state + 4 * int64_t(i4), run);
}

// y at (t, i): the intra-chunk part, the entering state's part and the D skip.
__device__ __forceinline__ float ssd_tc_y(const SsdParams& p, const TcWork& w, int Lp, int t, int i, int h, float ecs) {
  const int P = int(p.P);
  float y = w.Yd[(int64_t(h) * Lp + t) * P + (i - h * P)] + ecs * w.Yo[int64_t(t) * p.H * P + i];
  if (p.D) y += p.D[h] * p.x[int64_t(t) * p.x_stride + i];
  return y;
}

// grid (L): one row, f32 out.
__global__ void __launch_bounds__(256) ssd_tc_out_kernel(SsdParams p, TcWork w, int Lp) {
  extern __shared__ float ecs[];  // exp(cs_t) per head
  const int t = blockIdx.x, H = int(p.H), P = int(p.P);
  for (int h = threadIdx.x; h < H; h += blockDim.x) ecs[h] = __expf(w.cs[int64_t(h) * p.L + t]);
  __syncthreads();
  for (int i = threadIdx.x; i < H * P; i += blockDim.x) {
    const int h = i / P;
    p.y[int64_t(t) * p.y_stride + i] = ssd_tc_y(p, w, Lp, t, i, h, ecs[h]);
  }
}

// grid (L, D / group), kNormThreads threads: y as above, then Mamba-2's gated RMSNorm over the group
// (norm.cu's rms_norm semantics), written in bf16/f16 for out_proj. Each thread takes quads of
// columns (16-byte loads of Yd, Yo, x and z; ssd_norm_fuses checks the alignment) and keeps its
// ≤ kNormQuads quads in registers between the sum of squares and the output.
constexpr int kNormThreads = 256, kNormQuads = 8;
// ZT: z's element type (f32, or the weight dtype when in_proj wrote it so).
template <class OT, class ZT>
__global__ void __launch_bounds__(kNormThreads) ssd_tc_out_norm_kernel(SsdParams p, TcWork w, int Lp, SsdGatedNorm nm,
                                                                       const ZT* zin) {
  extern __shared__ float ecs[];
  __shared__ float tmp[32];
  const int t = blockIdx.x, H = int(p.H), P = int(p.P), HP = H * P, G = int(nm.group), g0 = int(blockIdx.y) * G;
  for (int h = threadIdx.x; h < H; h += blockDim.x) ecs[h] = __expf(w.cs[int64_t(h) * p.L + t]);
  __syncthreads();
  const ZT* z = zin + int64_t(t) * nm.z_stride;
  const float* x = p.x + int64_t(t) * p.x_stride;
  const float* yo = w.Yo + int64_t(t) * HP;
  float4 v[kNormQuads];
  float ss = 0.f;
#pragma unroll
  for (int k = 0; k < kNormQuads; k++) {
    const int j = 4 * (threadIdx.x + k * kNormThreads), d = g0 + j;
    v[k] = make_float4(0.f, 0.f, 0.f, 0.f);
    if (j < G) {
      const int h = d / P;
      const float e = ecs[h], Dh = p.D ? p.D[h] : 0.f;
      const float4 a = *reinterpret_cast<const float4*>(w.Yd + (int64_t(h) * Lp + t) * P + (d - h * P));
      const float4 b = *reinterpret_cast<const float4*>(yo + d), xv = *reinterpret_cast<const float4*>(x + d);
      float4 y = make_float4(a.x + e * b.x + Dh * xv.x, a.y + e * b.y + Dh * xv.y, a.z + e * b.z + Dh * xv.z, a.w + e * b.w + Dh * xv.w);
      if (!nm.norm_before_gate) {
        const float4 zv = Pack4<ZT>::ld(z + d);
        y.x *= silu_d(zv.x), y.y *= silu_d(zv.y), y.z *= silu_d(zv.z), y.w *= silu_d(zv.w);
      }
      v[k] = y;
      ss += y.x * y.x + y.y * y.y + y.z * y.z + y.w * y.w;
    }
  }
  const float r = nm.gate_only ? 1.f : rsqrtf(block_sum(ss, tmp) / float(G) + nm.eps);
  OT* out = static_cast<OT*>(nm.y_half) + int64_t(t) * nm.y_half_stride;
#pragma unroll
  for (int k = 0; k < kNormQuads; k++) {
    const int j = 4 * (threadIdx.x + k * kNormThreads), d = g0 + j;
    if (j < G) {
      float o[4] = {v[k].x * r, v[k].y * r, v[k].z * r, v[k].w * r};
      for (int q = 0; q < 4; q++) {
        if (nm.w && !nm.gate_only) o[q] *= nm.w[d + q];
        if (nm.norm_before_gate) o[q] *= silu_d(to_f32(z[d + q]));
        out[d + q] = from_f<OT>(o[q]);
      }
    }
  }
}

}  // namespace

int64_t ssd_workspace_floats(int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t Q, SsdMath math) {
  const int64_t nc = (L + Q - 1) / Q;
  const int64_t f32 = 2 * L * H + nc * H * P * N + nc * G * Q * Q;
  if (math != SsdMath::BF16) return f32;
  TcWork w;
  return std::max<int64_t>(f32, int64_t(carve_tc(nullptr, w, L, H, P, G, N, Q) / 4));
}

bool ssd_bf16_ok(int64_t P, int64_t N, int64_t Q) {
  return P % 8 == 0 && N % 8 == 0 && Q % 8 == 0 && Q <= kTcMaxQ;
}


SsdMath ssd_math(bool half_weights) {
  static const int forced = [] {  // SSM_CUDA_SSD=f32|tf32|bf16 overrides the choice (measurements, A/B)
    const char* e = std::getenv("SSM_CUDA_SSD");
    if (!e || !*e) return -1;
    const std::string v = e;
    if (v == "f32") return int(SsdMath::F32);
    if (v == "tf32") return int(SsdMath::TF32);
    if (v == "bf16") return int(SsdMath::BF16);
    throw Error("SSM_CUDA_SSD=" + v + ": expected f32, tf32 or bf16");
  }();
  if (forced >= 0) return SsdMath(forced);
  // bf16/f16 checkpoints: the chunk products on bf16 tensor cores through cuBLASLt (the operands
  // rounded to bf16, as the weights already are); f32 checkpoints keep f32 arithmetic.
  if (half_weights) return SsdMath::BF16;
  // TF32 is opt-in: on mamba2-2.7b (H200, pp2048) it measured 2.6% slower than f32 (24,957 vs 25,610
  // tok/s), because these tiles are bound by their operand loaders (exp, indexing), not by the
  // arithmetic (ncu: ~35% SM throughput, ~3% DRAM), so the f32 path is both exact and faster today.
  return SsdMath::F32;
}

int64_t ssd_chunk_for(int64_t config_chunk) {
  static const int64_t forced = [] {
    const char* e = std::getenv("SSM_CUDA_SSD_CHUNK");
    return e && *e ? std::max<int64_t>(0, std::atoll(e)) : int64_t(0);
  }();
  if (forced > 0) return forced;
  // mamba2-2.7b on an H200, pp2048 / pp8192 tok/s: Q=256 (its config) 25,645 / 25,646, 128 27,855 /
  // 27,883, 64 26,953 / 26,964, 32 21,837 / 21,840 (one call, ssm bench -r 3).
  return config_chunk > 0 ? std::min<int64_t>(config_chunk, 128) : 128;
}

static void ssd_prefill_bf16(const SsdParams& p, float* work, cudaStream_t s, Blas& blas, const SsdGatedNorm* norm) {
  const int64_t Q = p.chunk, nc = (p.L + Q - 1) / Q, Lp = nc * Q, H = p.H, P = p.P, G = p.G, N = p.N;
  const int64_t HP = H * P, GN = G * N, HgP = H / G * P;
  TcWork w;
  carve_tc(reinterpret_cast<char*>(work), w, p.L, H, P, G, N, Q);
  const dim3 dg{unsigned(nc), unsigned(H)};
  const Work dw{w.dt, w.cs, nullptr, nullptr};
  const bool hin = norm && norm->half_in != DType::F32;
  if (!hin) ssd_dt_kernel<<<dg, kDtThreads, 0, s>>>(p, dw, p.dt);
  else if (norm->half_in == DType::F16) ssd_dt_kernel<<<dg, kDtThreads, 0, s>>>(p, dw, static_cast<const __half*>(norm->dt_half));
  else ssd_dt_kernel<<<dg, kDtThreads, 0, s>>>(p, dw, static_cast<const __nv_bfloat16*>(norm->dt_half));
  SSM_CUDA_LAUNCH_CHECK("ssd dt");
  ssd_tc_prep_kernel<<<unsigned(Lp), 256, size_t(2 * H) * 4, s>>>(p, w);
  SSM_CUDA_LAUNCH_CHECK("ssd prep");
  for (int64_t g = 0; g < G; g++)  // CB[c, g] = C_cg · B_cgᵀ
    blas.gemm_batched({Q, Q, N, nc, w.Cb + g * N, GN, Q * GN, false, w.Bb + g * N, GN, Q * GN, true, w.CB + g * Q * Q, Q, G * Q * Q}, s);
  ssd_tc_mask_kernel<<<dim3(unsigned(nc), unsigned(H)), 256, 0, s>>>(p, w);
  SSM_CUDA_LAUNCH_CHECK("ssd mask");
  blas.gemm_batched({Q, P, Q, H * nc, w.Mm, Q, Q * Q, false, w.Xd, P, Q * P, false, w.Yd, P, Q * P}, s);
  for (int64_t g = 0; g < G; g++)  // S[c] (its heads' rows of (H·P, N)) = Xs_cgᵀ · B_cg
    blas.gemm_batched({HgP, N, Q, nc, w.Xs + g * HgP, HP, Q * HP, true, w.Bb + g * N, GN, Q * GN, false, w.S + g * HgP * N, N, HP * N}, s);
  ssd_tc_pass_kernel<<<blocks_for(N * HP / 4, 256), 256, 0, s>>>(p, w, int(nc));
  SSM_CUDA_LAUNCH_CHECK("ssd pass");
  for (int64_t g = 0; g < G; g++)  // Yo[c] = C_cg · Sin[c]
    blas.gemm_batched({Q, HgP, N, nc, w.Cb + g * N, GN, Q * GN, false, w.Sin + g * HgP * N, N, HP * N, true, w.Yo + g * HgP, HP, Q * HP}, s);
  if (norm) {
    const dim3 grid(unsigned(p.L), unsigned(HP / norm->group));
    auto go = [&](auto* o) {
      using OT = std::remove_pointer_t<decltype(o)>;
      // Half inputs are in the weight dtype, which is the output's (the model checks).
      if (hin) ssd_tc_out_norm_kernel<OT, OT><<<grid, kNormThreads, size_t(H) * 4, s>>>(p, w, int(Lp), *norm, static_cast<const OT*>(norm->z_half));
      else ssd_tc_out_norm_kernel<OT, float><<<grid, kNormThreads, size_t(H) * 4, s>>>(p, w, int(Lp), *norm, norm->z);
    };
    if (norm->y_dtype == DType::F16) go(static_cast<__half*>(nullptr));
    else go(static_cast<__nv_bfloat16*>(nullptr));
  } else {
    ssd_tc_out_kernel<<<unsigned(p.L), 256, size_t(H) * 4, s>>>(p, w, int(Lp));
  }
  SSM_CUDA_LAUNCH_CHECK("ssd out");
}

static bool aligned16(const void* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; }

// Whether ssd_prefill takes the bf16 path: asked for, a shape the GEMMs take, and a 16-byte-aligned
// state (the pass kernel moves it four floats at a time).
static bool takes_bf16(const SsdParams& p, SsdMath math) {
  return math == SsdMath::BF16 && ssd_bf16_ok(p.P, p.N, p.chunk) && aligned16(p.state);
}

bool ssd_norm_fuses(const SsdParams& p, SsdMath math, const SsdGatedNorm& n) {
  const bool z_ok = n.half_in == DType::F32 ? n.z && aligned16(n.z)
                                             : n.half_in == n.y_dtype && n.z_half && n.dt_half &&
                                                   reinterpret_cast<uintptr_t>(n.z_half) % 8 == 0;
  return takes_bf16(p, math) && n.group > 0 && n.group % 4 == 0 && (p.H * p.P) % n.group == 0 &&
         n.group <= 4 * kNormThreads * kNormQuads && n.y_half && n.y_dtype != DType::F32 && z_ok && n.z_stride % 4 == 0 &&
         aligned16(p.x) && p.x_stride % 4 == 0 && (p.H * p.P) < (int64_t(1) << 30) && p.L < (int64_t(1) << 30);
}

void ssd_prefill(const SsdParams& p, float* work, cudaStream_t s, SsdMath math, Blas* blas, const SsdGatedNorm* norm) {
  if (p.L <= 0) return;
  if (p.G <= 0 || p.H % p.G != 0) throw Error("ssd_prefill: n_groups must divide num_heads");
  if (norm && !ssd_norm_fuses(p, math, *norm)) throw Error("ssd_prefill: this gated norm cannot be fused (internal: ssd_norm_fuses)");
  if (takes_bf16(p, math)) {
    if (!blas) throw Error("ssd_prefill: the bf16 path needs a Blas (internal)");
    return ssd_prefill_bf16(p, work, s, *blas, norm);
  }
  if (math == SsdMath::BF16) math = SsdMath::F32;  // shapes the bf16 GEMMs cannot take (ssd_bf16_ok), unaligned state
  const int64_t Q = p.chunk, nc = (p.L + Q - 1) / Q, nt = (Q + kTile - 1) / kTile;
  Work w = carve(work, p.L, p.H, p.P, p.G, p.N, Q);
  const bool tc = math == SsdMath::TF32;
  ssd_dt_kernel<<<dim3(unsigned(nc), unsigned(p.H)), kDtThreads, 0, s>>>(p, w, p.dt);
  SSM_CUDA_LAUNCH_CHECK("ssd dt");
  const dim3 cb(unsigned(nt * nt), unsigned(p.G), unsigned(nc));
  tc ? ssd_cb_kernel<true><<<cb, kThreads, 0, s>>>(p, w) : ssd_cb_kernel<false><<<cb, kThreads, 0, s>>>(p, w);
  SSM_CUDA_LAUNCH_CHECK("ssd cb");
  const int64_t tp = (p.P + kTile - 1) / kTile, tn = (p.N + kTile - 1) / kTile;
  const dim3 st(unsigned(tp * tn), unsigned(p.H), unsigned(nc));
  tc ? ssd_state_kernel<true><<<st, kThreads, 0, s>>>(p, w) : ssd_state_kernel<false><<<st, kThreads, 0, s>>>(p, w);
  SSM_CUDA_LAUNCH_CHECK("ssd state");
  ssd_pass_kernel<<<blocks_for(p.H * p.P * p.N, 256), 256, 0, s>>>(p, w, nc);
  SSM_CUDA_LAUNCH_CHECK("ssd pass");
  const dim3 out(unsigned(nt * tp), unsigned(p.H), unsigned(nc));
  tc ? ssd_out_kernel<true><<<out, kThreads, 0, s>>>(p, w) : ssd_out_kernel<false><<<out, kThreads, 0, s>>>(p, w);
  SSM_CUDA_LAUNCH_CHECK("ssd out");
}

template <int RPW, class ST, int PK>
static void launch_ssd_step(const SsdStepParams& p, cudaStream_t s) {
  const dim3 grid(unsigned(p.H), unsigned((p.P + 8 * RPW - 1) / (8 * RPW)), unsigned(p.B));
  switch ((p.N + 31) / 32) {
#define SSM_STEP_CASE(npl) launch("ssd_step", ssd_step_kernel<npl, RPW, ST, (npl % PK ? 1 : PK)>, grid, dim3(256), 0, s, p); break;
    case 1: SSM_STEP_CASE(1)
    case 2: SSM_STEP_CASE(2)
    case 3: case 4: SSM_STEP_CASE(4)
    case 5: case 6: case 7: case 8: SSM_STEP_CASE(8)
#undef SSM_STEP_CASE
    default: throw Error("ssd_step: state size " + std::to_string(p.N) + " exceeds 256");
  }
}

// States per lane access: SSM_CUDA_SSD_PK=1|2|4 caps it (measurement switch, read once); default 4.
int ssd_step_pack() {
  static const int v = [] {
    const char* e = std::getenv("SSM_CUDA_SSD_PK");
    const int n = e ? std::atoi(e) : 0;
    return n == 1 || n == 2 ? n : 4;
  }();
  return v;
}

void ssd_step(const SsdStepParams& p, cudaStream_t s) {
  if (p.B <= 0) return;
  // A lane moves PK adjacent states per access: 4 needs N % 4 == 0 and rows aligned to 4 elements
  // (16-byte f32 / 8-byte bf16 accesses), 2 (bf16 pairs) an even N and 4-byte-aligned rows.
  const uintptr_t base = reinterpret_cast<uintptr_t>(p.states);
  const int cap = ssd_step_pack();
  const bool quads = cap >= 4 && p.N % 4 == 0 && p.slot_stride % 4 == 0 && (base & (p.state_bf16 ? 7 : 15)) == 0;
  // 4 rows per warp: 8 measured slower, with one reduction per row (mamba2-2.7b b64: 5,563 -> 5,145
  // tok/s with one state per access; 9,150 -> 8,922 with four, bf16 states) and again with the
  // transposed reduction (10,064 -> 9,710, bf16 states, session 13).
  if (!p.state_bf16) {
    if (quads) return launch_ssd_step<4, float, 4>(p, s);
    return launch_ssd_step<4, float, 1>(p, s);
  }
  const bool pairs = cap >= 2 && p.N % 2 == 0 && p.slot_stride % 2 == 0 && (base & 3) == 0;
  if (quads) launch_ssd_step<4, __nv_bfloat16, 4>(p, s);
  else if (pairs) launch_ssd_step<4, __nv_bfloat16, 2>(p, s);
  else launch_ssd_step<4, __nv_bfloat16, 1>(p, s);
}

}  // namespace ssm::kernels::cuda
