// Checks every message against a JSON Schema (draft-04, RapidJSON 1.1's rapidjson/schema.h).
// Messages that match go on unchanged; the others are rejected to the dead letter with a
// one-line reason naming the schema keyword and the place in the message, or dropped.
//
// Cost: the schema is compiled once, in the constructor, and one validator is reused for every
// message (Reset() in between; a flow's steps run on one thread, so no locking, and the
// compiled schema is never shared between instances: RapidJSON's regex keeps scratch state in
// it). Each payload is streamed through a rapidjson::Reader into the validator (SAX), so a valid
// message builds no document at all. Only a message that fails is parsed into a DOM, to name
// the offending value in the reason.
#include "schema_prep.hpp"

#include <edgeflow/sdk/plugin.hpp>

#include <rapidjson/error/en.h>
#include <rapidjson/memorystream.h>
#include <rapidjson/reader.h>
#include <rapidjson/schema.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

using namespace edgeflow::sdk;
using namespace edgeflow_validate;

namespace {

// Control characters (from property names in pointers) would break the one-line reason.
std::string one_line(std::string s) {
  std::string out;
  out.reserve(s.size());
  static const char* hex = "0123456789abcdef";
  for (char c : s) {
    if (uint8_t(c) < 0x20) {
      out += "\\u00";
      out += hex[uint8_t(c) >> 4];
      out += hex[uint8_t(c) & 15];
    } else {
      out += c;
    }
  }
  return out;
}

template <class P>
std::string text_of(const P& p) {
  rapidjson::StringBuffer sb;
  p.Stringify(sb);
  return std::string(sb.GetString(), sb.GetSize());
}

// True when v nests no deeper than `levels`: printing and comparing payload values recurse, so
// they are done only on values this shallow (a payload may nest a million levels deep).
bool shallow(const JVal& v, int levels) {
  if (!v.IsObject() && !v.IsArray()) return true;
  if (levels == 0) return false;
  if (v.IsObject()) {
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m)
      if (!shallow(m->value, levels - 1)) return false;
  } else {
    for (auto& e : v.GetArray())
      if (!shallow(e, levels - 1)) return false;
  }
  return true;
}

std::string value_text(const JVal& v) {
  return shallow(v, 8) ? json_text(v, 40) : std::string("a deeply nested ") + type_name(v);
}

std::string in_quotes(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string plural(size_t n, const char* one, const char* many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

// True when a string from the payload is one RapidJSON's pattern and length checks handle:
// they stop at U+0000 (patterns) and at an unpaired surrogate, which the reader writes as
// ED A0..BF xx (patterns and lengths). Only `\u` escapes produce either: the reader checks
// the payload's raw UTF-8.
bool checkable(const char* s, size_t n, bool nul_matters) {
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = uint8_t(s[i]);
    if (c == 0 && nul_matters) return false;
    if (c == 0xED && i + 1 < n && uint8_t(s[i + 1]) >= 0xA0) return false;
  }
  return true;
}

// The first string or member name in v that checkable() refuses, as a pointer (searched down
// to a depth no real message reaches).
bool find_uncheckable(const JVal& v, std::string& path, bool nul_matters, int depth = 0) {
  if (v.IsString()) return !checkable(v.GetString(), v.GetStringLength(), nul_matters);
  if (depth == 256) return false;
  if (v.IsArray()) {
    for (rapidjson::SizeType i = 0; i < v.Size(); ++i)
      if (find_uncheckable(v[i], path, nul_matters, depth + 1)) {
        path = "/" + std::to_string(i) + path;
        return true;
      }
  } else if (v.IsObject()) {
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
      bool bad_name = !checkable(m->name.GetString(), m->name.GetStringLength(), nul_matters);
      if (bad_name || find_uncheckable(m->value, path, nul_matters, depth + 1)) {
        path = pointer_of(Path{Tok{std::string(m->name.GetString(), m->name.GetStringLength()), 0, false}}) + path;
        return true;
      }
    }
  }
  return false;
}

using Validator = rapidjson::SchemaValidator;

// Passes the reader's events to the validator, refusing strings it cannot check and nesting
// deeper than max_depth: RapidJSON 1.1's validator hands every event to every open level (its
// cost grows with the square of the depth) and keeps ~100 bytes of state per level.
struct Feed {
  Validator& v;
  bool check_nul;
  bool check_surrogates;
  uint32_t max_depth;
  uint32_t depth = 0;
  bool uncheckable = false;
  bool too_deep = false;

  bool Null() { return v.Null(); }
  bool Bool(bool b) { return v.Bool(b); }
  bool Int(int i) { return v.Int(i); }
  bool Uint(unsigned u) { return v.Uint(u); }
  bool Int64(int64_t i) { return v.Int64(i); }
  bool Uint64(uint64_t u) { return v.Uint64(u); }
  bool Double(double d) { return v.Double(d); }
  bool RawNumber(const char* s, rapidjson::SizeType n, bool copy) { return v.RawNumber(s, n, copy); }
  bool String(const char* s, rapidjson::SizeType n, bool copy) {
    if (check_surrogates && !checkable(s, n, check_nul)) return !(uncheckable = true);
    return v.String(s, n, copy);
  }
  bool Key(const char* s, rapidjson::SizeType n, bool copy) {
    if (check_surrogates && !checkable(s, n, check_nul)) return !(uncheckable = true);
    return v.Key(s, n, copy);
  }
  bool StartObject() { return ++depth > max_depth ? !(too_deep = true) : v.StartObject(); }
  bool EndObject(rapidjson::SizeType n) { return --depth, v.EndObject(n); }
  bool StartArray() { return ++depth > max_depth ? !(too_deep = true) : v.StartArray(); }
  bool EndArray(rapidjson::SizeType n) { return --depth, v.EndArray(n); }
};

class Validate : public Transformer {
 public:
  struct Config {
    Json schema;
    std::string schema_file;
    std::string on_invalid = "reject";
    std::vector<std::string> ignore_keywords;
    int64_t max_depth = 256;
  };
  static constexpr const char* type = "validate";
  static constexpr const char* description =
      "Checks each message against a JSON Schema (draft-04); rejects or drops the ones that do not match.";
  static void describe(Spec<Config>& s) {
    s.option("schema", &Config::schema)
        .doc("The JSON Schema (draft-04) messages must match, written inline in YAML or JSON; give "
             "this or schema_file.")
        .example("{type: object, required: [id], properties: {id: {type: integer}}}");
    s.option("schema_file", &Config::schema_file)
        .doc("A JSON Schema (draft-04) file, read once at load; a relative path is relative to the "
             "daemon's working directory. Give this or schema.")
        .example("/etc/edgeflow/schemas/order.json");
    s.option("on_invalid", &Config::on_invalid)
        .one_of("reject|drop")
        .doc("What happens to a message that does not match: reject (to the dead letter, with the "
             "reason) or drop (counts as delivered; the reason is logged at debug level). A payload "
             "that is not JSON is always rejected.")
        .example("drop");
    s.option("ignore_keywords", &Config::ignore_keywords)
        .doc("Schema keywords this validator does not implement (format, contains, if/then/else, ...) "
             "to skip instead of refusing the schema; each is logged as a warning at load.")
        .example("[format]");
    s.option("max_depth", &Config::max_depth)
        .range(1, 4096)
        .doc("Messages nesting objects and arrays deeper than this do not match (the validator's "
             "cost grows with the square of the depth).")
        .example("64");
  }

  Validate(Context c, Config cfg)
      : Transformer(c), drop_(cfg.on_invalid == "drop"), max_depth_(uint32_t(cfg.max_depth)) {
    const Context& ctx = context();
    for (size_t i = 0; i < cfg.ignore_keywords.size(); ++i) {
      const std::string& k = cfg.ignore_keywords[i];
      if (supported_keywords().count(k) || annotation_keywords().count(k))
        throw Error(ctx.where("ignore_keywords[" + std::to_string(i) + "]") + ": ignore_keywords: '" + k +
                    "' is a keyword this validator handles; remove it from the schema instead of ignoring it");
    }
    bool inline_schema = !cfg.schema.is_null();
    bool file = !cfg.schema_file.empty();
    if (inline_schema == file)
      throw Error(ctx.where(file ? "schema_file" : "schema") +
                  (file ? ": schema_file: give either schema or schema_file, not both; remove one"
                        : ": schema: missing; give the JSON Schema inline (schema: {type: object, ...}) "
                          "or its file (schema_file: /path/schema.json)"));

    json_ = std::make_unique<JDoc>();
    std::function<std::string(const Path&)> locate;
    if (inline_schema) {
      to_json(cfg.schema, *json_, json_->GetAllocator());
      locate = [&ctx](const Path& p) {
        std::string key = key_path_of("schema", p);
        return ctx.where(key) + ": " + key;
      };
    } else {
      read_file(cfg.schema_file);
      std::string head = ctx.where("schema_file") + ": schema_file: " + cfg.schema_file;
      locate = [head](const Path& p) { return head + ": #" + pointer_of(p); };
    }

    std::set<std::string> ignore(cfg.ignore_keywords.begin(), cfg.ignore_keywords.end());
    try {
      prepared_ = SchemaPrep(locate, ignore).run(*json_);
    } catch (const std::runtime_error& e) {
      throw Error(e.what());
    }
    for (auto& [keyword, where] : prepared_.ignored)
      ctx.warn("schema: '" + keyword + "' is not checked (ignore_keywords): " +
               plural(where.first, "place", "places") + ", the first at " + where.second);

    schema_ = std::make_unique<rapidjson::SchemaDocument>(*json_);
    validator_ = std::make_unique<Validator>(*schema_);
  }

  void transform(Batch b) override {
    size_t n = b.size();
    for (size_t i = 0; i < n; ++i) {
      Message m = b[i];
      std::string_view payload = m.payload();
      std::string why;
      bool json = true;
      if (check(payload, why, json)) continue;
      if (drop_ && json) {
        context().debug("dropped: " + why);
        b.drop(i);
      } else {
        b.reject(i, why);
      }
    }
  }

 private:
  static void to_json(const Json& j, JVal& out, JAlloc& a) {
    if (j.is_null()) out.SetNull();
    else if (auto* b = std::get_if<bool>(&j.v)) out.SetBool(*b);
    else if (auto* i = std::get_if<int64_t>(&j.v)) out.SetInt64(*i);
    else if (auto* d = std::get_if<double>(&j.v)) out.SetDouble(*d);
    else if (auto* s = j.string()) out.SetString(s->c_str(), rapidjson::SizeType(s->size()), a);
    else if (auto* arr = j.array()) {
      out.SetArray();
      for (auto& e : *arr) {
        JVal v;
        to_json(e, v, a);
        out.PushBack(v, a);
      }
    } else if (auto* obj = j.object()) {
      out.SetObject();
      for (auto& [k, e] : *obj) {
        JVal v;
        to_json(e, v, a);
        out.AddMember(JVal(k.c_str(), rapidjson::SizeType(k.size()), a), v, a);
      }
    }
  }

  // Reading a local file in the constructor is deliberate: the schema is part of the
  // configuration, and `edgeflow validate` should report a missing or broken file (and every
  // mistake in it) before anything starts, with the YAML line of schema_file.
  void read_file(const std::string& path) {
    const Context& ctx = context();
    std::string head = ctx.where("schema_file") + ": schema_file: ";
    std::ifstream f(path, std::ios::binary);
    if (!f)
      throw Error(head + "cannot read " + path + ": " + std::strerror(errno) +
                  "; give the path of a readable JSON Schema file (relative paths start at the "
                  "daemon's working directory)");
    std::stringstream ss;
    ss << f.rdbuf();
    std::string text = ss.str();
    json_->Parse(text.data(), text.size());
    if (json_->HasParseError()) {
      size_t off = json_->GetErrorOffset(), line = 1, col = 1;
      for (size_t i = 0; i < off && i < text.size(); ++i) {
        if (text[i] == '\n') line++, col = 1;
        else col++;
      }
      throw Error(head + path + ":" + std::to_string(line) + ":" + std::to_string(col) +
                  ": not JSON: " + rapidjson::GetParseError_En(json_->GetParseError()) +
                  " (offset " + std::to_string(off) + ")");
    }
  }

  // True when the payload matches; otherwise `why` says what is wrong (and `json` whether it
  // was JSON at all).
  bool check(std::string_view payload, std::string& why, bool& json) {
    validator_->Reset();
    Feed feed{*validator_, prepared_.has_patterns, prepared_.has_patterns || prepared_.has_lengths, max_depth_};
    rapidjson::MemoryStream in(payload.data(), payload.size());
    // Iterative: a deeply nested payload must not exhaust the flow thread's stack.
    reader_.Parse<rapidjson::kParseValidateEncodingFlag | rapidjson::kParseIterativeFlag>(in, feed);
    bool valid = validator_->IsValid();
    if (feed.too_deep) {
      why = "schema: the payload nests objects and arrays deeper than max_depth (" +
            std::to_string(max_depth_) + ")";
      return false;
    }
    if (valid && !feed.uncheckable && !reader_.HasParseError()) return true;
    if (valid && !feed.uncheckable) {
      json = false;
      why = std::string("payload is not JSON: ") + rapidjson::GetParseError_En(reader_.GetParseErrorCode()) +
            " at offset " + std::to_string(reader_.GetErrorOffset());
      return false;
    }
    // The failure path: parse the payload to describe the offending value. The pool allocator
    // only grows, so it is emptied first.
    failed_.SetNull();
    failed_.GetAllocator().Clear();
    failed_.Parse<rapidjson::kParseIterativeFlag>(payload.data(), payload.size());
    const JVal* doc = failed_.HasParseError() ? nullptr : &failed_;
    if (feed.uncheckable) {
      std::string at;
      if (doc) find_uncheckable(*doc, at, feed.check_nul);
      why = "schema: cannot check the string at " + (at.empty() ? std::string("the root") : one_line(at)) +
            ": it holds U+0000 or an unpaired UTF-16 surrogate (\\uDC00-\\uDFFF), where pattern and "
            "length checks would stop early";
      return false;
    }
    why = one_line(explain(doc));
    return false;
  }

  std::string explain(const JVal* doc) const {
    const char* kw = validator_->GetInvalidSchemaKeyword();
    std::string keyword = kw ? kw : "";
    std::string sp = text_of(validator_->GetInvalidSchemaPointer());
    auto dptr = validator_->GetInvalidDocumentPointer();
    std::string dp = text_of(dptr);
    std::string at = dp.empty() ? " at the root" : " at " + dp;
    const JVal* v = doc ? dptr.Get(*doc) : nullptr;
    std::string last = dptr.GetTokenCount() ? std::string(dptr.GetTokens()[dptr.GetTokenCount() - 1].name,
                                                          dptr.GetTokens()[dptr.GetTokenCount() - 1].length)
                                            : std::string();
    // A patternProperties failure is reported on the property's value, whose schema has no
    // pointer of its own.
    if (keyword == "patternProperties")
      return "schema: patternProperties: the value of property " + in_quotes(last) +
             " does not match the schema of its matching pattern" + at;
    const JVal* s = rapidjson::Pointer(sp.c_str(), sp.size()).Get(*json_);
    std::string head = "schema: #" + sp + ": ";
    std::string got = v ? (v->IsObject() || v->IsArray() ? std::string(type_name(*v))
                                                          : std::string(type_name(*v)) + " " + value_text(*v))
                        : std::string();
    auto member = [&](const char* name) -> const JVal* {
      if (!s || !s->IsObject()) return nullptr;
      auto it = s->FindMember(name);
      return it == s->MemberEnd() ? nullptr : &it->value;
    };
    auto num = [&](const char* name) {
      const JVal* x = member(name);
      return x ? json_text(*x) : std::string("?");
    };
    auto flag = [&](const char* name) {
      const JVal* x = member(name);
      return x && x->IsTrue();
    };
    std::string vt = v ? value_text(*v) : std::string("the value");

    std::string what;
    if (keyword == "type") {
      std::string expected;
      if (const JVal* t = member("type")) {
        if (t->IsArray()) {
          for (rapidjson::SizeType i = 0; i < t->Size(); ++i)
            expected += (i ? (i + 1 == t->Size() ? " or " : ", ") : "") + std::string((*t)[i].GetString());
        } else if (t->IsString()) {
          expected = t->GetString();
        }
      }
      what = "expected type " + expected + (got.empty() ? "" : ", got " + got);
    } else if (keyword == "required") {
      std::vector<std::string> missing;
      if (const JVal* r = member("required"); r && r->IsArray() && v && v->IsObject())
        for (auto& name : r->GetArray())
          if (!v->HasMember(name)) missing.push_back(in_quotes(std::string(name.GetString(), name.GetStringLength())));
      std::string list;
      for (size_t i = 0; i < missing.size(); ++i) list += (i ? ", " : "") + missing[i];
      what = missing.size() == 1 ? "missing required property " + list
             : missing.empty()   ? "missing a required property"
                                 : "missing required properties " + list;
    } else if (keyword == "minimum") {
      what = flag("exclusiveMinimum") ? vt + " is not greater than the exclusive minimum " + num("minimum")
                                      : vt + " is less than the minimum " + num("minimum");
    } else if (keyword == "maximum") {
      what = flag("exclusiveMaximum") ? vt + " is not less than the exclusive maximum " + num("maximum")
                                      : vt + " is greater than the maximum " + num("maximum");
    } else if (keyword == "multipleOf") {
      what = vt + " is not a multiple of " + num("multipleOf");
    } else if (keyword == "minLength" || keyword == "maxLength") {
      size_t chars = 0;
      if (v && v->IsString()) {
        rapidjson::SizeType count = 0;
        rapidjson::internal::CountStringCodePoint<rapidjson::UTF8<>>(v->GetString(), v->GetStringLength(), &count);
        chars = count;
      }
      what = "string of " + plural(chars, "character", "characters") + " is " +
             (keyword == "minLength" ? "shorter than minLength " + num("minLength")
                                     : "longer than maxLength " + num("maxLength"));
    } else if (keyword == "pattern") {
      auto p = prepared_.patterns.find(sp);
      std::string pattern = p != prepared_.patterns.end() ? p->second : num("pattern");
      what = vt + " does not match the pattern " + in_quotes(pattern);
    } else if (keyword == "enum") {
      const JVal* e = member("enum");
      if (e && e->IsArray() && e->Size() == 1) {
        what = vt + " is not the allowed value " + json_text((*e)[0], 60);
      } else {
        what = vt + " is not one of " + (e ? json_text(*e, 80) : std::string("the enum"));
      }
    } else if (keyword == "additionalProperties") {
      what = "property " + in_quotes(last) + " is not allowed (additionalProperties: false)";
    } else if (keyword == "minProperties" || keyword == "maxProperties") {
      size_t count = v && v->IsObject() ? v->MemberCount() : 0;
      what = "object has " + plural(count, "property", "properties") + ", " +
             (keyword == "minProperties" ? "fewer than minProperties " + num("minProperties")
                                         : "more than maxProperties " + num("maxProperties"));
    } else if (keyword == "minItems" || keyword == "maxItems") {
      size_t count = v && v->IsArray() ? v->Size() : 0;
      what = "array has " + plural(count, "item", "items") + ", " +
             (keyword == "minItems" ? "fewer than minItems " + num("minItems")
                                    : "more than maxItems " + num("maxItems"));
    } else if (keyword == "uniqueItems") {
      what = "item " + in_quotes(last) + " repeats an earlier item (uniqueItems)";
      if (v && dptr.GetTokenCount() > 0 && shallow(*v, 64)) {
        // The array is the value one step up; name the earlier item.
        rapidjson::Pointer parent(dptr.GetTokens(), dptr.GetTokenCount() - 1);
        const JVal* arr = parent.Get(*doc);
        if (arr && arr->IsArray())
          for (rapidjson::SizeType i = 0; i < arr->Size() && &(*arr)[i] != v; ++i)
            if ((*arr)[i] == *v) {
              what = "item " + last + " repeats item " + std::to_string(i) + " (uniqueItems)";
              break;
            }
      }
    } else if (keyword == "items") {
      const JVal* items = member("items");
      what = "array has more than " +
             plural(items && items->IsArray() ? items->Size() : 0, "item", "items") +
             " (items is a list and additionalItems is false)";
    } else if (keyword == "dependencies") {
      // A missing property can be named for sure; a schema dependency only as a suspect.
      what = "a dependency is not met";
      std::string suspect;
      if (const JVal* d = member("dependencies"); d && d->IsObject() && v && v->IsObject())
        for (auto e = d->MemberBegin(); e != d->MemberEnd() && what.front() == 'a'; ++e) {
          if (!v->HasMember(e->name)) continue;
          std::string name(e->name.GetString(), e->name.GetStringLength());
          if (!e->value.IsArray()) {
            if (suspect.empty())
              suspect = "property " + in_quotes(name) + " requires the object to match #" + sp + "/dependencies/" + name;
            continue;
          }
          for (auto& t : e->value.GetArray())
            if (!v->HasMember(t)) {
              what = "property " + in_quotes(name) + " requires property " +
                     in_quotes(std::string(t.GetString(), t.GetStringLength()));
              break;
            }
        }
      if (what.front() == 'a' && !suspect.empty()) what = suspect;
    } else if (keyword == "allOf") {
      what = "does not match every schema in allOf";
    } else if (keyword == "anyOf") {
      what = "matches none of the schemas in anyOf";
    } else if (keyword == "oneOf") {
      what = "matches none, or more than one, of the schemas in oneOf";
    } else if (keyword == "not") {
      const JVal* n = member("not");
      bool nothing = n && n->IsObject() && n->MemberCount() == 0;
      const std::string ap = "/additionalProperties";
      if (nothing && sp.size() >= ap.size() && sp.compare(sp.size() - ap.size(), ap.size(), ap) == 0) {
        // additionalProperties: false, rewritten to {not: {}} beside patternProperties
        head = "schema: #" + sp.substr(0, sp.size() - ap.size()) + ": ";
        what = "property " + in_quotes(last) + " is not allowed (additionalProperties: false)";
      } else if (nothing && prepared_.implicit.count(sp)) {
        // a name from required or dependencies, declared from additionalProperties: false
        head = "schema: #" + sp.substr(0, sp.rfind("/properties/")) + ": ";
        what = "property " + in_quotes(last) + " is not allowed (additionalProperties: false)";
      } else {
        what = nothing ? "no value is allowed here (the schema is false)" : "matches the schema in not";
      }
    } else {
      what = "fails " + (keyword.empty() ? std::string("the schema") : keyword);
    }
    return head + what + at;
  }

  bool drop_;
  uint32_t max_depth_;
  std::unique_ptr<JDoc> json_;  // the prepared schema, kept to explain failures
  Prepared prepared_;
  std::unique_ptr<rapidjson::SchemaDocument> schema_;
  std::unique_ptr<Validator> validator_;
  rapidjson::Reader reader_;
  JDoc failed_;  // the last failing payload, reused
};

}  // namespace

EDGEFLOW_PLUGIN("validate", "0.1.0", Validate)
