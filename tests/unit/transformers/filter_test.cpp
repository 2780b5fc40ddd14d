#include "filter.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;

TEST(Filter, KeepKeepsWhatTheConditionHoldsFor) {
  Harness<Filter> h("keep: after.total > 10");
  auto r = h.transform({{.payload = R"({"after":{"total":11}})"}, {.payload = R"({"after":{"total":3}})"}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload, R"({"after":{"total":11}})");
  EXPECT_EQ(r.dropped, 1u);
}

TEST(Filter, DropDropsWhatTheConditionHoldsForAndNullCountsAsFalse) {
  Harness<Filter> h("drop: after.deleted");
  auto r = h.transform({{.payload = R"({"after":{"deleted":true}})"}, {.payload = R"({"after":{}})"}});
  ASSERT_EQ(r.kept.size(), 1u);
  EXPECT_EQ(r.kept[0].payload, R"({"after":{}})");
  EXPECT_EQ(r.dropped, 1u);
}

TEST(Filter, ANonBooleanResultRejectsTheMessage) {
  Harness<Filter> h("keep: after.total");
  auto r = h.transform({{.payload = R"({"after":{"total":11}})"}});
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, "filter: keep: `after.total`: a condition needs a bool, got int");
}

TEST(Filter, TakesExactlyOneOfKeepAndDrop) {
  EXPECT_THROW(Harness<Filter>("lookups: {}"), ConfigError);
  try {
    Harness<Filter> h("keep: 'true'\ndrop: 'false'", {.file = "flow.yaml"});
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("flow.yaml:2:7: filter takes exactly one of `keep:` or `drop:`"), std::string::npos)
        << e.what();
  }
}
