// The MQTT source and sink through the SDK harness against a real mosquitto started by the test
// (tests/support/mosquitto_server.hpp): round trips at every QoS and both protocol versions,
// acknowledgements held until the flow resolves a message, a persistent session across a stop,
// a broker restart under the sink, topics that must not be published, TLS with a CA made by the
// test, bad credentials, an unreachable broker, a dead connection found by the keep-alive, and
// config mistakes. Third-party clients (mosquitto_pub, mosquitto_sub) publish and read where the
// test needs an independent peer.
#include "sink.hpp"
#include "source.hpp"

#include "mosquitto_server.hpp"
#include "test_support.hpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

using edgeflow::mqtt::MqttSink;
using edgeflow::mqtt::MqttSource;
using edgeflow::test::MosquittoServer;
using edgeflow::test::TestCa;
using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;
using edgeflow::testing::Input;
using edgeflow::testing::Output;
using edgeflow::testing::RunningSource;

namespace {

using namespace std::chrono_literals;

std::string meta(const Output& o, const std::string& name) { return edgeflow::testing::value_of(o.meta, name); }
std::string header(const Output& o, const std::string& name) { return edgeflow::testing::value_of(o.headers, name); }

template <class H>
bool logged(H& h, const std::string& needle, std::chrono::milliseconds timeout = 30s) {
  return h.changes().wait_until(
      [&] {
        auto logs = h.logs();
        return std::any_of(logs.begin(), logs.end(), [&](auto& l) { return l.find(needle) != std::string::npos; });
      },
      timeout);
}

template <class H>
std::string all_logs(H& h) {
  return edgeflow::test::join(h.logs());
}

std::vector<std::string> numbered(int from, int to) {
  std::vector<std::string> v;
  for (int i = from; i < to; ++i) v.push_back("{\"id\":" + std::to_string(i) + "}");
  return v;
}

std::vector<std::string> payloads(const std::vector<Output>& out) {
  std::vector<std::string> v;
  for (auto& o : out) v.push_back(o.payload);
  return v;
}

// Waits until `n` messages were emitted in all, acknowledging each as it comes, as a flow would:
// an MQTT 3.1.1 broker sends only max_inflight_messages (mosquitto: 20) unacknowledged ones.
bool receive(Harness<MqttSource>& h, size_t n, std::chrono::milliseconds timeout = 30s) {
  size_t acked = 0;
  return h.changes().wait_until(
      [&] {
        auto out = h.emitted();
        for (; acked < out.size(); ++acked) h.ack(out[acked].token);
        return out.size() >= n;
      },
      timeout);
}

// What start() (or the constructor) threw.
template <class T>
std::string start_error(const std::string& yaml) {
  try {
    Harness<T> h(yaml);
    h.start();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no error)";
}

class MqttTest : public ::testing::TestWithParam<const char*> {
 protected:
  MosquittoServer broker;
  std::string protocol() const { return GetParam(); }
  std::string client(const std::string& extra) const {
    return "uri: " + broker.uri() + "\nprotocol: \"" + protocol() + "\"\n" + extra;
  }
};

INSTANTIATE_TEST_SUITE_P(Protocols, MqttTest, ::testing::Values("5", "3.1.1"),
                         [](const auto& info) { return std::string(info.param[0] == '5' ? "V5" : "V311"); });

TEST_P(MqttTest, RoundTripAtEachQos) {
  for (int qos = 0; qos <= 2; ++qos) {
    SCOPED_TRACE("QoS " + std::to_string(qos));
    std::string q = std::to_string(qos);
    RunningSource<MqttSource> src(client("client_id: rt-src-" + q + "\ntopics: [\"rt/" + q + "/#\"]\nqos: " + q + "\n"));
    ASSERT_TRUE(logged(src.harness(), "subscribed to rt/" + q + "/# (QoS " + q + ")")) << all_logs(src.harness());
    Harness<MqttSink> sink(client("topic: rt/" + q + "/${device}\nqos: " + q + "\n"));
    std::vector<Input> in;
    for (int i = 0; i < 3; ++i)
      in.push_back(Input{.payload = "{\"device\":\"d" + std::to_string(i) + "\",\"n\":" + std::to_string(i) + "}",
                         .headers = {{"trace", "t" + std::to_string(i)}},
                         .content_type = "application/json"});
    sink.write(in);
    auto acks = sink.wait_acks(3);
    ASSERT_EQ(acks.size(), 3u);
    for (auto& a : acks) EXPECT_EQ(a.status, EF_ACK_DELIVERED) << a.reason;
    ASSERT_TRUE(src.harness().wait_emitted(3)) << all_logs(src.harness());
    auto got = src.harness().emitted();
    ASSERT_EQ(got.size(), 3u);
    for (int i = 0; i < 3; ++i) {
      auto& o = got[size_t(i)];
      EXPECT_EQ(o.payload, in[size_t(i)].payload);
      EXPECT_EQ(meta(o, "mqtt.topic"), "rt/" + q + "/d" + std::to_string(i));
      EXPECT_EQ(meta(o, "mqtt.qos"), q);
      EXPECT_EQ(meta(o, "mqtt.retain"), "false");
      if (protocol() == "5") {  // user properties and content type exist in MQTT 5 only
        EXPECT_EQ(header(o, "trace"), "t" + std::to_string(i));
        EXPECT_EQ(o.content_type, "application/json");
      } else {
        EXPECT_TRUE(o.headers.empty());
      }
    }
    src.harness().ack_all_emitted();
  }
}

// The heart of the connector: PUBACK only for what the flow resolved, in arrival order.
TEST_P(MqttTest, AMessageIsAcknowledgedToTheBrokerOnlyOnceTheFlowResolvedIt) {
  std::string yaml = client("client_id: held-" + protocol() + "\ntopics: [held/#]\nqos: 1\n");
  {
    RunningSource<MqttSource> src(yaml);
    ASSERT_TRUE(logged(src.harness(), "subscribed to"));
    broker.publish("held/a", numbered(0, 5), 1);
    ASSERT_TRUE(src.harness().wait_emitted(5));
    auto got = src.harness().emitted();
    // Resolved: 0 (delivered), 1 (dead-lettered), 3 (delivered): only 0 and 1 form a prefix; 3
    // waits behind 2, which the flow never finished.
    src.harness().ack(got[0].token, EF_ACK_DELIVERED);
    src.harness().ack(got[1].token, EF_ACK_REJECTED);
    src.harness().ack(got[3].token, EF_ACK_DELIVERED);
  }  // stop: the acks reach the source, the connection ends
  {
    RunningSource<MqttSource> src(yaml);
    ASSERT_TRUE(src.harness().wait_emitted(3)) << all_logs(src.harness());
    auto again = src.harness().emitted();
    EXPECT_EQ(payloads(again), (std::vector<std::string>{"{\"id\":2}", "{\"id\":3}", "{\"id\":4}"}));
    EXPECT_EQ(meta(again[0], "mqtt.dup"), "true");
    src.harness().ack_all_emitted();
  }
  RunningSource<MqttSource> src(yaml);
  ASSERT_TRUE(logged(src.harness(), "resuming its session"));
  broker.publish("held/a", {"marker"}, 1);
  ASSERT_TRUE(src.harness().wait_emitted(1));
  EXPECT_EQ(payloads(src.harness().emitted()), std::vector<std::string>{"marker"});
}

TEST_P(MqttTest, APersistentSessionDeliversWhatWasPublishedWhileTheRuntimeWasStopped) {
  std::string yaml = client("client_id: away-" + protocol() + "\ntopics: [{ filter: \"away/+\", qos: 2 }]\n");
  {
    RunningSource<MqttSource> src(yaml);
    ASSERT_TRUE(logged(src.harness(), "subscribed to away/+ (QoS 2)"));
  }
  broker.publish("away/x", numbered(0, 300), 1);
  broker.publish("away/y", numbered(300, 400), 2);
  RunningSource<MqttSource> src(yaml);
  ASSERT_TRUE(receive(src.harness(), 400)) << src.harness().emitted_count();
  auto got = src.harness().emitted();
  EXPECT_EQ(payloads(got), numbered(0, 400));
  EXPECT_EQ(meta(got[0], "mqtt.qos"), "1");
  EXPECT_EQ(meta(got[399], "mqtt.qos"), "2");
}

// How many unacknowledged messages the broker sends: MQTT 5, the source's receive_maximum; MQTT
// 3.1.1, the broker's own max_inflight_messages (mosquitto 2.0.11: 20 by default). The only check
// here that waits for something not to happen: 2 s in which no further message may come.
TEST_P(MqttTest, TheBrokerSendsNoMoreUnacknowledgedMessagesThanTheWindow) {
  RunningSource<MqttSource> src(client("client_id: window\ntopics: [w/#]\nreceive_maximum: 50\n"));
  ASSERT_TRUE(logged(src.harness(), "subscribed to"));
  broker.publish("w/a", numbered(0, 100), 1);
  size_t window = protocol() == "5" ? 50 : 20;
  ASSERT_TRUE(src.harness().wait_emitted(window));
  EXPECT_FALSE(src.harness().wait_emitted(window + 1, 2s)) << src.harness().emitted_count();
  src.harness().ack(src.harness().emitted()[0].token);
  ASSERT_TRUE(src.harness().wait_emitted(window + 1));
  ASSERT_TRUE(receive(src.harness(), 100));
  EXPECT_EQ(payloads(src.harness().emitted()), numbered(0, 100));
}

TEST_P(MqttTest, TheSinkReconnectsAfterTheBrokerRestartedAndFailsWhatWasOpenAsRetry) {
  Harness<MqttSink> sink(client("topic: r/out\nqos: 1\nreconnect_backoff: 20ms\nreconnect_max_backoff: 200ms\n"));
  sink.write({Input{.payload = "before"}});
  ASSERT_EQ(sink.wait_acks(1).at(0).status, EF_ACK_DELIVERED);
  size_t mark = broker.log_mark();
  broker.stop();
  ASSERT_TRUE(logged(sink, "lost")) << all_logs(sink);
  sink.write({Input{.payload = "while down"}});
  auto acks = sink.wait_acks(2);
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[1].status, EF_ACK_RETRY);
  EXPECT_NE(acks[1].reason.find("not connected to the MQTT broker at 127.0.0.1:" + std::to_string(broker.port())),
            std::string::npos)
      << acks[1].reason;
  broker.start();
  ASSERT_TRUE(broker.wait_log("New client connected", mark));
  ASSERT_TRUE(sink.changes().wait_until([&] { return sink.metric("reconnects").value_or(0) >= 1; })) << all_logs(sink);
  sink.write({Input{.payload = "after"}});
  acks = sink.wait_acks(3);
  ASSERT_EQ(acks.size(), 3u);
  EXPECT_EQ(acks[2].status, EF_ACK_DELIVERED) << acks[2].reason;
}

TEST_P(MqttTest, TopicsThatMustNotBePublishedGoToTheDeadLetterAndTheRestGoOn) {
  RunningSource<MqttSource> all(client("client_id: spy\nclean_start: true\ntopics: [\"#\"]\nqos: 1\n"));
  ASSERT_TRUE(logged(all.harness(), "subscribed to"));
  Harness<MqttSink> sink(client("topic: devices/${device}/temp\nqos: 1\n"));
  std::vector<Input> in{
      {.payload = R"({"device":"a/+/b"})"},
      {.payload = R"({"device":"#"})"},
      {.payload = R"({"device":"nul\u0000x"})"},
      {.payload = R"({"device":"bell\u0007"})"},
      {.payload = R"({"nothing":1})"},
      {.payload = "{\"device\":\"" + std::string(70000, 'x') + "\"}"},
      {.payload = R"({"device":"ok"})"},
  };
  sink.write(in);
  auto acks = sink.wait_acks(in.size());
  ASSERT_EQ(acks.size(), in.size());
  std::map<std::string, std::pair<ef_ack_status, std::string>> by;
  for (auto& a : acks) by[a.payload.size() > 1000 ? "long" : a.payload] = {a.status, a.reason};
  auto expect_rejected = [&](const std::string& key, const std::string& why) {
    EXPECT_EQ(by[key].first, EF_ACK_REJECTED) << key;
    EXPECT_NE(by[key].second.find(why), std::string::npos) << key << ": " << by[key].second;
  };
  expect_rejected(in[0].payload, "contains the wildcard '+'");
  expect_rejected(in[1].payload, "contains the wildcard '#'");
  expect_rejected(in[2].payload, "NUL");
  expect_rejected(in[3].payload, "control character");
  expect_rejected(in[4].payload, "${device} is null");
  expect_rejected("long", "longer than 65535 bytes");
  EXPECT_EQ(by[in[6].payload].first, EF_ACK_DELIVERED) << by[in[6].payload].second;
  // Only the good one reached the broker (and the connection survived the bad ones).
  ASSERT_TRUE(all.harness().wait_emitted(1));
  sink.write({Input{.payload = R"({"device":"ok2"})"}});
  ASSERT_EQ(sink.wait_acks(in.size() + 1).back().status, EF_ACK_DELIVERED);
  ASSERT_TRUE(all.harness().wait_emitted(2));
  auto seen = all.harness().emitted();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(meta(seen[0], "mqtt.topic"), "devices/ok/temp");
  EXPECT_EQ(meta(seen[1], "mqtt.topic"), "devices/ok2/temp");
}

TEST_P(MqttTest, AValueNeverMakesADollarTopicAndBadUserPropertiesGoToTheDeadLetter) {
  RunningSource<MqttSource> all(client("client_id: spy2\nclean_start: true\ntopics: [\"#\"]\nqos: 1\n"));
  ASSERT_TRUE(logged(all.harness(), "subscribed to"));
  // The template starts with a value: "$SYS" from a message is refused, not published there.
  std::string props = protocol() == "5" ? "user_properties: { site: site }\n" : "";
  Harness<MqttSink> sink(client("topic: ${root}/x\nqos: 1\n" + props));
  std::vector<Input> in{{.payload = R"({"root":"$SYS","site":"s"})"}};
  if (protocol() == "5") in.push_back({.payload = R"({"root":"r","site":"bell\u0007"})"});
  in.push_back({.payload = R"({"root":"ok","site":"s"})"});
  sink.write(in);
  auto acks = sink.wait_acks(in.size());
  ASSERT_EQ(acks.size(), in.size());
  EXPECT_EQ(acks[0].status, EF_ACK_REJECTED);
  EXPECT_NE(acks[0].reason.find("a topic starting with $ is reserved for the broker"), std::string::npos) << acks[0].reason;
  if (protocol() == "5") {
    EXPECT_EQ(acks[1].status, EF_ACK_REJECTED);
    EXPECT_NE(acks[1].reason.find("user_properties.site: contains a control character"), std::string::npos)
        << acks[1].reason;
  }
  EXPECT_EQ(acks.back().status, EF_ACK_DELIVERED) << acks.back().reason;
  // The connection survived: nothing reconnected, and only the good one reached the broker.
  ASSERT_TRUE(all.harness().wait_emitted(1));
  EXPECT_EQ(meta(all.harness().emitted()[0], "mqtt.topic"), "ok/x");
  EXPECT_EQ(sink.metric("reconnects").value_or(0), 0);
}

TEST_P(MqttTest, TheKeepAliveNoticesABrokerThatStoppedAnswering) {
  Harness<MqttSink> sink(client("topic: k\nkeep_alive: 1s\nconnect_timeout: 1s\nreconnect_backoff: 50ms\nreconnect_max_backoff: 200ms\n"));
  sink.start();
  broker.freeze();
  EXPECT_TRUE(logged(sink, "no answer from the broker within keep_alive", 20s)) << all_logs(sink);
  broker.thaw();
  EXPECT_TRUE(sink.changes().wait_until([&] { return sink.metric("reconnects").value_or(0) >= 1; }, 30s)) << all_logs(sink);
}

TEST_P(MqttTest, AnUnreachableBrokerIsNamedWithTheSystemsReason) {
  int port = edgeflow::test::free_loopback_port();
  std::string e = start_error<MqttSink>("uri: mqtt://127.0.0.1:" + std::to_string(port) + "\ntopic: t\nprotocol: \"" +
                                        protocol() + "\"\n");
  EXPECT_NE(e.find("cannot connect to the MQTT broker at 127.0.0.1:" + std::to_string(port) + ": Connection refused"),
            std::string::npos)
      << e;
  e = start_error<MqttSource>("uri: mqtt://no-such-host.invalid\ntopics: [a]\n");
  EXPECT_NE(e.find("cannot resolve the broker's host no-such-host.invalid"), std::string::npos) << e;
}

TEST(MqttCredentials, BadCredentialsAreRefusedWithTheBrokersReasonAndThePasswordIsNeverShown) {
  edgeflow::test::TempDir dir;
  std::string passwd = dir.file("passwd");
  auto r = edgeflow::test::run_command({"mosquitto_passwd", "-c", "-b", passwd, "edge", "s3cret-right"});
  ASSERT_EQ(r.status, 0) << r.err;
  MosquittoServer broker("", "allow_anonymous false\npassword_file " + passwd + "\n");
  for (const char* protocol : {"5", "3.1.1"}) {
    std::string base = "uri: " + broker.uri() + "\ntopic: t\nprotocol: \"" + protocol + "\"\nusername: edge\n";
    std::string e = start_error<MqttSink>(base + "password: wrong-pass-123\n");
    EXPECT_NE(e.find("the MQTT broker refused the connection: "), std::string::npos) << e;
    // mosquitto 2.0.11 says "not authorized" for a wrong password (not "bad user name or password").
    EXPECT_NE(e.find(protocol[0] == '5' ? "Not authorized (reason 0x87)" : "Not authorized (3.1.1 return code 5)"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("check username and password"), std::string::npos) << e;
    EXPECT_EQ(e.find("wrong-pass-123"), std::string::npos) << e;
    Harness<MqttSink> ok(base + "password: s3cret-right\n");
    ok.write({Input{.payload = "x"}});
    EXPECT_EQ(ok.wait_acks(1).at(0).status, EF_ACK_DELIVERED);
    for (auto& l : ok.logs()) EXPECT_EQ(l.find("s3cret-right"), std::string::npos) << l;
  }
}

TEST(MqttTls, ATestCaVerifiesTheBrokerAndItsClientCertificateAndAWrongCaIsRefused) {
  edgeflow::test::TempDir dir;
  TestCa ca(dir.path() / "ca", "edgeflow-test-ca");
  ca.issue("broker", "IP:127.0.0.1,DNS:localhost");
  ca.issue("edge", "DNS:edge");
  TestCa other(dir.path() / "other", "some-other-ca");
  MosquittoServer broker("cafile " + ca.ca_file() + "\ncertfile " + ca.cert("broker") + "\nkeyfile " + ca.key("broker") +
                         "\nrequire_certificate true\n");
  ASSERT_EQ(broker.uri().rfind("mqtts://", 0), 0u);
  std::string tls = "uri: " + broker.uri() + "\nca_file: " + ca.ca_file() + "\ncert_file: " + ca.cert("edge") +
                    "\nkey_file: " + ca.key("edge") + "\n";

  RunningSource<MqttSource> src(tls + "client_id: tls-src\ntopics: [secure/#]\n");
  ASSERT_TRUE(logged(src.harness(), "subscribed to")) << all_logs(src.harness()) << src.error();
  Harness<MqttSink> sink(tls + "topic: secure/a\nqos: 2\n");
  sink.write({Input{.payload = "over tls"}});
  EXPECT_EQ(sink.wait_acks(1).at(0).status, EF_ACK_DELIVERED);
  ASSERT_TRUE(src.harness().wait_emitted(1));
  EXPECT_EQ(src.harness().emitted()[0].payload, "over tls");

  std::string e = start_error<MqttSink>("uri: " + broker.uri() + "\nca_file: " + other.ca_file() + "\ntopic: t\n");
  EXPECT_NE(e.find("TLS handshake with the MQTT broker at 127.0.0.1:" + std::to_string(broker.port()) + " failed"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("the broker's certificate was not accepted"), std::string::npos) << e;
  EXPECT_NE(e.find("check ca_file"), std::string::npos) << e;
  // The right CA, but a name the certificate is not for.
  e = start_error<MqttSink>(tls + "topic: t\nserver_name: broker.example\n");
  EXPECT_NE(e.find("not accepted"), std::string::npos) << e;
  // The broker wants a client certificate.
  e = start_error<MqttSink>("uri: " + broker.uri() + "\nca_file: " + ca.ca_file() + "\ntopic: t\n");
  EXPECT_NE(e.find("failed"), std::string::npos) << e;
}

TEST(MqttConfig, MistakesAreConfigErrorsWithTheirPlaceAndTheFix) {
  auto error = [](const std::string& yaml) {
    try {
      Harness<MqttSource> h(yaml);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  auto e = error("uri: mqtt://b\ntopics:\n  - a/b\n  - a/#/b\n");
  EXPECT_NE(e.find("<harness>:4:5: topics[1]: \"a/#/b\": '#' must be the last level"), std::string::npos) << e;
  e = error("uri: mqtt://b\ntopics: [\"a+/b\"]\n");
  EXPECT_NE(e.find("topics[0]: \"a+/b\": '+' must be a whole level on its own"), std::string::npos) << e;
  e = error("uri: mqtt://b\ntopics: [\"$share/g\"]\n");
  EXPECT_NE(e.find("$share/<group>/<filter>"), std::string::npos) << e;
  e = error("uri: mqtt://b\ntopics: [\"$share/g+/x\"]\n");
  EXPECT_NE(e.find("must not contain '+' or '#'"), std::string::npos) << e;
  e = error("uri: mqtt://b\ntopics: [{ filter: \"$share/g/\", qos: 1 }]\n");
  EXPECT_NE(e.find("topics[0].filter"), std::string::npos) << e;
  e = error("uri: mqtt://b\ntopics: [{ filter: a, qos: 3 }]\n");
  EXPECT_NE(e.find("topics[0].qos: expected 0, 1 or 2"), std::string::npos) << e;
  e = error("uri: http://b\ntopics: [a]\n");
  EXPECT_NE(e.find("<harness>:1:6: uri: \"http://b\": unknown scheme"), std::string::npos) << e;
  e = error("uri: mqtt://b\ntopics: [a]\nca_file: /x.pem\n");
  EXPECT_NE(e.find("use mqtts://"), std::string::npos) << e;
  e = error("uri: mqtt://b:99999\ntopics: [a]\n");
  EXPECT_NE(e.find("not a number from 1 to 65535"), std::string::npos) << e;
  e = error("uri: mqtt://b\ntopics: [a]\nwill_topic: \"status/#\"\n");
  EXPECT_NE(e.find("will_topic: the topic contains the wildcard '#'"), std::string::npos) << e;
  e = error("uri: mqtt://b\ntopics: []\n");
  EXPECT_NE(e.find("expected a list of topic filters"), std::string::npos) << e;
  try {
    Harness<MqttSink> h("uri: mqtt://b\ntopic: t\nprotocol: \"3.1.1\"\nuser_properties: { a: b }\n");
    ADD_FAILURE() << "user_properties with MQTT 3.1.1 accepted";
  } catch (const ConfigError& err) {
    EXPECT_NE(std::string(err.what()).find("set protocol: 5"), std::string::npos) << err.what();
  }
}

}  // namespace
