#include "backend/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace dsv4 {
namespace {

// True on a pool's worker threads and while a caller runs its own range, so that nested
// parallel_for calls run inline instead of waiting on workers that are busy with the caller.
thread_local bool t_inside_pool = false;

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

// How long a thread spins before it sleeps on the futex: longer than the gap between two ops
// of one decode step, so that a decoding engine rarely pays a wake-up (several microseconds,
// far more on a loaded machine) per op, and short enough not to burn a core when idle. The
// clock is read every 64 pauses (a pause costs up to ~100 cycles on recent cores).
constexpr auto kSpinTime = std::chrono::microseconds(50);

template <typename T, typename Pred>
void spin_then_wait(const std::atomic<T>& a, Pred done) {
  const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done(a.load(std::memory_order_acquire))) return;
      cpu_relax();
    }
    if (std::chrono::steady_clock::now() > deadline) break;
  }
  for (T v = a.load(std::memory_order_acquire); !done(v); v = a.load(std::memory_order_acquire)) {
    a.wait(v, std::memory_order_acquire);
  }
}

}  // namespace

ThreadPool::ThreadPool(int threads) : size_(std::max(1, threads)) {
  threads_.reserve(static_cast<size_t>(size_ - 1));
  for (int i = 1; i < size_; ++i) threads_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void ThreadPool::range_of(int part, int64_t* begin, int64_t* end) const {
  // Whole groups of `grain` items, spread as evenly as possible.
  const int64_t groups = (n_items_ + grain_ - 1) / grain_;
  const int64_t base = groups / size_, extra = groups % size_;
  const int64_t g0 = part * base + std::min<int64_t>(part, extra);
  const int64_t g1 = g0 + base + (part < extra ? 1 : 0);
  *begin = std::min(n_items_, g0 * grain_);
  *end = std::min(n_items_, g1 * grain_);
}

void ThreadPool::worker_main(int index) {
  t_inside_pool = true;
  uint64_t seen = 0;
  for (;;) {
    spin_then_wait(generation_, [seen](uint64_t g) { return g != seen; });
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_relaxed)) return;
    int64_t b = 0, e = 0;
    range_of(index, &b, &e);
    if (b < e) fn_(ctx_, b, e, index);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::run(int64_t n_items, int64_t grain, RangeFn fn, const void* ctx) {
  if (n_items <= 0) return;
  grain = std::max<int64_t>(1, grain);
  std::unique_lock<std::mutex> lock(caller_mutex_, std::defer_lock);
  if (size_ == 1 || n_items <= grain || t_inside_pool || !lock.try_lock()) {
    fn(ctx, 0, n_items, 0);
    return;
  }
  fn_ = fn;
  ctx_ = ctx;
  n_items_ = n_items;
  grain_ = grain;
  pending_.store(size_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);  // publishes the job
  generation_.notify_all();

  int64_t b = 0, e = 0;
  range_of(0, &b, &e);
  t_inside_pool = true;
  if (b < e) fn(ctx, b, e, 0);
  t_inside_pool = false;
  spin_then_wait(pending_, [](int p) { return p == 0; });
}

int physical_core_count() {
  // Distinct (package, core) pairs from sysfs; SMT siblings share one pair.
  std::set<std::pair<std::string, std::string>> cores;
  const unsigned logical = std::max(1u, std::thread::hardware_concurrency());
  for (unsigned cpu = 0; cpu < logical; ++cpu) {
    const std::string dir = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    std::ifstream pkg(dir + "physical_package_id"), core(dir + "core_id");
    std::string p, c;
    if (!(pkg >> p) || !(core >> c)) return static_cast<int>(logical);
    cores.emplace(p, c);
  }
  return std::max<int>(1, static_cast<int>(cores.size()));
}

namespace {

int default_count() {
  if (const char* env = std::getenv("DSV4_THREADS")) {
    const int n = std::atoi(env);
    if (n > 0) return n;
  }
  return physical_core_count();
}

// The engine-wide pool: deliberately process-wide, like the SIMD dispatch tables, because
// ops such as linear() are called from the model graph without a context parameter.
std::unique_ptr<ThreadPool>& default_pool_slot() {
  static std::unique_ptr<ThreadPool> pool = std::make_unique<ThreadPool>(default_count());
  return pool;
}

}  // namespace

ThreadPool& default_thread_pool() { return *default_pool_slot(); }

void set_default_thread_count(int threads) {
  default_pool_slot() = std::make_unique<ThreadPool>(threads > 0 ? threads : default_count());
}

}  // namespace dsv4
