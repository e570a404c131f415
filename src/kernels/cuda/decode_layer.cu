// One whole Mamba-1 layer of batch-1 decode in one kernel (see cuda.hpp Mamba1LayerParams).
//
// Why: at batch 1 every product is a matrix-vector product that streams its weights once, and the
// separate kernels of a layer (in_proj, conv step, x_proj, step, out_proj) each lose a few µs to
// ramp-up and tail while the memory system idles between them. Here one block of 16 warps per SM
// runs the layer's phases in order, separated by grid-wide barriers (all blocks resident).
//
// Phases (block b owns channels [b·E/G, (b+1)·E/G) and out_proj rows [b·D/G, (b+1)·D/G)):
//   A  in_proj: RMSNorm(h)·norm_w staged in shared memory; the block's x and z rows dealt to its
//      warps, every thread streaming its weight vectors through its own slots of a cp.async ring
//      (WStream, kLP in flight); then one thread per channel runs the conv step (window shift, taps,
//      bias, SiLU). out_proj's first vectors enter the ring here, to land during the next phases.
//   B  x_proj: row j is cut into S column pieces; grid warp j·S + s writes piece s's partial sum.
//      Every reader adds the pieces in the order s = 0 … S−1 (deterministic).
//   C  step: each block sums the partials into δ|B|C in shared memory (FalconMamba: the three RMS
//      norms), then 16 lanes per channel: Δ = softplus(dt_proj row · δ + bias), the state update
//      (lane n holds state n), y = C·h + D·u, gated by SiLU(z).
//   D  out_proj: y staged; h[r] += row · y (+ bias) for the block's rows, through the ring.
// The loads of phases B and C that do not depend on other blocks (dt_proj rows, A, D, states, the
// x_proj piece) are issued between arriving at a barrier and waiting on it. Every sum runs in a
// fixed order, so decode stays bit-reproducible.
//
// Status: opt-in (SSM_CUDA_LAYER=1). On the H200 it measured slower than the separate kernels
// (mamba-2.8b batch 1: 294 vs 382 tok/s): each grid barrier costs 3–11 µs and out_proj ~8 µs
// (docs/cuda.md, per-phase profile).
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
constexpr int kLP = 16;       // weight vectors in flight per thread (cp.async ring slots)
constexpr int kLBp = 4;       // x_proj vectors per lane loaded before the barrier
constexpr int kLRounds = 2;   // step rounds of 32 channels per block
constexpr int kLMaxCh = 64;   // channels per block (= kLRounds · 32)
constexpr int kLMaxRK = 16;   // dt_rank <= 16 · kLGs
constexpr int kLHv = 4;       // d_model <= 4 · 4 · kLThreads
constexpr int kLStamps = 8;   // profile stamps per block

struct LayerGeom {
  int64_t act = 0;       // floats of the staged activation (max(D, E), rounded up to 4)
  int64_t rn_pad = 0;    // floats of the staged δ|B|C (rounded up to 4)
  int64_t S = 1;         // column pieces per x_proj row
};

__device__ __forceinline__ uint64_t globaltimer_ns() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}


// Grid-wide barrier for a grid whose blocks are all resident (one per SM, checked by the launcher),
// in two halves so independent loads can be issued between them: grid_arrive publishes the block's
// writes (CTA barrier, then a release add by thread 0) into a counter that is zero at launch;
// grid_wait(k) returns once k·G arrivals are counted (acquire), i.e. every block arrived k times.
__device__ __forceinline__ void grid_arrive(unsigned* ctr) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    asm volatile("red.release.gpu.global.add.u32 [%0], 1;" ::"l"(ctr) : "memory");
  }
}
__device__ __forceinline__ void grid_wait(unsigned* ctr, unsigned k) {
  if (threadIdx.x == 0) {
    const unsigned target = k * gridDim.x;
    unsigned v;
    uint64_t t0 = 0;
    for (int spin = 0;; spin++) {
      asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(ctr) : "memory");
      if (v >= target) break;
      // A block that never arrives (the grid not co-resident) would hang the GPU: give up after
      // 10 s with a trap, which the host sees as a launch error.
      if (spin == 1024) t0 = globaltimer_ns();
      if (spin > 1024 && (spin & 1023) == 0 && globaltimer_ns() - t0 > 10000000000ull) __trap();
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
  uint4* ring = reinterpret_cast<uint4*>(dbc + g.rn_pad);  // (kLP, kLThreads): each thread's own copies
  __shared__ float tmp[32];
  __shared__ float sx[kLMaxCh], sz[kLMaxCh], su[kLMaxCh];  // the block's channels: x and z sums, conv output
  constexpr int V = Vec<WT>::n;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t G = gridDim.x;
  const int64_t D = p.D, E = p.E, N = p.N, R = p.R, K = p.K, RN = R + 2 * N;
  const int64_t DV = D / V, EV = E / V;
  const WT* Win = static_cast<const WT*>(p.in_w);
  const WT* Wx = static_cast<const WT*>(p.x_w);
  const WT* Wout = static_cast<const WT*>(p.out_w);
  const int64_t r0 = blockIdx.x * D / G, r1 = (blockIdx.x + 1) * D / G;  // out_proj rows
  const int64_t e0 = blockIdx.x * E / G, nc = (blockIdx.x + 1) * E / G - e0;  // channels (nc <= kLMaxCh)
  auto stamp = [&](int k) {
    if (p.prof && threadIdx.x == 0) p.prof[blockIdx.x * kLStamps + k] = globaltimer_ns();
  };

  // In_proj rows of the block: local row q < 2·nc is x row e0 + q (q < nc) or z row E + e0 + q − nc;
  // warp w takes q = w, w + 16, … and each lane reads vectors lane, lane + 32, … (VL per row) of each,
  // through the thread's ring slots (WStream), kLP vectors in flight across row ends.
  const int64_t nq = warp < 2 * nc ? (2 * nc - warp + kLWarps - 1) / kLWarps : 0;
  auto row_of = [&](int64_t i) {  // matrix row of this warp's i-th row
    const int64_t q = warp + i * kLWarps;
    return q < nc ? e0 + q : E + e0 + (q - nc);
  };
  // Thread t < nc: channel e0 + t's conv taps now (weights), its window after the wait.
  const bool ct = threadIdx.x < nc;
  const int64_t my_e = e0 + threadIdx.x;
  float cw[kLMaxK], cb = 0.f;
#pragma unroll
  for (int k = 0; k < kLMaxK; k++) cw[k] = ct && k < K ? p.conv_w[my_e * K + k] : 0.f;
  if (ct && p.conv_b) cb = p.conv_b[my_e];
  for (int64_t k = threadIdx.x; k < D; k += kLThreads) act[k] = p.norm_w[k];  // h multiplies it after the wait
  auto in_rows = make_stream<WT, kLThreads, kLP>(ring, [&](int64_t i) { return Win + row_of(i) * D; }, nq, DV);
  in_rows.prologue();
  pdl_trigger();
  pdl_wait();  // h, the states and the scratch belong to the previous kernel until here
  stamp(0);

  // ---- Phase A: RMSNorm(h) staged, in_proj rows, conv step ----
  void* cst = state_at(p.states, SBF, int64_t(p.slots[0]) * p.slot_stride + p.conv_off);
  float win[kLMaxK];
#pragma unroll
  for (int k = 0; k < kLMaxK; k++) win[k] = ct && k < K - 1 ? ld_state(cst, SBF, k * E + my_e) : 0.f;
  {
    float ss = 0.f;
    float4 hv[kLHv];
#pragma unroll
    for (int q = 0; q < kLHv; q++) {
      const int64_t k = (threadIdx.x + int64_t(q) * kLThreads) * 4;
      hv[q] = k < D ? *reinterpret_cast<const float4*>(p.h + k) : make_float4(0.f, 0.f, 0.f, 0.f);
      ss += hv[q].x * hv[q].x + hv[q].y * hv[q].y + hv[q].z * hv[q].z + hv[q].w * hv[q].w;
    }
    const float rs = rsqrtf(block_sum(ss, tmp) / float(D) + p.eps);  // (its barriers also publish the norm weights)
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
  in_rows.run(act, [&](int64_t q, float sum) {
    const int64_t n = row_of(q);
    sum += p.in_b ? p.in_b[n] : 0.f;
    if (lane == 0) (n < E ? sx[n - e0] : sz[n - E - e0]) = sum;
  });
  // out_proj's first vectors into the ring now (weights): they land during the barriers and the
  // small phases, which leave the memory system idle.
  const int64_t nqd = warp < r1 - r0 ? (r1 - r0 - warp + kLWarps - 1) / kLWarps : 0;
  auto out_rows = make_stream<WT, kLThreads, kLP>(ring, [&](int64_t i) { return Wout + (r0 + warp + i * kLWarps) * E; }, nqd, EV);
  out_rows.prologue();
  __syncthreads();
  if (ct) {
    const float xn = sx[threadIdx.x];
    float c = cb;
#pragma unroll
    for (int k = 0; k < kLMaxK; k++)
      if (k < K - 1) c = fmaf(cw[k], win[k], c);
#pragma unroll
    for (int k = 0; k < kLMaxK; k++)
      if (k == K - 1) c = fmaf(cw[k], xn, c);
#pragma unroll
    for (int k = 1; k < kLMaxK; k++)
      if (k < K - 1) st_state(cst, SBF, (k - 1) * E + my_e, win[k]);
    if (K > 1) st_state(cst, SBF, (K - 2) * E + my_e, xn);
    const float u = silu_d(c);
    su[threadIdx.x] = u;
    p.xc[my_e] = u;
  }
  stamp(2);
  grid_arrive(p.bar);
  // Loads for phases B and C that do not depend on other blocks, issued between arriving and
  // waiting: this warp's x_proj piece (its first kLBp vectors per lane) and, per round of the step
  // (16 lanes per channel, 32 channels per round), the dt_proj row, A, bias, D and state.
  const int64_t S = g.S, GW = G * kLWarps, gw = int64_t(warp) * G + blockIdx.x;
  uint4 xw[kLBp];
  {
    const int64_t j = gw / S, s = gw - j * S, c0 = s * EV / S, c1 = (s + 1) * EV / S;
#pragma unroll
    for (int u = 0; u < kLBp; u++) {
      const int64_t v = c0 + lane + 32 * u;
      if (gw < RN * S && v < c1) xw[u] = Vec<WT>::raw(Wx + j * E + v * V);
    }
  }
  const int li = threadIdx.x % kLGs, grp = threadIdx.x / kLGs;
  constexpr int kGroups = kLThreads / kLGs;
  float dtw[kLRounds][kLMaxRK], Av[kLRounds], hv0[kLRounds], bias_c[kLRounds], Dc[kLRounds];
  void* hst[kLRounds];
#pragma unroll
  for (int rd = 0; rd < kLRounds; rd++) {
    const int64_t i = grp + int64_t(rd) * kGroups, e = e0 + i;
    const bool ok = i < nc;
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
  grid_wait(p.bar, 1);
  stamp(3);

  // ---- Phase B: x_proj pieces ----
  for (int64_t it = gw; it < RN * S; it += GW) {
    const int64_t j = it / S, s = it - j * S;
    const int64_t c0 = s * EV / S, c1 = (s + 1) * EV / S;
    const WT* w = Wx + j * E;
    // acc + weight vector r · xc[v·V, v·V + V) (xc written by other blocks: read from L2).
    auto dot_xc = [&](uint4 r, int64_t v, float acc) {
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
      return acc;
    };
    float acc = 0.f;
#pragma unroll
    for (int u = 0; u < kLBp; u++) {
      const int64_t v = c0 + lane + 32 * u;
      if (v < c1) acc = dot_xc(it == gw ? xw[u] : Vec<WT>::raw(w + v * V), v, acc);
    }
    for (int64_t v = c0 + lane + 32 * kLBp; v < c1; v += 32) acc = dot_xc(Vec<WT>::raw(w + v * V), v, acc);  // longer pieces
    const float sum = warp_sum(acc);
    if (lane == 0) p.part[it] = sum;
  }
  grid_arrive(p.bar);
  grid_wait(p.bar, 2);
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
      const int64_t i = grp + int64_t(rd) * kGroups, e = e0 + i;
      if (rd > 0 && int64_t(rd) * kGroups >= nc) break;  // uniform over the block
      const bool ok = i < nc;
      float dr = 0.f;
#pragma unroll
      for (int k = 0; k < kLMaxRK; k++) {
        const int64_t r = li + int64_t(k) * kLGs;
        if (r < R) dr = fmaf(dtw[rd][k], dbc[r], dr);
      }
      for (int o = kLGs / 2; o > 0; o >>= 1) dr += __shfl_xor_sync(0xffffffffu, dr, o);
      const float u = ok ? su[i] : 0.f, z = ok ? sz[i] : 0.f;
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
  grid_arrive(p.bar);
  grid_wait(p.bar, 3);
  stamp(5);

  // ---- Phase D: out_proj rows of this block, residual add ----
  for (int64_t k = threadIdx.x * 4; k < E; k += kLThreads * 4)
    *reinterpret_cast<float4*>(act + k) = __ldcg(reinterpret_cast<const float4*>(p.y + k));
  __syncthreads();
  stamp(6);
  out_rows.run(act, [&](int64_t i, float sum) {
    const int64_t r = r0 + warp + i * kLWarps;
    if (lane == 0) p.h[r] += sum + (p.out_b ? p.out_b[r] : 0.f);
  });
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

// Column pieces per x_proj row: one grid warp per piece, pieces of at least 32 vectors (EV: vectors per row).
int64_t xproj_pieces(int64_t sms, int64_t RN, int64_t EV) { return std::max<int64_t>(1, std::min<int64_t>(sms * kLWarps / RN, EV / 32)); }

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
  if (major < 9) return fail("needs compute capability 9.0 or later");
  constexpr int V = Vec<WT>::n;
  if (p.N < 1 || p.N > kLGs) return fail("d_state must be 1..16");
  if (p.K < 1 || p.K > kLMaxK) return fail("d_conv must be 1..4");
  if (p.D % V || p.E % V || p.D % 4 || p.E % 4) return fail("d_model and d_inner must be multiples of 8");
  if (p.D > int64_t(kLHv) * 4 * kLThreads) return fail("d_model above 8192");
  if (p.R < 1 || p.R > int64_t(kLMaxRK) * kLGs) return fail("dt_rank must be 1..256");
  if ((p.E + sms - 1) / sms > kLMaxCh) return fail("more than 64 channels per SM (d_inner too large for this GPU)");
  for (const void* q : {p.in_w, p.x_w, p.out_w, static_cast<const void*>(p.h), static_cast<const void*>(p.y),
                        static_cast<const void*>(p.xc)})
    if (reinterpret_cast<uintptr_t>(q) & 15) return fail("operands must be 16-byte aligned");
  LayerGeom& g = l.g;
  g.act = (std::max(p.D, p.E) + 3) / 4 * 4;
  const int64_t RN = p.R + 2 * p.N;
  g.rn_pad = (RN + 3) / 4 * 4;
  g.S = xproj_pieces(sms, RN, p.E / V);
  const int64_t fixed = (g.act + g.rn_pad) * 4;
  l.smem = size_t(fixed) + size_t(kLP) * kLThreads * 16;
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
  return RN * xproj_pieces(sms, RN, E / 4);  // f32 weights (4 per vector) give the most pieces
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
