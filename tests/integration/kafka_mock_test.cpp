// The KafkaMock fixture (tests/support/kafka_mock.hpp): librdkafka's mock cluster in this process,
// written and read with real librdkafka clients. Also pins down the mock's quirks the fixture's
// comment and `edgeflow dev kafka`'s banner describe, so a librdkafka upgrade that changes them
// shows up here.
#include "kafka_mock.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>

using edgeflow::test::KafkaMock;
using Headers = std::vector<std::pair<std::string, std::string>>;

namespace {

bool by_position(const KafkaMock::Message& a, const KafkaMock::Message& b) {
  return std::tie(a.partition, a.offset) < std::tie(b.partition, b.offset);
}

TEST(KafkaMock, RoundTripKeepsKeysValuesHeadersPartitionsAndOffsets) {
  KafkaMock kafka;
  ASSERT_EQ(kafka.bootstraps().rfind("127.0.0.1:", 0), 0u) << kafka.bootstraps();
  kafka.create_topic("orders", 3);
  auto written = kafka.produce(
      "orders", {{.key = "k0", .value = "v0", .headers = {{"trace", "t0"}}, .partition = 0},
                 {.key = "k1", .value = "v1", .headers = {{"a", "1"}, {"a", "2"}, {"empty", ""}}, .partition = 2},
                 {.key = "", .value = "no key", .headers = {}, .partition = 2},
                 {.key = "k3", .value = std::string("bin\0ary", 7), .headers = {}, .partition = 0}});
  ASSERT_EQ(written.size(), 4u);
  EXPECT_EQ(written[0].partition, 0);
  EXPECT_EQ(written[0].offset, 0);
  EXPECT_EQ(written[1].partition, 2);
  EXPECT_EQ(written[1].offset, 0);
  EXPECT_EQ(written[2].offset, 1);
  EXPECT_EQ(written[3].offset, 1);

  auto got = kafka.consume_all("orders", 4);
  ASSERT_EQ(got.size(), 4u);
  std::sort(got.begin(), got.end(), by_position);
  EXPECT_EQ(got[0].key, "k0");
  EXPECT_EQ(got[0].value, "v0");
  EXPECT_EQ(got[0].headers, (Headers{{"trace", "t0"}}));
  EXPECT_EQ(got[1].key, "k3");
  EXPECT_EQ(got[1].value, std::string("bin\0ary", 7));
  EXPECT_EQ(got[1].offset, 1);
  EXPECT_TRUE(got[1].headers.empty());
  EXPECT_EQ(got[2].key, "k1");
  EXPECT_EQ(got[2].partition, 2);
  EXPECT_EQ(got[2].headers, (Headers{{"a", "1"}, {"a", "2"}, {"empty", ""}}));
  EXPECT_EQ(got[3].key, "");
  EXPECT_EQ(got[3].value, "no key");
  EXPECT_EQ(got[3].partition, 2);
  EXPECT_EQ(got[3].offset, 1);
}

TEST(KafkaMock, ConsumeAllReadsEveryPartitionToItsEndSoExtrasShow) {
  KafkaMock kafka;
  kafka.create_topic("t", 2);
  kafka.produce("t", {{.key = "a", .value = "1"}, {.key = "b", .value = "2"}, {.key = "c", .value = "3"}});
  EXPECT_EQ(kafka.consume_all("t", 1).size(), 3u);
  // Fewer than expected: what is there, after the timeout.
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(kafka.consume_all("t", 4, std::chrono::milliseconds(1500)).size(), 3u);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(1500));
}

TEST(KafkaMock, ABrokerSetDownRefusesClientsUntilSetUp) {
  KafkaMock kafka(3);
  EXPECT_EQ(kafka.brokers(), 3);
  kafka.create_topic("t", 1);
  kafka.set_leader("t", 0, 2);
  kafka.produce("t", {{.key = "before", .value = "1"}});

  kafka.set_down(2);
  // The partition's only leader is gone and nothing fails over: the write times out.
  EXPECT_THROW(kafka.produce("t", {{.key = "while down", .value = "2"}}, std::chrono::milliseconds(1500)),
               std::runtime_error);
  EXPECT_TRUE(kafka.consume_all("t", 1, std::chrono::milliseconds(1500)).empty());

  kafka.set_up(2);
  kafka.produce("t", {{.key = "after", .value = "3"}});
  auto got = kafka.consume_all("t", 2);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].key, "before");
  EXPECT_EQ(got[1].key, "after");
  EXPECT_EQ(got[1].offset, 1);

  EXPECT_THROW(kafka.set_down(4), std::runtime_error);  // no such broker
}

// librdkafka 2.0.2's mock: any metadata request naming an unknown topic creates it with 4
// partitions (a consumer's too); `edgeflow dev kafka` says so in its banner.
TEST(KafkaMock, AnUnknownTopicIsCreatedOnFirstUseWithFourPartitions) {
  KafkaMock kafka;
  EXPECT_TRUE(kafka.consume_all("never-created", 0, std::chrono::seconds(10)).empty());
  EXPECT_THROW(kafka.create_topic("never-created", 1), std::runtime_error);  // exists now

  auto written = kafka.produce("auto", {{.key = "k", .value = "v", .partition = 3}});
  EXPECT_EQ(written[0].partition, 3);
  EXPECT_THROW(kafka.produce("auto", {{.key = "k", .value = "v", .partition = 4}}, std::chrono::milliseconds(1500)),
               std::runtime_error);
}

// About 5 MB per partition: older batches go without an error, the log start moves up.
TEST(KafkaMock, APartitionKeepsOnlyAboutFiveMegabytes) {
  KafkaMock kafka;
  kafka.create_topic("big", 1);
  const std::string value(100 * 1000, 'x');
  std::vector<KafkaMock::Message> many(80, KafkaMock::Message{.key = "k", .value = value});
  auto written = kafka.produce("big", many);
  EXPECT_EQ(written.back().offset, 79);  // all 8 MB accepted
  auto got = kafka.consume_all("big", 1);
  ASSERT_FALSE(got.empty());
  EXPECT_GT(got.front().offset, 0);  // the oldest are gone
  EXPECT_EQ(got.back().offset, 79);
  EXPECT_LE(got.size() * value.size(), 5u * 1024 * 1024 + value.size());
  EXPECT_GE(got.size() * value.size(), 4u * 1024 * 1024);
}

}  // namespace
