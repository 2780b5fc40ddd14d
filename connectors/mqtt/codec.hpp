// MQTT 3.1.1 and 5 packets: encoding and defensive decoding, no I/O (unit-tested on its own).
//
// Decoding never trusts the peer: every read is bounds-checked, a variable-length integer has at
// most four bytes, reserved flag bits, QoS 3, unknown property ids, properties in the wrong packet
// and trailing bytes are DecodeErrors. Decoded string_views point into the frame's bytes.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace edgeflow::mqtt {

struct DecodeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class Version : uint8_t { v311 = 4, v5 = 5 };

enum class Type : uint8_t {
  connect = 1,
  connack = 2,
  publish = 3,
  puback = 4,
  pubrec = 5,
  pubrel = 6,
  pubcomp = 7,
  subscribe = 8,
  suback = 9,
  unsubscribe = 10,
  unsuback = 11,
  pingreq = 12,
  pingresp = 13,
  disconnect = 14,
  auth = 15,
};

inline constexpr uint32_t kMaxRemainingLength = 268435455;  // 4-byte variable-length integer

// --- variable-length integers ---------------------------------------------------------------------

inline void put_varint(std::string& out, uint32_t v) {
  if (v > kMaxRemainingLength) throw std::length_error("MQTT variable-length integer over 268435455");
  do {
    uint8_t b = v % 128;
    v /= 128;
    if (v) b |= 0x80;
    out.push_back(char(b));
  } while (v);
}

inline size_t varint_size(uint32_t v) { return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4; }

// Result of reading a variable-length integer from the start of `in`: nullopt when more bytes are
// needed; a DecodeError when it is longer than four bytes.
struct VarInt {
  uint32_t value;
  size_t size;
};
inline std::optional<VarInt> get_varint(std::string_view in) {
  uint32_t v = 0, mult = 1;
  for (size_t i = 0; i < 4; ++i) {
    if (i >= in.size()) return std::nullopt;
    auto b = uint8_t(in[i]);
    v += uint32_t(b & 0x7f) * mult;
    if (!(b & 0x80)) {
      if (i > 0 && b == 0) throw DecodeError("variable-length integer not in its shortest form");
      return VarInt{v, i + 1};
    }
    mult *= 128;
  }
  throw DecodeError("variable-length integer longer than four bytes");
}

// --- frames -----------------------------------------------------------------------------------------

// One packet: the first byte and the body (the remaining length's bytes).
struct Frame {
  uint8_t header = 0;
  std::string_view body;
  Type type() const { return Type(header >> 4); }
  uint8_t flags() const { return header & 0x0f; }
};

// The frame at the start of `in`, and how many bytes it takes; nullopt when incomplete.
// `max_size` bounds the remaining length this side accepts.
inline std::optional<std::pair<Frame, size_t>> next_frame(std::string_view in, uint32_t max_size = kMaxRemainingLength) {
  if (in.empty()) return std::nullopt;
  auto type = uint8_t(in[0]) >> 4;
  if (type == 0) throw DecodeError("packet type 0 is reserved");
  auto len = get_varint(in.substr(1));
  if (!len) return std::nullopt;
  if (len->value > max_size)
    throw DecodeError("packet of " + std::to_string(len->value) + " bytes is over the limit of " + std::to_string(max_size));
  size_t total = 1 + len->size + len->value;
  if (in.size() < total) return std::nullopt;
  return std::pair{Frame{uint8_t(in[0]), in.substr(1 + len->size, len->value)}, total};
}

// --- readers and writers of the basic types ------------------------------------------------------------

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool empty() const { return pos_ >= in_.size(); }
  size_t left() const { return in_.size() - pos_; }
  uint8_t u8() {
    need(1);
    return uint8_t(in_[pos_++]);
  }
  uint16_t u16() {
    need(2);
    uint16_t v = uint16_t(uint8_t(in_[pos_]) << 8 | uint8_t(in_[pos_ + 1]));
    pos_ += 2;
    return v;
  }
  uint32_t u32() {
    need(4);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | uint8_t(in_[pos_ + size_t(i)]);
    pos_ += 4;
    return v;
  }
  uint32_t varint() {
    auto v = get_varint(in_.substr(pos_));
    if (!v) throw DecodeError("truncated variable-length integer");
    pos_ += v->size;
    return v->value;
  }
  // A length-prefixed string or binary data.
  std::string_view bytes() {
    uint16_t n = u16();
    need(n);
    auto s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  std::string_view rest() {
    auto s = in_.substr(pos_);
    pos_ = in_.size();
    return s;
  }
  std::string_view take(size_t n) {
    need(n);
    auto s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  void end(const char* what) const {
    if (!empty()) throw DecodeError(std::string(what) + ": " + std::to_string(left()) + " unexpected bytes at the end");
  }

 private:
  void need(size_t n) const {
    if (in_.size() - pos_ < n) throw DecodeError("truncated packet");
  }
  std::string_view in_;
  size_t pos_ = 0;
};

inline void put_u16(std::string& out, uint16_t v) {
  out.push_back(char(v >> 8));
  out.push_back(char(v & 0xff));
}
inline void put_u32(std::string& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(char((v >> s) & 0xff));
}
inline void put_str(std::string& out, std::string_view s) {
  if (s.size() > 65535) throw std::length_error("MQTT string over 65535 bytes");
  put_u16(out, uint16_t(s.size()));
  out.append(s);
}

// --- MQTT 5 properties ---------------------------------------------------------------------------------

namespace prop {
enum : uint8_t {
  payload_format = 0x01,
  message_expiry = 0x02,
  content_type = 0x03,
  response_topic = 0x08,
  correlation_data = 0x09,
  subscription_id = 0x0B,
  session_expiry = 0x11,
  assigned_client_id = 0x12,
  server_keep_alive = 0x13,
  auth_method = 0x15,
  auth_data = 0x16,
  request_problem_info = 0x17,
  will_delay = 0x18,
  request_response_info = 0x19,
  response_info = 0x1A,
  server_reference = 0x1C,
  reason_string = 0x1F,
  receive_maximum = 0x21,
  topic_alias_maximum = 0x22,
  topic_alias = 0x23,
  maximum_qos = 0x24,
  retain_available = 0x25,
  user_property = 0x26,
  maximum_packet_size = 0x27,
  wildcard_available = 0x28,
  subscription_id_available = 0x29,
  shared_available = 0x2A,
};
}  // namespace prop

enum class PropKind : uint8_t { none, byte, u16, u32, varint, text, binary, pair };

inline PropKind prop_kind(uint8_t id) {
  switch (id) {
    case prop::payload_format: case prop::request_problem_info: case prop::request_response_info:
    case prop::maximum_qos: case prop::retain_available: case prop::wildcard_available:
    case prop::subscription_id_available: case prop::shared_available:
      return PropKind::byte;
    case prop::server_keep_alive: case prop::receive_maximum: case prop::topic_alias_maximum: case prop::topic_alias:
      return PropKind::u16;
    case prop::message_expiry: case prop::session_expiry: case prop::will_delay: case prop::maximum_packet_size:
      return PropKind::u32;
    case prop::subscription_id:
      return PropKind::varint;
    case prop::content_type: case prop::response_topic: case prop::assigned_client_id: case prop::auth_method:
    case prop::response_info: case prop::server_reference: case prop::reason_string:
      return PropKind::text;
    case prop::correlation_data: case prop::auth_data:
      return PropKind::binary;
    case prop::user_property:
      return PropKind::pair;
    default:
      return PropKind::none;
  }
}

struct Property {
  uint8_t id = 0;
  uint32_t number = 0;    // byte, u16, u32, varint kinds
  std::string text;       // text, binary, and a pair's name
  std::string value;      // a pair's value
  bool operator==(const Property&) const = default;
};

// A packet's property list, in wire order (user properties may repeat).
struct Properties {
  std::vector<Property> list;

  bool empty() const { return list.empty(); }
  const Property* find(uint8_t id) const {
    for (auto& p : list)
      if (p.id == id) return &p;
    return nullptr;
  }
  std::optional<uint32_t> number(uint8_t id) const {
    if (auto* p = find(id)) return p->number;
    return std::nullopt;
  }
  std::optional<std::string> text(uint8_t id) const {
    if (auto* p = find(id)) return p->text;
    return std::nullopt;
  }
  Properties& add(uint8_t id, uint32_t n) {
    list.push_back({id, n, {}, {}});
    return *this;
  }
  Properties& add(uint8_t id, std::string t) {
    list.push_back({id, 0, std::move(t), {}});
    return *this;
  }
  Properties& add_user(std::string name, std::string value) {
    list.push_back({prop::user_property, 0, std::move(name), std::move(value)});
    return *this;
  }
  bool operator==(const Properties&) const = default;
};

inline size_t properties_size(const Properties& ps) {
  size_t n = 0;
  for (auto& p : ps.list) {
    n += 1;
    switch (prop_kind(p.id)) {
      case PropKind::byte: n += 1; break;
      case PropKind::u16: n += 2; break;
      case PropKind::u32: n += 4; break;
      case PropKind::varint: n += varint_size(p.number); break;
      case PropKind::text: case PropKind::binary: n += 2 + p.text.size(); break;
      case PropKind::pair: n += 4 + p.text.size() + p.value.size(); break;
      case PropKind::none: throw std::invalid_argument("unknown MQTT property id " + std::to_string(p.id));
    }
  }
  return n;
}

// The property block (length first); written only for MQTT 5.
inline void put_properties(std::string& out, const Properties& ps) {
  put_varint(out, uint32_t(properties_size(ps)));
  for (auto& p : ps.list) {
    out.push_back(char(p.id));
    switch (prop_kind(p.id)) {
      case PropKind::byte: out.push_back(char(p.number)); break;
      case PropKind::u16: put_u16(out, uint16_t(p.number)); break;
      case PropKind::u32: put_u32(out, p.number); break;
      case PropKind::varint: put_varint(out, p.number); break;
      case PropKind::text: case PropKind::binary: put_str(out, p.text); break;
      case PropKind::pair: put_str(out, p.text); put_str(out, p.value); break;
      case PropKind::none: break;
    }
  }
}

inline Properties get_properties(Reader& r, const char* packet) {
  uint32_t len = r.varint();
  Reader pr(r.take(len));
  Properties ps;
  while (!pr.empty()) {
    Property p;
    p.id = pr.u8();
    switch (prop_kind(p.id)) {
      case PropKind::byte: p.number = pr.u8(); break;
      case PropKind::u16: p.number = pr.u16(); break;
      case PropKind::u32: p.number = pr.u32(); break;
      case PropKind::varint: p.number = pr.varint(); break;
      case PropKind::text: case PropKind::binary: p.text = std::string(pr.bytes()); break;
      case PropKind::pair:
        p.text = std::string(pr.bytes());
        p.value = std::string(pr.bytes());
        break;
      case PropKind::none:
        throw DecodeError(std::string(packet) + ": unknown property id 0x" + "0123456789abcdef"[p.id >> 4] +
                          "0123456789abcdef"[p.id & 15]);
    }
    if (p.id != prop::user_property && p.id != prop::subscription_id)
      for (auto& q : ps.list)
        if (q.id == p.id) throw DecodeError(std::string(packet) + ": property " + std::to_string(p.id) + " twice");
    ps.list.push_back(std::move(p));
  }
  return ps;
}

// Writes the fixed header, then the body.
inline void put_packet(std::string& out, uint8_t header, std::string_view body) {
  out.push_back(char(header));
  put_varint(out, uint32_t(body.size()));
  out.append(body);
}

inline void expect_flags(const Frame& f, uint8_t want, const char* what) {
  if (f.flags() != want) throw DecodeError(std::string(what) + ": reserved flags " + std::to_string(f.flags()));
}

// --- CONNECT / CONNACK -----------------------------------------------------------------------------------

struct Will {
  std::string topic;
  std::string payload;
  uint8_t qos = 0;
  bool retain = false;
  Properties props;
  bool operator==(const Will&) const = default;
};

struct Connect {
  Version version = Version::v5;
  std::string client_id;
  bool clean_start = true;
  uint16_t keep_alive = 60;
  Properties props;
  std::optional<Will> will;
  std::optional<std::string> username;
  std::optional<std::string> password;
  bool operator==(const Connect&) const = default;
};

inline void encode(std::string& out, const Connect& c) {
  std::string b;
  put_str(b, "MQTT");
  b.push_back(char(c.version));
  uint8_t flags = c.clean_start ? 0x02 : 0;
  if (c.will) flags |= uint8_t(0x04 | (c.will->qos << 3) | (c.will->retain ? 0x20 : 0));
  if (c.password) flags |= 0x40;
  if (c.username) flags |= 0x80;
  b.push_back(char(flags));
  put_u16(b, c.keep_alive);
  if (c.version == Version::v5) put_properties(b, c.props);
  put_str(b, c.client_id);
  if (c.will) {
    if (c.version == Version::v5) put_properties(b, c.will->props);
    put_str(b, c.will->topic);
    put_str(b, c.will->payload);
  }
  if (c.username) put_str(b, *c.username);
  if (c.password) put_str(b, *c.password);
  put_packet(out, uint8_t(Type::connect) << 4, b);
}

inline Connect decode_connect(const Frame& f) {
  expect_flags(f, 0, "CONNECT");
  Reader r(f.body);
  if (r.bytes() != "MQTT") throw DecodeError("CONNECT: protocol name is not MQTT");
  uint8_t level = r.u8();
  if (level != 4 && level != 5) throw DecodeError("CONNECT: unsupported protocol level " + std::to_string(level));
  Connect c;
  c.version = Version(level);
  uint8_t flags = r.u8();
  if (flags & 0x01) throw DecodeError("CONNECT: reserved flag set");
  c.clean_start = flags & 0x02;
  bool will = flags & 0x04;
  uint8_t will_qos = (flags >> 3) & 3;
  if (will_qos == 3 || (!will && (will_qos || (flags & 0x20)))) throw DecodeError("CONNECT: bad will flags");
  c.keep_alive = r.u16();
  if (c.version == Version::v5) c.props = get_properties(r, "CONNECT");
  c.client_id = std::string(r.bytes());
  if (will) {
    Will w;
    w.qos = will_qos;
    w.retain = flags & 0x20;
    if (c.version == Version::v5) w.props = get_properties(r, "CONNECT will");
    w.topic = std::string(r.bytes());
    w.payload = std::string(r.bytes());
    c.will = std::move(w);
  }
  if (flags & 0x80) c.username = std::string(r.bytes());
  if (flags & 0x40) c.password = std::string(r.bytes());
  r.end("CONNECT");
  return c;
}

struct Connack {
  bool session_present = false;
  uint8_t reason = 0;  // 3.1.1: the return code
  Properties props;
  bool operator==(const Connack&) const = default;
};

inline void encode(std::string& out, const Connack& c, Version v) {
  std::string b;
  b.push_back(char(c.session_present ? 1 : 0));
  b.push_back(char(c.reason));
  if (v == Version::v5) put_properties(b, c.props);
  put_packet(out, uint8_t(Type::connack) << 4, b);
}

inline Connack decode_connack(const Frame& f, Version v) {
  expect_flags(f, 0, "CONNACK");
  Reader r(f.body);
  Connack c;
  uint8_t ack_flags = r.u8();
  if (ack_flags & 0xfe) throw DecodeError("CONNACK: reserved acknowledge flags set");
  c.session_present = ack_flags & 1;
  c.reason = r.u8();
  if (v == Version::v5 && !r.empty()) c.props = get_properties(r, "CONNACK");
  r.end("CONNACK");
  return c;
}

// --- PUBLISH -----------------------------------------------------------------------------------------------

struct Publish {
  std::string_view topic;
  std::string_view payload;
  uint8_t qos = 0;
  bool retain = false;
  bool dup = false;
  uint16_t packet_id = 0;
  Properties props;
};

// Appends a PUBLISH; `props` (MQTT 5 only) may be null for none.
inline void encode_publish(std::string& out, Version v, std::string_view topic, std::string_view payload, uint8_t qos,
                           bool retain, bool dup, uint16_t packet_id, const Properties* props = nullptr) {
  size_t props_len = v == Version::v5 && props ? properties_size(*props) : 0;
  size_t len = 2 + topic.size() + (qos ? 2 : 0) + payload.size() +
               (v == Version::v5 ? varint_size(uint32_t(props_len)) + props_len : 0);
  if (len > kMaxRemainingLength) throw std::length_error("MQTT PUBLISH over 268435455 bytes");
  out.push_back(char(uint8_t(Type::publish) << 4 | (dup ? 8 : 0) | qos << 1 | (retain ? 1 : 0)));
  put_varint(out, uint32_t(len));
  put_str(out, topic);
  if (qos) put_u16(out, packet_id);
  if (v == Version::v5) {
    if (props) put_properties(out, *props);
    else out.push_back(0);
  }
  out.append(payload);
}

// The size encode_publish writes.
inline size_t publish_size(Version v, size_t topic, size_t payload, uint8_t qos, const Properties* props) {
  size_t props_len = v == Version::v5 && props ? properties_size(*props) : 0;
  size_t len = 2 + topic + (qos ? 2 : 0) + payload + (v == Version::v5 ? varint_size(uint32_t(props_len)) + props_len : 0);
  return 1 + varint_size(uint32_t(std::min<size_t>(len, kMaxRemainingLength))) + len;
}

inline Publish decode_publish(const Frame& f, Version v) {
  Publish p;
  p.qos = (f.flags() >> 1) & 3;
  if (p.qos == 3) throw DecodeError("PUBLISH: QoS 3");
  p.dup = f.flags() & 8;
  p.retain = f.flags() & 1;
  if (p.qos == 0 && p.dup) throw DecodeError("PUBLISH: DUP set on a QoS 0 message");
  Reader r(f.body);
  p.topic = r.bytes();
  if (p.qos) {
    p.packet_id = r.u16();
    if (p.packet_id == 0) throw DecodeError("PUBLISH: packet identifier 0");
  }
  if (v == Version::v5) p.props = get_properties(r, "PUBLISH");
  p.payload = r.rest();
  return p;
}

// --- PUBACK, PUBREC, PUBREL, PUBCOMP -----------------------------------------------------------------------

struct Ack {
  Type type = Type::puback;
  uint16_t packet_id = 0;
  uint8_t reason = 0;  // MQTT 5
  Properties props;    // MQTT 5
  bool operator==(const Ack&) const = default;
};

inline void encode(std::string& out, const Ack& a, Version v) {
  out.push_back(char(uint8_t(a.type) << 4 | (a.type == Type::pubrel ? 2 : 0)));
  bool full = v == Version::v5 && !a.props.empty();
  bool with_reason = v == Version::v5 && (a.reason || full);
  size_t plen = full ? properties_size(a.props) : 0;
  put_varint(out, uint32_t(2 + (with_reason ? 1 : 0) + (full ? varint_size(uint32_t(plen)) + plen : 0)));
  put_u16(out, a.packet_id);
  if (with_reason) out.push_back(char(a.reason));
  if (full) put_properties(out, a.props);
}

inline Ack decode_ack(const Frame& f, Version v) {
  Ack a;
  a.type = f.type();
  expect_flags(f, a.type == Type::pubrel ? 2 : 0, "acknowledgement");
  Reader r(f.body);
  a.packet_id = r.u16();
  if (a.packet_id == 0) throw DecodeError("acknowledgement of packet identifier 0");
  if (v == Version::v5) {
    if (!r.empty()) a.reason = r.u8();
    if (!r.empty()) a.props = get_properties(r, "acknowledgement");
  }
  r.end("acknowledgement");
  return a;
}

// --- SUBSCRIBE / SUBACK / UNSUBSCRIBE / UNSUBACK -----------------------------------------------------------

struct Subscription {
  std::string filter;
  uint8_t options = 0;  // bits 0-1 QoS; MQTT 5: 2 no local, 3 retain as published, 4-5 retain handling
  bool operator==(const Subscription&) const = default;
};

struct Subscribe {
  uint16_t packet_id = 0;
  Properties props;
  std::vector<Subscription> topics;
  bool operator==(const Subscribe&) const = default;
};

inline void encode(std::string& out, const Subscribe& s, Version v) {
  std::string b;
  put_u16(b, s.packet_id);
  if (v == Version::v5) put_properties(b, s.props);
  for (auto& t : s.topics) {
    put_str(b, t.filter);
    b.push_back(char(v == Version::v5 ? t.options : t.options & 3));
  }
  put_packet(out, uint8_t(Type::subscribe) << 4 | 2, b);
}

inline Subscribe decode_subscribe(const Frame& f, Version v) {
  expect_flags(f, 2, "SUBSCRIBE");
  Reader r(f.body);
  Subscribe s;
  s.packet_id = r.u16();
  if (v == Version::v5) s.props = get_properties(r, "SUBSCRIBE");
  while (!r.empty()) {
    Subscription t;
    t.filter = std::string(r.bytes());
    t.options = r.u8();
    if ((t.options & 3) == 3 || (v == Version::v5 ? (t.options & 0xc0) || (t.options >> 4 & 3) == 3 : t.options & 0xfc))
      throw DecodeError("SUBSCRIBE: bad subscription options");
    s.topics.push_back(std::move(t));
  }
  if (s.topics.empty()) throw DecodeError("SUBSCRIBE without a topic filter");
  return s;
}

// SUBACK and UNSUBACK (3.1.1's UNSUBACK has no reason codes).
struct Suback {
  Type type = Type::suback;
  uint16_t packet_id = 0;
  Properties props;
  std::vector<uint8_t> reasons;
  bool operator==(const Suback&) const = default;
};

inline void encode(std::string& out, const Suback& s, Version v) {
  std::string b;
  put_u16(b, s.packet_id);
  if (v == Version::v5) put_properties(b, s.props);
  if (v == Version::v5 || s.type == Type::suback)
    for (uint8_t c : s.reasons) b.push_back(char(c));
  put_packet(out, uint8_t(s.type) << 4, b);
}

inline Suback decode_suback(const Frame& f, Version v) {
  expect_flags(f, 0, "SUBACK");
  Reader r(f.body);
  Suback s;
  s.type = f.type();
  s.packet_id = r.u16();
  if (v == Version::v5) s.props = get_properties(r, "SUBACK");
  while (!r.empty()) s.reasons.push_back(r.u8());
  if (s.type == Type::suback && s.reasons.empty()) throw DecodeError("SUBACK without a return code");
  return s;
}

struct Unsubscribe {
  uint16_t packet_id = 0;
  Properties props;
  std::vector<std::string> filters;
  bool operator==(const Unsubscribe&) const = default;
};

inline void encode(std::string& out, const Unsubscribe& u, Version v) {
  std::string b;
  put_u16(b, u.packet_id);
  if (v == Version::v5) put_properties(b, u.props);
  for (auto& t : u.filters) put_str(b, t);
  put_packet(out, uint8_t(Type::unsubscribe) << 4 | 2, b);
}

inline Unsubscribe decode_unsubscribe(const Frame& f, Version v) {
  expect_flags(f, 2, "UNSUBSCRIBE");
  Reader r(f.body);
  Unsubscribe u;
  u.packet_id = r.u16();
  if (v == Version::v5) u.props = get_properties(r, "UNSUBSCRIBE");
  while (!r.empty()) u.filters.emplace_back(r.bytes());
  if (u.filters.empty()) throw DecodeError("UNSUBSCRIBE without a topic filter");
  return u;
}

// --- PINGREQ, PINGRESP, DISCONNECT, AUTH -------------------------------------------------------------------

inline void encode_ping(std::string& out, Type t) {
  out.push_back(char(uint8_t(t) << 4));
  out.push_back(0);
}

inline void decode_ping(const Frame& f) {
  expect_flags(f, 0, "PING");
  if (!f.body.empty()) throw DecodeError("PING with a body");
}

// DISCONNECT (3.1.1: always empty) and AUTH (MQTT 5 only).
struct Disconnect {
  Type type = Type::disconnect;
  uint8_t reason = 0;
  Properties props;
  bool operator==(const Disconnect&) const = default;
};

inline void encode(std::string& out, const Disconnect& d, Version v) {
  std::string b;
  if (v == Version::v5 && (d.reason || !d.props.empty())) {
    b.push_back(char(d.reason));
    if (!d.props.empty()) put_properties(b, d.props);
  }
  put_packet(out, uint8_t(d.type) << 4, b);
}

inline Disconnect decode_disconnect(const Frame& f, Version v) {
  expect_flags(f, 0, "DISCONNECT");
  Disconnect d;
  d.type = f.type();
  if (d.type == Type::auth && v != Version::v5) throw DecodeError("AUTH in MQTT 3.1.1");
  Reader r(f.body);
  if (v == Version::v5) {
    if (!r.empty()) d.reason = r.u8();
    if (!r.empty()) d.props = get_properties(r, "DISCONNECT");
  }
  r.end("DISCONNECT");
  return d;
}

// --- reason codes -------------------------------------------------------------------------------------------

// MQTT 5 reason code text (the spec's names).
inline std::string reason_text(uint8_t code) {
  switch (code) {
    case 0x00: return "Success";
    case 0x04: return "Disconnect with will message";
    case 0x10: return "No matching subscribers";
    case 0x80: return "Unspecified error";
    case 0x81: return "Malformed packet";
    case 0x82: return "Protocol error";
    case 0x83: return "Implementation specific error";
    case 0x84: return "Unsupported protocol version";
    case 0x85: return "Client identifier not valid";
    case 0x86: return "Bad user name or password";
    case 0x87: return "Not authorized";
    case 0x88: return "Server unavailable";
    case 0x89: return "Server busy";
    case 0x8A: return "Banned";
    case 0x8B: return "Server shutting down";
    case 0x8C: return "Bad authentication method";
    case 0x8D: return "Keep alive timeout";
    case 0x8E: return "Session taken over";
    case 0x8F: return "Topic filter invalid";
    case 0x90: return "Topic name invalid";
    case 0x91: return "Packet identifier in use";
    case 0x92: return "Packet identifier not found";
    case 0x93: return "Receive maximum exceeded";
    case 0x94: return "Topic alias invalid";
    case 0x95: return "Packet too large";
    case 0x96: return "Message rate too high";
    case 0x97: return "Quota exceeded";
    case 0x98: return "Administrative action";
    case 0x99: return "Payload format invalid";
    case 0x9A: return "Retain not supported";
    case 0x9B: return "QoS not supported";
    case 0x9C: return "Use another server";
    case 0x9D: return "Server moved";
    case 0x9E: return "Shared subscriptions not supported";
    case 0x9F: return "Connection rate exceeded";
    case 0xA0: return "Maximum connect time";
    case 0xA1: return "Subscription identifiers not supported";
    case 0xA2: return "Wildcard subscriptions not supported";
    default: return "reason code " + std::to_string(code);
  }
}

// MQTT 3.1.1 CONNACK return codes, mapped to the MQTT 5 reason with the same meaning.
inline uint8_t v5_connack_reason(uint8_t v311_code) {
  switch (v311_code) {
    case 0: return 0;
    case 1: return 0x84;
    case 2: return 0x85;
    case 3: return 0x88;
    case 4: return 0x86;
    case 5: return 0x87;
    default: return 0x80;
  }
}

}  // namespace edgeflow::mqtt
