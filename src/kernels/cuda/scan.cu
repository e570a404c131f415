// Mamba-1 selective scan (Gu & Dao 2023, Alg. 2) on the GPU; semantics of kernels/ref/scan.cpp.
// Prefill: by default one warp per channel scanning tiles of 256 steps in a single pass
// (scan_warp_kernel; d_state 4, 8, 12 or 16 with aligned operands, every Mamba-1 checkpoint). The
// other shapes, and SSM_CUDA_SCAN=chunked, take the time-chunked kernels: for N <= 16 one thread per
// channel holding all its states in registers (scan_ch_kernel); for larger N a group of GS lanes per
// channel (GS = N rounded up to a power of two, at most 32), each lane keeping SPL = ceil(N/GS)
// states, C·h reduced with shuffles inside the group (scan_kernel). Both run a long sequence as
// parallel time chunks (ScanChunks). dt softplus, the D skip and the z gate are fused; the step
// kernel also fuses dt_proj and FalconMamba's weightless B/C/Δ norms.
#include <algorithm>
#include <cstdlib>
#include <string>
#include <type_traits>

#include "kernels/cuda/common.cuh"
#include "ssm/error.hpp"

namespace ssm::kernels::cuda {
namespace {

constexpr int kScanThreads = 128;

__device__ __forceinline__ float group_sum(float v, int gs) {
  for (int o = gs / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Prefill: the block's channels walk the sequence in chunks of kTc steps staged in shared memory by
// asynchronous copies, double-buffered (chunk c+1 is in flight while chunk c is scanned), so the
// recurrence reads only shared memory; y of a chunk goes out through shared memory too.
constexpr int kPsThreads = 256, kTc = 32;

__device__ __forceinline__ void cp_async4(float* dst, const float* src) {
  const unsigned d = unsigned(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(d), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory"); }

__device__ __forceinline__ float p_bias(const ScanParams& p, int64_t e) { return p.dt_bias ? p.dt_bias[e] : 0.f; }

size_t scan_smem_floats(int64_t N, int gs) {
  const int64_t cpb = kPsThreads / gs;
  return size_t(2 * (3 * kTc * cpb + 2 * kTc * N) + kTc * cpb);
}

// Time-chunked form (ScanChunks, for long sequences with too few channels to fill the GPU): chunk k
// of blockIdx.y covers [k·len, (k+1)·len). Pass kEnds starts it from a zero state and writes only its
// end state and Σ Δ; scan_carry turns those into each chunk's entering state; pass kOut then starts
// from that state and writes y. Pass kWhole is the single-chunk scan (state in and out of p.h).
enum ScanPass { kWhole, kEnds, kOut };
struct ScanChunks {
  int64_t len = 0, n = 1;
  float* h = nullptr;    // (n, E, N): chunk end states from zero, then entering states
  float* sdt = nullptr;  // (n, E): Σ Δ over the chunk
};

template <int SPL, int PASS>
__global__ void __launch_bounds__(kPsThreads) scan_kernel(ScanParams p, int gs, ScanChunks ch) {
  extern __shared__ float sm[];
  const int cpb = kPsThreads / gs;
  const int64_t e0 = int64_t(blockIdx.x) * cpb, e = e0 + threadIdx.x / gs;
  const int k = threadIdx.x / gs, li = threadIdx.x % gs;
  const bool active = e < p.E;
  const int64_t S = 3 * kTc * cpb + 2 * kTc * p.N;  // one stage: u | delta | z | B | C
  float* ys = sm + 2 * S;
  auto issue = [&](int buf, int64_t t0) {
    float* d = sm + buf * S;
    const int64_t len = min(int64_t(kTc), (PASS == kWhole ? p.L : min(p.L, (int64_t(blockIdx.y) + 1) * ch.len)) - t0);
    for (int i = threadIdx.x; i < kTc * cpb; i += kPsThreads) {
      const int64_t tt = i / cpb, ee = e0 + i % cpb;
      if (tt < len && ee < p.E) {
        const int64_t t = t0 + tt;
        cp_async4(d + i, p.u + t * p.u_stride + ee);
        cp_async4(d + kTc * cpb + i, p.delta + t * p.delta_stride + ee);
        if (p.z && PASS != kEnds) cp_async4(d + 2 * kTc * cpb + i, p.z + t * p.z_stride + ee);
      }
    }
    for (int64_t i = threadIdx.x; i < kTc * p.N; i += kPsThreads) {
      const int64_t tt = i / p.N, n = i % p.N;
      if (tt < len) {
        cp_async4(d + 3 * kTc * cpb + i, p.B + (t0 + tt) * p.B_stride + n);
        cp_async4(d + 3 * kTc * cpb + kTc * p.N + i, p.C + (t0 + tt) * p.C_stride + n);
      }
    }
    cp_async_commit();
  };
  const int64_t kc = blockIdx.y, tbeg = PASS == kWhole ? 0 : kc * ch.len;
  const int64_t tend = PASS == kWhole ? p.L : min(p.L, tbeg + ch.len);
  float* h_io = PASS == kWhole ? p.h : ch.h + kc * p.E * p.N;
  float h[SPL], A[SPL], sdt = 0.f;
  for (int j = 0; j < SPL; j++) {
    const int64_t n = li + j * gs;
    const bool ok = active && n < p.N;
    h[j] = ok && PASS != kEnds ? h_io[e * p.N + n] : 0.f;
    A[j] = ok ? p.A[e * p.N + n] : 0.f;
  }
  const float Dv = active && p.D ? p.D[e] : 0.f;
  issue(0, tbeg);
  for (int64_t t0 = tbeg, c = 0; t0 < tend; t0 += kTc, c++) {
    const int64_t len = min(int64_t(kTc), tend - t0);
    if (t0 + kTc < tend) {
      issue(int((c + 1) & 1), t0 + kTc);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    float* d = sm + (c & 1) * S;
    // Per (step, channel) work once, not once per lane: Δ = softplus(δ + bias), Δ·u, silu(z).
    for (int i = threadIdx.x; i < len * cpb; i += kPsThreads) {
      const int64_t ee = e0 + i % cpb;
      if (ee < p.E) {
        const float dt = softplus_d(d[kTc * cpb + i] + p_bias(p, ee));
        d[kTc * cpb + i] = dt;
        if (p.z && PASS != kEnds) d[2 * kTc * cpb + i] = silu_d(d[2 * kTc * cpb + i]);
      }
    }
    __syncthreads();
    const float* su = d;
    const float* sd = d + kTc * cpb;
    const float* sz = d + 2 * kTc * cpb;
    const int N = int(p.N);
    const float* sB = d + 3 * kTc * cpb + li;
    const float* sC = sB + kTc * N;
    if constexpr (PASS == kEnds) {
#pragma unroll 4
      for (int tt = 0; tt < int(len); tt++) {
        const float dt = sd[tt * cpb + k], du = dt * su[tt * cpb + k];
        sdt += dt;
#pragma unroll
        for (int j = 0; j < SPL; j++)
          if (li + j * gs < N) h[j] = fmaf(__expf(dt * A[j]), h[j], du * sB[tt * N + j * gs]);
      }
      __syncthreads();  // the next chunk's copies overwrite this buffer
    } else {
#pragma unroll 4
      for (int tt = 0; tt < int(len); tt++) {
        const float u = su[tt * cpb + k];
        const float dt = sd[tt * cpb + k], du = dt * u;
        float part = 0.f;
#pragma unroll
        for (int j = 0; j < SPL; j++) {
          if (li + j * gs < N) {
            h[j] = fmaf(__expf(dt * A[j]), h[j], du * sB[tt * N + j * gs]);
            part = fmaf(h[j], sC[tt * N + j * gs], part);
          }
        }
        part = group_sum(part, gs);
        if (li == 0) {
          float y = fmaf(Dv, u, part);
          if (p.z) y *= sz[tt * cpb + k];
          ys[tt * cpb + k] = y;
        }
      }
      __syncthreads();
      for (int i = threadIdx.x; i < len * cpb; i += kPsThreads) {
        const int64_t ee = e0 + i % cpb;
        if (ee < p.E) p.y[(t0 + i / cpb) * p.y_stride + ee] = ys[i];
      }
    }
  }
  if constexpr (PASS != kOut) {  // after kOut, scan_carry has already written the final state
    for (int j = 0; j < SPL; j++) {
      const int64_t n = li + j * gs;
      if (active && n < p.N) h_io[e * p.N + n] = h[j];
    }
    if (PASS == kEnds && active && li == 0) ch.sdt[kc * p.E + e] = sdt;
  }
}

// Thread per channel, for N <= 16 (every Mamba-1 / FalconMamba checkpoint has 16): the channel's NS
// states (N padded with B = C = 0, which keeps the padding at 0) live in one thread's registers, so
// C·h needs no cross-lane reduction, and B, C of a step are read from shared memory as warp-wide
// broadcasts. Blocks of kChThreads channels; kTs steps of u | δ | z | B | C staged per stage by
// asynchronous copies, double-buffered; y goes straight to global memory (coalesced over channels).
// The time-chunked passes are those of scan_kernel.
constexpr int kChThreads = 128, kTs = 16;

template <int NS>
constexpr int64_t ch_stage_floats() { return 3 * kTs * kChThreads + 2 * kTs * NS; }

template <int NS, int PASS>
__global__ void __launch_bounds__(kChThreads) scan_ch_kernel(ScanParams p, ScanChunks ch) {
  extern __shared__ __align__(16) float sm[];
  constexpr int64_t S = ch_stage_floats<NS>();
  const int tid = threadIdx.x;
  const int64_t e = int64_t(blockIdx.x) * kChThreads + tid;
  const bool active = e < p.E;
  const int64_t kc = blockIdx.y, tbeg = PASS == kWhole ? 0 : kc * ch.len;
  const int64_t tend = PASS == kWhole ? p.L : min(p.L, tbeg + ch.len);
  const int N = int(p.N);
  auto issue = [&](int buf, int64_t t0) {
    float* d = sm + buf * S;
    const int64_t len = min(int64_t(kTs), tend - t0);
    if (active)
      for (int tt = 0; tt < int(len); tt++) {
        const int64_t t = t0 + tt;
        cp_async4(d + tt * kChThreads + tid, p.u + t * p.u_stride + e);
        cp_async4(d + (kTs + tt) * kChThreads + tid, p.delta + t * p.delta_stride + e);
        if (p.z && PASS != kEnds) cp_async4(d + (2 * kTs + tt) * kChThreads + tid, p.z + t * p.z_stride + e);
      }
    float* dB = d + 3 * kTs * kChThreads;
    for (int i = tid; i < kTs * NS; i += kChThreads) {
      const int tt = i / NS, n = i % NS;
      if (tt < len && n < N) {
        cp_async4(dB + i, p.B + (t0 + tt) * p.B_stride + n);
        if (PASS != kEnds) cp_async4(dB + kTs * NS + i, p.C + (t0 + tt) * p.C_stride + n);
      } else {  // padding states and past-the-end steps read zeros
        dB[i] = 0.f;
        dB[kTs * NS + i] = 0.f;
      }
    }
    cp_async_commit();
  };
  float* h_io = PASS == kWhole ? p.h : ch.h + kc * p.E * p.N;
  float h[NS], A[NS];
#pragma unroll
  for (int n = 0; n < NS; n++) {
    const bool ok = active && n < N;
    h[n] = ok && PASS != kEnds ? h_io[e * p.N + n] : 0.f;
    A[n] = ok ? p.A[e * p.N + n] : 0.f;
  }
  const float Dv = active && p.D ? p.D[e] : 0.f, bias = active ? p_bias(p, e) : 0.f;
  float sdt = 0.f;
  issue(0, tbeg);
  for (int64_t t0 = tbeg, c = 0; t0 < tend; t0 += kTs, c++) {
    const int64_t len = min(int64_t(kTs), tend - t0);
    if (t0 + kTs < tend) {
      issue(int((c + 1) & 1), t0 + kTs);
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const float* d = sm + (c & 1) * S;
    const float* sB = d + 3 * kTs * kChThreads;
    const float* sC = sB + kTs * NS;
    if (active) {
      for (int tt = 0; tt < int(len); tt++) {
        const float u = d[tt * kChThreads + tid];
        const float dt = softplus_d(d[(kTs + tt) * kChThreads + tid] + bias), du = dt * u;
        float part = 0.f;
#pragma unroll
        for (int n = 0; n < NS; n += 4) {
          const float4 b4 = *reinterpret_cast<const float4*>(sB + tt * NS + n);
          h[n] = fmaf(__expf(dt * A[n]), h[n], du * b4.x);
          h[n + 1] = fmaf(__expf(dt * A[n + 1]), h[n + 1], du * b4.y);
          h[n + 2] = fmaf(__expf(dt * A[n + 2]), h[n + 2], du * b4.z);
          h[n + 3] = fmaf(__expf(dt * A[n + 3]), h[n + 3], du * b4.w);
          if constexpr (PASS != kEnds) {
            const float4 c4 = *reinterpret_cast<const float4*>(sC + tt * NS + n);
            part = fmaf(h[n], c4.x, part);
            part = fmaf(h[n + 1], c4.y, part);
            part = fmaf(h[n + 2], c4.z, part);
            part = fmaf(h[n + 3], c4.w, part);
          }
        }
        if constexpr (PASS == kEnds) {
          sdt += dt;
        } else {
          float y = fmaf(Dv, u, part);
          if (p.z) y *= silu_d(d[(2 * kTs + tt) * kChThreads + tid]);
          p.y[(t0 + tt) * p.y_stride + e] = y;
        }
      }
    }
    __syncthreads();  // the next stage's copies overwrite this buffer
  }
  if constexpr (PASS != kOut) {
    if (active) {
#pragma unroll
      for (int n = 0; n < NS; n++)
        if (n < N) h_io[e * p.N + n] = h[n];
      if (PASS == kEnds) ch.sdt[kc * p.E + e] = sdt;
    }
  }
}

// One thread per (channel, state): h_in[0] = h, h_in[k+1] = exp(A·ΣΔ_k)·h_in[k] + end_k, in place
// over the chunk end states; the state after the last chunk goes back to p.h. Eight chunks' values
// are loaded before any is used (one memory wait per eight chunks, not one per chunk).
__global__ void scan_carry_kernel(ScanParams p, ScanChunks ch) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, EN = p.E * p.N;
  if (i >= EN) return;
  const int64_t e = i / p.N;
  const float A = p.A[i];
  float run = p.h[i];
  constexpr int U = 8;
  for (int64_t k0 = 0; k0 < ch.n; k0 += U) {
    float end[U], decay[U];
#pragma unroll
    for (int u = 0; u < U; u++)
      if (k0 + u < ch.n) {
        end[u] = ch.h[(k0 + u) * EN + i];
        decay[u] = __expf(A * ch.sdt[(k0 + u) * p.E + e]);
      }
#pragma unroll
    for (int u = 0; u < U; u++)
      if (k0 + u < ch.n) {
        ch.h[(k0 + u) * EN + i] = run;
        run = fmaf(decay[u], run, end[u]);
      }
  }
  p.h[i] = run;
}

// Weightless RMSNorm of v[0, n) in shared memory (all threads call).
__device__ void smem_rms(float* v, int64_t n, float eps, float* tmp) {
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += v[i] * v[i];
  const float r = rsqrtf(block_sum(ss, tmp) / float(n) + eps);
  __syncthreads();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) v[i] *= r;
  __syncthreads();
}

// dst[0, n) = w[off, off + n) widened to f32, by the whole block: 16-byte loads, all issued before
// the first is stored (one memory round trip) when the range is 16-byte aligned, else scalar loads
// in batches of 8.
template <class WT>
__device__ void stage_rows_t(float* dst, const WT* w, int64_t n) {
  constexpr int V = Vec<WT>::n, kMax = 4;
  if ((reinterpret_cast<uintptr_t>(w) & 15) == 0 && n % V == 0) {
    const int64_t nv = n / V;
    for (int64_t base = 0; base < nv; base += int64_t(kMax) * blockDim.x) {
      uint4 raw[kMax];
#pragma unroll
      for (int u = 0; u < kMax; u++) {
        const int64_t i = base + threadIdx.x + int64_t(u) * blockDim.x;
        if (i < nv) raw[u] = __ldg(reinterpret_cast<const uint4*>(w) + i);
      }
#pragma unroll
      for (int u = 0; u < kMax; u++) {
        const int64_t i = base + threadIdx.x + int64_t(u) * blockDim.x;
        if (i < nv) Vec<WT>::widen(raw[u], dst + i * V);
      }
    }
    return;
  }
  for (int64_t base = 0; base < n; base += 8 * int64_t(blockDim.x)) {
    float v[8];
#pragma unroll
    for (int u = 0; u < 8; u++) {
      const int64_t i = base + threadIdx.x + int64_t(u) * blockDim.x;
      v[u] = i < n ? to_f(w[i]) : 0.f;
    }
#pragma unroll
    for (int u = 0; u < 8; u++) {
      const int64_t i = base + threadIdx.x + int64_t(u) * blockDim.x;
      if (i < n) dst[i] = v[u];
    }
  }
}
__device__ void stage_rows(float* dst, const void* w, DType t, int64_t off, int64_t n) {
  switch (t) {
    case DType::BF16: return stage_rows_t(dst, static_cast<const __nv_bfloat16*>(w) + off, n);
    case DType::F16: return stage_rows_t(dst, static_cast<const __half*>(w) + off, n);
    default: return stage_rows_t(dst, static_cast<const float*>(w) + off, n);
  }
}

// grid (ceil(E / channels per block), ceil(B / kStepSeqs)); dynamic shared: the block's dt_proj rows
// (channels per block × R floats, staged once for up to kStepSeqs sequences) and each sequence's
// δ | B | C row. Everything that does not depend on the previous kernels (A, dt_proj rows, biases) is
// loaded before pdl_wait(); then the block's sequences' states and inputs, one barrier, the updates.
constexpr int kStepSeqs = 8;

template <int SPL>
__global__ void __launch_bounds__(kScanThreads) mamba1_step_kernel(Mamba1StepParams p, int gs) {
  extern __shared__ float sh[];
  __shared__ float tmp[32];
  const int64_t RN = p.R + 2 * p.N;
  const int cpb = kScanThreads / gs;  // channels per block
  const int64_t e0 = int64_t(blockIdx.x) * cpb, b0 = int64_t(blockIdx.y) * kStepSeqs;
  const int nb = int(min(int64_t(kStepSeqs), p.B - b0));
  const int64_t e = e0 + threadIdx.x / gs;
  const int li = threadIdx.x % gs;
  const bool active = e < p.E;
  float* dtw = sh;              // (cpb, R)
  float* rows = sh + cpb * p.R;  // (kStepSeqs, RN)
  stage_rows(dtw, p.dt_w, p.dt_w_dtype, e0 * p.R, min(int64_t(cpb), p.E - e0) * p.R);
  float A[SPL];
  for (int j = 0; j < SPL; j++) {
    const int64_t n = li + j * gs;
    A[j] = active && n < p.N ? p.A[e * p.N + n] : 0.f;
  }
  const float bias = active ? p.dt_bias[e] : 0.f;
  const float Dv = active && p.D ? p.D[e] : 0.f;
  pdl_trigger();
  pdl_wait();
  for (int64_t i = threadIdx.x; i < nb * RN; i += blockDim.x) rows[i] = p.dbc[(b0 + i / RN) * p.dbc_stride + i % RN];
  float hv[kStepSeqs][SPL], u[kStepSeqs], zv[kStepSeqs];
#pragma unroll
  for (int q = 0; q < kStepSeqs; q++) {
    const int64_t b = b0 + q;
    const bool ok = active && q < nb;
    const void* h = ok ? state_at(p.states, p.state_bf16, int64_t(p.slots[b]) * p.slot_stride + e * p.N) : nullptr;
    for (int j = 0; j < SPL; j++) {
      const int64_t n = li + j * gs;
      hv[q][j] = ok && n < p.N ? ld_state(h, p.state_bf16, n) : 0.f;
    }
    u[q] = ok ? p.u[b * p.u_stride + e] : 0.f;
    zv[q] = ok && p.z ? p.z[b * p.z_stride + e] : 0.f;
  }
  __syncthreads();
  if (p.bcdt_rms)
    for (int q = 0; q < nb; q++) {
      float* row = rows + q * RN;
      smem_rms(row, p.R, p.rms_eps, tmp);
      smem_rms(row + p.R, p.N, p.rms_eps, tmp);
      smem_rms(row + p.R + p.N, p.N, p.rms_eps, tmp);
    }
  const float* wr = dtw + (active ? (e - e0) * p.R : 0);
#pragma unroll
  for (int q = 0; q < kStepSeqs; q++) {
    if (q >= nb) break;  // uniform over the block
    const float* dl = rows + q * RN;
    const float* Bt = dl + p.R;
    const float* Ct = dl + p.R + p.N;
    float dr = 0.f;  // dt_proj row e · δ
    if (active)
      for (int64_t r = li; r < p.R; r += gs) dr = fmaf(wr[r], dl[r], dr);
    dr = group_sum(dr, gs);
    const float dt = softplus_d(dr + bias);
    void* h = active ? state_at(p.states, p.state_bf16, int64_t(p.slots[b0 + q]) * p.slot_stride + e * p.N) : nullptr;
    float part = 0.f;
    for (int j = 0; j < SPL; j++) {
      const int64_t n = li + j * gs;
      if (active && n < p.N) {
        const float hn = expf(dt * A[j]) * hv[q][j] + dt * Bt[n] * u[q];
        st_state(h, p.state_bf16, n, hn);
        part = fmaf(hn, Ct[n], part);
      }
    }
    part = group_sum(part, gs);
    if (active && li == 0) {
      float y = part + Dv * u[q];
      if (p.z) y *= silu_d(zv[q]);
      p.y[(b0 + q) * p.y_stride + e] = y;
    }
  }
}

// Batches > 8, where δ·dt_proj comes from a GEMM (p.delta): grid (ceil(E·gs / kBatchThreads),
// ceil(B / SB)), a group of gs lanes per channel, SPL states per lane, SB sequences per thread (all
// their loads issued before the first update, so a thread waits on memory once, and the A, bias and
// D loads serve SB sequences); no shared memory and no block-wide barrier. State elements ST (f32 or
// bf16 storage). Same arithmetic, in the same order, as mamba1_step_kernel.
constexpr int kBatchThreads = 256;

template <int SPL, int SB, class ST>
__global__ void __launch_bounds__(kBatchThreads) mamba1_step_batched_kernel(Mamba1StepParams p, int gs) {
  const int64_t e = (int64_t(blockIdx.x) * kBatchThreads + threadIdx.x) / gs, b0 = int64_t(blockIdx.y) * SB;
  const int li = threadIdx.x % gs;
  const bool active = e < p.E;
  float A[SPL];
#pragma unroll
  for (int j = 0; j < SPL; j++) {
    const int64_t n = li + j * gs;
    A[j] = active && n < p.N ? p.A[e * p.N + n] : 0.f;
  }
  const float bias = active ? p.dt_bias[e] : 0.f, Dv = active && p.D ? p.D[e] : 0.f;
  pdl_trigger();
  pdl_wait();
  // Threads past the last channel or sequence stay to the end: the group sum shuffles whole warps.
  float hv[SB][SPL], Bv[SB][SPL], Cv[SB][SPL], u[SB], zv[SB], dt[SB];
  ST* h[SB];
#pragma unroll
  for (int q = 0; q < SB; q++) {
    const int64_t b = b0 + q;
    const bool ok = active && b < p.B;
    const float* row = p.dbc + (ok ? b : 0) * p.dbc_stride;
    h[q] = static_cast<ST*>(p.states) + (ok ? int64_t(p.slots[b]) * p.slot_stride + e * p.N : 0);
#pragma unroll
    for (int j = 0; j < SPL; j++) {
      const int64_t n = li + j * gs;
      const bool in = ok && n < p.N;
      hv[q][j] = in ? to_f(h[q][n]) : 0.f;
      Bv[q][j] = in ? row[p.R + n] : 0.f;
      Cv[q][j] = in ? row[p.R + p.N + n] : 0.f;
    }
    u[q] = ok ? p.u[b * p.u_stride + e] : 0.f;
    zv[q] = ok && p.z ? p.z[b * p.z_stride + e] : 0.f;
    dt[q] = ok ? p.delta[b * p.delta_stride + e] : 0.f;
  }
#pragma unroll
  for (int q = 0; q < SB; q++) {
    const int64_t b = b0 + q;
    const bool ok = active && b < p.B;
    const float d = softplus_d(dt[q] + bias);
    float part = 0.f;
#pragma unroll
    for (int j = 0; j < SPL; j++) {
      const int64_t n = li + j * gs;
      if (ok && n < p.N) {
        const float hn = expf(d * A[j]) * hv[q][j] + d * Bv[q][j] * u[q];
        h[q][n] = from_f<ST>(hn);
        part = fmaf(hn, Cv[q][j], part);
      }
    }
    part = group_sum(part, gs);
    if (ok && li == 0) {
      float y = part + Dv * u[q];
      if (p.z) y *= silu_d(zv[q]);
      p.y[b * p.y_stride + e] = y;
    }
  }
}

// Batches > 8 with N <= 16 (every Mamba-1 checkpoint): one thread per (channel, sequence) holding
// all N states in registers, so the per-channel work (dt_proj row · δ, softplus, D skip, z gate) is
// done once per sequence instead of once per lane of a lane group, and C·h needs no shuffles.
// Block: 32 channels (a warp's lanes) × W warps; warp w takes sequences b0 + w·SB .. + SB-1, so the
// warps share the block's 32 dt_proj rows, staged once in shared memory before pdl_wait(). Each warp
// stages its own sequences' δ | B | C rows after it and applies FalconMamba's weightless norms there.
// Each thread issues its sequences' state loads (16-byte vectors when VS: N == 16 and aligned) before
// that staging. y is written in f32 or, with y_half, in the weight dtype (the next GEMM's input, so
// no conversion kernel runs between them).
constexpr int kRowLanes = 32, kRowMaxN = 16;

template <class ST> struct StateRow;  // N = 16 states of one channel, 16-byte loads and stores
template <> struct StateRow<float> {
  __device__ static void ld(const float* h, float* v) {
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const float4 f = reinterpret_cast<const float4*>(h)[i];
      v[4 * i] = f.x, v[4 * i + 1] = f.y, v[4 * i + 2] = f.z, v[4 * i + 3] = f.w;
    }
  }
  __device__ static void st(float* h, const float* v) {
#pragma unroll
    for (int i = 0; i < 4; i++) reinterpret_cast<float4*>(h)[i] = make_float4(v[4 * i], v[4 * i + 1], v[4 * i + 2], v[4 * i + 3]);
  }
};
template <> struct StateRow<__nv_bfloat16> {
  __device__ static void ld(const __nv_bfloat16* h, float* v) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
      const uint4 r = reinterpret_cast<const uint4*>(h)[i];
      Vec<__nv_bfloat16>::widen(r, v + 8 * i);
    }
  }
  __device__ static void st(__nv_bfloat16* h, const float* v) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
      uint4 r;
      __nv_bfloat162* q = reinterpret_cast<__nv_bfloat162*>(&r);
#pragma unroll
      for (int j = 0; j < 4; j++) q[j] = __floats2bfloat162_rn(v[8 * i + 2 * j], v[8 * i + 2 * j + 1]);
      reinterpret_cast<uint4*>(h)[i] = r;
    }
  }
};

// Layout: the dt_proj rows are staged in the weight dtype as 16-byte units (row stride an odd number
// of units, so a quarter-warp's 16-byte reads hit distinct banks; no conversion or index division at
// staging), each warp stages and normalises only its own sequences' δ | B | C rows (δ zero-padded to
// whole units, B and C to multiples of 4, so dt_proj reads 8 weights and 2 × 4 δ per round and B/C
// are 16-byte broadcasts; rows without padding are copied in 16-byte units), A·log2 e sits in shared
// memory instead of 16 registers, and the states' loads are issued before the row staging.
struct RowsLayout {
  int UR, SW, RP, NP, RNp;  // units per dt_proj row, unit stride (odd), padded δ, padded N, row length
  __host__ __device__ RowsLayout(int R, int N, int V) {
    UR = (R + V - 1) / V, SW = UR | 1, RP = UR * V, NP = (N + 3) / 4 * 4, RNp = RP + 2 * NP;
  }
};
constexpr int kRowAStride = kRowMaxN + 1;  // A·log2 e rows in shared memory: odd stride, conflict-free
size_t rows_smem_bytes(int64_t R, int64_t N, int W, int SB, int V) {
  const RowsLayout l(int(R), int(N), V);
  return size_t(kRowLanes) * l.SW * 16 + size_t(W) * SB * l.RNp * sizeof(float) + size_t(kRowLanes) * kRowAStride * sizeof(float);
}

// W warps per block (32 channels × W·SB sequences); with one sequence per warp, at most 64 registers
// (32 / W blocks of W warps per SM).
template <class WT, class ST, int W, int SB, bool VS>
__global__ void __launch_bounds__(32 * W, SB == 1 ? 32 / W : 1) mamba1_step_rows_kernel(Mamba1StepParams p) {
  extern __shared__ uint4 sh4[];
  constexpr int V = Vec<WT>::n;
  const int R = int(p.R), N = int(p.N);
  const RowsLayout l(R, N, V);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int64_t e0 = int64_t(blockIdx.x) * kRowLanes, e = e0 + lane;
  uint4* dtw = sh4;                                                     // (32, SW) units
  float* rows = reinterpret_cast<float*>(sh4 + kRowLanes * l.SW);        // (W·SB, RNp)
  float* A2 = rows + W * SB * l.RNp;                                    // (32, kRowAStride)
  const int nch = int(min(int64_t(kRowLanes), p.E - e0));
  // Warp w stages rows w, w + W, … (32 / W per warp) of the dt_proj tile and of A, a lane per column.
  constexpr int kRowsPerWarp = kRowLanes / W;  // W divides 32
  {
    const WT* w = static_cast<const WT*>(p.dt_w) + e0 * p.R;
    if ((reinterpret_cast<uintptr_t>(w) & 15) == 0 && R % V == 0) {  // whole units, as they are
      const uint4* w4 = reinterpret_cast<const uint4*>(w);
      for (int c0 = 0; c0 < l.UR; c0 += 32) {
        const int c = c0 + lane;
        uint4 raw[kRowsPerWarp];
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; j++) {
          const int r = warp + W * j;
          if (r < nch && c < l.UR) raw[j] = __ldg(w4 + r * l.UR + c);
        }
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; j++) {
          const int r = warp + W * j;
          if (r < nch && c < l.UR) dtw[r * l.SW + c] = raw[j];
        }
      }
    } else {  // element by element, each row zero-padded to RP
      WT* d = reinterpret_cast<WT*>(dtw);
      for (int k0 = 0; k0 < l.RP; k0 += 32) {
        const int k = k0 + lane;
        WT v[kRowsPerWarp];
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; j++) {
          const int r = warp + W * j;
          v[j] = r < nch && k < R ? w[int64_t(r) * R + k] : from_f<WT>(0.f);
        }
#pragma unroll
        for (int j = 0; j < kRowsPerWarp; j++) {
          const int r = warp + W * j;
          if (r < nch && k < l.RP) d[r * l.SW * V + k] = v[j];
        }
      }
    }
    float a[kRowsPerWarp];
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; j++) {
      const int r = warp + W * j;
      a[j] = r < nch && lane < N ? p.A[(e0 + r) * p.N + lane] : 0.f;
    }
#pragma unroll
    for (int j = 0; j < kRowsPerWarp; j++)
      if (lane < N) A2[(warp + W * j) * kRowAStride + lane] = a[j] * 1.4426950408889634f;
  }
  const bool active = e < p.E;
  const float bias = active ? p.dt_bias[e] : 0.f, Dv = active && p.D ? p.D[e] : 0.f;
  __syncthreads();
  pdl_trigger();
  pdl_wait();
  const int64_t b0 = int64_t(blockIdx.y) * (W * SB) + int64_t(warp) * SB;
  const int nb = int(max(int64_t(0), min(int64_t(SB), p.B - b0)));
  // This warp's states, u and z first (HBM latency), then its δ | B | C rows (L2).
  float hv[SB][kRowMaxN], u[SB], zv[SB];
  ST* h[SB];
#pragma unroll
  for (int q = 0; q < SB; q++) {
    const bool ok = active && q < nb;
    const int64_t b = ok ? b0 + q : 0;
    h[q] = static_cast<ST*>(p.states) + (ok ? int64_t(p.slots[b]) * p.slot_stride + e * p.N : 0);
    if (VS) {
      if (ok) StateRow<ST>::ld(h[q], hv[q]);
      else
#pragma unroll
        for (int n = 0; n < kRowMaxN; n++) hv[q][n] = 0.f;
    } else {
#pragma unroll
      for (int n = 0; n < kRowMaxN; n++) hv[q][n] = ok && n < N ? to_f(h[q][n]) : 0.f;
    }
    u[q] = ok ? p.u[b * p.u_stride + e] : 0.f;
    zv[q] = ok && p.z ? p.z[b * p.z_stride + e] : 0.f;
  }
  float* rw = rows + warp * SB * l.RNp;
  {
    if (l.RP == R && l.NP == N && (p.dbc_stride & 3) == 0 && (reinterpret_cast<uintptr_t>(p.dbc) & 15) == 0) {
      // No padding: each row is the source row as it is, copied in 16-byte units (two per lane in flight per sequence).
      const int u4 = l.RNp / 4;
      const float4* src = reinterpret_cast<const float4*>(p.dbc);
      float4* dst = reinterpret_cast<float4*>(rw);
      for (int c0 = 0; c0 < u4; c0 += 64) {
        float4 v[SB][2];
#pragma unroll
        for (int q = 0; q < SB; q++)
#pragma unroll
          for (int k = 0; k < 2; k++) {
            const int c = c0 + lane + 32 * k;
            if (q < nb && c < u4) v[q][k] = __ldg(src + (b0 + q) * (p.dbc_stride / 4) + c);
          }
#pragma unroll
        for (int q = 0; q < SB; q++)
#pragma unroll
          for (int k = 0; k < 2; k++) {
            const int c = c0 + lane + 32 * k;
            if (q < nb && c < u4) dst[q * u4 + c] = v[q][k];
          }
      }
    } else {  // δ zero-padded to RP, B and C to NP each
      for (int c = lane; c < l.RNp; c += 32) {
        int col = -1;  // source column in the δ | B | C row, or -1 for padding
        if (c < R) col = c;
        else if (c >= l.RP && c < l.RP + N) col = R + (c - l.RP);
        else if (c >= l.RP + l.NP && c < l.RP + l.NP + N) col = R + N + (c - l.RP - l.NP);
        float v[SB];
#pragma unroll
        for (int q = 0; q < SB; q++) v[q] = q < nb && col >= 0 ? p.dbc[(b0 + q) * p.dbc_stride + col] : 0.f;
#pragma unroll
        for (int q = 0; q < SB; q++)
          if (q < nb) rw[q * l.RNp + c] = v[q];
      }
    }
    __syncwarp();
    if (p.bcdt_rms) {  // weightless RMSNorm of each row's δ, B and C (padding stays zero)
      for (int q = 0; q < nb; q++)
        for (int part = 0; part < 3; part++) {
          const int off = part == 0 ? 0 : part == 1 ? l.RP : l.RP + l.NP, len = part == 0 ? R : N;
          float* v = rw + q * l.RNp + off;
          float ss = 0.f;
          for (int i = lane; i < len; i += 32) ss += v[i] * v[i];
          const float r = rsqrtf(warp_sum(ss) / float(len) + p.rms_eps);
          for (int i = lane; i < len; i += 32) v[i] *= r;
          __syncwarp();
        }
    }
  }
  if (!active || nb == 0) return;  // no barrier below
  // dt_proj: row e (V weights per unit) · δ_b for the warp's sequences, two partial sums each.
  const uint4* wr = dtw + lane * l.SW;
  float acc[SB][2];
#pragma unroll
  for (int q = 0; q < SB; q++) acc[q][0] = acc[q][1] = 0.f;
  for (int k = 0; k < l.UR; k++) {
    float wv[V];
    Vec<WT>::widen(wr[k], wv);
#pragma unroll
    for (int q = 0; q < SB; q++) {
      const float4* dq = reinterpret_cast<const float4*>(rw + q * l.RNp + k * V);
#pragma unroll
      for (int j = 0; j < V / 4; j++) {
        const float4 d = dq[j];
        float& a = acc[q][j & 1];
        a = fmaf(wv[4 * j + 3], d.w, fmaf(wv[4 * j + 2], d.z, fmaf(wv[4 * j + 1], d.y, fmaf(wv[4 * j], d.x, a))));
      }
    }
  }
  const float* Al = A2 + lane * kRowAStride;
#pragma unroll
  for (int q = 0; q < SB; q++) {
    if (q >= nb) break;
    const int64_t b = b0 + q;
    const float4* B4 = reinterpret_cast<const float4*>(rw + q * l.RNp + l.RP);
    const float4* C4 = reinterpret_cast<const float4*>(rw + q * l.RNp + l.RP + l.NP);
    const float d = softplus_d(acc[q][0] + acc[q][1] + bias), du = d * u[q];
    float y = 0.f;
#pragma unroll
    for (int n4 = 0; n4 < kRowMaxN / 4; n4++) {
      if (4 * n4 < N) {
        const float4 Bq = B4[n4], Cq = C4[n4];
        const float Bn[4] = {Bq.x, Bq.y, Bq.z, Bq.w}, Cn[4] = {Cq.x, Cq.y, Cq.z, Cq.w};
#pragma unroll
        for (int j = 0; j < 4; j++) {
          const int n = 4 * n4 + j;
          if (n < N) {
            hv[q][n] = exp2f(d * Al[n]) * hv[q][n] + du * Bn[j];
            y = fmaf(hv[q][n], Cn[j], y);
          }
        }
      }
    }
    if (VS) StateRow<ST>::st(h[q], hv[q]);
    else
#pragma unroll
      for (int n = 0; n < kRowMaxN; n++)
        if (n < N) h[q][n] = from_f<ST>(hv[q][n]);
    y += Dv * u[q];
    if (p.z) y *= silu_d(zv[q]);
    if (p.y_half) st_half(p.y_half, p.y_half_dtype, b * p.y_stride + e, y);
    else p.y[b * p.y_stride + e] = y;
  }
}

// Rows kernel block: 8 warps (32 channels × 8 sequences) with one sequence per warp. H200,
// mamba-2.8b batch 64, bf16 states, tok/s: 8 warps 14,451 / 14,402 against 4 warps 14,049 / 14,101 /
// 14,119 (same calls); 16 warps 14,048; 4 warps of two sequences each 13,945 (a 64-register build
// holds one sequence's 16 states, two need 116 registers). SSM_CUDA_ROWS_WARPS=4 takes 4 warps
// (measurement switch, read once).
int rows_warps() {
  static const int v = [] { const char* e = std::getenv("SSM_CUDA_ROWS_WARPS"); return e && std::atoi(e) == 4 ? 4 : 8; }();
  return v;
}

template <class WT, class ST, int W>
void launch_step_rows(const Mamba1StepParams& p, cudaStream_t s) {
  constexpr int SB = 1;
  const bool vs = p.N == kRowMaxN && p.slot_stride % (16 / sizeof(ST)) == 0 && (reinterpret_cast<uintptr_t>(p.states) & 15) == 0;
  const size_t sh = rows_smem_bytes(p.R, p.N, W, SB, Vec<WT>::n);
  const dim3 grid(blocks_for(p.E, kRowLanes), blocks_for(p.B, W * SB));
  auto run = [&](void (*kernel)(Mamba1StepParams)) {
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(sh)), "mamba1_step rows smem");
    // All of the unified L1/shared memory as shared memory, so registers, not the carveout, set the blocks per SM.
    check(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, 100), "mamba1_step rows carveout");
    launch("mamba1_step", kernel, grid, dim3(32 * W), sh, s, p);
  };
  if (vs) run(mamba1_step_rows_kernel<WT, ST, W, SB, true>);
  else run(mamba1_step_rows_kernel<WT, ST, W, SB, false>);
}

template <class WT, class ST>
void launch_step_rows_by_warps(const Mamba1StepParams& p, cudaStream_t s) {
  if (rows_warps() == 4) launch_step_rows<WT, ST, 4>(p, s);
  else launch_step_rows<WT, ST, 8>(p, s);
}

// Sequences per thread of the batched step: 4, or SSM_CUDA_STEP_SEQS=1 (measurement switch, read once).
int step_seqs() {
  static const int v = [] { const char* e = std::getenv("SSM_CUDA_STEP_SEQS"); return e && std::atoi(e) == 1 ? 1 : 4; }();
  return v;
}

template <int SB, class ST>
void launch_step_batched(const Mamba1StepParams& p, int gs, int64_t spl, cudaStream_t s) {
  const dim3 grid(blocks_for(p.E * gs, kBatchThreads), unsigned((p.B + SB - 1) / SB));
  switch (spl) {
    case 1: return launch("mamba1_step", mamba1_step_batched_kernel<1, SB, ST>, grid, dim3(kBatchThreads), 0, s, p, gs);
    case 2: return launch("mamba1_step", mamba1_step_batched_kernel<2, SB, ST>, grid, dim3(kBatchThreads), 0, s, p, gs);
    case 3: case 4: return launch("mamba1_step", mamba1_step_batched_kernel<4, SB, ST>, grid, dim3(kBatchThreads), 0, s, p, gs);
    default: throw Error("mamba1_step: state size " + std::to_string(p.N) + " exceeds 128");
  }
}

// ---- Single-pass warp-scan prefill (selective_scan_warp) ---------------------------------------------
// One warp per channel walks the sequence in tiles of kWT = 256 steps; lane j owns the eight
// consecutive steps 8j … 8j+7 of a tile. For each state n the lane folds its steps into one affine
// map h ↦ P·h + Q (P = Π exp(ΔA), Q the state its steps build from zero; lane 0 applies its map to
// the state entering the tile at once), a warp inclusive scan composes the maps across lanes, which
// leaves each lane the state after its steps; the predecessor's is the state entering them, from
// which the lane replays its steps adding C·h to its outputs; lane 31's is the state entering the
// next tile. Each exp(ΔA) is computed once (the time-chunked kernels above compute each twice) and
// the GPU is filled by channels alone (one warp each), so there is no carry pass.
//
// A block holds kWCh = 8 channels; the tile's operands are staged transposed in shared memory —
// [channel][step] rows of Δ·log2(e) and Δ·u, [state][step] rows of B and C, pitch kWP — so a lane
// reads its eight steps with two 16-byte loads. In each row the 16-byte units u = t/4 with bit 3 set
// swap with their neighbour (wswz): the eight lanes of each quarter-warp then read distinct banks.
// Global rows are read by 2 (u, δ: 8 channels) or 4 (B, C: 16 states) lanes with 16-byte loads, so
// a warp's load touches 16 or 8 rows, not 32; the pitch (kWT + 4) keeps the channel rows'
// transposing stores on distinct banks (the state rows' meet at most two to a bank). Softplus, Δ·log2(e) and Δ·u are formed once, while staging. Outputs go back
// through the Δ rows (each lane overwrites only the steps it read); then each (step, quad of
// channels) gets D·u and the silu(z) gate and is stored with one 16-byte (f32) or 8-byte (bf16/f16
// y_half: the next GEMM's input) store.
constexpr int kWI = 8, kWCh = 8, kWT = 32 * kWI, kWP = kWT + 4, kWThreads = 32 * kWCh;
constexpr float kLog2e = 1.4426950408889634f;

__device__ __forceinline__ int wswz(int t) {
  const int u = t >> 2;
  return ((u ^ ((u >> 3) & 1)) << 2) | (t & 3);
}
__device__ __forceinline__ float ex2_approx(float x) {
  float r;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(x));
  return r;
}
__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 ldg4(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }
__device__ __forceinline__ float& at(float4& v, int i) { return (&v.x)[i]; }
__device__ __forceinline__ float at(const float4& v, int i) { return (&v.x)[i]; }

template <int NS>
constexpr size_t warp_scan_smem_bytes() { return (size_t(2 * kWCh + 2 * NS) * kWP + kWCh * 16 * 2) * sizeof(float); }

// S: states scanned together (N % 4 == 0, so 1 or 2 divides it; 2 measured equal on the H200, so the
// launcher builds 1); 3 blocks per SM (at 4, the register cap of 64 spills and measured 11% slower
// on H200, mamba-2.8b pp2048).
// IT: the element type of u and z (f32, or bf16/f16 when in_proj and the conv wrote them in the
// weight dtype; then u_in and z_in replace p.u and p.z, same strides).
template <int NS, class OT, int S, class IT>
__global__ void __launch_bounds__(kWThreads, 3) scan_warp_kernel(ScanParams p, OT* out, int64_t out_stride, const IT* u_in,
                                                                 const IT* z_in) {
  extern __shared__ __align__(16) float sm[];
  float* Ts = sm;                // [kWCh][kWP]: Δ·log2(e), then the outputs
  float* Us = Ts + kWCh * kWP;   // [kWCh][kWP]: Δ·u
  float* Bs = Us + kWCh * kWP;   // [NS][kWP]
  float* Cs = Bs + NS * kWP;     // [NS][kWP]
  float* As = Cs + NS * kWP;     // [kWCh][16]: A
  float* Hs = As + kWCh * 16;    // [kWCh][16]: the state entering the tile
  const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, N = int(p.N);
  const int64_t e0 = int64_t(blockIdx.x) * kWCh;
  if (lane < 16) {
    const bool ok = lane < N;
    As[w * 16 + lane] = ok ? p.A[(e0 + w) * p.N + lane] : 0.f;
    Hs[w * 16 + lane] = ok ? p.h[(e0 + w) * p.N + lane] : 0.f;
  }
  const int r0 = wswz(lane * kWI), r1 = wswz(lane * kWI + 4);  // this lane's two 16-byte units
  // Staging and output roles: (row, quad) pairs, 2 lanes per row of channels, 4 per row of states.
  const int cq = tid & 1, crow = tid >> 1;  // rows crow and crow + 128
  const int sq = tid & 3, srow = tid >> 2;  // rows srow + 64k
  const float4 z4 = make_float4(0.f, 0.f, 0.f, 0.f);
  const float4 bias4 = p.dt_bias ? ldg4(p.dt_bias + e0 + 4 * cq) : z4;
  for (int64_t t0 = 0; t0 < p.L; t0 += kWT) {
    {  // stage the tile (read-only loads, all in flight before the first store)
      float4 u4[2], d4[2], b4[4], c4[4];
#pragma unroll
      for (int k = 0; k < 2; k++) {
        const int64_t t = t0 + crow + 128 * k;
        const bool in = t < p.L;
        u4[k] = in ? Pack4<IT>::ldg(u_in + t * p.u_stride + e0 + 4 * cq) : z4;
        d4[k] = in ? ldg4(p.delta + t * p.delta_stride + e0 + 4 * cq) : z4;
      }
#pragma unroll
      for (int k = 0; k < 4; k++) {
        const int64_t t = t0 + srow + 64 * k;
        const bool ok = t < p.L && 4 * sq < N && 4 * sq < NS;
        b4[k] = ok ? ldg4(p.B + t * p.B_stride + 4 * sq) : z4;
        c4[k] = ok ? ldg4(p.C + t * p.C_stride + 4 * sq) : z4;
      }
#pragma unroll
      for (int k = 0; k < 2; k++) {
        const int row = crow + 128 * k, pos = wswz(row);
        const bool in = t0 + row < p.L;
#pragma unroll
        for (int j = 0; j < 4; j++) {  // past the end: Δ = 0 and B = C = 0, identity steps
          const float dt = in ? softplus_d(at(d4[k], j) + at(bias4, j)) : 0.f;
          Ts[(4 * cq + j) * kWP + pos] = dt * kLog2e;
          Us[(4 * cq + j) * kWP + pos] = dt * at(u4[k], j);
        }
      }
      if (4 * sq < NS) {
#pragma unroll
        for (int k = 0; k < 4; k++) {
          const int pos = wswz(srow + 64 * k);
#pragma unroll
          for (int j = 0; j < 4; j++) {
            Bs[(4 * sq + j) * kWP + pos] = at(b4[k], j);
            Cs[(4 * sq + j) * kWP + pos] = at(c4[k], j);
          }
        }
      }
    }
    __syncthreads();
    float dtl[kWI], du[kWI], y[kWI];
    {
      const float4 a = ld4(Ts + w * kWP + r0), b = ld4(Ts + w * kWP + r1);
      const float4 c = ld4(Us + w * kWP + r0), d = ld4(Us + w * kWP + r1);
      dtl[0] = a.x, dtl[1] = a.y, dtl[2] = a.z, dtl[3] = a.w, dtl[4] = b.x, dtl[5] = b.y, dtl[6] = b.z, dtl[7] = b.w;
      du[0] = c.x, du[1] = c.y, du[2] = c.z, du[3] = c.w, du[4] = d.x, du[5] = d.y, du[6] = d.z, du[7] = d.w;
    }
#pragma unroll
    for (int i = 0; i < kWI; i++) y[i] = 0.f;
#pragma unroll 1
    for (int n0 = 0; n0 < N; n0 += S) {  // S states at a time: independent chains to interleave
      float a[S][kWI], bb[S][kWI], P[S], Q[S], hin[S];
#pragma unroll
      for (int k = 0; k < S; k++) {
        const int n = n0 + k;
        const float An = As[w * 16 + n];
        const float4 b0 = ld4(Bs + n * kWP + r0), b1 = ld4(Bs + n * kWP + r1);
        const float bn[kWI] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
        P[k] = 1.f, Q[k] = 0.f;
#pragma unroll
        for (int i = 0; i < kWI; i++) {
          a[k][i] = ex2_approx(dtl[i] * An);
          bb[k][i] = du[i] * bn[i];
          P[k] *= a[k][i];
          Q[k] = fmaf(a[k][i], Q[k], bb[k][i]);
        }
        hin[k] = Hs[w * 16 + n];  // the state entering the tile
        if (lane == 0) Q[k] = fmaf(P[k], hin[k], Q[k]);
      }
      // Inclusive scan of the lanes' maps: (P1, Q1) then (P2, Q2) is (P1·P2, P2·Q1 + Q2); with lane 0's
      // map applied to the entering state, each lane's Q is then the state after its steps.
#pragma unroll
      for (int off = 1; off < 32; off <<= 1) {
#pragma unroll
        for (int k = 0; k < S; k++) {
          const float Pp = __shfl_up_sync(0xffffffffu, P[k], off), Qp = __shfl_up_sync(0xffffffffu, Q[k], off);
          if (lane >= off) Q[k] = fmaf(P[k], Qp, Q[k]), P[k] *= Pp;
        }
      }
#pragma unroll
      for (int k = 0; k < S; k++) {
        const int n = n0 + k;
        float hc = __shfl_up_sync(0xffffffffu, Q[k], 1);
        if (lane == 0) hc = hin[k];
        const float4 c0 = ld4(Cs + n * kWP + r0), c1 = ld4(Cs + n * kWP + r1);
        const float cn[kWI] = {c0.x, c0.y, c0.z, c0.w, c1.x, c1.y, c1.z, c1.w};
#pragma unroll
        for (int i = 0; i < kWI; i++) {
          hc = fmaf(a[k][i], hc, bb[k][i]);
          y[i] = fmaf(cn[i], hc, y[i]);
        }
      }
      __syncwarp();  // every lane has read Hs[w][n0 …]
      if (lane == 31)
#pragma unroll
        for (int k = 0; k < S; k++) Hs[w * 16 + n0 + k] = Q[k];
    }
    *reinterpret_cast<float4*>(Ts + w * kWP + r0) = make_float4(y[0], y[1], y[2], y[3]);
    *reinterpret_cast<float4*>(Ts + w * kWP + r1) = make_float4(y[4], y[5], y[6], y[7]);
    __syncthreads();
#pragma unroll
    for (int k = 0; k < 2; k++) {  // finish (step, quad of channels): D·u, the gate, one store
      const int row = crow + 128 * k;
      const int64_t t = t0 + row;
      if (t < p.L) {
        const int pos = wswz(row);
        float4 v;
#pragma unroll
        for (int j = 0; j < 4; j++) at(v, j) = Ts[(4 * cq + j) * kWP + pos];
        if (p.D) {
          const float4 u = Pack4<IT>::ldg(u_in + t * p.u_stride + e0 + 4 * cq), D = ldg4(p.D + e0 + 4 * cq);
#pragma unroll
          for (int j = 0; j < 4; j++) at(v, j) = fmaf(at(D, j), at(u, j), at(v, j));
        }
        if (z_in) {
          const float4 z = Pack4<IT>::ldg(z_in + t * p.z_stride + e0 + 4 * cq);
#pragma unroll
          for (int j = 0; j < 4; j++) at(v, j) *= silu_d(at(z, j));
        }
        Pack4<OT>::st(out + t * out_stride + e0 + 4 * cq, v);
      }
    }
    __syncthreads();  // the next tile's staging overwrites the rows
  }
  __syncwarp();
  if (lane < N) p.h[(e0 + w) * p.N + lane] = Hs[w * 16 + lane];
}

int group_size(int64_t N) {
  int g = 1;
  while (g < N && g < 32) g *= 2;
  return g;
}

// The thread-per-channel kernel serves N <= 16 unless SSM_CUDA_SCAN_LANES=1 asks for the lane-group
// one (A/B); the chunk planner and the launcher both go by this, and by its step granularity.
bool per_channel(int64_t N) {
  static const bool lanes = [] { const char* e = std::getenv("SSM_CUDA_SCAN_LANES"); return e && *e && *e != '0'; }();
  return N <= 16 && !lanes;
}
int64_t chunk_step(int64_t N) { return per_channel(N) ? kTs : kTc; }

// Chunks a sequence of L steps may be cut into: what the planner below can return (and what the
// workspace is sized for).
int64_t max_chunks(int64_t L) { return std::max<int64_t>(1, std::min<int64_t>(kScanMaxChunks, (L + kTs - 1) / kTs)); }

}  // namespace

bool selective_scan_warp_ok(const ScanParams& p, const void* y_half, int64_t y_half_stride, const void* u_half,
                            const void* z_half) {
  auto al = [](const void* q, uintptr_t n) { return (reinterpret_cast<uintptr_t>(q) & (n - 1)) == 0; };
  auto a16 = [&](const void* q) { return al(q, 16); };
  const bool out_ok = y_half ? a16(y_half) && y_half_stride % 8 == 0 : a16(p.y) && p.y_stride % 4 == 0;
  // u and z: four elements per load (16 bytes in f32, 8 in bf16/f16).
  // With u_half, z_half replaces p.z (null: no gate); half inputs come only with a half output.
  const void* z = u_half ? z_half : static_cast<const void*>(p.z);
  const bool u_ok = u_half ? al(u_half, 8) : a16(p.u), z_ok = !z || (al(z, u_half ? 8 : 16) && p.z_stride % 4 == 0);
  return p.N >= 1 && p.N <= 16 && p.N % 4 == 0 && p.E % kWCh == 0 && out_ok && u_ok && p.u_stride % 4 == 0 &&
         a16(p.delta) && p.delta_stride % 4 == 0 && a16(p.B) && p.B_stride % 4 == 0 && a16(p.C) && p.C_stride % 4 == 0 &&
         z_ok && (!p.dt_bias || a16(p.dt_bias)) && (!p.D || a16(p.D)) && (!u_half || y_half);
}

bool selective_scan_warp_enabled() {
  static const bool chunked = [] { const char* e = std::getenv("SSM_CUDA_SCAN"); return e && std::string(e) == "chunked"; }();
  return !chunked;
}

void selective_scan_warp(const ScanParams& p, cudaStream_t s, void* y_half, DType t, int64_t y_half_stride, const void* u_half,
                         const void* z_half) {
  if (p.L <= 0) return;
  if (!selective_scan_warp_ok(p, y_half, y_half_stride, u_half, z_half))
    throw Error("selective_scan_warp: needs d_state 4, 8, 12 or 16, channels a multiple of 8 and 16-byte aligned operands (internal)");
  const unsigned grid = blocks_for(p.E, kWCh);
  auto by_out = [&](auto ns) {
    constexpr int NS = decltype(ns)::value;
    const size_t bytes = warp_scan_smem_bytes<NS>();
    auto go = [&](auto* o, int64_t stride, const auto* u, const auto* z) {
      using OT = std::remove_pointer_t<decltype(o)>;
      using IT = std::remove_cv_t<std::remove_pointer_t<decltype(u)>>;
      auto kernel = scan_warp_kernel<NS, OT, 1, IT>;
      check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)), "selective_scan_warp smem");
      kernel<<<grid, kWThreads, bytes, s>>>(p, o, stride, u, z);
    };
    auto half_out = [&](auto* o) {  // u and z, when given in half precision, are in the output's dtype
      using HT = std::remove_pointer_t<decltype(o)>;
      if (u_half) go(o, y_half_stride, static_cast<const HT*>(u_half), static_cast<const HT*>(z_half));
      else go(o, y_half_stride, p.u, p.z);
    };
    if (!y_half) go(p.y, p.y_stride, p.u, p.z);
    else if (t == DType::F16) half_out(static_cast<__half*>(y_half));
    else half_out(static_cast<__nv_bfloat16*>(y_half));
  };
  if (p.N <= 4) by_out(std::integral_constant<int, 4>{});
  else if (p.N <= 8) by_out(std::integral_constant<int, 8>{});
  else by_out(std::integral_constant<int, 16>{});
  SSM_CUDA_LAUNCH_CHECK("selective_scan_warp");
}

int64_t selective_scan_workspace_floats(int64_t L, int64_t E, int64_t N) { return max_chunks(L) * E * (N + 1); }

int64_t selective_scan_chunks(int64_t L, int64_t E, int64_t N) {
  static const int64_t forced = [] {  // SSM_CUDA_SCAN_CHUNKS=n forces n chunks (1: sequential; 0: automatic)
    const char* e = std::getenv("SSM_CUDA_SCAN_CHUNKS");
    return e && *e ? std::max<int64_t>(0, std::min<int64_t>(kScanMaxChunks, std::atoll(e))) : int64_t(0);
  }();
  const int64_t step = chunk_step(N);
  if (forced) return std::min<int64_t>(forced, (L + step - 1) / step);
  static const int sms = [] {
    int dev = 0, n = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    return std::max(n, 1);
  }();
  // Enough blocks for about four waves of four resident blocks per SM (thread-per-channel kernel;
  // the lane-group kernel for N > 16 holds more), chunks of at least 32 steps (the end-state pass
  // repeats the recurrence without C·h, so very short chunks cost more than they give).
  const int64_t base = per_channel(N) ? blocks_for(E, kChThreads) : blocks_for(E * group_size(N), kPsThreads);
  const int64_t want = (16 * int64_t(sms) + base - 1) / base;
  return std::max<int64_t>(1, std::min({want, L / 32, kScanMaxChunks}));
}

void selective_scan(const ScanParams& p, cudaStream_t s, float* work, int64_t chunks) {
  if (p.L <= 0) return;
  if (chunks <= 0 && selective_scan_warp_enabled() && selective_scan_warp_ok(p)) return selective_scan_warp(p, s);
  const int64_t step = chunk_step(p.N);
  if (chunks <= 0) chunks = work ? selective_scan_chunks(p.L, p.E, p.N) : 1;
  if (chunks > 1 && !work) throw Error("selective_scan: a chunked scan needs its workspace (internal)");
  ScanChunks ch;
  if (chunks > 1) {
    ch.len = ((p.L + chunks - 1) / chunks + step - 1) / step * step;
    ch.n = (p.L + ch.len - 1) / ch.len;
    if (ch.n > max_chunks(p.L)) throw Error("selective_scan: more chunks than the workspace holds (internal)");
    ch.h = work;
    ch.sdt = work + ch.n * p.E * p.N;
  }
  auto run = [&](auto whole, auto ends, auto out, unsigned grid, int threads, size_t sh, auto... extra) {
    for (auto k : {whole, ends, out})
      check(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(sh)), "selective_scan smem");
    if (ch.n == 1) {
      whole<<<grid, threads, sh, s>>>(p, extra..., ch);
      return;
    }
    const dim3 g2(grid, unsigned(ch.n));
    ends<<<g2, threads, sh, s>>>(p, extra..., ch);
    scan_carry_kernel<<<blocks_for(p.E * p.N, 256), 256, 0, s>>>(p, ch);
    out<<<g2, threads, sh, s>>>(p, extra..., ch);
  };
  if (per_channel(p.N)) {
    const unsigned grid = blocks_for(p.E, kChThreads);
#define SSM_SCAN_CH(ns) run(scan_ch_kernel<ns, kWhole>, scan_ch_kernel<ns, kEnds>, scan_ch_kernel<ns, kOut>, grid, \
                            kChThreads, size_t(2 * ch_stage_floats<ns>()) * sizeof(float))
    if (p.N <= 4) SSM_SCAN_CH(4);
    else if (p.N <= 8) SSM_SCAN_CH(8);
    else SSM_SCAN_CH(16);
#undef SSM_SCAN_CH
    SSM_CUDA_LAUNCH_CHECK("selective_scan");
    return;
  }
  const int gs = group_size(p.N);
  const int64_t spl = (p.N + gs - 1) / gs;
  const unsigned grid = blocks_for(p.E * gs, kPsThreads);
  const size_t sh = scan_smem_floats(p.N, gs) * sizeof(float);
#define SSM_SCAN_CASE(n) run(scan_kernel<n, kWhole>, scan_kernel<n, kEnds>, scan_kernel<n, kOut>, grid, kPsThreads, sh, gs)
  switch (spl) {
    case 1: SSM_SCAN_CASE(1); break;
    case 2: SSM_SCAN_CASE(2); break;
    case 3: case 4: SSM_SCAN_CASE(4); break;
    default: throw Error("selective_scan: state size " + std::to_string(p.N) + " exceeds 128");
  }
#undef SSM_SCAN_CASE
  SSM_CUDA_LAUNCH_CHECK("selective_scan");
}

// Shapes the rows kernel serves: every state in registers, the shared memory of the largest
// sequences-per-warp setting within 160 KiB.
static bool rows_shape_ok(int64_t N, int64_t R) {
  // The larger block (8 warps of one sequence) with f32 weights (the widest rows).
  return N >= 1 && N <= kRowMaxN && R >= 1 && R <= 4096 && rows_smem_bytes(R, N, 8, 1, 4) <= 160 * 1024;
}

bool mamba1_step_rows_ok(int64_t N, int64_t R) {
  static const bool old = [] { const char* e = std::getenv("SSM_CUDA_M1_STEP"); return e && std::string(e) == "gemm"; }();
  return !old && rows_shape_ok(N, R);
}

void mamba1_step_rows(const Mamba1StepParams& p, cudaStream_t s) {
  if (p.B <= 0) return;
  if (!rows_shape_ok(p.N, p.R))
    throw Error("mamba1_step_rows: needs 1 <= d_state <= 16 and a dt_rank of at most ~1,000 (internal)");
  if (p.delta) throw Error("mamba1_step_rows: dt_proj is computed inside; no precomputed delta (internal)");
  auto by_state = [&](auto wt) {
    using WT = decltype(wt);
    if (p.state_bf16) launch_step_rows_by_warps<WT, __nv_bfloat16>(p, s);
    else launch_step_rows_by_warps<WT, float>(p, s);
  };
  switch (p.dt_w_dtype) {
    case DType::BF16: return by_state(__nv_bfloat16{});
    case DType::F16: return by_state(__half{});
    case DType::F32: return by_state(float{});
  }
}

void mamba1_step(const Mamba1StepParams& p, cudaStream_t s) {
  if (p.B <= 0) return;
  if (!p.delta && p.B > kStepSeqs && mamba1_step_rows_ok(p.N, p.R)) return mamba1_step_rows(p, s);
  if (p.y_half) throw Error("mamba1_step: a half-precision y needs the rows kernel (internal)");
  const int gs = group_size(p.N);
  const int64_t spl = (p.N + gs - 1) / gs;
  if (p.delta) {
    if (p.bcdt_rms) throw Error("mamba1_step: with a precomputed delta the B/C/dt norms must be applied first (internal)");
    if (p.state_bf16) {
      if (step_seqs() == 1) launch_step_batched<1, __nv_bfloat16>(p, gs, spl, s);
      else launch_step_batched<4, __nv_bfloat16>(p, gs, spl, s);
    } else {
      if (step_seqs() == 1) launch_step_batched<1, float>(p, gs, spl, s);
      else launch_step_batched<4, float>(p, gs, spl, s);
    }
    return;
  }
  const dim3 grid(blocks_for(p.E * gs, kScanThreads), blocks_for(p.B, kStepSeqs));
  const size_t sh = size_t(kStepSeqs * (p.R + 2 * p.N) + (kScanThreads / gs) * p.R) * sizeof(float);
  if (sh > 48 * 1024) throw Error("mamba1_step: dt_rank " + std::to_string(p.R) + " too large for the fused step");
  switch (spl) {
    case 1: launch("mamba1_step", mamba1_step_kernel<1>, grid, dim3(kScanThreads), sh, s, p, gs); break;
    case 2: launch("mamba1_step", mamba1_step_kernel<2>, grid, dim3(kScanThreads), sh, s, p, gs); break;
    case 3: case 4: launch("mamba1_step", mamba1_step_kernel<4>, grid, dim3(kScanThreads), sh, s, p, gs); break;
    default: throw Error("mamba1_step: state size " + std::to_string(p.N) + " exceeds 128");
  }
}

}  // namespace ssm::kernels::cuda
