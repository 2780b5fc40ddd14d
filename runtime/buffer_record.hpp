// A message as a durable buffer record: what a sink needs to receive it again after the process
// is gone (payload, key, content type, timestamp, headers, meta), in a versioned binary form.
//
//   u8 version (1) | i64 timestamp_ms | str key | str content_type |
//   u32 n, n x (str name, str value) headers | u32 n, n x (str, str) meta | str payload
//   str: u32 length, then the bytes; integers little-endian.
//
// The bytes come back from a disk: decode() checks every length against what is left, bounds the
// pair counts, and refuses trailing bytes, saying where and why (tests/fuzz/fuzz_buffer_record).
#pragma once

#include <edgeflow/host/message.hpp>

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace edgeflow::buffer {

inline constexpr uint8_t kRecordVersion = 1;
inline constexpr uint32_t kMaxPairs = 65536;  // headers or meta entries in one record

namespace detail {

inline void put_u32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(char(v >> (8 * i) & 0xFF));
}
inline void put_str(std::string& out, std::string_view s) {
  put_u32(out, uint32_t(s.size()));
  out.append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(uint8_t& v) {
    if (!need(1, "a version byte")) return false;
    v = uint8_t(in_[at_++]);
    return true;
  }
  bool u32(uint32_t& v, const char* what) {
    if (!need(4, what)) return false;
    v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(in_[at_ + size_t(i)])) << (8 * i);
    at_ += 4;
    return true;
  }
  bool i64(int64_t& v) {
    if (!need(8, "the timestamp")) return false;
    uint64_t u = 0;
    for (int i = 0; i < 8; ++i) u |= uint64_t(uint8_t(in_[at_ + size_t(i)])) << (8 * i);
    std::memcpy(&v, &u, sizeof v);
    at_ += 8;
    return true;
  }
  bool str(std::string& s, const char* what) {
    uint32_t n = 0;
    if (!u32(n, what) || !need(n, what)) return false;
    s.assign(in_.data() + at_, n);
    at_ += n;
    return true;
  }
  bool pairs(std::vector<std::pair<std::string, std::string>>& out, const char* what) {
    uint32_t n = 0;
    if (!u32(n, what)) return false;
    if (n > kMaxPairs) return fail(std::string(what) + ": " + std::to_string(n) + " entries, more than " + std::to_string(kMaxPairs));
    // Each entry takes at least 8 bytes: a count the rest cannot hold is refused before anything is reserved.
    if (uint64_t(n) * 8 > in_.size() - at_) return fail(std::string(what) + ": " + std::to_string(n) + " entries do not fit");
    out.clear();
    for (uint32_t i = 0; i < n; ++i) {
      std::string k, v;
      if (!str(k, what) || !str(v, what)) return false;
      out.emplace_back(std::move(k), std::move(v));
    }
    return true;
  }
  bool end() { return at_ == in_.size() || fail(std::to_string(in_.size() - at_) + " bytes after the payload"); }
  const std::string& error() const { return error_; }

 private:
  bool need(uint64_t n, const char* what) {
    if (n <= in_.size() - at_) return true;
    return fail(std::string(what) + " runs past the end (byte " + std::to_string(at_) + " of " + std::to_string(in_.size()) + ")");
  }
  bool fail(std::string why) {
    if (error_.empty()) error_ = std::move(why);
    return false;
  }
  std::string_view in_;
  size_t at_ = 0;
  std::string error_;
};

}  // namespace detail

// Appends m's record to out (a buffer reused across messages allocates once per batch).
inline void encode_into(std::string& out, host::Message& m) {
  const std::string& payload = m.payload_bytes();
  out.reserve(out.size() + 64 + m.key.size() + m.content_type.size() + payload.size());
  out.push_back(char(kRecordVersion));
  uint64_t ts = 0;
  std::memcpy(&ts, &m.timestamp_ms, sizeof ts);
  for (int i = 0; i < 8; ++i) out.push_back(char(ts >> (8 * i) & 0xFF));
  detail::put_str(out, m.key);
  detail::put_str(out, m.content_type);
  for (auto* list : {&m.headers, &m.meta}) {
    detail::put_u32(out, uint32_t(list->size()));
    for (auto& [k, v] : *list) {
      detail::put_str(out, k);
      detail::put_str(out, v);
    }
  }
  detail::put_str(out, payload);
}

inline std::string encode(host::Message& m) {
  std::string out;
  encode_into(out, m);
  return out;
}

// Fills m from a record; false with the reason (m then holds nothing of it).
inline bool decode(std::string_view record, host::Message& m, std::string& error) {
  detail::Reader r(record);
  uint8_t version = 0;
  std::string key, content_type, payload;
  std::vector<std::pair<std::string, std::string>> headers, meta;
  int64_t ts = 0;
  bool ok = r.u8(version);
  if (ok && version != kRecordVersion) {
    error = "buffer record version " + std::to_string(version) + ", this edgeflow reads version " +
            std::to_string(kRecordVersion);
    return false;
  }
  ok = ok && r.i64(ts) && r.str(key, "the key") && r.str(content_type, "the content type") &&
       r.pairs(headers, "the headers") && r.pairs(meta, "the metadata") && r.str(payload, "the payload") && r.end();
  if (!ok) {
    error = "buffer record: " + r.error();
    return false;
  }
  m.key = std::move(key);
  m.content_type = std::move(content_type);
  m.headers = std::move(headers);
  m.meta = std::move(meta);
  m.timestamp_ms = ts;
  m.set_payload(payload.data(), payload.size());
  return true;
}

}  // namespace edgeflow::buffer
