// A fixed set of persistent worker threads that split a range of work items between them.
// The heavy ops (matrix products) call parallel_for once per op; the workers spin briefly
// before sleeping, so the per-call cost (a barrier) stays in the microsecond range while the
// machine is busy and no CPU is burnt while it is idle.
#pragma once
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace dsv4 {

class ThreadPool {
 public:
  // fn(begin, end, worker): one contiguous range of items; worker in [0, size()).
  using RangeFn = void (*)(const void* ctx, int64_t begin, int64_t end, int worker);

  // `threads` workers in total, the calling thread included (so 1 spawns none).
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // Splits [0, n_items) into size() contiguous ranges of whole `grain`-item groups (the same
  // split for the same arguments, so results never depend on timing) and runs fn on each;
  // the caller runs range 0. Returns when all ranges are done. A call made from inside a
  // range (nested) or while another thread is using the pool runs the whole range inline.
  template <typename F>
  void parallel_for(int64_t n_items, int64_t grain, const F& fn) {
    run(n_items, grain, &trampoline<F>, &fn);
  }

  void run(int64_t n_items, int64_t grain, RangeFn fn, const void* ctx);

 private:
  template <typename F>
  static void trampoline(const void* ctx, int64_t begin, int64_t end, int worker) {
    (*static_cast<const F*>(ctx))(begin, end, worker);
  }
  void worker_main(int index);
  void range_of(int part, int64_t* begin, int64_t* end) const;

  int size_ = 1;
  std::vector<std::thread> threads_;
  std::mutex caller_mutex_;  // one caller at a time; others run inline

  // The current job, published by the generation counter (release / acquire).
  RangeFn fn_ = nullptr;
  const void* ctx_ = nullptr;
  int64_t n_items_ = 0;
  int64_t grain_ = 1;
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> pending_{0};  // workers still running the current job
  std::atomic<bool> stop_{false};
};

// Number of physical cores (not SMT siblings) of this machine; at least 1.
int physical_core_count();

// The engine-wide pool used by ops whose signature has no pool parameter. Created on first
// use with DSV4_THREADS (environment) threads, else physical_core_count().
ThreadPool& default_thread_pool();

// Replaces the engine-wide pool by one of `threads` threads (<= 0: the default count). Call
// it while no op is running (startup, or between requests).
void set_default_thread_count(int threads);

}  // namespace dsv4
