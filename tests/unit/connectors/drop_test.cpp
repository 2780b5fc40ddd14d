#include "drop.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::Harness;

TEST(Drop, AcknowledgesEverythingAsDelivered) {
  Harness<Drop> h("");
  h.write({{.payload = "a"}, {.payload = "not json"}});
  auto acks = h.wait_acks(2);
  ASSERT_EQ(acks.size(), 2u);
  for (auto& a : acks) EXPECT_EQ(a.status, EF_ACK_DELIVERED);
}

TEST(Drop, TakesNoOptions) {
  try {
    Harness<Drop> h("path: x");
    FAIL() << "no error";
  } catch (const edgeflow::testing::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("It takes no options."), std::string::npos) << e.what();
  }
}
