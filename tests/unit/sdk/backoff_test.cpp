// sdk/backoff.hpp: the ceiling doubles per attempt up to the cap, every wait lies within
// [lowest, ceiling], and the draws spread over that range.
#include <edgeflow/sdk/backoff.hpp>

#include <gtest/gtest.h>

#include <set>

using edgeflow::sdk::Backoff;
using edgeflow::sdk::full_jitter;
using std::chrono::milliseconds;

TEST(Backoff, WaitsStayUnderADoublingCeilingCappedAtTheMaximum) {
  std::mt19937_64 rng(42);
  for (uint64_t attempt = 1; attempt <= 40; ++attempt) {
    int64_t ceiling = std::min<int64_t>(100LL << std::min<uint64_t>(attempt - 1, 20), 5000);
    std::set<int64_t> seen;
    for (int i = 0; i < 200; ++i) {
      int64_t w = full_jitter(milliseconds(100), milliseconds(5000), attempt, rng).count();
      ASSERT_GE(w, 0);
      ASSERT_LE(w, ceiling) << "attempt " << attempt;
      seen.insert(w);
    }
    EXPECT_GT(seen.size(), 20u) << "attempt " << attempt << ": full jitter spreads the waits";
  }
}

TEST(Backoff, ALowestBoundIsKept) {
  std::mt19937_64 rng(7);
  for (int i = 0; i < 100; ++i) {
    EXPECT_GE(full_jitter(milliseconds(1), milliseconds(10), 1, rng, 1).count(), 1);
    EXPECT_EQ(full_jitter(milliseconds(0), milliseconds(10), 1, rng, 1).count(), 1);
  }
}

TEST(Backoff, CountsAttemptsUntilReset) {
  Backoff b(milliseconds(10), milliseconds(40));
  EXPECT_LE(b.next().count(), 10);
  EXPECT_LE(b.next().count(), 20);
  EXPECT_LE(b.next().count(), 40);
  EXPECT_LE(b.next().count(), 40);
  EXPECT_EQ(b.attempts(), 4);
  b.reset();
  EXPECT_EQ(b.attempts(), 0);
  EXPECT_LE(b.next().count(), 10);
}
