// A persistent thread pool for the CPU kernels (OpenMP's team, shared with oneDNN): threads are
// created once and reused by every op, so a decode step pays no thread creation. parallel_for splits
// [0, n) into contiguous ranges, one per participating thread (the caller is one of them), and
// returns when all are done; an exception thrown by fn is rethrown to the caller. Threads spin
// briefly after each job before sleeping, because decode issues hundreds of short jobs per token.
//
//   ssm::parallel_for(rows, 16, [&](int64_t r0, int64_t r1) { for (r = r0; r < r1; r++) ... });
//
// Nested calls (from inside a job) run serially on the calling thread. The thread count comes from
// set_num_threads(), else $SSM_THREADS, else the number of hardware threads.
#pragma once
#include <cstdint>
#include <functional>

namespace ssm {

int num_threads();
// n <= 0 restores the default. Resizes the pool (not while a job runs).
void set_num_threads(int n);

// fn(begin, end) over ranges of at least `grain` items (the last may be shorter).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

// fn(begin, end) over chunks of `chunk` items (the last may be shorter) that the threads claim one at
// a time, so a thread slowed down (another process, a busy host core) takes fewer of them.
void parallel_chunks(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t)>& fn);
// fn(thread_index, n_threads) once on every participating thread.
void parallel_run(const std::function<void(int, int)>& fn);

}  // namespace ssm
