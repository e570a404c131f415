// Mamba-2 SSD on the GPU (Dao & Gu 2024, §6 "SSD algorithm"); semantics of kernels/ref/scan.cpp
// ssd_recurrent. Prefill is chunked (chunk Q) in five launches over one sequence:
//   1 dt:    Δ = clamp(softplus(dt + bias)), cs = within-chunk cumsum of Δ·A        (L, H)
//   2 CB:    CB[c, g] = C_c · B_cᵀ                                                    (nc, G, Q, Q)
//   3 state: S_c[h] = Σ_s exp(cs_end - cs_s) Δ_s x_s ⊗ B_s                           (nc, H, P, N)
//   4 pass:  S_in[c] = state entering chunk c (sequential over chunks, in place); final state out
//   5 out:   y_t = Σ_{s≤t} CB[t,s] exp(cs_t - cs_s) Δ_s x_s + exp(cs_t) C_t·S_in + D x_t
// 2, 3 and 5 are 64×64-tiled matrix products in shared memory (f32 FMA, so f32 checkpoints keep
// f32 accuracy). The step kernel updates one head of one sequence per block: a warp per state row,
// lanes across N, B and C held in registers.
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

__global__ void ssd_dt_kernel(SsdParams p, Work w) {
  const int64_t h = int64_t(blockIdx.y) * blockDim.x + threadIdx.x, c = blockIdx.x;
  if (h >= p.H) return;
  const int64_t t0 = c * p.chunk, t1 = min(p.L, t0 + p.chunk);
  float cum = 0.f;
  for (int64_t t = t0; t < t1; t++) {
    const float dt = fminf(fmaxf(softplus_d(p.dt[t * p.dt_stride + h] + p.dt_bias[h]), p.dt_min), p.dt_max);
    cum += dt * p.A[h];
    w.dt[t * p.H + h] = dt;
    w.cs[t * p.H + h] = cum;
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

// grid (tiles of (t, s), G, nc): CB[c, g, t, s] = Σ_n C[t, n] B[s, n], lower-triangular tiles only.
__global__ void __launch_bounds__(kThreads) ssd_cb_kernel(SsdParams p, Work w) {
  __shared__ float As[kTk][kTile + 1], Bs[kTk][kTile + 1];
  const int64_t Q = p.chunk, c = blockIdx.z, g = blockIdx.y, nt = (Q + kTile - 1) / kTile;
  const int64_t ti = blockIdx.x / nt, si = blockIdx.x % nt;
  if (si > ti) return;
  const int64_t t0 = c * Q, len = min(Q, p.L - t0);
  const int64_t tb = ti * kTile, sb = si * kTile;
  if (tb >= len) return;
  float acc[4][4] = {};
  const float* C = p.C + t0 * p.C_stride + g * p.N;
  const float* B = p.B + t0 * p.B_stride + g * p.N;
  tile_mm<true, true>(
      p.N, [&](int64_t n, int r) { return tb + r < len ? C[(tb + r) * p.C_stride + n] : 0.f; },
      [&](int64_t n, int r) { return sb + r < len ? B[(sb + r) * p.B_stride + n] : 0.f; }, acc, As, Bs);
  float* out = w.CB + (c * p.G + g) * Q * Q;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  for (int q = 0; q < 4; q++)
    for (int r = 0; r < 4; r++) {
      const int64_t t = tb + ty * 4 + q, s = sb + tx * 4 + r;
      if (t < len && s < len) out[t * Q + s] = acc[q][r];
    }
}

// grid (tiles of (p, n), H, nc): S_c[h, p, n] = Σ_s exp(cs_end - cs_s) Δ_s x[s, p] B[s, n].
__global__ void __launch_bounds__(kThreads) ssd_state_kernel(SsdParams p, Work w) {
  __shared__ float As[kTk][kTile + 1], Bs[kTk][kTile + 1];
  const int64_t Q = p.chunk, c = blockIdx.z, h = blockIdx.y, g = h / (p.H / p.G);
  const int64_t ntn = (p.N + kTile - 1) / kTile, pb = (blockIdx.x / ntn) * kTile, nb = (blockIdx.x % ntn) * kTile;
  const int64_t t0 = c * Q, len = min(Q, p.L - t0);
  const float cs_end = w.cs[(t0 + len - 1) * p.H + h];
  float acc[4][4] = {};
  tile_mm<false, false>(
      len,
      [&](int64_t s, int r) {
        const int64_t t = t0 + s;
        return pb + r < p.P ? p.x[t * p.x_stride + h * p.P + pb + r] * expf(cs_end - w.cs[t * p.H + h]) * w.dt[t * p.H + h] : 0.f;
      },
      [&](int64_t s, int r) { return nb + r < p.N ? p.B[(t0 + s) * p.B_stride + g * p.N + nb + r] : 0.f; }, acc, As, Bs);
  float* S = w.S + (c * p.H + h) * p.P * p.N;
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  for (int q = 0; q < 4; q++)
    for (int r = 0; r < 4; r++) {
      const int64_t pi = pb + ty * 4 + q, ni = nb + tx * 4 + r;
      if (pi < p.P && ni < p.N) S[pi * p.N + ni] = acc[q][r];
    }
}

// One thread per state element: walk the chunks, replacing S_c by the state entering chunk c.
__global__ void ssd_pass_kernel(SsdParams p, Work w, int64_t nc) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, HPN = p.H * p.P * p.N;
  if (i >= HPN) return;
  const int64_t h = i / (p.P * p.N);
  float run = p.state[i];
  for (int64_t c = 0; c < nc; c++) {
    const int64_t last = min(p.L, (c + 1) * p.chunk) - 1;
    const float v = w.S[c * HPN + i];
    w.S[c * HPN + i] = run;
    run = expf(w.cs[last * p.H + h]) * run + v;
  }
  p.state[i] = run;
}

// grid (tiles of (t, p), H, nc): the chunk's outputs, intra-chunk and from the entering state.
__global__ void __launch_bounds__(kThreads) ssd_out_kernel(SsdParams p, Work w) {
  __shared__ float As[kTk][kTile + 1], Bs[kTk][kTile + 1];
  const int64_t Q = p.chunk, c = blockIdx.z, h = blockIdx.y, g = h / (p.H / p.G);
  const int64_t ntp = (p.P + kTile - 1) / kTile, tb = (blockIdx.x / ntp) * kTile, pb = (blockIdx.x % ntp) * kTile;
  const int64_t t0 = c * Q, len = min(Q, p.L - t0);
  if (tb >= len) return;
  const float* CB = w.CB + (c * p.G + g) * Q * Q;
  const float* cs = w.cs + t0 * p.H + h;  // cs[t * H]
  const float* dt = w.dt + t0 * p.H + h;
  float acc[4][4] = {};
  tile_mm<true, false>(
      min(len, tb + kTile),
      [&](int64_t s, int r) {
        const int64_t t = tb + r;
        return (t < len && s <= t) ? CB[t * Q + s] * expf(cs[t * p.H] - cs[s * p.H]) * dt[s * p.H] : 0.f;
      },
      [&](int64_t s, int r) { return pb + r < p.P ? p.x[(t0 + s) * p.x_stride + h * p.P + pb + r] : 0.f; }, acc, As, Bs);
  const float* Sin = w.S + (c * p.H + h) * p.P * p.N;
  tile_mm<true, true>(
      p.N,
      [&](int64_t n, int r) {
        const int64_t t = tb + r;
        return t < len ? p.C[(t0 + t) * p.C_stride + g * p.N + n] * expf(cs[t * p.H]) : 0.f;
      },
      [&](int64_t n, int r) { return pb + r < p.P ? Sin[(pb + r) * p.N + n] : 0.f; }, acc, As, Bs);
  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const float Dh = p.D ? p.D[h] : 0.f;
  for (int q = 0; q < 4; q++)
    for (int r = 0; r < 4; r++) {
      const int64_t t = tb + ty * 4 + q, pi = pb + tx * 4 + r;
      if (t < len && pi < p.P) {
        const float xv = p.x[(t0 + t) * p.x_stride + h * p.P + pi];
        p.y[(t0 + t) * p.y_stride + h * p.P + pi] = acc[q][r] + Dh * xv;
      }
    }
}

// grid (H, ceil(P / kStepRows), B), 8 warps: each warp owns kStepRows/8 state rows of one head and
// loads all of them (and its x values) before it updates any, so a block waits on memory once.
template <int NPL, int kStepRpw>
__global__ void __launch_bounds__(256) ssd_step_kernel(SsdStepParams p) {
  constexpr int kStepRows = 8 * kStepRpw;
  const int64_t h = blockIdx.x, b = blockIdx.z, g = h / (p.H / p.G);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float Ah = p.A[h], bias = p.dt_bias[h], Dh = p.D ? p.D[h] : 0.f;
  pdl_trigger();
  pdl_wait();
  const float dt = fminf(fmaxf(softplus_d(p.dt[b * p.dt_stride + h] + bias), p.dt_min), p.dt_max);
  const float a = expf(dt * Ah);
  float* S = p.states + int64_t(p.slots[b]) * p.slot_stride + h * p.P * p.N;
  float Bv[NPL], Cv[NPL], Sv[kStepRpw][NPL], xv[kStepRpw];
  const int64_t i0 = int64_t(blockIdx.y) * kStepRows + warp * kStepRpw;
#pragma unroll
  for (int j = 0; j < NPL; j++) {
    const int64_t n = lane + 32 * j;
    Bv[j] = n < p.N ? p.Bm[b * p.B_stride + g * p.N + n] : 0.f;
    Cv[j] = n < p.N ? p.Cm[b * p.C_stride + g * p.N + n] : 0.f;
  }
#pragma unroll
  for (int r = 0; r < kStepRpw; r++) {
    const int64_t i = i0 + r;
    xv[r] = i < p.P ? p.x[b * p.x_stride + h * p.P + i] : 0.f;
#pragma unroll
    for (int j = 0; j < NPL; j++) {
      const int64_t n = lane + 32 * j;
      Sv[r][j] = i < p.P && n < p.N ? S[i * p.N + n] : 0.f;
    }
  }
#pragma unroll
  for (int r = 0; r < kStepRpw; r++) {
    const int64_t i = i0 + r;
    float part = 0.f;
#pragma unroll
    for (int j = 0; j < NPL; j++) {
      const int64_t n = lane + 32 * j;
      const float sv = a * Sv[r][j] + dt * xv[r] * Bv[j];
      if (i < p.P && n < p.N) S[i * p.N + n] = sv;
      part = fmaf(sv, Cv[j], part);
    }
    part = warp_sum(part);
    if (lane == 0 && i < p.P) p.y[b * p.y_stride + h * p.P + i] = part + Dh * xv[r];
  }
}

}  // namespace

int64_t ssd_workspace_floats(int64_t L, int64_t H, int64_t P, int64_t G, int64_t N, int64_t Q) {
  const int64_t nc = (L + Q - 1) / Q;
  return 2 * L * H + nc * H * P * N + nc * G * Q * Q;
}

void ssd_prefill(const SsdParams& p, float* work, cudaStream_t s) {
  if (p.L <= 0) return;
  if (p.G <= 0 || p.H % p.G != 0) throw Error("ssd_prefill: n_groups must divide num_heads");
  const int64_t Q = p.chunk, nc = (p.L + Q - 1) / Q, nt = (Q + kTile - 1) / kTile;
  Work w = carve(work, p.L, p.H, p.P, p.G, p.N, Q);
  ssd_dt_kernel<<<dim3(unsigned(nc), blocks_for(p.H, 128)), 128, 0, s>>>(p, w);
  SSM_CUDA_LAUNCH_CHECK("ssd dt");
  ssd_cb_kernel<<<dim3(unsigned(nt * nt), unsigned(p.G), unsigned(nc)), kThreads, 0, s>>>(p, w);
  SSM_CUDA_LAUNCH_CHECK("ssd cb");
  const int64_t tp = (p.P + kTile - 1) / kTile, tn = (p.N + kTile - 1) / kTile;
  ssd_state_kernel<<<dim3(unsigned(tp * tn), unsigned(p.H), unsigned(nc)), kThreads, 0, s>>>(p, w);
  SSM_CUDA_LAUNCH_CHECK("ssd state");
  ssd_pass_kernel<<<blocks_for(p.H * p.P * p.N, 256), 256, 0, s>>>(p, w, nc);
  SSM_CUDA_LAUNCH_CHECK("ssd pass");
  ssd_out_kernel<<<dim3(unsigned(nt * tp), unsigned(p.H), unsigned(nc)), kThreads, 0, s>>>(p, w);
  SSM_CUDA_LAUNCH_CHECK("ssd out");
}

template <int RPW>
static void launch_ssd_step(const SsdStepParams& p, cudaStream_t s) {
  const dim3 grid(unsigned(p.H), unsigned((p.P + 8 * RPW - 1) / (8 * RPW)), unsigned(p.B));
  switch ((p.N + 31) / 32) {
    case 1: launch("ssd_step", ssd_step_kernel<1, RPW>, grid, dim3(256), 0, s, p); break;
    case 2: launch("ssd_step", ssd_step_kernel<2, RPW>, grid, dim3(256), 0, s, p); break;
    case 3: case 4: launch("ssd_step", ssd_step_kernel<4, RPW>, grid, dim3(256), 0, s, p); break;
    case 5: case 6: case 7: case 8: launch("ssd_step", ssd_step_kernel<8, RPW>, grid, dim3(256), 0, s, p); break;
    default: throw Error("ssd_step: state size " + std::to_string(p.N) + " exceeds 256");
  }
}

void ssd_step(const SsdStepParams& p, cudaStream_t s) {
  if (p.B <= 0) return;
  launch_ssd_step<4>(p, s);  // 8 rows per warp for large batches measured slower (mamba2-2.7b b64 5,563 -> 5,145 tok/s)
}

}  // namespace ssm::kernels::cuda
