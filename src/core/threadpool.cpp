// Thread pool implementation: a generation counter announces each job; workers spin on it for a
// short while, then wait on a condition variable. Job = fn(index, count) for index in [0, count).
#include "core/threadpool.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define SSM_PAUSE() _mm_pause()
#else
#define SSM_PAUSE() std::this_thread::yield()
#endif

namespace ssm {
namespace {

int default_threads() {
  if (const char* e = std::getenv("SSM_THREADS")) {
    int n = std::atoi(e);
    if (n > 0) return std::min(n, 1024);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

thread_local bool t_in_job = false;

class Pool {
 public:
  explicit Pool(int n) { resize(n); }
  ~Pool() { stop(); }

  int size() const { return int(workers_.size()) + 1; }

  void resize(int n) {
    n = std::max(1, n);
    if (n == size()) return;
    stop();
    quit_ = false;
    const uint64_t g0 = gen_.load();
    for (int i = 1; i < n; i++) workers_.emplace_back([this, i, g0] { loop(i, g0); });
  }

  void run(const std::function<void(int, int)>& fn) {
    const int n = size();
    if (n == 1 || t_in_job) {
      fn(0, 1);
      return;
    }
    std::lock_guard<std::mutex> serial(run_mu_);  // one job at a time from different callers
    job_ = &fn;
    pending_.store(n - 1, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(mu_);
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    t_in_job = true;
    fn(0, n);
    t_in_job = false;
    // Spin while the workers are finishing; yield once it takes long (an oversubscribed machine
    // may have descheduled a worker, and spinning would only keep it off the core).
    for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; spins++) {
      if (spins < 4096) SSM_PAUSE();
      else std::this_thread::yield();
    }
    job_ = nullptr;
  }

 private:
  void loop(int index, uint64_t seen) {
    t_in_job = true;  // jobs started from a worker run serially
    for (;;) {
      uint64_t g = gen_.load(std::memory_order_acquire);
      if (g == seen) {
        // Spin ~50 µs for the next job of a decode step, then sleep.
        auto t0 = std::chrono::steady_clock::now();
        int spins = 0;
        while ((g = gen_.load(std::memory_order_acquire)) == seen && !quit_.load(std::memory_order_relaxed)) {
          SSM_PAUSE();
          if (++spins % 256 == 0 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(50)) break;
        }
        if (g == seen) {
          std::unique_lock<std::mutex> lk(mu_);
          cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen || quit_.load(); });
          g = gen_.load(std::memory_order_acquire);
        }
      }
      if (quit_.load()) return;
      seen = g;
      (*job_)(index, size());
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex mu_, run_mu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> quit_{false};
  const std::function<void(int, int)>* job_ = nullptr;
};

Pool& pool() {
  static Pool p(default_threads());
  return p;
}

}  // namespace

int num_threads() { return pool().size(); }

void set_num_threads(int n) { pool().resize(n <= 0 ? default_threads() : n); }

void parallel_run(const std::function<void(int, int)>& fn) { pool().run(fn); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t max_parts = (n + grain - 1) / grain;
  if (max_parts <= 1 || num_threads() == 1 || t_in_job) {
    fn(0, n);
    return;
  }
  pool().run([&](int i, int T) {
    const int64_t parts = std::min<int64_t>(T, max_parts);
    if (i >= parts) return;
    // Even split in units of `grain`.
    const int64_t units = max_parts, per = units / parts, extra = units % parts;
    const int64_t u0 = i * per + std::min<int64_t>(i, extra), u1 = u0 + per + (i < extra ? 1 : 0);
    const int64_t b = u0 * grain, e = std::min(n, u1 * grain);
    if (b < e) fn(b, e);
  });
}

}  // namespace ssm
