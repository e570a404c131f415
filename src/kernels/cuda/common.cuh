// Device helpers shared by the CUDA kernels: dtype loads, softplus/silu with the reference
// semantics (params.hpp), warp and block reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <utility>

#include "kernels/cuda/cuda.hpp"

namespace ssm::kernels::cuda {

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }

// Element i of a weight array stored in `t`.
__device__ __forceinline__ float load_w(const void* w, DType t, int64_t i) {
  switch (t) {
    case DType::BF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(w)[i]);
    case DType::F16: return __half2float(static_cast<const __half*>(w)[i]);
    default: return static_cast<const float*>(w)[i];
  }
}

template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half_rn(v); }

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }

__device__ __forceinline__ float softplus_d(float x) { return x > 20.f ? x : log1pf(expf(x)); }
__device__ __forceinline__ float silu_d(float x) { return x / (1.f + expf(-x)); }

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets the result.
__device__ __forceinline__ float block_sum(float v, float* smem32) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
  v = warp_sum(v);
  __syncthreads();  // smem32 may still be read by a previous call
  if (lane == 0) smem32[warp] = v;
  __syncthreads();
  v = lane < nw ? smem32[lane] : 0.f;
  return warp_sum(v);
}

// 16 bytes of weights -> Vec<WT>::n floats: load (streaming, evict-first: weights are read once per
// token) or raw + widen, so several raw loads can be issued before the first is used.
template <class WT> struct Vec;
template <> struct Vec<float> {
  static constexpr int n = 4;
  __device__ static void load(const float* p, float* o) {
    float4 v = *reinterpret_cast<const float4*>(p);
    o[0] = v.x, o[1] = v.y, o[2] = v.z, o[3] = v.w;
  }
  __device__ static uint4 raw(const float* p) { return __ldcs(reinterpret_cast<const uint4*>(p)); }
  __device__ static void widen(uint4 v, float* o) {
    o[0] = __uint_as_float(v.x), o[1] = __uint_as_float(v.y), o[2] = __uint_as_float(v.z), o[3] = __uint_as_float(v.w);
  }
};
template <> struct Vec<__nv_bfloat16> {
  static constexpr int n = 8;
  __device__ static uint4 raw(const __nv_bfloat16* p) { return __ldcs(reinterpret_cast<const uint4*>(p)); }
  __device__ static void widen(uint4 v, float* o) {
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
    for (int i = 0; i < 4; i++) {
      float2 f = __bfloat1622float2(h[i]);
      o[2 * i] = f.x, o[2 * i + 1] = f.y;
    }
  }
  __device__ static void load(const __nv_bfloat16* p, float* o) {
    uint4 v = __ldcs(reinterpret_cast<const uint4*>(p));
    const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
    for (int i = 0; i < 4; i++) {
      float2 f = __bfloat1622float2(h[i]);
      o[2 * i] = f.x, o[2 * i + 1] = f.y;
    }
  }
};
template <> struct Vec<__half> {
  static constexpr int n = 8;
  __device__ static uint4 raw(const __half* p) { return __ldcs(reinterpret_cast<const uint4*>(p)); }
  __device__ static void widen(uint4 v, float* o) {
    const __half2* h = reinterpret_cast<const __half2*>(&v);
    for (int i = 0; i < 4; i++) {
      float2 f = __half22float2(h[i]);
      o[2 * i] = f.x, o[2 * i + 1] = f.y;
    }
  }
  __device__ static void load(const __half* p, float* o) {
    uint4 v = __ldcs(reinterpret_cast<const uint4*>(p));
    const __half2* h = reinterpret_cast<const __half2*>(&v);
    for (int i = 0; i < 4; i++) {
      float2 f = __half22float2(h[i]);
      o[2 * i] = f.x, o[2 * i + 1] = f.y;
    }
  }
};

// Four adjacent elements of an f32 (16-byte access) or bf16/f16 (8-byte access) array as a float4;
// the address must be aligned to the access. bf16/f16 stores round to nearest even.
template <class ST> struct Pack4;
// ld / ldg (read-only path) widen four elements to f32, st rounds four back.
template <> struct Pack4<float> {
  __device__ static float4 ld(const float* p) { return *reinterpret_cast<const float4*>(p); }
  __device__ static float4 ldg(const float* p) { return __ldg(reinterpret_cast<const float4*>(p)); }
  __device__ static void st(float* p, float4 v) { *reinterpret_cast<float4*>(p) = v; }
};
// bf16 and f16: two 4-byte pairs, widened or rounded by the pair type's conversions.
__device__ __forceinline__ float2 pair_to_float2(__nv_bfloat162 v) { return __bfloat1622float2(v); }
__device__ __forceinline__ float2 pair_to_float2(__half2 v) { return __half22float2(v); }
template <class P2> __device__ __forceinline__ P2 float2_to_pair(float a, float b);
template <> __device__ __forceinline__ __nv_bfloat162 float2_to_pair(float a, float b) { return __floats2bfloat162_rn(a, b); }
template <> __device__ __forceinline__ __half2 float2_to_pair(float a, float b) { return __floats2half2_rn(a, b); }
template <class T, class P2> struct Pack4Half {
  __device__ static float4 widen(uint2 r) {
    const float2 a = pair_to_float2(*reinterpret_cast<const P2*>(&r.x));
    const float2 b = pair_to_float2(*reinterpret_cast<const P2*>(&r.y));
    return make_float4(a.x, a.y, b.x, b.y);
  }
  __device__ static float4 ld(const T* p) { return widen(*reinterpret_cast<const uint2*>(p)); }
  __device__ static float4 ldg(const T* p) { return widen(__ldg(reinterpret_cast<const uint2*>(p))); }
  __device__ static void st(T* p, float4 v) {
    uint2 r;
    *reinterpret_cast<P2*>(&r.x) = float2_to_pair<P2>(v.x, v.y);
    *reinterpret_cast<P2*>(&r.y) = float2_to_pair<P2>(v.z, v.w);
    *reinterpret_cast<uint2*>(p) = r;
  }
};
template <> struct Pack4<__nv_bfloat16> : Pack4Half<__nv_bfloat16, __nv_bfloat162> {};
template <> struct Pack4<__half> : Pack4Half<__half, __half2> {};

// Element i of a bf16 (or, t == F16, f16) array = v rounded to nearest even.
__device__ __forceinline__ void st_half(void* y, DType t, int64_t i, float v) {
  if (t == DType::F16) static_cast<__half*>(y)[i] = __float2half_rn(v);
  else static_cast<__nv_bfloat16*>(y)[i] = __float2bfloat16_rn(v);
}

// Element i of a state array stored in f32 or (bf16 = true) bf16.
__device__ __forceinline__ float ld_state(const void* s, bool bf16, int64_t i) {
  return bf16 ? __bfloat162float(static_cast<const __nv_bfloat16*>(s)[i]) : static_cast<const float*>(s)[i];
}
__device__ __forceinline__ void st_state(void* s, bool bf16, int64_t i, float v) {
  if (bf16) static_cast<__nv_bfloat16*>(s)[i] = __float2bfloat16_rn(v);
  else static_cast<float*>(s)[i] = v;
}
// The state of slot `slot`: element offset slot * stride from `s`.
__device__ __forceinline__ void* state_at(void* s, bool bf16, int64_t off) {
  return static_cast<char*>(s) + off * (bf16 ? 2 : 4);
}

// Programmatic dependent launch (Hopper and later): a kernel launched through launch() below may
// start while its predecessor in the stream is still running, so it must call pdl_wait() before it
// reads or writes any buffer the predecessor reads or writes (only weights may be touched before).
// pdl_trigger() lets the successor start launching. Both are no-ops on older GPUs and when the
// kernel was launched without the attribute.
__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether launch() asks for programmatic dependent launch: compute capability >= 9 and SSM_PDL not 0.
bool pdl_enabled();

template <class... KArgs, class... Args>
void launch(const char* what, void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t s,
            Args&&... args) {
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute at[1];
  at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  at[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = at;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  check(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...), what);
}

// ---- decode GEMV pieces: dot products with staged x, weight streams through shared memory ----

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return static_cast<uint32_t>(__cvta_generic_to_shared(p)); }

// acc[m] += the 16-byte weight vector `raw` (widened) · its staged x elements: for vector v of a
// row, xv = xs + v·V, or with the planar layout (stage_x<M, true>) xv = xs + 4v, the second half
// K/2 further; row m of x is m·K further.
template <class WT, int M, bool Planar = false>
__device__ __forceinline__ void fma_vec(uint4 raw, const float* xv, int64_t K, float* acc) {
  constexpr int V = Vec<WT>::n;
  float wv[V];
  Vec<WT>::widen(raw, wv);
#pragma unroll
  for (int m = 0; m < M; m++) {
#pragma unroll
    for (int i = 0; i < V; i += 4) {
      const float4 q = *reinterpret_cast<const float4*>(xv + m * K + (Planar ? (i ? K / 2 : 0) : i));
      acc[m] = fmaf(wv[i], q.x, acc[m]);
      acc[m] = fmaf(wv[i + 1], q.y, acc[m]);
      acc[m] = fmaf(wv[i + 2], q.z, acc[m]);
      acc[m] = fmaf(wv[i + 3], q.w, acc[m]);
    }
  }
}

// cp.async of 16 bytes into shared memory (L2 only), one commit group per call of cp_commit.
__device__ __forceinline__ void cp_async16(uint4* dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(smem_u32(dst)), "l"(src) : "memory");
}
__device__ __forceinline__ void cp_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}

// One thread's stream of 16-byte weight vectors: vectors lane, lane + 32, … (VL per row, those < KV)
// of rows 0 … nrows − 1 (row i at rowp(i)), through the thread's own P slots of the shared ring
// (slot s of thread t at ring[s·Threads + t], so a warp's accesses are conflict-free). One commit
// group per vector (empty past the end), so wait_group<P − 1> means the oldest vector has landed,
// and the thread only ever reads its own copies: no barrier.
template <class WT, int Threads, int P, class RowPtr>
struct WStream {
  uint4* ring;
  RowPtr rowp;
  int64_t nrows, KV, VL;
  int64_t lq = 0, lj = 0;
  int ls = 0;
  __device__ void issue() {
    const int64_t v = (threadIdx.x & 31) + 32 * lj;
    if (lq < nrows && v < KV) cp_async16(ring + ls * Threads + threadIdx.x, rowp(lq) + v * Vec<WT>::n);
    cp_commit();
    if (++lj == VL) lj = 0, ++lq;
    if (++ls == P) ls = 0;
  }
  __device__ void prologue() {
    for (int u = 0; u < P; u++) issue();
  }
  // Runs the stream: done(i, sum) gets row i's dot product with x (shared memory), on every lane.
  template <class Done>
  __device__ void run(const float* x, Done done) {
    const int lane = threadIdx.x & 31;
    float acc[1] = {0.f};
    int cs = 0;
    for (int64_t q = 0; q < nrows; q++) {
      for (int64_t j = 0; j < VL; j++) {
        cp_wait<P - 1>();
        const int64_t v = lane + 32 * j;
        if (v < KV) fma_vec<WT, 1>(ring[cs * Threads + threadIdx.x], x + v * Vec<WT>::n, KV * Vec<WT>::n, acc);
        issue();
        if (++cs == P) cs = 0;
      }
      done(q, warp_sum(acc[0]));
      acc[0] = 0.f;
    }
  }
};
template <class WT, int Threads, int P, class RowPtr>
__device__ WStream<WT, Threads, P, RowPtr> make_stream(uint4* ring, RowPtr rowp, int64_t nrows, int64_t KV) {
  return WStream<WT, Threads, P, RowPtr>{ring, rowp, nrows, KV, (KV + 31) / 32};
}

inline unsigned blocks_for(int64_t n, int threads) { return unsigned((n + threads - 1) / threads); }

}  // namespace ssm::kernels::cuda

#define SSM_CUDA_LAUNCH_CHECK(what) ::ssm::kernels::cuda::check(cudaGetLastError(), what)
