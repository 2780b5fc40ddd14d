// Checks every message against a JSON Schema (draft-07 or draft-04, schema.hpp). Messages that
// match go on unchanged; the others are rejected to the dead letter with the places in the
// message that fail and why, or dropped. A payload that is not I-JSON (json_doc.hpp) is always
// rejected, with the real reason and the byte where reading stopped.
//
// Cost: the schema is compiled once, in the constructor; each payload is read into a flat
// document whose buffers are reused from message to message, and checked in one pass that stops
// at the first failure unless it must explain one.
#include "json_doc.hpp"
#include "schema.hpp"

#include <edgeflow/sdk/expr/value.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

using namespace edgeflow::sdk;
using namespace edgeflow_validate;

namespace {

// The inline schema as JSON text: YAML numbers were read as int64 or double, written back in
// the shortest form that reads as the same double.
void append_json(std::string& out, const Json& j) {
  if (j.is_null()) {
    out += "null";
  } else if (auto* b = std::get_if<bool>(&j.v)) {
    out += *b ? "true" : "false";
  } else if (auto* i = std::get_if<int64_t>(&j.v)) {
    out += std::to_string(*i);
  } else if (auto* d = std::get_if<double>(&j.v)) {
    if (!std::isfinite(*d)) throw std::invalid_argument("a schema number must be finite (JSON has no .inf or .nan)");
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, *d);
    out.append(buf, r.ptr);
  } else if (auto* s = j.string()) {
    edgeflow::sdk::expr::append_json_string(out, *s);
  } else if (auto* a = j.array()) {
    out += '[';
    for (size_t k = 0; k < a->size(); ++k) {
      if (k) out += ',';
      append_json(out, (*a)[k]);
    }
    out += ']';
  } else if (auto* o = j.object()) {
    out += '{';
    for (size_t k = 0; k < o->size(); ++k) {
      if (k) out += ',';
      edgeflow::sdk::expr::append_json_string(out, (*o)[k].first);
      out += ':';
      append_json(out, (*o)[k].second);
    }
    out += '}';
  }
}

// The host's key path of a place in the inline schema: /properties/id/0 → schema.properties.id[0].
std::string key_path(const std::string& pointer) {
  std::string out = "schema";
  size_t pos = 1;
  while (pos <= pointer.size() && !pointer.empty()) {
    size_t end = pointer.find('/', pos);
    if (end == std::string::npos) end = pointer.size();
    std::string token;
    for (size_t i = pos; i < end; ++i) {
      if (pointer[i] == '~' && i + 1 < end) token += pointer[++i] == '0' ? '~' : '/';
      else token += pointer[i];
    }
    bool index = !token.empty() && token.find_first_not_of("0123456789") == std::string::npos;
    out += index ? "[" + token + "]" : "." + token;
    pos = end + 1;
  }
  return out;
}

class Validate : public Transformer {
 public:
  struct Config {
    Json schema;
    std::string schema_file;
    std::string schema_dir;
    std::string on_invalid = "reject";
    bool format_assertion = false;
    int64_t max_depth = 256;
    int64_t max_errors = 5;
  };
  static constexpr const char* type = "validate";
  static constexpr const char* description =
      "Checks each message against a JSON Schema (draft-07 or draft-04); rejects or drops the ones that do not "
      "match.";
  static void describe(Spec<Config>& s) {
    s.option("schema", &Config::schema)
        .doc("The JSON Schema messages must match, written inline in YAML or JSON; give this or schema_file. "
             "$schema selects draft-04 or draft-07 (the default).")
        .example("{type: object, required: [id], properties: {id: {type: integer}}}");
    s.option("schema_file", &Config::schema_file)
        .doc("A JSON Schema file, read once at load; a relative path is relative to the daemon's working "
             "directory. Give this or schema.")
        .example("/etc/edgeflow/schemas/order.json");
    s.option("schema_dir", &Config::schema_dir)
        .doc("A directory of schema files that $ref may name, by path relative to the schema or by their $id; "
             "all its *.json files are read at load. Nothing is ever fetched over a network.")
        .example("/etc/edgeflow/schemas");
    s.option("on_invalid", &Config::on_invalid)
        .one_of("reject|drop")
        .doc("What happens to a message that does not match: reject (to the dead letter, with the reasons) or "
             "drop (counts as delivered; the reasons are logged at debug level). A payload that is not JSON is "
             "always rejected.")
        .example("drop");
    s.option("format_assertion", &Config::format_assertion)
        .doc("Check `format` where it can be checked exactly (date-time, date, time, email, hostname, ipv4, ipv6, "
             "uri, uri-reference, uuid, json-pointer, relative-json-pointer, regex); off, format is an "
             "annotation as JSON Schema says.")
        .example("true");
    s.option("max_depth", &Config::max_depth)
        .range(1, 4096)
        .doc("Messages nesting objects and arrays deeper than this are rejected.")
        .example("64");
    s.option("max_errors", &Config::max_errors)
        .range(1, 100)
        .doc("At most this many places that fail are named in a rejected message's reason.")
        .example("10");
  }

  Validate(Context c, Config cfg)
      : Transformer(c),
        drop_(cfg.on_invalid == "drop"),
        max_depth_(uint32_t(cfg.max_depth)),
        max_errors_(size_t(cfg.max_errors)) {
    const Context& ctx = context();
    bool inline_schema = !cfg.schema.is_null();
    bool file = !cfg.schema_file.empty();
    if (inline_schema == file)
      throw Error(ctx.where(file ? "schema_file" : "schema") +
                  (file ? ": schema_file: give either schema or schema_file, not both; remove one"
                        : ": schema: missing; give the JSON Schema inline (schema: {type: object, ...}) "
                          "or its file (schema_file: /path/schema.json)"));
    std::string text;
    if (inline_schema) {
      try {
        append_json(text, cfg.schema);
      } catch (const std::exception& e) {
        throw Error(ctx.where("schema") + ": schema: " + e.what());
      }
    } else {
      text = read_file(cfg.schema_file);
    }
    const std::string key = file ? "schema_file" : "schema";
    if (!schema_doc_.parse(text, 512))
      throw Error(ctx.where(key) + ": " + key + ": " + (file ? cfg.schema_file + ": " : "") + "not JSON at byte " +
                  std::to_string(schema_doc_.offset()) + ": " + schema_doc_.error());
    Schema::Options options;
    options.schema_dir = cfg.schema_dir;
    options.format_assertion = cfg.format_assertion;
    try {
      schema_ = std::make_unique<Schema>(schema_doc_, cfg.schema_file, options);
    } catch (const SchemaError& e) {
      if (e.document.empty() && inline_schema)
        throw Error(ctx.where(key_path(e.pointer)) + ": " + key_path(e.pointer) + ": " + e.what());
      // In the schema file, or in a file of schema_dir it refers to.
      throw Error(ctx.where(key) + ": " + key + ": " + e.document + (e.pointer.empty() ? "" : "#" + e.pointer) +
                  ": " + e.what());
    }
    for (auto& u : schema_->unknown_keywords())
      ctx.warn("schema: '" + u.keyword + "' at " + u.place + " is not a keyword of this draft, so it checks nothing" +
               (u.suggestion.empty() ? "" : "; did you mean '" + u.suggestion + "'?"));
  }

  void transform(Batch b) override {
    size_t n = b.size();
    for (size_t i = 0; i < n; ++i) {
      Message m = b[i];
      std::string why;
      bool json = true;
      if (check(m.payload(), why, json)) continue;
      if (drop_ && json) {
        context().debug("dropped: " + why);
        b.drop(i);
      } else {
        b.reject(i, why);
      }
    }
  }

 private:
  // Reading a local file in the constructor is deliberate: the schema is part of the
  // configuration, and `edgeflow validate` should report a missing or broken file (and every
  // mistake in it) before anything starts, with the YAML line of schema_file.
  std::string read_file(const std::string& path) {
    const Context& ctx = context();
    std::ifstream f(path, std::ios::binary);
    if (!f)
      throw Error(ctx.where("schema_file") + ": schema_file: cannot read " + path + ": " + std::strerror(errno) +
                  "; give the path of a readable JSON Schema file (relative paths start at the daemon's working "
                  "directory)");
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }

  // True when the payload matches; otherwise `why` says what is wrong (and `json` whether it
  // was JSON at all).
  bool check(std::string_view payload, std::string& why, bool& json) {
    if (!doc_.parse(payload, max_depth_)) {
      json = false;
      why = "payload is not JSON at byte " + std::to_string(doc_.offset()) + ": " + doc_.error();
      return false;
    }
    if (schema_->validate(doc_, failures_, max_errors_)) return true;
    why = "schema:";
    for (size_t k = 0; k < failures_.size(); ++k) {
      why += k ? "; " : " ";
      why += failures_[k].pointer.empty() ? std::string("(root)") : failures_[k].pointer;
      why += ": " + failures_[k].message;
    }
    return false;
  }

  bool drop_;
  uint32_t max_depth_;
  size_t max_errors_;
  Doc schema_doc_;
  std::unique_ptr<Schema> schema_;
  Doc doc_;
  std::vector<Failure> failures_;
};

}  // namespace

EDGEFLOW_PLUGIN("validate", "0.2.0", Validate)
