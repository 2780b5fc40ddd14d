// PostgreSQL text-format column values → JSON, chosen by the column's type OID.
//
// Header-only, pure C++20, no libpq. Input is PostgreSQL's *text output form* of one value —
// exactly what pgoutput sends for a 't' (text) tuple column, and what psql prints — plus the
// column's type OID (from the Relation message). `append_json` appends one JSON value to a string.
// A SQL NULL column is not a value: the caller emits `null` itself (pgoutput 'n' columns).
//
// Assumptions about the server session that produced the text (the CDC walsender session uses the
// server's settings): server_encoding UTF8 (text bytes are passed through; any that are not
// UTF-8 become U+FFFD in the JSON), DateStyle ISO (the initdb default, "ISO, MDY"), bytea_output hex (the default;
// the legacy escape format is decoded too), IntervalStyle postgres (the default). A date/time
// value not in the ISO shape is rejected with a clear error rather than mis-converted.
//
// Mapping policy (built-in OIDs from PostgreSQL's pg_type.dat; verified against a real server by
// tests/integration/pg_types_integration_test.cpp):
//   bool 16                      → true / false (from 't' / 'f')
//   int2 21, int4 23, int8 20, oid 26 → JSON number, digits as given
//   numeric 1700                 → JSON string, exact as given (also "NaN", "Infinity", "-Infinity")
//   float4 700, float8 701       → JSON number as given (PostgreSQL 15 prints the shortest exact
//                                  form, e.g. 1e+100, which is valid JSON); NaN, Infinity and
//                                  -Infinity, which JSON cannot express as numbers, become the
//                                  JSON strings "NaN", "Infinity", "-Infinity"
//   text 25, varchar 1043, bpchar 1042 (blank padding kept), name 19, "char" 18,
//   uuid 2950, time 1083, timetz 1266 → JSON string as given (escaped)
//   interval 1186                → JSON string as given in the server's IntervalStyle, e.g.
//                                  "1 year 2 mons 3 days 04:05:06.5" (IntervalStyle postgres).
//                                  ISO-8601 durations ("P1Y2M3DT4H5M6.5S") would require the
//                                  session to run with IntervalStyle = iso_8601; not converted here
//   json 114, jsonb 3802         → embedded verbatim as nested JSON, once checked to be one JSON
//                                  value (else the text is kept as a string, like any refused value)
//   date 1082                    → "YYYY-MM-DD"; BC dates ("0044-03-15 BC") and "infinity" /
//                                  "-infinity" as strings as given
//   timestamp 1114               → "YYYY-MM-DDTHH:MM:SS[.ffffff]" (the space becomes 'T'; the
//                                  fraction is kept exactly as printed, trailing zeros trimmed
//                                  by the server); BC and ±infinity as strings as given
//   timestamptz 1184             → "YYYY-MM-DDTHH:MM:SS[.ffffff]Z": the printed offset
//                                  (+HH, +HH:MM or +HH:MM:SS, from the session TimeZone) is
//                                  subtracted exactly, microseconds kept; BC values, values that
//                                  would fall before year 1 in UTC, and ±infinity as strings as given
//   bytea 17                     → JSON string, standard base64 (with '=' padding) of the bytes;
//                                  hex ("\x0a0b") and legacy escape ("a\000\\") output accepted
//   arrays (int2[] 1005, int4[] 1007, int8[] 1016, text[] 1009, varchar[] 1015, bpchar[] 1014,
//           name[] 1003, char[] 1002, bool[] 1000, float4[] 1021, float8[] 1022, oid[] 1028,
//           numeric[] 1231, uuid[] 2951, date[] 1182, time[] 1183, timetz[] 1270,
//           timestamp[] 1115, timestamptz[] 1185, interval[] 1187, bytea[] 1001, json[] 199,
//           jsonb[] 3807)
//                                → JSON arrays; multi-dimensional arrays → nested JSON arrays;
//                                  unquoted NULL → null; each element converted as its element
//                                  type. Explicit lower bounds ("[0:1]={1,2}") are dropped.
//                                  Note: a JSON `null` inside a json/jsonb array also becomes null.
//   any other OID (enums, domains, composite and user-defined types, their arrays, ...)
//                                → JSON string of the text as given. Enums therefore arrive as
//                                  their label ("happy"); a domain over int arrives as a string.
//
// Malformed input (a bool that is not t/f, a number that is not a JSON number, an unterminated
// quote in an array, odd hex digits in bytea, a timestamp not in ISO shape, ...) throws
// `edgeflow::pg::ValueError` naming the type, the problem and (a prefix of) the text. Parsing is
// bounded: arrays nest at most kMaxArrayDepth (PostgreSQL's MAXDIM, 6) levels deep, so no input
// can exhaust the stack. On a throw, `out` may hold a partial value: discard it.
#pragma once

#include <edgeflow/sdk/expr/value.hpp>

#include <rapidjson/encodedstream.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <string_view>

namespace edgeflow::pg {

using Oid = std::uint32_t;  // same alias as in pgoutput.hpp

/// Built-in type OIDs (PostgreSQL pg_type.dat; stable across versions).
namespace type_oid {
inline constexpr Oid kBool = 16;
inline constexpr Oid kBytea = 17;
inline constexpr Oid kChar = 18;
inline constexpr Oid kName = 19;
inline constexpr Oid kInt8 = 20;
inline constexpr Oid kInt2 = 21;
inline constexpr Oid kInt4 = 23;
inline constexpr Oid kText = 25;
inline constexpr Oid kOid = 26;
inline constexpr Oid kJson = 114;
inline constexpr Oid kFloat4 = 700;
inline constexpr Oid kFloat8 = 701;
inline constexpr Oid kBpchar = 1042;
inline constexpr Oid kVarchar = 1043;
inline constexpr Oid kDate = 1082;
inline constexpr Oid kTime = 1083;
inline constexpr Oid kTimestamp = 1114;
inline constexpr Oid kTimestamptz = 1184;
inline constexpr Oid kInterval = 1186;
inline constexpr Oid kTimetz = 1266;
inline constexpr Oid kNumeric = 1700;
inline constexpr Oid kUuid = 2950;
inline constexpr Oid kJsonb = 3802;

inline constexpr Oid kJsonArray = 199;
inline constexpr Oid kBoolArray = 1000;
inline constexpr Oid kByteaArray = 1001;
inline constexpr Oid kCharArray = 1002;
inline constexpr Oid kNameArray = 1003;
inline constexpr Oid kInt2Array = 1005;
inline constexpr Oid kInt4Array = 1007;
inline constexpr Oid kTextArray = 1009;
inline constexpr Oid kBpcharArray = 1014;
inline constexpr Oid kVarcharArray = 1015;
inline constexpr Oid kInt8Array = 1016;
inline constexpr Oid kFloat4Array = 1021;
inline constexpr Oid kFloat8Array = 1022;
inline constexpr Oid kOidArray = 1028;
inline constexpr Oid kTimestampArray = 1115;
inline constexpr Oid kDateArray = 1182;
inline constexpr Oid kTimeArray = 1183;
inline constexpr Oid kTimestamptzArray = 1185;
inline constexpr Oid kIntervalArray = 1187;
inline constexpr Oid kNumericArray = 1231;
inline constexpr Oid kTimetzArray = 1270;
inline constexpr Oid kUuidArray = 2951;
inline constexpr Oid kJsonbArray = 3807;
}  // namespace type_oid

/// Malformed text for the given type.
class ValueError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Maximum array nesting accepted (PostgreSQL's MAXDIM).
inline constexpr int kMaxArrayDepth = 6;

/// Element type of a known array type OID; 0 when `type` is not a known array type.
constexpr Oid array_element_type(Oid type) {
  using namespace type_oid;
  switch (type) {
    case kJsonArray: return kJson;
    case kBoolArray: return kBool;
    case kByteaArray: return kBytea;
    case kCharArray: return kChar;
    case kNameArray: return kName;
    case kInt2Array: return kInt2;
    case kInt4Array: return kInt4;
    case kTextArray: return kText;
    case kBpcharArray: return kBpchar;
    case kVarcharArray: return kVarchar;
    case kInt8Array: return kInt8;
    case kFloat4Array: return kFloat4;
    case kFloat8Array: return kFloat8;
    case kOidArray: return kOid;
    case kTimestampArray: return kTimestamp;
    case kDateArray: return kDate;
    case kTimeArray: return kTime;
    case kTimestamptzArray: return kTimestamptz;
    case kIntervalArray: return kInterval;
    case kNumericArray: return kNumeric;
    case kTimetzArray: return kTimetz;
    case kUuidArray: return kUuid;
    case kJsonbArray: return kJsonb;
    default: return 0;
  }
}

/// Whether `type` has a dedicated conversion (otherwise its text becomes a JSON string).
constexpr bool is_known(Oid type) {
  using namespace type_oid;
  switch (type) {
    case kBool: case kBytea: case kChar: case kName: case kInt8: case kInt2: case kInt4:
    case kText: case kOid: case kJson: case kFloat4: case kFloat8: case kBpchar: case kVarchar:
    case kDate: case kTime: case kTimestamp: case kTimestamptz: case kInterval: case kTimetz:
    case kNumeric: case kUuid: case kJsonb:
      return true;
    default:
      return array_element_type(type) != 0;
  }
}

/// Short name of a known type OID ("int4", "_int4" for arrays), "oid <n>" otherwise.
inline std::string type_name(Oid type) {
  using namespace type_oid;
  switch (type) {
    case kBool: return "bool";
    case kBytea: return "bytea";
    case kChar: return "char";
    case kName: return "name";
    case kInt8: return "int8";
    case kInt2: return "int2";
    case kInt4: return "int4";
    case kText: return "text";
    case kOid: return "oid";
    case kJson: return "json";
    case kFloat4: return "float4";
    case kFloat8: return "float8";
    case kBpchar: return "bpchar";
    case kVarchar: return "varchar";
    case kDate: return "date";
    case kTime: return "time";
    case kTimestamp: return "timestamp";
    case kTimestamptz: return "timestamptz";
    case kInterval: return "interval";
    case kTimetz: return "timetz";
    case kNumeric: return "numeric";
    case kUuid: return "uuid";
    case kJsonb: return "jsonb";
    default: break;
  }
  if (const Oid elem = array_element_type(type); elem != 0) return "_" + type_name(elem);
  return "oid " + std::to_string(type);
}

// JSON string literals and base64 (RFC 4648, '=' padded) come from the SDK: control characters
// escaped, bytes that are not UTF-8 replaced by U+FFFD.
using edgeflow::sdk::expr::append_base64;
using edgeflow::sdk::expr::append_json_string;

namespace detail {

[[noreturn]] inline void fail(Oid type, std::string_view problem, std::string_view text) {
  constexpr std::size_t kShown = 80;
  std::string msg = "PostgreSQL " + type_name(type) + " value: " + std::string(problem) + " in ";
  append_json_string(msg, text.substr(0, kShown));
  if (text.size() > kShown) msg += " (first " + std::to_string(kShown) + " of " +
                                   std::to_string(text.size()) + " bytes)";
  throw ValueError(msg);
}

constexpr bool is_digit(char c) { return c >= '0' && c <= '9'; }

/// JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; `integer` forbids the
/// fraction and exponent.
constexpr bool is_json_number(std::string_view s, bool integer) {
  std::size_t i = 0;
  const std::size_t n = s.size();
  if (i < n && s[i] == '-') ++i;
  if (i >= n || !is_digit(s[i])) return false;
  if (s[i] == '0') {
    ++i;
  } else {
    while (i < n && is_digit(s[i])) ++i;
  }
  if (integer) return i == n;
  if (i < n && s[i] == '.') {
    ++i;
    if (i >= n || !is_digit(s[i])) return false;
    while (i < n && is_digit(s[i])) ++i;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
    if (i >= n || !is_digit(s[i])) return false;
    while (i < n && is_digit(s[i])) ++i;
  }
  return i == n;
}

constexpr int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

inline void append_bytea(std::string& out, std::string_view text) {
  std::string bytes;
  if (text.size() >= 2 && text[0] == '\\' && text[1] == 'x') {  // hex format
    const std::string_view hex = text.substr(2);
    if (hex.size() % 2 != 0) fail(type_oid::kBytea, "odd number of hex digits", text);
    bytes.reserve(hex.size() / 2);
    for (std::size_t i = 0; i < hex.size(); i += 2) {
      const int hi = hex_value(hex[i]);
      const int lo = hex_value(hex[i + 1]);
      if (hi < 0 || lo < 0) fail(type_oid::kBytea, "invalid hex digit", text);
      bytes.push_back(static_cast<char>((hi << 4) | lo));
    }
  } else {  // legacy escape format (bytea_output = escape): \\ and \ooo, other bytes literal
    bytes.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
      if (text[i] != '\\') {
        bytes.push_back(text[i]);
      } else if (i + 1 < text.size() && text[i + 1] == '\\') {
        bytes.push_back('\\');
        ++i;
      } else if (i + 3 < text.size() && text[i + 1] >= '0' && text[i + 1] <= '3' &&
                 text[i + 2] >= '0' && text[i + 2] <= '7' && text[i + 3] >= '0' &&
                 text[i + 3] <= '7') {
        bytes.push_back(static_cast<char>(((text[i + 1] - '0') << 6) |
                                          ((text[i + 2] - '0') << 3) | (text[i + 3] - '0')));
        i += 3;
      } else {
        fail(type_oid::kBytea, "invalid escape-format backslash sequence", text);
      }
    }
  }
  out.push_back('"');
  append_base64(out, bytes);
  out.push_back('"');
}

// ---- dates and times -------------------------------------------------------------------------

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
constexpr std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t year;
  unsigned month;
  unsigned day;
};

constexpr Civil civil_from_days(std::int64_t z) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

/// Reads exactly `n` digits at `pos`; -1 when not digits.
constexpr long read_digits(std::string_view s, std::size_t& pos, std::size_t n) {
  if (pos + n > s.size()) return -1;
  long v = 0;
  for (std::size_t k = 0; k < n; ++k) {
    if (!is_digit(s[pos + k])) return -1;
    v = v * 10 + (s[pos + k] - '0');
  }
  pos += n;
  return v;
}

struct DateTimeParts {
  std::int64_t year = 0;
  unsigned month = 0, day = 0, hour = 0, minute = 0, second = 0;
  std::string_view fraction;  // digits after '.', possibly empty
  bool has_time = false;
  bool has_offset = false;
  int offset_seconds = 0;  // east of UTC
  bool bc = false;
};

/// Parses ISO DateStyle output: Y{4,}-MM-DD[ HH:MM:SS[.f{1,6}][±HH[:MM[:SS]]]][ BC].
/// `want_time` / `want_offset` say which parts must be present. Throws on any other shape.
inline DateTimeParts parse_iso(Oid type, std::string_view text, bool want_time, bool want_offset) {
  DateTimeParts p;
  std::string_view s = text;
  if (s.size() > 3 && s.substr(s.size() - 3) == " BC") {
    p.bc = true;
    s.remove_suffix(3);
  }
  std::size_t pos = 0;
  while (pos < s.size() && is_digit(s[pos])) ++pos;
  if (pos < 4 || pos > 9) fail(type, "not an ISO DateStyle value (year)", text);
  for (std::size_t k = 0; k < pos; ++k) p.year = p.year * 10 + (s[k] - '0');
  long v;
  if (pos >= s.size() || s[pos++] != '-' || (v = read_digits(s, pos, 2)) < 1 || v > 12)
    fail(type, "not an ISO DateStyle value (month)", text);
  p.month = static_cast<unsigned>(v);
  if (pos >= s.size() || s[pos++] != '-' || (v = read_digits(s, pos, 2)) < 1 || v > 31)
    fail(type, "not an ISO DateStyle value (day)", text);
  p.day = static_cast<unsigned>(v);
  if (want_time) {
    p.has_time = true;
    if (pos >= s.size() || s[pos++] != ' ' || (v = read_digits(s, pos, 2)) < 0 || v > 24)
      fail(type, "not an ISO DateStyle value (hour)", text);
    p.hour = static_cast<unsigned>(v);
    if (pos >= s.size() || s[pos++] != ':' || (v = read_digits(s, pos, 2)) < 0 || v > 59)
      fail(type, "not an ISO DateStyle value (minute)", text);
    p.minute = static_cast<unsigned>(v);
    if (pos >= s.size() || s[pos++] != ':' || (v = read_digits(s, pos, 2)) < 0 || v > 60)
      fail(type, "not an ISO DateStyle value (second)", text);
    p.second = static_cast<unsigned>(v);
    if (pos < s.size() && s[pos] == '.') {
      const std::size_t start = ++pos;
      while (pos < s.size() && is_digit(s[pos])) ++pos;
      if (pos == start || pos - start > 6) fail(type, "bad fractional seconds", text);
      p.fraction = s.substr(start, pos - start);
    }
    if (want_offset) {
      p.has_offset = true;
      if (pos >= s.size() || (s[pos] != '+' && s[pos] != '-'))
        fail(type, "missing UTC offset", text);
      const int sign = s[pos++] == '-' ? -1 : 1;
      long oh = read_digits(s, pos, 2), om = 0, os = 0;
      if (oh < 0) fail(type, "bad UTC offset", text);
      if (pos < s.size() && s[pos] == ':') {
        ++pos;
        if ((om = read_digits(s, pos, 2)) < 0 || om > 59) fail(type, "bad UTC offset", text);
        if (pos < s.size() && s[pos] == ':') {
          ++pos;
          if ((os = read_digits(s, pos, 2)) < 0 || os > 59) fail(type, "bad UTC offset", text);
        }
      }
      p.offset_seconds = sign * static_cast<int>(oh * 3600 + om * 60 + os);
    }
  }
  if (pos != s.size()) fail(type, "unexpected trailing characters", text);
  return p;
}

inline void append_date_time(std::string& out, Oid type, std::string_view text) {
  using namespace type_oid;
  if (text == "infinity" || text == "-infinity") {
    append_json_string(out, text);
    return;
  }
  const bool want_time = type != kDate;
  const bool want_offset = type == kTimestamptz;
  const DateTimeParts p = parse_iso(type, text, want_time, want_offset);
  if (p.bc) {  // passed through: ISO-8601 year numbering differs from PostgreSQL's BC years
    append_json_string(out, text);
    return;
  }
  if (type == kDate) {
    append_json_string(out, text);  // already YYYY-MM-DD
    return;
  }
  char buf[64];
  if (type == kTimestamp) {
    std::string s(text);
    s[s.find(' ')] = 'T';
    append_json_string(out, s);
    return;
  }
  // timestamptz: local wall-clock time minus the offset, computed exactly in whole seconds.
  const std::int64_t local = days_from_civil(p.year, p.month, p.day) * 86400 +
                             std::int64_t{p.hour} * 3600 + std::int64_t{p.minute} * 60 +
                             std::int64_t{p.second};
  const std::int64_t utc = local - p.offset_seconds;
  std::int64_t days = utc / 86400;
  std::int64_t secs = utc % 86400;
  if (secs < 0) {
    secs += 86400;
    --days;
  }
  const Civil c = civil_from_days(days);
  if (c.year < 1) {  // would need BC / year-zero numbering: keep PostgreSQL's text
    append_json_string(out, text);
    return;
  }
  std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                static_cast<long long>(c.year), c.month, c.day,
                static_cast<long long>(secs / 3600), static_cast<long long>(secs / 60 % 60),
                static_cast<long long>(secs % 60));
  out.push_back('"');
  out += buf;
  if (!p.fraction.empty()) {
    out.push_back('.');
    out += p.fraction;
  }
  out += "Z\"";
}

// ---- arrays ----------------------------------------------------------------------------------

inline void append_scalar(std::string& out, Oid type, std::string_view text);

constexpr bool is_array_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

class ArrayParser {
 public:
  ArrayParser(Oid array_type, Oid elem, std::string_view text)
      : array_type_(array_type), elem_(elem), s_(text) {}

  void run(std::string& out) {
    // Optional dimension decoration, e.g. "[0:2]={1,2,3}" or "[1:1][-1:0]={{1,2}}": dropped.
    if (pos_ < s_.size() && s_[pos_] == '[') {
      const auto eq = s_.find('=', pos_);
      if (eq == std::string_view::npos) error("dimension decoration without '='");
      for (std::size_t k = pos_; k < eq; ++k) {
        const char c = s_[k];
        if (!is_digit(c) && c != '[' && c != ']' && c != ':' && c != '-' && c != '+')
          error("malformed dimension decoration");
      }
      pos_ = eq + 1;
    }
    skip_space();
    parse_level(out, 1);
    skip_space();
    if (pos_ != s_.size()) error("unexpected characters after the closing '}'");
  }

 private:
  [[noreturn]] void error(std::string_view what) const {
    fail(array_type_, std::string(what) + " at byte " + std::to_string(pos_), s_);
  }

  void skip_space() {
    while (pos_ < s_.size() && is_array_space(s_[pos_])) ++pos_;
  }

  void parse_level(std::string& out, int depth) {
    if (depth > kMaxArrayDepth) error("more than 6 array dimensions");
    if (pos_ >= s_.size() || s_[pos_] != '{') error("expected '{'");
    ++pos_;
    out.push_back('[');
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      out.push_back(']');
      return;
    }
    enum class Kind { unknown, sub, scalar } kind = Kind::unknown;
    for (bool first = true;; first = false) {
      if (!first) out.push_back(',');
      skip_space();
      if (pos_ >= s_.size()) error("unterminated array");
      if (s_[pos_] == '{') {
        if (kind == Kind::scalar) error("sub-array mixed with scalar elements");
        kind = Kind::sub;
        parse_level(out, depth + 1);
      } else {
        if (kind == Kind::sub) error("scalar element mixed with sub-arrays");
        kind = Kind::scalar;
        parse_element(out);
      }
      skip_space();
      if (pos_ >= s_.size()) error("unterminated array");
      if (s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (s_[pos_] == '}') {
        ++pos_;
        out.push_back(']');
        return;
      }
      error("expected ',' or '}'");
    }
  }

  void parse_element(std::string& out) {
    buf_.clear();
    if (s_[pos_] == '"') {
      ++pos_;
      for (;;) {
        if (pos_ >= s_.size()) error("unterminated quoted element");
        const char c = s_[pos_++];
        if (c == '"') break;
        if (c == '\\') {
          if (pos_ >= s_.size()) error("unterminated quoted element (trailing backslash)");
          buf_.push_back(s_[pos_++]);
        } else {
          buf_.push_back(c);
        }
      }
      append_scalar(out, elem_, buf_);
      return;
    }
    // Unquoted: up to an unescaped ',' or '}' (whitespace around it is not part of the value).
    std::size_t keep = 0;  // buf_ length up to the last escaped or non-space byte
    for (;;) {
      if (pos_ >= s_.size()) error("unterminated array");
      const char c = s_[pos_];
      if (c == ',' || c == '}') break;
      if (c == '{' || c == '"') error("unexpected '{' or '\"' inside an unquoted element");
      ++pos_;
      if (c == '\\') {
        if (pos_ >= s_.size()) error("trailing backslash");
        buf_.push_back(s_[pos_++]);
        keep = buf_.size();
      } else {
        buf_.push_back(c);
        if (!is_array_space(c)) keep = buf_.size();
      }
    }
    buf_.resize(keep);
    if (buf_.empty()) error("empty unquoted element");
    if (buf_.size() == 4 && (buf_[0] | 0x20) == 'n' && (buf_[1] | 0x20) == 'u' &&
        (buf_[2] | 0x20) == 'l' && (buf_[3] | 0x20) == 'l') {
      // Only an unquoted, unescaped NULL is SQL NULL; PostgreSQL quotes a "NULL" string.
      out += "null";
      return;
    }
    append_scalar(out, elem_, buf_);
  }

  Oid array_type_;
  Oid elem_;
  std::string_view s_;
  std::size_t pos_ = 0;
  std::string buf_;
};

inline void append_scalar(std::string& out, Oid type, std::string_view text) {
  using namespace type_oid;
  switch (type) {
    case kBool:
      if (text == "t") out += "true";
      else if (text == "f") out += "false";
      else fail(type, "expected 't' or 'f'", text);
      return;
    case kInt2: case kInt4: case kInt8: case kOid:
      if (!is_json_number(text, /*integer=*/true)) fail(type, "not an integer", text);
      out += text;
      return;
    case kFloat4: case kFloat8:
      if (text == "NaN" || text == "Infinity" || text == "-Infinity") {
        append_json_string(out, text);
      } else if (is_json_number(text, /*integer=*/false)) {
        // A server prints nothing beyond a double; a hostile stream could, and JSON readers refuse
        // such a number (RapidJSON any exponent over 308, even 0e+500).
        size_t e = text.find_first_of("eE");
        bool big_exponent = e != std::string_view::npos && std::strtol(std::string(text.substr(e + 1)).c_str(), nullptr, 10) > 308;
        if (big_exponent || std::isinf(std::strtod(std::string(text).c_str(), nullptr)))
          fail(type, "beyond the range of a double", text);
        out += text;
      } else {
        fail(type, "not a number", text);
      }
      return;
    case kJson: case kJsonb: {
      std::string_view t = text;
      while (!t.empty() && is_array_space(t.front())) t.remove_prefix(1);
      if (t.empty()) fail(type, "empty JSON text", text);
      // Embedded verbatim once checked: the stream is outside bytes, and one malformed value
      // would make the whole event unreadable.
      rapidjson::Reader reader;
      rapidjson::BaseReaderHandler<> ignore;
      rapidjson::MemoryStream ms(text.data(), text.size());
      rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> in(ms);
      constexpr unsigned kFlags = rapidjson::kParseValidateEncodingFlag | rapidjson::kParseStopWhenDoneFlag;
      if (!reader.Parse<kFlags>(in, ignore)) fail(type, "not JSON", text);
      while (ms.Tell() < text.size() && is_array_space(text[ms.Tell()])) ms.Take();
      if (ms.Tell() != text.size()) fail(type, "text after the JSON value", text);
      out += text;
      return;
    }
    case kBytea:
      append_bytea(out, text);
      return;
    case kDate: case kTimestamp: case kTimestamptz:
      append_date_time(out, type, text);
      return;
    default:
      break;
  }
  if (const Oid elem = array_element_type(type); elem != 0) {
    ArrayParser(type, elem, text).run(out);
    return;
  }
  // numeric (exact), text types, uuid, time, timetz, interval, and every unknown OID.
  append_json_string(out, text);
}

}  // namespace detail

/// Appends the JSON for one non-NULL column value given in PostgreSQL's text output form.
/// Throws ValueError on text that is malformed for `type` (see the policy at the top).
inline void append_json(std::string& out, Oid type, std::string_view text) {
  detail::append_scalar(out, type, text);
}

/// Convenience: the JSON for one value as a new string.
inline std::string to_json(Oid type, std::string_view text) {
  std::string out;
  append_json(out, type, text);
  return out;
}

}  // namespace edgeflow::pg
