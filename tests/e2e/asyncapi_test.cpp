// `edgeflow asyncapi` as a child process, its documents checked by the official AsyncAPI parser
// (@asyncapi/parser, tests/tools): every example flow, and a flow with every kind of server,
// templated topics, a validated payload and secrets that must not appear.
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <rapidjson/document.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

using edgeflow::test::CommandResult;
using edgeflow::test::run_command;
using edgeflow::test::TempDir;

namespace fs = std::filesystem;

namespace {

const std::string kSource = EDGEFLOW_SOURCE_DIR;

std::string read(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// The parser's verdict: exit 0 and no diagnostic of severity error.
CommandResult check(const std::string& file) {
  return run_command({"node", kSource + "/tests/tools/asyncapi_check.mjs", file});
}

class AsyncApi : public ::testing::Test {
 protected:
  TempDir dir;
  void SetUp() override {
    // What the example flows read from the environment.
    setenv("EDGEFLOW_KAFKA", "kafka-1.site:9092,kafka-2.site:9092", 1);
    setenv("SOURCE_DSN", "host=source.invalid", 1);
    setenv("TARGET_DSN", "host=target.invalid", 1);
    setenv("REDACT_KEY", "a-key-of-thirty-two-bytes-000000", 1);
  }
  CommandResult generate(const std::vector<std::string>& flows, const std::string& out) {
    std::vector<std::string> args{EDGEFLOW_BIN, "asyncapi", "--out", out};
    args.insert(args.end(), flows.begin(), flows.end());
    return run_command(args);
  }
};

TEST_F(AsyncApi, EveryExampleFlowGivesADocumentTheParserAccepts) {
  std::vector<std::string> all;
  for (auto& e : fs::recursive_directory_iterator(kSource + "/examples")) {
    std::string p = e.path().string();
    if (e.path().extension() != ".yaml" || p.find(".test.yaml") != std::string::npos) continue;
    all.push_back(p);
    std::string out = dir.file(e.path().stem().string() + ".json");
    auto r = generate({p}, out);
    ASSERT_EQ(r.status, 0) << p << "\n" << r.err;
    auto c = check(out);
    EXPECT_EQ(c.status, 0) << p << "\n" << c.out << c.err;
    EXPECT_EQ(c.out.find(": error:"), std::string::npos) << c.out;
  }
  ASSERT_GE(all.size(), 11u);
  auto r = generate(all, dir.file("all.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  auto c = check(dir.file("all.json"));
  EXPECT_EQ(c.status, 0) << c.out << c.err;
  // The Kafka example's templated topic is a channel with a parameter.
  EXPECT_NE(c.out.find("channel(s)"), std::string::npos) << c.out;
  std::string doc = read(dir.file("all.json"));
  EXPECT_NE(doc.find("\"address\": \"quickstart.{size}\""), std::string::npos) << doc;
}

TEST_F(AsyncApi, ServersChannelsSchemasAndNoSecrets) {
  std::string flow = dir.write("edge.yaml", R"(flow: sensors
source:
  type: mqtt
  uri: mqtts://broker.site:8883
  username: edge-user
  password: another-mqtt-secret
  topics: [plant/+/temperature]
steps:
  - type: validate
    schema: { type: object, required: [id, celsius], properties: { id: { type: string }, celsius: { type: number } } }
  - type: map
    unmapped: drop
    set: { sensor: id, reading.value: celsius, reading.unit: "'C'", alarm: celsius > 80, version: 2 }
  - type: route
    routes:
      - { when: alarm, to: [alarms, hook] }
      - to: [readings]
sinks:
  readings:
    type: kafka
    brokers: k1.site:9093,k2.site:9093
    security_protocol: sasl_ssl
    sasl_mechanism: PLAIN
    sasl_username: edge
    sasl_password: kafka-secret-pw
    topic: "plant.${sensor}.${upper(reading.unit)}"
  alarms:
    type: mqtt
    uri: mqtt://broker.site
    topic: alarms/${sensor}
  hook:
    type: http
    url: https://ops.example.com/alarms
    bearer_token: http-secret-token
---
flow: webhooks
source:
  type: http
  listen: 127.0.0.1:8080
  path: /hooks/orders
  hmac_secret: hmac-secret-value-0123456789
steps:
  - type: envelope
    source: /edge/orders
    event_type: "'order'"
sinks:
  out: { type: mqtt, uri: mqtt://broker.site, topic: orders }
)");
  auto r = generate({flow}, dir.file("edge.json"));
  ASSERT_EQ(r.status, 0) << r.err;
  auto c = check(dir.file("edge.json"));
  EXPECT_EQ(c.status, 0) << c.out << c.err;
  std::string text = read(dir.file("edge.json"));
  for (const char* secret : {"another-mqtt-secret", "kafka-secret-pw", "http-secret-token", "hmac-secret-value"})
    EXPECT_EQ(text.find(secret), std::string::npos) << secret << " leaked:\n" << text;

  rapidjson::Document d;
  d.Parse(text.c_str());
  ASSERT_TRUE(d.IsObject());
  auto& servers = d["servers"];
  EXPECT_STREQ(servers["secure-mqtt-broker-site-8883"]["protocol"].GetString(), "secure-mqtt");
  EXPECT_STREQ(servers["kafka-secure-k1-site-9093"]["host"].GetString(), "k1.site:9093");
  EXPECT_STREQ(servers["https-ops-example-com"]["protocol"].GetString(), "https");
  EXPECT_STREQ(servers["http-127-0-0-1-8080"]["protocol"].GetString(), "http");
  auto& readings = d["channels"]["sensors-readings"];
  EXPECT_STREQ(readings["address"].GetString(), "plant.{sensor}.{p1}");
  EXPECT_TRUE(readings["parameters"].HasMember("sensor"));
  EXPECT_NE(std::string(readings["parameters"]["p1"]["description"].GetString()).find("upper(reading.unit)"), std::string::npos);
  EXPECT_STREQ(d["channels"]["sensors-source"]["address"].GetString(), "plant/+/temperature");
  EXPECT_STREQ(d["channels"]["webhooks-source"]["address"].GetString(), "/hooks/orders");
  EXPECT_STREQ(d["operations"]["webhooks-receive-webhooks-source"]["action"].GetString(), "receive");
  EXPECT_STREQ(d["operations"]["sensors-send-hook"]["action"].GetString(), "send");

  // In: the validate step's schema. Out: the shape the map step builds, literals typed.
  auto& in = d["components"]["messages"]["sensors-in"]["payload"]["schema"];
  EXPECT_STREQ(in["properties"]["celsius"]["type"].GetString(), "number");
  auto& out = d["components"]["messages"]["sensors-out"]["payload"]["schema"];
  EXPECT_TRUE(out["properties"]["reading"]["properties"].HasMember("unit"));
  EXPECT_STREQ(out["properties"]["version"]["type"].GetString(), "integer");
  EXPECT_EQ(out["required"].Size(), 4u);  // sensor, reading, alarm, version
  auto& cloud = d["components"]["messages"]["webhooks-out"];
  EXPECT_STREQ(cloud["contentType"].GetString(), "application/cloudevents+json");
  EXPECT_TRUE(cloud["payload"]["schema"]["properties"].HasMember("specversion"));
}

TEST_F(AsyncApi, AnInvalidFlowIsRefusedWithWhere) {
  std::string flow = dir.write("bad.yaml", "flow: x\nsource: { type: kafka, topics: [t] }\nsinks: { o: { type: drop } }\n");
  auto r = generate({flow}, dir.file("x.json"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("bad.yaml:2:"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(dir.file("x.json")));
}

}  // namespace
