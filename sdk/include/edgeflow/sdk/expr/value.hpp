// The values expressions compute: scalars, strings, and arrays/objects either borrowed from a
// message's document (no copy while the document is unchanged) or owned (built by functions,
// or materialised before the document is rewritten).
#pragma once

#include <edgeflow/sdk/host.hpp>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace edgeflow::sdk::expr {

// A run-time failure of one evaluation: the message is rejected with this reason.
struct EvalError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Val;
using Array = std::vector<Val>;
using Object = std::vector<std::pair<std::string, Val>>;

// A number that arrived as text a double cannot carry exactly (abi.h, value_number_text): it
// computes as the nearest double and is written back as the text, so copying it loses nothing.
struct ExactNumber {
  double approx;
  std::string text;
};

class Val {
 public:
  enum class Kind : uint8_t { null, boolean, integer, number, string, ref, array, object };

  Val() = default;
  Val(std::nullptr_t) {}
  Val(bool b) : v_(b) {}
  Val(int64_t i) : v_(i) {}
  Val(int i) : v_(int64_t(i)) {}
  Val(double d) : v_(d) {}
  Val(std::string s) : v_(std::move(s)) {}
  Val(std::string_view s) : v_(std::string(s)) {}
  Val(const char* s) : v_(std::string(s)) {}
  Val(Array a) : v_(std::make_shared<Array>(std::move(a))) {}
  Val(Object o) : v_(std::make_shared<Object>(std::move(o))) {}

  // A document value: scalars are copied, arrays and objects borrowed.
  static Val from(Value v) {
    switch (v.type()) {
      case EF_TYPE_NULL: return {};
      case EF_TYPE_BOOL: return Val(v.as_bool());
      case EF_TYPE_INT: return Val(v.as_int());
      case EF_TYPE_DOUBLE: {
        std::string_view text = v.number_text();
        if (text.empty()) return Val(v.as_double());
        Val r;
        r.v_ = std::make_shared<const ExactNumber>(ExactNumber{v.as_double(), std::string(text)});
        return r;
      }
      case EF_TYPE_STRING: return Val(v.as_string());
      default: {
        Val r;
        r.v_ = v;
        return r;
      }
    }
  }

  Kind kind() const {
    switch (v_.index()) {
      case 0: return Kind::null;
      case 1: return Kind::boolean;
      case 2: return Kind::integer;
      case 3: return Kind::number;
      case 4: return Kind::string;
      case 5: return Kind::ref;
      case 6: return Kind::array;
      case 7: return Kind::object;
      default: return Kind::number;
    }
  }
  bool is_null() const { return v_.index() == 0; }
  bool is_bool() const { return v_.index() == 1; }
  bool is_int() const { return v_.index() == 2; }
  bool is_number() const { return v_.index() == 2 || v_.index() == 3 || v_.index() == 8; }
  bool is_string() const { return v_.index() == 4; }
  bool is_array() const { return v_.index() == 6 || (v_.index() == 5 && ref().is_array()); }
  bool is_object() const { return v_.index() == 7 || (v_.index() == 5 && ref().is_object()); }

  bool as_bool() const { return std::get<bool>(v_); }
  int64_t as_int() const { return std::get<int64_t>(v_); }
  double as_double() const {
    if (v_.index() == 8) return exact()->approx;
    return is_int() ? double(as_int()) : std::get<double>(v_);
  }
  // The text of a number kept exactly, or nullptr.
  const ExactNumber* exact() const {
    auto* p = std::get_if<std::shared_ptr<const ExactNumber>>(&v_);
    return p ? p->get() : nullptr;
  }
  const std::string& as_string() const { return std::get<std::string>(v_); }
  Value ref() const { return std::get<Value>(v_); }
  const Array& array() const { return *std::get<std::shared_ptr<Array>>(v_); }
  const Object& object() const { return *std::get<std::shared_ptr<Object>>(v_); }

  // Elements and members, whether borrowed or owned.
  size_t size() const {
    if (v_.index() == 5) return ref().size();
    if (v_.index() == 6) return array().size();
    if (v_.index() == 7) return object().size();
    if (is_string()) return as_string().size();
    return 0;
  }
  Val at(size_t i) const {
    if (v_.index() == 5) return ref().is_array() && i < ref().size() ? from(ref().at(i)) : Val();
    if (v_.index() == 6) return i < array().size() ? array()[i] : Val();
    return {};
  }
  Val member(std::string_view name) const {
    if (v_.index() == 5) return ref().is_object() ? from(ref()[name]) : Val();
    if (v_.index() == 7)
      for (auto& [k, v] : object())
        if (k == name) return v;
    return {};
  }
  bool has(std::string_view name) const {
    if (v_.index() == 5) return ref().is_object() && bool(ref()[name]);
    if (v_.index() == 7)
      for (auto& [k, v] : object())
        if (k == name) return true;
    return false;
  }
  // i-th member of an object: name and value.
  std::pair<std::string, Val> member_at(size_t i) const {
    if (v_.index() == 5) {
      auto [n, v] = ref().member(i);
      return {std::string(n), from(v)};
    }
    return object().at(i);
  }

  // An owned deep copy: safe to keep after the document it came from changes.
  Val materialize() && {
    if (v_.index() >= 5) return std::as_const(*this).materialize();
    return std::move(*this);
  }
  Val materialize() const& {
    if (v_.index() == 6) {
      Array a;
      for (auto& e : array()) a.push_back(e.materialize());
      return Val(std::move(a));
    }
    if (v_.index() == 7) {
      Object o;
      for (auto& [k, e] : object()) o.emplace_back(k, e.materialize());
      return Val(std::move(o));
    }
    if (v_.index() != 5) return *this;
    if (ref().is_array()) {
      Array a;
      for (size_t i = 0; i < size(); ++i) a.push_back(at(i).materialize());
      return Val(std::move(a));
    }
    Object o;
    for (size_t i = 0; i < size(); ++i) {
      auto [n, v] = member_at(i);
      o.emplace_back(std::move(n), v.materialize());
    }
    return Val(std::move(o));
  }

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, Value, std::shared_ptr<Array>,
               std::shared_ptr<Object>, std::shared_ptr<const ExactNumber>>
      v_;
};

inline const char* type_name(const Val& v) {
  switch (v.kind()) {
    case Val::Kind::null: return "null";
    case Val::Kind::boolean: return "bool";
    case Val::Kind::integer: return "int";
    case Val::Kind::number: return "float";
    case Val::Kind::string: return "string";
    default: return v.is_array() ? "array" : "object";
  }
}

// Shortest text that reads back as the same double; integral values keep a ".0" off.
inline void append_number(std::string& out, double d) {
  if (!std::isfinite(d)) throw EvalError("cannot represent " + std::to_string(d) + " in JSON");
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  out.append(buf, r.ptr);
}

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629: no overlongs, no surrogates,
// nothing past U+10FFFF), or 0.
inline size_t utf8_sequence(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : 0u; };
  unsigned c = b(0);
  auto cont = [&](size_t k) { return (b(k) & 0xC0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return b(1) >= lo && b(1) <= hi && cont(2) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return b(1) >= lo && b(1) <= hi && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

inline bool is_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) {
      ++i;
      continue;
    }
    size_t n = utf8_sequence(s, i);
    if (!n) return false;
    i += n;
  }
  return true;
}

// `s` with every byte that is not part of well-formed UTF-8 replaced by U+FFFD.
inline std::string valid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    size_t n = static_cast<unsigned char>(s[i]) < 0x80 ? 1 : utf8_sequence(s, i);
    if (n) out.append(s.substr(i, n));
    else out += "\xEF\xBF\xBD";
    i += n ? n : 1;
  }
  return out;
}

// Standard base64 with padding (RFC 4648), for bytes JSON cannot carry as text.
inline void append_base64(std::string& out, std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = uint32_t(at(i)) << 16 | uint32_t(at(i + 1)) << 8 | at(i + 2);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (size_t left = bytes.size() - i) {
    uint32_t v = uint32_t(at(i)) << 16 | (left == 2 ? uint32_t(at(i + 1)) << 8 : 0);
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += left == 2 ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
}

// Standard base64 with padding, strictly (RFC 4648: no line breaks, no missing or inner '=',
// unused bits zero, so one text decodes only one way); false on anything else.
inline bool decode_base64(std::string_view text, std::string& out) {
  auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (text.size() % 4) return false;
  out.clear();
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    bool last = i + 4 == text.size();
    size_t pad = last ? (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=') : 0;
    uint32_t v = 0;
    for (size_t k = 0; k < 4 - pad; ++k) {
      int s = sextet(text[i + k]);
      if (s < 0) return false;
      v = v << 6 | uint32_t(s);
    }
    v <<= 6 * pad;
    if ((pad == 1 && (v & 0xFF)) || (pad == 2 && (v & 0xFFFF))) return false;
    out.push_back(char(v >> 16));
    if (pad < 2) out.push_back(char(v >> 8 & 0xFF));
    if (pad < 1) out.push_back(char(v & 0xFF));
  }
  return true;
}

// JSON string literal; runs of plain bytes are appended whole. Bytes that are not UTF-8 become
// U+FFFD: what edgeflow writes is always valid JSON, whatever arrived.
inline void append_json_string(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  size_t run = 0;  // start of the pending run of bytes needing no escape
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') continue;
    if (c >= 0x80) {
      if (size_t n = utf8_sequence(s, i)) {
        i += n - 1;
        continue;
      }
      out.append(s.data() + run, i - run);
      run = i + 1;
      out += "\xEF\xBF\xBD";
      continue;
    }
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

inline void append_json(std::string& out, const Val& v) {
  switch (v.kind()) {
    case Val::Kind::null: out += "null"; return;
    case Val::Kind::boolean: out += v.as_bool() ? "true" : "false"; return;
    case Val::Kind::integer: out += std::to_string(v.as_int()); return;
    case Val::Kind::number:
      if (const ExactNumber* n = v.exact()) out += n->text;
      else append_number(out, v.as_double());
      return;
    case Val::Kind::string: append_json_string(out, v.as_string()); return;
    default: break;
  }
  if (v.is_array()) {
    out.push_back('[');
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) out.push_back(',');
      append_json(out, v.at(i));
    }
    out.push_back(']');
    return;
  }
  out.push_back('{');
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out.push_back(',');
    auto [n, m] = v.member_at(i);
    append_json_string(out, n);
    out.push_back(':');
    append_json(out, m);
  }
  out.push_back('}');
}

// Text of a value as templates and string() give it: strings as they are, the rest as JSON.
inline std::string to_text(const Val& v) {
  if (v.is_string()) return v.as_string();
  std::string s;
  append_json(s, v);
  return s;
}

// A small strict JSON reader for json_decode(): RFC 8259, UTF-8 passed through.
class JsonReader {
 public:
  explicit JsonReader(std::string_view s) : s_(s) {}
  Val read() {
    Val v = value(0);
    ws();
    if (i_ != s_.size()) fail("unexpected text after the value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) {
    throw EvalError("json_decode: " + what + " at offset " + std::to_string(i_));
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\n' || s_[i_] == '\r' || s_[i_] == '\t')) ++i_;
  }
  bool lit(std::string_view w) {
    if (s_.substr(i_, w.size()) != w) return false;
    i_ += w.size();
    return true;
  }
  Val value(int depth) {
    if (depth > 256) fail("nesting deeper than 256");
    ws();
    if (i_ >= s_.size()) fail("unexpected end");
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      Object o;
      ws();
      if (i_ < s_.size() && s_[i_] == '}') return ++i_, Val(std::move(o));
      for (;;) {
        ws();
        if (i_ >= s_.size() || s_[i_] != '"') fail("expected a member name");
        std::string k = str();
        ws();
        if (i_ >= s_.size() || s_[i_++] != ':') fail("expected ':'");
        o.emplace_back(std::move(k), value(depth + 1));
        ws();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        if (i_ < s_.size() && s_[i_] == '}') { ++i_; return Val(std::move(o)); }
        fail("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++i_;
      Array a;
      ws();
      if (i_ < s_.size() && s_[i_] == ']') return ++i_, Val(std::move(a));
      for (;;) {
        a.push_back(value(depth + 1));
        ws();
        if (i_ < s_.size() && s_[i_] == ',') { ++i_; continue; }
        if (i_ < s_.size() && s_[i_] == ']') { ++i_; return Val(std::move(a)); }
        fail("expected ',' or ']'");
      }
    }
    if (c == '"') return Val(str());
    if (lit("true")) return Val(true);
    if (lit("false")) return Val(false);
    if (lit("null")) return Val();
    return number();
  }
  Val number() {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    bool integral = true;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' ||
                              s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-')) {
      if (!std::isdigit(static_cast<unsigned char>(s_[i_]))) integral = false;
      ++i_;
    }
    std::string_view t = s_.substr(start, i_ - start);
    if (t.empty() || t == "-") fail("expected a value");
    // RFC 8259: a digit first, and no leading zero before another digit (01, .5 and -.5 are not JSON).
    std::string_view digits = t.front() == '-' ? t.substr(1) : t;
    if (digits.empty() || !std::isdigit(static_cast<unsigned char>(digits.front())) ||
        (digits.size() > 1 && digits[0] == '0' && std::isdigit(static_cast<unsigned char>(digits[1]))))
      fail("bad number '" + std::string(t) + "'");
    if (integral) {
      int64_t v = 0;
      auto r = std::from_chars(t.data(), t.data() + t.size(), v);
      if (r.ec == std::errc() && r.ptr == t.data() + t.size()) return Val(v);
    }
    double d = 0;
    auto r = std::from_chars(t.data(), t.data() + t.size(), d);
    if (r.ec != std::errc() || r.ptr != t.data() + t.size()) fail("bad number '" + std::string(t) + "'");
    return Val(d);
  }
  void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) out.push_back(char(cp));
    else if (cp < 0x800) { out.push_back(char(0xC0 | (cp >> 6))); out.push_back(char(0x80 | (cp & 0x3F))); }
    else if (cp < 0x10000) {
      out.push_back(char(0xE0 | (cp >> 12)));
      out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(char(0xF0 | (cp >> 18)));
      out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    }
  }
  uint32_t hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  std::string str() {
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in a string");
      if (c != '\\') { out.push_back(c); continue; }
      if (i_ >= s_.size()) break;
      switch (s_[i_++]) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && lit("\\u")) {
            uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
    if (i_ >= s_.size()) fail("unterminated string");
    ++i_;
    return out;
  }

  std::string_view s_;
  size_t i_ = 0;
};

// Writes v into the document value dst of message m (deep-copying borrowed values).
inline void assign(Message m, Value dst, const Val& v) {
  switch (v.kind()) {
    case Val::Kind::null: m.set(dst, nullptr); return;
    case Val::Kind::boolean: m.set(dst, v.as_bool()); return;
    case Val::Kind::integer: m.set(dst, v.as_int()); return;
    case Val::Kind::number:
      if (const ExactNumber* n = v.exact(); n && m.set_number(dst, n->text)) return;
      if (!std::isfinite(v.as_double())) throw EvalError("cannot write " + std::to_string(v.as_double()) + " into JSON");
      m.set(dst, v.as_double());
      return;
    case Val::Kind::string: m.set(dst, std::string_view(v.as_string())); return;
    case Val::Kind::ref: m.copy(dst, v.ref()); return;
    case Val::Kind::array:
      m.make_array(dst);
      for (auto& e : v.array()) assign(m, m.push(dst), e);
      return;
    case Val::Kind::object:
      m.make_object(dst);
      for (auto& [k, e] : v.object()) assign(m, m.put(dst, k), e);
      return;
  }
}

}  // namespace edgeflow::sdk::expr
