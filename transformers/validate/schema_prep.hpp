// Turns a JSON Schema into one RapidJSON 1.1 compiles correctly, or refuses it with the location
// of the offending keyword. Part of the validate transformer; see validate.cpp.
//
// Why this exists: RapidJSON 1.1's schema compiler (rapidjson/schema.h) implements draft-04 and
// skips, without a word, whatever it does not understand. Left alone it would accept every
// message for schemas like these:
//   * keywords it does not know (draft-06/07 `contains`, `propertyNames`, `if`, `format`, a
//     typo such as `minimun`), a `pattern` outside its regex subset (`\d`), `minimum: "5"`,
//     `required: "id"`, `exclusiveMinimum: 5` (draft-06 form), a boolean subschema
//     (`properties: {x: false}`), keywords beside `$ref`, a remote or dangling `$ref`;
// it crashes or recurses forever on others (a non-object `patternProperties`, a `$ref` cycle,
// a `$ref` that points at a non-schema inside `allOf`, `additionalProperties: false` beside
// `patternProperties`); and it gets some draft-04 rules wrong (objects in `enum` compared by
// a weak hash, `additionalProperties` not applied to names listed in `required`, a property
// matching a pattern accepted by the `additionalProperties` schema). So every schema position
// is checked against the draft-04 grammar here; what can be expressed so that RapidJSON gets
// it right is rewritten (`const`, boolean subschemas, numeric exclusiveMinimum/Maximum,
// `\d` `\w` `\s`, `(?:`, lazy quantifiers, percent-encoding in `$ref`, the names of
// `required`/`dependencies`); everything else is an error at load time, unless the operator
// lists the keyword in `ignore_keywords`. Checked against python-jsonschema's Draft4Validator
// on random schemas and messages while this was written.
#pragma once

#include <edgeflow/sdk/suggest.hpp>

#include <rapidjson/document.h>
#include <rapidjson/internal/regex.h>
#include <rapidjson/pointer.h>
#include <rapidjson/schema.h>
#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

// The pattern check below compiles patterns with the engine the validator uses.
static_assert(RAPIDJSON_SCHEMA_USE_INTERNALREGEX, "validate expects RapidJSON's internal regex engine");

namespace edgeflow_validate {

using JDoc = rapidjson::Document;
using JVal = rapidjson::Value;
using JAlloc = JDoc::AllocatorType;

// One step of a path into the schema: a member name or an array index.
struct Tok {
  std::string key;
  size_t index = 0;
  bool is_index = false;
};
using Path = std::vector<Tok>;

// "/properties/a~1b/0" (RFC 6901).
inline std::string pointer_of(const Path& p) {
  std::string s;
  for (auto& t : p) {
    s += '/';
    if (t.is_index) {
      s += std::to_string(t.index);
      continue;
    }
    for (char c : t.key) {
      if (c == '~') s += "~0";
      else if (c == '/') s += "~1";
      else s += c;
    }
  }
  return s;
}

// The host's key path of a YAML value under `prefix`: "schema.properties.total", "schema.required[0]".
inline std::string key_path_of(const std::string& prefix, const Path& p) {
  std::string s = prefix;
  for (auto& t : p) {
    if (t.is_index) s += "[" + std::to_string(t.index) + "]";
    else if (!t.key.empty() && t.key[0] == '[') s += t.key;
    else s += "." + t.key;
  }
  return s;
}

inline const char* type_name(const JVal& v) {
  switch (v.GetType()) {
    case rapidjson::kNullType: return "null";
    case rapidjson::kFalseType:
    case rapidjson::kTrueType: return "boolean";
    case rapidjson::kObjectType: return "object";
    case rapidjson::kArrayType: return "array";
    case rapidjson::kStringType: return "string";
    case rapidjson::kNumberType: return v.IsDouble() ? "number" : "integer";
  }
  return "value";
}

// "an object", "a string".
inline std::string a_type(const JVal& v) {
  std::string t = type_name(v);
  return (t[0] == 'o' || t[0] == 'a' || t[0] == 'i' ? "an " : "a ") + t;
}

// Compact JSON of v, cut (on a UTF-8 boundary) after about max bytes.
inline std::string json_text(const JVal& v, size_t max = 60) {
  rapidjson::StringBuffer sb;
  rapidjson::Writer<rapidjson::StringBuffer> w(sb);
  v.Accept(w);
  std::string s(sb.GetString(), sb.GetSize());
  if (s.size() <= max) return s;
  size_t cut = max;
  while (cut > 0 && (uint8_t(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "...";
}

// --- keywords ---------------------------------------------------------------------------------

// Draft-04 validation keywords RapidJSON 1.1 implements (plus the `definitions` container).
inline const std::set<std::string>& supported_keywords() {
  static const std::set<std::string> s = {
      "type", "enum", "allOf", "anyOf", "oneOf", "not", "properties", "patternProperties",
      "additionalProperties", "required", "dependencies", "minProperties", "maxProperties",
      "items", "additionalItems", "minItems", "maxItems", "uniqueItems", "minLength",
      "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
      "multipleOf", "$ref", "definitions",
      // rewritten into draft-04 before compiling
      "const", "$defs"};
  return s;
}

// Keywords that never constrain a value in any draft: accepted and not checked.
inline const std::set<std::string>& annotation_keywords() {
  static const std::set<std::string> s = {"title",   "description", "default",  "examples",
                                          "$comment", "$schema",    "id",       "$id",
                                          "readOnly", "writeOnly",  "deprecated"};
  return s;
}

// Validation keywords of later drafts (and format, optional in every draft) that this validator
// does not implement, with a hint where draft-04 has an equivalent.
inline const std::map<std::string, std::string>& unsupported_keywords() {
  static const std::map<std::string, std::string> s = {
      {"format", "it is not checked by this validator; use `pattern`"},
      {"contains", "a draft-06 keyword"},
      {"propertyNames", "a draft-06 keyword; for string keys, `patternProperties` with "
                        "`additionalProperties: false` says the same"},
      {"if", "a draft-07 keyword; write `anyOf: [{allOf: [IF, THEN]}, {allOf: [{not: IF}, ELSE]}]`"},
      {"then", "a draft-07 keyword (with `if`)"},
      {"else", "a draft-07 keyword (with `if`)"},
      {"contentMediaType", "a draft-07 keyword"},
      {"contentEncoding", "a draft-07 keyword"},
      {"dependentRequired", "a 2019-09 keyword; write `dependencies: {a: [b]}`"},
      {"dependentSchemas", "a 2019-09 keyword; write `dependencies: {a: {schema}}`"},
      {"prefixItems", "a 2020-12 keyword; write `items: [schema, ...]`"},
      {"unevaluatedProperties", "a 2019-09 keyword"},
      {"unevaluatedItems", "a 2019-09 keyword"},
      {"minContains", "a 2019-09 keyword"},
      {"maxContains", "a 2019-09 keyword"},
      {"$anchor", "a 2019-09 keyword; refer to schemas by JSON pointer (#/definitions/name)"},
      {"$recursiveRef", "a 2019-09 keyword"},
      {"$recursiveAnchor", "a 2019-09 keyword"},
      {"$dynamicRef", "a 2020-12 keyword"},
      {"$dynamicAnchor", "a 2020-12 keyword"},
      {"$vocabulary", "a 2019-09 keyword"},
  };
  return s;
}

// --- patterns ---------------------------------------------------------------------------------

// Rewrites an ECMA-262 pattern into RapidJSON 1.1's regex subset (\d \w \s and their negations,
// \/ and \-, (?:...), lazy quantifiers), or says why it cannot. The caller compiles the result.
// RapidJSON applies ^ and $ to the whole pattern wherever they stand, so they are accepted only
// as the first and last character.
inline bool translate_pattern(std::string_view in, std::string& out, std::string& why) {
  out.clear();
  bool in_class = false, in_brace = false, after_quantifier = false, class_dash = false;
  size_t class_body = 0;  // where a class's members start in `out`
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    bool quantifier = false;
    if (c == '\\') {
      if (i + 1 == in.size()) {
        why = "it ends with a lone backslash";
        return false;
      }
      char e = in[++i];
      const char* set = nullptr;
      bool negated = false;
      switch (e) {
        case 'd': set = "0-9"; break;
        case 'D': set = "0-9"; negated = true; break;
        case 'w': set = "0-9A-Za-z_"; break;
        case 'W': set = "0-9A-Za-z_"; negated = true; break;
        case 's': set = " \\t\\n\\r\\f\\v"; break;
        case 'S': set = " \\t\\n\\r\\f\\v"; negated = true; break;
        default: break;
      }
      if (set) {
        if (in_class && negated) {
          why = std::string("\\") + e + " inside [...] is not supported; list the characters instead";
          return false;
        }
        out += in_class ? std::string(set) : std::string(negated ? "[^" : "[") + set + "]";
      } else if (e == '/') {
        out += '/';
      } else if (e == '-') {
        if (in_class) class_dash = true;  // moved to the front of the class, where it is literal
        else out += '-';
      } else if (std::string_view("^$|()?*+.[]{}\\fnrtv").find(e) != std::string_view::npos ||
                 (in_class && e == 'b')) {
        out += '\\';
        out += e;
      } else {
        why = std::string("the escape \\") + e + " is not supported";
        return false;
      }
    } else if (in_class) {
      if (c == ']') {
        if (class_dash) out.insert(class_body, "-");
        in_class = class_dash = false;
      }
      out += c;
    } else if (c == '[') {
      out += '[';
      if (i + 1 < in.size() && in[i + 1] == '^') out += in[++i];
      in_class = true;
      class_body = out.size();
    } else if (c == '(' && i + 1 < in.size() && in[i + 1] == '?') {
      if (i + 2 < in.size() && in[i + 2] == ':') {
        out += '(';  // a non-capturing group matches like a group
        i += 2;
      } else {
        why = "lookarounds and named groups ((?=, (?!, (?<) are not supported";
        return false;
      }
    } else if (c == '?' && after_quantifier) {
      // lazy quantifier: whether a string matches does not depend on laziness
    } else if (c == '^' && i != 0) {
      why = "^ is supported only at the start of the pattern (write ^(a|b) rather than ^a|^b)";
      return false;
    } else if (c == '$' && i + 1 != in.size()) {
      why = "$ is supported only at the end of the pattern (write (a|b)$ rather than a$|b$)";
      return false;
    } else {
      if (c == '{') in_brace = true;
      if (c == '}' && in_brace) {
        in_brace = false;
        quantifier = true;
      }
      if (c == '*' || c == '+' || c == '?') quantifier = true;
      out += c;
    }
    after_quantifier = quantifier;
  }
  if (in_class) {
    why = "a [ is not closed";
    return false;
  }
  rapidjson::internal::GenericRegex<rapidjson::UTF8<>> re(out.c_str());
  if (!re.IsValid()) {
    why = "it is outside the supported regex subset (literals, ., [...], [^...], ( ), |, ?, *, +, "
          "{n,m}, ^ at the start, $ at the end, \\d \\w \\s and escaped punctuation)";
    return false;
  }
  return true;
}

// RapidJSON parses a $ref as a URI fragment and refuses any character outside [A-Za-z0-9-._~]
// unless percent-encoded, although RFC 3986 allows `$` (#/$defs/x) and others there; its
// schema compiler then ignores the $ref. So everything else after the '#' is encoded first.
inline std::string encode_ref(const std::string& ref) {
  static const char* hex = "0123456789ABCDEF";
  auto is_hex = [](char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; };
  std::string out;
  for (size_t i = 0; i < ref.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(ref[i]);
    bool plain = std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/' || (i == 0 && c == '#');
    bool escape = c == '%' && i + 2 < ref.size() && is_hex(ref[i + 1]) && is_hex(ref[i + 2]);
    if (plain || escape) {
      out += char(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// --- schema preparation -----------------------------------------------------------------------

// What the validator needs to know about a prepared schema.
struct Prepared {
  std::map<std::string, std::string> patterns;  // schema pointer of a `pattern` -> as written
  bool has_patterns = false;                    // pattern or patternProperties anywhere
  bool has_lengths = false;                     // minLength or maxLength anywhere
  std::map<std::string, std::pair<size_t, std::string>> ignored;  // keyword -> count, first place
  std::set<std::string> implicit;  // properties declared from additionalProperties (see below)
};

class SchemaPrep {
 public:
  // `locate` turns a path into the text an error starts with ("<file>:3:7: schema.x").
  SchemaPrep(std::function<std::string(const Path&)> locate, std::set<std::string> ignore)
      : locate_(std::move(locate)), ignore_(std::move(ignore)) {}

  // Checks and rewrites doc in place; throws std::runtime_error with the location.
  Prepared run(JDoc& doc) {
    Path p;
    schema(doc, p, doc.GetAllocator(), true);
    for (auto& r : refs_) check_ref(doc, r.path, r.written, r.encoded);
    p.clear();
    hazards(doc, doc, p);
    return std::move(out_);
  }

 private:
  [[noreturn]] void fail(const Path& p, const std::string& what) const {
    throw std::runtime_error(locate_(p) + ": " + what);
  }

  static Path child(const Path& p, const std::string& key) {
    Path c = p;
    c.push_back({key, 0, false});
    return c;
  }
  static Path child(const Path& p, size_t i) {
    Path c = p;
    c.push_back({{}, i, true});
    return c;
  }

  // A subschema position: an object, or true/false (draft-06), rewritten to {} / {"not": {}}.
  void schema(JVal& v, const Path& p, JAlloc& a, bool root = false) {
    if (v.IsBool() && !root) {
      bool accept_all = v.GetBool();
      v.SetObject();
      if (!accept_all) v.AddMember("not", JVal(rapidjson::kObjectType), a);
    }
    if (!v.IsObject()) {
      if (root) fail(p, std::string("a schema must be a JSON object (a map such as {type: object, "
                                    "properties: {...}}), got ") + (v.IsBool() ? "a boolean" : type_name(v)));
      fail(p, std::string("expected a schema (an object, or true/false), got ") + type_name(v));
    }
    positions_.insert(pointer_of(p));

    if (auto r = v.FindMember("$ref"); r != v.MemberEnd()) {
      Path rp = child(p, "$ref");
      if (!r->value.IsString()) fail(rp, "$ref must be a string such as '#/definitions/name'");
      std::string ref(r->value.GetString(), r->value.GetStringLength());
      if (ref.empty() || ref[0] != '#')
        fail(rp, "'" + ref + "' is not a local reference: only references into this schema "
                 "('#/definitions/name') are supported; copy the referenced schema under definitions");
      std::string encoded = encode_ref(ref);
      r->value.SetString(encoded.c_str(), rapidjson::SizeType(encoded.size()), a);
      refs_.push_back({rp, ref, encoded});
      for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
        std::string k(m->name.GetString(), m->name.GetStringLength());
        if (k == "$ref" || k == "definitions" || k == "$defs" || annotation_keywords().count(k)) continue;
        if (ignore_.count(k) || k.rfind("x-", 0) == 0) continue;
        fail(child(p, k), "'" + k + "' beside $ref is ignored in draft-04 ($ref replaces the whole "
                          "schema); write allOf: [{$ref: '" + ref + "'}, {" + k + ": ...}]");
      }
    }

    std::vector<std::string> drop;  // members removed after the loop
    bool has_enum = v.HasMember("enum");
    for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
      std::string k(m->name.GetString(), m->name.GetStringLength());
      JVal& x = m->value;
      Path kp = child(p, k);
      if (k == "type") {
        check_type(x, kp);
      } else if (k == "enum") {
        if (!x.IsArray() || x.Empty()) fail(kp, "enum must be a non-empty list of the allowed values");
        for (rapidjson::SizeType i = 0; i < x.Size(); ++i) no_objects(x[i], child(kp, i), "enum");
      } else if (k == "const") {
        if (has_enum) fail(kp, "const and enum in the same schema: keep one of them");
        no_objects(x, kp, "const");
      } else if (k == "allOf" || k == "anyOf" || k == "oneOf") {
        if (!x.IsArray() || x.Empty()) fail(kp, k + " must be a non-empty list of schemas");
        for (rapidjson::SizeType i = 0; i < x.Size(); ++i) schema(x[i], child(kp, i), a);
      } else if (k == "not") {
        schema(x, kp, a);
      } else if (k == "properties" || k == "definitions" || k == "$defs" || k == "patternProperties") {
        if (!x.IsObject()) fail(kp, k + " must be a map of names to schemas");
        for (auto e = x.MemberBegin(); e != x.MemberEnd(); ++e) {
          std::string name(e->name.GetString(), e->name.GetStringLength());
          Path ep = child(kp, name);
          if (k == "patternProperties") {
            out_.has_patterns = true;
            std::string rewritten = pattern(name, ep, "patternProperties key");
            e->name.SetString(rewritten.c_str(), rapidjson::SizeType(rewritten.size()), a);
          }
          schema(e->value, ep, a);
        }
      } else if (k == "additionalProperties" || k == "additionalItems") {
        if (!x.IsBool()) schema(x, kp, a);
      } else if (k == "items") {
        if (x.IsArray()) {
          for (rapidjson::SizeType i = 0; i < x.Size(); ++i) schema(x[i], child(kp, i), a);
        } else {
          schema(x, kp, a);
        }
      } else if (k == "required") {
        if (!x.IsArray()) fail(kp, "required must be a list of property names, such as [id, total]");
        for (rapidjson::SizeType i = 0; i < x.Size(); ++i)
          if (!x[i].IsString()) fail(child(kp, i), std::string("required lists property names; got ") + type_name(x[i]));
      } else if (k == "dependencies") {
        if (!x.IsObject()) fail(kp, "dependencies must be a map of property names to a list of names or a schema");
        for (auto e = x.MemberBegin(); e != x.MemberEnd(); ++e) {
          Path ep = child(kp, std::string(e->name.GetString(), e->name.GetStringLength()));
          if (e->value.IsArray()) {
            for (rapidjson::SizeType i = 0; i < e->value.Size(); ++i)
              if (!e->value[i].IsString()) fail(child(ep, i), "a dependency list holds property names");
          } else {
            schema(e->value, ep, a);
          }
        }
      } else if (k == "minimum" || k == "maximum") {
        if (!x.IsNumber()) fail(kp, k + " must be a number, got " + type_name(x));
      } else if (k == "exclusiveMinimum" || k == "exclusiveMaximum") {
        if (!x.IsBool() && !x.IsNumber())
          fail(kp, k + " must be true/false (draft-04) or a number (draft-06), got " + type_name(x));
        if (x.IsBool() && !v.HasMember(k == "exclusiveMinimum" ? "minimum" : "maximum"))
          fail(kp, k + ": true needs " + (k == "exclusiveMinimum" ? "minimum" : "maximum") +
                       " beside it (draft-04), or give the bound itself: " + k + ": 5");
      } else if (k == "multipleOf") {
        if (!x.IsNumber() || x.GetDouble() <= 0) fail(kp, "multipleOf must be a number greater than 0");
      } else if (k == "minLength" || k == "maxLength" || k == "minItems" || k == "maxItems" ||
                 k == "minProperties" || k == "maxProperties") {
        if (!x.IsUint64() || x.GetUint64() > 0xFFFFFFFEu)
          fail(kp, k + " must be a whole number from 0 to 4294967294, got " + json_text(x, 30));
        if (k == "minLength" || k == "maxLength") out_.has_lengths = true;
      } else if (k == "uniqueItems") {
        if (!x.IsBool()) fail(kp, "uniqueItems must be true or false");
      } else if (k == "pattern") {
        if (!x.IsString()) fail(kp, std::string("pattern must be a string, got ") + type_name(x));
        std::string written(x.GetString(), x.GetStringLength());
        if (written.empty()) {
          drop.push_back(k);  // matches everything; RapidJSON cannot compile it
          continue;
        }
        out_.has_patterns = true;
        std::string rewritten = pattern(written, kp, "pattern");
        out_.patterns[pointer_of(p)] = written;
        x.SetString(rewritten.c_str(), rapidjson::SizeType(rewritten.size()), a);
      } else if (k == "$ref") {
        // checked above
      } else if (k == "id" || k == "$id") {
        if (!root && x.IsString() && x.GetStringLength() && x.GetString()[0] != '#')
          fail(kp, k + " in a subschema changes the base of $ref, which is not supported; remove it, "
                       "or move the subschema under definitions and $ref it");
      } else if (k == "default" || k == "examples") {
        drop.push_back(k);  // data, not schema: RapidJSON would compile any object in it
      } else if (annotation_keywords().count(k)) {
        // no effect on validation
      } else if (ignore_.count(k)) {
        auto& [count, first] = out_.ignored[k];
        if (count++ == 0) first = "#" + pointer_of(kp);
        drop.push_back(k);
      } else if (k.rfind("x-", 0) == 0) {
        drop.push_back(k);  // vendor extension
      } else if (auto u = unsupported_keywords().find(k); u != unsupported_keywords().end()) {
        fail(kp, "'" + k + "' is not supported (" + u->second + "): this validator implements JSON "
                 "Schema draft-04. Rewrite the constraint, or list it in ignore_keywords to accept "
                 "messages without checking it");
      } else {
        std::string best = edgeflow::sdk::closest(k, supported_keywords());
        fail(kp, "unknown keyword '" + k + "'." + (best.empty() ? "" : " Did you mean '" + best + "'?") +
                     " Unknown keywords are refused so that a typo never turns a check off; name "
                     "vendor extensions x-..., or list it in ignore_keywords");
      }
    }
    for (auto& k : drop) v.EraseMember(k.c_str());

    // RapidJSON 1.1 mishandles additionalProperties beside patternProperties: `false` crashes
    // it (a key matching a pattern is left without a schema), and with a schema a property
    // matching a pattern passes if it matches either schema. `false` is the same as
    // {not: {}}, which takes its correct path; `{}` is `true`; any other schema is refused.
    auto pp = v.FindMember("patternProperties");
    auto ap = v.FindMember("additionalProperties");
    if (pp != v.MemberEnd() && pp->value.MemberCount() > 0 && ap != v.MemberEnd()) {
      JVal& x = ap->value;
      auto forbids_all = [](const JVal& s) {
        return s.IsObject() && s.MemberCount() == 1 && s.HasMember("not") && s["not"].IsObject() &&
               s["not"].MemberCount() == 0;
      };
      if (x.IsFalse()) {
        x.SetObject();
        x.AddMember("not", JVal(rapidjson::kObjectType), a);
      } else if (x.IsObject() && x.MemberCount() == 0) {
        x.SetBool(true);
      } else if (x.IsObject() && !forbids_all(x)) {
        fail(child(p, "additionalProperties"),
             "a schema for additionalProperties beside patternProperties is not supported: RapidJSON "
             "1.1 would let a property that matches a pattern pass when it matches either schema. "
             "Use additionalProperties: false (or true), and describe the other names with "
             "properties or more patternProperties");
      }
    }

    implicit_properties(v, p, a);

    // const: X -> enum: [X]
    if (auto c = v.FindMember("const"); c != v.MemberEnd()) {
      JVal list(rapidjson::kArrayType);
      list.PushBack(c->value, a);  // moves the value
      v.EraseMember(c);
      v.AddMember("enum", list, a);
    }
    // Draft-06 exclusiveMinimum: N -> draft-04 minimum: N, exclusiveMinimum: true (the stricter
    // bound wins when both are given); the same for the maximum.
    bounds(v, a, "minimum", "exclusiveMinimum", true);
    bounds(v, a, "maximum", "exclusiveMaximum", false);
  }

  // RapidJSON 1.1 counts the names in required and dependencies as declared properties, so
  // additionalProperties does not reach them ({additionalProperties: false, required: [x]}
  // accepts any x). They are declared here with the additionalProperties schema itself, or
  // with {} where a patternProperties pattern covers them (the pattern applies, not
  // additionalProperties).
  void implicit_properties(JVal& v, const Path& p, JAlloc& a) {
    auto ap = v.FindMember("additionalProperties");
    if (ap == v.MemberEnd() || ap->value.IsTrue()) return;
    std::vector<std::string> names;
    if (auto r = v.FindMember("required"); r != v.MemberEnd())
      for (auto& n : r->value.GetArray()) names.emplace_back(n.GetString(), n.GetStringLength());
    if (auto d = v.FindMember("dependencies"); d != v.MemberEnd())
      for (auto e = d->value.MemberBegin(); e != d->value.MemberEnd(); ++e) {
        names.emplace_back(e->name.GetString(), e->name.GetStringLength());
        if (e->value.IsArray())
          for (auto& n : e->value.GetArray()) names.emplace_back(n.GetString(), n.GetStringLength());
      }
    if (names.empty()) return;
    JVal additional;
    if (ap->value.IsFalse()) {
      additional.SetObject();
      additional.AddMember("not", JVal(rapidjson::kObjectType), a);
    } else {
      additional.CopyFrom(ap->value, a);
    }
    std::vector<std::string> patterns;
    if (auto pp = v.FindMember("patternProperties"); pp != v.MemberEnd())
      for (auto e = pp->value.MemberBegin(); e != pp->value.MemberEnd(); ++e)
        patterns.emplace_back(e->name.GetString(), e->name.GetStringLength());
    if (!v.HasMember("properties")) v.AddMember("properties", JVal(rapidjson::kObjectType), a);
    JVal& props = v["properties"];
    for (auto& n : names) {
      if (props.HasMember(n.c_str())) continue;
      bool by_pattern = false;
      for (auto& pat : patterns) {
        rapidjson::internal::GenericRegex<rapidjson::UTF8<>> re(pat.c_str());
        if (re.IsValid() && re.Search(n.c_str())) by_pattern = true;
      }
      JVal schema(rapidjson::kObjectType);
      if (!by_pattern) schema.CopyFrom(additional, a);
      props.AddMember(JVal(n.c_str(), rapidjson::SizeType(n.size()), a), schema, a);
      out_.implicit.insert(pointer_of(child(child(p, "properties"), n)));
    }
  }

  static void bounds(JVal& v, JAlloc& a, const char* bound, const char* exclusive, bool lower) {
    auto e = v.FindMember(exclusive);
    if (e == v.MemberEnd() || !e->value.IsNumber()) return;
    JVal limit(e->value, a);
    auto b = v.FindMember(bound);
    bool use_exclusive = b == v.MemberEnd() ||
                         (lower ? limit.GetDouble() >= b->value.GetDouble() : limit.GetDouble() <= b->value.GetDouble());
    if (use_exclusive) {
      if (b != v.MemberEnd()) v.EraseMember(b);
      v.AddMember(JVal(bound, a), limit, a);
    }
    v[exclusive].SetBool(use_exclusive);
  }

  // RapidJSON 1.1 compares enum values by a hash that XORs an object's members, each hashed
  // from its name and value alike: {"a": "a"} hashes like {}, so const: {kind: x} would accept
  // {"kind": "x", "q": "q"}. Strings, numbers and arrays of them hash soundly.
  void no_objects(const JVal& x, const Path& p, const char* keyword) {
    if (x.IsArray()) {
      for (rapidjson::SizeType i = 0; i < x.Size(); ++i) no_objects(x[i], child(p, i), keyword);
    } else if (x.IsObject()) {
      fail(p, std::string(keyword) + " with an object is not supported: RapidJSON 1.1 compares objects "
           "by a hash under which {\"a\": \"a\"} equals {}, so messages outside the list could pass. "
           "Describe the object with type: object, properties (each with const), required and "
           "additionalProperties: false");
    }
  }

  void check_type(const JVal& x, const Path& kp) {
    static const std::set<std::string> names = {"null", "boolean", "object", "array", "string", "number", "integer"};
    auto one = [&](const JVal& t, const Path& tp) {
      if (!t.IsString()) fail(tp, std::string("a type name must be a string, got ") + type_name(t));
      std::string n(t.GetString(), t.GetStringLength());
      if (!names.count(n))
        fail(tp, "unknown type '" + n + "'; the types are null, boolean, object, array, string, number and integer");
    };
    if (x.IsArray()) {
      if (x.Empty()) fail(kp, "type must name at least one type");
      for (rapidjson::SizeType i = 0; i < x.Size(); ++i) one(x[i], child(kp, i));
    } else {
      one(x, kp);
    }
  }

  std::string pattern(const std::string& written, const Path& p, const char* what) {
    std::string out, why;
    if (!translate_pattern(written, out, why)) fail(p, std::string(what) + " '" + written + "': " + why);
    return out;
  }

  // The target must exist, be a schema checked above, and the chain of $refs must end.
  void check_ref(const JDoc& doc, const Path& p, const std::string& ref, const std::string& encoded) {
    rapidjson::Pointer ptr(encoded.c_str(), encoded.size());
    if (!ptr.IsValid()) fail(p, "'" + ref + "' is not a JSON pointer; write '#/definitions/name'");
    const JVal* target = ptr.Get(doc);
    if (!target) fail(p, "'" + ref + "' points at nothing in this schema");
    rapidjson::StringBuffer sb;
    ptr.Stringify(sb);
    if (!positions_.count(sb.GetString()))
      fail(p, "'" + ref + "' points at " + a_type(*target) + " that is not a schema");
    std::string cycle;
    if (ref_cycle(doc, encoded, cycle)) fail(p, "$ref cycle " + cycle + " never reaches a schema");
  }

  // Follows $ref -> $ref ...; true (with the chain) when it comes back to itself.
  static bool ref_cycle(const JDoc& doc, const std::string& first, std::string& chain) {
    std::set<std::string> seen;
    std::string ref = first;
    chain = ref;
    for (;;) {
      if (!seen.insert(ref).second) return true;
      rapidjson::Pointer ptr(ref.c_str(), ref.size());
      const JVal* t = ptr.IsValid() ? ptr.Get(doc) : nullptr;
      if (!t || !t->IsObject()) return false;
      auto r = t->FindMember("$ref");
      if (r == t->MemberEnd() || !r->value.IsString() || r->value.GetStringLength() == 0 ||
          r->value.GetString()[0] != '#')
        return false;
      ref.assign(r->value.GetString(), r->value.GetStringLength());
      chain += " -> " + ref;
    }
  }

  // RapidJSON 1.1 compiles every object in the document as a schema, data included (enum
  // values, a property named like a keyword), and crashes on some of them.
  void hazards(const JDoc& doc, const JVal& v, Path& p) {
    if (v.IsObject()) {
      if (auto pp = v.FindMember("patternProperties"); pp != v.MemberEnd() && !pp->value.IsObject())
        fail(child(p, "patternProperties"), "this object would be compiled as a schema, and its "
             "'patternProperties' is not a map, which RapidJSON 1.1 cannot load; rename or drop it");
      if (auto d = v.FindMember("dependencies"); d != v.MemberEnd() && d->value.IsObject())
        for (auto e = d->value.MemberBegin(); e != d->value.MemberEnd(); ++e)
          if (e->value.IsArray())
            for (auto& item : e->value.GetArray())
              if (!item.IsString())
                fail(child(child(p, "dependencies"), std::string(e->name.GetString(), e->name.GetStringLength())),
                     "this object would be compiled as a schema, and its 'dependencies' list holds " +
                         a_type(item) + ", which RapidJSON 1.1 cannot load; rename or drop it");
      if (auto r = v.FindMember("$ref"); r != v.MemberEnd() && r->value.IsString()) {
        std::string chain;
        if (ref_cycle(doc, std::string(r->value.GetString(), r->value.GetStringLength()), chain))
          fail(child(p, "$ref"), "$ref cycle " + chain + " never reaches a schema");
      }
      for (auto m = v.MemberBegin(); m != v.MemberEnd(); ++m) {
        p.push_back({std::string(m->name.GetString(), m->name.GetStringLength()), 0, false});
        hazards(doc, m->value, p);
        p.pop_back();
      }
    } else if (v.IsArray()) {
      for (rapidjson::SizeType i = 0; i < v.Size(); ++i) {
        p.push_back({{}, i, true});
        hazards(doc, v[i], p);
        p.pop_back();
      }
    }
  }

  std::function<std::string(const Path&)> locate_;
  std::set<std::string> ignore_;
  struct Ref {
    Path path;
    std::string written, encoded;
  };
  std::vector<Ref> refs_;
  std::set<std::string> positions_;  // pointers of every schema position
  Prepared out_;
};

}  // namespace edgeflow_validate
