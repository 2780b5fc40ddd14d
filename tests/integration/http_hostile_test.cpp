// The webhook listener against hostile clients, over raw sockets: malformed and ambiguous framing
// (request smuggling), bodies cut short, slow and idle clients, connection caps, and what a
// path answers while its flow is stopped. Every refusal is a JSON error with the right reason
// phrase, and no byte after a framing error is ever read as a request.
#include "source.hpp"

#include "raw_http.hpp"
#include "test_support.hpp"

#include <edgeflow/host/message.hpp>
#include <edgeflow/testing/harness.hpp>
#include <gtest/gtest.h>

#include <rapidjson/document.h>

#include <future>
#include <memory>

using edgeflow::http::HttpSource;
using edgeflow::test::free_loopback_port;
using edgeflow::test::RawConnection;
using edgeflow::testing::RunningSource;
using namespace std::chrono_literals;

namespace {

std::string yaml(int port, const std::string& extra = "", const std::string& path = "/hook") {
  return "listen: 127.0.0.1:" + std::to_string(port) + "\npath: " + path + "\n" + extra;
}

std::string post(const std::string& body, const std::string& extra_headers = "") {
  return "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n" + extra_headers + "\r\n" + body;
}

bool json_error(const std::string& body) {
  rapidjson::Document d;
  d.Parse(body.c_str());
  return !d.HasParseError() && d.IsObject() && d.HasMember("error") && d["error"].IsString();
}

// A valid request on a fresh connection, acknowledged: the source emitted exactly `want` events
// so far, the last one this request's body.
void expect_only_valid_events(RunningSource<HttpSource>& src, int port, size_t want) {
  auto& h = src.harness();
  auto answer = std::async(std::launch::async, [&] {
    RawConnection c(port);
    c.send(post(R"({"valid":)" + std::to_string(want) + "}"));
    return c.read_response();
  });
  ASSERT_TRUE(h.wait_emitted(want));
  h.ack(h.emitted()[want - 1].token);
  EXPECT_EQ(answer.get().status, 202);
  auto out = h.emitted();
  ASSERT_EQ(out.size(), want);
  EXPECT_EQ(out[want - 1].payload, R"({"valid":)" + std::to_string(want) + "}");
}

struct Case {
  const char* name;
  std::string bytes;
  int status;
  const char* error;
};

}  // namespace

TEST(HttpHostile, AmbiguousFramingIsRefusedAndNothingBehindItIsRead) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port));
  // Behind each bad request sits a valid one: were it read, the source would emit it.
  const std::string smuggled = post(R"({"smuggled":true})");
  const Case cases[] = {
      {"malformed chunk size", "POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
       400, "malformed chunk size"},
      {"chunk data not followed by CRLF", "POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}XX0\r\n\r\n",
       400, "a chunk's data is not followed by CRLF"},
      {"Content-Length and Transfer-Encoding",
       "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 400,
       "both Content-Length and Transfer-Encoding"},
      {"repeated Content-Length", "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400,
       "repeated Content-Length"},
      {"Content-Length list", "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 2, 2\r\n\r\n{}", 400,
       "malformed Content-Length"},
      {"signed Content-Length", "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\n\r\n{}", 400,
       "malformed Content-Length"},
      {"obsolete line folding", "POST /hook HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\n{}", 400,
       "obsolete line folding"},
      {"whitespace before the colon", "POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length : 2\r\n\r\n{}", 400,
       "malformed header name"},
      {"bare LF", "POST /hook HTTP/1.1\nHost: x\nContent-Length: 2\n\n{}", 400, "must be CRLF"},
      {"unknown transfer coding", "POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501,
       "only the chunked transfer coding"},
      {"HTTP/2.0 in HTTP/1 framing", "POST /hook HTTP/2.0\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", 505,
       "only HTTP/1.1 and HTTP/1.0"},
      {"no Host", "POST /hook HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}", 400, "need a Host header"},
  };
  for (const Case& c : cases) {
    RawConnection conn(port);
    conn.send(c.bytes + smuggled);
    auto r = conn.read_response();
    EXPECT_EQ(r.status, c.status) << c.name << "\n" << r.raw;
    EXPECT_EQ(r.status_line, "HTTP/1.1 " + std::to_string(c.status) + " " + edgeflow::net::reason_phrase(c.status))
        << c.name;
    EXPECT_EQ(r.headers["connection"], "close") << c.name;
    EXPECT_TRUE(json_error(r.body)) << c.name << ": " << r.body;
    EXPECT_NE(r.body.find(c.error), std::string::npos) << c.name << ": " << r.body;
    // Exactly one answer, then the server closes: the smuggled request is never read.
    std::string after = conn.read_until_closed();
    EXPECT_TRUE(conn.closed()) << c.name;
    EXPECT_EQ(after, "") << c.name;
  }
  EXPECT_EQ(src.harness().emitted_count(), 0u);
  expect_only_valid_events(src, port, 1);
}

TEST(HttpHostile, ABodyShorterThanItsContentLengthIsNeverAccepted) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port));
  {
    // Half-closed: the client can still read the answer.
    RawConnection conn(port);
    conn.send("POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"");
    conn.shutdown_write();
    auto r = conn.read_response();
    EXPECT_EQ(r.status_line, "HTTP/1.1 400 Bad Request");
    EXPECT_NE(r.body.find("the body ended after 4 of the 10 bytes of its Content-Length"), std::string::npos) << r.body;
  }
  {
    // Closed: nobody to answer, and nothing emitted either.
    RawConnection conn(port);
    conn.send("POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{}");
  }
  {
    // A chunked body without its last chunk.
    RawConnection conn(port);
    conn.send("POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n");
    conn.shutdown_write();
    auto r = conn.read_response();
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("the chunked body ended before its last chunk"), std::string::npos) << r.body;
  }
  expect_only_valid_events(src, port, 1);
}

TEST(HttpHostile, ChunkedBodiesPipeliningAndExpectContinueWork) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port));
  auto& h = src.harness();
  RawConnection conn(port);
  // A chunked request, and behind it a second request in the same write.
  conn.send("POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\n{\"n\"\r\n3\r\n:1}\r\n0\r\nX-T: y\r\n\r\n" +
            post(R"({"n":2})"));
  ASSERT_TRUE(h.wait_emitted(1));
  h.ack(h.emitted()[0].token);
  EXPECT_EQ(conn.read_response().status, 202);
  ASSERT_TRUE(h.wait_emitted(2));
  h.ack(h.emitted()[1].token);
  EXPECT_EQ(conn.read_response().status, 202);
  EXPECT_EQ(h.emitted()[0].payload, R"({"n":1})");
  EXPECT_EQ(h.emitted()[1].payload, R"({"n":2})");

  // Expect: 100-continue: the interim answer comes before the body is sent.
  RawConnection slow(port);
  slow.send("POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n");
  auto interim = slow.read_response();
  EXPECT_EQ(interim.status_line, "HTTP/1.1 100 Continue");
  slow.send(R"({"n":3})");
  ASSERT_TRUE(h.wait_emitted(3));
  h.ack(h.emitted()[2].token);
  EXPECT_EQ(slow.read_response().status, 202);
}

TEST(HttpHostile, ASlowHeadGets408AtItsDeadlineEvenWhileBytesKeepComing) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "head_timeout: 300ms\nbody_timeout: 300ms\n"));
  RawConnection conn(port);
  auto start = std::chrono::steady_clock::now();
  std::string head = "POST /hook HTTP/1.1\r\nHost: x\r\nX-Padding: ";
  conn.send(head);
  // A byte whenever 50 ms pass without an answer: a slowloris never idle long enough for an idle
  // timeout, until the server answers.
  for (int i = 0; i < 100 && !conn.answered_within(50ms);) conn.send("a"), ++i;
  auto r = conn.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 408 Request Timeout");
  EXPECT_NE(r.body.find("the request head took too long"), std::string::npos) << r.body;
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);

  // A body that stalls: 408 after body_timeout of silence.
  RawConnection stall(port);
  stall.send("POST /hook HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n{\"a\"");
  auto s = stall.read_response();
  EXPECT_EQ(s.status, 408);
  EXPECT_NE(s.body.find("the body stalled"), std::string::npos) << s.body;
  EXPECT_EQ(src.harness().emitted_count(), 0u);
}

TEST(HttpHostile, HundredsOfSlowConnectionsDoNotDelayANormalRequest) {
  edgeflow::test::allow_descriptors(4096);
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "max_connections_per_client: 50\n"));
  auto& h = src.harness();
  // 600 connections from 12 addresses (50 each, at the per-client cap), each stuck in its head.
  std::vector<std::unique_ptr<RawConnection>> slow;
  for (int i = 0; i < 600; ++i) {
    slow.push_back(std::make_unique<RawConnection>(port, "127.0.0." + std::to_string(2 + i / 50)));
    ASSERT_TRUE(slow.back()->send("POST /hook HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  }
  // A normal request from another address is served at once, every slow one still open.
  auto start = std::chrono::steady_clock::now();
  auto answer = std::async(std::launch::async, [&] {
    RawConnection c(port);
    c.send(post(R"({"normal":true})"));
    return c.read_response();
  });
  ASSERT_TRUE(h.wait_emitted(1, 5s));
  h.ack(h.emitted()[0].token);
  auto r = answer.get();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(r.status, 202);
  // Poco's thread per connection took 13 s here; the figure against the 100 ms goal is bench/http's.
  EXPECT_LT(took, 2s) << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms";
  // The 51st connection from one address is refused; the slow ones are all still there.
  RawConnection over(port, "127.0.0.2");
  auto refused = over.read_response();
  EXPECT_EQ(refused.status_line, "HTTP/1.1 503 Service Unavailable");
  EXPECT_NE(refused.body.find("too many open connections from your address"), std::string::npos) << refused.body;
  for (auto& c : slow) EXPECT_TRUE(c->send("a"));
}

TEST(HttpHostile, TheListenerCapsOpenConnections) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "max_connections: 3\n"));
  RawConnection a(port, "127.0.0.2"), b(port, "127.0.0.3"), c(port, "127.0.0.4");
  // The three are accepted (a request on one is answered), the fourth is refused.
  ASSERT_TRUE(a.send("GET /hook HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(a.read_response().status, 405);
  RawConnection d(port, "127.0.0.5");
  auto r = d.read_response();
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("too many open connections; try again later"), std::string::npos) << r.body;
  EXPECT_EQ(r.headers["retry-after"], "1");
}

TEST(HttpHostile, AnIdleKeepAliveConnectionIsClosed) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "idle_timeout: 200ms\n"));
  RawConnection conn(port);
  conn.send("GET /hook HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(conn.read_response().status, 405);
  EXPECT_EQ(conn.read_until_closed(5s), "");
  EXPECT_TRUE(conn.closed());
}
