// The expression language: one syntax for map fields, route and filter conditions, keys, and
// topic or URL templates. Compiled once when a flow loads (syntax, unknown functions, arity and
// literal type errors are reported then, with the offset in the text); evaluated per message
// against its host-parsed document, which is never re-parsed. See docs/expressions.md.
//
//   auto e = expr::compile_option(context(), "when", cfg.when);   // throws Error at load
//   if (e.test(message)) ...                                       // throws EvalError per message
#pragma once

#include <edgeflow/sdk/config.hpp>
#include <edgeflow/sdk/expr/builtins.hpp>
#include <edgeflow/sdk/expr/value.hpp>
#include <edgeflow/sdk/host.hpp>
#include <edgeflow/sdk/suggest.hpp>

#include <regex.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace edgeflow::sdk::expr {

// A load-time error at offset `pos` of the expression text.
struct CompileError : std::runtime_error {
  CompileError(size_t p, const std::string& what) : std::runtime_error(what), pos(p) {}
  size_t pos;
};

using Table = std::unordered_map<std::string, Val>;
using Tables = std::map<std::string, Table>;

// What an expression may refer to besides the message: lookup tables declared in config. The
// tables must outlive the expressions compiled against them.
struct Env {
  const Tables* tables = nullptr;
};

namespace detail {

// Static types, as bit masks: what a node may evaluate to.
inline constexpr uint8_t TN = 1, TB = 2, TI = 4, TF = 8, TS = 16, TA = 32, TO = 64, TNUM = TI | TF, TANY = 127;

inline uint8_t type_of(const Val& v) {
  switch (v.kind()) {
    case Val::Kind::null: return TN;
    case Val::Kind::boolean: return TB;
    case Val::Kind::integer: return TI;
    case Val::Kind::number: return TF;
    case Val::Kind::string: return TS;
    default: return v.is_array() ? TA : TO;
  }
}

inline std::string mask_name(uint8_t m) {
  static const char* names[] = {"null", "bool", "int", "float", "string", "array", "object"};
  std::string s;
  for (int i : {1, 2, 3, 4, 5, 6, 0})  // null last: "bool or null" reads better
    if (m & (1 << i)) s += (s.empty() ? "" : " or ") + std::string(names[i]);
  return s;
}

enum class Op : uint8_t {
  lit, path, meta, header, msg_attr, index, list, object, neg, not_, add, sub, mul, div, mod,
  eq, ne, lt, le, gt, ge, in, not_in, and_, or_, coalesce, cond, call, exists, lookup
};

struct Seg {
  std::string name;
  int64_t index = -1;  // >= 0: an array index
  // Where the member was found last time: events of one source share their shape, so this
  // usually saves the search (flows run on one thread; a stale hint only costs the search).
  mutable size_t hint = 0;
};

struct Node;
using Fn = Val (*)(const Node& call, std::span<Val> args);

struct FnSpec {
  const char* name;
  uint8_t min_args, max_args;
  uint8_t params[3];  // type masks of the first arguments; the last one repeats
  uint8_t result;
  Fn fn;
};

struct Regex {
  regex_t re{};
  size_t groups = 0;
  explicit Regex(const std::string& pattern, size_t pos) {
    int rc = regcomp(&re, pattern.c_str(), REG_EXTENDED);
    if (rc != 0) {
      char buf[256];
      regerror(rc, &re, buf, sizeof buf);
      throw CompileError(pos, "bad regular expression '" + pattern + "': " + buf);
    }
    groups = re.re_nsub;
  }
  ~Regex() { regfree(&re); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
};

struct Node {
  Op op = Op::lit;
  uint8_t type = TANY;
  uint32_t pos = 0;
  Val lit;
  std::vector<Seg> path;  // Op::path: segments from the document root
  std::string name;       // meta/header/msg attribute, object member names (joined), lookup table
  std::vector<std::string> names;  // Op::object: member names
  const FnSpec* fn = nullptr;
  const Table* table = nullptr;
  std::shared_ptr<Regex> regex;
  std::vector<Node> kids;
};

[[noreturn]] inline void eval_fail(const std::string& what) { throw EvalError(what); }

// --- text helpers --------------------------------------------------------------------------

inline size_t utf8_length(std::string_view s) {
  size_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++n;
  return n;
}

// Byte offset of code point i (or s.size()).
inline size_t utf8_offset(std::string_view s, int64_t i) {
  size_t at = 0;
  for (int64_t k = 0; k < i && at < s.size(); ++k) {
    ++at;
    while (at < s.size() && (static_cast<unsigned char>(s[at]) & 0xC0) == 0x80) ++at;
  }
  return at;
}

inline std::string lower_ascii(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}
inline std::string upper_ascii(std::string s) {
  for (char& c : s)
    if (c >= 'a' && c <= 'z') c = char(c - 'a' + 'A');
  return s;
}

// --- numbers -------------------------------------------------------------------------------

inline double number_of(const Val& v, const char* what) {
  if (!v.is_number()) eval_fail(std::string(what) + ": expected a number, got " + type_name(v));
  return v.as_double();
}

// A double within 1e-9 (relative) of an integer counts as that integer: int(12.34 * 100) is
// 1234, not 1233.
inline int64_t to_int(double d, const char* what) {
  if (!std::isfinite(d) || std::fabs(d) >= 9.2e18) eval_fail(std::string(what) + ": " + std::to_string(d) + " does not fit an int");
  double r = std::round(d);
  if (std::fabs(d - r) <= 1e-9 * std::max(1.0, std::fabs(d))) return int64_t(r);
  return int64_t(std::trunc(d));
}

inline Val parse_number_text(const std::string& s, bool want_int, const char* what) {
  std::string_view t(s);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.front()))) t.remove_prefix(1);
  while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.remove_suffix(1);
  int64_t i = 0;
  auto r = std::from_chars(t.data(), t.data() + t.size(), i);
  if (!t.empty() && r.ec == std::errc() && r.ptr == t.data() + t.size()) return want_int ? Val(i) : Val(double(i));
  double d = 0;
  auto rd = std::from_chars(t.data(), t.data() + t.size(), d);
  if (t.empty() || rd.ec != std::errc() || rd.ptr != t.data() + t.size())
    eval_fail(std::string(what) + ": '" + s + "' is not a number");
  return want_int ? Val(to_int(d, what)) : Val(d);
}

// --- functions -----------------------------------------------------------------------------

inline const std::string& str_arg(std::span<const Val> a, size_t i, const char* fn) {
  if (!a[i].is_string())
    eval_fail(std::string(fn) + ": argument " + std::to_string(i + 1) + " must be a string, got " + type_name(a[i]));
  return a[i].as_string();
}
inline int64_t int_arg(std::span<const Val> a, size_t i, const char* fn) {
  if (!a[i].is_number())
    eval_fail(std::string(fn) + ": argument " + std::to_string(i + 1) + " must be a number, got " + type_name(a[i]));
  return to_int(a[i].as_double(), fn);
}

inline Val f_lower(const Node&, std::span<Val> a) { return Val(lower_ascii(str_arg(a, 0, "lower"))); }
inline Val f_upper(const Node&, std::span<Val> a) { return Val(upper_ascii(str_arg(a, 0, "upper"))); }
inline Val f_trim(const Node&, std::span<Val> a) {
  const std::string& s = str_arg(a, 0, "trim");
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? Val(std::string()) : Val(s.substr(b, e - b + 1));
}
inline Val f_concat(const Node&, std::span<Val> a) {
  std::string s;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].is_null()) eval_fail("concat: argument " + std::to_string(i + 1) + " is null");
    s += to_text(a[i]);
  }
  return Val(std::move(s));
}
inline Val f_substr(const Node&, std::span<Val> a) {
  const std::string& s = str_arg(a, 0, "substr");
  int64_t start = int_arg(a, 1, "substr");
  int64_t n = int64_t(utf8_length(s));
  if (start < 0) start = std::max<int64_t>(0, n + start);
  int64_t len = a.size() > 2 ? int_arg(a, 2, "substr") : n;
  if (len < 0) eval_fail("substr: length must not be negative");
  start = std::min(start, n);
  size_t b = utf8_offset(s, start), e = utf8_offset(s, start + std::min(len, n - start));
  return Val(s.substr(b, e > b ? e - b : 0));
}
inline Val f_replace(const Node&, std::span<Val> a) {
  std::string s = str_arg(a, 0, "replace");
  const std::string& from = str_arg(a, 1, "replace");
  const std::string& to = str_arg(a, 2, "replace");
  if (from.empty()) eval_fail("replace: the text to replace is empty");
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return Val(std::move(s));
}
inline Val f_split(const Node&, std::span<Val> a) {
  const std::string& s = str_arg(a, 0, "split");
  const std::string& sep = str_arg(a, 1, "split");
  if (sep.empty()) eval_fail("split: the separator is empty");
  Array out;
  size_t at = 0;
  for (size_t next; (next = s.find(sep, at)) != std::string::npos; at = next + sep.size()) out.emplace_back(s.substr(at, next - at));
  out.emplace_back(s.substr(at));
  return Val(std::move(out));
}
inline Val f_length(const Node&, std::span<Val> a) {
  if (a[0].is_string()) return Val(int64_t(utf8_length(a[0].as_string())));
  if (a[0].is_array() || a[0].is_object()) return Val(int64_t(a[0].size()));
  eval_fail(std::string("length: expected a string, array or object, got ") + type_name(a[0]));
}
inline Val f_starts_with(const Node&, std::span<Val> a) {
  return Val(std::string_view(str_arg(a, 0, "starts_with")).starts_with(str_arg(a, 1, "starts_with")));
}
inline Val f_ends_with(const Node&, std::span<Val> a) {
  return Val(std::string_view(str_arg(a, 0, "ends_with")).ends_with(str_arg(a, 1, "ends_with")));
}
inline Val f_contains(const Node&, std::span<Val> a) {
  return Val(str_arg(a, 0, "contains").find(str_arg(a, 1, "contains")) != std::string::npos);
}
inline Val f_regex_match(const Node& n, std::span<Val> a) {
  const std::string& s = str_arg(a, 0, "regex_match");
  return Val(regexec(&n.regex->re, s.c_str(), 0, nullptr, 0) == 0);
}
inline Val f_regex_extract(const Node& n, std::span<Val> a) {
  const std::string& s = str_arg(a, 0, "regex_extract");
  size_t group = n.kids.size() > 2 ? size_t(n.kids[2].lit.as_int()) : 0;
  std::vector<regmatch_t> m(n.regex->groups + 1);
  if (regexec(&n.regex->re, s.c_str(), m.size(), m.data(), 0) != 0 || m[group].rm_so < 0) return {};
  return Val(s.substr(size_t(m[group].rm_so), size_t(m[group].rm_eo - m[group].rm_so)));
}
inline Val f_int(const Node&, std::span<Val> a) {
  if (a[0].is_int()) return a[0];
  if (a[0].is_number()) return Val(to_int(a[0].as_double(), "int"));
  if (a[0].is_string()) return parse_number_text(a[0].as_string(), true, "int");
  if (a[0].is_bool()) return Val(int64_t(a[0].as_bool()));
  eval_fail(std::string("int: cannot convert ") + type_name(a[0]));
}
inline Val f_float(const Node&, std::span<Val> a) {
  if (a[0].is_number()) return Val(a[0].as_double());
  if (a[0].is_string()) return parse_number_text(a[0].as_string(), false, "float");
  eval_fail(std::string("float: cannot convert ") + type_name(a[0]));
}
inline Val f_round(const Node&, std::span<Val> a) {
  double d = number_of(a[0], "round");
  int64_t digits = a.size() > 1 ? int_arg(a, 1, "round") : 0;
  if (digits == 0) return Val(to_int(std::round(d), "round"));
  // Powers of ten up to 1e22 are exact doubles: a table lookup, not pow(), for the usual case.
  static constexpr double kPow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                      1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
  double scale = digits > 0 && digits <= 22 ? kPow10[digits] : std::pow(10.0, double(digits));
  double r = std::round(d * scale) / scale;
  if (!std::isfinite(r)) eval_fail("round: " + std::to_string(digits) + " digits is out of range");
  return Val(r);
}
inline Val f_string(const Node&, std::span<Val> a) { return Val(to_text(a[0])); }
inline Val f_now(const Node&, std::span<Val>) { return Val(builtin::now_ms()); }
inline Val f_parse_time(const Node&, std::span<Val> a) {
  if (a[0].is_number()) return Val(to_int(a[0].as_double(), "parse_time"));
  return Val(builtin::parse_iso8601(str_arg(a, 0, "parse_time")));
}
inline Val f_format_time(const Node&, std::span<Val> a) {
  int64_t ms = a[0].is_string() ? builtin::parse_iso8601(a[0].as_string()) : int_arg(a, 0, "format_time");
  return Val(builtin::format_iso8601(ms));
}
inline Val f_sha256(const Node&, std::span<Val> a) { return Val(builtin::sha256_hex(to_text(a[0]))); }
inline Val f_hmac(const Node&, std::span<Val> a) {
  return Val(builtin::hmac_sha256_hex(str_arg(a, 0, "hmac_sha256"), to_text(a[1])));
}
inline Val f_uuid(const Node&, std::span<Val>) { return Val(builtin::uuid4()); }
inline Val f_json_encode(const Node&, std::span<Val> a) {
  std::string s;
  append_json(s, a[0]);
  return Val(std::move(s));
}
inline Val f_json_decode(const Node&, std::span<Val> a) { return JsonReader(str_arg(a, 0, "json_decode")).read(); }
inline Val f_type(const Node&, std::span<Val> a) { return Val(type_name(a[0])); }
inline Val f_is_null(const Node&, std::span<Val> a) { return Val(a[0].is_null()); }
inline Val f_is_string(const Node&, std::span<Val> a) { return Val(a[0].is_string()); }
inline Val f_is_number(const Node&, std::span<Val> a) { return Val(a[0].is_number()); }
inline Val f_is_int(const Node&, std::span<Val> a) { return Val(a[0].is_int()); }
inline Val f_is_bool(const Node&, std::span<Val> a) { return Val(a[0].is_bool()); }
inline Val f_is_array(const Node&, std::span<Val> a) { return Val(a[0].is_array()); }
inline Val f_is_object(const Node&, std::span<Val> a) { return Val(a[0].is_object()); }

// coalesce, exists and lookup are special forms, handled by the evaluator.
inline const std::vector<FnSpec>& functions() {
  static const std::vector<FnSpec> fns = {
      {"lower", 1, 1, {TS}, TS, f_lower},
      {"upper", 1, 1, {TS}, TS, f_upper},
      {"trim", 1, 1, {TS}, TS, f_trim},
      {"concat", 1, 255, {TANY}, TS, f_concat},
      {"substr", 2, 3, {TS, TNUM, TNUM}, TS, f_substr},
      {"replace", 3, 3, {TS}, TS, f_replace},
      {"split", 2, 2, {TS}, TA, f_split},
      {"length", 1, 1, {TS | TA | TO}, TI, f_length},
      {"starts_with", 2, 2, {TS}, TB, f_starts_with},
      {"ends_with", 2, 2, {TS}, TB, f_ends_with},
      {"contains", 2, 2, {TS}, TB, f_contains},
      {"regex_match", 2, 2, {TS}, TB, f_regex_match},
      {"regex_extract", 2, 3, {TS, TS, TI}, TS | TN, f_regex_extract},
      {"int", 1, 1, {TNUM | TS | TB}, TI, f_int},
      {"float", 1, 1, {TNUM | TS}, TF, f_float},
      {"round", 1, 2, {TNUM, TNUM}, TNUM, f_round},
      {"string", 1, 1, {TANY}, TS, f_string},
      {"now", 0, 0, {TANY}, TI, f_now},
      {"parse_time", 1, 1, {TS | TNUM}, TI, f_parse_time},
      {"format_time", 1, 1, {TNUM | TS}, TS, f_format_time},
      {"sha256", 1, 1, {TANY}, TS, f_sha256},
      {"hmac_sha256", 2, 2, {TS, TANY}, TS, f_hmac},
      {"uuid", 0, 0, {TANY}, TS, f_uuid},
      {"json_encode", 1, 1, {TANY}, TS, f_json_encode},
      {"json_decode", 1, 1, {TS}, TANY, f_json_decode},
      {"type", 1, 1, {TANY}, TS, f_type},
      {"is_null", 1, 1, {TANY}, TB, f_is_null},
      {"is_string", 1, 1, {TANY}, TB, f_is_string},
      {"is_number", 1, 1, {TANY}, TB, f_is_number},
      {"is_int", 1, 1, {TANY}, TB, f_is_int},
      {"is_bool", 1, 1, {TANY}, TB, f_is_bool},
      {"is_array", 1, 1, {TANY}, TB, f_is_array},
      {"is_object", 1, 1, {TANY}, TB, f_is_object},
      {"coalesce", 1, 255, {TANY}, TANY, nullptr},
      {"exists", 1, 1, {TANY}, TB, nullptr},
      {"lookup", 2, 3, {TS, TANY, TANY}, TANY, nullptr},
  };
  return fns;
}

// --- lexer and parser ----------------------------------------------------------------------

enum class Tok : uint8_t { end, num, str, ident, punct };

struct Token {
  Tok kind = Tok::end;
  std::string text;  // identifier, punctuation, or the decoded string
  Val num;
  size_t pos = 0;
};

class Parser {
 public:
  Parser(std::string_view src, size_t start, const Env& env) : s_(src), i_(start), env_(env) { next(); }

  Node parse() { return conditional(); }
  const Token& peek() const { return tok_; }
  size_t offset() const { return tok_.pos; }
  void expect_end() {
    if (tok_.kind != Tok::end) fail(tok_.pos, "unexpected '" + tok_.text + "' after the expression");
  }
  void expect_punct(const char* p) {
    if (!is(p)) fail(tok_.pos, std::string("expected '") + p + "'" + found());
    next();
  }

 private:
  [[noreturn]] static void fail(size_t pos, const std::string& what) { throw CompileError(pos, what); }
  std::string found() const {
    return tok_.kind == Tok::end ? " but the expression ends" : ", found '" + tok_.text + "'";
  }
  bool is(const char* p) const { return tok_.kind == Tok::punct && tok_.text == p; }
  bool is_word(const char* w) const { return tok_.kind == Tok::ident && tok_.text == w; }

  void next() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    tok_ = Token{};
    tok_.pos = i_;
    if (i_ >= s_.size()) return;
    char c = s_[i_];
    if (std::isdigit(static_cast<unsigned char>(c))) return number();
    if (c == '"' || c == '\'') return string(c);
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t b = i_;
      while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_')) ++i_;
      tok_.kind = Tok::ident;
      tok_.text = std::string(s_.substr(b, i_ - b));
      return;
    }
    static const char* two[] = {"??", "==", "!=", "<=", ">=", "&&", "||"};
    for (const char* t : two) {
      if (s_.substr(i_, 2) == t) {
        tok_.kind = Tok::punct;
        tok_.text = t;
        i_ += 2;
        return;
      }
    }
    if (std::string_view(".,()[]{}?:+-*/%<>!").find(c) == std::string_view::npos) fail(i_, std::string("unexpected character '") + c + "'");
    tok_.kind = Tok::punct;
    tok_.text = std::string(1, c);
    ++i_;
  }
  void number() {
    size_t b = i_;
    bool frac = false;
    while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    if (i_ + 1 < s_.size() && s_[i_] == '.' && std::isdigit(static_cast<unsigned char>(s_[i_ + 1]))) {
      frac = true;
      ++i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      frac = true;
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
    }
    std::string_view t = s_.substr(b, i_ - b);
    tok_.kind = Tok::num;
    tok_.text = std::string(t);
    if (frac) {
      double d = 0;
      std::from_chars(t.data(), t.data() + t.size(), d);
      tok_.num = Val(d);
    } else {
      int64_t v = 0;
      if (std::from_chars(t.data(), t.data() + t.size(), v).ec != std::errc()) fail(b, "integer " + tok_.text + " is too large");
      tok_.num = Val(v);
    }
  }
  void string(char quote) {
    size_t b = i_++;
    std::string out;
    while (i_ < s_.size() && s_[i_] != quote) {
      char c = s_[i_++];
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i_ >= s_.size()) break;
      char e = s_[i_++];
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case '\\': case '\'': case '"': out.push_back(e); break;
        default: fail(i_ - 2, std::string("unknown escape '\\") + e + "' in a string");
      }
    }
    if (i_ >= s_.size()) fail(b, "unterminated string; close it with " + std::string(1, quote));
    ++i_;
    tok_.kind = Tok::str;
    tok_.text = std::move(out);
  }

  static Node make(Op op, size_t pos, uint8_t type) {
    Node n;
    n.op = op;
    n.pos = uint32_t(pos);
    n.type = type;
    return n;
  }
  static Node binary(Op op, size_t pos, Node l, Node r, uint8_t type) {
    Node n = make(op, pos, type);
    n.kids.push_back(std::move(l));
    n.kids.push_back(std::move(r));
    return n;
  }
  static void require(const Node& n, uint8_t allowed, const std::string& what) {
    if (!(n.type & allowed)) fail(n.pos, what + " needs " + mask_name(allowed) + ", not " + mask_name(n.type));
  }

  // Every way the grammar recurses passes through conditional(), logic_not() or unary(): each
  // counts a level, so hostile text cannot exhaust the stack ("((((...", "!!!!...", "----...").
  static constexpr int kMaxDepth = 64;
  struct Deeper {
    explicit Deeper(Parser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) fail(p_.tok_.pos, "the expression nests deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    ~Deeper() { --p_.depth_; }
    Parser& p_;
  };

  Node conditional() {
    Deeper level(*this);
    Node c = coalesce();
    if (!is("?")) return c;
    size_t pos = tok_.pos;
    next();
    require(c, TB | TN, "the condition of ?:");
    Node a = conditional();
    expect_punct(":");
    Node b = conditional();
    Node n = make(Op::cond, pos, uint8_t(a.type | b.type));
    n.kids.push_back(std::move(c));
    n.kids.push_back(std::move(a));
    n.kids.push_back(std::move(b));
    return n;
  }
  Node coalesce() {
    Node l = logic_or();
    while (is("??")) {
      size_t pos = tok_.pos;
      next();
      Node r = logic_or();
      uint8_t t = uint8_t((l.type & ~TN) | r.type);
      l = binary(Op::coalesce, pos, std::move(l), std::move(r), t ? t : uint8_t(TN));
    }
    return l;
  }
  Node logic_or() {
    Node l = logic_and();
    while (is("||") || is_word("or")) {
      size_t pos = tok_.pos;
      next();
      Node r = logic_and();
      require(l, TB | TN, "'or'");
      require(r, TB | TN, "'or'");
      l = binary(Op::or_, pos, std::move(l), std::move(r), TB);
    }
    return l;
  }
  Node logic_and() {
    Node l = logic_not();
    while (is("&&") || is_word("and")) {
      size_t pos = tok_.pos;
      next();
      Node r = logic_not();
      require(l, TB | TN, "'and'");
      require(r, TB | TN, "'and'");
      l = binary(Op::and_, pos, std::move(l), std::move(r), TB);
    }
    return l;
  }
  Node logic_not() {
    Deeper level(*this);
    if (is("!") || is_word("not")) {
      size_t pos = tok_.pos;
      next();
      Node x = logic_not();
      require(x, TB | TN, "'not'");
      Node n = make(Op::not_, pos, TB);
      n.kids.push_back(std::move(x));
      return n;
    }
    return comparison();
  }
  Node comparison() {
    Node l = additive();
    static const std::pair<const char*, Op> ops[] = {{"==", Op::eq}, {"!=", Op::ne}, {"<=", Op::le},
                                                     {">=", Op::ge}, {"<", Op::lt},  {">", Op::gt}};
    for (auto& [p, op] : ops) {
      if (!is(p)) continue;
      size_t pos = tok_.pos;
      next();
      Node r = additive();
      if (op != Op::eq && op != Op::ne) {
        require(l, TNUM | TS | TN, std::string("'") + p + "'");
        require(r, TNUM | TS | TN, std::string("'") + p + "'");
      }
      return binary(op, pos, std::move(l), std::move(r), TB);
    }
    bool negated = false;
    size_t pos = tok_.pos;
    if (is_word("not")) {
      next();
      if (!is_word("in")) fail(tok_.pos, "expected 'in' after 'not'" + found());
      negated = true;
    }
    if (is_word("in")) {
      next();
      Node r = additive();
      require(r, TS | TA | TO, "the right side of 'in'");
      return binary(negated ? Op::not_in : Op::in, pos, std::move(l), std::move(r), TB);
    }
    return l;
  }
  Node additive() {
    Node l = multiplicative();
    while (is("+") || is("-")) {
      bool plus = is("+");
      size_t pos = tok_.pos;
      next();
      Node r = multiplicative();
      uint8_t allowed = plus ? uint8_t(TNUM | TS) : uint8_t(TNUM);
      require(l, allowed, plus ? "'+'" : "'-'");
      require(r, allowed, plus ? "'+'" : "'-'");
      uint8_t t = plus && ((l.type | r.type) & TS) ? uint8_t(TS | (l.type & r.type & TNUM)) : arith_type(l, r);
      l = binary(plus ? Op::add : Op::sub, pos, std::move(l), std::move(r), t);
    }
    return l;
  }
  static uint8_t arith_type(const Node& l, const Node& r) {
    return ((l.type | r.type) & TF) ? uint8_t(((l.type & r.type & TI) ? TI : 0) | TF) : uint8_t(TI);
  }
  Node multiplicative() {
    Node l = unary();
    while (is("*") || is("/") || is("%")) {
      std::string p = tok_.text;
      size_t pos = tok_.pos;
      next();
      Node r = unary();
      require(l, TNUM, "'" + p + "'");
      require(r, TNUM, "'" + p + "'");
      Op op = p == "*" ? Op::mul : p == "/" ? Op::div : Op::mod;
      l = binary(op, pos, std::move(l), std::move(r), op == Op::div ? uint8_t(TF) : arith_type(l, r));
    }
    return l;
  }
  Node unary() {
    Deeper level(*this);
    if (is("-")) {
      size_t pos = tok_.pos;
      next();
      Node x = unary();
      require(x, TNUM, "unary '-'");
      if (x.op == Op::lit) {
        x.lit = x.lit.is_int() ? Val(-x.lit.as_int()) : Val(-x.lit.as_double());
        x.pos = uint32_t(pos);
        return x;
      }
      Node n = make(Op::neg, pos, x.type);
      n.kids.push_back(std::move(x));
      return n;
    }
    return postfix(primary());
  }
  Node postfix(Node n) {
    for (;;) {
      if (is(".")) {
        next();
        if (tok_.kind != Tok::ident) fail(tok_.pos, "expected a field name after '.'" + found());
        Seg seg{tok_.text};
        size_t pos = tok_.pos;
        next();
        n = extend(std::move(n), std::move(seg), pos, nullptr);
      } else if (is("[")) {
        size_t pos = tok_.pos;
        next();
        Node key = conditional();
        expect_punct("]");
        if (key.op == Op::lit && key.lit.is_string()) n = extend(std::move(n), Seg{key.lit.as_string()}, pos, nullptr);
        else if (key.op == Op::lit && key.lit.is_int() && key.lit.as_int() >= 0)
          n = extend(std::move(n), Seg{"", key.lit.as_int()}, pos, nullptr);
        else n = extend(std::move(n), Seg{}, pos, &key);
      } else {
        if ((n.op == Op::meta || n.op == Op::header || n.op == Op::msg_attr) && n.name.empty())
          fail(n.pos, "meta, headers and msg take a name: meta.topic, headers[\"x-id\"], msg.key");
        return n;
      }
    }
  }
  // Appends a member or index access: static ones extend a document path, the rest index.
  Node extend(Node n, Seg seg, size_t pos, Node* dynamic) {
    if (!dynamic && n.op == Op::path) {
      n.path.push_back(std::move(seg));
      return n;
    }
    if ((n.op == Op::meta || n.op == Op::header || n.op == Op::msg_attr) && n.name.empty()) {
      if (dynamic || seg.index >= 0) fail(pos, "meta, headers and msg take a name: meta.topic, headers[\"x-id\"]");
      n.name = seg.name;
      if (n.op == Op::msg_attr && n.name != "key" && n.name != "timestamp" && n.name != "content_type")
        fail(pos, "msg has key, timestamp and content_type, not '" + n.name + "'");
      n.type = n.op == Op::msg_attr && n.name == "timestamp" ? uint8_t(TI) : uint8_t(TS | TN);
      return n;
    }
    if (!(n.type & (TA | TO | TN))) fail(pos, "cannot index " + mask_name(n.type));
    Node idx = make(Op::index, pos, TANY);
    idx.kids.push_back(std::move(n));
    if (dynamic) {
      idx.kids.push_back(std::move(*dynamic));
    } else {
      Node k = make(Op::lit, pos, seg.index >= 0 ? TI : TS);
      k.lit = seg.index >= 0 ? Val(seg.index) : Val(seg.name);
      idx.kids.push_back(std::move(k));
    }
    return idx;
  }
  Node primary() {
    size_t pos = tok_.pos;
    if (tok_.kind == Tok::num) {
      Node n = make(Op::lit, pos, type_of(tok_.num));
      n.lit = tok_.num;
      next();
      return n;
    }
    if (tok_.kind == Tok::str) {
      Node n = make(Op::lit, pos, TS);
      n.lit = Val(tok_.text);
      next();
      return n;
    }
    if (is("(")) {
      next();
      Node n = conditional();
      expect_punct(")");
      return n;
    }
    if (is("[")) {
      next();
      Node n = make(Op::list, pos, TA);
      while (!is("]")) {
        n.kids.push_back(conditional());
        if (!is(",")) break;
        next();
      }
      expect_punct("]");
      return n;
    }
    if (is("{")) {
      next();
      Node n = make(Op::object, pos, TO);
      while (!is("}")) {
        if (tok_.kind != Tok::ident && tok_.kind != Tok::str) fail(tok_.pos, "expected a member name" + found());
        n.names.push_back(tok_.text);
        next();
        expect_punct(":");
        n.kids.push_back(conditional());
        if (!is(",")) break;
        next();
      }
      expect_punct("}");
      return n;
    }
    if (tok_.kind != Tok::ident) fail(pos, "expected a value" + found());
    std::string word = tok_.text;
    next();
    if (word == "true" || word == "false") {
      Node n = make(Op::lit, pos, TB);
      n.lit = Val(word == "true");
      return n;
    }
    if (word == "null") return make(Op::lit, pos, TN);
    if (word == "and" || word == "or" || word == "not" || word == "in")
      fail(pos, "'" + word + "' is an operator; write the value before it");
    if (is("(")) return call(word, pos);
    if (word == "meta") return make(Op::meta, pos, TO);
    if (word == "headers") return make(Op::header, pos, TO);
    if (word == "msg") return make(Op::msg_attr, pos, TO);
    Node n = make(Op::path, pos, TANY);
    if (word != "doc") n.path.push_back(Seg{word});
    return n;
  }
  Node call(const std::string& name, size_t pos) {
    const FnSpec* fn = nullptr;
    for (auto& f : functions())
      if (name == f.name) fn = &f;
    if (!fn) {
      std::vector<std::string_view> names;
      for (auto& f : functions()) names.push_back(f.name);
      std::string best = closest(name, names);
      fail(pos, "unknown function '" + name + "'" + (best.empty() ? "" : "; did you mean '" + best + "'?") +
                    " See docs/expressions.md for the list");
    }
    next();  // (
    Node n = make(Op::call, pos, fn->result);
    n.fn = fn;
    while (!is(")")) {
      n.kids.push_back(conditional());
      if (!is(",")) break;
      next();
    }
    expect_punct(")");
    size_t argc = n.kids.size();
    if (argc < fn->min_args || argc > fn->max_args) {
      std::string want = fn->min_args == fn->max_args ? std::to_string(fn->min_args)
                         : fn->max_args == 255        ? "at least " + std::to_string(fn->min_args)
                                                      : std::to_string(fn->min_args) + " to " + std::to_string(fn->max_args);
      fail(pos, name + "() takes " + want + " argument" + (want == "1" ? "" : "s") + ", got " + std::to_string(argc));
    }
    for (size_t i = 0; i < argc; ++i) {
      uint8_t want = fn->params[std::min<size_t>(i, 2)];
      if (!want) want = fn->params[0];
      if (!(n.kids[i].type & (want | TN)))
        fail(n.kids[i].pos, name + "() argument " + std::to_string(i + 1) + " must be " + mask_name(want) + ", not " +
                                mask_name(n.kids[i].type));
    }
    std::string_view fname(fn->name);
    if (fname == "coalesce") {
      n.op = Op::coalesce;
      uint8_t t = 0;
      for (auto& k : n.kids) t |= k.type;
      n.type = t;
    } else if (fname == "exists") {
      const Node& a = n.kids[0];
      if (a.op != Op::path && a.op != Op::meta && a.op != Op::header)
        fail(a.pos, "exists() takes a field path, like exists(after.email)");
      n.op = Op::exists;
    } else if (fname == "lookup") {
      const Node& t = n.kids[0];
      if (t.op != Op::lit || !t.lit.is_string()) fail(t.pos, "lookup() takes the table's name as a string literal");
      std::string known;
      if (env_.tables)
        for (auto& [k, v] : *env_.tables) known += (known.empty() ? "" : ", ") + k;
      if (!env_.tables || !env_.tables->count(t.lit.as_string()))
        fail(t.pos, "no lookup table '" + t.lit.as_string() + "'; " +
                        (known.empty() ? "declare it under `lookups:`" : "tables: " + known));
      n.table = &env_.tables->at(t.lit.as_string());
      n.op = Op::lookup;
    } else if (fname == "regex_match" || fname == "regex_extract") {
      const Node& p = n.kids[1];
      if (p.op != Op::lit || !p.lit.is_string()) fail(p.pos, name + "() takes the pattern as a string literal");
      n.regex = std::make_shared<Regex>(p.lit.as_string(), p.pos);
      if (argc > 2) {
        const Node& g = n.kids[2];
        if (g.op != Op::lit || !g.lit.is_int() || g.lit.as_int() < 0 || size_t(g.lit.as_int()) > n.regex->groups)
          fail(g.pos, "the group must be an int literal from 0 to " + std::to_string(n.regex->groups));
      }
    }
    return n;
  }
  std::string_view s_;
  size_t i_;
  const Env& env_;
  int depth_ = 0;
  Token tok_;
};

// --- evaluation ----------------------------------------------------------------------------

struct Scope {
  Message msg;
  Value root{};
  bool parsed = false;

  Value doc() {
    if (!parsed) {
      ef_value* r = host().message_doc(msg.raw());
      if (!r) eval_fail(message_doc_error(msg.raw()));
      root = Value(r);
      parsed = true;
    }
    return root;
  }
};

inline bool truthy(const Val& v, const char* what) {
  if (v.is_null()) return false;
  if (!v.is_bool()) eval_fail(std::string(what) + " needs a bool, got " + type_name(v));
  return v.as_bool();
}

inline bool equal(const Val& a, const Val& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() == b.as_int();
    return a.as_double() == b.as_double();
  }
  if (a.kind() == Val::Kind::null || b.kind() == Val::Kind::null) return a.is_null() && b.is_null();
  if (a.is_string() && b.is_string()) return a.as_string() == b.as_string();
  if (a.is_bool() && b.is_bool()) return a.as_bool() == b.as_bool();
  if (a.is_array() && b.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!equal(a.at(i), b.at(i))) return false;
    return true;
  }
  if (a.is_object() && b.is_object()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      auto [k, v] = a.member_at(i);
      if (!b.has(k) || !equal(v, b.member(k))) return false;
    }
    return true;
  }
  return false;
}

inline int compare(const Val& a, const Val& b, const char* op) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.as_int() < b.as_int() ? -1 : a.as_int() > b.as_int();
    double x = a.as_double(), y = b.as_double();
    return x < y ? -1 : x > y;
  }
  if (a.is_string() && b.is_string()) return a.as_string().compare(b.as_string()) < 0 ? -1 : a.as_string() != b.as_string();
  eval_fail(std::string("cannot compare ") + type_name(a) + " " + op + " " + type_name(b));
}

inline Val arith(Op op, const Val& a, const Val& b) {
  static const char* names[] = {"add", "subtract", "multiply", "divide", "take the remainder of"};
  const char* what = names[int(op) - int(Op::add)];
  if (op == Op::add && a.is_string() && b.is_string()) return Val(a.as_string() + b.as_string());
  if (!a.is_number() || !b.is_number())
    eval_fail(std::string("cannot ") + what + " " + type_name(a) + " and " + type_name(b));
  if (a.is_int() && b.is_int() && op != Op::div) {
    int64_t x = a.as_int(), y = b.as_int(), r = 0;
    bool overflow = false;
    switch (op) {
      case Op::add: overflow = __builtin_add_overflow(x, y, &r); break;
      case Op::sub: overflow = __builtin_sub_overflow(x, y, &r); break;
      case Op::mul: overflow = __builtin_mul_overflow(x, y, &r); break;
      default:
        if (y == 0) eval_fail("remainder by zero");
        if (x == INT64_MIN && y == -1) return Val(int64_t(0));
        r = x % y;
    }
    if (overflow) eval_fail(std::string("integer overflow: cannot ") + what + " " + std::to_string(x) + " and " + std::to_string(y));
    return Val(r);
  }
  double x = a.as_double(), y = b.as_double(), r;
  switch (op) {
    case Op::add: r = x + y; break;
    case Op::sub: r = x - y; break;
    case Op::mul: r = x * y; break;
    case Op::div:
      if (y == 0) eval_fail("division by zero");
      r = x / y;
      break;
    default:
      if (y == 0) eval_fail("remainder by zero");
      r = std::fmod(x, y);
  }
  // JSON has no infinity: a result out of range is this message's error, not a broken payload.
  if (!std::isfinite(r)) eval_fail(std::string("cannot ") + what + " " + to_text(a) + " and " + to_text(b) + ": out of range");
  return Val(r);
}

inline Val header_or_meta(Scope& sc, Op op, const std::string& name) {
  std::string_view v = op == Op::meta ? sc.msg.meta(name) : sc.msg.header(name);
  return v.data() ? Val(v) : Val();
}

// The document value a path names, or a null Value when it is absent.
inline Value walk(Scope& sc, const std::vector<Seg>& path) {
  Value v = sc.doc();
  for (auto& s : path) {
    if (s.index >= 0) {
      if (!v.is_array()) return Value();
      v = v.at(size_t(s.index));
    } else {
      // member_at answers null for a non-object or an index out of range: one call on a hit.
      auto [name, val] = v.member(s.hint);
      if (val && name == s.name) {
        v = val;
        continue;
      }
      if (!v.is_object()) return Value();
      size_t n = v.size();
      Value found;
      for (size_t i = 0; i < n; ++i) {
        auto [name, val] = v.member(i);
        if (name == s.name) {
          s.hint = i;
          found = val;
          break;
        }
      }
      v = found;
    }
    if (!v) return v;
  }
  return v;
}

inline Val eval(const Node& n, Scope& sc);

inline Val eval_call(const Node& n, Scope& sc) {
  // Most calls take a few arguments: keep them off the heap.
  if (n.kids.size() <= 4) {
    Val args[4];
    for (size_t i = 0; i < n.kids.size(); ++i) args[i] = eval(n.kids[i], sc);
    return n.fn->fn(n, std::span<Val>(args, n.kids.size()));
  }
  std::vector<Val> args;
  args.reserve(n.kids.size());
  for (auto& k : n.kids) args.push_back(eval(k, sc));
  return n.fn->fn(n, args);
}

inline Val eval(const Node& n, Scope& sc) {
  switch (n.op) {
    case Op::lit: return n.lit;
    case Op::path: return Val::from(walk(sc, n.path));
    case Op::meta:
    case Op::header: return header_or_meta(sc, n.op, n.name);
    case Op::msg_attr:
      if (n.name == "key") return Val(sc.msg.key());
      if (n.name == "timestamp") return Val(sc.msg.timestamp_ms());
      return Val(sc.msg.content_type());
    case Op::index: {
      Val base = eval(n.kids[0], sc);
      Val key = eval(n.kids[1], sc);
      if (base.is_null()) return {};
      if (key.is_string()) {
        if (!base.is_object()) eval_fail(std::string("cannot take member '") + key.as_string() + "' of " + type_name(base));
        return base.member(key.as_string());
      }
      if (key.is_int()) {
        if (!base.is_array()) eval_fail(std::string("cannot index ") + type_name(base) + " with a number");
        int64_t i = key.as_int();
        if (i < 0) i += int64_t(base.size());
        return i < 0 ? Val() : base.at(size_t(i));
      }
      eval_fail(std::string("an index must be a string or an int, got ") + type_name(key));
    }
    case Op::list: {
      Array a;
      for (auto& k : n.kids) a.push_back(eval(k, sc));
      return Val(std::move(a));
    }
    case Op::object: {
      Object o;
      for (size_t i = 0; i < n.kids.size(); ++i) o.emplace_back(n.names[i], eval(n.kids[i], sc));
      return Val(std::move(o));
    }
    case Op::neg: {
      Val x = eval(n.kids[0], sc);
      if (x.is_int()) {
        if (x.as_int() == INT64_MIN) eval_fail("integer overflow in negation");
        return Val(-x.as_int());
      }
      return Val(-number_of(x, "unary '-'"));
    }
    case Op::not_: return Val(!truthy(eval(n.kids[0], sc), "'not'"));
    case Op::add:
    case Op::sub:
    case Op::mul:
    case Op::div:
    case Op::mod: return arith(n.op, eval(n.kids[0], sc), eval(n.kids[1], sc));
    case Op::eq: return Val(equal(eval(n.kids[0], sc), eval(n.kids[1], sc)));
    case Op::ne: return Val(!equal(eval(n.kids[0], sc), eval(n.kids[1], sc)));
    case Op::lt:
    case Op::le:
    case Op::gt:
    case Op::ge: {
      static const char* names[] = {"<", "<=", ">", ">="};
      const char* op = names[int(n.op) - int(Op::lt)];
      Val a = eval(n.kids[0], sc), b = eval(n.kids[1], sc);
      if (a.is_null() || b.is_null()) eval_fail(std::string("cannot compare null with '") + op + "'; use ?? to give a default");
      int c = compare(a, b, op);
      return Val(n.op == Op::lt ? c < 0 : n.op == Op::le ? c <= 0 : n.op == Op::gt ? c > 0 : c >= 0);
    }
    case Op::in:
    case Op::not_in: {
      Val x = eval(n.kids[0], sc), set = eval(n.kids[1], sc);
      bool found = false;
      if (set.is_string()) {
        if (!x.is_string()) eval_fail(std::string("'in' a string needs a string on the left, got ") + type_name(x));
        found = set.as_string().find(x.as_string()) != std::string::npos;
      } else if (set.is_array()) {
        for (size_t i = 0; i < set.size() && !found; ++i) found = equal(x, set.at(i));
      } else if (set.is_object()) {
        if (!x.is_string()) eval_fail(std::string("'in' an object needs a member name on the left, got ") + type_name(x));
        found = set.has(x.as_string());
      } else if (!set.is_null()) {
        eval_fail(std::string("'in' needs an array, object or string on the right, got ") + type_name(set));
      }
      return Val(n.op == Op::in ? found : !found);
    }
    case Op::and_: return Val(truthy(eval(n.kids[0], sc), "'and'") && truthy(eval(n.kids[1], sc), "'and'"));
    case Op::or_: return Val(truthy(eval(n.kids[0], sc), "'or'") || truthy(eval(n.kids[1], sc), "'or'"));
    case Op::coalesce:
      for (auto& k : n.kids) {
        Val v = eval(k, sc);
        if (!v.is_null()) return v;
      }
      return {};
    case Op::cond: return truthy(eval(n.kids[0], sc), "the condition of ?:") ? eval(n.kids[1], sc) : eval(n.kids[2], sc);
    case Op::call: return eval_call(n, sc);
    case Op::exists: {
      const Node& a = n.kids[0];
      if (a.op == Op::path) return Val(bool(walk(sc, a.path)));
      return Val(header_or_meta(sc, a.op, a.name).is_string());
    }
    case Op::lookup: {
      Val key = eval(n.kids[1], sc);
      if (!key.is_null()) {
        auto it = n.table->find(to_text(key));
        if (it != n.table->end()) return it->second;
      }
      return n.kids.size() > 2 ? eval(n.kids[2], sc) : Val();
    }
  }
  return {};
}

}  // namespace detail

// One compiled expression. Cheap to copy (the tree is shared, immutable).
class Expr {
 public:
  Expr() = default;
  static Expr compile(std::string_view text, const Env& env = {}) {
    detail::Parser p(text, 0, env);
    if (p.peek().kind == detail::Tok::end) throw CompileError(0, "the expression is empty");
    Expr e;
    e.text_ = std::string(text);
    e.root_ = std::make_shared<detail::Node>(p.parse());
    p.expect_end();
    return e;
  }

  Val eval(Message m) const {
    detail::Scope sc{m};
    return detail::eval(*root_, sc);
  }
  // A condition: true, false, or null (absent: false); anything else is an EvalError.
  bool test(Message m) const { return detail::truthy(eval(m), "a condition"); }

  const std::string& text() const { return text_; }
  explicit operator bool() const { return bool(root_); }
  // A plain document path (after.customer.id): what map's rename and remove take.
  bool is_path() const { return root_ && root_->op == detail::Op::path && !root_->path.empty(); }
  const std::vector<detail::Seg>& path() const { return root_->path; }
  // The value, when the expression is a literal (then it need not be evaluated per message).
  const Val* constant() const { return root_ && root_->op == detail::Op::lit ? &root_->lit : nullptr; }
  // Whether anything of the message (a document field, meta, a header, its key or topic) goes
  // into the value: `upper('k')` reads nothing, and is the same for every message.
  bool reads_message() const { return root_ && reads(*root_); }

 private:
  friend class Template;
  static bool reads(const detail::Node& n) {
    using detail::Op;
    if (n.op == Op::path || n.op == Op::meta || n.op == Op::header || n.op == Op::msg_attr || n.op == Op::exists)
      return true;
    for (auto& k : n.kids)
      if (reads(k)) return true;
    return false;
  }
  std::string text_;
  std::shared_ptr<const detail::Node> root_;
};

// Text with ${expression} parts: "orders/${after.region}/${id}". A part that is null fails the
// evaluation: an empty topic segment would route data somewhere nobody looks.
class Template {
 public:
  static Template compile(std::string_view text, const Env& env = {}) {
    Template t;
    t.text_ = std::string(text);
    size_t i = 0;
    std::string lit;
    while (i < text.size()) {
      if (text.compare(i, 2, "${") != 0) {
        lit.push_back(text[i++]);
        continue;
      }
      detail::Parser p(text, i + 2, env);
      if (p.peek().kind == detail::Tok::punct && p.peek().text == "}") throw CompileError(i, "empty ${} in a template");
      Part part;
      part.literal = std::move(lit);
      lit.clear();
      part.expr.root_ = std::make_shared<detail::Node>(p.parse());
      size_t close = p.offset();
      if (close >= text.size() || text[close] != '}') throw CompileError(close, "expected '}' to close ${");
      part.expr.text_ = std::string(text.substr(i + 2, close - i - 2));
      t.parts_.push_back(std::move(part));
      i = close + 1;
    }
    t.tail_ = std::move(lit);
    return t;
  }

  std::string render(Message m) const {
    std::string out;
    detail::Scope sc{m};
    for (auto& p : parts_) {
      out += p.literal;
      Val v = detail::eval(*p.expr.root_, sc);
      if (v.is_null()) throw EvalError("template part ${" + p.expr.text() + "} is null");
      out += to_text(v);
    }
    return out + tail_;
  }
  const std::string& text() const { return text_; }
  // Text without ${} parts: the same for every message (literal() is it, no render needed).
  bool is_literal() const { return parts_.empty(); }
  const std::string& literal() const { return tail_; }

 private:
  struct Part {
    std::string literal;
    Expr expr;
  };
  std::string text_;
  std::vector<Part> parts_;
  std::string tail_;
};

// The error text for a compile error: message, the expression, and a caret under the spot.
inline std::string explain(const CompileError& e, std::string_view text) {
  return std::string(e.what()) + "\n    " + std::string(text) + "\n    " + std::string(std::min(e.pos, text.size()), ' ') + "^";
}

// Compiles an expression from a plugin option; errors name the YAML location and the key's full
// path, like the daemon's own config errors.
inline Expr compile_option(const Context& ctx, const std::string& key, std::string_view text, const Env& env = {}) {
  try {
    return Expr::compile(text, env);
  } catch (const CompileError& e) {
    throw ctx.config_error(key, explain(e, text));
  }
}

inline Template compile_template(const Context& ctx, const std::string& key, std::string_view text, const Env& env = {}) {
  try {
    return Template::compile(text, env);
  } catch (const CompileError& e) {
    throw ctx.config_error(key, explain(e, text));
  }
}

// Evaluates the expression of option `key`; a failure names the option and the expression, for
// the dead letter's reason.
inline Val eval_option(const Expr& e, const std::string& key, Message m) {
  try {
    return e.eval(m);
  } catch (const EvalError& err) {
    throw EvalError(key + ": `" + e.text() + "`: " + err.what());
  }
}

// The text of a value that must be there (a key, a header).
inline std::string required_text(const Val& v, const std::string& what) {
  if (v.is_null()) throw EvalError(what + " is null");
  return to_text(v);
}

// Lookup tables from a plugin option (`lookups: { name: { key: value } }`).
inline Tables tables_from(const Context& ctx, const Json& cfg, const std::string& key = "lookups") {
  Tables out;
  if (cfg.is_null()) return out;
  if (!cfg.object()) throw Error(ctx.where(key) + ": " + key + ": expected a map of tables: { countries: { DE: Germany } }");
  std::function<Val(const Json&)> conv = [&](const Json& j) -> Val {
    if (auto* s = j.string()) return Val(*s);
    if (auto* b = std::get_if<bool>(&j.v)) return Val(*b);
    if (auto* i = std::get_if<int64_t>(&j.v)) return Val(*i);
    if (auto* d = std::get_if<double>(&j.v)) return Val(*d);
    if (auto* a = j.array()) {
      Array arr;
      for (auto& e : *a) arr.push_back(conv(e));
      return Val(std::move(arr));
    }
    if (auto* o = j.object()) {
      Object obj;
      for (auto& [k, e] : *o) obj.emplace_back(k, conv(e));
      return Val(std::move(obj));
    }
    return {};
  };
  for (auto& [name, table] : *cfg.object()) {
    if (!table.object())
      throw Error(ctx.where(key + "." + name) + ": " + key + "." + name + ": a table is a map of key: value");
    Table& t = out[name];
    for (auto& [k, v] : *table.object()) t.emplace(k, conv(v));
  }
  return out;
}

}  // namespace edgeflow::sdk::expr
