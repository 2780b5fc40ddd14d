// The kafka source against librdkafka's in-process mock cluster: message mapping, commits of the
// acknowledged prefix only, restarts, end_at_eof, regex subscriptions, backpressure (pause while
// the flow is full), two members of one group, and late acks for revoked partitions.
// The source runs in the SDK harness on its own thread; the test acknowledges what it emitted.
#include "source.hpp"

#include "kafka_mock.hpp"
#include "test_support.hpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using edgeflow::kafka::KafkaSource;
using edgeflow::testing::Changes;
using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;
using edgeflow::testing::Output;

namespace {

using namespace std::chrono_literals;

std::string meta(const Output& o, const std::string& name) { return edgeflow::testing::value_of(o.meta, name); }
int64_t offset_of(const Output& o) { return std::stoll(meta(o, "kafka.offset")); }
int32_t partition_of(const Output& o) { return int32_t(std::stol(meta(o, "kafka.partition"))); }

// Committed offsets are broker state nobody notifies: polled (test_support.hpp).
bool on_broker(const std::function<bool()>& cond) { return edgeflow::test::poll_until(cond, 60s); }

// The mock cluster (tests/support/kafka_mock.hpp), plus what this test needs beyond it: a producer
// that sets timestamps and null values, and a reader of a group's committed offsets.
class Kafka {
 public:
  Kafka() {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", mock_.bootstraps().c_str(), err, sizeof err);
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  }
  ~Kafka() {
    for (auto& [g, rk] : readers_) rd_kafka_destroy(rk);
    rd_kafka_destroy(producer_);
  }
  const std::string& bootstraps() const { return mock_.bootstraps(); }
  void create_topic(const std::string& name, int partitions) { mock_.create_topic(name, partitions); }

  // Messages "m<first>".."m<first+n-1>", message i to partition i % partitions; waits for delivery.
  void produce_spread(const std::string& topic, int first, int n, int partitions) {
    std::vector<edgeflow::test::KafkaMessage> msgs;
    for (int i = first; i < first + n; ++i) msgs.push_back({.value = "m" + std::to_string(i), .partition = i % partitions});
    mock_.produce(topic, std::move(msgs));
  }

  void produce(const std::string& topic, int32_t partition, const std::string& value, const std::string& key = "",
               const std::vector<std::pair<std::string, std::string>>& headers = {}, int64_t ts = 0,
               bool null_value = false) {
    rd_kafka_headers_t* h = nullptr;
    if (!headers.empty()) {
      h = rd_kafka_headers_new(headers.size());
      for (auto& [n, v] : headers) rd_kafka_header_add(h, n.data(), ssize_t(n.size()), v.data(), ssize_t(v.size()));
    }
    rd_kafka_resp_err_t err = rd_kafka_producev(
        producer_, RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(null_value ? nullptr : const_cast<char*>(value.data()), null_value ? 0 : value.size()),
        RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()), RD_KAFKA_V_HEADERS(h),
        RD_KAFKA_V_TIMESTAMP(ts), RD_KAFKA_V_END);
    ASSERT_EQ(err, RD_KAFKA_RESP_ERR_NO_ERROR) << rd_kafka_err2str(err);
  }
  void flush() { ASSERT_EQ(rd_kafka_flush(producer_, 30000), RD_KAFKA_RESP_ERR_NO_ERROR); }

  // The group's committed offset per partition (RD_KAFKA_OFFSET_INVALID: none).
  std::vector<int64_t> committed(const std::string& group, const std::string& topic, int partitions) {
    rd_kafka_t* rk = reader(group);
    rd_kafka_topic_partition_list_t* l = rd_kafka_topic_partition_list_new(partitions);
    for (int p = 0; p < partitions; ++p) rd_kafka_topic_partition_list_add(l, topic.c_str(), p);
    std::vector<int64_t> out(size_t(partitions), -2);  // -2: the query failed
    if (rd_kafka_committed(rk, l, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR)
      for (int i = 0; i < l->cnt; ++i)
        if (!l->elems[i].err) out[size_t(l->elems[i].partition)] = l->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return out;
  }

 private:
  rd_kafka_t* reader(const std::string& group) {
    auto& rk = readers_[group];
    if (!rk) {
      char err[512];
      rd_kafka_conf_t* conf = rd_kafka_conf_new();
      rd_kafka_conf_set(conf, "bootstrap.servers", mock_.bootstraps().c_str(), err, sizeof err);
      rd_kafka_conf_set(conf, "group.id", group.c_str(), err, sizeof err);
      rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    }
    return rk;
  }

  edgeflow::test::KafkaMock mock_;
  rd_kafka_t* producer_ = nullptr;
  std::map<std::string, rd_kafka_t*> readers_;
};

// The source on its own thread; `changes` is shared by sources whose joint state a test waits for.
// `host`, when given, replaces the harness's host table (a test
// that makes emit answer busy).
class Src {
 public:
  explicit Src(const std::string& yaml, std::shared_ptr<Changes> changes = {}, const ef_host_api* host = nullptr)
      : r_(yaml, {.changes = std::move(changes)}, host) {}

  Changes& changes() { return h().changes(); }

  // Waits until n messages were emitted in all; returns everything emitted.
  std::vector<Output> wait(size_t n, std::chrono::milliseconds timeout = 60s) {
    EXPECT_TRUE(h().wait_emitted(n, timeout)) << "got " << h().emitted_count() << " of " << n << "; error: " << r_.error();
    return h().emitted();
  }
  std::vector<Output> emitted() { return h().emitted(); }
  size_t count() { return h().emitted_count(); }
  void ack(const Output& o, ef_ack_status s = EF_ACK_DELIVERED) { h().ack(o.token, s); }
  void ack_all() { h().ack_all_emitted(); }
  // Acknowledges what was emitted since the last call.
  void ack_new() {
    auto out = h().emitted();
    for (; acked_ < out.size(); ++acked_) h().ack(out[acked_].token);
  }
  double metric(const std::string& name) { return h().metric(name).value_or(-1); }
  std::vector<std::string> logs() { return h().logs(); }
  bool logged(const std::string& part) {
    auto l = logs();
    return std::any_of(l.begin(), l.end(), [&](auto& s) { return s.find(part) != std::string::npos; });
  }
  std::string error() { return r_.error(); }
  void stop() { r_.stop(); }

 private:
  Harness<KafkaSource>& h() { return r_.harness(); }
  edgeflow::testing::RunningSource<KafkaSource> r_;
  size_t acked_ = 0;
};

class KafkaSourceTest : public ::testing::Test {
 protected:
  Kafka kafka;

  // Short group timeouts: the mock cluster waits most of a session timeout for members to rejoin.
  // Heartbeats every half second, so a member hears of a rebalance long before that window
  // closes even on a loaded machine (at the default third of the session, CI saw a member miss
  // it and lose its partitions uncommitted).
  std::string config(const std::string& group, const std::string& topics, const std::string& extra = "") const {
    return "brokers: \"" + kafka.bootstraps() + "\"\ngroup_id: " + group + "\ntopics: " + topics +
           "\ncommit_interval: 10ms\nsession_timeout: 6s\nmax_poll_interval: 6s\n"
           "properties:\n  heartbeat.interval.ms: 500\n" + extra;
  }
};

TEST_F(KafkaSourceTest, ValueKeyHeadersTimestampAndMetadata) {
  kafka.create_topic("orders", 1);
  kafka.produce("orders", 0, R"({"id":1})", "k-1", {{"trace", "abc"}, {"event-type", "created"}}, 1700000000123);
  kafka.produce("orders", 0, "plain text", "k-2", {}, 1700000000456);
  kafka.produce("orders", 0, "", "", {}, 1700000000789, true);  // a tombstone: no value, no key
  kafka.flush();

  Src src(config("g-map", "[orders]"));
  auto out = src.wait(3);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].payload, R"({"id":1})");
  EXPECT_EQ(out[0].key, "k-1");
  EXPECT_EQ(out[0].timestamp_ms, 1700000000123);
  EXPECT_EQ(out[0].headers, (edgeflow::testing::Pairs{{"trace", "abc"}, {"event-type", "created"}}));
  EXPECT_EQ(meta(out[0], "kafka.topic"), "orders");
  EXPECT_EQ(meta(out[0], "kafka.partition"), "0");
  EXPECT_EQ(meta(out[0], "kafka.offset"), "0");
  EXPECT_EQ(out[0].content_type, "");  // Kafka does not say
  EXPECT_EQ(out[1].payload, "plain text");
  EXPECT_EQ(out[1].key, "k-2");
  EXPECT_TRUE(out[1].headers.empty());
  EXPECT_EQ(meta(out[1], "kafka.offset"), "1");
  EXPECT_EQ(out[2].payload, "");
  EXPECT_EQ(out[2].key, "");
  EXPECT_EQ(out[2].timestamp_ms, 1700000000789);
  EXPECT_EQ(meta(out[2], "kafka.offset"), "2");
  std::set<uint64_t> tokens;
  for (auto& o : out) tokens.insert(o.token);
  EXPECT_EQ(tokens.size(), 3u);

  // Metrics are published every second while running.
  EXPECT_TRUE(src.changes().wait_until([&] { return src.metric("assigned_partitions") == 1 && src.metric("events") == 3; }));
  EXPECT_TRUE(src.changes().wait_until([&] { return src.metric("lag") == 0; }));
  src.ack_all();
  src.stop();
  EXPECT_EQ(src.error(), "");
  EXPECT_EQ(src.metric("events"), 3);
  EXPECT_EQ(kafka.committed("g-map", "orders", 1), std::vector<int64_t>{3});
  EXPECT_TRUE(src.logged("joining consumer group g-map for topics [orders]"));
  EXPECT_TRUE(src.logged("assigned 1 partitions: orders[0]"));
}

TEST_F(KafkaSourceTest, CommitsOnlyTheAcknowledgedPrefixAndResumesAfterIt) {
  kafka.create_topic("t", 1);
  kafka.produce_spread("t", 0, 10, 1);
  {
    Src src(config("g-prefix", "[t]"));
    auto out = src.wait(10);
    ASSERT_EQ(out.size(), 10u);
    for (int i = 0; i < 10; ++i) ASSERT_EQ(offset_of(out[size_t(i)]), i);
    // Out of order, with gaps at 3 and 6: only 0..2 may be committed.
    for (int i : {7, 5, 1, 0, 4, 2}) src.ack(out[size_t(i)]);
    EXPECT_TRUE(on_broker([&] { return kafka.committed("g-prefix", "t", 1)[0] == 3; }));
    src.stop();  // the final commit has nothing more to add
    EXPECT_EQ(src.error(), "");
  }
  EXPECT_EQ(kafka.committed("g-prefix", "t", 1), std::vector<int64_t>{3});

  // The same group resumes right after the prefix: 3..9 again, nothing before.
  Harness<KafkaSource> h(config("g-prefix", "[t]", "end_at_eof: true"));
  h.run();
  auto again = h.emitted();
  ASSERT_EQ(again.size(), 7u);
  for (size_t i = 0; i < again.size(); ++i) {
    EXPECT_EQ(offset_of(again[i]), int64_t(i) + 3);
    EXPECT_EQ(again[i].payload, "m" + std::to_string(i + 3));
  }
  h.ack_all_emitted();
  h.stop();
  EXPECT_EQ(kafka.committed("g-prefix", "t", 1), std::vector<int64_t>{10});
}

TEST_F(KafkaSourceTest, RetryAckStallsItsPartitionOnly) {
  kafka.create_topic("t2", 2);
  kafka.produce_spread("t2", 0, 8, 2);
  {
    Src src(config("g-retry", "[t2]"));
    auto out = src.wait(8);
    for (auto& o : out) {
      bool retry = partition_of(o) == 0 && offset_of(o) == 1;
      src.ack(o, retry ? EF_ACK_RETRY : EF_ACK_DELIVERED);
    }
    EXPECT_TRUE(on_broker([&] { return kafka.committed("g-retry", "t2", 2) == std::vector<int64_t>{1, 4}; }));
    src.stop();
    EXPECT_EQ(src.error(), "");
  }
  EXPECT_EQ(kafka.committed("g-retry", "t2", 2), (std::vector<int64_t>{1, 4}));

  Harness<KafkaSource> h(config("g-retry", "[t2]", "end_at_eof: true"));
  h.run();
  auto again = h.emitted();
  ASSERT_EQ(again.size(), 3u);  // p0 from the retried message on, p1 nothing
  for (size_t i = 0; i < again.size(); ++i) {
    EXPECT_EQ(partition_of(again[i]), 0);
    EXPECT_EQ(offset_of(again[i]), int64_t(i) + 1);
  }
}

TEST_F(KafkaSourceTest, EndAtEofEndsTheRunAndStopCommitsEverything) {
  kafka.create_topic("eof", 4);  // partition 3 stays empty
  kafka.produce_spread("eof", 0, 30, 3);
  Harness<KafkaSource> h(config("g-eof", "[eof]", "end_at_eof: true\nbatch_size: 7"));
  h.run();  // returns by itself
  auto out = h.emitted();
  ASSERT_EQ(out.size(), 30u);
  std::set<std::pair<int32_t, int64_t>> seen;
  for (auto& o : out) seen.insert({partition_of(o), offset_of(o)});
  EXPECT_EQ(seen.size(), 30u);
  auto logs = h.logs();
  EXPECT_TRUE(std::any_of(logs.begin(), logs.end(), [](auto& l) { return l.find("end_at_eof ends the flow") != std::string::npos; }));
  h.ack_all_emitted();
  h.stop();  // acks delivered, then the final synchronous commit
  EXPECT_EQ(kafka.committed("g-eof", "eof", 4), (std::vector<int64_t>{10, 10, 10, RD_KAFKA_OFFSET_INVALID}));
}

// Standalone: no group to join; every partition read, the acknowledged prefix committed under
// group_id, and a restart resumes right after it.
TEST_F(KafkaSourceTest, StandaloneReadsEveryPartitionWithoutJoiningAndResumes) {
  kafka.create_topic("sa", 3);
  kafka.produce_spread("sa", 0, 30, 3);
  {
    Src src(config("g-sa", "[sa]", "mode: standalone"));
    auto out = src.wait(30);
    ASSERT_EQ(out.size(), 30u);
    for (auto& o : out)
      if (partition_of(o) != 2 || offset_of(o) < 5) src.ack(o);
    EXPECT_TRUE(on_broker([&] { return kafka.committed("g-sa", "sa", 3) == std::vector<int64_t>{10, 10, 5}; }));
    src.stop();
    EXPECT_EQ(src.error(), "");
    EXPECT_TRUE(src.logged("assigned 3 partitions"));
    EXPECT_FALSE(src.logged("joining consumer group"));
  }
  Harness<KafkaSource> h(config("g-sa", "[sa]", "mode: standalone\nend_at_eof: true"));
  h.run();
  auto again = h.emitted();
  ASSERT_EQ(again.size(), 5u);
  for (auto& o : again) {
    EXPECT_EQ(partition_of(o), 2);
    EXPECT_GE(offset_of(o), 5);
  }
  h.ack_all_emitted();
  h.stop();
  EXPECT_EQ(kafka.committed("g-sa", "sa", 3), (std::vector<int64_t>{10, 10, 10}));
}

// Two readers committing for one group would undo each other's offsets: a standalone source whose
// group has members stops at its first commit and says why.
TEST_F(KafkaSourceTest, StandaloneStopsWhenItsGroupHasMembers) {
  kafka.create_topic("taken", 1);
  kafka.produce_spread("taken", 0, 4, 1);
  Src member(config("g-taken", "[taken]"));
  member.wait(4);  // joined, and assigned the partition
  Src alone(config("g-taken", "[taken]", "mode: standalone"));
  auto out = alone.wait(4);
  alone.ack(out[0]);
  EXPECT_TRUE(alone.changes().wait_until([&] { return !alone.error().empty(); }));
  EXPECT_NE(alone.error().find("consumer group g-taken has members"), std::string::npos) << alone.error();
  EXPECT_NE(alone.error().find("give the flow a group_id of its own"), std::string::npos) << alone.error();
}

TEST_F(KafkaSourceTest, StandaloneNamesAMissingTopic) {
  kafka.create_topic("present", 1);
  Harness<KafkaSource> h(config("g-missing", "[present, absent]", "mode: standalone"));
  try {
    h.run();
    FAIL() << "started without the topic";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("no topic on " + kafka.bootstraps() + " is absent: create it first"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(KafkaSourceTest, RegexSubscription) {
  kafka.create_topic("ev.a", 1);
  kafka.create_topic("ev.b", 1);
  kafka.create_topic("other", 1);
  kafka.produce("ev.a", 0, "a");
  kafka.produce("ev.b", 0, "b");
  kafka.produce("other", 0, "o");
  kafka.flush();
  Harness<KafkaSource> h(config("g-regex", "[\"^ev\\\\..*\"]", "end_at_eof: true"));
  h.run();
  auto out = h.emitted();
  std::set<std::string> topics;
  for (auto& o : out) topics.insert(meta(o, "kafka.topic") + "=" + o.payload);
  EXPECT_EQ(topics, (std::set<std::string>{"ev.a=a", "ev.b=b"}));
}

TEST_F(KafkaSourceTest, ConfigErrorsPointIntoTheFile) {
  auto error_of = [](const std::string& yaml) {
    try {
      Harness<KafkaSource> h(yaml, {.file = "flow.yaml"});
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string head = "brokers: localhost:9092\ngroup_id: g\ntopics: [t]\n";
  EXPECT_EQ(error_of(head + "properties:\n  fetch.wait.max.ms: 50\n  no.such.property: 1\n"),
            "flow.yaml:6:21: properties.no.such.property: librdkafka has no property 'no.such.property' "
            "(see https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)");
  EXPECT_EQ(error_of(head + "properties:\n  enable.auto.commit: true\n"),
            "flow.yaml:5:23: properties.enable.auto.commit: edgeflow sets enable.auto.commit itself (it is what "
            "makes delivery safe); use the connector's own options");
  EXPECT_EQ(error_of(head + "properties:\n  fetch.wait.max.ms: soon\n"),
            "flow.yaml:5:22: properties.fetch.wait.max.ms: invalid value");
  EXPECT_EQ(error_of("brokers: b:9092\ngroup_id: g\ntopics: [ok, \"^(open\"]\n"),
            "flow.yaml:3:14: topics[1]: \"^(open\" is not a regular expression: Unmatched ( or \\(");
  EXPECT_EQ(error_of("brokers: b:9092\ngroup_id: g\ntopics: [\"bad topic\"]\n"),
            "flow.yaml:3:10: topics[0]: \"bad topic\" is not a Kafka topic name (letters, digits, '.', '_' and "
            "'-', at most 249); start a regular expression with ^");
  EXPECT_EQ(error_of(head + "session_timeout: 10s\nmax_poll_interval: 5s\n"),
            "flow.yaml:5:20: max_poll_interval: must be at least session_timeout (10000ms)");
  EXPECT_NE(error_of("brokers: b:9092\ntopics: [t]\n").find("group_id"), std::string::npos);
  EXPECT_NE(error_of(head + "start_from: middle\n").find("start_from"), std::string::npos);
}

// The flow is full (emit answers EF_BUSY after its timeout): the source pauses its partitions, keeps
// polling the consumer (the member stays in the group past max.poll.interval.ms) and loses nothing.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool full = true;
  std::vector<size_t> refused;  // batch sizes emit() refused
  ef_status (*emit)(ef_ctx*, ef_message* const*, size_t, int32_t) = nullptr;
};
Gate* g_gate = nullptr;

TEST_F(KafkaSourceTest, PausesWhileTheFlowIsFullAndStaysInTheGroup) {
  kafka.create_topic("bp", 2);
  kafka.produce_spread("bp", 0, 40, 2);

  Gate gate;
  g_gate = &gate;
  ef_host_api api = *edgeflow::testing::detail::host_api();
  gate.emit = api.emit;
  api.emit = [](ef_ctx* c, ef_message* const* msgs, size_t n, int32_t timeout_ms) -> ef_status {
    {
      std::unique_lock lock(g_gate->mutex);
      if (g_gate->full) {
        g_gate->refused.push_back(n);
        g_gate->cv.notify_all();
        if (g_gate->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms), [] { return !g_gate->full; }) == false)
          return EF_BUSY;
      }
    }
    return g_gate->emit(c, msgs, n, timeout_ms);
  };
  // max poll 4s (the mock cluster's first join takes 3s, the session must outlast it): refused for
  // 6s, a member that stopped polling would be out of the group.
  std::string yaml = "brokers: \"" + kafka.bootstraps() +
                     "\"\ngroup_id: g-bp\ntopics: [bp]\nsession_timeout: 4s\nmax_poll_interval: 4s\n";
  Src src(yaml, {}, &api);
  {
    std::unique_lock lock(gate.mutex);
    ASSERT_TRUE(gate.cv.wait_for(lock, 60s, [&] { return !gate.refused.empty(); }))
        << src.count() << " emitted; " << src.error() << "\n" << ::testing::PrintToString(src.logs());
  }
  // More arrives while the flow is full; the paused partitions do not read it.
  kafka.produce_spread("bp", 40, 40, 2);
  {
    std::unique_lock lock(gate.mutex);
    ASSERT_TRUE(gate.cv.wait_for(lock, 60s, [&] { return gate.refused.size() >= 30; }));  // >= 6s
    size_t first = gate.refused.front();
    EXPECT_GT(first, 0u);
    EXPECT_LE(first, 40u);
    for (size_t n : gate.refused) EXPECT_EQ(n, first) << "the held batch grew while the partitions were paused";
    gate.full = false;
  }
  gate.cv.notify_all();
  auto out = src.wait(80);
  EXPECT_EQ(out.size(), 80u);
  // Exactly once and in order per partition: the member never left the group (which would have
  // re-read the unacknowledged messages from the start).
  std::map<int32_t, std::vector<int64_t>> offsets;
  for (auto& o : out) offsets[partition_of(o)].push_back(offset_of(o));
  for (auto& [p, v] : offsets) {
    ASSERT_EQ(v.size(), 40u) << "partition " << p;
    for (size_t i = 0; i < v.size(); ++i) EXPECT_EQ(v[i], int64_t(i)) << "partition " << p;
  }
  EXPECT_FALSE(src.logged("max.poll.interval.ms"));
  EXPECT_FALSE(src.logged("revoked"));
  src.ack_all();
  src.stop();
  edgeflow::sdk::g_host = edgeflow::testing::detail::host_api();
  g_gate = nullptr;
  EXPECT_EQ(src.error(), "");
  EXPECT_EQ(kafka.committed("g-bp", "bp", 2), (std::vector<int64_t>{40, 40}));
}

TEST_F(KafkaSourceTest, TwoSourcesInOneGroupSplitThePartitions) {
  kafka.create_topic("shared", 4);
  auto changes = std::make_shared<Changes>();
  Src a(config("g-split", "[shared]"), changes);
  Src b(config("g-split", "[shared]"), changes);
  // Produce only once the group settled, so no rebalance happens while messages are in flight.
  ASSERT_TRUE(changes->wait_until([&] {
    double na = a.metric("assigned_partitions"), nb = b.metric("assigned_partitions");
    return na >= 1 && nb >= 1 && na + nb == 4;
  })) << a.metric("assigned_partitions") << " + " << b.metric("assigned_partitions");
  auto assignments = [](Src& s) {
    auto l = s.logs();
    return std::count_if(l.begin(), l.end(), [](auto& x) { return x.rfind("assigned ", 0) == 0; });
  };
  auto settled = assignments(a) + assignments(b);
  kafka.produce_spread("shared", 0, 200, 4);
  ASSERT_TRUE(changes->wait_until([&] {
    std::set<std::pair<int32_t, int64_t>> seen;
    for (auto& o : a.emitted()) seen.insert({partition_of(o), offset_of(o)});
    for (auto& o : b.emitted()) seen.insert({partition_of(o), offset_of(o)});
    return seen.size() == 200;
  })) << a.count() << " + " << b.count();
  auto oa = a.emitted(), ob = b.emitted();
  std::set<int32_t> pa, pb;
  std::set<std::pair<int32_t, int64_t>> all;
  for (auto& o : oa) pa.insert(partition_of(o)), all.insert({partition_of(o), offset_of(o)});
  for (auto& o : ob) pb.insert(partition_of(o)), all.insert({partition_of(o), offset_of(o)});
  EXPECT_FALSE(pa.empty());
  EXPECT_FALSE(pb.empty());
  EXPECT_EQ(all.size(), 200u);  // nothing lost
  if (assignments(a) + assignments(b) == settled) {
    // No rebalance while the messages were read: each partition had one reader, each message came once.
    for (int32_t p : pa) EXPECT_EQ(pb.count(p), 0u) << "partition " << p << " read by both";
    EXPECT_EQ(oa.size() + ob.size(), 200u);
  } else {
    // The mock cluster rebalanced again (it does under load): unacknowledged messages of a moved
    // partition are read again by its new owner, so duplicates are allowed; loss is not.
    std::cerr << "note: the group rebalanced while reading; " << oa.size() + ob.size() << " deliveries of 200 messages\n";
  }
  // Both commit what they own (a message read again after a rebalance is acknowledged as it comes).
  // Stop only then: when one leaves, the mock cluster refuses the other's commits until the group
  // rebalanced, where a real broker accepts them from the old generation.
  EXPECT_TRUE(on_broker([&] {
    a.ack_new();
    b.ack_new();
    return kafka.committed("g-split", "shared", 4) == std::vector<int64_t>{50, 50, 50, 50};
  }));
  a.stop();
  b.stop();
  EXPECT_EQ(a.error() + b.error(), "");
  EXPECT_EQ(kafka.committed("g-split", "shared", 4), (std::vector<int64_t>{50, 50, 50, 50}));
}

TEST_F(KafkaSourceTest, LateAckOfARevokedPartitionDoesNotCommit) {
  kafka.create_topic("rv", 2);
  kafka.produce_spread("rv", 0, 20, 2);
  auto changes = std::make_shared<Changes>();
  Src a(config("g-revoke", "[rv]"), changes);
  auto first = a.wait(20);  // a has both partitions; nothing acknowledged
  ASSERT_EQ(first.size(), 20u);

  // b joins: a's partitions are revoked (nothing to commit), then split.
  Src b(config("g-revoke", "[rv]"), changes);
  ASSERT_TRUE(changes->wait_until([&] { return a.metric("assigned_partitions") == 1 && b.metric("assigned_partitions") == 1; }));

  // The first generation's acks come late: ignored, for the partition a lost and the one it kept.
  for (auto& o : first) a.ack(o);
  // As nothing was committed, every new assignment of a partition reads it from offset 0 again. Ack
  // the latest such first message of a: that commits offset 1 of a's partition, and shows the late
  // acks before it were processed. (The mock cluster may rebalance once more; an ack that arrives
  // after that is ignored as well, and the next re-read is acknowledged instead.)
  size_t acked = 0;
  int32_t mine = -1;
  ASSERT_TRUE(on_broker([&] {
    auto out = a.emitted();
    for (size_t i = out.size(); i-- > first.size();) {
      if (offset_of(out[i]) != 0) continue;
      if (i != acked) {
        a.ack(out[i]);
        acked = i;
        mine = partition_of(out[i]);
      }
      break;
    }
    return mine >= 0 && kafka.committed("g-revoke", "rv", 2)[size_t(mine)] == 1;
  })) << a.count() << " emitted by a, " << b.count() << " by b\n" << ::testing::PrintToString(a.logs());
  int32_t other = 1 - mine;
  auto c = kafka.committed("g-revoke", "rv", 2);
  EXPECT_EQ(c[size_t(mine)], 1);  // not 10: offsets 1..9 were acknowledged in the first generation only
  EXPECT_EQ(c[size_t(other)], RD_KAFKA_OFFSET_INVALID);
  EXPECT_TRUE(a.logged("acks for partitions revoked since they were read"));
  a.stop();
  b.stop();
  c = kafka.committed("g-revoke", "rv", 2);
  EXPECT_EQ(c[size_t(mine)], 1);
  EXPECT_EQ(c[size_t(other)], RD_KAFKA_OFFSET_INVALID);
  EXPECT_EQ(a.error() + b.error(), "");
}

// Cooperative rebalancing: only the partition that moves is revoked, and its acknowledged prefix is
// committed synchronously right then (commit_interval alone would not have committed it yet).
TEST_F(KafkaSourceTest, CooperativeRevocationCommitsTheMovedPartitionsPrefix) {
  kafka.create_topic("co", 2);
  kafka.produce_spread("co", 0, 20, 2);
  // Heartbeats as in config(), and a longer session: each member has ample time to commit and
  // rejoin.
  std::string extra = "commit_interval: 1h\nproperties:\n  partition.assignment.strategy: cooperative-sticky\n"
                      "  heartbeat.interval.ms: 500\n";
  auto cfg = [&] {
    return "brokers: \"" + kafka.bootstraps() + "\"\ngroup_id: g-coop\ntopics: [co]\nsession_timeout: 10s\n" +
           "max_poll_interval: 10s\n" + extra;
  };
  Src a(cfg());
  auto first = a.wait(20);
  for (auto& o : first) a.ack(o);
  // One unacknowledged message more per partition. The harness hands queued acks to the source
  // before it admits the next batch, so once these are emitted the 20 acks were processed.
  kafka.produce("co", 0, "extra0");
  kafka.produce("co", 1, "extra1");
  kafka.flush();
  auto all = a.wait(22);
  EXPECT_EQ(kafka.committed("g-coop", "co", 2), (std::vector<int64_t>{RD_KAFKA_OFFSET_INVALID, RD_KAFKA_OFFSET_INVALID}));

  Src b(cfg());
  auto theirs = b.wait(1);  // the moved partition, from its committed offset on: the extra message only
  ASSERT_GE(theirs.size(), 1u);
  int32_t moved = partition_of(theirs[0]);
  int32_t kept = 1 - moved;
  EXPECT_EQ(offset_of(theirs[0]), 10);
  EXPECT_EQ(theirs[0].payload, "extra" + std::to_string(moved));
  auto c = kafka.committed("g-coop", "co", 2);
  EXPECT_EQ(c[size_t(moved)], 10) << "a: " << edgeflow::test::join(a.logs()) << "\nb: " << edgeflow::test::join(b.logs());  // committed on revocation
  EXPECT_EQ(c[size_t(kept)], RD_KAFKA_OFFSET_INVALID);  // still assigned to a: not yet
  EXPECT_EQ(a.metric("assigned_partitions"), 1);
  EXPECT_FALSE(a.logged("revoked 2 partitions"));  // incremental: a kept the other one throughout

  // a's late ack for the moved partition's extra message is ignored; its own prefix is committed at stop.
  for (size_t i = 20; i < all.size(); ++i)
    if (partition_of(all[i]) == moved) a.ack(all[i]);
  a.stop();
  c = kafka.committed("g-coop", "co", 2);
  EXPECT_EQ(c[size_t(moved)], 10);
  EXPECT_EQ(c[size_t(kept)], 10);
  b.stop();
  EXPECT_EQ(a.error() + b.error(), "");
}

}  // namespace
