// Thread pool implementation on OpenMP (libgomp): its team of threads is created once and reused
// by every parallel region, and it is the same team that oneDNN's GEMMs run on, so prefill's
// matrix products and our kernels never have two sets of threads spinning for the same cores (with
// a pool of our own beside OpenMP's, a third of a 2-core prefill went to the two pools' spin-waits).
// Idle team threads spin briefly before they sleep (libgomp's default wait policy), which keeps the
// hundreds of short jobs of a decode step cheap.
#include "core/threadpool.hpp"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

namespace ssm {
namespace {

int default_threads() {
  if (const char* e = std::getenv("SSM_THREADS")) {
    int n = std::atoi(e);
    if (n > 0) return std::min(n, 1024);
  }
  return int(std::max(1u, std::thread::hardware_concurrency()));
}

int& threads() {
  static int n = [] {
    const int d = default_threads();
    omp_set_num_threads(d);
    return d;
  }();
  return n;
}

}  // namespace

int num_threads() { return threads(); }

void set_num_threads(int n) {
  threads() = n <= 0 ? default_threads() : std::min(n, 1024);
  omp_set_num_threads(threads());
}

void parallel_run(const std::function<void(int, int)>& fn) {
  const int n = num_threads();
  if (n == 1 || omp_in_parallel()) {  // nested calls run serially on the calling thread
    fn(0, 1);
    return;
  }
  // An exception must not leave an OpenMP region: the first one is kept and rethrown after it.
  std::exception_ptr err;
  std::mutex mu;
#pragma omp parallel num_threads(n)
  {
    try {
      fn(omp_get_thread_num(), omp_get_num_threads());
    } catch (...) {
      std::lock_guard<std::mutex> lk(mu);
      if (!err) err = std::current_exception();
    }
  }
  if (err) std::rethrow_exception(err);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t max_parts = (n + grain - 1) / grain;
  if (max_parts <= 1 || num_threads() == 1 || omp_in_parallel()) {
    fn(0, n);
    return;
  }
  parallel_run([&](int i, int T) {
    const int64_t parts = std::min<int64_t>(T, max_parts);
    if (i >= parts) return;
    // Even split in units of `grain`.
    const int64_t units = max_parts, per = units / parts, extra = units % parts;
    const int64_t u0 = i * per + std::min<int64_t>(i, extra), u1 = u0 + per + (i < extra ? 1 : 0);
    const int64_t b = u0 * grain, e = std::min(n, u1 * grain);
    if (b < e) fn(b, e);
  });
}

void parallel_chunks(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  chunk = std::max<int64_t>(1, chunk);
  const int64_t parts = (n + chunk - 1) / chunk;
  if (parts <= 1 || num_threads() == 1 || omp_in_parallel()) {
    fn(0, n);
    return;
  }
  std::atomic<int64_t> next{0};
  parallel_run([&](int, int) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < parts; c = next.fetch_add(1, std::memory_order_relaxed))
      fn(c * chunk, std::min(n, (c + 1) * chunk));
  });
}

}  // namespace ssm
