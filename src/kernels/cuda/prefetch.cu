// L2 prefetch of weights for decode. A decode step is a chain of dependent kernels; between the
// bandwidth-bound products (in_proj, out_proj) run small latency-bound ones (conv step, x_proj, the
// scan/SSD step) during which HBM sits mostly idle. This kernel asks the memory system to bring the
// next products' weights into L2 (bulk prefetches through the copy engine on sm_90+, one line
// prefetch per 128 bytes before), so those products then read them from L2. It reads or writes
// nothing else. The caller runs it on a stream branch beside the chain (cuda_model.cpp).
#include <algorithm>

#include "kernels/cuda/common.cuh"

namespace ssm::kernels::cuda {
namespace {

// One SM's copy engine moved ~90 GB/s of prefetches (4 blocks: ~45 MB in ~130 us on the H200), so
// the work is spread over a block of one warp per SM, 8 KiB per bulk prefetch.
constexpr uint64_t kChunk = 8 << 10;
constexpr int kThreads = 32;

__global__ void __launch_bounds__(kThreads) l2_prefetch_kernel(L2Ranges r) {
  pdl_wait();     // the kernel before in this stream has finished
  pdl_trigger();  // the next may launch now; nothing it reads is written here
  const uint64_t tid = uint64_t(blockIdx.x) * blockDim.x + threadIdx.x, nt = uint64_t(gridDim.x) * blockDim.x;
  for (int i = 0; i < r.n; i++) {
    const char* base = static_cast<const char*>(r.p[i]);
    const uint64_t bytes = r.bytes[i] & ~uint64_t(15), nch = (bytes + kChunk - 1) / kChunk;
    for (uint64_t c = tid; c < nch; c += nt) {
      const char* a = base + c * kChunk;
      const uint64_t left = bytes - c * kChunk;
      const uint32_t n = uint32_t(left < kChunk ? left : kChunk);
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
      asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(a), "r"(n) : "memory");
#else
      for (uint32_t o = 0; o < n; o += 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(a + o));
#endif
    }
  }
}

}  // namespace

void l2_prefetch(const L2Ranges& r, cudaStream_t s) {
  L2Ranges q{};
  for (int i = 0; i < r.n && i < L2Ranges::kMax; i++)  // 16-byte aligned ranges only (bulk-copy rule)
    if (r.p[i] && r.bytes[i] >= 16 && reinterpret_cast<uintptr_t>(r.p[i]) % 16 == 0) {
      q.p[q.n] = r.p[i];
      q.bytes[q.n++] = r.bytes[i];
    }
  if (q.n == 0) return;
  static const int sms = [] {
    int dev = 0, n = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    return n > 0 ? n : 1;
  }();
  launch("l2_prefetch", l2_prefetch_kernel, dim3(unsigned(sms)), dim3(kThreads), 0, s, q);
}

}  // namespace ssm::kernels::cuda
