// The daemon with the http plugin: webhook → http sink against a scripted test server. The
// answer to the webhook follows the sink's outcome end to end; a full flow answers 429; two flows
// share one listener by path; a refused event is dead-lettered and answered as such.
#include "daemon.hpp"
#include "http_test_server.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <future>

using edgeflow::test::curl;
using edgeflow::test::Daemon;
using edgeflow::test::free_loopback_port;
using edgeflow::test::Gate;
using edgeflow::test::http_request;
using edgeflow::test::HttpTestServer;
using edgeflow::test::Reply;
using edgeflow::test::Response;
using edgeflow::test::Seen;
using edgeflow::test::TempDir;
using namespace std::chrono_literals;

namespace {

std::string flow(const std::string& name, int port, const std::string& path, const std::string& sink_url,
                 const std::string& top = "", const std::string& source_extra = "") {
  return "flow: " + name + "\n" + top + "source:\n  type: http\n  listen: 127.0.0.1:" + std::to_string(port) +
         "\n  path: " + path + "\n" + source_extra + "sinks:\n  out:\n    type: http\n    url: \"" + sink_url +
         "\"\n    initial_backoff: 5ms\n    max_backoff: 20ms\n";
}

// The daemon listens once a request gets any HTTP answer (405 for a GET).
bool listening(int port, const std::string& path) {
  return edgeflow::test::poll_until([&] {
    try {
      return http_request(port, "GET", path, "").status == 405;
    } catch (const Poco::Exception&) {
      return false;
    }
  });
}

std::string log_of(const TempDir& dir) { return edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log"))); }

}  // namespace

TEST(HttpDaemon, AnswersOnlyAfterTheSinkDeliveredAnd429WhenFull) {
  TempDir dir;
  Gate gate;
  HttpTestServer server([&](const Seen&, size_t i) {
    if (i == 0) gate.wait();  // the first delivery is held until the test lets it go
    return Reply{200};
  });
  int port = free_loopback_port();
  std::string f = dir.write("hooks.yaml", flow("hooks", port, "/in", server.url("/out"), "max_in_flight: 1\n",
                                               "  busy_timeout: 100ms\n"));
  Daemon d({"run", "--state-dir", dir.file("state"), f}, dir.file("err.log"));
  ASSERT_TRUE(listening(port, "/in")) << log_of(dir);

  auto first = std::async(std::launch::async, [&] {
    return curl({"-H", "Content-Type: application/json", "--data-binary", R"({"order":1})",
                 "http://127.0.0.1:" + std::to_string(port) + "/in"});
  });
  auto at_sink = server.wait_seen(1);
  ASSERT_EQ(at_sink.size(), 1u) << log_of(dir);
  EXPECT_EQ(at_sink[0].body, R"({"order":1})");
  // The sink holds the event: the webhook is not answered, and the flow is full.
  Response full = http_request(port, "POST", "/in", R"({"order":2})");
  EXPECT_EQ(full.status, 429) << full.body;
  EXPECT_EQ(full.headers["Retry-After"], "1");
  EXPECT_EQ(first.wait_for(0s), std::future_status::timeout) << "answered before the sink delivered";
  gate.open();
  Response r = first.get();
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, R"({"status":"accepted"})");

  Response next = http_request(port, "POST", "/in", R"({"order":3})");
  EXPECT_EQ(next.status, 202) << log_of(dir);
  EXPECT_EQ(server.seen().size(), 2u);
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0) << log_of(dir);
}

TEST(HttpDaemon, TwoFlowsOnOnePortAndADeadLetteredEvent) {
  TempDir dir;
  HttpTestServer server([](const Seen& s, size_t) {
    return s.body.find("\"bad\"") != std::string::npos ? Reply{400, R"({"error":"bad is not allowed"})"} : Reply{200};
  });
  int port = free_loopback_port();
  std::string a = dir.write("a.yaml", flow("flow_a", port, "/a", server.url("/a-out")));
  std::string b = dir.write("b.yaml", flow("flow_b", port, "/b", server.url("/b-out")));
  Daemon d({"run", "--state-dir", dir.file("state"), a, b}, dir.file("err.log"));
  ASSERT_TRUE(listening(port, "/a")) << log_of(dir);
  ASSERT_TRUE(listening(port, "/b")) << log_of(dir);

  EXPECT_EQ(http_request(port, "POST", "/a", R"({"to":"a"})").status, 202);
  EXPECT_EQ(http_request(port, "POST", "/b", R"({"to":"b"})").status, 202);
  EXPECT_EQ(http_request(port, "POST", "/c", "{}").status, 404);
  Response dead = http_request(port, "POST", "/b", R"({"bad":true})");
  EXPECT_EQ(dead.status, 202);
  EXPECT_EQ(dead.body, R"({"status":"dead_lettered"})");

  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].uri, "/a-out");
  EXPECT_EQ(seen[0].body, R"({"to":"a"})");
  EXPECT_EQ(seen[1].uri, "/b-out");
  EXPECT_EQ(seen[1].body, R"({"to":"b"})");
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0) << log_of(dir);
  auto [rc, dlq] = edgeflow::test::run_program({EDGEFLOW_BIN, "dlq", "list", "--json", "--flow", "flow_b", "--state-dir", dir.file("state")});
  EXPECT_EQ(rc, 0);
  EXPECT_NE(dlq.find("\"count\":1,"), std::string::npos) << dlq;
  EXPECT_NE(dlq.find("HTTP 400 Bad Request"), std::string::npos) << dlq;
  EXPECT_NE(dlq.find("bad is not allowed"), std::string::npos) << dlq;
}

// A synchronous sink (drop) acknowledges inside emit(): the source must already know the request.
TEST(HttpDaemon, ASinkThatAcksInsideEmitIsAnswered) {
  TempDir dir;
  int port = free_loopback_port();
  std::string f = dir.write("d.yaml", "flow: d\nsource:\n  type: http\n  listen: 127.0.0.1:" + std::to_string(port) +
                                          "\n  path: /in\n  ack_timeout: 5s\nsinks:\n  out: { type: drop }\n");
  Daemon d({"run", "--state-dir", dir.file("state"), f}, dir.file("err.log"));
  ASSERT_TRUE(listening(port, "/in")) << log_of(dir);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(http_request(port, "POST", "/in", "{}").status, 202) << log_of(dir);
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0) << log_of(dir);
}
