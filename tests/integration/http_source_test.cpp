// The http source (webhook ingress) through the SDK harness, with real clients: Poco's
// HTTPClientSession and the curl CLI. The test plays the flow: it acknowledges what the source
// emitted when it wants, so "answered only after the ack" is checked directly.
#include "source.hpp"

#include "http_test_server.hpp"
#include "test_support.hpp"

#include <edgeflow/host/message.hpp>
#include <edgeflow/testing/harness.hpp>
#include <gtest/gtest.h>

#include <rapidjson/document.h>

#include <atomic>
#include <future>

using edgeflow::http::HttpSource;
using edgeflow::test::curl;
using edgeflow::test::free_loopback_port;
using edgeflow::test::http_request;
using edgeflow::test::Response;
using edgeflow::test::TempDir;
using edgeflow::testing::Harness;
using edgeflow::testing::RunningSource;
using namespace std::chrono_literals;

namespace {

using Headers = std::vector<std::pair<std::string, std::string>>;

std::string yaml(int port, const std::string& extra, const std::string& path = "/hook") {
  return "listen: 127.0.0.1:" + std::to_string(port) + "\npath: " + path + "\n" + extra;
}

std::future<Response> post_async(int port, const std::string& path, const std::string& body, Headers headers = {}) {
  return std::async(std::launch::async, [=] { return http_request(port, "POST", path, body, headers); });
}

// Acks the n-th emitted message (1-based) once it was emitted.
void ack_nth(Harness<HttpSource>& h, size_t n, ef_ack_status st = EF_ACK_DELIVERED) {
  ASSERT_TRUE(h.wait_emitted(n));
  h.ack(h.emitted()[n - 1].token, st);
}

// The body is {"error": "<text>"}; returns the text.
std::string error_of(const Response& r) {
  rapidjson::Document d;
  d.Parse(r.body.c_str());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("error") || !d["error"].IsString()) return "NOT A JSON ERROR: " + r.body;
  return d["error"].GetString();
}

std::string now_s(int64_t offset = 0) {
  return std::to_string(std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count() + offset);
}

std::string sign(const std::string& key, const std::string& ts, const std::string& body) {
  return "sha256=" + edgeflow::http::hmac_sha256_hex(key, ts + "." + body);
}

std::string header(const Response& r, const std::string& name) {
  auto it = r.headers.find(name);
  return it == r.headers.end() ? "" : it->second;
}

}  // namespace

TEST(HttpSource, BearerTokenWithPocoClientAndCurl) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "bearer_token: s3cret-token\nheaders: [X-Request-Id]\n"));
  auto& h = src.harness();

  Response none = http_request(port, "POST", "/hook", "{}");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(error_of(none).find("missing bearer token"), std::string::npos) << none.body;
  Response bad = http_request(port, "POST", "/hook", "{}", {{"Authorization", "Bearer wrong"}});
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(error_of(bad), "bad bearer token");
  Response bad_curl = curl({"-H", "Authorization: Bearer s3cret-tokenX", "-H", "Content-Type: application/json",
                            "--data-binary", "{}", "http://127.0.0.1:" + std::to_string(port) + "/hook"});
  EXPECT_EQ(bad_curl.status, 401);
  EXPECT_EQ(h.emitted_count(), 0u);

  auto good = post_async(port, "/hook", R"({"id":1})", {{"Authorization", "Bearer s3cret-token"}, {"X-Request-Id", "r-1"}});
  ack_nth(h, 1);
  Response r = good.get();
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, R"({"status":"accepted"})");
  auto by_curl = std::async(std::launch::async, [&] {
    return curl({"-H", "Authorization: Bearer s3cret-token", "-H", "Content-Type: application/json", "--data-binary",
                 R"({"id":2})", "http://127.0.0.1:" + std::to_string(port) + "/hook"});
  });
  ack_nth(h, 2);
  EXPECT_EQ(by_curl.get().status, 202);

  auto out = h.emitted();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].payload, R"({"id":1})");
  EXPECT_EQ(out[0].content_type, "application/json");
  EXPECT_EQ(out[0].headers, (edgeflow::testing::Pairs{{"X-Request-Id", "r-1"}}));
  auto meta = std::map<std::string, std::string>(out[0].meta.begin(), out[0].meta.end());
  EXPECT_EQ(meta["http.path"], "/hook");
  EXPECT_EQ(meta["http.method"], "POST");
  EXPECT_EQ(meta["http.remote_addr"].rfind("127.0.0.1:", 0), 0u) << meta["http.remote_addr"];
  EXPECT_EQ(out[1].payload, R"({"id":2})");
  for (auto& line : h.logs()) EXPECT_EQ(line.find("s3cret-token"), std::string::npos) << line;
}

TEST(HttpSource, HmacSignatureStaleTimestampAndReplay) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "hmac_secret: hmac-key\nsignature_tolerance: 5m\n"));
  auto& h = src.harness();
  const std::string body = R"({"event":"paid"})";

  std::string ts = now_s();
  Headers ok{{"X-Edgeflow-Timestamp", ts}, {"X-Edgeflow-Signature", sign("hmac-key", ts, body)}};
  auto first = post_async(port, "/hook", body, ok);
  ack_nth(h, 1);
  EXPECT_EQ(first.get().status, 202);

  Response replay = http_request(port, "POST", "/hook", body, ok);
  EXPECT_EQ(replay.status, 401);
  EXPECT_EQ(error_of(replay), "signature already used (replay)");

  Response bad = http_request(port, "POST", "/hook", body,
                              {{"X-Edgeflow-Timestamp", ts}, {"X-Edgeflow-Signature", sign("other-key", ts, body)}});
  EXPECT_EQ(bad.status, 401);
  EXPECT_EQ(error_of(bad), "bad signature");

  // The body signed is not the body sent.
  Response changed = http_request(port, "POST", "/hook", R"({"event":"refunded"})", ok);
  EXPECT_EQ(changed.status, 401);
  EXPECT_EQ(error_of(changed), "bad signature");

  std::string old = now_s(-301);
  Response stale = http_request(port, "POST", "/hook", body,
                                {{"X-Edgeflow-Timestamp", old}, {"X-Edgeflow-Signature", sign("hmac-key", old, body)}});
  EXPECT_EQ(stale.status, 401);
  EXPECT_NE(error_of(stale).find("stale timestamp"), std::string::npos) << stale.body;

  Response missing = http_request(port, "POST", "/hook", body);
  EXPECT_EQ(missing.status, 401);

  // curl, with a fresh signature and one it replays.
  std::string ts2 = now_s(1);
  std::vector<std::string> args{"-H", "X-Edgeflow-Timestamp: " + ts2, "-H", "X-Edgeflow-Signature: " + sign("hmac-key", ts2, body),
                                "-H", "Content-Type: application/json", "--data-binary", body,
                                "http://127.0.0.1:" + std::to_string(port) + "/hook"};
  auto by_curl = std::async(std::launch::async, [&] { return curl(args); });
  ack_nth(h, 2);
  EXPECT_EQ(by_curl.get().status, 202);
  EXPECT_EQ(curl(args).status, 401);
  EXPECT_EQ(h.emitted_count(), 2u);
}

TEST(HttpSource, TheReplayWindowSurvivesARestart) {
  int port = free_loopback_port();
  TempDir state;
  const std::string body = R"({"event":"paid"})", ts = now_s();
  Headers signed_once{{"X-Edgeflow-Timestamp", ts}, {"X-Edgeflow-Signature", sign("hmac-key", ts, body)}};
  const std::string config = yaml(port, "hmac_secret: hmac-key\n");
  {
    RunningSource<HttpSource> src(config, {.state_dir = state.path().string(), .name = "hooks"});
    auto first = post_async(port, "/hook", body, signed_once);
    ack_nth(src.harness(), 1);
    EXPECT_EQ(first.get().status, 202);
  }
  // A new process would start the same way: the signature is still refused within its window.
  RunningSource<HttpSource> again(config, {.state_dir = state.path().string(), .name = "hooks"});
  Response replay = http_request(port, "POST", "/hook", body, signed_once);
  EXPECT_EQ(replay.status, 401);
  EXPECT_EQ(error_of(replay), "signature already used (replay)");
  EXPECT_EQ(again.harness().emitted_count(), 0u);
  // It is the state directory that remembers: the window is in a file there.
  bool kept = false;
  for (auto& e : std::filesystem::directory_iterator(state.path())) kept |= e.path().extension() == ".replay";
  EXPECT_TRUE(kept) << state.path();
}

TEST(HttpSource, AWebhookBeyondLoopbackNeedsAuthenticationOrAnExplicitAuthNone) {
  int port = free_loopback_port();
  try {
    Harness<HttpSource> open("listen: 0.0.0.0:" + std::to_string(port) + "\npath: /hook\n");
    ADD_FAILURE() << "an unauthenticated webhook on 0.0.0.0 was accepted";
  } catch (const edgeflow::testing::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("is reachable beyond this machine and the webhook has no authentication: set "
                                         "bearer_token or hmac_secret, or write `auth: none`"),
              std::string::npos)
        << e.what();
  }
  EXPECT_NO_THROW(Harness<HttpSource>("listen: 0.0.0.0:" + std::to_string(port) + "\npath: /hook\nauth: none\n"));
  EXPECT_NO_THROW(Harness<HttpSource>("listen: 0.0.0.0:" + std::to_string(port) + "\npath: /hook\nbearer_token: t0ken-t0ken\n"));
  EXPECT_THROW(Harness<HttpSource>("listen: 0.0.0.0:" + std::to_string(port) + "\npath: /hook\nauth: none\nbearer_token: t\n"),
               edgeflow::testing::ConfigError);
}

TEST(HttpSource, BodySizeLimitAndRateLimit) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "format: raw\nmax_body_bytes: 16\nrate_limit: 0.05\nrate_burst: 3\n"));
  auto& h = src.harness();

  Response big = http_request(port, "POST", "/hook", std::string(17, 'x'));
  EXPECT_EQ(big.status, 413);
  EXPECT_NE(error_of(big).find("larger than 16 bytes"), std::string::npos);
  // Chunked (no Content-Length): the limit holds while reading.
  Response big_chunked = curl({"-H", "Transfer-Encoding: chunked", "--data-binary", std::string(40, 'y'),
                               "http://127.0.0.1:" + std::to_string(port) + "/hook"});
  EXPECT_EQ(big_chunked.status, 413);

  auto fits = post_async(port, "/hook", std::string(16, 'z'));
  ack_nth(h, 1);
  EXPECT_EQ(fits.get().status, 202);
  EXPECT_EQ(h.emitted()[0].payload, std::string(16, 'z'));

  // Three requests used the burst of 3 (0.05/s refills one in 20 s): the next is refused.
  Response limited = http_request(port, "POST", "/hook", "a");
  EXPECT_EQ(limited.status, 429);
  int retry_after = std::stoi(header(limited, "Retry-After"));
  EXPECT_GE(retry_after, 1);
  EXPECT_LE(retry_after, 20);
  Response limited_curl = curl({"-i", "--data-binary", "b", "http://127.0.0.1:" + std::to_string(port) + "/hook"});
  EXPECT_EQ(limited_curl.status, 429);
  EXPECT_NE(limited_curl.body.find("Retry-After: "), std::string::npos) << limited_curl.body;
  EXPECT_EQ(h.emitted_count(), 1u);
}

TEST(HttpSource, AnswersOnlyAfterTheEndToEndAck) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "bearer_token: t\n"));
  auto& h = src.harness();
  Headers auth{{"Authorization", "Bearer t"}};

  auto held = post_async(port, "/hook", R"({"n":1})", auth);
  ASSERT_TRUE(h.wait_emitted(1));
  // Meanwhile the server answers a refused request, and a later event is emitted, acked and
  // answered through the flow thread; the first one, not acked, still has no answer.
  EXPECT_EQ(http_request(port, "POST", "/hook", "{}").status, 401);
  auto later = post_async(port, "/hook", R"({"n":"later"})", auth);
  ack_nth(h, 2);
  EXPECT_EQ(later.get().status, 202);
  EXPECT_EQ(held.wait_for(0s), std::future_status::timeout) << "answered before the ack";
  h.ack(h.emitted()[0].token);
  Response r = held.get();
  EXPECT_EQ(r.status, 202);
  EXPECT_EQ(r.body, R"({"status":"accepted"})");

  // Dead-lettered: the event is durably held, a resend would be refused again: 202.
  auto rejected = post_async(port, "/hook", R"({"n":2})", auth);
  ack_nth(h, 3, EF_ACK_REJECTED);
  Response rr = rejected.get();
  EXPECT_EQ(rr.status, 202);
  EXPECT_EQ(rr.body, R"({"status":"dead_lettered"})");

  // Unresolved (the run ended with it open): send again.
  auto retried = post_async(port, "/hook", R"({"n":3})", auth);
  ack_nth(h, 4, EF_ACK_RETRY);
  Response rt = retried.get();
  EXPECT_EQ(rt.status, 503);
  EXPECT_EQ(header(rt, "Retry-After"), "1");
}

TEST(HttpSource, SyncModeAnswersTheVerdict) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "mode: sync\n"));
  auto& h = src.harness();
  auto ok = post_async(port, "/hook", R"({"n":1})");
  ack_nth(h, 1);
  Response r = ok.get();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"status":"delivered"})");
  auto bad = post_async(port, "/hook", R"({"n":2})");
  ack_nth(h, 2, EF_ACK_REJECTED);
  Response rb = bad.get();
  EXPECT_EQ(rb.status, 422);
  EXPECT_NE(rb.body.find("\"status\":\"rejected\""), std::string::npos) << rb.body;
}

TEST(HttpSource, BadInputGetsAJsonError) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "methods: [POST, PUT]\n"));
  auto& h = src.harness();

  Response bad_json = http_request(port, "POST", "/hook", R"({"a":)");
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(bad_json.headers["Content-Type"], "application/json");
  EXPECT_NE(error_of(bad_json).find("the body is not JSON"), std::string::npos) << bad_json.body;
  Response trailing = curl({"-H", "Content-Type: application/json", "--data-binary", "{} {}",
                            "http://127.0.0.1:" + std::to_string(port) + "/hook"});
  EXPECT_EQ(trailing.status, 400);
  EXPECT_NE(error_of(trailing).find("the body is not JSON"), std::string::npos) << trailing.body;

  Response get = http_request(port, "GET", "/hook", "");
  EXPECT_EQ(get.status, 405);
  EXPECT_EQ(get.headers["Allow"], "POST, PUT");
  EXPECT_NE(error_of(get).find("GET is not accepted"), std::string::npos);

  Response unknown = http_request(port, "POST", "/nope", "{}");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(error_of(unknown), "no flow listens at /nope");
  EXPECT_EQ(h.emitted_count(), 0u);

  auto put = std::async(std::launch::async, [&] { return http_request(port, "PUT", "/hook?x=1", "[1,2]"); });
  ack_nth(h, 1);
  EXPECT_EQ(put.get().status, 202);
}

namespace {
// 0: pass emit through; 1: the flow is full (EF_BUSY); 2: the flow is stopping.
std::atomic<int> g_emit_mode{0};
ef_host_api g_faulty_host;
}  // namespace

TEST(HttpSource, FullFlowAnswers429AndStoppingAnswers503) {
  g_faulty_host = *edgeflow::testing::detail::host_api();
  g_faulty_host.emit = [](ef_ctx* c, ef_message* const* m, size_t n, int32_t t) -> ef_status {
    if (g_emit_mode == 1) return EF_BUSY;
    if (g_emit_mode == 2) return EF_STOPPING;
    return edgeflow::testing::detail::host_api()->emit(c, m, n, t);
  };
  int port = free_loopback_port();
  g_emit_mode = 0;
  RunningSource<HttpSource> src(yaml(port, ""), {}, &g_faulty_host);
  auto& h = src.harness();

  g_emit_mode = 1;
  Response full = http_request(port, "POST", "/hook", "{}");
  EXPECT_EQ(full.status, 429);
  EXPECT_EQ(header(full, "Retry-After"), "1");
  EXPECT_NE(error_of(full).find("the flow is full"), std::string::npos);
  EXPECT_EQ(h.emitted_count(), 0u);

  g_emit_mode = 0;
  auto ok = post_async(port, "/hook", "{}");
  ack_nth(h, 1);
  EXPECT_EQ(ok.get().status, 202);

  g_emit_mode = 2;
  Response stopping = http_request(port, "POST", "/hook", "{}");
  EXPECT_EQ(stopping.status, 503);
  EXPECT_EQ(header(stopping, "Retry-After"), "1");
  // run() returned: later requests are refused at once, still with a JSON error.
  ASSERT_TRUE(h.changes().wait_until([&] { return http_request(port, "POST", "/hook", "{}").status == 503; }, 10s));
  g_emit_mode = 0;
}

TEST(HttpSource, TwoFlowsShareOneListenerByPath) {
  int port = free_loopback_port();
  auto a = std::make_unique<RunningSource<HttpSource>>(yaml(port, "", "/a"), edgeflow::testing::Options{.name = "flow-a"});
  RunningSource<HttpSource> b(yaml(port, "", "/b"), edgeflow::testing::Options{.name = "flow-b"});
  try {
    Harness<HttpSource> again(yaml(port, "", "/a"), {.name = "flow-c"});
    again.start();
    ADD_FAILURE() << "the same path twice was accepted";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("path: /a on 127.0.0.1:" + std::to_string(port) + " is already served by flow-a/http"),
              std::string::npos)
        << e.what();
  }

  auto to_a = post_async(port, "/a", R"({"to":"a"})");
  auto to_b = post_async(port, "/b", R"({"to":"b"})");
  ack_nth(a->harness(), 1);
  ack_nth(b.harness(), 1);
  EXPECT_EQ(to_a.get().status, 202);
  EXPECT_EQ(to_b.get().status, 202);
  EXPECT_EQ(a->harness().emitted()[0].payload, R"({"to":"a"})");
  EXPECT_EQ(b.harness().emitted()[0].payload, R"({"to":"b"})");
  EXPECT_EQ(a->harness().emitted_count(), 1u);
  EXPECT_EQ(b.harness().emitted_count(), 1u);

  // The first flow stops: its path answers "send again later" (never 404, on which webhook senders
  // drop the event), the other one is still served, and a path never served is still 404.
  a.reset();
  Response stopped = http_request(port, "POST", "/a", "{}");
  EXPECT_EQ(stopped.status, 503);
  EXPECT_EQ(header(stopped, "Retry-After"), "5");
  EXPECT_NE(error_of(stopped).find("the flow serving /a is stopped"), std::string::npos) << stopped.body;
  EXPECT_EQ(http_request(port, "POST", "/never", "{}").status, 404);
  auto again_b = post_async(port, "/b", "{}");
  ack_nth(b.harness(), 2);
  EXPECT_EQ(again_b.get().status, 202);
  // The last one stops the server.
  b.stop();
  EXPECT_THROW(http_request(port, "POST", "/b", "{}"), Poco::Net::ConnectionRefusedException);
}

TEST(HttpSource, AckTimeoutAnswers504AndTheEventGoesOn) {
  int port = free_loopback_port();
  RunningSource<HttpSource> src(yaml(port, "ack_timeout: 300ms\n"));
  auto& h = src.harness();
  Response r = http_request(port, "POST", "/hook", R"({"slow":true})");
  EXPECT_EQ(r.status, 504);
  EXPECT_NE(error_of(r).find("may be delivered"), std::string::npos);
  ASSERT_EQ(h.emitted_count(), 1u);  // it was emitted and stays in flight
  h.ack(h.emitted()[0].token);       // its late ack is taken without an answer to give
  auto next = post_async(port, "/hook", "{}");
  ack_nth(h, 2);
  EXPECT_EQ(next.get().status, 202);
}

TEST(HttpSource, ServesHttpsWithCertificateAndKey) {
  TempDir dir;
  edgeflow::test::make_pki(dir.path().string(), "a");
  int port = free_loopback_port();
  std::string d = dir.path().string();
  RunningSource<HttpSource> src(yaml(port, "tls_cert: " + d + "/a-server.pem\ntls_key: " + d + "/a-server.key\n"));
  auto& h = src.harness();
  std::string url = "https://localhost:" + std::to_string(port) + "/hook";
  auto ok = std::async(std::launch::async, [&] {
    return curl({"--cacert", d + "/a-ca.pem", "-H", "Content-Type: application/json", "--data-binary", "{\"tls\":1}", url});
  });
  ack_nth(h, 1);
  EXPECT_EQ(ok.get().status, 202);
  // Plain HTTP to the TLS port, or a client that does not trust the CA, gets nothing through.
  EXPECT_EQ(curl({"--data-binary", "{}", url}).status, 0);
  EXPECT_EQ(h.emitted_count(), 1u);
}
