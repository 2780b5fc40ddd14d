// The http sink (webhook/REST egress) through the SDK harness, against a scripted Poco HTTP(S)
// server the test starts on a free port (tests/support/http_test_server.hpp).
#include "sink.hpp"

#include "http_test_server.hpp"
#include "test_support.hpp"

#include <edgeflow/testing/harness.hpp>
#include <gtest/gtest.h>

#include <Poco/DateTimeFormatter.h>

#include <set>

using edgeflow::http::HttpSink;
using edgeflow::test::Gate;
using edgeflow::test::HttpTestServer;
using edgeflow::test::Reply;
using edgeflow::test::Seen;
using edgeflow::test::TempDir;
using edgeflow::testing::Harness;
using namespace std::chrono_literals;

namespace {

std::string url_yaml(const HttpTestServer& s, const std::string& path, const std::string& extra, bool tls = false) {
  return "url: \"" + s.url(path, tls) + "\"\n" + extra;
}

// Quick retries, so the tests show the retry logic without waiting for production backoffs.
const std::string kFast = "initial_backoff: 5ms\nmax_backoff: 20ms\n";

}  // namespace

TEST(HttpSink, RetriesA503ThenDelivers) {
  HttpTestServer server([](const Seen&, size_t i) { return i == 0 ? Reply{503, R"({"error":"busy"})"} : Reply{200}; });
  Harness<HttpSink> h(url_yaml(server, "/hook", kFast));
  h.write({{.payload = R"({"id":1})", .content_type = "application/json"}});
  auto acks = h.wait_acks(1);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].status, EF_ACK_DELIVERED) << acks[0].reason;
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u);
  for (auto& s : seen) {
    EXPECT_EQ(s.method, "POST");
    EXPECT_EQ(s.uri, "/hook");
    EXPECT_EQ(s.body, R"({"id":1})");
    EXPECT_EQ(s.content_type, "application/json");
  }
  EXPECT_EQ(h.metric("failed_attempts"), 1.0);
}

TEST(HttpSink, A400GoesToTheDeadLetterWithStatusAndBodyExcerpt) {
  std::string long_body = "{\"error\":\"field total is negative\",\"detail\":\"" + std::string(3000, 'd') + "\"}";
  HttpTestServer server([&](const Seen&, size_t) { return Reply{400, long_body}; });
  Harness<HttpSink> h(url_yaml(server, "/orders?api_key=query-secret", kFast + "bearer_token: tok-secret\n"));
  h.write({{.payload = R"({"total":-1})"}});
  auto acks = h.wait_acks(1);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].status, EF_ACK_REJECTED);
  const std::string& why = acks[0].reason;
  EXPECT_NE(why.find("POST http://127.0.0.1:" + std::to_string(server.port()) + "/orders: HTTP 400 Bad Request: "
                     "{\"error\":\"field total is negative\""),
            std::string::npos)
      << why;
  EXPECT_LT(why.size(), 700u) << "the excerpt is bounded";
  EXPECT_EQ(why.find("query-secret"), std::string::npos);
  EXPECT_EQ(why.find("tok-secret"), std::string::npos);
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 1u) << "a 400 is not retried";
  EXPECT_EQ(seen[0].headers["Authorization"], "Bearer tok-secret");
  EXPECT_EQ(seen[0].uri, "/orders?api_key=query-secret");
}

TEST(HttpSink, ATimeoutIsRetried) {
  Gate gate;
  HttpTestServer server([&](const Seen&, size_t i) {
    if (i == 0) gate.wait();  // the first attempt gets no answer until the test is done
    return Reply{200};
  });
  Harness<HttpSink> h(url_yaml(server, "/slow", kFast + "timeout: 300ms\n"));
  h.write({{.payload = R"({"id":7})"}});
  auto acks = h.wait_acks(1);
  gate.open();
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].status, EF_ACK_DELIVERED) << acks[0].reason;
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[1].body, R"({"id":7})");
}

TEST(HttpSink, RetryAfterIsHonoured) {
  HttpTestServer server([](const Seen&, size_t i) {
    return i == 0 ? Reply{503, "{}", {{"Retry-After", "1"}}} : Reply{200};
  });
  Harness<HttpSink> h(url_yaml(server, "/hook", kFast));
  h.write({{.payload = "{}"}});
  auto acks = h.wait_acks(1);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].status, EF_ACK_DELIVERED);
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 2u);
  // Without Retry-After the second attempt would come within max_backoff (20 ms).
  EXPECT_GE(seen[1].at - seen[0].at, 1000ms);
}

TEST(HttpSink, RetryAfterAsAnHttpDate) {
  auto when = edgeflow::http::parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT");
  ASSERT_TRUE(when);
  EXPECT_EQ(when->count(), 0) << "a date in the past means now";
  Poco::Timestamp later;
  later += Poco::Timespan(90, 0);
  auto soon = edgeflow::http::parse_retry_after(Poco::DateTimeFormatter::format(later, Poco::DateTimeFormat::HTTP_FORMAT));
  ASSERT_TRUE(soon);
  EXPECT_GE(soon->count(), 88000);
  EXPECT_LE(soon->count(), 90000);
  EXPECT_EQ(edgeflow::http::parse_retry_after("120")->count(), 120000);
  EXPECT_FALSE(edgeflow::http::parse_retry_after("soon"));
}

TEST(HttpSink, GivesBackARetryAfterMaxAttempts) {
  HttpTestServer server([](const Seen&, size_t) { return Reply{502, "bad gateway"}; });
  Harness<HttpSink> h(url_yaml(server, "/hook", kFast + "max_attempts: 3\n"));
  h.write({{.payload = "{}"}});
  auto acks = h.wait_acks(1);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].status, EF_ACK_RETRY);
  EXPECT_NE(acks[0].reason.find("HTTP 502"), std::string::npos) << acks[0].reason;
  EXPECT_NE(acks[0].reason.find("(3 attempts)"), std::string::npos) << acks[0].reason;
  EXPECT_EQ(server.seen().size(), 3u);
}

TEST(HttpSink, ARefusedConnectionIsARetry) {
  int port = edgeflow::test::free_loopback_port();
  Harness<HttpSink> h("url: http://127.0.0.1:" + std::to_string(port) + "/x\n" + kFast + "max_attempts: 2\n");
  h.write({{.payload = "{}"}});
  auto acks = h.wait_acks(1);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_EQ(acks[0].status, EF_ACK_RETRY);
  EXPECT_NE(acks[0].reason.find("Connection refused"), std::string::npos) << acks[0].reason;
}

TEST(HttpSink, TlsWithATestCaAndAWrongCaRefused) {
  TempDir dir;
  std::string d = dir.path().string();
  edgeflow::test::make_pki(d, "good");
  edgeflow::test::make_pki(d, "other");
  HttpTestServer server({}, d + "/good-server.pem", d + "/good-server.key");
  {
    Harness<HttpSink> h("url: \"https://localhost:" + std::to_string(server.port()) + "/secure\"\nca_file: " + d +
                        "/good-ca.pem\n" + kFast);
    h.write({{.payload = R"({"tls":true})"}});
    auto acks = h.wait_acks(1);
    ASSERT_EQ(acks.size(), 1u);
    EXPECT_EQ(acks[0].status, EF_ACK_DELIVERED) << acks[0].reason;
  }
  ASSERT_EQ(server.seen().size(), 1u);
  EXPECT_EQ(server.seen()[0].body, R"({"tls":true})");
  {
    Harness<HttpSink> h("url: \"https://localhost:" + std::to_string(server.port()) + "/secure\"\nca_file: " + d +
                        "/other-ca.pem\nmax_attempts: 2\n" + kFast);
    h.write({{.payload = R"({"tls":"wrong CA"})"}});
    auto acks = h.wait_acks(1);
    ASSERT_EQ(acks.size(), 1u);
    EXPECT_EQ(acks[0].status, EF_ACK_RETRY);
    EXPECT_NE(acks[0].reason.find("TLS"), std::string::npos) << acks[0].reason;
    EXPECT_NE(acks[0].reason.find("certificate verify failed"), std::string::npos) << acks[0].reason;
  }
  EXPECT_EQ(server.seen().size(), 1u) << "nothing was sent to a server the sink could not verify";
  {
    Harness<HttpSink> h("url: \"https://localhost:" + std::to_string(server.port()) + "/secure\"\ninsecure_skip_verify: true\n");
    h.write({{.payload = "{}"}});
    EXPECT_EQ(h.wait_acks(1).at(0).status, EF_ACK_DELIVERED);
    bool warned = false;
    for (auto& l : h.logs()) warned |= l.find("NOT verified") != std::string::npos;
    EXPECT_TRUE(warned);
  }
}

TEST(HttpSink, TemplatesBatchingAndKeepAlive) {
  HttpTestServer server;
  {
    Harness<HttpSink> h("url: \"" + server.url("/orders/${id}") + "\"\nmethod: \"${verb}\"\nheaders: { X-Kind: kind, X-Fixed: \"'v1'\" }\n"
                        "workers: 1\n");
    std::vector<edgeflow::testing::Input> in;
    for (int i = 0; i < 10; ++i)
      in.push_back({.payload = "{\"id\":" + std::to_string(i) + ",\"verb\":\"PUT\",\"kind\":\"k" + std::to_string(i) + "\"}"});
    in.push_back({.payload = R"({"id":99,"verb":"PUT"})"});  // X-Kind is null: refused
    h.write(in);
    auto acks = h.wait_acks(11);
    ASSERT_EQ(acks.size(), 11u);
    size_t delivered = 0;
    for (auto& a : acks) {
      if (a.status == EF_ACK_DELIVERED) ++delivered;
      else EXPECT_NE(a.reason.find("headers.X-Kind"), std::string::npos) << a.reason;
    }
    EXPECT_EQ(delivered, 10u);
  }
  auto seen = server.seen();
  ASSERT_EQ(seen.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(seen[size_t(i)].method, "PUT");
    EXPECT_EQ(seen[size_t(i)].uri, "/orders/" + std::to_string(i));
    EXPECT_EQ(seen[size_t(i)].headers["X-Kind"], "k" + std::to_string(i));
    EXPECT_EQ(seen[size_t(i)].headers["X-Fixed"], "v1");
    EXPECT_EQ(seen[size_t(i)].peer, seen[0].peer) << "one kept-alive connection";
  }

  HttpTestServer batches;
  Harness<HttpSink> hb("url: \"" + batches.url("/bulk") + "\"\nbatch_size: 3\n");
  hb.write({{.payload = R"({"a":1})"}, {.payload = R"({"a":2})"}, {.payload = "not json"}, {.payload = R"({"a":3})"},
            {.payload = R"({"a":4})"}});
  auto acks = hb.wait_acks(5);
  ASSERT_EQ(acks.size(), 5u);
  auto got = batches.wait_seen(2);
  ASSERT_EQ(got.size(), 2u);
  std::set<std::string> bodies{got[0].body, got[1].body};
  EXPECT_EQ(bodies, (std::set<std::string>{R"([{"a":1},{"a":2},{"a":3}])", R"([{"a":4}])"}));
  EXPECT_EQ(got[0].content_type, "application/json");
  size_t rejected = 0;
  for (auto& a : acks) rejected += a.status == EF_ACK_REJECTED;
  EXPECT_EQ(rejected, 1u);
}

TEST(HttpSink, ConfigErrorsNameTheKey) {
  EXPECT_THROW(Harness<HttpSink>("url: ftp://example.com/x\n"), edgeflow::testing::ConfigError);
  try {
    Harness<HttpSink>("url: \"http://x/${\"\n");
    ADD_FAILURE();
  } catch (const edgeflow::testing::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("url:"), std::string::npos) << e.what();
  }
  try {
    Harness<HttpSink>("url: http://x/\nclient_cert: /c.pem\n");
    ADD_FAILURE();
  } catch (const edgeflow::testing::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("client_cert and client_key go together"), std::string::npos) << e.what();
  }
}
