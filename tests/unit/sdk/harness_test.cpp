// The SDK test harness, exercised on the testkit components: config checking as the daemon
// does it, sources and their acks, transformer outcomes, sink acks from other threads.
#include "testkit.cpp"

#include "test_support.hpp"

#include <edgeflow/host/message.hpp>
#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
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

// deliver() drives a sink as a flow does: 10 in flight, a sink that answers every 50 writes
// still finishes, because the harness flushes it when it waits for room.
TEST(Harness, DeliverFlushesASinkThatHoldsAcksAcrossWrites) {
  Harness<Flaky> h("ack_every: 50");
  std::vector<edgeflow::testing::Input> in;
  for (int i = 0; i < 200; ++i) in.push_back({.payload = "m" + std::to_string(i)});
  auto acks = h.deliver(in, 1, 10);
  ASSERT_EQ(acks.size(), 200u);
  for (auto& a : acks) EXPECT_EQ(a.status, EF_ACK_DELIVERED);
  EXPECT_EQ(acks[199].payload, "m199");

  // Written by hand, the same sink holds its acks until a flush: drain() is that flush.
  Harness<Flaky> held("ack_every: 50");
  held.write({{.payload = "a"}, {.payload = "b"}});
  EXPECT_TRUE(held.acks().empty());
  EXPECT_EQ(held.drain().size(), 2u);
}

TEST(Harness, ExclusiveBoundsRefuseTheBoundItself) {
  EXPECT_EQ(config_error([] { Harness<Stamp> h("field: a\nfactor: 0"); }),
            "<harness>:2:9: factor: must be greater than 0, got 0");
  EXPECT_EQ(config_error([] { Harness<Stamp> h("field: a\nfactor: 10"); }),
            "<harness>:2:9: factor: must be less than 10, got 10");
  Harness<Stamp> h("field: a\nfactor: 0.001");
  EXPECT_EQ(h.transform({{.payload = "{}"}}).kept.at(0).payload, R"({"a":0.001})");
}

TEST(Harness, APluginsOwnConfigErrorIsFormattedLikeTheDaemons) {
  EXPECT_EQ(config_error([] { Harness<Stamp> h("factor: 2\nfield: a..b", {.file = "flow.yaml"}); }),
            "flow.yaml:2:8: field: 'a..b' is not a document path; write it like a.b");
}

TEST(Harness, TryPutReplacesNothingButNull) {
  Harness<Stamp> h("field: a.b[1].c\nfactor: 2");
  auto r = h.transform({{.payload = R"({"a":{"b":[0,null]}})"},
                        {.payload = R"({"a":null})"},
                        {.payload = R"({})"},
                        {.payload = R"({"a":1})"},
                        {.payload = R"({"a":{"b":{}}})"},
                        {.payload = R"({"a":{"b":[0,"x"]}})"}});
  ASSERT_EQ(r.kept.size(), 3u);
  EXPECT_EQ(r.kept[0].payload, R"({"a":{"b":[0,{"c":2.0}]}})");
  EXPECT_EQ(r.kept[1].payload, R"({"a":{"b":[null,{"c":2.0}]}})");
  EXPECT_EQ(r.kept[2].payload, R"({"a":{"b":[null,{"c":2.0}]}})");
  ASSERT_EQ(r.rejected.size(), 3u);
  EXPECT_EQ(r.rejected[0].reason, "a.b[1].c: a value on the way is not an object or array");
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

// I-JSON readers may round numbers to doubles; edgeflow passes on what arrived. A number a
// double cannot carry is kept as its text through every copy, and written back as it came.
TEST(HostMessage, NumbersADoubleCannotCarryAreKeptAsTheirText) {
  using edgeflow::host::EV;
  using edgeflow::host::JValue;
  using edgeflow::host::Message;
  ef_host_api h{};
  h.struct_size = sizeof h;
  edgeflow::host::fill_message_api(h);
  const std::string in =
      R"({"big":12345678901234567890,"long":0.1000000000000000055511151231257827,"int":9007199254740993,)"
      R"("max":9007199254740991.0,"short":1.50,"neg":-98765432109876543210.5e-3,"tiny":1e-400,"plain":[1,2.5,-0.0]})";
  Message m;
  m.set_payload(in.data(), in.size());
  std::string error;
  JValue* root = m.root(&error);
  ASSERT_TRUE(root) << error;
  auto* msg = reinterpret_cast<ef_message*>(&m);
  auto text = [&](const char* name) {
    size_t n = 0;
    const char* t = h.value_number_text(h.value_find(EV(root), name, std::strlen(name)), &n);
    return t ? std::string(t, n) : std::string("(a plain number)");
  };
  ef_value* big = h.value_find(EV(root), "big", 3);
  EXPECT_EQ(h.value_type(big), EF_TYPE_DOUBLE);
  EXPECT_EQ(h.value_double(big), 12345678901234567890.0);
  EXPECT_EQ(h.value_int(big), INT64_MAX);  // saturates instead of overflowing
  EXPECT_EQ(text("big"), "12345678901234567890");
  EXPECT_EQ(text("long"), "0.1000000000000000055511151231257827");
  EXPECT_EQ(text("neg"), "-98765432109876543210.5e-3");
  EXPECT_EQ(text("tiny"), "1e-400");
  EXPECT_EQ(h.value_double(h.value_find(EV(root), "tiny", 4)), 0.0);
  // Numbers a double or an int64 hold exactly stay plain numbers.
  EXPECT_EQ(h.value_type(h.value_find(EV(root), "int", 3)), EF_TYPE_INT);
  EXPECT_EQ(h.value_int(h.value_find(EV(root), "int", 3)), 9007199254740993);
  EXPECT_EQ(text("max"), "(a plain number)");
  EXPECT_EQ(text("short"), "(a plain number)");

  // Once a step changes the document the host writes it: the kept numbers come back as they arrived.
  h.value_set_int(msg, h.object_put(msg, EV(root), "added", 5), 5);
  EXPECT_EQ(m.payload_bytes(),
            R"({"big":12345678901234567890,"long":0.1000000000000000055511151231257827,"int":9007199254740993,)"
            R"("max":9007199254740991.0,"short":1.5,"neg":-98765432109876543210.5e-3,"tiny":1e-400,)"
            R"("plain":[1,2.5,-0.0],"added":5})");

  // A copy into another message's document owns its text: it outlives the source's document.
  Message other;
  ef_value* copy_root = EV(other.reset_doc());
  auto* other_msg = reinterpret_cast<ef_message*>(&other);
  h.value_copy(other_msg, h.object_put(other_msg, copy_root, "copy", 4), EV(root));
  m.reset_doc();
  EXPECT_EQ(other.payload_bytes().substr(0, 40), R"({"copy":{"big":12345678901234567890,"lon)");

  // Plugins set exact numbers from text; what is not a JSON number is refused, and a NaN or an
  // infinity, which JSON cannot write, becomes null.
  ef_value* v = h.object_put(other_msg, copy_root, "set", 3);
  EXPECT_EQ(h.value_set_number_text(other_msg, v, "1e999999", 8), 1);
  EXPECT_EQ(h.value_double(v), HUGE_VAL);
  for (const char* bad : {"01", "1.", ".5", "1e", "+1", "NaN", "0x10", "1 "})
    EXPECT_EQ(h.value_set_number_text(other_msg, v, bad, std::strlen(bad)), 0) << bad;
  ef_value* nan = h.object_put(other_msg, copy_root, "nan", 3);
  h.value_set_double(other_msg, nan, std::nan(""));
  ef_value* inf = h.object_put(other_msg, copy_root, "inf", 3);
  h.value_set_double(other_msg, inf, -HUGE_VAL);
  const std::string& out = other.payload_bytes();
  EXPECT_NE(out.find(R"("set":1e999999,"nan":null,"inf":null})"), std::string::npos) << out;
}

TEST(HostMessage, ValuesSayTheirTypeAsExpressionsDo) {
  Harness<Flaky> h("");  // installs the host table the SDK's views call
  edgeflow::host::Message m;
  const std::string in = R"({"i":1,"f":1.5,"big":12345678901234567890,"s":"x","b":true,"n":null,"a":[],"o":{}})";
  m.set_payload(in.data(), in.size());
  edgeflow::sdk::Value root(edgeflow::host::EV(m.root(nullptr)));
  std::string types;
  for (const char* k : {"i", "f", "big", "s", "b", "n", "a", "o"})
    types += std::string(root[k].type_name()) + (root[k].is_number() ? "#" : "") + " ";
  EXPECT_EQ(types, "int# float# float# string bool null array object ");
}
