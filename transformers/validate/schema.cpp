#include "schema.hpp"

#include "uri.hpp"

#include <edgeflow/sdk/formats.hpp>
#include <edgeflow/sdk/suggest.hpp>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

namespace edgeflow_validate {

// ---------------------------------------------------------------------------------------------
// Patterns

// ECMA-262 patterns through PCRE2: `$` only at the very end and \uXXXX escapes as in JavaScript;
// \d \w \s stay ASCII as in ECMA-262 without the u flag. A match limit bounds the backtracking a
// hostile string can cause; past it the string does not match, with its own reason.
class Regex {
 public:
  static std::unique_ptr<Regex> compile(const std::string& pattern, std::string& error) {
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                   PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_ALT_BSUX, &code, &offset, nullptr);
    if (!re) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(code, buf, sizeof buf);
      error = reinterpret_cast<char*>(buf) + std::string(" at offset ") + std::to_string(offset);
      return nullptr;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);  // interpreted when JIT is not available
    return std::unique_ptr<Regex>(new Regex(re));
  }
  ~Regex() {
    pcre2_match_data_free(data_);
    pcre2_match_context_free(context_);
    pcre2_code_free(code_);
  }
  // 1: matches somewhere, 0: does not, -1: gave up at the match limit.
  int search(std::string_view s) {
    int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), 0, PCRE2_NO_UTF_CHECK, data_,
                         context_);
    if (rc >= 0) return 1;
    return rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
  }

 private:
  explicit Regex(pcre2_code* re) : code_(re) {
    data_ = pcre2_match_data_create_from_pattern(code_, nullptr);
    context_ = pcre2_match_context_create(nullptr);
    pcre2_set_match_limit(context_, 1000000);
    pcre2_set_depth_limit(context_, 10000);
  }
  pcre2_code* code_;
  pcre2_match_data* data_ = nullptr;
  pcre2_match_context* context_ = nullptr;
};

// ---------------------------------------------------------------------------------------------
// The compiled schema

namespace {

enum TypeBit : uint8_t {
  t_null = 1, t_boolean = 2, t_object = 4, t_array = 8, t_number = 16, t_string = 32, t_integer = 64
};

constexpr uint32_t kNone = UINT32_MAX;

std::string escape_token(std::string_view t) {
  std::string out;
  for (char c : t) {
    if (c == '~') out += "~0";
    else if (c == '/') out += "~1";
    else out += c;
  }
  return out;
}

// Control characters would break the one-line reason.
std::string printable(std::string_view s, size_t max) {
  std::string out;
  static const char* hex = "0123456789abcdef";
  size_t shown = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) != 0x80 && ++shown > max) {
      out += "...";
      break;
    }
    if (c < 0x20 || c == '"' || c == '\\') {
      out += '\\';
      if (c == '"' || c == '\\') out += char(c);
      else out += std::string("u00") + hex[c >> 4] + hex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out;
}

bool regex_compiles(std::string_view pattern) {
  std::string error;
  return Regex::compile(std::string(pattern), error) != nullptr;
}

bool is_integer_text(std::string_view t) { return Decimal::parse(t).integer(); }

size_t code_points(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

// A number from the schema: exact, and as an int64 when it is a small plain integer.
struct Bound {
  Decimal exact;
  int64_t value = 0;
  bool small = false;
  explicit Bound(std::string_view text) : exact(Decimal::parse(text)) { small = Decimal::small_integer(text, value); }
  // -1, 0, 1 as the number `text` is less than, equal to, more than this.
  int compare(std::string_view text) const {
    int64_t x;
    if (small && Decimal::small_integer(text, x)) return x < value ? -1 : x > value ? 1 : 0;
    return Decimal::compare(Decimal::parse(text), exact);
  }
  bool divides(std::string_view text) const {
    int64_t x;
    if (small && Decimal::small_integer(text, x)) return x % value == 0;
    return Decimal::parse(text).multiple_of(exact);
  }
  std::string text() const { return exact.text(); }
};

struct Schema::Node {
  enum class Kind : uint8_t { schema, accept, reject, ref } kind = Kind::schema;
  std::string where;  // the schema's URI and pointer, for messages
  uint32_t ref = kNone;
  const Doc* doc = nullptr;  // enum and const values live there
  uint8_t types = 0;
  bool has_enum = false, has_const = false, unique_items = false;
  std::vector<uint32_t> enum_values;
  uint32_t const_value = 0, enum_array = 0;
  std::optional<Bound> multiple_of, maximum, minimum, exclusive_maximum, exclusive_minimum;
  int64_t max_length = -1, min_length = 0, max_items = -1, min_items = 0, max_properties = -1, min_properties = 0;
  Regex* pattern = nullptr;
  std::string pattern_text;
  uint32_t items = kNone, additional_items = kNone, contains = kNone, property_names = kNone;
  bool items_array = false;
  std::vector<uint32_t> items_list;
  std::vector<std::string> required;
  std::vector<std::pair<std::string, uint32_t>> properties;
  std::vector<std::pair<Regex*, uint32_t>> pattern_properties;
  uint32_t additional_properties = kNone;
  bool no_additional_items = false, no_additional_properties = false;  // `false` in their place
  std::vector<std::pair<std::string, std::vector<std::string>>> dependency_names;
  std::vector<std::pair<std::string, uint32_t>> dependency_schemas;
  uint32_t if_ = kNone, then_ = kNone, else_ = kNone, not_ = kNone;
  std::vector<uint32_t> all_of, any_of, one_of;
  std::string format;
  bool draft4 = false;
};

Schema::~Schema() = default;

void Schema::fail(Location at, const std::string& pointer, const std::string& why) const {
  auto it = file_of_.find(at.doc);
  throw SchemaError(it == file_of_.end() ? "" : it->second, pointer, why);
}

Schema::Schema(const Doc& root, const std::string& file, const Options& options)
    : options_(options), root_doc_(&root) {
  const JsonValue& r = root.root();
  if (r.kind == Kind::object) {
    if (const JsonValue* s = root.find(r, "$schema"); s && s->kind == Kind::string) {
      std::string_view uri = s->text;
      while (!uri.empty() && uri.back() == '#') uri.remove_suffix(1);
      if (uri == "http://json-schema.org/draft-04/schema") draft_ = Draft::draft4;
      else if (uri == "http://json-schema.org/draft-07/schema" || uri == "http://json-schema.org/draft-06/schema")
        draft_ = Draft::draft7;
      else
        fail({&root, root.root_index()}, "/$schema",
             "$schema \"" + std::string(s->text) +
                 "\" is not a draft this validator implements: use http://json-schema.org/draft-07/schema# "
                 "or http://json-schema.org/draft-04/schema#");
    }
  }
  std::string base;
  if (!file.empty()) {
    file_of_[&root] = file;
    base = "file://" + std::filesystem::absolute(file).lexically_normal().string();
  } else {
    std::string dir = options_.schema_dir.empty() ? std::filesystem::current_path().string()
                                                  : std::filesystem::absolute(options_.schema_dir).string();
    base = "file://" + (std::filesystem::path(dir) / "(inline schema)").lexically_normal().string();
  }
  index_resources(root, base, file);
  if (!options_.schema_dir.empty()) {
    std::error_code ec;
    std::filesystem::recursive_directory_iterator it(options_.schema_dir, ec), end;
    if (ec)
      throw SchemaError("", "", "schema_dir " + options_.schema_dir + " cannot be read: " + ec.message());
    for (; it != end; it.increment(ec)) {
      if (ec) break;
      if (it->is_regular_file() && it->path().extension() == ".json")
        load_file("file://" + std::filesystem::absolute(it->path()).lexically_normal().string());
    }
  }
  root_ = compile({&root, root.root_index()}, "");
  check_cycles();
}

// A schema that applies itself to the same value (`allOf: [{$ref: "#"}]`) would never finish:
// refused at load. Only keywords that look at the value itself, not into it, count.
void Schema::check_cycles() const {
  std::vector<uint8_t> state(nodes_.size(), 0);  // 0 new, 1 on the path, 2 done
  std::function<void(uint32_t)> visit = [&](uint32_t i) {
    if (state[i] == 2) return;
    if (state[i] == 1)
      throw SchemaError("", "", "the schema at " + nodes_[i].where +
                                    " applies itself to the same value without end ($ref, allOf, anyOf, oneOf, not, "
                                    "if/then/else or dependencies lead back to it)");
    state[i] = 1;
    const Node& n = nodes_[i];
    if (n.ref != kNone) visit(n.ref);
    for (auto list : {&n.all_of, &n.any_of, &n.one_of})
      for (uint32_t s : *list) visit(s);
    for (uint32_t s : {n.not_, n.if_, n.then_, n.else_})
      if (s != kNone) visit(s);
    for (auto& dep : n.dependency_schemas) visit(dep.second);
    state[i] = 2;
  };
  for (uint32_t i = 0; i < nodes_.size(); ++i) visit(i);
}

// ---------------------------------------------------------------------------------------------
// Loading: every `$id` is known before any `$ref` is followed

const Doc* Schema::load_file(const std::string& uri) {
  if (auto it = resources_.find(uri); it != resources_.end()) return it->second.doc;
  if (uri.rfind("file://", 0) != 0 || options_.schema_dir.empty()) return nullptr;
  std::filesystem::path path = std::filesystem::path(uri.substr(7)).lexically_normal();
  std::filesystem::path dir = std::filesystem::absolute(options_.schema_dir).lexically_normal();
  // Only files under schema_dir: a `$ref` never reads anywhere else.
  auto rel = path.lexically_relative(dir);
  if (rel.empty() || *rel.begin() == "..") return nullptr;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return nullptr;
  if (uint64_t(st.st_size) > options_.max_file_bytes)
    throw SchemaError(path.string(), "", "the schema file is larger than " + std::to_string(options_.max_file_bytes) +
                                             " bytes");
  if (files_.size() >= options_.max_files)
    throw SchemaError(path.string(), "", "more than " + std::to_string(options_.max_files) + " schema files");
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  auto doc = std::make_unique<Doc>();
  if (!doc->parse(ss.str(), 512))
    throw SchemaError(path.string(), "", "not JSON at byte " + std::to_string(doc->offset()) + ": " + doc->error());
  const Doc* d = doc.get();
  files_.push_back(std::move(doc));
  file_of_[d] = path.string();
  index_resources(*d, uri, path.string());
  return d;
}

void Schema::index_resources(const Doc& doc, const std::string& base, const std::string& file) {
  Draft draft = draft_;
  if (const JsonValue& r = doc.root(); r.kind == Kind::object)
    if (const JsonValue* s = doc.find(r, "$schema"); s && s->kind == Kind::string)
      draft = s->text.find("draft-04") != std::string_view::npos ? Draft::draft4
              : s->text.find("draft-07") != std::string_view::npos || s->text.find("draft-06") != std::string_view::npos
                  ? Draft::draft7
                  : draft_;
  draft_of_[&doc] = draft;
  resources_.emplace(split_fragment(base).first, Location{&doc, doc.root_index()});
  index(doc, doc.root_index(), base, file, "", 0);
}

// Walks the schema positions of `doc` (never into enum or const values, where `$id` is data),
// recording each one's base URI, and every `$id` as a resource or a plain-name anchor.
void Schema::index(const Doc& doc, uint32_t v, const std::string& base_in, const std::string& file,
                   const std::string& pointer, int depth) {
  const JsonValue& s = doc[v];
  if (s.kind != Kind::object || depth > 256) {
    base_of_.emplace(Location{&doc, v}, base_in);
    return;
  }
  std::string base = base_in;
  const JsonValue* id = doc.find(s, draft7(&doc) ? "$id" : "id");
  // Beside `$ref`, draft-07 ignores every other keyword, `$id` included.
  if (id && id->kind == Kind::string && !doc.find(s, "$ref")) {
    std::string uri = resolve_uri(base, id->text);
    auto [resource, fragment] = split_fragment(uri);
    if (!fragment.empty()) anchors_.emplace(resource + "#" + fragment, Location{&doc, v});
    if (id->text.empty() || id->text[0] != '#') {
      resources_.emplace(resource, Location{&doc, v});
      base = resource;
    }
  }
  base_of_.emplace(Location{&doc, v}, base);
  for (uint32_t i = 0; i < s.count; ++i) {
    const Member& m = doc.member(s, i);
    const JsonValue& x = doc[m.value];
    std::string here = pointer + "/" + escape_token(m.name);
    std::string_view k = m.name;
    if (k == "properties" || k == "patternProperties" || k == "definitions" || k == "dependencies") {
      if (x.kind == Kind::object)
        for (uint32_t j = 0; j < x.count; ++j)
          index(doc, doc.member(x, j).value, base, file, here + "/" + escape_token(doc.member(x, j).name), depth + 1);
    } else if (k == "items" || k == "allOf" || k == "anyOf" || k == "oneOf") {
      if (x.kind == Kind::array) {
        for (uint32_t j = 0; j < x.count; ++j)
          index(doc, doc.element(x, j), base, file, here + "/" + std::to_string(j), depth + 1);
      } else {
        index(doc, m.value, base, file, here, depth + 1);
      }
    } else if (k == "additionalItems" || k == "additionalProperties" || k == "contains" || k == "propertyNames" ||
               k == "if" || k == "then" || k == "else" || k == "not") {
      index(doc, m.value, base, file, here, depth + 1);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Compiling

uint32_t Schema::compile(Location at, const std::string& pointer) {
  if (auto it = compiled_.find(at); it != compiled_.end()) return it->second;
  uint32_t id = uint32_t(nodes_.size());
  compiled_.emplace(at, id);
  nodes_.emplace_back();
  auto file = file_of_.find(at.doc);
  nodes_[id].where = (file == file_of_.end() ? std::string("schema") : file->second) + "#" + pointer;
  nodes_[id].doc = at.doc;
  const JsonValue& s = (*at.doc)[at.value];
  if (s.kind == Kind::boolean && draft7(at.doc)) {
    nodes_[id].kind = s.boolean ? Node::Kind::accept : Node::Kind::reject;
    return id;
  }
  if (s.kind != Kind::object)
    fail(at, pointer,
         std::string("expected a schema: an object") + (draft7(at.doc) ? " or true/false" : "") +
             (s.kind == Kind::boolean ? " (draft-04 has no boolean schemas; write {} for true, {\"not\": {}} for false)"
                                      : ""));
  if (const JsonValue* ref = at.doc->find(s, "$ref")) {
    if (ref->kind != Kind::string) fail(at, pointer + "/$ref", "$ref must be a URI reference (a string)");
    uint32_t target = resolve(std::string(ref->text), at, pointer + "/$ref");
    nodes_[id].kind = Node::Kind::ref;
    nodes_[id].ref = target;
    return id;
  }
  Node n = std::move(nodes_[id]);
  keywords(n, at, pointer);
  nodes_[id] = std::move(n);
  return id;
}

uint32_t Schema::child(Location parent, const JsonValue& v, const std::string& pointer) {
  return compile({parent.doc, parent.doc->index_of(v)}, pointer);
}

uint32_t Schema::resolve(const std::string& ref, Location at, const std::string& pointer) {
  auto base = base_of_.find(at);
  std::string uri = resolve_uri(base == base_of_.end() ? "" : base->second, ref);
  auto [resource, fragment] = split_fragment(uri);
  const Doc* doc = nullptr;
  Location start{};
  if (auto it = resources_.find(resource); it != resources_.end()) {
    start = it->second;
    doc = start.doc;
  } else if ((doc = load_file(resource))) {
    start = {doc, doc->root_index()};
  } else {
    fail(at, pointer,
         "$ref \"" + ref + "\" (" + resource + ") is not this schema, nor a schema file in schema_dir" +
             (options_.schema_dir.empty() ? " (none is set)" : " " + options_.schema_dir) +
             " by path or by $id: edgeflow never fetches schemas over a network; save the schema in schema_dir");
  }
  if (fragment.empty()) return compile(start, "");
  if (fragment[0] != '/') {
    auto it = anchors_.find(resource + "#" + fragment);
    if (it == anchors_.end()) fail(at, pointer, "$ref \"" + ref + "\": no schema has the $id #" + fragment);
    return compile(it->second, "");
  }
  // A JSON pointer, percent-decoded first (it is a URI fragment).
  std::string decoded;
  for (size_t i = 0; i < fragment.size(); ++i) {
    if (fragment[i] == '%' && i + 2 < fragment.size() && std::isxdigit(static_cast<unsigned char>(fragment[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(fragment[i + 2]))) {
      decoded += char(std::stoi(fragment.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      decoded += fragment[i];
    }
  }
  uint32_t v = start.value;
  std::string walked;
  size_t pos = 1;
  while (pos <= decoded.size()) {
    size_t end = decoded.find('/', pos);
    if (end == std::string::npos) end = decoded.size();
    std::string token;
    for (size_t i = pos; i < end; ++i) {
      if (decoded[i] == '~' && i + 1 < end && (decoded[i + 1] == '0' || decoded[i + 1] == '1')) {
        token += decoded[i + 1] == '0' ? '~' : '/';
        ++i;
      } else {
        token += decoded[i];
      }
    }
    const JsonValue& x = (*doc)[v];
    const JsonValue* next = nullptr;
    if (x.kind == Kind::object) {
      next = doc->find(x, token);
    } else if (x.kind == Kind::array && !token.empty() && token.find_first_not_of("0123456789") == std::string::npos &&
               token.size() < 10 && std::stoul(token) < x.count) {
      next = &(*doc)[doc->element(x, uint32_t(std::stoul(token)))];
    }
    if (!next) fail(at, pointer, "$ref \"" + ref + "\": nothing at " + decoded.substr(0, end) + " in " + resource);
    uint32_t child_index = doc->index_of(*next);
    // A position the index did not visit takes the base of the one above it.
    if (!base_of_.count({doc, child_index})) base_of_.emplace(Location{doc, child_index}, base_of_[{doc, v}]);
    v = child_index;
    walked += '/';
    walked += escape_token(token);
    pos = end + 1;
  }
  return compile({doc, v}, walked);
}

Regex* Schema::regex(const std::string& pattern, Location at, const std::string& pointer) {
  if (auto it = regex_by_pattern_.find(pattern); it != regex_by_pattern_.end()) return it->second;
  std::string error;
  auto re = Regex::compile(pattern, error);
  if (!re) fail(at, pointer, "pattern \"" + printable(pattern, 60) + "\" is not a regular expression: " + error);
  regexes_.push_back(std::move(re));
  regex_by_pattern_[pattern] = regexes_.back().get();
  return regexes_.back().get();
}

void Schema::keywords(Node& n, Location at, const std::string& pointer) {
  const Doc& d = *at.doc;
  const JsonValue& s = d[at.value];
  const bool d7 = draft7(at.doc);
  n.draft4 = !d7;
  auto number = [&](const JsonValue& x, const std::string& where, const std::string& k) {
    if (x.kind != Kind::number) fail(at, where, k + " must be a number");
    return Bound(x.text);
  };
  auto count = [&](const JsonValue& x, const std::string& where, const std::string& k) {
    Decimal v = x.kind == Kind::number ? Decimal::parse(x.text) : Decimal{};
    if (x.kind != Kind::number || v.negative || !v.integer())
      fail(at, where, k + " must be a non-negative integer");
    if (v.exponent > 18) return int64_t(INT64_MAX);
    return int64_t(std::stoll(v.zero() ? "0" : v.digits + std::string(size_t(v.exponent - int64_t(v.digits.size())), '0')));
  };
  auto schema_array = [&](const JsonValue& x, const std::string& where, const std::string& k) {
    if (x.kind != Kind::array || x.count == 0) fail(at, where, k + " must be a non-empty array of schemas");
    std::vector<uint32_t> out;
    for (uint32_t i = 0; i < x.count; ++i)
      out.push_back(compile({&d, d.element(x, i)}, where + "/" + std::to_string(i)));
    return out;
  };
  auto names = [&](const JsonValue& x, const std::string& where, const std::string& k) {
    if (x.kind != Kind::array) fail(at, where, k + " must be an array of property names");
    std::vector<std::string> out;
    for (uint32_t i = 0; i < x.count; ++i) {
      const JsonValue& e = d[d.element(x, i)];
      if (e.kind != Kind::string) fail(at, where + "/" + std::to_string(i), k + " lists property names (strings)");
      if (std::find(out.begin(), out.end(), e.text) != out.end())
        fail(at, where + "/" + std::to_string(i), k + " names \"" + std::string(e.text) + "\" twice");
      out.emplace_back(e.text);
    }
    return out;
  };
  static const std::vector<std::string_view> d4_words = {
      "id", "$schema", "title", "description", "default", "type", "enum", "multipleOf", "maximum",
      "exclusiveMaximum", "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "items",
      "additionalItems", "maxItems", "minItems", "uniqueItems", "maxProperties", "minProperties", "required",
      "properties", "patternProperties", "additionalProperties", "dependencies", "allOf", "anyOf", "oneOf", "not",
      "definitions", "format", "$ref"};
  static const std::vector<std::string_view> d7_words = {
      "$id", "$comment", "const", "contains", "propertyNames", "if", "then", "else", "examples", "readOnly",
      "writeOnly", "contentMediaType", "contentEncoding"};

  for (uint32_t i = 0; i < s.count; ++i) {
    const Member& m = d.member(s, i);
    const JsonValue& x = d[m.value];
    const std::string k(m.name);
    const std::string where = pointer + "/" + escape_token(m.name);
    if (k == "type") {
      auto bit = [&](const JsonValue& t, const std::string& w) -> uint8_t {
        if (t.kind != Kind::string) fail(at, w, "type names a type: a string or an array of strings");
        std::string_view v = t.text;
        if (v == "null") return t_null;
        if (v == "boolean") return t_boolean;
        if (v == "object") return t_object;
        if (v == "array") return t_array;
        if (v == "number") return t_number;
        if (v == "string") return t_string;
        if (v == "integer") return t_integer;
        fail(at, w, "type \"" + std::string(v) + "\" is not a JSON Schema type: null, boolean, object, array, number, "
                    "string or integer");
      };
      if (x.kind == Kind::array) {
        for (uint32_t j = 0; j < x.count; ++j) n.types |= bit(d[d.element(x, j)], where + "/" + std::to_string(j));
        if (x.count == 0) fail(at, where, "type must not be an empty array");
      } else {
        n.types = bit(x, where);
      }
    } else if (k == "enum") {
      if (x.kind != Kind::array) fail(at, where, "enum must be an array of the allowed values");
      if (x.count == 0) fail(at, where, "enum must list at least one value (an empty enum allows nothing)");
      n.has_enum = true;
      n.enum_array = m.value;
      for (uint32_t j = 0; j < x.count; ++j) n.enum_values.push_back(d.element(x, j));
    } else if (k == "const" && d7) {
      n.has_const = true;
      n.const_value = m.value;
    } else if (k == "multipleOf") {
      n.multiple_of = number(x, where, k);
      if (n.multiple_of->exact.zero() || n.multiple_of->exact.negative) fail(at, where, "multipleOf must be more than 0");
    } else if (k == "maximum") {
      n.maximum = number(x, where, k);
    } else if (k == "minimum") {
      n.minimum = number(x, where, k);
    } else if (k == "exclusiveMaximum" || k == "exclusiveMinimum") {
      bool max = k == "exclusiveMaximum";
      if (d7) {
        (max ? n.exclusive_maximum : n.exclusive_minimum) = number(x, where, k);
      } else if (x.kind != Kind::boolean) {
        fail(at, where, k + " is true or false in draft-04 (a number from draft-06 on: set $schema to draft-07)");
      }
    } else if (k == "maxLength") {
      n.max_length = count(x, where, k);
    } else if (k == "minLength") {
      n.min_length = count(x, where, k);
    } else if (k == "pattern") {
      if (x.kind != Kind::string) fail(at, where, "pattern must be a regular expression (a string)");
      n.pattern_text = std::string(x.text);
      n.pattern = regex(n.pattern_text, at, where);
    } else if (k == "items") {
      if (x.kind == Kind::array) {
        n.items_array = true;
        for (uint32_t j = 0; j < x.count; ++j)
          n.items_list.push_back(compile({&d, d.element(x, j)}, where + "/" + std::to_string(j)));
      } else {
        n.items = child(at, x, where);
      }
    } else if (k == "additionalItems") {
      if (x.kind == Kind::boolean) n.no_additional_items = !x.boolean;
      else n.additional_items = child(at, x, where);
    } else if (k == "maxItems") {
      n.max_items = count(x, where, k);
    } else if (k == "minItems") {
      n.min_items = count(x, where, k);
    } else if (k == "uniqueItems") {
      if (x.kind != Kind::boolean) fail(at, where, "uniqueItems must be true or false");
      n.unique_items = x.boolean;
    } else if (k == "contains" && d7) {
      n.contains = child(at, x, where);
    } else if (k == "maxProperties") {
      n.max_properties = count(x, where, k);
    } else if (k == "minProperties") {
      n.min_properties = count(x, where, k);
    } else if (k == "required") {
      n.required = names(x, where, k);
      if (n.required.empty() && !d7) fail(at, where, "required must list at least one name in draft-04");
    } else if (k == "properties" || k == "patternProperties" || k == "definitions") {
      if (x.kind != Kind::object) fail(at, where, k + " must be an object of schemas");
      for (uint32_t j = 0; j < x.count; ++j) {
        const Member& p = d.member(x, j);
        std::string w = where + "/" + escape_token(p.name);
        if (k == "properties") n.properties.emplace_back(std::string(p.name), compile({&d, p.value}, w));
        else if (k == "patternProperties")
          n.pattern_properties.emplace_back(regex(std::string(p.name), at, w), compile({&d, p.value}, w));
        else compile({&d, p.value}, w);  // refused now if broken, even when nothing refers to it
      }
    } else if (k == "additionalProperties") {
      if (x.kind == Kind::boolean) n.no_additional_properties = !x.boolean;
      else n.additional_properties = child(at, x, where);
    } else if (k == "dependencies") {
      if (x.kind != Kind::object) fail(at, where, "dependencies must be an object");
      for (uint32_t j = 0; j < x.count; ++j) {
        const Member& p = d.member(x, j);
        std::string w = where + "/" + escape_token(p.name);
        if (d[p.value].kind == Kind::array) n.dependency_names.emplace_back(std::string(p.name), names(d[p.value], w, k));
        else n.dependency_schemas.emplace_back(std::string(p.name), compile({&d, p.value}, w));
      }
    } else if (k == "propertyNames" && d7) {
      n.property_names = child(at, x, where);
    } else if ((k == "if" || k == "then" || k == "else") && d7) {
      (k == "if" ? n.if_ : k == "then" ? n.then_ : n.else_) = child(at, x, where);
    } else if (k == "allOf") {
      n.all_of = schema_array(x, where, k);
    } else if (k == "anyOf") {
      n.any_of = schema_array(x, where, k);
    } else if (k == "oneOf") {
      n.one_of = schema_array(x, where, k);
    } else if (k == "not") {
      n.not_ = child(at, x, where);
    } else if (k == "format") {
      if (x.kind != Kind::string) fail(at, where, "format must be a string");
      if (options_.format_assertion && edgeflow::sdk::formats::known_format(x.text)) n.format = std::string(x.text);
    } else if (k.rfind("x-", 0) != 0 && k != "$defs" && std::find(d4_words.begin(), d4_words.end(), k) == d4_words.end() &&
               (!d7 || std::find(d7_words.begin(), d7_words.end(), k) == d7_words.end())) {
      std::vector<std::string_view> known(d4_words);
      if (d7) known.insert(known.end(), d7_words.begin(), d7_words.end());
      std::string near = edgeflow::sdk::closest(k, known);
      unknown_.push_back({k, (file_of_.count(&d) ? file_of_.at(&d) : std::string("schema")) + "#" + where, near});
    }
  }
  // draft-04: exclusiveMaximum: true turns maximum into an exclusive bound.
  if (!d7) {
    if (const JsonValue* e = d.find(s, "exclusiveMaximum"); e && e->boolean && n.maximum)
      n.exclusive_maximum = std::move(n.maximum), n.maximum.reset();
    if (const JsonValue* e = d.find(s, "exclusiveMinimum"); e && e->boolean && n.minimum)
      n.exclusive_minimum = std::move(n.minimum), n.minimum.reset();
  }
  // `then` and `else` mean nothing without `if`.
  if (n.if_ == kNone) n.then_ = n.else_ = kNone;
}

// ---------------------------------------------------------------------------------------------
// Validating

struct Schema::Ctx {
  struct Step {
    std::string_view name;  // a member name, or empty with `index` for an array item
    uint32_t index;
    bool is_index;
  };
  std::vector<Step> path;
  std::vector<Failure>* failures;
  size_t max;
  bool full() const { return failures->size() >= max; }
  void add(std::string message) {
    if (full()) return;
    std::string p;
    for (auto& t : path) {
      p += '/';
      p += t.is_index ? std::to_string(t.index) : escape_token(t.name);
    }
    failures->push_back({p, std::move(message)});
  }
};

namespace {

std::string kind_name(const JsonValue& v) {
  switch (v.kind) {
    case Kind::null: return "null";
    case Kind::boolean: return "boolean";
    case Kind::number: return is_integer_text(v.text) ? "integer" : "number";
    case Kind::string: return "string";
    case Kind::array: return "array";
    case Kind::object: return "object";
  }
  return "?";
}

std::string shown(const JsonValue& v) {
  switch (v.kind) {
    case Kind::null: return "null";
    case Kind::boolean: return v.boolean ? "true" : "false";
    case Kind::number: return printable(v.text, 40);
    case Kind::string: return "\"" + printable(v.text, 40) + "\"";
    case Kind::array: return "an array of " + std::to_string(v.count) + (v.count == 1 ? " item" : " items");
    case Kind::object: return "an object";
  }
  return "?";
}

std::string type_list(uint8_t types) {
  static const std::pair<uint8_t, const char*> all[] = {{t_null, "null"},     {t_boolean, "boolean"},
                                                        {t_object, "object"}, {t_array, "array"},
                                                        {t_number, "number"}, {t_string, "string"},
                                                        {t_integer, "integer"}};
  std::string out;
  for (auto& [bit, name] : all)
    if (types & bit) out += (out.empty() ? "" : " or ") + std::string(name);
  return out;
}

// `v` as JSON, cut after about `max` characters.
void render(const Doc& d, const JsonValue& v, std::string& out, size_t max) {
  if (out.size() > max) return;
  switch (v.kind) {
    case Kind::null: out += "null"; return;
    case Kind::boolean: out += v.boolean ? "true" : "false"; return;
    case Kind::number: out += v.text; return;
    case Kind::string: out += "\"" + printable(v.text, 40) + "\""; return;
    case Kind::array:
      out += '[';
      for (uint32_t i = 0; i < v.count && out.size() <= max; ++i) {
        if (i) out += ',';
        render(d, d[d.element(v, i)], out, max);
      }
      out += ']';
      return;
    case Kind::object:
      out += '{';
      for (uint32_t i = 0; i < v.count && out.size() <= max; ++i) {
        if (i) out += ',';
        out += "\"" + printable(d.member(v, i).name, 40) + "\":";
        render(d, d[d.member(v, i).value], out, max);
      }
      out += '}';
      return;
  }
}

std::string rendered(const Doc& d, const JsonValue& v) {
  std::string out;
  render(d, v, out, 80);
  if (out.size() > 80) {
    size_t cut = 80;  // at a character's first byte: the reason stays UTF-8
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xC0) == 0x80) --cut;
    out = out.substr(0, cut) + "...";
  }
  return out;
}

uint64_t hash_of(const Doc& d, const JsonValue& v) {
  auto mix = [](uint64_t h, uint64_t x) { return (h ^ x) * 0x100000001b3ULL; };
  switch (v.kind) {
    case Kind::null: return 1;
    case Kind::boolean: return v.boolean ? 2 : 3;
    case Kind::number: {
      Decimal n = Decimal::parse(v.text);
      return mix(mix(std::hash<std::string>()(n.digits), uint64_t(n.exponent)), n.negative) ^ 4;
    }
    case Kind::string: return std::hash<std::string_view>()(v.text) ^ 5;
    case Kind::array: {
      uint64_t h = 6;
      for (uint32_t i = 0; i < v.count; ++i) h = mix(h, hash_of(d, d[d.element(v, i)]));
      return h;
    }
    case Kind::object: {
      uint64_t h = 7;  // order-independent
      for (uint32_t i = 0; i < v.count; ++i)
        h += mix(std::hash<std::string_view>()(d.member(v, i).name), hash_of(d, d[d.member(v, i).value]));
      return h;
    }
  }
  return 0;
}

// JSON equality: numbers by value (1 equals 1.0), members in any order.
bool equal(const Doc& da, const JsonValue& a, const Doc& db, const JsonValue& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Kind::null: return true;
    case Kind::boolean: return a.boolean == b.boolean;
    case Kind::number: return Decimal::compare(Decimal::parse(a.text), Decimal::parse(b.text)) == 0;
    case Kind::string: return a.text == b.text;
    case Kind::array:
      if (a.count != b.count) return false;
      for (uint32_t i = 0; i < a.count; ++i)
        if (!equal(da, da[da.element(a, i)], db, db[db.element(b, i)])) return false;
      return true;
    case Kind::object:
      if (a.count != b.count) return false;
      for (uint32_t i = 0; i < a.count; ++i) {
        const JsonValue* other = db.find(b, da.member(a, i).name);
        if (!other || !equal(da, da[da.member(a, i).value], db, *other)) return false;
      }
      return true;
  }
  return false;
}

}  // namespace

bool Schema::validate(const Doc& doc, std::vector<Failure>& failures, size_t max_failures) {
  instance_ = &doc;
  failures.clear();
  Ctx c{{}, &failures, std::max<size_t>(max_failures, 1)};
  bool ok = eval(root_, doc.root_index(), &c);
  instance_ = nullptr;
  return ok;
}

bool Schema::eval(uint32_t node, uint32_t value, Ctx* c) {
  const Node* n = &nodes_[node];
  while (n->kind == Node::Kind::ref) n = &nodes_[n->ref];  // no cycles: check_cycles()
  if (n->kind == Node::Kind::accept) return true;
  if (n->kind == Node::Kind::reject) {
    if (c) c->add("nothing is allowed here (the schema at " + n->where + " is false)");
    return false;
  }
  return check(*n, value, c);
}

bool Schema::check(const Node& n, uint32_t value, Ctx* c) {
  const Doc& d = *instance_;
  const JsonValue& v = d[value];
  bool ok = true;
  // Each failed check: in quick mode (c null) the answer is known; else it is recorded and the
  // next check runs, until the failure list is full.
  auto failed = [&](auto&& message) {
    ok = false;
    if (!c) return true;
    c->add(message());
    return c->full();
  };

  if (n.types) {
    uint8_t bit = v.kind == Kind::null      ? t_null
                  : v.kind == Kind::boolean ? t_boolean
                  : v.kind == Kind::object  ? t_object
                  : v.kind == Kind::array   ? t_array
                  : v.kind == Kind::string  ? t_string
                                            : t_number;
    // An integer: draft-07 by value (1.0 is one), draft-04 as written (1.0 is not).
    bool match = (n.types & bit) || (bit == t_number && (n.types & t_integer) &&
                                     (n.draft4 ? v.text.find_first_of(".eE") == std::string_view::npos
                                               : is_integer_text(v.text)));
    if (!match && failed([&] {
          return "expected type " + type_list(n.types) + ", got " + kind_name(v) +
                 (v.kind == Kind::object || v.kind == Kind::array ? "" : " " + shown(v));
        }))
      return false;
  }
  if (n.has_const && !equal(d, v, *n.doc, (*n.doc)[n.const_value]) &&
      failed([&] { return shown(v) + " is not the allowed value " + rendered(*n.doc, (*n.doc)[n.const_value]); }))
    return false;
  if (n.has_enum) {
    bool found = false;
    for (uint32_t e : n.enum_values)
      if (equal(d, v, *n.doc, (*n.doc)[e])) {
        found = true;
        break;
      }
    if (!found && failed([&] { return shown(v) + " is not one of " + rendered(*n.doc, (*n.doc)[n.enum_array]); }))
      return false;
  }

  if (v.kind == Kind::number &&
      (n.multiple_of || n.maximum || n.minimum || n.exclusive_maximum || n.exclusive_minimum)) {
    if (n.maximum && n.maximum->compare(v.text) > 0 &&
        failed([&] { return shown(v) + " is more than the maximum " + n.maximum->text(); }))
      return false;
    if (n.exclusive_maximum && n.exclusive_maximum->compare(v.text) >= 0 &&
        failed([&] { return shown(v) + " is not less than the exclusive maximum " + n.exclusive_maximum->text(); }))
      return false;
    if (n.minimum && n.minimum->compare(v.text) < 0 &&
        failed([&] { return shown(v) + " is less than the minimum " + n.minimum->text(); }))
      return false;
    if (n.exclusive_minimum && n.exclusive_minimum->compare(v.text) <= 0 &&
        failed([&] { return shown(v) + " is not more than the exclusive minimum " + n.exclusive_minimum->text(); }))
      return false;
    if (n.multiple_of && !n.multiple_of->divides(v.text) &&
        failed([&] { return shown(v) + " is not a multiple of " + n.multiple_of->text(); }))
      return false;
  }

  if (v.kind == Kind::string) {
    if (n.max_length >= 0 || n.min_length > 0) {
      int64_t len = int64_t(code_points(v.text));
      if (n.max_length >= 0 && len > n.max_length &&
          failed([&] { return "the string of " + std::to_string(len) + " characters is longer than the maximum " + std::to_string(n.max_length); }))
        return false;
      if (len < n.min_length &&
          failed([&] { return "the string of " + std::to_string(len) + " characters is shorter than the minimum " + std::to_string(n.min_length); }))
        return false;
    }
    if (n.pattern) {
      int r = n.pattern->search(v.text);
      if (r != 1 && failed([&] {
            return r == 0 ? shown(v) + " does not match the pattern \"" + printable(n.pattern_text, 60) + "\""
                          : shown(v) + " takes too long to match against the pattern \"" + printable(n.pattern_text, 60) +
                                "\" (PCRE2's match limit)";
          }))
        return false;
    }
    if (!n.format.empty() && !(n.format == "regex" ? regex_compiles(v.text) : edgeflow::sdk::formats::format_ok(n.format, v.text)) &&
        failed([&] { return shown(v) + " is not a valid " + n.format; }))
      return false;
  }

  if (v.kind == Kind::array) {
    if (n.max_items >= 0 && int64_t(v.count) > n.max_items &&
        failed([&] { return "the array has " + std::to_string(v.count) + " items, more than the maximum " + std::to_string(n.max_items); }))
      return false;
    if (int64_t(v.count) < n.min_items &&
        failed([&] { return "the array has " + std::to_string(v.count) + " items, fewer than the minimum " + std::to_string(n.min_items); }))
      return false;
    if (n.unique_items && v.count > 1) {
      std::multimap<uint64_t, uint32_t> seen;
      for (uint32_t i = 0; i < v.count && ok; ++i) {
        const JsonValue& e = d[d.element(v, i)];
        uint64_t h = hash_of(d, e);
        auto [lo, hi] = seen.equal_range(h);
        for (auto it = lo; it != hi; ++it)
          if (equal(d, d[d.element(v, it->second)], d, e)) {
            if (failed([&] { return "items " + std::to_string(it->second) + " and " + std::to_string(i) + " are equal, and uniqueItems is set"; }))
              return false;
            break;
          }
        seen.emplace(h, i);
      }
    }
    auto item = [&](uint32_t i, uint32_t schema) {
      if (c) c->path.push_back({{}, i, true});
      bool good = eval(schema, d.element(v, i), c);
      if (c) c->path.pop_back();
      return good;
    };
    if (n.items != kNone) {
      for (uint32_t i = 0; i < v.count; ++i)
        if (!item(i, n.items)) {
          ok = false;
          if (!c || c->full()) return false;
        }
    } else if (n.items_array) {
      for (uint32_t i = 0; i < v.count; ++i) {
        uint32_t s = i < n.items_list.size() ? n.items_list[i] : n.additional_items;
        if (s == kNone) {
          if (i >= n.items_list.size() && n.no_additional_items &&
              failed([&] { return "the array has " + std::to_string(v.count) + " items; only " + std::to_string(n.items_list.size()) + " are allowed (additionalItems)"; }))
            return false;
          if (i >= n.items_list.size()) break;
          continue;
        }
        if (!item(i, s)) {
          ok = false;
          if (!c || c->full()) return false;
        }
      }
    }
    if (n.contains != kNone) {
      bool any = false;
      for (uint32_t i = 0; i < v.count && !any; ++i) any = eval(n.contains, d.element(v, i), nullptr);
      if (!any && failed([&] { return std::string("no item matches the schema of contains"); })) return false;
    }
  }

  if (v.kind == Kind::object) {
    if (n.max_properties >= 0 && int64_t(v.count) > n.max_properties &&
        failed([&] { return "the object has " + std::to_string(v.count) + " properties, more than the maximum " + std::to_string(n.max_properties); }))
      return false;
    if (int64_t(v.count) < n.min_properties &&
        failed([&] { return "the object has " + std::to_string(v.count) + " properties, fewer than the minimum " + std::to_string(n.min_properties); }))
      return false;
    for (auto& r : n.required)
      if (!d.find(v, r) && failed([&] { return "the required property \"" + printable(r, 60) + "\" is missing"; }))
        return false;
    for (auto& dep : n.dependency_names)
      if (d.find(v, dep.first))
        for (auto& r : dep.second)
          if (!d.find(v, r) && failed([&] {
                return "property \"" + printable(dep.first, 60) + "\" requires property \"" + printable(r, 60) +
                       "\" (dependencies)";
              }))
            return false;
    for (auto& [name, schema] : n.dependency_schemas)
      if (d.find(v, name) && !eval(schema, value, c)) {
        ok = false;
        if (!c || c->full()) return false;
      }
    bool additional_closed = n.no_additional_properties;
    if (!n.properties.empty() || !n.pattern_properties.empty() || n.additional_properties != kNone ||
        additional_closed || n.property_names != kNone) {
      for (uint32_t i = 0; i < v.count; ++i) {
        const Member& m = d.member(v, i);
        if (c) c->path.push_back({m.name, 0, false});
        bool matched = false;
        auto sub = [&](uint32_t schema) {
          if (!eval(schema, m.value, c)) ok = false;
        };
        for (auto& [name, schema] : n.properties)
          if (name == m.name) {
            matched = true;
            sub(schema);
          }
        for (auto& [re, schema] : n.pattern_properties)
          if (re->search(m.name) == 1) {
            matched = true;
            sub(schema);
          }
        if (!matched && n.additional_properties != kNone) sub(n.additional_properties);
        if (!matched && additional_closed) {
          ok = false;
          if (c) c->add("the property \"" + printable(m.name, 60) + "\" is not allowed (additionalProperties)");
        }
        if (n.property_names != kNone) {
          // The name checked as a string: a one-value document of its own.
          Doc& names = name_doc_;
          std::string quoted;
          quoted.reserve(m.name.size() + 2);
          quoted += '"';
          for (char ch : m.name) {
            if (ch == '"' || ch == '\\') quoted += '\\';
            if (static_cast<unsigned char>(ch) < 0x20) {
              char buf[8];
              std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned char>(ch));
              quoted += buf;
              continue;
            }
            quoted += ch;
          }
          quoted += '"';
          names.parse(quoted, 1);
          const Doc* saved = instance_;
          instance_ = &names;
          bool good = eval(n.property_names, names.root_index(), nullptr);
          instance_ = saved;
          if (!good) {
            ok = false;
            if (c) c->add("the property name \"" + printable(m.name, 60) + "\" does not match the schema of propertyNames");
          }
        }
        if (c) c->path.pop_back();
        if (!ok && (!c || c->full())) return false;
      }
    }
  }

  for (uint32_t s : n.all_of)
    if (!eval(s, value, c)) {
      ok = false;
      if (!c || c->full()) return false;
    }
  if (!n.any_of.empty()) {
    bool any = false;
    for (uint32_t s : n.any_of)
      if ((any = eval(s, value, nullptr))) break;
    if (!any && failed([&] { return shown(v) + " matches none of the " + std::to_string(n.any_of.size()) + " schemas of anyOf"; }))
      return false;
  }
  if (!n.one_of.empty()) {
    size_t matches = 0;
    for (uint32_t s : n.one_of)
      if (eval(s, value, nullptr) && ++matches > 1) break;
    if (matches != 1 && failed([&] {
          return shown(v) + (matches == 0 ? " matches none" : " matches more than one") + " of the " +
                 std::to_string(n.one_of.size()) + " schemas of oneOf";
        }))
      return false;
  }
  if (n.not_ != kNone && eval(n.not_, value, nullptr) &&
      failed([&] { return shown(v) + " matches the schema of not"; }))
    return false;
  if (n.if_ != kNone) {
    uint32_t then = eval(n.if_, value, nullptr) ? n.then_ : n.else_;
    if (then != kNone && !eval(then, value, c)) {
      ok = false;
      if (!c) return false;
    }
  }
  return ok;
}

}  // namespace edgeflow_validate
