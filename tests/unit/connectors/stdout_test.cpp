#include "stdout.cpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

using edgeflow::testing::Harness;

TEST(Stdout, WritesOnePayloadPerLine) {
  Harness<Stdout> h("");
  ::testing::internal::CaptureStdout();
  h.write({{.payload = "{\"a\":1}", .key = "k"}, {.payload = "{\"a\":2}"}});
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "{\"a\":1}\n{\"a\":2}\n");
  auto acks = h.wait_acks(2);
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[1].status, EF_ACK_DELIVERED);
}

TEST(Stdout, WithKeyPrefixesTheKey) {
  Harness<Stdout> h("with_key: true");
  ::testing::internal::CaptureStdout();
  h.write({{.payload = "p", .key = "k-1"}});
  EXPECT_EQ(::testing::internal::GetCapturedStdout(), "k-1\tp\n");
}
