#include "backend/thread_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <vector>

namespace dsv4 {
namespace {

TEST(ThreadPool, CoversEveryItemOnceInGrainGroups) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {1, 2, 7, 64, 1000}) {
      for (int64_t grain : {1, 3, 16}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e, int worker) {
          EXPECT_GE(worker, 0);
          EXPECT_LT(worker, threads);
          EXPECT_TRUE(b % grain == 0) << "range starts inside a grain group";
          for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)]++;
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << n << " " << grain;
      }
    }
  }
}

TEST(ThreadPool, SplitIsDeterministicAndUsesAllWorkers) {
  ThreadPool pool(2);
  std::vector<int> owner(100, -1);
  pool.parallel_for(100, 1, [&](int64_t b, int64_t e, int worker) {
    for (int64_t i = b; i < e; ++i) owner[static_cast<size_t>(i)] = worker;
  });
  for (int i = 0; i < 50; ++i) EXPECT_EQ(owner[i], 0);
  for (int i = 50; i < 100; ++i) EXPECT_EQ(owner[i], 1);
}

TEST(ThreadPool, ManyBackToBackCallsAndNesting) {
  ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int rep = 0; rep < 2000; ++rep) {
    pool.parallel_for(4, 1, [&](int64_t b, int64_t e, int) { sum += e - b; });
  }
  EXPECT_EQ(sum.load(), 8000);
  // A nested call runs inline on the calling worker.
  std::atomic<int64_t> inner{0};
  pool.parallel_for(2, 1, [&](int64_t, int64_t, int) {
    pool.parallel_for(10, 1, [&](int64_t b, int64_t e, int worker) {
      EXPECT_EQ(b, 0);
      EXPECT_EQ(e, 10);
      inner += e - b;
    });
  });
  EXPECT_EQ(inner.load(), 20);
}

TEST(ThreadPool, DefaultPoolIsResizable) {
  EXPECT_GE(physical_core_count(), 1);
  set_default_thread_count(2);
  EXPECT_EQ(default_thread_pool().size(), 2);
  set_default_thread_count(1);
  EXPECT_EQ(default_thread_pool().size(), 1);
  set_default_thread_count(0);
  EXPECT_GE(default_thread_pool().size(), 1);
}

}  // namespace
}  // namespace dsv4
