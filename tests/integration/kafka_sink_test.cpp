// The Kafka sink through the SDK harness against librdkafka's mock cluster (a real Kafka
// protocol peer in this process): acknowledgements come from delivery reports.
#include "sink.hpp"

#include "kafka_mock.hpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

#include <algorithm>

using edgeflow::kafka::KafkaSink;
using edgeflow::test::KafkaMock;
using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;
using edgeflow::testing::Input;

namespace {

class KafkaSinkTest : public ::testing::Test {
 protected:
  KafkaMock kafka;
  std::string config(const std::string& extra) const {
    return "brokers: \"" + kafka.bootstraps() + "\"\n" + extra;
  }
};

TEST_F(KafkaSinkTest, TopicKeyPartitionAndHeadersComeFromExpressions) {
  kafka.create_topic("orders.eu", 4);
  Harness<KafkaSink> h(config("topic: orders.${region}\nkey: id\npartition: \"id % 4\"\n"
                              "headers: { kind: \"upper(kind)\" }\n"));
  std::vector<Input> in;
  for (int i = 0; i < 8; ++i)
    in.push_back(Input{.payload = "{\"id\":" + std::to_string(i) + ",\"region\":\"eu\",\"kind\":\"order\"}",
                       .headers = {{"trace", "t" + std::to_string(i)}}});
  h.write(in);
  auto acks = h.wait_acks(8);
  ASSERT_EQ(acks.size(), 8u);
  for (auto& a : acks) EXPECT_EQ(a.status, EF_ACK_DELIVERED) << a.reason;

  auto got = kafka.consume_all("orders.eu", 8);
  ASSERT_EQ(got.size(), 8u);
  std::sort(got.begin(), got.end(), [](auto& a, auto& b) { return std::stoi(a.key) < std::stoi(b.key); });
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(got[size_t(i)].key, std::to_string(i));
    EXPECT_EQ(got[size_t(i)].partition, i % 4);
    EXPECT_EQ(got[size_t(i)].value, in[size_t(i)].payload);
    auto& hd = got[size_t(i)].headers;
    EXPECT_NE(std::find(hd.begin(), hd.end(), std::pair<std::string, std::string>{"kind", "ORDER"}), hd.end());
    EXPECT_NE(std::find(hd.begin(), hd.end(), std::pair<std::string, std::string>{"trace", "t" + std::to_string(i)}),
              hd.end());
  }
}

TEST_F(KafkaSinkTest, WithoutAKeyExpressionTheMessageKeyIsUsed) {
  kafka.create_topic("t", 1);
  Harness<KafkaSink> h(config("topic: t\nforward_headers: false\n"));
  h.write({Input{.payload = "{}", .key = "k1", .headers = {{"secret-ish", "x"}}}});
  ASSERT_EQ(h.wait_acks(1).at(0).status, EF_ACK_DELIVERED);
  auto got = kafka.consume_all("t", 1);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].key, "k1");
  EXPECT_TRUE(got[0].headers.empty());
}

TEST_F(KafkaSinkTest, MessagesThatCanNeverBeWrittenAreRejectedWithTheReasonAndTheRestGoOn) {
  kafka.create_topic("t", 1);
  Harness<KafkaSink> h(config("topic: t.${region}\nmax_message_bytes: 1000\n"));
  kafka.create_topic("t.eu", 1);
  h.write({Input{.payload = "{\"region\":\"eu\",\"pad\":\"" + std::string(5000, 'x') + "\"}"},
           Input{.payload = "{\"nothing\":1}"},
           Input{.payload = "{\"region\":\"eu\"}"}});
  auto acks = h.wait_acks(3);
  ASSERT_EQ(acks.size(), 3u);
  std::map<std::string, std::pair<ef_ack_status, std::string>> by_payload;
  for (auto& a : acks) by_payload[a.payload.size() > 1000 ? "big" : a.payload] = {a.status, a.reason};
  auto big = by_payload["big"];
  EXPECT_EQ(big.first, EF_ACK_REJECTED);
  EXPECT_NE(big.second.find("larger than"), std::string::npos) << big.second;
  auto unmappable = by_payload["{\"nothing\":1}"];
  EXPECT_EQ(unmappable.first, EF_ACK_REJECTED);
  EXPECT_NE(unmappable.second.find("${region} is null"), std::string::npos) << unmappable.second;
  EXPECT_EQ(by_payload["{\"region\":\"eu\"}"].first, EF_ACK_DELIVERED);
  EXPECT_EQ(kafka.consume_all("t.eu", 1).size(), 1u);
}

TEST_F(KafkaSinkTest, ABrokerThatStaysDownTurnsIntoRetriesAndDeliveryResumesWhenItIsBack) {
  kafka.create_topic("t", 1);
  Harness<KafkaSink> h(config("topic: t\ndelivery_timeout: 1s\n"));
  h.write({Input{.payload = "{\"n\":0}"}});
  ASSERT_EQ(h.wait_acks(1).at(0).status, EF_ACK_DELIVERED);
  kafka.set_down(1);
  h.write({Input{.payload = "{\"n\":1}"}});
  auto acks = h.wait_acks(2, std::chrono::seconds(30));
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[1].status, EF_ACK_RETRY);
  EXPECT_NE(acks[1].reason.find("timed out"), std::string::npos) << acks[1].reason;
  kafka.set_up(1);
  // What the runtime does with a retry: write it again until it is delivered (the producer
  // reconnects with its own backoff meanwhile).
  size_t n = 2;
  for (int attempt = 0; attempt < 20 && acks.back().status != EF_ACK_DELIVERED; ++attempt) {
    h.write({Input{.payload = "{\"n\":1}"}});
    acks = h.wait_acks(++n, std::chrono::seconds(30));
    ASSERT_EQ(acks.size(), n);
  }
  EXPECT_EQ(acks.back().status, EF_ACK_DELIVERED) << acks.back().reason;
  EXPECT_EQ(kafka.consume_all("t", 2).size(), 2u);
}

TEST_F(KafkaSinkTest, AFatalProducerErrorFailsTheFlowWithTheReason) {
  kafka.create_topic("t", 1);
  Harness<KafkaSink> h(config("topic: t\n"));
  h.write({Input{.payload = "{\"n\":0}"}});
  ASSERT_EQ(h.wait_acks(1).at(0).status, EF_ACK_DELIVERED);
  // The broker answers the next write with a sequence gap the idempotent producer cannot repair.
  rd_kafka_mock_push_request_errors(kafka.cluster(), 0 /* Produce */, 1, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER);
  h.write({Input{.payload = "{\"n\":1}"}});
  auto acks = h.wait_acks(2);
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_NE(acks[1].status, EF_ACK_DELIVERED);
  try {
    h.write({Input{.payload = "{\"n\":2}"}});
    ADD_FAILURE() << "write went on after a fatal producer error";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("the Kafka producer failed and cannot go on"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("OUT_OF_ORDER_SEQUENCE"), std::string::npos) << e.what();
  }
}

TEST_F(KafkaSinkTest, ConfigMistakesAreCaughtBeforeAnythingConnects) {
  auto error = [&](const std::string& yaml) {
    try {
      Harness<KafkaSink> h(config(yaml));
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  auto e = error("topic: t\nproperties:\n  socket.keepalive.enable: true\n  no.such.property: 1\n");
  EXPECT_NE(e.find("<harness>:5:"), std::string::npos) << e;
  EXPECT_NE(e.find("librdkafka has no property 'no.such.property'"), std::string::npos) << e;
  e = error("topic: t\nproperties: { enable.idempotence: false }\n");
  EXPECT_NE(e.find("edgeflow sets enable.idempotence itself"), std::string::npos) << e;
  e = error("topic: t\nacks: leader\n");
  EXPECT_NE(e.find("idempotent producer needs acks: all"), std::string::npos) << e;
  e = error("topic: t.${\n");
  EXPECT_NE(e.find("topic:"), std::string::npos) << e;
  e = error("topic: t\nproperties: { linger.ms: 5 }\n");
  EXPECT_NE(e.find("edgeflow sets linger.ms itself"), std::string::npos) << e;
}

}  // namespace
