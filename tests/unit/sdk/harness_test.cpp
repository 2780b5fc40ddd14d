// The SDK test harness, exercised on the testkit components: config checking as the daemon
// does it, sources and their acks, transformer outcomes, sink acks from other threads.
#include "testkit.cpp"

#include "test_support.hpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

#include <sstream>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;
using edgeflow::test::read_lines;
using edgeflow::test::TempDir;

namespace {

std::string config_error(auto make) {
  try {
    make();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(Harness, ChecksConfigLikeTheDaemonWithLineAndColumn) {
  std::string e = config_error([] { Harness<Sequence> h("count: lots"); });
  EXPECT_EQ(e, "<harness>:1:8: count: expected integer, got 'lots'");
  e = config_error([] { Harness<Sequence> h("batch_size: 10\ncout: 3\n"); });
  EXPECT_NE(e.find("<harness>:2:1: cout: unknown option 'cout' for source 'sequence'. Did you mean 'count'?"),
            std::string::npos) << e;
  e = config_error([] { Harness<Sequence> h("count: [1"); });
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
}

TEST(Harness, ErrorsFromCreatePointIntoTheConfig) {
  std::string e = config_error([] { Harness<Sequence> h("count: 1\ntags: []", {.file = "flow.yaml"}); });
  EXPECT_EQ(e, "flow.yaml:2:7: tags: give at least one tag, e.g. [a]");
}

TEST(Harness, DefaultsAreFilledFromTheSpec) {
  Harness<Sequence> h("count: 25");
  h.run();
  auto out = h.emitted();
  ASSERT_EQ(out.size(), 25u);
  for (size_t i = 0; i < out.size(); ++i) {
    EXPECT_EQ(out[i].token, i);
    EXPECT_EQ(out[i].payload, "{\"n\":" + std::to_string(i) + ",\"tag\":\"a\"}");
  }
}

TEST(Harness, SourceHearsTheAcksTheTestGives) {
  TempDir dir;
  {
    Harness<Sequence> h("count: 4\nbatch_size: 2\nacks_file: " + dir.file("acks"));
    h.run();
    h.ack(2, EF_ACK_REJECTED);
    h.ack(0);
    h.ack(3, EF_ACK_RETRY);
  }  // stop(): queued acks are delivered, then the source writes them out
  EXPECT_EQ(read_lines(dir.file("acks")), (std::vector<std::string>{"2 2", "0 0", "3 1"}));
}

TEST(Harness, StopAfterEndsAnEndlessSource) {
  Harness<Sequence> h("count: 1000000\nbatch_size: 7\nhold_open: true");
  h.run(50);
  EXPECT_GE(h.emitted_count(), 50u);
  EXPECT_LT(h.emitted_count(), 57u);
}

TEST(Harness, RequestStopEndsASourceRunningOnAnotherThread) {
  Harness<Sequence> h("count: 3\nhold_open: true");
  std::thread t([&] { h.run(); });
  ASSERT_TRUE(h.wait_emitted(3));
  h.request_stop();
  t.join();
  EXPECT_EQ(h.emitted_count(), 3u);
}

TEST(Harness, TransformerOutcomesAndRoutesAreReported) {
  Harness<Script> h("reject: bad\ndrop: skip\nsplit: twice\nroute_field: to", {.sinks = {"a", "b"}});
  auto r = h.transform({{.payload = R"({"to":"b","v":1})", .key = "k1"},
                        {.payload = R"({"v":"bad"})"},
                        {.payload = R"({"v":"skip"})"},
                        {.payload = R"({"v":"twice","to":"a"})"}});
  EXPECT_EQ(r.error, "");
  ASSERT_EQ(r.kept.size(), 3u);
  EXPECT_EQ(r.kept[0].key, "k1");
  EXPECT_EQ(r.kept[0].routes, std::vector<std::string>{"b"});
  EXPECT_EQ(r.kept[1].payload, R"({"v":"twice","to":"a"})");
  EXPECT_EQ(r.kept[1].routes, std::vector<std::string>{"a"});
  EXPECT_EQ(r.kept[2].payload, r.kept[1].payload);  // the split copy, appended
  ASSERT_EQ(r.rejected.size(), 1u);
  EXPECT_EQ(r.rejected[0].reason, R"(script: refused {"v":"bad"})");
  EXPECT_EQ(r.dropped, 1u);
}

TEST(Harness, AThrowingTransformerReportsTheError) {
  Harness<Script> h("throw_on: boom");
  auto r = h.transform({{.payload = "boom"}});
  EXPECT_EQ(r.error, "script: cannot handle boom");
}

TEST(Harness, SinkAcksAreCollectedFromWorkerThreadsInArrivalOrder) {
  Harness<Flaky> h("async: true\nreverse: true\nreject: no");
  h.write({{.payload = "1"}, {.payload = "no"}, {.payload = "3"}});
  auto acks = h.wait_acks(3);
  ASSERT_EQ(acks.size(), 3u);
  EXPECT_EQ(acks[0].payload, "3");
  EXPECT_EQ(acks[1].payload, "no");
  EXPECT_EQ(acks[1].status, EF_ACK_REJECTED);
  EXPECT_EQ(acks[1].reason, "flaky: refused no");
  EXPECT_EQ(acks[2].status, EF_ACK_DELIVERED);
}

TEST(Harness, AFailingWriteThrowsWithTheSinksReason) {
  Harness<Flaky> h("fail_write: true");
  try {
    h.write({{.payload = "x"}});
    FAIL() << "write did not throw";
  } catch (const edgeflow::sdk::Error& e) {
    EXPECT_STREQ(e.what(), "flaky: write failed on purpose");
  }
}

TEST(HostMessage, APayloadNestedDeeperThanTheLimitIsRefusedBeforeParsing) {
  using edgeflow::host::Message;
  auto parse = [](const std::string& text) {
    Message m;
    m.set_payload(text.data(), text.size());
    std::string error;
    return m.root(&error) ? std::string("ok") : error;
  };
  const size_t limit = Message::kMaxDepth;
  EXPECT_EQ(parse(std::string(limit, '[') + std::string(limit, ']')), "ok");
  EXPECT_EQ(parse(std::string(limit + 1, '[') + std::string(limit + 1, ']')),
            "payload is not accepted as JSON: nested deeper than 1000 levels");
  // Many brackets, little nesting: inside a string, or side by side.
  EXPECT_EQ(parse("[\"" + std::string(5000, '[') + "\"]"), "ok");
  std::string flat = "[";
  for (int i = 0; i < 3000; ++i) flat += i ? ",{}" : "{}";
  EXPECT_EQ(parse(flat + "]"), "ok");
}
