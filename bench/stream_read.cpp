// stream_read: memory read bandwidth, STREAM-style. Each thread sums its own contiguous slice of
// one large array (integer adds, so the compiler vectorises without fast-math); the best of several
// passes is reported as GB/s (1e9 bytes). This is the bound for decode speed: one token reads
// every weight once, so tokens/s <= bandwidth / weight bytes. The array is anonymous memory advised
// for transparent huge pages (the fastest reads this machine gives; ssm's `--weight-memory resident`
// holds weights the same way); with STREAM_4K=1 it is left to 4 KiB pages (on the 2-core VM:
// ~30-35 GB/s against ~40-44).
//
//   c++ -O3 -march=native -std=c++20 -pthread bench/stream_read.cpp -o stream_read
//   ./stream_read [threads=2] [MiB=1024] [passes=10]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <thread>
#include <vector>

#include <sys/mman.h>

namespace {

uint64_t sum_range(const uint64_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += p[i];
    a1 += p[i + 1];
    a2 += p[i + 2];
    a3 += p[i + 3];
  }
  for (; i < n; i++) a0 += p[i];
  return a0 + a1 + a2 + a3;
}

template <class F>
void parallel(int nt, F f) {
  std::vector<std::thread> ts;
  for (int t = 0; t < nt; t++) ts.emplace_back(f, t);
  for (auto& t : ts) t.join();
}

}  // namespace

int main(int argc, char** argv) {
  const int nt = argc > 1 ? std::max(1, std::atoi(argv[1])) : 2;
  const size_t mib = argc > 2 ? size_t(std::max(1, std::atoi(argv[2]))) : 1024;
  const int passes = argc > 3 ? std::max(1, std::atoi(argv[3])) : 10;
  const size_t n = mib * 1024 * 1024 / sizeof(uint64_t);
  const size_t huge = size_t(2) << 20, len = (n * sizeof(uint64_t) + huge - 1) / huge * huge;
  void* mem = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) {
    std::perror("mmap");
    return 1;
  }
#ifdef MADV_HUGEPAGE
  if (!std::getenv("STREAM_4K")) madvise(mem, len, MADV_HUGEPAGE);
#endif
  auto unmap = [len](uint64_t* p) { munmap(p, len); };
  std::unique_ptr<uint64_t[], decltype(unmap)> a(static_cast<uint64_t*>(mem), unmap);
  auto slice = [&](int t, size_t& b, size_t& e) {
    b = n * size_t(t) / size_t(nt);
    e = n * size_t(t + 1) / size_t(nt);
  };
  // First touch by the thread that later reads the slice.
  parallel(nt, [&](int t) {
    size_t b, e;
    slice(t, b, e);
    for (size_t i = b; i < e; i++) a[i] = i;
  });
  std::vector<uint64_t> part(static_cast<size_t>(nt));
  double best = 1e30;
  uint64_t check = 0;
  for (int p = 0; p < passes; p++) {
    auto t0 = std::chrono::steady_clock::now();
    parallel(nt, [&](int t) {
      size_t b, e;
      slice(t, b, e);
      part[size_t(t)] = sum_range(a.get() + b, e - b);
    });
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s);
    for (uint64_t v : part) check += v;
  }
  const double bytes = double(n) * sizeof(uint64_t);
  std::printf("read %.0f MiB with %d threads, best of %d passes: %.3f s, %.2f GB/s (checksum %llu; %s pages)\n",
              bytes / 1048576.0, nt, passes, best, bytes / best / 1e9, (unsigned long long)check,
              std::getenv("STREAM_4K") ? "4 KiB" : "huge-page advised");
  return 0;
}
