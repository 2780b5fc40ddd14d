// The daemon with the mqtt plugin against a real mosquitto: killed with SIGKILL mid-stream at QoS
// 1, the broker restarted mid-stream, two runtimes splitting a shared subscription, and MQTT to
// MQTT through the sink. The flows write to the daemon's stdout (read here line by line) or to
// the broker, read back with mosquitto_sub, a client edgeflow shares no code with.
#include "daemon.hpp"
#include "mosquitto_server.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

using edgeflow::test::Daemon;
using edgeflow::test::MosquittoServer;
using edgeflow::test::TempDir;

namespace {

long id_of(const std::string& line) {
  size_t at = line.find("\"id\":");
  return at == std::string::npos ? -1 : std::stol(line.substr(at + 5));
}

std::vector<std::string> numbered(long from, long to) {
  std::vector<std::string> v;
  for (long i = from; i < to; ++i) v.push_back("{\"id\":" + std::to_string(i) + ",\"pad\":\"" + std::string(40, 'p') + "\"}");
  return v;
}

// The ids the daemons printed, shared by the Collectors of one test.
struct Seen {
  std::mutex mutex;
  std::condition_variable cv;
  std::set<long> ids;
  bool wait(size_t n, std::chrono::seconds timeout = std::chrono::seconds(60)) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return ids.size() >= n; });
  }
  size_t size() {
    std::lock_guard lock(mutex);
    return ids.size();
  }
};

// Reads a daemon's stdout on its own thread (a flow blocked on a full pipe would stall).
class Collector {
 public:
  Collector(Daemon& d, Seen& seen) : thread_([this, &d, &seen] {
    std::string line;
    while (d.line(line)) {
      std::lock_guard lock(seen.mutex);
      seen.ids.insert(id_of(line));
      ++lines_;
      seen.cv.notify_all();
    }
  }) {}
  ~Collector() { join(); }
  void join() {
    if (thread_.joinable()) thread_.join();
  }
  size_t lines() const { return lines_; }  // after join()

 private:
  size_t lines_ = 0;
  std::thread thread_;
};

class MqttDaemon : public ::testing::Test {
 protected:
  MosquittoServer broker;
  TempDir dir;

  std::string flow(const std::string& name, const std::string& client_id, const std::string& filter,
                   const std::string& sinks = "sinks:\n  out: { type: stdout }\n", const std::string& top = "") {
    return dir.write(name + ".yaml", "flow: " + name + "\n" + top + "source:\n  type: mqtt\n  uri: " + broker.uri() +
                                         "\n  client_id: " + client_id + "\n  topics: [\"" + filter + "\"]\n  qos: 1\n" +
                                         "  reconnect_backoff: 20ms\n  reconnect_max_backoff: 500ms\n" + sinks);
  }
  std::vector<std::string> args(const std::string& flow_file) { return {"run", "--state-dir", dir.file("state"), flow_file}; }
  std::string log(const std::string& file) { return edgeflow::test::join(edgeflow::test::read_lines(dir.file(file))); }
  // A persistent QoS 1 session of `id` on `filter` that exists before anything is published
  // (mosquitto_sub -E: subscribe, exit); read later with -c -i id.
  void session(const std::string& id, const std::string& filter) {
    auto a = broker.client_args("mosquitto_sub");
    for (auto& s : std::vector<std::string>{"-t", filter, "-q", "1", "-c", "-i", id, "-E"}) a.push_back(s);
    auto r = edgeflow::test::run_command(a);
    ASSERT_EQ(r.status, 0) << r.err;
  }
  // Waits until the broker logged the subscription of `client_id` (log_type subscribe).
  void subscribed(const std::string& client_id, size_t mark) {
    ASSERT_TRUE(broker.wait_log(client_id + " 1 ", mark)) << broker.log_text();
  }
};

TEST_F(MqttDaemon, SigkillMidStreamAtQos1LosesNothing) {
  const long n = 20000;
  std::string f = flow("pipe", "edge-kill", "in/#", "sinks:\n  out: { type: stdout }\n", "max_in_flight: 500\n");
  std::set<long> seen;
  size_t first_run = 0;
  {
    size_t mark = broker.log_mark();
    Daemon d(args(f), dir.file("err1.log"));
    subscribed("edge-kill", mark);
    std::thread publisher([&] { broker.publish("in/a", numbered(0, n), 1); });
    std::string line;
    while (first_run < 3000 && d.line(line)) {
      seen.insert(id_of(line));
      ++first_run;
    }
    d.signal(SIGKILL);
    while (d.line(line)) {  // what was in the pipe already
      seen.insert(id_of(line));
      ++first_run;
    }
    EXPECT_EQ(d.wait(), 128 + SIGKILL);
    publisher.join();
  }
  ASSERT_GE(first_run, 3000u) << log("err1.log");
  ASSERT_LT(seen.size(), size_t(n)) << "the kill came after the whole stream";
  Daemon d(args(f), dir.file("err2.log"));
  std::string line;
  while (seen.size() < size_t(n) && d.line(line)) seen.insert(id_of(line));
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0) << log("err2.log");
  EXPECT_EQ(seen.size(), size_t(n));
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), n - 1);
  EXPECT_NE(log("err2.log").find("resuming its session"), std::string::npos) << log("err2.log");
}

TEST_F(MqttDaemon, TheBrokerRestartedMidStreamIsReconnectedAndNothingIsLostAtQos1) {
  const long n = 30000;
  // The flow's session exists (mosquitto_sub -E: subscribe and exit) and holds the whole stream
  // before the daemon starts, so the broker restarts while the daemon is in the middle of it.
  auto r = edgeflow::test::run_command([&] {
    auto a = broker.client_args("mosquitto_sub");
    for (auto* s : {"-t", "in/#", "-q", "1", "-c", "-i", "edge-restart", "-V", "mqttv5", "-x", "600", "-E"}) a.push_back(s);
    return a;
  }());
  ASSERT_EQ(r.status, 0) << r.err;
  broker.publish("in/a", numbered(0, n), 1);
  std::string f = flow("pipe", "edge-restart", "in/#", "sinks:\n  out: { type: stdout }\n", "max_in_flight: 500\n");
  Daemon d(args(f), dir.file("err.log"));
  Seen seen;
  Collector out(d, seen);
  ASSERT_TRUE(seen.wait(1000)) << log("err.log");
  ASSERT_LT(seen.size(), size_t(n)) << "the restart came after the whole stream";
  size_t mark = broker.log_mark();
  broker.restart();  // SIGTERM: the broker saves the session and the unacknowledged messages
  ASSERT_TRUE(broker.wait_log("New client connected", mark)) << log("err.log");
  broker.publish("in/b", numbered(n, n + 100), 1);
  EXPECT_TRUE(seen.wait(size_t(n + 100))) << seen.size() << "\n" << log("err.log");
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0) << log("err.log");
  out.join();
  EXPECT_EQ(seen.size(), size_t(n + 100));
  std::string text = log("err.log");
  EXPECT_NE(text.find("lost"), std::string::npos) << text;
  EXPECT_NE(text.find("resuming its session"), std::string::npos) << text;
  EXPECT_EQ(text.find("flow failed"), std::string::npos) << text;  // reconnected in place, not restarted
}

TEST_F(MqttDaemon, TwoRuntimesSplitASharedSubscription) {
  const long n = 2000;
  size_t mark = broker.log_mark();
  Daemon a(args(flow("a", "edge-a", "$share/edge/in/#")), dir.file("a.log"));
  Daemon b(args(flow("b", "edge-b", "$share/edge/in/#")), dir.file("b.log"));
  subscribed("edge-a", mark);
  subscribed("edge-b", mark);
  Seen seen;
  Collector ca(a, seen), cb(b, seen);
  broker.publish("in/x", numbered(0, n), 1);
  EXPECT_TRUE(seen.wait(size_t(n))) << seen.size();
  a.signal(SIGTERM);
  b.signal(SIGTERM);
  EXPECT_EQ(a.wait(), 0);
  EXPECT_EQ(b.wait(), 0);
  ca.join();
  cb.join();
  std::map<char, size_t> per{{'a', ca.lines()}, {'b', cb.lines()}};
  EXPECT_EQ(seen.size(), size_t(n));
  EXPECT_GT(per['a'], 0u);
  EXPECT_GT(per['b'], 0u);
  EXPECT_EQ(per['a'] + per['b'], size_t(n));  // split, not copied
}

TEST_F(MqttDaemon, MqttToMqttWithAMaliciousTopicValueInTheDeadLetter) {
  session("collector", "out/#");
  std::string sinks = "sinks:\n  out:\n    type: mqtt\n    uri: " + broker.uri() +
                      "\n    topic: out/${device}\n    qos: 1\n"
                      "dead_letter: { type: file, path: \"" + dir.file("dlq.jsonl") + "\" }\n";
  size_t mark = broker.log_mark();
  Daemon d(args(flow("bridge", "edge-bridge", "in/#", sinks)), dir.file("err.log"));
  subscribed("edge-bridge", mark);
  std::vector<std::string> in;
  for (int i = 0; i < 50; ++i) in.push_back("{\"id\":" + std::to_string(i) + ",\"device\":\"d" + std::to_string(i % 5) + "\"}");
  in.push_back(R"({"id":50,"device":"x/#"})");
  in.push_back(R"({"id":51,"device":"ok"})");
  broker.publish("in/a", in, 1);
  auto out = broker.subscribe("out/#", 51, 1, {"-c", "-i", "collector", "-v"});
  ASSERT_EQ(out.size(), 51u) << log("err.log");
  std::set<long> ids;
  for (auto& l : out) {
    ids.insert(id_of(l));
    EXPECT_EQ(l.rfind("out/", 0), 0u) << l;
  }
  EXPECT_EQ(ids.size(), 51u);
  EXPECT_FALSE(ids.count(50));
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0) << log("err.log");
  auto dlq = edgeflow::test::read_lines(dir.file("dlq.jsonl"));
  ASSERT_EQ(dlq.size(), 1u) << log("err.log");
  EXPECT_NE(dlq[0].find("contains the wildcard '#'"), std::string::npos) << dlq[0];
  EXPECT_NE(dlq[0].find("\"id\":50"), std::string::npos) << dlq[0];
  EXPECT_NE(log("err.log").find("dead_lettered=1"), std::string::npos) << log("err.log");
}

// The sink's last will: the broker publishes it when the runtime dies (SIGKILL: no DISCONNECT),
// never when it stops cleanly. Each run has its own will payload, so the one message the watcher
// finds says which run it came from.
TEST_F(MqttDaemon, TheLastWillIsPublishedWhenTheRuntimeDiesNotWhenItStops) {
  session("watcher", "status/#");
  auto sinks = [&](const std::string& will) {
    return "sinks:\n  out:\n    type: mqtt\n    uri: " + broker.uri() +
           "\n    client_id: edge-will-sink\n    topic: out/x\n    qos: 1\n"
           "    will_topic: status/edge\n    will_payload: " + will + "\n    will_qos: 1\n";
  };
  for (const char* will : {"offline-after-stop", "offline-after-kill"}) {
    bool kill = std::string(will) == "offline-after-kill";
    size_t mark = broker.log_mark();
    Daemon d(args(flow(kill ? "will2" : "will1", "edge-will-src", "in/#", sinks(will))), dir.file("err.log"));
    ASSERT_TRUE(broker.wait_log(" as edge-will-sink ", mark)) << broker.log_text();
    subscribed("edge-will-src", mark);
    d.signal(kill ? SIGKILL : SIGTERM);
    EXPECT_EQ(d.wait(), kill ? 128 + SIGKILL : 0) << log("err.log");
  }
  auto got = broker.subscribe("status/#", 1, 1, {"-c", "-i", "watcher", "-v"});
  ASSERT_EQ(got.size(), 1u) << broker.log_text();
  EXPECT_EQ(got[0], "status/edge offline-after-kill");
}

}  // namespace
