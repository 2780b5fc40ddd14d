// Defensive decoder for PostgreSQL's `pgoutput` logical replication protocol (versions 1 and 2,
// as documented in PostgreSQL 15, "Logical Replication Message Formats", section 55.9).
//
// Header-only, pure C++20, no libpq. Input is the WAL data of one XLogData ('w') message, i.e.
// exactly one pgoutput message starting with its type byte. Every read is bounds-checked; a
// truncated or malformed message throws `DecodeError` (message type, byte offset, what was
// expected) and never reads outside the input.
//
// LIFETIME: decoded messages hold `std::string_view`s that point INTO THE INPUT BUFFER (tuple
// column values, Origin name, Type names, logical Message prefix/content). They are valid only as
// long as the caller keeps that buffer alive and unmodified. Relations are the exception: they
// are copied into the `RelationCache` and handed out as `std::shared_ptr<const Relation>`, which
// stays valid (as a snapshot) even after a later Relation message replaces the cache entry.
//
// Not covered (PostgreSQL 15 protocol version 3, two-phase commit): Begin Prepare ('b'),
// Prepare ('P'), Commit Prepared ('K'), Rollback Prepared ('r'), Stream Prepare ('p'); they are
// reported as unknown message types. Stream Abort is decoded in its protocol-2 form (xid,
// subtransaction xid); the protocol-4 (PostgreSQL 16+) abort LSN/timestamp is not.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace edgeflow::pg {

using Lsn = std::uint64_t;
using Oid = std::uint32_t;
using Xid = std::uint32_t;
/// Microseconds since 2000-01-01 00:00:00 UTC (PostgreSQL's TimestampTz).
using PgTimestamp = std::int64_t;

// ---------------------------------------------------------------------------------------------
// Helpers: LSN and timestamps
// ---------------------------------------------------------------------------------------------

/// PostgreSQL-style LSN text: upper 32 bits and lower 32 bits in upper-case hex, e.g. "16/B374D848".
inline std::string format_lsn(Lsn lsn) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
                static_cast<unsigned>(lsn & 0xFFFFFFFFu));
  return buf;
}

/// Inverse of format_lsn ("16/B374D848", case-insensitive hex); nullopt when not exactly that shape.
inline std::optional<Lsn> parse_lsn(std::string_view s) {
  auto hex = [](std::string_view part) -> std::optional<std::uint32_t> {
    if (part.empty() || part.size() > 8) return std::nullopt;
    std::uint32_t v = 0;
    for (char c : part) {
      unsigned d;
      if (c >= '0' && c <= '9') d = static_cast<unsigned>(c - '0');
      else if (c >= 'a' && c <= 'f') d = static_cast<unsigned>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') d = static_cast<unsigned>(c - 'A' + 10);
      else return std::nullopt;
      v = (v << 4) | d;
    }
    return v;
  };
  const auto slash = s.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  const auto hi = hex(s.substr(0, slash));
  const auto lo = hex(s.substr(slash + 1));
  if (!hi || !lo) return std::nullopt;
  return (static_cast<Lsn>(*hi) << 32) | *lo;
}

/// Milliseconds between 1970-01-01 and 2000-01-01 (PostgreSQL epoch), UTC.
inline constexpr std::int64_t kPgEpochUnixMs = 946'684'800'000;
/// PostgreSQL's encodings of timestamp 'infinity' / '-infinity'.
inline constexpr PgTimestamp kPgTimestampInfinity = INT64_MAX;
inline constexpr PgTimestamp kPgTimestampMinusInfinity = INT64_MIN;

/// PostgreSQL timestamp (µs since 2000-01-01 UTC) → Unix epoch milliseconds, rounded toward
/// negative infinity (so 1999-12-31T23:59:59.999500 maps to ...999, not ...000). Never overflows;
/// ±infinity are not special-cased (they map to huge values) — check for them first if needed.
constexpr std::int64_t pg_timestamp_to_unix_ms(PgTimestamp ts) {
  std::int64_t ms = ts / 1000;
  if (ts % 1000 < 0) --ms;  // floor division
  return ms + kPgEpochUnixMs;
}

/// PostgreSQL timestamp → ISO-8601 UTC text with microseconds, e.g. "2024-03-01T12:34:56.789012Z".
/// ±infinity become "infinity" / "-infinity" (PostgreSQL's own spelling).
inline std::string pg_timestamp_to_iso8601(PgTimestamp ts) {
  if (ts == kPgTimestampInfinity) return "infinity";
  if (ts == kPgTimestampMinusInfinity) return "-infinity";
  constexpr std::int64_t us_per_day = 86'400'000'000;
  std::int64_t days = ts / us_per_day;
  std::int64_t rem = ts % us_per_day;
  if (rem < 0) {
    rem += us_per_day;
    --days;
  }
  // Days since 1970-01-01 → civil date (H. Hinnant's algorithm, proleptic Gregorian).
  const std::int64_t z = days + 10957 /* 1970→2000 */ + 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const std::int64_t doe = z - era * 146097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t year = yoe + era * 400;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const std::int64_t day = doy - (153 * mp + 2) / 5 + 1;
  const std::int64_t month = mp < 10 ? mp + 3 : mp - 9;
  if (month <= 2) ++year;
  const std::int64_t secs = rem / 1'000'000;
  const std::int64_t micros = rem % 1'000'000;
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lldT%02lld:%02lld:%02lld.%06lldZ",
                static_cast<long long>(year), static_cast<long long>(month),
                static_cast<long long>(day), static_cast<long long>(secs / 3600),
                static_cast<long long>(secs / 60 % 60), static_cast<long long>(secs % 60),
                static_cast<long long>(micros));
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// Human-readable name of a pgoutput message type byte ("Insert", ...), "unknown" otherwise.
constexpr std::string_view message_type_name(char type) {
  switch (type) {
    case 'B': return "Begin";
    case 'C': return "Commit";
    case 'O': return "Origin";
    case 'R': return "Relation";
    case 'Y': return "Type";
    case 'I': return "Insert";
    case 'U': return "Update";
    case 'D': return "Delete";
    case 'T': return "Truncate";
    case 'M': return "Message";
    case 'S': return "Stream Start";
    case 'E': return "Stream Stop";
    case 'c': return "Stream Commit";
    case 'A': return "Stream Abort";
    default: return "unknown";
  }
}

/// A malformed or truncated pgoutput message. `message_type` is the type byte (0 for an empty
/// input), `offset` the byte offset in the message where decoding failed, `expected` what the
/// decoder was trying to read or check.
class DecodeError : public std::runtime_error {
 public:
  DecodeError(char message_type, std::size_t offset, std::string expected)
      : std::runtime_error(describe(message_type, offset, expected)),
        message_type_(message_type),
        offset_(offset),
        expected_(std::move(expected)) {}

  char message_type() const noexcept { return message_type_; }
  std::size_t offset() const noexcept { return offset_; }
  const std::string& expected() const noexcept { return expected_; }

 private:
  static std::string describe(char type, std::size_t offset, const std::string& expected) {
    std::string s = "pgoutput: malformed ";
    s += message_type_name(type);
    char code[16];
    const auto b = static_cast<unsigned char>(type);
    if (b >= 0x20 && b < 0x7F) std::snprintf(code, sizeof code, " ('%c')", type);
    else std::snprintf(code, sizeof code, " (0x%02X)", b);
    s += code;
    s += " message at byte ";
    s += std::to_string(offset);
    s += ": ";
    s += expected;
    return s;
  }

  char message_type_;
  std::size_t offset_;
  std::string expected_;
};

// ---------------------------------------------------------------------------------------------
// Relations and their cache
// ---------------------------------------------------------------------------------------------

struct Column {
  static constexpr std::uint8_t kFlagKey = 1;  ///< column is part of the replica identity key
  std::uint8_t flags = 0;
  std::string name;
  Oid type_oid = 0;
  std::int32_t type_modifier = -1;  ///< atttypmod, -1 when none
  bool is_key() const noexcept { return (flags & kFlagKey) != 0; }
};

enum class ReplicaIdentity : char { Default = 'd', Nothing = 'n', Full = 'f', Index = 'i' };

struct Relation {
  Oid oid = 0;
  std::string namespace_name;  ///< empty means pg_catalog (as sent by the server)
  std::string name;
  ReplicaIdentity replica_identity = ReplicaIdentity::Default;
  std::vector<Column> columns;
};

/// Relation OID → latest description. Relation messages replace entries; Insert/Update/Delete
/// resolve against it. Entries are immutable snapshots shared with decoded messages.
class RelationCache {
 public:
  std::shared_ptr<const Relation> find(Oid oid) const {
    const auto it = relations_.find(oid);
    return it == relations_.end() ? nullptr : it->second;
  }
  std::shared_ptr<const Relation> put(Relation relation) {
    auto ptr = std::make_shared<const Relation>(std::move(relation));
    relations_[ptr->oid] = ptr;
    return ptr;
  }
  bool erase(Oid oid) { return relations_.erase(oid) != 0; }
  void clear() { relations_.clear(); }
  std::size_t size() const noexcept { return relations_.size(); }

 private:
  std::unordered_map<Oid, std::shared_ptr<const Relation>> relations_;
};

// ---------------------------------------------------------------------------------------------
// Decoded messages
// ---------------------------------------------------------------------------------------------

/// One TupleData column. `data` points into the input buffer (see LIFETIME above).
struct Value {
  enum class Kind : char { Null = 'n', UnchangedToast = 'u', Text = 't', Binary = 'b' };
  Kind kind = Kind::Null;
  std::string_view data;  ///< empty unless Text or Binary
  bool is_null() const noexcept { return kind == Kind::Null; }
  bool is_unchanged_toast() const noexcept { return kind == Kind::UnchangedToast; }
};

struct Tuple {
  std::vector<Value> values;  ///< one per relation column, in relation column order
};

/// Which old image an Update/Delete carries: 'K' (replica identity key columns only, other
/// columns null) or 'O' (the whole old row, REPLICA IDENTITY FULL).
enum class OldTupleKind : char { None = 0, Key = 'K', Full = 'O' };

struct Begin {
  Lsn final_lsn = 0;
  PgTimestamp commit_ts = 0;
  Xid xid = 0;
};

struct Commit {
  std::uint8_t flags = 0;
  Lsn commit_lsn = 0;
  Lsn end_lsn = 0;
  PgTimestamp commit_ts = 0;
};

struct Origin {
  Lsn commit_lsn = 0;     ///< LSN of the commit on the origin server
  std::string_view name;  ///< points into the input
};

struct RelationMessage {
  std::optional<Xid> xid;  ///< set only when decoded with in_stream
  std::shared_ptr<const Relation> relation;
};

struct TypeMessage {
  std::optional<Xid> xid;
  Oid oid = 0;
  std::string_view namespace_name;  ///< points into the input
  std::string_view name;            ///< points into the input
};

struct Insert {
  std::optional<Xid> xid;
  std::shared_ptr<const Relation> relation;
  Tuple new_tuple;
};

struct Update {
  std::optional<Xid> xid;
  std::shared_ptr<const Relation> relation;
  OldTupleKind old_kind = OldTupleKind::None;
  std::optional<Tuple> old_tuple;  ///< present iff old_kind != None
  Tuple new_tuple;
};

struct Delete {
  std::optional<Xid> xid;
  std::shared_ptr<const Relation> relation;
  OldTupleKind old_kind = OldTupleKind::Key;  ///< Key or Full
  Tuple old_tuple;
};

struct Truncate {
  static constexpr std::uint8_t kCascade = 1;
  static constexpr std::uint8_t kRestartIdentity = 2;
  std::optional<Xid> xid;
  std::uint8_t options = 0;
  std::vector<Oid> relation_oids;  ///< not resolved: look them up in the cache if needed
  bool cascade() const noexcept { return (options & kCascade) != 0; }
  bool restart_identity() const noexcept { return (options & kRestartIdentity) != 0; }
};

/// Logical decoding message (pg_logical_emit_message).
struct LogicalMessage {
  std::optional<Xid> xid;
  std::uint8_t flags = 0;
  Lsn lsn = 0;
  std::string_view prefix;   ///< points into the input
  std::string_view content;  ///< points into the input (arbitrary bytes)
  bool transactional() const noexcept { return (flags & 1) != 0; }
};

struct StreamStart {
  Xid xid = 0;
  bool first_segment = false;
};

struct StreamStop {};

struct StreamCommit {
  Xid xid = 0;
  std::uint8_t flags = 0;
  Lsn commit_lsn = 0;
  Lsn end_lsn = 0;
  PgTimestamp commit_ts = 0;
};

struct StreamAbort {
  Xid xid = 0;
  Xid subtransaction_xid = 0;  ///< equals xid when the whole top-level transaction aborted
};

using Message = std::variant<Begin, Commit, Origin, RelationMessage, TypeMessage, Insert, Update,
                             Delete, Truncate, LogicalMessage, StreamStart, StreamStop,
                             StreamCommit, StreamAbort>;

// ---------------------------------------------------------------------------------------------
// Decoder
// ---------------------------------------------------------------------------------------------

namespace detail {

/// Bounds-checked big-endian reader over one message.
class Reader {
 public:
  Reader(const std::uint8_t* data, std::size_t size) noexcept : data_(data), size_(size) {}

  void set_type(char type) noexcept { type_ = type; }
  std::size_t pos() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return size_ - pos_; }

  [[noreturn]] void fail(std::string expected) const { fail_at(pos_, std::move(expected)); }
  [[noreturn]] void fail_at(std::size_t offset, std::string expected) const {
    throw DecodeError(type_, offset, std::move(expected));
  }

  std::uint8_t u8(const char* what) {
    need(1, what);
    return data_[pos_++];
  }
  std::int16_t i16(const char* what) { return static_cast<std::int16_t>(be(2, what)); }
  std::int32_t i32(const char* what) { return static_cast<std::int32_t>(be(4, what)); }
  std::uint32_t u32(const char* what) { return static_cast<std::uint32_t>(be(4, what)); }
  std::uint64_t u64(const char* what) { return be(8, what); }
  std::int64_t i64(const char* what) { return static_cast<std::int64_t>(be(8, what)); }

  /// NUL-terminated string; the view excludes the terminator and points into the input.
  std::string_view cstr(const char* what) {
    const auto* start = data_ + pos_;
    const void* nul = std::memchr(start, 0, remaining());
    if (nul == nullptr) fail(std::string(what) + " (NUL-terminated string; no terminator before end of message)");
    const auto len = static_cast<std::size_t>(static_cast<const std::uint8_t*>(nul) - start);
    pos_ += len + 1;
    return {reinterpret_cast<const char*>(start), len};
  }

  /// Int32 length (must be >= 0 and fit in the rest of the message) followed by that many bytes.
  std::string_view counted_bytes(const char* what) {
    const std::size_t at = pos_;
    const std::int32_t len = i32(what);
    if (len < 0) fail_at(at, std::string(what) + ": negative length " + std::to_string(len));
    if (static_cast<std::size_t>(len) > remaining())
      fail_at(at, std::string(what) + ": length " + std::to_string(len) + " exceeds the " +
                      std::to_string(remaining()) + " bytes left in the message");
    const auto* start = reinterpret_cast<const char*>(data_ + pos_);
    pos_ += static_cast<std::size_t>(len);
    return {start, static_cast<std::size_t>(len)};
  }

  void expect_end() const {
    if (pos_ != size_)
      fail("end of message (" + std::to_string(size_ - pos_) + " trailing bytes)");
  }

 private:
  void need(std::size_t n, const char* what) const {
    if (remaining() < n)
      fail(std::string(what) + " (" + std::to_string(n) + " bytes, only " +
           std::to_string(remaining()) + " left)");
  }
  std::uint64_t be(std::size_t n, const char* what) {
    need(n, what);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v = (v << 8) | data_[pos_ + i];
    pos_ += n;
    return v;
  }

  const std::uint8_t* data_;
  std::size_t size_;
  std::size_t pos_ = 0;
  char type_ = 0;
};

inline std::optional<Xid> stream_xid(Reader& r, bool in_stream) {
  if (!in_stream) return std::nullopt;
  return r.u32("Int32 transaction id (streamed transaction)");
}

inline std::shared_ptr<const Relation> resolve(Reader& r, const RelationCache& cache) {
  const std::size_t at = r.pos();
  const Oid oid = r.u32("Int32 relation OID");
  auto rel = cache.find(oid);
  if (!rel)
    r.fail_at(at, "a relation OID described by an earlier Relation message (OID " +
                      std::to_string(oid) + " is unknown)");
  return rel;
}

inline Tuple read_tuple(Reader& r, const Relation& rel) {
  const std::size_t at = r.pos();
  const std::int16_t ncols = r.i16("Int16 number of columns (TupleData)");
  if (ncols < 0) r.fail_at(at, "a non-negative TupleData column count, got " + std::to_string(ncols));
  if (static_cast<std::size_t>(ncols) != rel.columns.size())
    r.fail_at(at, "TupleData with " + std::to_string(rel.columns.size()) +
                      " columns as described for relation " + rel.namespace_name + "." + rel.name +
                      " (OID " + std::to_string(rel.oid) + "), got " + std::to_string(ncols));
  // Every column takes at least one byte: refuse before allocating for an impossible count.
  if (static_cast<std::size_t>(ncols) > r.remaining())
    r.fail("TupleData of " + std::to_string(ncols) + " columns (only " +
           std::to_string(r.remaining()) + " bytes left)");
  Tuple t;
  t.values.resize(static_cast<std::size_t>(ncols));
  for (auto& v : t.values) {
    const std::size_t kat = r.pos();
    const auto kind = r.u8("Byte1 column kind ('n', 'u', 't' or 'b')");
    switch (kind) {
      case 'n': v.kind = Value::Kind::Null; break;
      case 'u': v.kind = Value::Kind::UnchangedToast; break;
      case 't':
        v.kind = Value::Kind::Text;
        v.data = r.counted_bytes("Int32 text column length");
        break;
      case 'b':
        v.kind = Value::Kind::Binary;
        v.data = r.counted_bytes("Int32 binary column length");
        break;
      default: {
        char buf[96];
        std::snprintf(buf, sizeof buf,
                      "column kind 'n', 'u', 't' or 'b', got byte 0x%02X", kind);
        r.fail_at(kat, buf);
      }
    }
  }
  return t;
}

inline Relation read_relation(Reader& r) {
  Relation rel;
  rel.oid = r.u32("Int32 relation OID");
  rel.namespace_name = r.cstr("namespace name");
  rel.name = r.cstr("relation name");
  const std::size_t ri_at = r.pos();
  const auto ri = r.u8("Int8 replica identity setting");
  switch (ri) {
    case 'd': case 'n': case 'f': case 'i':
      rel.replica_identity = static_cast<ReplicaIdentity>(ri);
      break;
    default: {
      char buf[96];
      std::snprintf(buf, sizeof buf, "replica identity 'd', 'n', 'f' or 'i', got byte 0x%02X", ri);
      r.fail_at(ri_at, buf);
    }
  }
  const std::size_t nat = r.pos();
  const std::int16_t ncols = r.i16("Int16 number of columns");
  if (ncols < 0) r.fail_at(nat, "a non-negative column count, got " + std::to_string(ncols));
  // Each column is at least 10 bytes (flags, empty name's NUL, type OID, typmod).
  if (static_cast<std::size_t>(ncols) * 10 > r.remaining())
    r.fail("descriptions of " + std::to_string(ncols) + " columns (only " +
           std::to_string(r.remaining()) + " bytes left)");
  rel.columns.resize(static_cast<std::size_t>(ncols));
  for (auto& c : rel.columns) {
    c.flags = r.u8("Int8 column flags");
    c.name = r.cstr("column name");
    c.type_oid = r.u32("Int32 column type OID");
    c.type_modifier = r.i32("Int32 column type modifier");
  }
  return rel;
}

}  // namespace detail

/// Decodes one pgoutput message (type byte first). `in_stream` must be true between a Stream
/// Start and the matching Stream Stop (protocol version 2): Relation, Type, Insert, Update,
/// Delete, Truncate and Message then carry the streamed transaction's xid after the type byte.
///
/// Relation messages update `cache` (only when the whole message decoded successfully);
/// Insert/Update/Delete resolve their relation OID against it and check the column count.
/// Throws DecodeError on any malformed input. See the LIFETIME note at the top of this file.
inline Message decode(std::span<const std::uint8_t> data, RelationCache& cache,
                      bool in_stream = false) {
  detail::Reader r(data.data(), data.size());
  if (data.empty()) r.fail("a message type byte (message is empty)");
  const char type = static_cast<char>(data[0]);
  r.set_type(type);
  r.u8("message type");

  Message out;
  switch (type) {
    case 'B': {
      Begin m;
      m.final_lsn = r.u64("Int64 final LSN");
      m.commit_ts = r.i64("Int64 commit timestamp");
      m.xid = r.u32("Int32 transaction id");
      out = m;
      break;
    }
    case 'C': {
      Commit m;
      m.flags = r.u8("Int8 flags");
      m.commit_lsn = r.u64("Int64 commit LSN");
      m.end_lsn = r.u64("Int64 end LSN");
      m.commit_ts = r.i64("Int64 commit timestamp");
      out = m;
      break;
    }
    case 'O': {
      Origin m;
      m.commit_lsn = r.u64("Int64 origin commit LSN");
      m.name = r.cstr("origin name");
      out = m;
      break;
    }
    case 'R': {
      auto xid = detail::stream_xid(r, in_stream);
      Relation rel = detail::read_relation(r);
      r.expect_end();  // before touching the cache: a bad message must not change it
      return RelationMessage{xid, cache.put(std::move(rel))};
    }
    case 'Y': {
      TypeMessage m;
      m.xid = detail::stream_xid(r, in_stream);
      m.oid = r.u32("Int32 type OID");
      m.namespace_name = r.cstr("type namespace name");
      m.name = r.cstr("type name");
      out = m;
      break;
    }
    case 'I': {
      Insert m;
      m.xid = detail::stream_xid(r, in_stream);
      m.relation = detail::resolve(r, cache);
      const std::size_t at = r.pos();
      const auto n = r.u8("Byte1 'N' (new tuple)");
      if (n != 'N') r.fail_at(at, "Byte1 'N' (new tuple)");
      m.new_tuple = detail::read_tuple(r, *m.relation);
      out = std::move(m);
      break;
    }
    case 'U': {
      Update m;
      m.xid = detail::stream_xid(r, in_stream);
      m.relation = detail::resolve(r, cache);
      std::size_t at = r.pos();
      auto tag = r.u8("Byte1 'K', 'O' or 'N'");
      if (tag == 'K' || tag == 'O') {
        m.old_kind = static_cast<OldTupleKind>(tag);
        m.old_tuple = detail::read_tuple(r, *m.relation);
        at = r.pos();
        tag = r.u8("Byte1 'N' (new tuple)");
        if (tag != 'N') r.fail_at(at, "Byte1 'N' (new tuple) after the old tuple");
      } else if (tag != 'N') {
        r.fail_at(at, "Byte1 'K', 'O' or 'N'");
      }
      m.new_tuple = detail::read_tuple(r, *m.relation);
      out = std::move(m);
      break;
    }
    case 'D': {
      Delete m;
      m.xid = detail::stream_xid(r, in_stream);
      m.relation = detail::resolve(r, cache);
      const std::size_t at = r.pos();
      const auto tag = r.u8("Byte1 'K' or 'O' (old tuple)");
      if (tag != 'K' && tag != 'O') r.fail_at(at, "Byte1 'K' or 'O' (old tuple)");
      m.old_kind = static_cast<OldTupleKind>(tag);
      m.old_tuple = detail::read_tuple(r, *m.relation);
      out = std::move(m);
      break;
    }
    case 'T': {
      Truncate m;
      m.xid = detail::stream_xid(r, in_stream);
      const std::size_t at = r.pos();
      const std::int32_t n = r.i32("Int32 number of relations");
      if (n < 0) r.fail_at(at, "a non-negative relation count, got " + std::to_string(n));
      m.options = r.u8("Int8 option bits");
      if (static_cast<std::size_t>(n) > r.remaining() / 4)
        r.fail(std::to_string(n) + " Int32 relation OIDs (only " + std::to_string(r.remaining()) +
               " bytes left)");
      m.relation_oids.resize(static_cast<std::size_t>(n));
      for (auto& oid : m.relation_oids) oid = r.u32("Int32 relation OID");
      out = std::move(m);
      break;
    }
    case 'M': {
      LogicalMessage m;
      m.xid = detail::stream_xid(r, in_stream);
      m.flags = r.u8("Int8 flags");
      m.lsn = r.u64("Int64 message LSN");
      m.prefix = r.cstr("message prefix");
      m.content = r.counted_bytes("Int32 content length");
      out = m;
      break;
    }
    case 'S': {
      StreamStart m;
      m.xid = r.u32("Int32 transaction id");
      m.first_segment = r.u8("Int8 first-segment flag") == 1;
      out = m;
      break;
    }
    case 'E': out = StreamStop{}; break;
    case 'c': {
      StreamCommit m;
      m.xid = r.u32("Int32 transaction id");
      m.flags = r.u8("Int8 flags");
      m.commit_lsn = r.u64("Int64 commit LSN");
      m.end_lsn = r.u64("Int64 end LSN");
      m.commit_ts = r.i64("Int64 commit timestamp");
      out = m;
      break;
    }
    case 'A': {
      StreamAbort m;
      m.xid = r.u32("Int32 transaction id");
      m.subtransaction_xid = r.u32("Int32 subtransaction id");
      out = m;
      break;
    }
    default: {
      char buf[128];
      std::snprintf(buf, sizeof buf,
                    "a known message type (B C O R Y I U D T M S E c A), got byte 0x%02X",
                    static_cast<unsigned char>(type));
      r.fail_at(0, buf);
    }
  }
  r.expect_end();
  return out;
}

inline Message decode(std::string_view data, RelationCache& cache, bool in_stream = false) {
  return decode(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(data.data()),
                                              data.size()),
                cache, in_stream);
}

}  // namespace edgeflow::pg
