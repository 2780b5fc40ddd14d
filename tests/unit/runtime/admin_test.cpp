// The admin API against real clients: Poco's HTTP client, `curl`, `promtool` (Prometheus' own
// parser of the text format) and the `edgeflow tap` command, with a runtime running real flows
// (testkit plugins) in this process.
#include "admin.hpp"
#include "test_support.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>

#include <gtest/gtest.h>

#include <rapidjson/document.h>

#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <sys/wait.h>

using namespace edgeflow;
using namespace std::chrono_literals;
using edgeflow::test::TempDir;

namespace {

constexpr const char* kToken = "0123456789abcdef-admin";

struct Reply {
  int status = 0;
  std::string body;
  std::string content_type;
};

Reply request(uint16_t port, const std::string& path, const std::string& token = "", const std::string& method = "GET") {
  Poco::Net::HTTPClientSession s("127.0.0.1", port);
  Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  if (!token.empty()) req.set("Authorization", "Bearer " + token);
  s.sendRequest(req);
  Poco::Net::HTTPResponse res;
  std::istream& in = s.receiveResponse(res);
  std::string body((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return {int(res.getStatus()), body, res.getContentType()};
}

// A POST with a body of `type` (none when empty).
Reply post(uint16_t port, const std::string& path, const std::string& body = "", const std::string& type = "application/json") {
  Poco::Net::HTTPClientSession c("127.0.0.1", port);
  Poco::Net::HTTPRequest req("POST", path, Poco::Net::HTTPMessage::HTTP_1_1);
  if (!type.empty()) req.setContentType(type);
  req.setContentLength(std::streamsize(body.size()));
  c.sendRequest(req) << body;
  Poco::Net::HTTPResponse res;
  std::istream& in = c.receiveResponse(res);
  return Reply{int(res.getStatus()), std::string(std::istreambuf_iterator<char>(in), {}), res.getContentType()};
}

// A shell command's stdout and exit status.
std::pair<std::string, int> sh(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return {"", -1};
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
  int status = pclose(p);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

// "name{labels}" -> value, from the text format.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(at, end - at);
    at = end + 1;
    if (line.empty() || line[0] == '#') continue;
    size_t space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

rapidjson::Document parse(const std::string& json) {
  rapidjson::Document d;
  d.Parse(json.c_str());
  EXPECT_FALSE(d.HasParseError()) << json;
  return d;
}

class Admin : public ::testing::Test {
 protected:
  TempDir dir;
  Runtime rt{RuntimeOptions{{EDGEFLOW_PLUGIN_DIR, EDGEFLOW_TEST_PLUGIN_DIR}, dir.file("state"), {}}};
  std::unique_ptr<AdminServer> admin;

  void load(std::string yaml) {
    for (size_t at; (at = yaml.find("$DIR")) != std::string::npos;) yaml.replace(at, 4, dir.path().string());
    host::Diagnostics diag;
    ASSERT_TRUE(rt.load({dir.write("flow.yaml", yaml)}, diag)) << edgeflow::test::join(diag.errors);
  }
  void serve(const std::string& token = "") {
    AdminOptions o;
    o.port = 0;
    o.token = token;
    admin = std::make_unique<AdminServer>(rt, o);
  }
  uint16_t port() const { return admin->port(); }
  std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port()) + path; }
  Flow& flow() { return *rt.flow("f"); }
  bool running() {
    return flow().wait_for([&] { return flow().state() == FlowState::running && flow().stats().emitted.load() > 0; }, 30s);
  }
  void TearDown() override {
    if (admin) admin->stop();
    rt.request_stop();
    rt.wait();
  }
};

}  // namespace

TEST_F(Admin, MetricsPassPromtoolAndCountWhatFlowed) {
  load(R"(flow: f
source: { type: sequence, count: 300, batch_size: 10, tags: [a, b, c], metric: seq }
steps:
  - { type: script, reject: '"tag":"b"' }
sinks:
  out: { type: flaky, retry_first: 2 }
dead_letter: { type: flaky }
retry: { initial_backoff: 1ms, max_backoff: 2ms }
)");
  serve();
  rt.start();
  rt.wait();

  auto [text, curl_rc] = sh("curl -sS --fail " + url("/metrics"));
  ASSERT_EQ(curl_rc, 0) << text;
  std::string file = dir.write("metrics.txt", text);
  auto [lint, rc] = sh("promtool check metrics < " + file + " 2>&1");
  EXPECT_EQ(rc, 0) << lint;
  EXPECT_EQ(lint, "") << "promtool's lint findings";

  auto m = samples(text);
  std::string f = "flow=\"f\"";
  auto stage = [&](const std::string& name, const std::string& st, const std::string& type) {
    return m.at("edgeflow_stage_" + name + "_total{" + f + ",stage=\"" + st + "\",type=\"" + type + "\"}");
  };
  EXPECT_EQ(m.at("edgeflow_flow_emitted_total{" + f + "}"), 300);
  EXPECT_EQ(m.at("edgeflow_flow_delivered_total{" + f + "}"), 200);
  EXPECT_EQ(m.at("edgeflow_flow_dead_lettered_total{" + f + "}"), 100);
  EXPECT_EQ(m.at("edgeflow_flow_state{" + f + ",state=\"finished\"}"), 1);
  EXPECT_EQ(m.at("edgeflow_flow_state{" + f + ",state=\"running\"}"), 0);
  EXPECT_EQ(stage("messages_out", "source", "sequence"), 300);
  EXPECT_EQ(stage("messages_in", "steps[0]", "script"), 300);
  EXPECT_EQ(stage("messages_out", "steps[0]", "script"), 200);
  EXPECT_EQ(stage("messages_rejected", "steps[0]", "script"), 100);
  EXPECT_EQ(stage("messages_out", "sinks.out", "flaky"), 200);
  EXPECT_EQ(stage("messages_retried", "sinks.out", "flaky"), double(flow().stats().retries.load()));
  EXPECT_GE(stage("messages_retried", "sinks.out", "flaky"), 2);  // the first two writes
  EXPECT_EQ(stage("messages_in", "sinks.out", "flaky"), 200 + stage("messages_retried", "sinks.out", "flaky"));
  EXPECT_EQ(stage("messages_out", "dead_letter", "flaky"), 100);
  EXPECT_GT(stage("bytes_out", "source", "sequence"), 0);
  // Every message resolved once: delivered or dead-lettered.
  EXPECT_EQ(m.at("edgeflow_flow_delivery_latency_seconds_count{" + f + "}"), 300);
  EXPECT_EQ(m.at("edgeflow_flow_delivery_latency_seconds_bucket{" + f + ",le=\"+Inf\"}"), 300);
  EXPECT_EQ(m.at("edgeflow_flow_in_flight_messages{" + f + "}"), 0);
  EXPECT_EQ(m.at("edgeflow_plugin_seq_total{" + f + ",stage=\"source\",type=\"sequence\"}"), 300);
  EXPECT_EQ(m.at("edgeflow_plugins_refused"), 0);
  EXPECT_NE(text.find("edgeflow_plugin_info{plugin=\"testkit\""), std::string::npos);
}

TEST_F(Admin, HealthReadyFlowsAndErrors) {
  load(R"(flow: f
source: { type: sequence, count: 5, hold_open: true }
sinks:
  out: { type: flaky }
dead_letter: { type: flaky }
)");
  serve();
  EXPECT_EQ(request(port(), "/ready").status, 503);  // not started yet
  rt.start();
  ASSERT_TRUE(running());
  Reply health = request(port(), "/health");
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, R"({"status":"alive"})");
  Reply ready = request(port(), "/ready");
  EXPECT_EQ(ready.status, 200) << ready.body;
  EXPECT_TRUE(parse(ready.body)["ready"].GetBool());

  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().delivered.load() == 5; }, 30s));
  Reply one = request(port(), "/flows/f");
  ASSERT_EQ(one.status, 200);
  EXPECT_EQ(one.content_type, "application/json");
  auto d = parse(one.body);
  EXPECT_STREQ(d["state"].GetString(), "running");
  EXPECT_EQ(d["delivered"].GetUint64(), 5u);
  ASSERT_EQ(d["stages"].Size(), 3u);
  EXPECT_STREQ(d["stages"][0]["stage"].GetString(), "source");
  EXPECT_EQ(d["stages"][1]["out"].GetUint64(), 5u);
  EXPECT_EQ(d["latency"]["count"].GetUint64(), 5u);
  auto all = parse(request(port(), "/flows").body);
  ASSERT_EQ(all["flows"].Size(), 1u);
  EXPECT_STREQ(all["flows"][0]["name"].GetString(), "f");

  Reply missing = request(port(), "/flows/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_STREQ(parse(missing.body)["error"].GetString(), "no flow named 'nope'");
  EXPECT_EQ(request(port(), "/nothing").status, 404);
  EXPECT_EQ(request(port(), "/metrics", "", "POST").status, 405);

  rt.request_stop();
  rt.wait();
  Reply after = request(port(), "/ready");
  EXPECT_EQ(after.status, 503);
  auto a = parse(after.body);
  EXPECT_STREQ(a["not_running"][0]["state"].GetString(), "stopped");
}

TEST_F(Admin, TapStreamsSampledEventsOfAStage) {
  load(R"(flow: f
source: { type: sequence, count: 100000000, batch_size: 20, tags: [x] }
steps:
  - { type: script, drop: never-there }
sinks:
  out: { type: flaky }
dead_letter: { type: flaky }
max_in_flight: 100
)");
  serve();
  rt.start();
  ASSERT_TRUE(running());

  Poco::Net::HTTPClientSession s("127.0.0.1", port());
  Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_GET, "/flows/f/tap?stage=steps%5B0%5D&rate=50",
                             Poco::Net::HTTPMessage::HTTP_1_1);
  s.sendRequest(req);
  Poco::Net::HTTPResponse res;
  std::istream& in = s.receiveResponse(res);
  ASSERT_EQ(int(res.getStatus()), 200);
  EXPECT_EQ(res.getContentType(), "text/event-stream");
  std::vector<std::string> events;
  for (std::string line; events.size() < 3 && std::getline(in, line);)
    if (line.rfind("data: ", 0) == 0) events.push_back(line.substr(6));
  ASSERT_EQ(events.size(), 3u);
  long last = -1;
  for (auto& e : events) {
    auto d = parse(e);
    EXPECT_STREQ(d["flow"].GetString(), "f");
    EXPECT_STREQ(d["stage"].GetString(), "steps[0]");
    EXPECT_STREQ(d["payload"]["tag"].GetString(), "x");
    long n = d["payload"]["n"].GetInt64();
    EXPECT_GT(n, last);  // in flow order
    last = n;
  }
  s.reset();

  // The command line client, as an operator runs it.
  auto [printed, rc] = sh(std::string(EDGEFLOW_BIN) + " tap f --stage script --rate 20 --admin 127.0.0.1:" +
                          std::to_string(port()) + " | head -n 2");
  EXPECT_EQ(rc, 0);
  std::vector<std::string> lines;
  for (size_t at = 0, nl; (nl = printed.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(printed.substr(at, nl - at));
  ASSERT_EQ(lines.size(), 2u) << printed;
  for (auto& l : lines) EXPECT_STREQ(parse(l)["stage"].GetString(), "steps[0]");

  Reply unknown = request(port(), "/flows/f/tap?stage=steps%5B7%5D");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_NE(unknown.body.find("it has source, steps[0], sinks.out, dead_letter"), std::string::npos) << unknown.body;
}

TEST_F(Admin, ABlankDirectoryOrUnreadableTokenFileStopsTheStart) {
  std::string flow = dir.write("f.yaml", "flow: f\nsource: { type: sequence, count: 1 }\nsinks: { out: { type: flaky } }\n");
  std::string run = std::string(EDGEFLOW_BIN) + " run --plugin-dir " + EDGEFLOW_TEST_PLUGIN_DIR + " --state-dir " +
                    dir.file("s") + " --admin 127.0.0.1:0 ";
  dir.write("blank", "  \n");
  auto [blank, rc1] = sh(run + "--admin-token-file " + dir.file("blank") + " " + flow + " 2>&1");
  EXPECT_EQ(rc1, 2) << blank;
  EXPECT_NE(blank.find("the admin token (--admin-token-file or $EDGEFLOW_ADMIN_TOKEN) is empty"), std::string::npos) << blank;
  auto [is_dir, rc2] = sh(run + "--admin-token-file " + dir.path().string() + " " + flow + " 2>&1");
  EXPECT_EQ(rc2, 2) << is_dir;
  EXPECT_NE(is_dir.find("is a directory, not a file"), std::string::npos) << is_dir;
  auto [missing, rc3] = sh(run + "--admin-token-file " + dir.file("none") + " " + flow + " 2>&1");
  EXPECT_EQ(rc3, 2) << missing;
  EXPECT_NE(missing.find("cannot read it: No such file or directory"), std::string::npos) << missing;
  auto [env_blank, rc4] = sh("EDGEFLOW_ADMIN_TOKEN=' ' " + run + flow + " 2>&1");
  EXPECT_EQ(rc4, 2) << env_blank;
  EXPECT_NE(env_blank.find("is empty"), std::string::npos) << env_blank;
}

TEST_F(Admin, TokenIsEnforcedAndRequiredOffLoopback) {
  load(R"(flow: f
source: { type: sequence, count: 1 }
sinks:
  out: { type: flaky }
dead_letter: { type: flaky }
)");
  serve(kToken);
  EXPECT_EQ(request(port(), "/health").status, 200);  // probes need no token
  Reply none = request(port(), "/metrics");
  EXPECT_EQ(none.status, 401);
  EXPECT_NE(none.body.find("Authorization: Bearer"), std::string::npos);
  EXPECT_EQ(request(port(), "/flows", "not-the-token-at-all").status, 401);
  EXPECT_EQ(request(port(), "/flows", kToken).status, 200);
  auto [code, rc] = sh("curl -s -o /dev/null -w '%{http_code}' -H 'Authorization: Bearer " + std::string(kToken) +
                       "' " + url("/metrics"));
  EXPECT_EQ(code, "200");

  AdminOptions open;
  open.host = "0.0.0.0";
  open.port = 0;
  try {
    AdminServer exposed(rt, open);
    FAIL() << "listened on 0.0.0.0 without a token";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("0.0.0.0:0 is not a loopback address, and the API is never exposed without a token"),
              std::string::npos)
        << e.what();
  }
  open.token = kToken;
  AdminServer exposed(rt, open);
  EXPECT_GT(exposed.port(), 0);
}

TEST_F(Admin, APortInUseIsAClearError) {
  load("flow: f\nsource: { type: sequence, count: 1 }\nsinks:\n  out: { type: flaky }\ndead_letter: { type: flaky }\n");
  serve();
  AdminOptions same;
  same.port = port();
  try {
    AdminServer second(rt, same);
    FAIL() << "two servers on one port";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot listen on 127.0.0.1:" + std::to_string(port())), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--admin off"), std::string::npos) << e.what();
  }
}

TEST_F(Admin, SecretsNeverAppearInResponses) {
  load(R"(flow: f
source: { type: sequence, count: 100000000, batch_size: 5, tags: [s3cr3t-value-42] }
sinks:
  out: { type: flaky, token: s3cr3t-value-42 }
dead_letter: { type: flaky }
max_in_flight: 50
)");
  serve();
  rt.start();
  ASSERT_TRUE(running());
  Poco::Net::HTTPClientSession s("127.0.0.1", port());
  Poco::Net::HTTPRequest req(Poco::Net::HTTPRequest::HTTP_GET, "/flows/f/tap?stage=sinks.out", Poco::Net::HTTPMessage::HTTP_1_1);
  s.sendRequest(req);
  Poco::Net::HTTPResponse res;
  std::istream& in = s.receiveResponse(res);
  std::string event;
  for (std::string line; event.empty() && std::getline(in, line);)
    if (line.rfind("data: ", 0) == 0) event = line;
  EXPECT_EQ(event.find("s3cr3t"), std::string::npos) << event;
  EXPECT_NE(event.find("\"tag\":\"<redacted>\""), std::string::npos) << event;
  s.reset();
  for (const char* path : {"/metrics", "/flows", "/flows/f"})
    EXPECT_EQ(request(port(), path).body.find("s3cr3t"), std::string::npos) << path;
}

// Whatever a client puts in the repair station's and reload's queries: a 400 (or 404) naming the
// parameter and what it takes, never a crash, a query built from the text, or a purge of all.
TEST_F(Admin, HostileDeadLetterAndReloadQueriesAreRefusedWithTheReason) {
  load(R"(flow: f
source: { type: sequence, count: 5, hold_open: true }
sinks:
  out: { type: flaky, reject: '"n":1' }
)");
  serve();
  rt.start();
  ASSERT_TRUE(flow().wait_for([&] { return flow().stats().dead_lettered.load() == 1; }, 30s));
  auto post = [&](const std::string& path, bool json = true) { return ::post(port(), path, "", json ? "application/json" : ""); };
  auto refused = [&](const Reply& r, int status, const std::string& says) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_NE(r.body.find(says), std::string::npos) << r.body;
  };
  refused(request(port(), "/dlq?since=yesterday"), 400, "since: a time like");
  refused(request(port(), "/dlq?until=2026-13-40T99:00:00Z"), 400, "until: a time like");
  refused(request(port(), "/dlq?bogus=1"), 400, "unknown filter 'bogus'");
  refused(request(port(), "/dlq?id=1,x"), 400, "id: letter ids");
  refused(request(port(), "/dlq?id=-4"), 400, "id: letter ids");
  refused(request(port(), "/dlq?limit=-3"), 400, "limit: a number of letters");
  refused(request(port(), "/dlq?limit=99999999999999999999"), 400, "limit: a number of letters");
  refused(request(port(), "/dlq?state=deleted"), 400, "state: new or replayed");
  for (const char* bad : {"/dlq/abc", "/dlq/0", "/dlq/12x", "/dlq/99999999999999999999", "/dlq/1/2"})
    refused(request(port(), bad), 404, "letter");
  // Text is bound, never spliced: these select nothing, and say so.
  for (const char* odd : {"/dlq?reason=x%27%20OR%20%271%27%3D%271", "/dlq?reason=%5B", "/dlq?reason=%00",
                          "/dlq?flow=%FF%FE", "/dlq?stage=%27%3B%20DROP%20TABLE%20letter%3B--"}) {
    Reply r = request(port(), odd);
    EXPECT_EQ(r.status, 200) << odd << " " << r.body;
    EXPECT_EQ(parse(r.body)["count"].GetUint64(), 0u) << odd;
  }
  EXPECT_EQ(parse(request(port(), "/dlq").body)["count"].GetUint64(), 1u);  // still there

  refused(post("/dlq/replay?from=sideways"), 400, "from: source or stage");
  refused(post("/dlq/replay?timeout=1y"), 400, "timeout: a duration up to 10m");
  refused(post("/dlq/replay?timeout=0"), 400, "timeout: a duration up to 10m");
  refused(post("/dlq/purge"), 400, "purge needs a filter");
  refused(post("/dlq/purge?all=yes"), 400, "purge needs a filter");
  refused(post("/dlq/purge?all=true", false), 415, "application/json");
  refused(post("/reload", false), 415, "application/json");
  EXPECT_EQ(request(port(), "/dlq/purge").status, 405);
  EXPECT_EQ(parse(request(port(), "/dlq").body)["count"].GetUint64(), 1u);  // nothing purged

  // The one valid action here: a reload of an unchanged file changes nothing.
  Reply reload = post("/reload");
  EXPECT_EQ(reload.status, 200) << reload.body;
  EXPECT_STREQ(parse(reload.body)["unchanged"][0].GetString(), "f");
  EXPECT_STREQ(parse(request(port(), "/reload").body)["status"].GetString(), "applied");
}

// POST /flows/<name>/signal: a bounded JSON object for the source; everything else is refused
// with the reason, and a source without a signal hook says so.
TEST_F(Admin, HostileSignalsAreRefusedWithTheReason) {
  load(R"(flow: f
source: { type: sequence, count: 1, hold_open: true }
sinks:
  out: { type: drop }
)");
  serve();
  rt.start();
  ASSERT_TRUE(flow().wait_for([&] { return flow().state() == FlowState::running; }, 30s));
  auto post = [&](const std::string& path, const std::string& body, const std::string& type = "application/json") {
    return ::post(port(), path, body, type);
  };
  auto refused = [&](const Reply& r, int status, const std::string& says) {
    EXPECT_EQ(r.status, status) << r.body;
    EXPECT_NE(r.body.find(says), std::string::npos) << r.body;
  };
  refused(post("/flows/f/signal", "{"), 400, "the body must be a JSON object");
  refused(post("/flows/f/signal", "[1]"), 400, "the body must be a JSON object");
  refused(post("/flows/f/signal", std::string(30000, '[') + std::string(30000, ']')), 400, "the body must be a JSON object");
  refused(post("/flows/f/signal", "{\"a\":\"\xff\"}"), 400, "the body must be a JSON object in UTF-8");
  refused(post("/flows/f/signal", "{\"action\":\"snapshot\"}"), 409, "the sequence source of flow f takes no signals");
  EXPECT_EQ(post("/flows/f/signal", std::string(70000, ' ')).status, 413);
  refused(post("/flows/f/signal", "{}", "application/x-www-form-urlencoded"), 415, "application/json");
  refused(post("/flows/none/signal", "{}"), 404, "no flow named 'none'");
  EXPECT_EQ(request(port(), "/flows/f/signal").status, 405);
  EXPECT_EQ(flow().state(), FlowState::running);
}

// packaging/grafana/edgeflow.json: valid JSON, valid PromQL (promtool), and only metrics that exist:
// the daemon's own as a running flow with a buffered sink exports them, plugin metrics as the
// connector docs list them.
TEST_F(Admin, TheGrafanaDashboardAsksOnlyForMetricsThatExist) {
  load(R"(flow: f
source: { type: sequence, count: 3 }
sinks:
  out: { type: drop, buffer: { type: disk } }
)");
  serve();
  rt.start();
  rt.wait();
  auto [text, curl_rc] = sh("curl -sS --fail " + url("/metrics"));
  ASSERT_EQ(curl_rc, 0) << text;

  std::ifstream in(std::string(EDGEFLOW_SOURCE_DIR) + "/packaging/grafana/edgeflow.json");
  std::string json((std::istreambuf_iterator<char>(in)), {});
  rapidjson::Document d;
  d.Parse(json.c_str());
  ASSERT_TRUE(d.IsObject()) << "the dashboard is not JSON";
  EXPECT_TRUE(d.HasMember("uid") && d.HasMember("panels") && d.HasMember("templating"));
  std::vector<std::string> exprs;
  std::function<void(const rapidjson::Value&)> walk = [&](const rapidjson::Value& v) {
    if (v.IsObject()) {
      for (auto& m : v.GetObject()) {
        if (std::string(m.name.GetString()) == "expr" && m.value.IsString()) exprs.emplace_back(m.value.GetString());
        walk(m.value);
      }
    } else if (v.IsArray()) {
      for (auto& e : v.GetArray()) walk(e);
    }
  };
  walk(d);
  ASSERT_GE(exprs.size(), 20u);

  std::string docs;
  for (const char* f : {"postgres-cdc.md", "kafka.md", "mqtt.md", "http.md"}) {
    std::ifstream doc(std::string(EDGEFLOW_SOURCE_DIR) + "/docs/" + f);
    docs += std::string((std::istreambuf_iterator<char>(doc)), {});
  }
  std::string rules = "groups:\n  - name: dashboard\n    rules:\n";
  int n = 0;
  for (std::string e : exprs) {
    for (auto [var, value] : {std::pair{"$__rate_interval", "5m"}, std::pair{"$flow", ".*"}})
      for (size_t at; (at = e.find(var)) != std::string::npos;) e.replace(at, std::string(var).size(), value);
    rules += "      - record: dashboard:q" + std::to_string(++n) + "\n        expr: '" + e + "'\n";
    for (size_t at = 0; (at = e.find("edgeflow_", at)) != std::string::npos;) {
      size_t end = e.find_first_not_of("abcdefghijklmnopqrstuvwxyz_", at);
      std::string name = e.substr(at, end - at);
      at = end;
      if (name.rfind("edgeflow_plugin_", 0) == 0) {
        std::string plugin = name.substr(16);
        if (plugin.size() > 6 && plugin.compare(plugin.size() - 6, 6, "_total") == 0) plugin.resize(plugin.size() - 6);
        EXPECT_NE(docs.find("`" + plugin + "`"), std::string::npos) << name << " is no metric a connector documents";
        continue;
      }
      for (const char* suffix : {"_bucket"})
        if (name.size() > 7 && name.compare(name.size() - 7, 7, suffix) == 0) name.resize(name.size() - 7);
      EXPECT_NE(text.find("# TYPE " + name + " "), std::string::npos) << name << " is not in /metrics";
    }
  }
  std::string file = dir.write("dashboard-rules.yml", rules);
  auto [lint, rc] = sh("promtool check rules " + file + " 2>&1");
  EXPECT_EQ(rc, 0) << lint << rules;
}

// The console's files come from the binary with a strict CSP and no token (they hold no data);
// what they show needs the token. /flows carries each flow's plugin metrics, /flows/<name> its
// configuration with secrets redacted.
TEST_F(Admin, TheConsoleIsServedFromTheBinaryAndItsDataNeedsTheToken) {
  load(R"(flow: f
source: { type: sequence, count: 5, hold_open: true, metric: seq }
sinks:
  out: { type: flaky, token: console-secret-value }
)");
  const std::string token = "0123456789abcdef-console";
  serve(token);
  rt.start();
  ASSERT_TRUE(running());
  Reply page = request(port(), "/console/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  EXPECT_NE(page.body.find("<script src=\"app.js\"></script>"), std::string::npos);
  EXPECT_EQ(page.body.find("http"), std::string::npos) << "the page names no other origin";
  auto [head, rc] = sh("curl -sSI " + url("/console/app.js"));
  EXPECT_NE(head.find("Content-Security-Policy: default-src 'none'; script-src 'self'"), std::string::npos) << head;
  EXPECT_NE(head.find("X-Content-Type-Options: nosniff"), std::string::npos) << head;
  EXPECT_EQ(request(port(), "/console/app.js").content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(request(port(), "/console/app.css").content_type, "text/css; charset=utf-8");
  EXPECT_EQ(request(port(), "/console/../metrics").status, 404);
  EXPECT_EQ(request(port(), "/console/nope.js").status, 404);
  auto [redirect, rc2] = sh("curl -sSI " + url("/"));
  EXPECT_NE(redirect.find("HTTP/1.1 302 Found"), std::string::npos) << redirect;
  EXPECT_NE(redirect.find("Location: /console/"), std::string::npos) << redirect;

  EXPECT_EQ(request(port(), "/flows").status, 401);
  Reply flows = request(port(), "/flows", token);
  ASSERT_EQ(flows.status, 200);
  auto list = parse(flows.body);
  ASSERT_TRUE(list["flows"][0]["plugin_metrics"].IsArray());
  EXPECT_STREQ(list["flows"][0]["plugin_metrics"][0]["name"].GetString(), "seq");
  Reply one = request(port(), "/flows/f", token);
  std::string config = parse(one.body)["config"].GetString();
  EXPECT_NE(config.find("flaky"), std::string::npos) << config;
  EXPECT_NE(config.find("<redacted>"), std::string::npos) << config;
  EXPECT_EQ(one.body.find("console-secret-value"), std::string::npos) << one.body;
}

TEST(AdminAddress, ParsesHostPortAndOff) {
  EXPECT_FALSE(parse_admin_address("off"));
  auto a = parse_admin_address("9000");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, 9000);
  auto b = parse_admin_address("0.0.0.0:8080");
  EXPECT_EQ(b->host, "0.0.0.0");
  EXPECT_EQ(b->port, 8080);
  auto c = parse_admin_address("[::1]:7000");
  EXPECT_EQ(c->host, "::1");
  EXPECT_THROW(parse_admin_address("localhost:http"), std::invalid_argument);
  EXPECT_THROW(parse_admin_address(":80"), std::invalid_argument);
  EXPECT_THROW(parse_admin_address("70000"), std::invalid_argument);
}
