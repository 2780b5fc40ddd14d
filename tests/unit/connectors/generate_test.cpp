#include "generate.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::Harness;

TEST(Generate, EmitsCountEventsWithIdsKeysAndTokens) {
  Harness<Generate> h("count: 10\nbatch_size: 3\nkeys: 4");
  h.run();
  auto out = h.emitted();
  ASSERT_EQ(out.size(), 10u);
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].token, i);
    EXPECT_EQ(out[i].key, "k-" + std::to_string(i % 4));
    EXPECT_EQ(out[i].payload.rfind("{\"id\":" + std::to_string(i) + ",\"key\":\"" + out[i].key + "\",\"value\":", 0), 0u)
        << out[i].payload;
    EXPECT_EQ(out[i].content_type, "application/json");
    EXPECT_GT(out[i].timestamp_ms, 0);
  }
}

TEST(Generate, EndlessUntilTheFlowStops) {
  Harness<Generate> h("batch_size: 100");
  h.run(1000);
  EXPECT_EQ(h.emitted_count(), 1000u);
}

TEST(Generate, ARateEmitsOneDueEventAtATime) {
  // At 1000/s over a handful of events, every batch holds only what is due, never batch_size.
  Harness<Generate> h("count: 5\nrate: 1000\nbatch_size: 64");
  h.run();
  auto out = h.emitted();
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out.back().token, 4u);
}

TEST(Generate, RejectsANegativeRate) {
  EXPECT_THROW(Harness<Generate>("rate: -1"), edgeflow::testing::ConfigError);
}
