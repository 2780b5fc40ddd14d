// The host side of messages and documents, shared by the runtime and the SDK test harness so
// plugins see identical behaviour in both. A message keeps its payload bytes and, once asked
// for, a parsed RapidJSON document: a chain of transformers parses at most once and the sink
// serialises at most once (only if the document changed).
#pragma once

#include <edgeflow/abi.h>
#include <edgeflow/sdk/expr/value.hpp>

#include <rapidjson/document.h>
#include <rapidjson/error/en.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <unordered_set>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace edgeflow::host {

// The base of a document's memory pool. It keeps the blocks it handed out once they are freed,
// so a pooled message parses its next payload without a trip to malloc (that churn was a tenth
// of the CPU of a map + route flow).
class ReusingAllocator {
 public:
  static const bool kNeedFree = true;
  ReusingAllocator() = default;
  ReusingAllocator(const ReusingAllocator&) = delete;
  ReusingAllocator& operator=(const ReusingAllocator&) = delete;
  ~ReusingAllocator() {
    for (Block* b : spare_) std::free(b);
  }
  void* Malloc(size_t size) {
    if (!size) return nullptr;
    for (size_t i = 0; i < spare_.size(); ++i) {
      if (spare_[i]->size >= size) {
        Block* b = spare_[i];
        spare_[i] = spare_.back();
        spare_.pop_back();
        return b + 1;
      }
    }
    auto* b = static_cast<Block*>(std::malloc(sizeof(Block) + size));
    if (!b) return nullptr;
    b->size = size;
    return b + 1;
  }
  void* Realloc(void* p, size_t old_size, size_t new_size) {
    if (p && new_size <= static_cast<Block*>(p)[-1].size) return p;
    void* q = Malloc(new_size);
    if (p && q) std::memcpy(q, p, old_size);
    Free(p);
    return q;
  }
  void Free(void* p) {
    if (!p) return;
    Block* b = static_cast<Block*>(p) - 1;
    if (spare_.size() < kSpares) spare_.push_back(b);
    else std::free(b);
  }

 private:
  struct alignas(std::max_align_t) Block {
    size_t size;
  };
  static constexpr size_t kSpares = 4;
  std::vector<Block*> spare_;
};

using Pool = rapidjson::MemoryPoolAllocator<ReusingAllocator>;
using Doc = rapidjson::GenericDocument<rapidjson::UTF8<>, Pool>;
using JValue = rapidjson::GenericValue<rapidjson::UTF8<>, Pool>;

// Numbers a double cannot carry exactly (integers past 64 bits, decimals with more digits than
// a double keeps) are kept as the text that arrived. RapidJSON has no such type, so the value
// holds a NaN whose payload points at the text in the document's pool ("NaN-boxing"): JSON has
// no NaN and the host stores none otherwise, so no real number reads as one, and copying or
// moving the value inside its document keeps the pointer valid.
struct ExactNumber {
  double approx;  // the nearest double (±inf, ±0 past the double range)
  size_t len;
  const char* text() const { return reinterpret_cast<const char*>(this + 1); }
};

constexpr uint64_t kBoxBits = 0xFFF8'0000'0000'0000ull;  // a negative quiet NaN

inline const ExactNumber* exact_number(double d) {
  if (!std::isnan(d)) return nullptr;
  uint64_t bits;
  std::memcpy(&bits, &d, sizeof bits);
  if ((bits & kBoxBits) != kBoxBits) return nullptr;
  return reinterpret_cast<const ExactNumber*>(static_cast<uintptr_t>(bits & ~kBoxBits));
}
inline const ExactNumber* exact_number(const JValue& v) { return v.IsDouble() ? exact_number(v.GetDouble()) : nullptr; }

// A number read from JSON text: an int64, or a double (possibly a box).
struct NumberRead {
  bool is_int;
  int64_t i;
  double d;
};

// The double that points at text copied into pool a; the plain approximation on the rare
// machine whose addresses do not fit a NaN's 51 payload bits.
inline double box_number(std::string_view text, double approx, Pool& a) {
  auto* n = static_cast<ExactNumber*>(a.Malloc(sizeof(ExactNumber) + text.size()));
  auto addr = reinterpret_cast<uintptr_t>(n);
  if (!n || (addr & kBoxBits)) return approx;
  n->approx = approx;
  n->len = text.size();
  std::memcpy(n + 1, text.data(), text.size());
  uint64_t bits = kBoxBits | addr;
  double d;
  std::memcpy(&d, &bits, sizeof d);
  return d;
}

// Significant digits of a JSON number, leading and trailing zeros dropped, and the decimal
// exponent of the point in front of them (12.50e1 -> "125", 3): two texts with the same pair
// write the same value. The exponent saturates: no double is near 10^±1e6.
inline std::pair<std::string, int64_t> decimal_digits(std::string_view t) {
  std::string digits;
  int64_t point = 0, exp = 0;
  bool in_fraction = false;
  size_t i = t.size() && t[0] == '-' ? 1 : 0;
  for (; i < t.size(); ++i) {
    char c = t[i];
    if (c == '.') {
      in_fraction = true;
    } else if (c >= '0' && c <= '9') {
      if (digits.empty() && c == '0') {
        if (in_fraction) --point;
        continue;
      }
      digits.push_back(c);
      if (!in_fraction) ++point;
    } else {
      break;  // e or E
    }
  }
  if (i < t.size()) {
    bool neg = t[++i] == '-';
    if (t[i] == '-' || t[i] == '+') ++i;
    for (; i < t.size(); ++i) exp = std::min<int64_t>(exp * 10 + (t[i] - '0'), 1000000);
    if (neg) exp = -exp;
  }
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  return {digits, digits.empty() ? 0 : point + exp};
}

// The text the host writes for a finite double into buf (40 bytes): the shortest that reads
// back as it, and ".0" on an integral value so it reads back as a double. A large integral
// value that to_chars writes with all its exact digits (3333355555558799872 for the double of
// 33333555555588e5) is written scientific, with the shortest digits, instead.
inline char* write_double(char* buf, double d) {
  char* end = std::to_chars(buf, buf + 38, d).ptr;
  if (std::find_if(buf, end, [](char c) { return c == '.' || c == 'e'; }) != end) return end;
  if (end - buf > 15) {
    char sci[40];
    char* sci_end = std::to_chars(sci, sci + sizeof sci, d, std::chars_format::scientific).ptr;
    if (decimal_digits(std::string_view(buf, size_t(end - buf))).first !=
        decimal_digits(std::string_view(sci, size_t(sci_end - sci))).first)
      return std::copy(sci, sci_end, buf);
  }
  *end++ = '.';
  *end++ = '0';
  return end;
}

// Reads a number in JSON grammar (the parser checked it). Integers that fit int64 are ints;
// other numbers are doubles when the double writes back as the same value, and boxed text when
// it would not (9007199254740993, 12345678901234567890, 0.1000000000000000055511).
inline NumberRead read_number(std::string_view t, Pool& a) {
  // The usual number, in a few instructions: up to 18 digits, no exponent. An integer is
  // accumulated; a decimal of at most 15 digits is between 1e-15 and 1e15, a double holds it.
  bool neg = t[0] == '-';
  size_t chars = t.size() - neg;
  if (chars <= 18 && t.find_first_of("eE") == std::string_view::npos) {
    bool dot = false;
    int64_t i = 0;
    for (size_t k = neg; k < t.size(); ++k) {
      if (t[k] == '.') dot = true;
      else i = i * 10 + (t[k] - '0');
    }
    if (!dot && !(neg && i == 0)) return {true, neg ? -i : i, 0};
    if (dot && chars <= 16) {
      double d = 0;
      std::from_chars(t.data(), t.data() + t.size(), d);
      return {false, 0, d};
    }
  }
  bool integer = t.find_first_of(".eE") == std::string_view::npos;
  if (integer) {
    int64_t i = 0;
    auto r = std::from_chars(t.data(), t.data() + t.size(), i);
    if (r.ec == std::errc() && !(i == 0 && t[0] == '-')) return {true, i, 0};
  }
  double d = 0;
  auto r = std::from_chars(t.data(), t.data() + t.size(), d);
  auto [digits, exp] = decimal_digits(t);
  if (r.ec == std::errc::result_out_of_range || std::isinf(d) || (d == 0 && !digits.empty())) {
    d = exp > 0 ? HUGE_VAL : 0.0;
    if (t[0] == '-') d = -d;
    return {false, 0, box_number(t, d, a)};
  }
  // A plain double only if the document writes it back with the same value.
  char buf[40];
  if (decimal_digits(std::string_view(buf, size_t(write_double(buf, d) - buf))) == std::pair(digits, exp))
    return {false, 0, d};
  return {false, 0, box_number(t, d, a)};
}

// Whether t is a number in RFC 8259's grammar.
inline bool json_number(std::string_view t) {
  size_t i = 0;
  auto digits = [&] {
    size_t from = i;
    while (i < t.size() && t[i] >= '0' && t[i] <= '9') ++i;
    return i > from;
  };
  if (i < t.size() && t[i] == '-') ++i;
  if (i < t.size() && t[i] == '0') ++i;
  else if (!digits()) return false;
  if (i < t.size() && t[i] == '.' && (++i, !digits())) return false;
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    ++i;
    if (i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (!digits()) return false;
  }
  return i == t.size();
}

// The writer for host documents: a boxed number is written as its text, and a double by
// write_double (RapidJSON's Grisu2 may write 1.0200899999999999e21 for 1.02009e21, which a
// reader then has to keep as a decimal no double holds).
template <class Out>
class JsonWriter : public rapidjson::Writer<Out> {
 public:
  using rapidjson::Writer<Out>::Writer;
  bool Double(double d) {
    if (const ExactNumber* n = exact_number(d)) return this->RawValue(n->text(), n->len, rapidjson::kNumberType);
    if (!std::isfinite(d)) return false;
    char buf[40];
    return this->RawValue(buf, size_t(write_double(buf, d) - buf), rapidjson::kNumberType);
  }
};

// JSON text without the whitespace between its tokens.
inline std::string minified(std::string_view json) {
  std::string out;
  out.reserve(json.size());
  bool in_string = false;
  for (size_t i = 0; i < json.size(); ++i) {
    char c = json[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < json.size()) out.push_back(json[++i]);
      else if (c == '"') in_string = false;
    } else if (c != ' ' && c != '\t' && c != '\n' && c != '\r') {
      out.push_back(c);
      in_string = c == '"';
    }
  }
  return out;
}

// The document's SAX handler, keeping the numbers a double would change. RapidJSON reads the
// usual number exactly (an integer, or a decimal of at most 15 digits, on its exact fast path);
// only the others are read again from their text. While a number is reported the reader works
// on its own copy of the stream, so ours still points at the number's first byte (RapidJSON's
// kParseNumbersAsStringsFlag finds the text the same way); an in-situ parse leaves it in place.
struct ExactNumbers {
  Doc& d;
  const rapidjson::InsituStringStream& in;

  // The number's text by its grammar, which the reader has checked: bytes after it are not its.
  std::string_view text() const {
    const char* p = in.src_;
    auto digits = [&] {
      while (*p >= '0' && *p <= '9') ++p;
    };
    if (*p == '-') ++p;
    digits();
    if (*p == '.') ++p, digits();
    if (*p == 'e' || *p == 'E') {
      ++p;
      if (*p == '+' || *p == '-') ++p;
      digits();
    }
    return {in.src_, size_t(p - in.src_)};
  }
  bool push(std::string_view t) {
    NumberRead r = read_number(t, d.GetAllocator());
    return r.is_int ? d.Int64(r.i) : d.Double(r.d);
  }
  bool Null() { return d.Null(); }
  bool Bool(bool b) { return d.Bool(b); }
  bool Int(int i) { return d.Int(i); }
  bool Uint(unsigned i) { return d.Uint(i); }
  bool Int64(int64_t i) { return d.Int64(i); }
  bool Uint64(uint64_t i) { return i <= uint64_t(INT64_MAX) ? d.Uint64(i) : push(text()); }
  bool Double(double x) {
    std::string_view t = text();
    if (t.size() <= 16 && t.find_first_of("eE") == std::string_view::npos) return d.Double(x);
    return push(t);
  }
  bool RawNumber(const char*, rapidjson::SizeType, bool) { return false; }  // not asked for
  bool String(const char* s, rapidjson::SizeType n, bool copy) { return d.String(s, n, copy); }
  bool StartObject() { return d.StartObject(); }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) { return d.Key(s, n, copy); }
  bool EndObject(rapidjson::SizeType n) { return d.EndObject(n); }
  bool StartArray() { return d.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return d.EndArray(n); }
};

// A deep copy that also copies strings. RapidJSON's CopyFrom shares "constant" strings, and the
// strings of an in-situ parse are exactly that: they live in their message's parse buffer.
inline void deep_copy(JValue& dst, const JValue& src, Pool& a) {
  switch (src.GetType()) {
    case rapidjson::kStringType: dst.SetString(src.GetString(), src.GetStringLength(), a); return;
    case rapidjson::kArrayType:
      dst.SetArray();
      dst.Reserve(src.Size(), a);
      for (auto& e : src.GetArray()) {
        JValue v;
        deep_copy(v, e, a);
        dst.PushBack(v, a);
      }
      return;
    case rapidjson::kObjectType:
      dst.SetObject();
      for (auto& m : src.GetObject()) {
        JValue k, v;
        k.SetString(m.name.GetString(), m.name.GetStringLength(), a);
        deep_copy(v, m.value, a);
        dst.AddMember(k, v, a);
      }
      return;
    default:  // null, bool, numbers; a boxed number's text lives in the source's pool
      if (const ExactNumber* n = exact_number(src)) dst.SetDouble(box_number({n->text(), n->len}, n->approx, a));
      else dst.CopyFrom(src, a);
  }
}

// A document with its own reusing pool; 4 KiB chunks fit a typical event in one.
struct OwnedDoc {
  ReusingAllocator base;
  Pool pool{4096, &base};
  Doc doc{&pool};
};

// Documents and parse buffers that messages gave back, for the next parse on the same thread.
// A message can stay in flight for a while (a Kafka delivery report arrives after thousands
// more were sent); its document was done with once the sinks had it, and a parse into a block
// that was just used is a parse into cache, not into memory untouched for thousands of messages.
struct DocCache {
  static constexpr size_t kEntries = 2048;  // two batches of the usual 1024
  static constexpr size_t kEntryBytes = 64 << 10;  // larger ones are freed, not kept
  std::vector<std::unique_ptr<OwnedDoc>> docs;
  std::vector<std::string> bufs;
  static DocCache& local() {
    thread_local DocCache cache;
    return cache;
  }
};

struct Message {
  std::string payload;
  std::string key;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;
  std::vector<std::pair<std::string, std::string>> meta;
  int64_t timestamp_ms = 0;
  uint64_t token = 0;
  uint64_t routes = 0;  // bit i: sink i; 0 with routed == false means every sink
  bool routed = false;

  std::unique_ptr<OwnedDoc> owned;
  Doc* doc = nullptr;
  bool doc_valid = false;      // doc reflects the message
  bool payload_stale = false;  // doc changed since payload was written
  std::string parse_buf;       // the document's strings point into it (in-situ parse)
  std::string doc_error;       // why the last parse failed

  // Back to an empty message, keeping buffers for reuse.
  void clear() {
    payload.clear();
    key.clear();
    content_type.clear();
    headers.clear();
    meta.clear();
    timestamp_ms = 0;
    token = 0;
    routes = 0;
    routed = false;
    doc_valid = false;
    payload_stale = false;
  }

  // Copy of everything a transformer can see; the caller sets up its own bookkeeping.
  void copy_from(Message& o) {
    payload = o.payload_bytes();
    key = o.key;
    content_type = o.content_type;
    headers = o.headers;
    meta = o.meta;
    timestamp_ms = o.timestamp_ms;
    token = o.token;
    routes = o.routes;
    routed = o.routed;
    doc_valid = false;  // parsed again from the copied payload when asked for
    payload_stale = false;
  }

  void ensure_doc() {
    if (!doc) {
      auto& docs = DocCache::local().docs;
      if (docs.empty()) {
        owned = std::make_unique<OwnedDoc>();
      } else {
        owned = std::move(docs.back());
        docs.pop_back();
      }
      doc = &owned->doc;
    }
  }

  // Hands the document and its parse buffer to this thread's DocCache. Only once the payload
  // says everything the document does: whoever asks for the document again parses it again.
  void retire_doc() {
    if (payload_stale || !owned) return;
    auto& cache = DocCache::local();
    doc = nullptr;
    doc_valid = false;
    if (cache.docs.size() < DocCache::kEntries && owned->pool.Capacity() <= DocCache::kEntryBytes)
      cache.docs.push_back(std::move(owned));
    owned.reset();
    if (parse_buf.capacity() > std::string().capacity() && parse_buf.capacity() <= DocCache::kEntryBytes &&
        cache.bufs.size() < DocCache::kEntries)
      cache.bufs.push_back(std::move(parse_buf));
    parse_buf = std::string();
  }

  static constexpr size_t kMaxDepth = 1000;
  static constexpr size_t kSerialiseKeep = 1 << 20;  // bytes a thread's serialisation buffer keeps

  // Nesting depth of JSON text, strings skipped. Parsing, serialising and copying a document
  // recurse once per level, so a payload of a million '[' must be refused, not parsed.
  static size_t nesting_depth(std::string_view s) {
    size_t depth = 0, max = 0;
    bool in_string = false;
    for (size_t i = 0; i < s.size(); ++i) {
      char c = s[i];
      if (in_string) {
        if (c == '\\') ++i;
        else if (c == '"') in_string = false;
      } else if (c == '"') {
        in_string = true;
      } else if (c == '[' || c == '{') {
        max = std::max(max, ++depth);
      } else if ((c == ']' || c == '}') && depth) {
        --depth;
      }
    }
    return max;
  }

  // An upper bound of the depth that costs a branch-free (vectorised) pass: the number of
  // opening brackets, strings included. Only when it is over the limit does the exact scan run.
  static size_t opening_brackets(std::string_view s) {
    // Byte-wide counts over blocks of 255 (a byte is at most one bracket): the compiler then
    // compares and adds 16 or 32 bytes at a time instead of widening each to 64 bits.
    size_t n = 0;
    for (size_t at = 0; at < s.size(); at += 255) {
      size_t end = std::min(s.size(), at + 255);
      uint8_t block = 0;
      for (size_t i = at; i < end; ++i) block = uint8_t(block + (s[i] == '[') + (s[i] == '{'));
      n += block;
    }
    return n;
  }

  // The root, parsing the payload on first use; nullptr with *error set when it is not JSON.
  JValue* root(std::string* error) {
    if (doc_valid) return doc;
    // Only a payload longer than the limit can be nested deeper than it.
    if (payload.size() > kMaxDepth && opening_brackets(payload) > kMaxDepth && nesting_depth(payload) > kMaxDepth) {
      if (error) *error = "payload is not accepted as JSON: nested deeper than " + std::to_string(kMaxDepth) + " levels";
      return nullptr;
    }
    ensure_doc();
    doc->SetNull();
    doc->GetAllocator().Clear();
    // In situ, in a copy of the payload: strings are not copied again, and the payload keeps
    // its exact bytes for sinks while the document is unchanged. The parse stops at a NUL byte,
    // so one that ends early means a NUL inside the payload: not JSON.
    if (parse_buf.capacity() < payload.size()) {
      auto& bufs = DocCache::local().bufs;
      if (!bufs.empty()) {
        parse_buf.swap(bufs.back());
        bufs.pop_back();
      }
    }
    parse_buf.assign(payload);
    rapidjson::InsituStringStream in(parse_buf.data());
    rapidjson::ParseResult parsed;
    auto parse = [&](Doc& d) {
      thread_local rapidjson::Reader reader;
      ExactNumbers handler{d, in};
      parsed = reader.Parse<rapidjson::kParseInsituFlag>(in, handler);
      return !parsed.IsError();
    };
    doc->Populate(parse);
    if (!parsed.IsError() && in.Tell() != payload.size()) {
      if (error) *error = "payload is not JSON at byte " + std::to_string(in.Tell()) + ": a NUL byte";
      doc->SetNull();
      return nullptr;
    }
    if (parsed.IsError()) {
      if (error) {
        *error = "payload is not JSON at byte " + std::to_string(parsed.Offset()) + ": " +
                 rapidjson::GetParseError_En(parsed.Code());
      }
      doc->SetNull();
      return nullptr;
    }
    // I-JSON (RFC 7493): readers disagree on which of two equal member names counts, so a step
    // acting on one copy while a consumer reads the other is refused here, for every step.
    if (const JValue* twice = repeated_name(*doc)) {
      if (error)
        *error = "payload is not I-JSON: the member name \"" +
                 edgeflow::sdk::expr::valid_utf8(std::string_view(twice->GetString(), std::min<size_t>(twice->GetStringLength(), 64))) +
                 "\" appears twice in one object (RFC 7493: readers disagree on which one counts)";
      doc->SetNull();
      return nullptr;
    }
    doc_valid = true;
    return doc;
  }

  // The first member name that appears twice in one object, or nullptr. Iterative: the nesting
  // was bounded before parsing, but the flow thread's stack is not ours to spend. A 64-bit
  // filter of length and end bytes makes the usual object a single pass; only names sharing a
  // filter bit are compared, and objects past 64 members use a hash set: never quadratic.
  static const JValue* repeated_name(const JValue& root) {
    thread_local std::vector<const JValue*> todo;
    todo.clear();
    todo.push_back(&root);
    while (!todo.empty()) {
      const JValue* v = todo.back();
      todo.pop_back();
      if (v->IsArray()) {
        for (auto& e : v->GetArray())
          if (e.IsObject() || e.IsArray()) todo.push_back(&e);
        continue;
      }
      if (!v->IsObject()) continue;
      auto name_of = [](const JValue& n) { return std::string_view(n.GetString(), n.GetStringLength()); };
      if (v->MemberCount() > 64) {
        std::unordered_set<std::string_view> seen;
        for (auto m = v->MemberBegin(); m != v->MemberEnd(); ++m)
          if (!seen.insert(name_of(m->name)).second) return &m->name;
      } else {
        uint64_t bits = 0;
        for (auto m = v->MemberBegin(); m != v->MemberEnd(); ++m) {
          std::string_view name = name_of(m->name);
          size_t h = name.size() * 131 + (name.empty() ? 0 : uint8_t(name.front()) * 7 + uint8_t(name.back()));
          uint64_t bit = uint64_t(1) << (h & 63);
          if (bits & bit)
            for (auto o = v->MemberBegin(); o != m; ++o)
              if (name_of(o->name) == name) return &m->name;
          bits |= bit;
        }
      }
      for (auto m = v->MemberBegin(); m != v->MemberEnd(); ++m)
        if (m->value.IsObject() || m->value.IsArray()) todo.push_back(&m->value);
    }
    return nullptr;
  }

  JValue* reset_doc() {
    ensure_doc();
    doc->SetObject();
    doc->GetAllocator().Clear();
    doc->SetObject();
    doc_valid = true;
    payload_stale = true;
    return doc;
  }

  const std::string& payload_bytes() {
    if (payload_stale) {
      // One buffer per thread, not one per message: the writer reserves six bytes for each byte
      // of a string, and thousands of pooled messages in flight each keeping that much cost
      // memory and, worse, cache. A buffer grown by an unusually large message is let go.
      thread_local rapidjson::StringBuffer out;
      out.Clear();
      JsonWriter<rapidjson::StringBuffer> w(out);
      doc->Accept(w);
      payload.assign(out.GetString(), out.GetSize());
      if (out.stack_.GetCapacity() > kSerialiseKeep) {
        out.Clear();
        out.ShrinkToFit();
      }
      payload_stale = false;
      if (content_type.empty()) content_type = "application/json";
    }
    return payload;
  }

  void set_payload(const char* d, size_t n) {
    payload.assign(d, n);
    doc_valid = false;
    payload_stale = false;
  }

  void touched() { payload_stale = true; }
  Pool& alloc() { return doc->GetAllocator(); }
};

inline Message* M(ef_message* m) { return reinterpret_cast<Message*>(m); }
inline const Message* M(const ef_message* m) { return reinterpret_cast<const Message*>(m); }
inline JValue* V(ef_value* v) { return reinterpret_cast<JValue*>(v); }
inline const JValue* V(const ef_value* v) { return reinterpret_cast<const JValue*>(v); }
inline ef_value* EV(const JValue* v) { return reinterpret_cast<ef_value*>(const_cast<JValue*>(v)); }

// Walks "a.b[2].c". With create, missing objects are made (and arrays extended with nulls).
inline JValue* walk_path(Message& m, std::string_view path, bool create, std::string* error) {
  JValue* cur = m.root(error);
  if (!cur) return nullptr;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '[') {
      size_t close = path.find(']', i);
      if (close == std::string_view::npos) return nullptr;
      size_t idx = 0;
      for (size_t k = i + 1; k < close; ++k) {
        if (path[k] < '0' || path[k] > '9') return nullptr;
        idx = idx * 10 + size_t(path[k] - '0');
      }
      if (!cur->IsArray()) {
        if (!create) return nullptr;
        cur->SetArray();
      }
      while (create && cur->Size() <= idx) cur->PushBack(JValue(), m.alloc());
      if (idx >= cur->Size()) return nullptr;
      cur = &(*cur)[rapidjson::SizeType(idx)];
      i = close + 1;
      if (i < path.size() && path[i] == '.') ++i;
      continue;
    }
    size_t end = path.find_first_of(".[", i);
    if (end == std::string_view::npos) end = path.size();
    std::string_view name = path.substr(i, end - i);
    if (!cur->IsObject()) {
      if (!create) return nullptr;
      cur->SetObject();
    }
    auto it = cur->FindMember(JValue(rapidjson::StringRef(name.data(), rapidjson::SizeType(name.size()))));
    if (it == cur->MemberEnd()) {
      if (!create) return nullptr;
      cur->AddMember(JValue(name.data(), rapidjson::SizeType(name.size()), m.alloc()), JValue(),
                     m.alloc());
      cur = &(cur->MemberEnd() - 1)->value;
    } else {
      cur = &it->value;
    }
    i = end;
    if (i < path.size() && path[i] == '.') ++i;
  }
  return cur;
}

inline const char* find_pair(const std::vector<std::pair<std::string, std::string>>& v,
                             const char* name, size_t len, size_t* out_len) {
  std::string_view n(name, len);
  for (auto& [k, val] : v) {
    if (k == n) {
      *out_len = val.size();
      return val.data();
    }
  }
  return nullptr;
}

inline void set_pair(std::vector<std::pair<std::string, std::string>>& v, const char* name,
                     size_t len, const char* value, size_t vlen) {
  std::string_view n(name, len);
  bool set = false;
  for (auto it = v.begin(); it != v.end();) {
    if (it->first == n) {
      if (set) {
        it = v.erase(it);
        continue;
      }
      it->second.assign(value, vlen);
      set = true;
    }
    ++it;
  }
  if (!set) v.emplace_back(std::string(n), std::string(value, vlen));
}

// Fills the message, routing, document and value callbacks of a host table.
inline void fill_message_api(ef_host_api& h) {
  h.message_set_token = [](ef_message* m, uint64_t t) { M(m)->token = t; };
  h.message_payload = [](ef_message* m, size_t* len) {
    const std::string& p = M(m)->payload_bytes();
    *len = p.size();
    return p.data();
  };
  h.message_set_payload = [](ef_message* m, const char* d, size_t n) { M(m)->set_payload(d, n); };
  h.message_key = [](const ef_message* m, size_t* len) {
    *len = M(m)->key.size();
    return M(m)->key.data();
  };
  h.message_set_key = [](ef_message* m, const char* d, size_t n) { M(m)->key.assign(d, n); };
  h.message_content_type = [](const ef_message* m, size_t* len) {
    *len = M(m)->content_type.size();
    return M(m)->content_type.data();
  };
  h.message_set_content_type = [](ef_message* m, const char* d, size_t n) {
    M(m)->content_type.assign(d, n);
  };
  h.message_timestamp_ms = [](const ef_message* m) { return M(m)->timestamp_ms; };
  h.message_set_timestamp_ms = [](ef_message* m, int64_t t) { M(m)->timestamp_ms = t; };
  h.message_header_count = [](const ef_message* m) { return M(m)->headers.size(); };
  h.message_header_at = [](const ef_message* m, size_t i) {
    auto& hd = M(m)->headers.at(i);
    return ef_header_view{hd.first.data(), hd.first.size(), hd.second.data(), hd.second.size()};
  };
  h.message_header = [](const ef_message* m, const char* n, size_t nl, size_t* vl) {
    return find_pair(M(m)->headers, n, nl, vl);
  };
  h.message_set_header = [](ef_message* m, const char* n, size_t nl, const char* v, size_t vl) {
    set_pair(M(m)->headers, n, nl, v, vl);
  };
  h.message_remove_header = [](ef_message* m, const char* n, size_t nl) {
    auto& hs = M(m)->headers;
    std::string_view name(n, nl);
    std::erase_if(hs, [&](auto& p) { return p.first == name; });
  };
  h.message_meta = [](const ef_message* m, const char* n, size_t nl, size_t* vl) {
    return find_pair(M(m)->meta, n, nl, vl);
  };
  h.message_set_meta = [](ef_message* m, const char* n, size_t nl, const char* v, size_t vl) {
    set_pair(M(m)->meta, n, nl, v, vl);
  };

  h.message_route = [](ef_message* m, uint32_t idx) {
    if (idx >= 64) return;
    Message* hm = M(m);
    if (!hm->routed) {
      hm->routes = 0;
      hm->routed = true;
    }
    hm->routes |= 1ull << idx;
  };
  h.message_clear_routes = [](ef_message* m) {
    M(m)->routed = false;
    M(m)->routes = 0;
  };

  h.message_doc = [](ef_message* m) {
    Message* hm = M(m);
    hm->doc_error.clear();
    return EV(hm->root(&hm->doc_error));
  };
  h.message_doc_error = [](ef_message* m, size_t* len) -> const char* {
    const std::string& e = M(m)->doc_error;
    *len = e.size();
    return e.empty() ? nullptr : e.data();
  };
  h.message_doc_reset = [](ef_message* m) { return EV(M(m)->reset_doc()); };
  h.doc_get_path = [](ef_message* m, const char* p, size_t n) {
    return EV(walk_path(*M(m), std::string_view(p, n), false, nullptr));
  };
  h.doc_set_path = [](ef_message* m, const char* p, size_t n) {
    JValue* v = walk_path(*M(m), std::string_view(p, n), true, nullptr);
    if (v) M(m)->touched();
    return EV(v);
  };
  h.doc_remove_path = [](ef_message* m, const char* p, size_t n) -> int {
    std::string_view path(p, n);
    size_t dot = path.find_last_of('.');
    if (!path.empty() && path.back() == ']') {
      size_t open = path.find_last_of('[');
      JValue* arr = walk_path(*M(m), path.substr(0, open), false, nullptr);
      if (!arr || !arr->IsArray()) return 0;
      size_t idx = std::strtoul(std::string(path.substr(open + 1)).c_str(), nullptr, 10);
      if (idx >= arr->Size()) return 0;
      arr->Erase(arr->Begin() + idx);
      M(m)->touched();
      return 1;
    }
    JValue* parent = dot == std::string_view::npos ? M(m)->root(nullptr)
                                                   : walk_path(*M(m), path.substr(0, dot), false, nullptr);
    std::string_view name = dot == std::string_view::npos ? path : path.substr(dot + 1);
    if (!parent || !parent->IsObject()) return 0;
    bool removed = parent->EraseMember(
        JValue(rapidjson::StringRef(name.data(), rapidjson::SizeType(name.size()))));
    if (removed) M(m)->touched();
    return removed ? 1 : 0;
  };

  h.value_type = [](const ef_value* ev) -> uint32_t {
    const JValue* v = V(ev);
    if (!v || v->IsNull()) return EF_TYPE_NULL;
    if (v->IsBool()) return EF_TYPE_BOOL;
    if (v->IsInt64()) return EF_TYPE_INT;
    if (v->IsNumber()) return EF_TYPE_DOUBLE;
    if (v->IsString()) return EF_TYPE_STRING;
    if (v->IsArray()) return EF_TYPE_ARRAY;
    return EF_TYPE_OBJECT;
  };
  h.value_bool = [](const ef_value* v) -> int { return V(v)->IsBool() && V(v)->GetBool(); };
  h.value_int = [](const ef_value* v) -> int64_t {
    if (V(v)->IsInt64()) return V(v)->GetInt64();
    if (!V(v)->IsNumber()) return 0;
    const ExactNumber* n = exact_number(*V(v));
    double d = n ? n->approx : V(v)->GetDouble();
    // Saturating: converting a double out of int64's range is undefined.
    if (d >= 9223372036854775807.0) return INT64_MAX;
    if (d <= -9223372036854775808.0) return INT64_MIN;
    return int64_t(d);
  };
  h.value_double = [](const ef_value* v) {
    if (!V(v)->IsNumber()) return 0.0;
    const ExactNumber* n = exact_number(*V(v));
    return n ? n->approx : V(v)->GetDouble();
  };
  h.value_string = [](const ef_value* v, size_t* len) -> const char* {
    if (!V(v)->IsString()) {
      *len = 0;
      return "";
    }
    *len = V(v)->GetStringLength();
    return V(v)->GetString();
  };
  h.value_size = [](const ef_value* v) -> size_t {
    if (V(v)->IsArray()) return V(v)->Size();
    if (V(v)->IsObject()) return V(v)->MemberCount();
    return 0;
  };
  h.value_at = [](const ef_value* v, size_t i) -> ef_value* {
    if (!V(v)->IsArray() || i >= V(v)->Size()) return nullptr;
    return EV(&(*V(v))[rapidjson::SizeType(i)]);
  };
  h.value_member_at = [](const ef_value* v, size_t i, const char** name, size_t* len) -> ef_value* {
    if (!V(v)->IsObject() || i >= V(v)->MemberCount()) return nullptr;
    auto it = V(v)->MemberBegin() + rapidjson::SizeType(i);
    *name = it->name.GetString();
    *len = it->name.GetStringLength();
    return EV(&it->value);
  };
  h.value_find = [](const ef_value* v, const char* n, size_t len) -> ef_value* {
    if (!V(v)->IsObject()) return nullptr;
    auto it = V(v)->FindMember(JValue(rapidjson::StringRef(n, rapidjson::SizeType(len))));
    return it == V(v)->MemberEnd() ? nullptr : EV(&it->value);
  };
  h.value_set_null = [](ef_message* m, ef_value* v) { V(v)->SetNull(); M(m)->touched(); };
  h.value_set_bool = [](ef_message* m, ef_value* v, int b) { V(v)->SetBool(b != 0); M(m)->touched(); };
  h.value_set_int = [](ef_message* m, ef_value* v, int64_t i) { V(v)->SetInt64(i); M(m)->touched(); };
  h.value_set_double = [](ef_message* m, ef_value* v, double d) {
    if (std::isfinite(d)) V(v)->SetDouble(d);
    else V(v)->SetNull();  // no JSON form; and a NaN would read as a boxed number
    M(m)->touched();
  };
  h.value_set_string = [](ef_message* m, ef_value* v, const char* s, size_t n) {
    V(v)->SetString(s, rapidjson::SizeType(n), M(m)->alloc());
    M(m)->touched();
  };
  h.value_set_object = [](ef_message* m, ef_value* v) { V(v)->SetObject(); M(m)->touched(); };
  h.value_set_array = [](ef_message* m, ef_value* v) { V(v)->SetArray(); M(m)->touched(); };
  h.object_put = [](ef_message* m, ef_value* o, const char* n, size_t len) -> ef_value* {
    JValue* obj = V(o);
    if (!obj->IsObject()) obj->SetObject();
    M(m)->touched();
    auto it = obj->FindMember(JValue(rapidjson::StringRef(n, rapidjson::SizeType(len))));
    if (it != obj->MemberEnd()) return EV(&it->value);
    obj->AddMember(JValue(n, rapidjson::SizeType(len), M(m)->alloc()), JValue(), M(m)->alloc());
    return EV(&(obj->MemberEnd() - 1)->value);
  };
  h.object_remove = [](ef_message* m, ef_value* o, const char* n, size_t len) -> int {
    if (!V(o)->IsObject()) return 0;
    bool r = V(o)->EraseMember(JValue(rapidjson::StringRef(n, rapidjson::SizeType(len))));
    if (r) M(m)->touched();
    return r ? 1 : 0;
  };
  h.array_push = [](ef_message* m, ef_value* a) -> ef_value* {
    JValue* arr = V(a);
    if (!arr->IsArray()) arr->SetArray();
    arr->PushBack(JValue(), M(m)->alloc());
    M(m)->touched();
    return EV(&(*arr)[arr->Size() - 1]);
  };
  h.value_copy = [](ef_message* m, ef_value* dst, const ef_value* src) {
    deep_copy(*V(dst), *V(src), M(m)->alloc());
    M(m)->touched();
  };
  h.value_number_text = [](const ef_value* v, size_t* len) -> const char* {
    const ExactNumber* n = exact_number(*V(v));
    *len = n ? n->len : 0;
    return n ? n->text() : nullptr;
  };
  h.value_set_number_text = [](ef_message* m, ef_value* v, const char* text, size_t len) -> int {
    std::string_view t(text, len);
    if (!json_number(t)) return 0;
    NumberRead r = read_number(t, M(m)->alloc());
    if (r.is_int) V(v)->SetInt64(r.i);
    else V(v)->SetDouble(r.d);
    M(m)->touched();
    return 1;
  };
}

}  // namespace edgeflow::host
