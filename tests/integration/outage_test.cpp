// Store-and-forward through the daemon: webhooks (answered 202 once accepted) and MQTT QoS 1 into
// an HTTP destination that is down, each flow with a disk buffer in front of its sink. The daemon
// is SIGKILLed ten times while the destination is down and it buffers, and ten more times once
// the destination is back and it drains, while events keep coming. Every event a client was told
// was accepted, and every event the broker took, reaches the destination.
#include "daemon.hpp"
#include "http_test_server.hpp"
#include "mosquitto_server.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

using edgeflow::test::Daemon;
using edgeflow::test::free_loopback_port;
using edgeflow::test::http_request;
using edgeflow::test::HttpTestServer;
using edgeflow::test::MosquittoServer;
using edgeflow::test::TempDir;
using namespace std::chrono_literals;

namespace {

constexpr long kMqttBase = 1000000;  // MQTT ids start here, webhook ids at 0

long id_of(const std::string& body) {
  size_t at = body.find("\"id\":");
  return at == std::string::npos ? -1 : std::stol(body.substr(at + 5));
}

class Outage : public ::testing::Test {
 protected:
  TempDir dir;
  MosquittoServer broker;
  int hook_port = free_loopback_port();
  int dest_port = free_loopback_port();
  int admin_port = free_loopback_port();
  std::vector<std::string> flows;
  int runs = 0;

  // Webhook ingest, on its own thread: it posts only while the test says the daemon is up, and
  // keeps the ids answered 202.
  std::mutex mutex;
  std::condition_variable cv;
  bool up = false;
  bool done = false;
  std::set<long> accepted;
  long next_hook = 0;
  std::thread ingest;

  void SetUp() override {
    // The flow's session exists before anything is published: the broker keeps what comes while
    // the daemon is dead.
    auto a = broker.client_args("mosquitto_sub");
    for (auto* s : {"-t", "in/#", "-q", "1", "-c", "-i", "edge-outage", "-E"}) a.push_back(s);
    auto r = edgeflow::test::run_command(a);
    ASSERT_EQ(r.status, 0) << r.err;
    std::string sink = "sinks:\n  out:\n    type: http\n    url: http://127.0.0.1:" + std::to_string(dest_port) +
                       "/PATH\n    max_attempts: 1\n    timeout: 2s\n    buffer: { type: disk, max_size: 64MiB }\n"
                       "retry: { initial_backoff: 10ms, max_backoff: 200ms }\n";
    auto with_path = [&](std::string s, const std::string& path) { return s.replace(s.find("PATH"), 4, path); };
    flows.push_back(dir.write("hooks.yaml", "flow: hooks\nsource:\n  type: http\n  listen: 127.0.0.1:" +
                                                std::to_string(hook_port) + "\n  path: /in\n" + with_path(sink, "hooks")));
    flows.push_back(dir.write("mqtt.yaml", "flow: mqtt\nsource:\n  type: mqtt\n  uri: " + broker.uri() +
                                               "\n  client_id: edge-outage\n  topics: [\"in/#\"]\n  qos: 1\n"
                                               "  reconnect_backoff: 20ms\n" + with_path(sink, "mqtt")));
    ingest = std::thread([this] {
      for (;;) {
        long id;
        {
          std::unique_lock lock(mutex);
          cv.wait(lock, [&] { return up || done; });
          if (done) return;
          id = next_hook++;
        }
        bool ok = false;
        try {
          ok = http_request(hook_port, "POST", "/in", "{\"id\":" + std::to_string(id) + ",\"via\":\"webhook\"}").status == 202;
        } catch (const Poco::Exception&) {
          // Killed while it asked: not accepted, so not owed.
        }
        std::lock_guard lock(mutex);
        if (ok) accepted.insert(id);
        cv.notify_all();
      }
    });
  }
  void TearDown() override {
    {
      std::lock_guard lock(mutex);
      done = true;
    }
    cv.notify_all();
    if (ingest.joinable()) ingest.join();
  }

  std::string log() {
    std::string all;
    for (int i = 0; i < runs; ++i)
      all += edgeflow::test::join(edgeflow::test::read_lines(dir.file("err" + std::to_string(i) + ".log")));
    return all.size() > 20000 ? all.substr(all.size() - 20000) : all;
  }
  std::unique_ptr<Daemon> start() {
    std::vector<std::string> args{"run", "--state-dir", dir.file("state"), "--admin",
                                  "127.0.0.1:" + std::to_string(admin_port)};
    args.insert(args.end(), flows.begin(), flows.end());
    auto d = std::make_unique<Daemon>(args, dir.file("err" + std::to_string(runs++) + ".log"));
    bool listening = edgeflow::test::poll_until([&] {
      try {
        return http_request(hook_port, "GET", "/in", "").status == 405;
      } catch (const Poco::Exception&) {
        return false;
      }
    });
    EXPECT_TRUE(listening) << log();
    {
      std::lock_guard lock(mutex);
      up = true;
    }
    cv.notify_all();
    return d;
  }
  void kill(std::unique_ptr<Daemon>& d) {
    {
      std::lock_guard lock(mutex);
      up = false;
    }
    d->signal(SIGKILL);
    EXPECT_EQ(d->wait(), 128 + SIGKILL);
    d.reset();
  }
  size_t accepted_count() {
    std::lock_guard lock(mutex);
    return accepted.size();
  }
  bool wait_accepted(size_t n) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 60s, [&] { return accepted.size() >= n; });
  }
  // A number from the daemon's Prometheus metrics.
  double metric(const std::string& name, const std::string& flow) {
    try {
      auto r = http_request(admin_port, "GET", "/metrics", "");
      std::string key = name + "{flow=\"" + flow + "\"";
      size_t at = r.body.find(key);
      if (at == std::string::npos) return -1;
      return std::stod(r.body.substr(r.body.find("} ", at) + 2));
    } catch (const Poco::Exception&) {
      return -1;
    }
  }
  long mqtt_published = kMqttBase;
  void publish(long n) {
    std::vector<std::string> lines;
    for (long i = 0; i < n; ++i)
      lines.push_back("{\"id\":" + std::to_string(mqtt_published++) + ",\"via\":\"mqtt\"}");
    broker.publish("in/a", lines, 1);
  }
};

}  // namespace

TEST_F(Outage, NothingAcceptedIsLostWhileTheDestinationIsDownAndTheDaemonIsKilled) {
  // Down: nothing listens on dest_port. Each run takes webhooks and MQTT into the buffers.
  const auto began = std::chrono::steady_clock::now();
  for (int round = 0; round < 10; ++round) {
    auto d = start();
    publish(100);
    size_t before = accepted_count();
    ASSERT_TRUE(wait_accepted(before + 20)) << log();
    double buffered = 0;
    ASSERT_TRUE(edgeflow::test::poll_until([&] {
      buffered = metric("edgeflow_buffer_appended_total", "mqtt");
      return buffered >= 20;
    }, 60s)) << buffered << "\n" << log();
    kill(d);
  }
  // EDGEFLOW_OUTAGE_SECONDS keeps the destination down that long in all (CI: the ten lifetimes
  // above, seconds), the last daemon taking events all the while.
  if (const char* env = std::getenv("EDGEFLOW_OUTAGE_SECONDS")) {
    auto until = began + std::chrono::seconds(std::atol(env));
    auto d = start();
    std::unique_lock lock(mutex);
    cv.wait_until(lock, until, [] { return false; });  // the outage itself, not a synchronisation
    lock.unlock();
    kill(d);
  }
  const size_t accepted_while_down = accepted_count();
  ASSERT_GE(accepted_while_down, 200u);

  const auto down_for = std::chrono::steady_clock::now() - began;
  // Back, where it was: each run drains some of the backlog while new events come in.
  HttpTestServer dest({}, "", "", dest_port);
  for (int round = 0; round < 10; ++round) {
    auto d = start();
    publish(50);
    size_t before = dest.seen().size();
    ASSERT_GE(dest.wait_seen(before + 40, 60s).size(), before + 40) << log();
    kill(d);
  }

  // The last run, not killed: everything owed arrives.
  auto d = start();
  std::set<long> owed;
  {
    std::lock_guard lock(mutex);
    up = false;  // no more webhooks: the set owed is final
    owed = accepted;
  }
  for (long id = kMqttBase; id < mqtt_published; ++id) owed.insert(id);
  std::set<long> missing = owed;
  size_t checked = 0;
  auto deadline = std::chrono::steady_clock::now() + 120s;
  while (!missing.empty() && std::chrono::steady_clock::now() < deadline) {
    // At least as many requests as are owed, or a second's worth: then what they brought.
    auto seen = dest.wait_seen(std::max(owed.size(), checked + 100), 1s);
    for (; checked < seen.size(); ++checked) missing.erase(id_of(seen[checked].body));
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << owed.size() << " never arrived, the first "
                               << *missing.begin() << "\n" << log();
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0) << log();

  // Duplicates are allowed, and reported: a kill after the destination took a record and before
  // its removal reached the buffer (up to the window at the sink), and MQTT's own redelivery of
  // what the broker had not been acknowledged for.
  auto seen = dest.seen();
  std::set<long> distinct;
  size_t again[2] = {0, 0};  // webhook, mqtt
  for (auto& s : seen)
    if (!distinct.insert(id_of(s.body)).second) ++again[id_of(s.body) >= kMqttBase];
  std::cout << "down for " << std::chrono::duration_cast<std::chrono::seconds>(down_for).count() << " s; owed "
            << owed.size() << " (accepted while down " << accepted_while_down << "), requests "
            << seen.size() << ", delivered again: " << again[0] << " webhook, " << again[1] << " mqtt\n";
}
