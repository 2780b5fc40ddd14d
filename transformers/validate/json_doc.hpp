// JSON read exactly, for schema validation: numbers stay the text that arrived (compared as
// decimals, never through a double), strings are decoded in place, and the document is read as
// I-JSON (RFC 7493): valid UTF-8, no unpaired surrogate, no member name twice. One flat array of
// values per document, reused from message to message, so reading a payload allocates nothing
// once the buffers have grown.
#pragma once

#include <rapidjson/error/en.h>
#include <rapidjson/reader.h>
#include <rapidjson/stringbuffer.h>

#include <algorithm>
#include <cstring>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace edgeflow_validate {

enum class Kind : uint8_t { null, boolean, number, string, array, object };

struct JsonValue {
  Kind kind = Kind::null;
  bool boolean = false;
  std::string_view text;  // a string's decoded contents, a number's text as written
  uint32_t first = 0;     // an array's elements (Doc::elements) or an object's members (Doc::members)
  uint32_t count = 0;
};

struct Member {
  std::string_view name;
  uint32_t value;
};

class Doc {
 public:
  Doc() = default;
  Doc(const Doc&) = delete;  // values point into buffer_
  Doc& operator=(const Doc&) = delete;

  // Reads `text` (copied: the copy is decoded in place). False with error() set when it is not
  // I-JSON or nests deeper than max_depth; `offset` is where reading stopped.
  bool parse(std::string_view text, uint32_t max_depth) {
    // Four NULs: RapidJSON's UTF-8 check reads a sequence's three continuation bytes before it
    // looks at them, so a lead byte at the very end would read past one terminator.
    buffer_.assign(text.data(), text.size());
    buffer_.append(4, '\0');
    values_.clear();
    elements_.clear();
    members_.clear();
    pending_.clear();
    pending_members_.clear();
    error_.clear();
    // Only an escape can make a surrogate: without a backslash, no string needs the check.
    Builder b{*this, max_depth, 0, {}, std::memchr(text.data(), '\\', text.size()) != nullptr};
    rapidjson::InsituStringStream in(buffer_.data());
    rapidjson::Reader reader;
    reader.Parse<rapidjson::kParseInsituFlag | rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag |
                 rapidjson::kParseNumbersAsStringsFlag | rapidjson::kParseStopWhenDoneFlag>(in, b);
    if (reader.HasParseError()) {
      offset_ = reader.GetErrorOffset();
      if (error_.empty()) error_ = rapidjson::GetParseError_En(reader.GetParseErrorCode());
      if (reader.GetParseErrorCode() == rapidjson::kParseErrorTermination) error_ = b.why;
      return false;
    }
    // Only white space may follow the value (kParseStopWhenDoneFlag stops after it).
    size_t end = in.Tell();
    while (end < text.size() && (text[end] == ' ' || text[end] == '\t' || text[end] == '\n' || text[end] == '\r'))
      ++end;
    if (end != text.size()) {
      offset_ = end;
      error_ = "something follows the JSON value";
      return false;
    }
    root_ = pending_.back();
    return true;
  }

  const std::string& error() const { return error_; }
  size_t offset() const { return offset_; }

  const JsonValue& root() const { return values_[root_]; }
  uint32_t root_index() const { return root_; }
  const JsonValue& operator[](uint32_t i) const { return values_[i]; }
  uint32_t element(const JsonValue& array, uint32_t i) const { return elements_[array.first + i]; }
  const Member& member(const JsonValue& object, uint32_t i) const { return members_[object.first + i]; }
  // The member `name` of `object`, or nullptr.
  const JsonValue* find(const JsonValue& object, std::string_view name) const {
    for (uint32_t i = 0; i < object.count; ++i)
      if (members_[object.first + i].name == name) return &values_[members_[object.first + i].value];
    return nullptr;
  }
  uint32_t index_of(const JsonValue& v) const { return uint32_t(&v - values_.data()); }

 private:
  struct Builder {
    Doc& d;
    uint32_t max_depth;
    uint32_t depth = 0;
    std::string why;
    bool escapes;

    bool add(JsonValue v) {
      d.pending_.push_back(uint32_t(d.values_.size()));
      d.values_.push_back(v);
      return true;
    }
    bool Null() { return add(JsonValue{}); }
    bool Bool(bool b) { return add(JsonValue{Kind::boolean, b, {}, 0, 0}); }
    bool RawNumber(const char* s, rapidjson::SizeType n, bool) { return add(JsonValue{Kind::number, false, {s, n}, 0, 0}); }
    bool String(const char* s, rapidjson::SizeType n, bool) {
      return whole(s, n) && add(JsonValue{Kind::string, false, {s, n}, 0, 0});
    }
    bool Key(const char* s, rapidjson::SizeType n, bool) {
      if (!whole(s, n)) return false;
      d.pending_members_.push_back(Member{{s, n}, 0});
      return true;
    }
    // RapidJSON decodes a lone \uDC00 (a low surrogate without its high one) to bytes that are
    // not UTF-8 (ED B0 80); the raw input is checked already, so only an escape makes them.
    bool whole(const char* s, size_t n) {
      if (!escapes) return true;
      for (const void* p = std::memchr(s, 0xED, n); p; p = std::memchr(p, 0xED, n - size_t(static_cast<const char*>(p) - s))) {
        size_t at = size_t(static_cast<const char*>(p) - s);
        if (at + 1 < n && static_cast<unsigned char>(s[at + 1]) >= 0xA0) {
          why = "a string holds an unpaired UTF-16 surrogate (\\uD800-\\uDFFF), which is not Unicode text (I-JSON, RFC 7493)";
          return false;
        }
        p = s + at + 1;
        if (at + 1 >= n) break;
      }
      return true;
    }
    bool Int(int) { return false; }
    bool Uint(unsigned) { return false; }
    bool Int64(int64_t) { return false; }
    bool Uint64(uint64_t) { return false; }
    bool Double(double) { return false; }
    bool open() {
      if (++depth <= max_depth) return true;
      why = "nested deeper than " + std::to_string(max_depth) + " levels";
      return false;
    }
    bool StartObject() {
      if (!open()) return false;
      d.pending_.push_back(kObjectMark);
      return true;
    }
    bool StartArray() {
      if (!open()) return false;
      d.pending_.push_back(kArrayMark);
      return true;
    }
    bool EndArray(rapidjson::SizeType n) {
      --depth;
      JsonValue v{Kind::array, false, {}, uint32_t(d.elements_.size()), n};
      size_t at = d.pending_.size() - n;
      d.elements_.insert(d.elements_.end(), d.pending_.begin() + long(at), d.pending_.end());
      d.pending_.resize(at - 1);  // and the mark
      return add(v);
    }
    bool EndObject(rapidjson::SizeType n) {
      --depth;
      size_t at = d.pending_.size() - n;
      size_t names = d.pending_members_.size() - n;
      for (size_t i = 0; i < n; ++i) d.pending_members_[names + i].value = d.pending_[at + i];
      if (!unique(names, n)) return false;
      JsonValue v{Kind::object, false, {}, uint32_t(d.members_.size()), n};
      d.members_.insert(d.members_.end(), d.pending_members_.begin() + long(names), d.pending_members_.end());
      d.pending_members_.resize(names);
      d.pending_.resize(at - 1);
      return add(v);
    }
    bool unique(size_t from, size_t n) {
      auto* m = d.pending_members_.data() + from;
      if (n <= 16) {
        for (size_t i = 1; i < n; ++i)
          for (size_t j = 0; j < i; ++j)
            if (m[i].name == m[j].name) return duplicate(m[i].name);
        return true;
      }
      d.seen_.clear();
      for (size_t i = 0; i < n; ++i)
        if (!d.seen_.insert(m[i].name).second) return duplicate(m[i].name);
      return true;
    }
    bool duplicate(std::string_view name) {
      why = "the member name \"" + std::string(name.substr(0, 64)) +
            "\" appears twice in one object (I-JSON, RFC 7493: readers disagree on which one counts)";
      return false;
    }
  };
  static constexpr uint32_t kObjectMark = UINT32_MAX, kArrayMark = UINT32_MAX - 1;

  std::string buffer_;
  std::vector<JsonValue> values_;
  std::vector<uint32_t> elements_;
  std::vector<Member> members_;
  std::vector<uint32_t> pending_;  // values not yet in a container, and container marks
  std::vector<Member> pending_members_;
  std::unordered_set<std::string_view> seen_;
  uint32_t root_ = 0;
  std::string error_;
  size_t offset_ = 0;
};

}  // namespace edgeflow_validate
