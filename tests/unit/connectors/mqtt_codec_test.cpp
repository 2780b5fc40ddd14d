// The MQTT codec (connectors/mqtt/codec.hpp) and topic rules (topic.hpp): every packet type
// encoded and decoded again in both protocol versions, bytes checked against the spec's examples,
// variable-length integers at their edges, MQTT 5 properties, and malformed input refused.
#include "codec.hpp"
#include "topic.hpp"

#include <gtest/gtest.h>

using namespace edgeflow::mqtt;

namespace {

Frame frame_of(const std::string& bytes) {
  auto f = next_frame(bytes);
  EXPECT_TRUE(f.has_value());
  EXPECT_EQ(f->second, bytes.size());
  return f->first;
}

std::string hex(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    char b[4];
    std::snprintf(b, sizeof b, "%02x", c);
    out += b;
  }
  return out;
}

class Versions : public ::testing::TestWithParam<Version> {};
INSTANTIATE_TEST_SUITE_P(Mqtt, Versions, ::testing::Values(Version::v311, Version::v5),
                         [](const auto& i) { return std::string(i.param == Version::v5 ? "V5" : "V311"); });

TEST(MqttVarint, EdgesOfEachLengthAndTheLimit) {
  for (uint32_t v : {0u, 127u, 128u, 16383u, 16384u, 2097151u, 2097152u, 268435455u}) {
    std::string s;
    put_varint(s, v);
    EXPECT_EQ(s.size(), varint_size(v)) << v;
    auto back = get_varint(s);
    ASSERT_TRUE(back) << v;
    EXPECT_EQ(back->value, v);
    EXPECT_EQ(back->size, s.size());
    EXPECT_FALSE(get_varint(s.substr(0, s.size() - 1))) << "incomplete " << v;
  }
  std::string s;
  put_varint(s, 321);
  EXPECT_EQ(hex(s), "c102");  // the spec's example
  EXPECT_THROW(put_varint(s, 268435456u), std::length_error);
  EXPECT_THROW(get_varint(std::string("\xff\xff\xff\xff\x01", 5)), DecodeError);
  EXPECT_THROW(get_varint(std::string("\x80\x00", 2)), DecodeError);  // not the shortest form
}

TEST(MqttFrame, IncompleteFramesWaitAndOversizedOnesAreRefused) {
  std::string bytes;
  encode_publish(bytes, Version::v311, "a/b", std::string(300, 'x'), 1, false, false, 7);
  for (size_t cut = 0; cut < bytes.size(); ++cut) EXPECT_FALSE(next_frame(std::string_view(bytes).substr(0, cut))) << cut;
  EXPECT_TRUE(next_frame(bytes));
  EXPECT_THROW(next_frame(bytes, 100), DecodeError);
  EXPECT_THROW(next_frame(std::string("\x00\x00", 2)), DecodeError);
}

TEST_P(Versions, ConnectRoundTripsWithWillCredentialsAndProperties) {
  Connect c;
  c.version = GetParam();
  c.client_id = "edge-7";
  c.clean_start = false;
  c.keep_alive = 30;
  c.will = Will{"status/edge-7", "offline", 1, true, {}};
  c.username = "user";
  c.password = std::string("p\0w", 3);
  if (GetParam() == Version::v5) {
    c.props.add(prop::session_expiry, 86400).add(prop::receive_maximum, 10000);
    c.will->props.add(prop::will_delay, 5).add_user("k", "v");
  }
  std::string bytes;
  encode(bytes, c);
  Frame f = frame_of(bytes);
  EXPECT_EQ(f.type(), Type::connect);
  EXPECT_EQ(decode_connect(f), c);
  // Fixed part: MQTT, the level, flags (user, password, will retain, will QoS 1, will; no clean start).
  EXPECT_EQ(hex(bytes.substr(2, 8)), std::string("00044d515454") + (GetParam() == Version::v5 ? "05" : "04") + "ec");
}

TEST(MqttConnect, BadFlagsAndProtocolsAreRefused) {
  Connect c;
  std::string bytes;
  encode(bytes, c);
  std::string reserved = bytes;
  reserved[9] = char(reserved[9] | 1);
  EXPECT_THROW(decode_connect(frame_of(reserved)), DecodeError);
  std::string level = bytes;
  level[8] = 3;
  EXPECT_THROW(decode_connect(frame_of(level)), DecodeError);
  std::string name = bytes;
  name[4] = 'X';
  EXPECT_THROW(decode_connect(frame_of(name)), DecodeError);
}

TEST_P(Versions, ConnackRoundTrips) {
  Connack a{true, 0, {}};
  if (GetParam() == Version::v5) a.props.add(prop::receive_maximum, 20).add(prop::maximum_packet_size, 1 << 20).add(prop::reason_string, "fine");
  std::string bytes;
  encode(bytes, a, GetParam());
  EXPECT_EQ(decode_connack(frame_of(bytes), GetParam()), a);
  std::string bad = bytes;
  bad[2] = 2;  // reserved acknowledge flag
  EXPECT_THROW(decode_connack(frame_of(bad), GetParam()), DecodeError);
}

TEST_P(Versions, PublishRoundTripsAtEveryQos) {
  Properties props;
  if (GetParam() == Version::v5)
    props.add(prop::content_type, "application/json").add_user("trace", "t1").add_user("trace", "t2").add(prop::message_expiry, 60);
  for (uint8_t qos = 0; qos <= 2; ++qos) {
    std::string bytes;
    encode_publish(bytes, GetParam(), "plant/7/temp", "{\"t\":21.5}", qos, qos == 1, qos == 2, qos ? 513 : 0,
                   GetParam() == Version::v5 ? &props : nullptr);
    EXPECT_EQ(bytes.size(), publish_size(GetParam(), 12, 10, qos, GetParam() == Version::v5 ? &props : nullptr));
    Publish p = decode_publish(frame_of(bytes), GetParam());
    EXPECT_EQ(p.topic, "plant/7/temp");
    EXPECT_EQ(p.payload, "{\"t\":21.5}");
    EXPECT_EQ(p.qos, qos);
    EXPECT_EQ(p.retain, qos == 1);
    EXPECT_EQ(p.dup, qos == 2);
    EXPECT_EQ(p.packet_id, qos ? 513 : 0);
    if (GetParam() == Version::v5) {
      EXPECT_EQ(p.props, props);
    }
  }
}

TEST(MqttPublish, MalformedOnesAreRefused) {
  std::string bytes;
  encode_publish(bytes, Version::v311, "t", "x", 1, false, false, 1);
  std::string qos3 = bytes;
  qos3[0] = char(0x36);
  EXPECT_THROW(decode_publish(frame_of(qos3), Version::v311), DecodeError);
  std::string id0 = bytes;
  id0[6] = 0;
  EXPECT_THROW(decode_publish(frame_of(id0), Version::v311), DecodeError);
  std::string dup0;
  encode_publish(dup0, Version::v311, "t", "x", 0, false, false, 0);
  dup0[0] = char(dup0[0] | 8);
  EXPECT_THROW(decode_publish(frame_of(dup0), Version::v311), DecodeError);
  std::string topic_too_long = bytes;
  topic_too_long[3] = 50;  // topic length past the end
  EXPECT_THROW(decode_publish(frame_of(topic_too_long), Version::v311), DecodeError);
  // MQTT 5: a property block longer than the packet, an unknown property, one that must not repeat.
  std::string v5;
  encode_publish(v5, Version::v5, "t", "x", 0, false, false, 0);
  std::string long_props = v5;
  long_props[5] = 9;
  EXPECT_THROW(decode_publish(frame_of(long_props), Version::v5), DecodeError);
  std::string unknown = v5;
  unknown[5] = 2;
  unknown.insert(6, std::string("\x7f\x00", 2));
  unknown[1] = char(unknown.size() - 2);
  EXPECT_THROW(decode_publish(frame_of(unknown), Version::v5), DecodeError);
  std::string twice;
  Properties p;
  p.add(prop::content_type, "a").add(prop::content_type, "b");
  encode_publish(twice, Version::v5, "t", "x", 0, false, false, 0, &p);
  EXPECT_THROW(decode_publish(frame_of(twice), Version::v5), DecodeError);
}

TEST_P(Versions, AcknowledgementsRoundTrip) {
  for (Type t : {Type::puback, Type::pubrec, Type::pubrel, Type::pubcomp}) {
    Ack a{t, 4242, 0, {}};
    std::string bytes;
    encode(bytes, a, GetParam());
    EXPECT_EQ(bytes.size(), 4u);  // the short form: reason 0 and no properties are left out
    EXPECT_EQ(decode_ack(frame_of(bytes), GetParam()), a);
    if (GetParam() == Version::v5) {
      Ack b{t, 7, 0x87, {}};
      b.props.add(prop::reason_string, "no");
      bytes.clear();
      encode(bytes, b, GetParam());
      EXPECT_EQ(decode_ack(frame_of(bytes), GetParam()), b);
    }
  }
  std::string rel;
  encode(rel, Ack{Type::pubrel, 1, 0, {}}, GetParam());
  EXPECT_EQ(uint8_t(rel[0]), 0x62);
  rel[0] = 0x60;  // PUBREL's flags must be 0010
  EXPECT_THROW(decode_ack(frame_of(rel), GetParam()), DecodeError);
  std::string extra;
  encode(extra, Ack{Type::puback, 1, 0, {}}, Version::v311);
  extra[1] = 3;
  extra.push_back(0);
  EXPECT_THROW(decode_ack(frame_of(extra), Version::v311), DecodeError);
}

TEST_P(Versions, SubscribeSubackUnsubscribeUnsubackRoundTrip) {
  Subscribe s{10, {}, {{"plant/+/temp", 1}, {"$share/edge/alarms/#", 2}}};
  if (GetParam() == Version::v5) {
    s.topics[0].options |= 0x10;  // retain handling 1
    s.props.add(prop::subscription_id, 300);
  }
  std::string bytes;
  encode(bytes, s, GetParam());
  EXPECT_EQ(uint8_t(bytes[0]), 0x82);
  EXPECT_EQ(decode_subscribe(frame_of(bytes), GetParam()), s);

  Suback a{Type::suback, 10, {}, {1, 0x80}};
  bytes.clear();
  encode(bytes, a, GetParam());
  EXPECT_EQ(decode_suback(frame_of(bytes), GetParam()), a);

  Unsubscribe u{11, {}, {"plant/+/temp"}};
  bytes.clear();
  encode(bytes, u, GetParam());
  EXPECT_EQ(decode_unsubscribe(frame_of(bytes), GetParam()), u);

  Suback ua{Type::unsuback, 11, {}, {}};
  if (GetParam() == Version::v5) ua.reasons = {0x11};
  bytes.clear();
  encode(bytes, ua, GetParam());
  EXPECT_EQ(decode_suback(frame_of(bytes), GetParam()), ua);

  std::string empty;
  encode(empty, Subscribe{12, {}, {}}, GetParam());
  EXPECT_THROW(decode_subscribe(frame_of(empty), GetParam()), DecodeError);
  std::string qos3;
  encode(qos3, Subscribe{12, {}, {{"a", 3}}}, GetParam());
  EXPECT_THROW(decode_subscribe(frame_of(qos3), GetParam()), DecodeError);
}

TEST_P(Versions, PingDisconnectAndAuth) {
  for (Type t : {Type::pingreq, Type::pingresp}) {
    std::string bytes;
    encode_ping(bytes, t);
    EXPECT_EQ(hex(bytes), t == Type::pingreq ? "c000" : "d000");
    decode_ping(frame_of(bytes));
  }
  EXPECT_THROW(decode_ping(frame_of(std::string("\xc0\x01\x00", 3))), DecodeError);
  Disconnect d;
  if (GetParam() == Version::v5) {
    d.reason = 0x8E;
    d.props.add(prop::reason_string, "taken over");
  }
  std::string bytes;
  encode(bytes, d, GetParam());
  EXPECT_EQ(decode_disconnect(frame_of(bytes), GetParam()), d);
  Disconnect auth{Type::auth, 0x18, {}};
  auth.props.add(prop::auth_method, "SCRAM-SHA-1").add(prop::auth_data, std::string("\x01\x02", 2));
  bytes.clear();
  encode(bytes, auth, Version::v5);
  if (GetParam() == Version::v5) {
    EXPECT_EQ(decode_disconnect(frame_of(bytes), Version::v5), auth);
  } else {
    EXPECT_THROW(decode_disconnect(frame_of(bytes), Version::v311), DecodeError);
  }
}

TEST(MqttProperties, EveryKindRoundTrips) {
  Properties ps;
  ps.add(prop::payload_format, 1)
      .add(prop::server_keep_alive, 65535)
      .add(prop::session_expiry, 0xffffffffu)
      .add(prop::subscription_id, 268435455)
      .add(prop::response_topic, "reply/7")
      .add(prop::correlation_data, std::string("\x00\xff", 2))
      .add_user("", "")
      .add_user("name", "value");
  std::string body;
  put_properties(body, ps);
  Reader r(body);
  EXPECT_EQ(get_properties(r, "test"), ps);
  EXPECT_TRUE(r.empty());
  EXPECT_EQ(ps.number(prop::session_expiry), 0xffffffffu);
  EXPECT_EQ(ps.text(prop::response_topic), "reply/7");
  EXPECT_FALSE(ps.number(prop::receive_maximum));
}

TEST(MqttTopics, NamesAndFilters) {
  EXPECT_FALSE(topic_name_problem("plant/7/temp"));
  EXPECT_FALSE(topic_name_problem("/"));
  EXPECT_FALSE(topic_name_problem("caf\xc3\xa9/\xf0\x9f\x8c\xa1"));
  EXPECT_TRUE(topic_name_problem(""));
  EXPECT_TRUE(topic_name_problem("a/+"));
  EXPECT_TRUE(topic_name_problem("a/#"));
  EXPECT_TRUE(topic_name_problem(std::string("a\0b", 3)));
  EXPECT_TRUE(topic_name_problem("a\x01"));
  EXPECT_TRUE(topic_name_problem("a\xc2\x85"));            // U+0085, a C1 control
  EXPECT_TRUE(topic_name_problem("\xff"));                 // not UTF-8
  EXPECT_TRUE(topic_name_problem("\xc0\xaf"));             // overlong '/'
  EXPECT_TRUE(topic_name_problem("\xed\xa0\x80"));         // a surrogate
  EXPECT_TRUE(topic_name_problem("\xef\xbf\xbf"));         // U+FFFF
  EXPECT_TRUE(topic_name_problem("\xe2\x82"));             // truncated
  EXPECT_TRUE(topic_name_problem(std::string(65536, 'a')));
  EXPECT_FALSE(topic_name_problem(std::string(65535, 'a')));

  for (const char* ok : {"#", "+", "a/#", "+/+/c", "/+", "a//b", "$share/g/a/#", "$share/g/+", "$SYS/#"})
    EXPECT_FALSE(topic_filter_problem(ok)) << ok;
  for (const char* bad : {"", "a/#/b", "a#", "a/b#", "a+", "a/+b", "$share/g", "$share//a", "$share/g/", "$share/g+/a",
                          "$share/#/a"})
    EXPECT_TRUE(topic_filter_problem(bad)) << bad;
}

TEST(MqttReasons, NamesAndThe311Mapping) {
  EXPECT_EQ(reason_text(0x86), "Bad user name or password");
  EXPECT_EQ(reason_text(0x8E), "Session taken over");
  EXPECT_EQ(reason_text(0x42), "reason code 66");
  EXPECT_EQ(v5_connack_reason(4), 0x86);
  EXPECT_EQ(v5_connack_reason(5), 0x87);
  EXPECT_EQ(v5_connack_reason(1), 0x84);
}

}  // namespace
