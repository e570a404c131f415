// One whole Mamba-1 layer of batch-1 decode in one kernel (see cuda.hpp Mamba1LayerParams).
//
// Why: at batch 1 every product is a matrix-vector product that streams its weights once, and the
// separate kernels of a layer (in_proj, conv step, x_proj, step, out_proj) each lose a few µs to
// ramp-up and tail while the memory system idles between them. Here one block per SM runs the
// layer's phases in order, separated by grid-wide barriers, and out_proj's weights start streaming
// into shared memory (bulk copies) the moment the block starts, so they arrive while in_proj, x_proj
// and the step run; out_proj itself then reads shared memory only.
//
// Phases (G blocks of 16 warps, warp w of block b is grid warp w·G + b, GW = 16·G of them):
//   A  in_proj: each block stages RMSNorm(h)·norm_w in shared memory; grid warp g owns rows g,
//      g + GW, … of in_proj (at most 32, lane i keeps row i's sum); then each lane finishes its row:
//      x rows run the conv step (window shift, taps, bias, SiLU) into xc, z rows are stored.
//   B  x_proj: row j is cut into S column pieces; item (j, s) = grid warp j·S + s writes its partial
//      sum. The pieces are added in the order s = 0 … S−1 by every reader (deterministic).
//   C  step: every block sums the partials into δ|B|C in shared memory (FalconMamba: the three RMS
//      norms), then a group of 16 lanes per channel: Δ = softplus(dt_proj row · δ + bias), the
//      state update (lane n holds state n), y = C·h + D·u, gated by SiLU(z).
//   D  out_proj: block b owns rows [b·D/G, (b+1)·D/G); y is staged, the rows that fit were copied
//      into shared memory in phase 0, the rest stream from global; h[r] += row · y (+ bias).
// Every sum runs in a fixed order, so decode stays bit-reproducible.
#include <algorithm>
#include <cstdlib>
#include <string>

#include "kernels/cuda/common.cuh"
#include "ssm/error.hpp"

namespace ssm::kernels::cuda {
namespace {

constexpr int kLThreads = 512, kLWarps = kLThreads / 32;
constexpr int kLMaxK = 4;     // d_conv
constexpr int kLGs = 16;      // lanes per channel in the step (d_state <= 16)
constexpr int kLU = 8;        // in_proj loads in flight per lane
constexpr int kLBp = 4;       // x_proj vectors per lane loaded before the barrier
constexpr int kLRounds = 2;   // step rounds (two channels each) per warp: at most 4 channels per warp
constexpr int kLMaxRK = 16;   // dt_rank <= 16 · kLGs
constexpr int kLHv = 4;       // d_model <= 4 · 4 · kLThreads
constexpr int kLStamps = 8;   // profile stamps per block

struct LayerGeom {
  int64_t act = 0;       // floats of the staged activation (max(D, E), rounded up to 4)
  int64_t rn_pad = 0;    // floats of the staged δ|B|C (rounded up to 4)
  int64_t pre_rows = 0;  // out_proj rows a block may hold in shared memory
  int64_t S = 1;         // column pieces per x_proj row
  int copy_bytes = 0;    // size of one bulk copy of the prefetch
};

// acc + the 16-byte weight vector `raw` (widened) · xv[0, V) (x in shared memory, 16-byte aligned).
template <class WT>
__device__ __forceinline__ float dot_vec(uint4 raw, const float* xv, float acc) {
  constexpr int V = Vec<WT>::n;
  float wv[V];
  Vec<WT>::widen(raw, wv);
#pragma unroll
  for (int i = 0; i < V; i += 4) {
    const float4 q = *reinterpret_cast<const float4*>(xv + i);
    acc = fmaf(wv[i], q.x, acc);
    acc = fmaf(wv[i + 1], q.y, acc);
    acc = fmaf(wv[i + 2], q.z, acc);
    acc = fmaf(wv[i + 3], q.w, acc);
  }
  return acc;
}

__device__ __forceinline__ uint64_t globaltimer_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// Grid-wide barrier for a grid whose blocks are all resident (one per SM, checked by the launcher):
// count arrivals; the last one resets the count and advances the generation the others wait on.
// The fences order every thread's writes before the barrier (published by thread 0 after
// __syncthreads) against every read after it.
__device__ __forceinline__ void grid_sync(unsigned* bar) {
  __syncthreads();
  if (threadIdx.x == 0) {
    volatile unsigned* gen = bar + 1;
    const unsigned my = *gen;
    __threadfence();
    if (atomicAdd(bar, 1u) == gridDim.x - 1) {
      bar[0] = 0;
      __threadfence();
      atomicAdd(bar + 1, 1u);
    } else {
      // A block that never arrives (the grid not co-resident) would hang the GPU: give up after
      // 10 s with a trap, which the host sees as a launch error.
      const uint64_t t0 = globaltimer_ns();
      while (*gen == my) {
        if (globaltimer_ns() - t0 > 10000000000ull) __trap();
      }
    }
    __threadfence();
  }
  __syncthreads();
}

template <class WT, bool SBF>
__global__ void __launch_bounds__(kLThreads, 1) mamba1_layer_kernel(Mamba1LayerParams p, LayerGeom g) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  extern __shared__ float4 smem_f4[];
  float* act = reinterpret_cast<float*>(smem_f4);  // x for in_proj, then y for out_proj
  float* dbc = act + g.act;                         // δ | B | C
  char* pre = reinterpret_cast<char*>(dbc + g.rn_pad);  // out_proj rows [r0, r0 + npre)
  __shared__ alignas(8) uint64_t mbar;
  __shared__ float tmp[32];
  constexpr int V = Vec<WT>::n;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t G = gridDim.x, GW = G * kLWarps, gw = int64_t(warp) * G + blockIdx.x;
  const int64_t D = p.D, E = p.E, N = p.N, R = p.R, K = p.K, RN = R + 2 * N;
  const int64_t DV = D / V, EV = E / V;
  const WT* Win = static_cast<const WT*>(p.in_w);
  const WT* Wx = static_cast<const WT*>(p.x_w);
  const WT* Wout = static_cast<const WT*>(p.out_w);
  const int64_t r0 = blockIdx.x * D / G, r1 = (blockIdx.x + 1) * D / G;
  const int64_t npre = std::min<int64_t>(r1 - r0, g.pre_rows);
  auto stamp = [&](int k) {
    if (p.prof && threadIdx.x == 0) p.prof[blockIdx.x * kLStamps + k] = globaltimer_ns();
  };

  // Phase 0 (weights only, before the wait): out_proj's rows of this block into shared memory.
  if (threadIdx.x == 0 && npre > 0) {
    const uint32_t bar = smem_u32(&mbar);
    const int64_t total = npre * E * int64_t(sizeof(WT));
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;" ::"r"(bar) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(bar), "r"(uint32_t(total)) : "memory");
    const char* src = reinterpret_cast<const char*>(Wout + r0 * E);
    for (int64_t o = 0; o < total; o += g.copy_bytes) {
      const uint32_t n = uint32_t(std::min<int64_t>(g.copy_bytes, total - o));
      asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(smem_u32(pre + o)),
                   "l"(src + o), "r"(n), "r"(bar)
                   : "memory");
    }
  }
  // This warp's channels: e_i = gw + i·GW, i < ne (<= kLMaxCh, checked by the launcher); lane i
  // keeps channel i's x and z sums. Its in_proj rows, in stream order: x row e_0, z row E + e_0,
  // x row e_1, … Each lane reads vectors lane, lane + 32, … (VL of them) of every row, as one
  // sequence of T = 2·ne·VL loads kept kLU deep across row ends.
  const int64_t ne = gw < E ? (E - gw + GW - 1) / GW : 0;
  const int64_t my_e = gw + int64_t(lane) * GW;
  const bool ch_lane = lane < ne;
  const int64_t VL = (DV + 31) / 32, T = 2 * ne * VL;
  float cw[kLMaxK], cb = 0.f;
#pragma unroll
  for (int k = 0; k < kLMaxK; k++) cw[k] = ch_lane && k < K ? p.conv_w[my_e * K + k] : 0.f;
  if (ch_lane && p.conv_b) cb = p.conv_b[my_e];
  // The norm weight into shared memory now (a weight); h multiplies it after the wait.
  for (int64_t k = threadIdx.x; k < D; k += kLThreads) act[k] = p.norm_w[k];
  uint4 ring[kLU];
  int64_t lq = 0, lj = 0;  // (row, vector) of the next load
  auto issue = [&](uint4& r) {
    const int64_t v = lane + 32 * lj;
    if (v < DV) r = Vec<WT>::raw(Win + ((lq & 1) * E + gw + (lq >> 1) * GW) * D + v * V);
    if (++lj == VL) lj = 0, ++lq;
  };
#pragma unroll
  for (int u = 0; u < kLU; u++)
    if (u < T) issue(ring[u]);
  pdl_trigger();
  pdl_wait();  // h, the states and the scratch belong to the previous kernel until here
  stamp(0);

  // ---- Phase A: RMSNorm(h) staged, in_proj rows, conv step ----
  void* cst = state_at(p.states, SBF, int64_t(p.slots[0]) * p.slot_stride + p.conv_off);
  float win[kLMaxK];
#pragma unroll
  for (int k = 0; k < kLMaxK; k++) win[k] = ch_lane && k < K - 1 ? ld_state(cst, SBF, k * E + my_e) : 0.f;
  {
    float ss = 0.f;
    float4 hv[kLHv];
#pragma unroll
    for (int q = 0; q < kLHv; q++) {
      const int64_t k = (threadIdx.x + int64_t(q) * kLThreads) * 4;
      hv[q] = k < D ? *reinterpret_cast<const float4*>(p.h + k) : make_float4(0.f, 0.f, 0.f, 0.f);
      ss += hv[q].x * hv[q].x + hv[q].y * hv[q].y + hv[q].z * hv[q].z + hv[q].w * hv[q].w;
    }
    const float rs = rsqrtf(block_sum(ss, tmp) / float(D) + p.eps);  // (its barriers also publish act's norm weights)
#pragma unroll
    for (int q = 0; q < kLHv; q++) {
      const int64_t k = (threadIdx.x + int64_t(q) * kLThreads) * 4;
      if (k < D) {
        float4* a = reinterpret_cast<float4*>(act + k);
        float4 w = *a;
        w.x *= hv[q].x * rs, w.y *= hv[q].y * rs, w.z *= hv[q].z * rs, w.w *= hv[q].w * rs;
        *a = w;
      }
    }
    __syncthreads();
  }
  stamp(1);
  float mx = 0.f, mz = 0.f;  // lane i: channel i's x and z sums
  {
    float acc = 0.f;
    int64_t q = 0, j = 0;  // (row, vector) being used
    for (int64_t t0 = 0; t0 < T; t0 += kLU) {
#pragma unroll
      for (int u = 0; u < kLU; u++) {
        if (t0 + u < T) {  // uniform over the warp
          const int64_t v = lane + 32 * j;
          if (v < DV) acc = dot_vec<WT>(ring[u], act + v * V, acc);
          if (t0 + u + kLU < T) issue(ring[u]);
          if (++j == VL) {
            const int64_t i = q >> 1;
            const float sum = warp_sum(acc) + (p.in_b ? p.in_b[(q & 1) * E + gw + i * GW] : 0.f);
            if (lane == i) (q & 1 ? mz : mx) = sum;
            acc = 0.f, j = 0, ++q;
          }
        }
      }
    }
  }
  float u_c = 0.f;  // lane i: channel i's conv output
  if (ch_lane) {
    float c = cb;
#pragma unroll
    for (int k = 0; k < kLMaxK; k++)
      if (k < K - 1) c = fmaf(cw[k], win[k], c);
#pragma unroll
    for (int k = 0; k < kLMaxK; k++)
      if (k == K - 1) c = fmaf(cw[k], mx, c);
#pragma unroll
    for (int k = 1; k < kLMaxK; k++)
      if (k < K - 1) st_state(cst, SBF, (k - 1) * E + my_e, win[k]);
    if (K > 1) st_state(cst, SBF, (K - 2) * E + my_e, mx);
    u_c = silu_d(c);
    p.xc[my_e] = u_c;
  }
  stamp(2);
  // Loads for phases B and C that do not depend on this layer's results, issued now so they land
  // during the barrier: this warp's x_proj piece (its first kLBp vectors per lane) and, per round of
  // the step (16 lanes per channel, two channels per warp), the dt_proj row, A, bias, D and state.
  const int64_t S = g.S;
  const int64_t it0 = gw;  // x_proj item of this warp (one per warp when RN·S <= GW)
  uint4 xw[kLBp];
  {
    const int64_t j = it0 / S, s = it0 - j * S, c0 = s * EV / S, c1 = (s + 1) * EV / S;
#pragma unroll
    for (int u = 0; u < kLBp; u++) {
      const int64_t v = c0 + lane + 32 * u;
      if (it0 < RN * S && v < c1) xw[u] = Vec<WT>::raw(Wx + j * E + v * V);
    }
  }
  const int li = lane % kLGs, half = lane / kLGs;
  float dtw[kLRounds][kLMaxRK], Av[kLRounds], hv0[kLRounds], bias_c[kLRounds], Dc[kLRounds];
  void* hst[kLRounds];
#pragma unroll
  for (int rd = 0; rd < kLRounds; rd++) {
    const int64_t i = 2 * rd + half, e = gw + i * GW;
    const bool ok = i < ne;
#pragma unroll
    for (int k = 0; k < kLMaxRK; k++) {
      const int64_t r = li + int64_t(k) * kLGs;
      dtw[rd][k] = ok && r < R ? load_w(p.dt_w, p.wt, e * R + r) : 0.f;
    }
    hst[rd] = state_at(p.states, SBF, int64_t(p.slots[0]) * p.slot_stride + p.ssm_off + (ok ? e : 0) * N);
    Av[rd] = ok && li < N ? p.A[e * N + li] : 0.f;
    hv0[rd] = ok && li < N ? ld_state(hst[rd], SBF, li) : 0.f;
    bias_c[rd] = ok ? p.dt_bias[e] : 0.f;
    Dc[rd] = ok && p.Dskip ? p.Dskip[e] : 0.f;
  }
  grid_sync(p.bar);
  stamp(3);

  // ---- Phase B: x_proj pieces ----
  for (int64_t it = it0; it < RN * S; it += GW) {
    const int64_t j = it / S, s = it - j * S;
    const int64_t c0 = s * EV / S, c1 = (s + 1) * EV / S;
    const WT* w = Wx + j * E;
    float acc = 0.f;
#pragma unroll
    for (int u = 0; u < kLBp; u++) {
      const int64_t v = c0 + lane + 32 * u;
      if (v < c1) {
        const uint4 r = it == it0 ? xw[u] : Vec<WT>::raw(w + v * V);
        float wv[V];
        Vec<WT>::widen(r, wv);
#pragma unroll
        for (int q = 0; q < V; q += 4) {
          const float4 f = __ldcg(reinterpret_cast<const float4*>(p.xc + v * V + q));
          acc = fmaf(wv[q], f.x, acc);
          acc = fmaf(wv[q + 1], f.y, acc);
          acc = fmaf(wv[q + 2], f.z, acc);
          acc = fmaf(wv[q + 3], f.w, acc);
        }
      }
    }
    for (int64_t v = c0 + lane + 32 * kLBp; v < c1; v += 32) {  // pieces longer than kLBp vectors per lane
      float wv[V];
      Vec<WT>::widen(Vec<WT>::raw(w + v * V), wv);
#pragma unroll
      for (int q = 0; q < V; q += 4) {
        const float4 f = __ldcg(reinterpret_cast<const float4*>(p.xc + v * V + q));
        acc = fmaf(wv[q], f.x, acc);
        acc = fmaf(wv[q + 1], f.y, acc);
        acc = fmaf(wv[q + 2], f.z, acc);
        acc = fmaf(wv[q + 3], f.w, acc);
      }
    }
    const float sum = warp_sum(acc);
    if (lane == 0) p.part[it] = sum;
  }
  grid_sync(p.bar);
  stamp(4);

  // ---- Phase C: δ|B|C, dt_proj, state update, y ----
  for (int64_t j = threadIdx.x; j < RN; j += kLThreads) {
    float s = 0.f;
    for (int64_t q = 0; q < S; q++) s += __ldcg(p.part + j * S + q);
    dbc[j] = s;
  }
  __syncthreads();
  if (p.bcdt_rms) {
    // Weightless RMSNorm of δ, B and C (FalconMamba), in shared memory by the whole block.
    const int64_t off[3] = {0, R, R + N}, len[3] = {R, N, N};
    for (int t = 0; t < 3; t++) {
      float ss = 0.f;
      for (int64_t i = threadIdx.x; i < len[t]; i += kLThreads) ss += dbc[off[t] + i] * dbc[off[t] + i];
      const float r = rsqrtf(block_sum(ss, tmp) / float(len[t]) + p.rms_eps);
      __syncthreads();
      for (int64_t i = threadIdx.x; i < len[t]; i += kLThreads) dbc[off[t] + i] *= r;
      __syncthreads();
    }
  }
  {
    const float* Bt = dbc + R;
    const float* Ct = dbc + R + N;
#pragma unroll
    for (int rd = 0; rd < kLRounds; rd++) {
      const int64_t i = 2 * rd + half, e = gw + i * GW;
      const bool ok = i < ne;
      float dr = 0.f;
#pragma unroll
      for (int k = 0; k < kLMaxRK; k++) {
        const int64_t r = li + int64_t(k) * kLGs;
        if (r < R) dr = fmaf(dtw[rd][k], dbc[r], dr);
      }
      for (int o = kLGs / 2; o > 0; o >>= 1) dr += __shfl_xor_sync(0xffffffffu, dr, o);
      const float u = __shfl_sync(0xffffffffu, u_c, int(i & 31));
      const float z = __shfl_sync(0xffffffffu, mz, int(i & 31));
      float part = 0.f;
      if (ok && li < N) {
        const float dt = softplus_d(dr + bias_c[rd]);
        const float hn = expf(dt * Av[rd]) * hv0[rd] + dt * Bt[li] * u;
        st_state(hst[rd], SBF, li, hn);
        part = hn * Ct[li];
      }
      for (int o = kLGs / 2; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
      if (ok && li == 0) p.y[e] = (part + Dc[rd] * u) * silu_d(z);
    }
  }
  grid_sync(p.bar);
  stamp(5);

  // ---- Phase D: out_proj rows of this block, residual add ----
  for (int64_t k = threadIdx.x * 4; k < E; k += kLThreads * 4)
    *reinterpret_cast<float4*>(act + k) = __ldcg(reinterpret_cast<const float4*>(p.y + k));
  __syncthreads();
  if (npre > 0) {
    const uint32_t bar = smem_u32(&mbar);
    asm volatile(
        "{\n .reg .pred p;\n WAIT_%=:\n mbarrier.try_wait.parity.shared::cta.b64 p, [%0], 0;\n @!p bra WAIT_%=;\n}" ::"r"(bar)
        : "memory");
  }
  stamp(6);
  for (int64_t r = r0 + warp; r < r1; r += kLWarps) {
    const bool in_smem = r - r0 < npre;
    float acc = 0.f;
    if (in_smem) {
      const uint4* src = reinterpret_cast<const uint4*>(pre + (r - r0) * E * int64_t(sizeof(WT)));
#pragma unroll 4
      for (int64_t v = lane; v < EV; v += 32) acc = dot_vec<WT>(src[v], act + v * V, acc);
    } else {
      const uint4* src = reinterpret_cast<const uint4*>(Wout + r * E);
#pragma unroll 4
      for (int64_t v = lane; v < EV; v += 32) acc = dot_vec<WT>(__ldcs(src + v), act + v * V, acc);
    }
    const float sum = warp_sum(acc);
    if (lane == 0) p.h[r] += sum + (p.out_b ? p.out_b[r] : 0.f);
  }
  stamp(7);
#endif
}

struct LayerLaunch {
  bool ok = false;
  std::string why;
  LayerGeom g;
  size_t smem = 0;
  int grid = 0;
};

int env_int(const char* name, int dflt) {
  const char* e = std::getenv(name);
  return e && *e ? std::atoi(e) : dflt;
}

template <class WT, bool SBF>
LayerLaunch plan_t(const Mamba1LayerParams& p) {
  LayerLaunch l;
  auto fail = [&](const char* why) {
    l.why = why;
    return l;
  };
  int dev = 0, sms = 0, major = 0, optin = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
  cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (major < 9) return fail("needs compute capability 9.0 or later (bulk copies)");
  constexpr int V = Vec<WT>::n;
  if (p.N < 1 || p.N > kLGs) return fail("d_state must be 1..16");
  if (p.K < 1 || p.K > kLMaxK) return fail("d_conv must be 1..4");
  if (p.D % V || p.E % V || p.D % 4 || p.E % 4) return fail("d_model and d_inner must be multiples of 8");
  if (p.D > int64_t(kLHv) * 4 * kLThreads) return fail("d_model above 8192");
  if (p.R < 1 || p.R > int64_t(kLMaxRK) * kLGs) return fail("dt_rank must be 1..256");
  const int64_t GW = int64_t(sms) * kLWarps;
  if ((p.E + GW - 1) / GW > 2 * kLRounds) return fail("more than 4 channels per warp (d_inner too large for this GPU)");
  for (const void* q : {p.in_w, p.x_w, p.out_w, static_cast<const void*>(p.h), static_cast<const void*>(p.y),
                        static_cast<const void*>(p.xc)})
    if (reinterpret_cast<uintptr_t>(q) & 15) return fail("operands must be 16-byte aligned");
  LayerGeom& g = l.g;
  g.act = (std::max(p.D, p.E) + 3) / 4 * 4;
  const int64_t RN = p.R + 2 * p.N;
  g.rn_pad = (RN + 3) / 4 * 4;
  g.S = std::max<int64_t>(1, std::min<int64_t>(GW / RN, p.E / V / 32));
  const int64_t fixed = (g.act + g.rn_pad) * 4;
  const int64_t row_bytes = p.E * int64_t(sizeof(WT));
  const int64_t budget = int64_t(optin) - fixed - 1024;  // static shared: barrier, reduction scratch
  const int64_t want = (p.D + sms - 1) / sms;
  g.pre_rows = std::max<int64_t>(0, std::min<int64_t>(want, budget / row_bytes));
  if (env_int("SSM_M1L_PRE", 1) == 0) g.pre_rows = 0;
  if (g.pre_rows * row_bytes >= (int64_t(1) << 20)) g.pre_rows = ((int64_t(1) << 20) - 1) / row_bytes;  // mbarrier tx limit
  g.copy_bytes = std::max(16, env_int("SSM_M1L_CB", 16384) / 16 * 16);
  l.smem = size_t(fixed + g.pre_rows * row_bytes);
  if (l.smem > size_t(optin)) return fail("d_model/d_inner too large for shared memory");
  auto kernel = mamba1_layer_kernel<WT, SBF>;
  check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(l.smem)), "mamba1_layer smem");
  int per_sm = 0;
  check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, kLThreads, l.smem), "mamba1_layer occupancy");
  if (per_sm < 1) return fail("a block does not fit on an SM");
  l.grid = sms;  // one block per SM, all resident (the grid barrier needs every block running)
  l.ok = true;
  return l;
}

LayerLaunch plan(const Mamba1LayerParams& p) {
  switch (p.wt) {
    case DType::BF16: return p.state_bf16 ? plan_t<__nv_bfloat16, true>(p) : plan_t<__nv_bfloat16, false>(p);
    case DType::F16: return p.state_bf16 ? plan_t<__half, true>(p) : plan_t<__half, false>(p);
    default: return p.state_bf16 ? plan_t<float, true>(p) : plan_t<float, false>(p);
  }
}

}  // namespace

std::string mamba1_layer_unsupported(const Mamba1LayerParams& p) {
  const LayerLaunch l = plan(p);
  return l.ok ? std::string() : l.why;
}

int64_t mamba1_layer_part_floats(int64_t E, int64_t N, int64_t R) {
  int dev = 0, sms = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
  const int64_t RN = R + 2 * N;
  const int64_t S = std::max<int64_t>(1, std::min<int64_t>(int64_t(sms) * kLWarps / RN, E / 4 / 32));
  return RN * S;
}

void mamba1_layer_step(const Mamba1LayerParams& p, cudaStream_t s) {
  const LayerLaunch l = plan(p);
  if (!l.ok) throw Error("mamba1_layer_step: " + l.why + " (internal: check mamba1_layer_unsupported first)");
  auto go = [&](auto kernel) { launch("mamba1_layer_step", kernel, dim3(l.grid), dim3(kLThreads), l.smem, s, p, l.g); };
  switch (p.wt) {
    case DType::BF16: return p.state_bf16 ? go(mamba1_layer_kernel<__nv_bfloat16, true>) : go(mamba1_layer_kernel<__nv_bfloat16, false>);
    case DType::F16: return p.state_bf16 ? go(mamba1_layer_kernel<__half, true>) : go(mamba1_layer_kernel<__half, false>);
    default: return p.state_bf16 ? go(mamba1_layer_kernel<float, true>) : go(mamba1_layer_kernel<float, false>);
  }
}

}  // namespace ssm::kernels::cuda
