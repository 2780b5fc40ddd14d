// envelope: CloudEvents 1.0 in structured JSON mode. `wrap` turns each message into an event
// whose `data` is the original document (or text, or `data_base64` for other bytes); `unwrap`
// turns an event back into its data and lifts the attributes into ce_* headers (the Kafka
// binding's names), so later steps and sinks can still key or route on them, and a sink with a
// binary-mode binding can send them as the event. Both hold to what the spec allows: attribute
// names of a-z0-9, strings without control characters, `source` a URI-reference, `dataschema`
// a URI, `time` RFC 3339.
//
// The CloudEvents `type` attribute is the option `event_type`: in a flow file `type:` already
// names the plugin of a step.
#include <edgeflow/sdk/expr.hpp>
#include <edgeflow/sdk/formats.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

using namespace edgeflow::sdk;

namespace {

namespace formats = edgeflow::sdk::formats;

namespace builtin = expr::builtin;

constexpr std::string_view kSpecVersion = "1.0";

// Attributes the envelope writes itself or has an option for; an extension may not reuse them.
// dataschema is left out on purpose: extensions is the way to set that optional attribute (it
// must then be an absolute URI).
const char* reserved_by(std::string_view name) {
  if (name == "id" || name == "source" || name == "subject" || name == "time") return "has its own option";
  if (name == "type") return "is the option event_type";
  if (name == "specversion" || name == "datacontenttype" || name == "data") return "is written by envelope itself";
  return nullptr;
}

// The CloudEvents 1.0 naming rule for attributes: lower-case ASCII letters and digits only.
bool valid_attribute_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  return true;
}

// Whether data of this media type is a JSON value in structured mode (anything else travels as
// a string): application/json, text/json and any +json suffix, parameters ignored.
bool is_json_media_type(std::string_view ct) {
  ct = ct.substr(0, ct.find(';'));
  while (!ct.empty() && ct.back() == ' ') ct.remove_suffix(1);
  std::string t(ct);
  for (char& c : t)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return t == "application/json" || t == "text/json" || (t.size() > 5 && t.ends_with("+json"));
}

// Whether a payload of this media type is text that structured mode can carry as a string (any
// other bytes go as data_base64): text/*, XML, or a charset parameter.
bool is_text_media_type(std::string_view ct) {
  std::string t(ct);
  for (char& c : t)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return t.starts_with("text/") || t.find("xml") != std::string::npos || t.find("charset=") != std::string::npos;
}

// Why s cannot be a CloudEvents String, or "": it must be UTF-8 without control characters
// (U+0000-U+001F, U+007F-U+009F) or noncharacters (U+FDD0-U+FDEF, U+xFFFE, U+xFFFF).
std::string string_problem(std::string_view s) {
  if (!expr::is_utf8(s)) return "is not UTF-8";
  auto byte = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  for (size_t i = 0; i < s.size(); ++i) {
    uint32_t cp = byte(i);
    size_t n = cp < 0x80 ? 1 : cp < 0xE0 ? 2 : cp < 0xF0 ? 3 : 4;
    if (n == 2) cp = (cp & 0x1F) << 6 | (byte(i + 1) & 0x3F);
    else if (n == 3) cp = (cp & 0x0F) << 12 | (byte(i + 1) & 0x3F) << 6 | (byte(i + 2) & 0x3F);
    else if (n == 4) cp = (cp & 0x07) << 18 | (byte(i + 1) & 0x3F) << 12 | (byte(i + 2) & 0x3F) << 6 | (byte(i + 3) & 0x3F);
    char hex[16];
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) {
      std::snprintf(hex, sizeof hex, "U+%04X", cp);
      return "holds the control character " + std::string(hex) + " at byte " + std::to_string(i) +
             ", which CloudEvents forbids in attributes";
    }
    if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
      std::snprintf(hex, sizeof hex, "U+%04X", cp);
      return "holds the noncharacter " + std::string(hex) + " at byte " + std::to_string(i) +
             ", which CloudEvents forbids in attributes";
    }
    i += n - 1;
  }
  return "";
}

// Why a string value cannot be the named attribute, or "".
std::string attribute_problem(std::string_view name, std::string_view v) {
  if (std::string why = string_problem(v); !why.empty()) return why;
  if (name == "source" && !formats::uri_reference(v))
    return "is not a URI-reference (RFC 3986); percent-encode spaces and other characters, like /edge/site%207";
  if (name == "dataschema" && !formats::uri(v))
    return "is not an absolute URI (RFC 3986), like https://example.com/schemas/order.json";
  if (name == "time" && !formats::date_time(v)) return "is not an RFC 3339 timestamp";
  return "";
}

// A value as JSON text, for reasons: a string shows its quotes, so "" and "7" read unambiguously.
std::string json_text(const expr::Val& v) {
  std::string out;
  expr::append_json(out, v);
  return out;
}
std::string json_text(Value v) { return json_text(expr::Val::from(v)); }

// An option that yields one attribute: an expression or a template, with the key and text a
// rejection names.
struct Attr {
  std::string key;
  std::string attribute;  // the CloudEvents name
  expr::Expr e;
  expr::Template t;
  bool is_template = false;
  bool set = false;

  const std::string& text() const { return is_template ? t.text() : e.text(); }
  expr::Val eval(Message m) const { return is_template ? expr::Val(t.render(m)) : e.eval(m); }
};

class Envelope : public Transformer {
 public:
  struct Config {
    std::string mode = "wrap";
    std::string id = "uuid()";
    std::string source;
    std::string event_type;
    std::string subject;
    std::string time = "msg.timestamp != 0 ? msg.timestamp : now()";
    Json extensions;
  };
  static constexpr const char* type = "envelope";
  static constexpr const char* description =
      "Wraps each document in a CloudEvents 1.0 JSON event (structured mode), or unwraps an event "
      "into its data with the attributes as ce_* headers.";
  static void describe(Spec<Config>& s) {
    s.option("mode", &Config::mode)
        .one_of("wrap|unwrap")
        .doc("wrap: the document becomes the event's data; unwrap: the event's data becomes the document.")
        .example("unwrap");
    s.option("id", &Config::id)
        .doc("wrap: expression for the event id (source + id identify an event, so a stable business id makes "
             "redeliveries recognisable).")
        .example("concat(source.table, ':', after.id, ':', source.lsn)");
    s.option("source", &Config::source)
        .doc("wrap (required): template for the source attribute, a URI-reference naming where the event happened.")
        .example("/edge/site-7/orders");
    s.option("event_type", &Config::event_type)
        .doc("wrap (required): template for the CloudEvents type attribute (`type:` itself selects the plugin).")
        .example("com.example.order.${op}");
    s.option("subject", &Config::subject)
        .doc("wrap: expression for the optional subject attribute; a null or empty result leaves it out.")
        .example("string(after.id)");
    s.option("time", &Config::time)
        .doc("wrap: expression giving epoch milliseconds or an ISO-8601 text, written as RFC 3339 UTC; "
             "null leaves the attribute out.")
        .example("after.updated_at");
    s.option("extensions", &Config::extensions)
        .doc("wrap: extension attribute name (lower-case letters and digits) -> expression; a null result "
             "leaves it out. Values must be strings, booleans or 32-bit integers.")
        .example("{ tenant: meta.tenant, partitionkey: string(after.customer_id) }");
  }

  Envelope(Context c, Config cfg) : Transformer(c), wrap_(cfg.mode == "wrap") {
    if (!wrap_) {
      // Wrap options in an unwrap step are a misunderstanding worth stopping at load.
      Config defaults;
      const std::pair<const char*, bool> wrap_only[] = {
          {"id", cfg.id != defaults.id},           {"source", !cfg.source.empty()},
          {"event_type", !cfg.event_type.empty()}, {"subject", !cfg.subject.empty()},
          {"time", cfg.time != defaults.time},     {"extensions", !cfg.extensions.is_null()}};
      for (auto& [key, given] : wrap_only)
        if (given)
          throw Error(c.where(key) + ": " + key + ": only used with mode: wrap; remove it (unwrap reads every "
                      "attribute from the event)");
      return;
    }
    if (cfg.source.empty())
      throw Error(c.where("") + ": source: required with mode: wrap; add `source: /edge/site-7/orders` (a URI-reference "
                  "naming where the events come from)");
    if (cfg.event_type.empty())
      throw Error(c.where("") + ": event_type: required with mode: wrap; add `event_type: com.example.order.${op}` "
                  "(reverse-DNS name of what happened)");
    id_ = expression("id", "id", cfg.id);
    source_ = templated("source", "source", cfg.source);
    type_ = templated("event_type", "type", cfg.event_type);
    if (!cfg.subject.empty()) subject_ = expression("subject", "subject", cfg.subject);
    time_ = expression("time", "time", cfg.time);
    if (auto* o = cfg.extensions.object()) {
      for (auto& [name, v] : *o) {
        std::string k = "extensions." + name;
        if (!valid_attribute_name(name))
          throw Error(c.where(k) + ": " + k + ": '" + name + "' is not a CloudEvents attribute name; use only "
                      "lower-case letters a-z and digits 0-9, like " + suggest_name(name));
        if (const char* why = reserved_by(name))
          throw Error(c.where(k) + ": " + k + ": '" + name + "' " + why + "; choose another extension name");
        if (name.size() > 20)
          c.warn(k + ": CloudEvents advises attribute names of at most 20 characters; '" + name + "' has " +
                 std::to_string(name.size()));
        // Plain YAML numbers and booleans are taken as the literal values they read as.
        std::string text;
        if (auto* str = v.string()) text = *str;
        else if (auto* n = std::get_if<int64_t>(&v.v)) text = std::to_string(*n);
        else if (auto* f = std::get_if<bool>(&v.v)) text = *f ? "true" : "false";
        else throw Error(c.where(k) + ": " + k + ": expected an expression (a text literal is quoted twice: \"'eu-1'\")");
        extensions_.push_back({name, expression(k, name, text)});
      }
    } else if (!cfg.extensions.is_null()) {
      throw Error(c.where("extensions") + ": extensions: expected a map of name: expression");
    }
  }

  void transform(Batch b) override {
    for (size_t i = 0; i < b.size(); ++i) {
      if (wrap_) wrap(b, i);
      else unwrap(b, i);
    }
  }

 private:
  struct Extension {
    std::string name;
    Attr attr;
  };

  Attr expression(const std::string& key, const std::string& attribute, const std::string& text) {
    Attr a;
    a.key = key;
    a.attribute = attribute;
    a.e = expr::compile_option(context(), key, text);
    a.set = true;
    if (const expr::Val* v = a.e.constant(); v && v->is_string()) check_static(a, v->as_string());
    return a;
  }
  Attr templated(const std::string& key, const std::string& attribute, const std::string& text) {
    Attr a;
    a.key = key;
    a.attribute = attribute;
    a.t = expr::compile_template(context(), key, text);
    a.is_template = true;
    a.set = true;
    if (a.t.is_literal()) check_static(a, a.t.literal());
    return a;
  }
  // A value that is the same for every message is checked once, here.
  void check_static(const Attr& a, const std::string& value) const {
    std::string why = attribute_problem(a.attribute, value);
    if (a.attribute == "dataschema" && value.empty()) why = "is empty";
    if (!why.empty()) throw Error(context().where(a.key) + ": " + a.key + ": " + json_text(expr::Val(value)) + " " + why);
  }
  static std::string suggest_name(const std::string& name) {
    std::string s;
    for (char c : name) {
      if (c >= 'A' && c <= 'Z') s.push_back(char(c - 'A' + 'a'));
      else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) s.push_back(c);
    }
    return s.empty() ? "'tenant'" : "'" + s + "'";
  }

  // id, source and type: CloudEvents requires non-empty strings.
  static std::string required_text(const Attr& a, const expr::Val& v) {
    if (v.is_null())
      throw expr::EvalError("the value is null; CloudEvents requires the " + a.attribute + " attribute");
    std::string s = expr::to_text(v);
    if (s.empty()) throw expr::EvalError("the value is empty; CloudEvents requires a non-empty " + a.attribute);
    return checked(a, std::move(s));
  }
  static std::string checked(const Attr& a, std::string s) {
    if (std::string why = attribute_problem(a.attribute, s); !why.empty())
      throw expr::EvalError(json_text(expr::Val(s)) + " " + why);
    return s;
  }

  static std::string time_text(const expr::Val& v) {
    int64_t ms = 0;
    if (v.is_int()) {
      ms = v.as_int();
    } else if (v.is_number()) {
      double d = v.as_double();
      if (!std::isfinite(d) || std::fabs(d) > 9e18) throw expr::EvalError(std::to_string(d) + " is not a time");
      ms = std::llround(d);
    } else if (v.is_string()) {
      try {
        ms = builtin::parse_iso8601(v.as_string());
      } catch (const expr::EvalError&) {
        throw expr::EvalError("'" + v.as_string() + "' is neither an ISO-8601 date-time nor epoch milliseconds");
      }
    } else {
      throw expr::EvalError(std::string("expected epoch milliseconds or an ISO-8601 text, got ") + expr::type_name(v));
    }
    // RFC 3339 has four-digit years; a bigger number is usually microseconds or nanoseconds.
    static const int64_t lo = builtin::days_from_civil(0, 1, 1) * 86400000;
    static const int64_t hi = builtin::days_from_civil(10000, 1, 1) * 86400000;
    if (ms < lo || ms >= hi)
      throw expr::EvalError(std::to_string(ms) +
                            " ms is outside the years 0000-9999 (microseconds instead of milliseconds?)");
    return builtin::format_iso8601(ms);
  }

  // The JSON types the CloudEvents type system has: String, Boolean, Integer (32-bit).
  static expr::Val extension_value(const Attr& a, const expr::Val& v) {
    if (a.attribute == "dataschema" && !v.is_string())
      throw expr::EvalError("dataschema is a URI, got " + std::string(expr::type_name(v)));
    if (v.is_string()) return expr::Val(checked(a, v.as_string()));
    if (v.is_bool()) return v;
    if (v.is_int()) {
      if (v.as_int() < INT32_MIN || v.as_int() > INT32_MAX)
        throw expr::EvalError(std::to_string(v.as_int()) + " does not fit a CloudEvents Integer (32-bit); use string(...)");
      return v;
    }
    throw expr::EvalError(std::string("a CloudEvents extension is a string, boolean or integer, got ") +
                          expr::type_name(v) + "; use string(...) or json_encode(...)");
  }

  void wrap(Batch b, size_t i) {
    Message m = b[i];
    // JSON travels as JSON, other text as a string, anything else as data_base64. A payload
    // whose content type says JSON must be JSON; one without a content type may be anything.
    std::string content_type(m.content_type());
    bool json = content_type.empty() || is_json_media_type(content_type);
    if (json && !host().message_doc(m.raw())) {
      if (!content_type.empty())
        return b.reject(i, "envelope: " + message_doc_error(m.raw()) + " (the content type is " + content_type + ")");
      json = false;
    }
    const Attr* at = nullptr;
    try {
      // Every attribute reads the incoming document, before it is replaced.
      at = &id_;
      std::string id = required_text(id_, id_.eval(m));
      at = &source_;
      std::string source = required_text(source_, source_.eval(m));
      at = &type_;
      std::string type = required_text(type_, type_.eval(m));
      std::string subject;
      if (subject_.set) {
        at = &subject_;
        expr::Val v = subject_.eval(m);
        if (!v.is_null()) subject = checked(subject_, expr::to_text(v));
      }
      at = &time_;
      expr::Val t = time_.eval(m);
      std::string time = t.is_null() ? std::string() : time_text(t);
      std::vector<std::pair<const std::string*, expr::Val>> ext;
      for (auto& x : extensions_) {
        at = &x.attr;
        expr::Val v = x.attr.eval(m);
        if (!v.is_null()) ext.emplace_back(&x.name, extension_value(x.attr, v));
      }
      at = nullptr;
      expr::Val data;
      std::string bytes;
      if (json) data = expr::Val::from(m.doc()).materialize();
      else bytes = std::string(m.payload());
      bool text = !json && expr::is_utf8(bytes) && (content_type.empty() || is_text_media_type(content_type));
      if (content_type.empty())
        content_type = json ? "application/json" : text ? "text/plain; charset=utf-8" : "application/octet-stream";
      if (std::string why = string_problem(content_type); !why.empty())
        throw expr::EvalError("the content type " + json_text(expr::Val(content_type)) + " " + why);

      Value root = m.reset_doc();
      m.set(m.put(root, "specversion"), kSpecVersion);
      m.set(m.put(root, "id"), id);
      m.set(m.put(root, "source"), source);
      m.set(m.put(root, "type"), type);
      if (!subject.empty()) m.set(m.put(root, "subject"), subject);
      if (!time.empty()) m.set(m.put(root, "time"), time);
      m.set(m.put(root, "datacontenttype"), content_type);
      for (auto& [name, v] : ext) expr::assign(m, m.put(root, *name), v);
      if (json) {
        expr::assign(m, m.put(root, "data"), data);
      } else if (text) {
        m.set(m.put(root, "data"), bytes);
      } else {
        std::string b64;
        expr::append_base64(b64, bytes);
        m.set(m.put(root, "data_base64"), b64);
      }
      m.set_content_type("application/cloudevents+json");
    } catch (const expr::EvalError& e) {
      if (!at) return b.reject(i, std::string("envelope: ") + e.what());
      b.reject(i, "envelope: " + at->key + ": `" + at->text() + "`: " + e.what());
    }
  }

  void unwrap(Batch b, size_t i) {
    Message m = b[i];
    Value root(host().message_doc(m.raw()));
    if (!root) return b.reject(i, "envelope: " + message_doc_error(m.raw()));
    if (!root.is_object())
      return b.reject(i, std::string("envelope: not a CloudEvent: the document is ") +
                             expr::type_name(expr::Val::from(root)) + ", not an object");
    std::string missing;
    for (const char* name : {"specversion", "id", "source", "type"})
      if (!root[name]) missing += (missing.empty() ? "" : ", ") + std::string(name);
    if (!missing.empty()) return b.reject(i, "envelope: not a CloudEvent: missing " + missing);
    Value spec = root["specversion"];
    if (!spec.is_string() || spec.as_string() != kSpecVersion)
      return b.reject(i, "envelope: specversion " + json_text(spec) +
                             " is not supported; only CloudEvents 1.0");
    for (const char* name : {"id", "source", "type"}) {
      Value v = root[name];
      if (!v.is_string() || v.as_string().empty())
        return b.reject(i, std::string("envelope: not a CloudEvent: ") + name + " must be a non-empty string, got " +
                               json_text(v));
    }
    // Every attribute as the spec has it: a-z0-9 names; strings without control characters;
    // source a URI-reference, dataschema a URI, time RFC 3339; extensions a string, a boolean
    // or a 32-bit integer. null is an absent attribute.
    for (size_t k = 0; k < root.size(); ++k) {
      auto [name, v] = root.member(k);
      if (name == "data" || name == "data_base64" || v.is_null()) continue;
      std::string shown = expr::valid_utf8(name.substr(0, 64));
      if (!valid_attribute_name(name))
        return b.reject(i, "envelope: not a CloudEvent: the attribute name " + json_text(expr::Val(shown)) +
                               " is not allowed; CloudEvents names are lower-case letters a-z and digits 0-9");
      bool integer = v.type() == EF_TYPE_INT && v.as_int() >= INT32_MIN && v.as_int() <= INT32_MAX;
      if (name == "specversion" || name == "id" || name == "source" || name == "type" || name == "subject" ||
          name == "time" || name == "dataschema" || name == "datacontenttype") {
        if (!v.is_string() || v.as_string().empty())
          return b.reject(i, "envelope: not a CloudEvent: " + shown + " must be a non-empty string, got " + json_text(v));
      } else if (!v.is_string() && v.type() != EF_TYPE_BOOL && !integer) {
        return b.reject(i, "envelope: not a CloudEvent: the extension " + shown + " is " + json_text(v) +
                               "; CloudEvents attributes are strings, booleans or 32-bit integers");
      }
      if (v.is_string())
        if (std::string why = attribute_problem(name, v.as_string()); !why.empty())
          return b.reject(i, "envelope: not a CloudEvent: " + shown + " " + json_text(v) + " " + why);
    }
    Value data = root["data"], data_base64 = root["data_base64"];
    if (data_base64.is_null()) data_base64 = Value();
    if (data && data_base64)
      return b.reject(i, "envelope: not a CloudEvent: it has both data and data_base64; the spec allows one");
    std::string bytes;
    if (data_base64 && (!data_base64.is_string() || !expr::decode_base64(data_base64.as_string(), bytes)))
      return b.reject(i, "envelope: not a CloudEvent: data_base64 is not base64 (RFC 4648, with padding)");
    std::string content_type = data_base64 ? "application/octet-stream" : "application/json";
    if (Value ct = root["datacontenttype"]; ct && !ct.is_null()) content_type = std::string(ct.as_string());
    bool json = !data_base64 && is_json_media_type(content_type);
    if (!json && data && !data.is_null() && !data.is_string())
      return b.reject(i, "envelope: data is " + std::string(expr::type_name(expr::Val::from(data))) +
                             " but datacontenttype is " + content_type + "; structured mode carries non-JSON data as a string");

    // Headers as the Kafka binding names them: ce_<attribute>; datacontenttype is the content type.
    std::vector<std::pair<std::string, std::string>> headers;
    for (size_t k = 0; k < root.size(); ++k) {
      auto [name, v] = root.member(k);
      if (name == "data" || name == "datacontenttype" || name == "data_base64" || v.is_null()) continue;
      headers.emplace_back("ce_" + std::string(name), expr::to_text(expr::Val::from(v)));
    }
    expr::Val value = data ? expr::Val::from(data).materialize() : expr::Val();

    // Headers left by an earlier event or step would describe some other event.
    std::vector<std::string> stale;
    for (size_t k = 0; k < m.header_count(); ++k)
      if (auto name = m.header_at(k).first; name.starts_with("ce_")) stale.emplace_back(name);
    for (auto& name : stale) m.remove_header(name);
    for (auto& [name, v] : headers) m.set_header(name, v);

    if (data_base64) m.set_payload(bytes);
    else if (json) expr::assign(m, m.reset_doc(), value);
    else m.set_payload(value.is_string() ? std::string_view(value.as_string()) : std::string_view());
    m.set_content_type(content_type);
  }

  bool wrap_;
  Attr id_, source_, type_, subject_, time_;
  std::vector<Extension> extensions_;
};

}  // namespace

EDGEFLOW_PLUGIN("envelope", "0.1.0", Envelope)
