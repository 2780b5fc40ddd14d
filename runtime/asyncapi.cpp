#include "asyncapi.hpp"

#include <edgeflow/host/config.hpp>

#include <rapidjson/prettywriter.h>
#include <rapidjson/stringbuffer.h>

#include <map>

namespace edgeflow {
namespace {

using host::JValue;
using Alloc = host::Doc::AllocatorType;

std::string option(const InstanceSpec& is, const char* name) {
  if (!is.config || !is.config->IsObject()) return "";
  auto it = is.config->FindMember(name);
  return it != is.config->MemberEnd() && it->value.IsString() ? std::string(it->value.GetString(), it->value.GetStringLength())
                                                               : "";
}

const JValue* option_value(const InstanceSpec& is, const char* name) {
  if (!is.config || !is.config->IsObject()) return nullptr;
  auto it = is.config->FindMember(name);
  return it == is.config->MemberEnd() || it->value.IsNull() ? nullptr : &it->value;
}

// Keys of AsyncAPI's maps are [A-Za-z0-9_-].
std::string id(std::string_view s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' ? c : '-';
  return out;
}

struct Url {
  std::string scheme, host, path;
};

// scheme://[user[:password]@]host[:port][/path]: the user part never leaves.
Url parse_url(const std::string& url) {
  Url u;
  size_t at = url.find("://");
  if (at == std::string::npos) return u;
  u.scheme = url.substr(0, at);
  std::string rest = url.substr(at + 3);
  size_t slash = rest.find('/');
  u.host = rest.substr(0, slash);
  u.path = slash == std::string::npos ? "/" : rest.substr(slash);
  if (size_t amp = u.host.rfind('@'); amp != std::string::npos) u.host = u.host.substr(amp + 1);
  if (size_t q = u.path.find('?'); q != std::string::npos) u.path.resize(q);
  return u;
}

class Writer {
 public:
  Writer() {
    doc_.SetObject();
    doc_.AddMember("asyncapi", "3.0.0", a());
    JValue info(rapidjson::kObjectType);
    info.AddMember("title", "edgeflow flows", a());
    info.AddMember("version", EDGEFLOW_VERSION, a());
    info.AddMember("description",
                   "The events the flows of an edgeflow daemon receive and send, written by `edgeflow asyncapi`.", a());
    doc_.AddMember("info", info, a());
    for (const char* k : {"servers", "channels", "operations"}) doc_.AddMember(JValue(k, a()), JValue(rapidjson::kObjectType), a());
    JValue components(rapidjson::kObjectType);
    components.AddMember("messages", JValue(rapidjson::kObjectType), a());
    doc_.AddMember("components", components, a());
  }

  void flow(const FlowSpec& f) {
    JValue in = source_schema(f), out = sink_schema(f);
    std::string in_id = id(f.name + "-in"), out_id = id(f.name + "-out");
    bool received = false, sent = false;
    const std::string& type = f.source.type;
    auto receive = [&](const std::string& server, const std::string& address, const std::string& what) {
      std::string channel = id(f.name + "-source" + (received ? "-" + address : ""));
      add_channel(channel, server, address, in_id, "What flow " + f.name + " " + what + ".");
      add_operation(id(f.name + "-receive-" + channel), "receive", channel, in_id,
                    "Flow " + f.name + " receives (" + type + " source).");
      received = true;
    };
    if (type == "kafka") {
      std::string server = kafka_server(f.source);
      if (auto* topics = option_value(f.source, "topics"); topics && topics->IsArray())
        for (auto& t : topics->GetArray())
          if (t.IsString()) receive(server, t.GetString(), "consumes from Kafka topic " + std::string(t.GetString()));
    } else if (type == "mqtt") {
      std::string server = mqtt_server(f.source);
      if (auto* topics = option_value(f.source, "topics"); topics && topics->IsArray())
        for (auto& t : topics->GetArray())
          if (t.IsString()) receive(server, t.GetString(), "subscribes to (MQTT topic filter " + std::string(t.GetString()) + ")");
    } else if (type == "http") {
      std::string listen = option(f.source, "listen");
      std::string server = add_server(option(f.source, "tls_cert").empty() ? "http" : "https", listen,
                                      "An HTTP listener of the daemon (webhooks).");
      receive(server, option(f.source, "path"), "accepts as webhook requests");
    }
    if (received) add_message(in_id, f.name + " in", in, "application/json");
    for (size_t i = 0; i < f.sinks.size(); ++i) {
      const InstanceSpec& s = f.sinks[i];
      std::string server, address, what;
      if (s.type == "kafka") {
        server = kafka_server(s);
        address = option(s, "topic");
        what = "Kafka topic";
      } else if (s.type == "mqtt") {
        server = mqtt_server(s);
        address = option(s, "topic");
        what = "MQTT topic";
      } else if (s.type == "http") {
        Url u = parse_url(option(s, "url"));
        server = add_server(u.scheme == "https" ? "https" : "http", u.host, "An HTTP endpoint flows deliver to.");
        address = u.path;
        what = option(s, "method") + " requests to";
      } else {
        continue;
      }
      std::string channel = id(f.name + "-" + f.sink_name(i));
      add_channel(channel, server, address, out_id, "What flow " + f.name + " sends to its sink " + f.sink_name(i) + ".");
      add_operation(id(f.name + "-send-" + f.sink_name(i)), "send", channel, out_id,
                    "Flow " + f.name + " sends (" + s.type + " sink " + f.sink_name(i) + ", " + what + " " + address + ").");
      sent = true;
    }
    if (sent) add_message(out_id, f.name + " out", out, envelope_last(f) ? "application/cloudevents+json" : "application/json");
  }

  std::string text(const std::set<std::string>& secrets) {
    rapidjson::StringBuffer b;
    rapidjson::PrettyWriter<rapidjson::StringBuffer> w(b);
    w.SetIndent(' ', 2);
    doc_.Accept(w);
    return scrub(std::string(b.GetString(), b.GetSize()), secrets) + "\n";
  }

 private:
  Alloc& a() { return doc_.GetAllocator(); }
  JValue s(const std::string& v) { return JValue(v.c_str(), rapidjson::SizeType(v.size()), a()); }
  JValue ref(const std::string& path) {
    JValue r(rapidjson::kObjectType);
    r.AddMember("$ref", s(path), a());
    return r;
  }

  std::string add_server(const std::string& protocol, const std::string& host, const std::string& description) {
    std::string key = id(protocol + "-" + host);
    JValue& servers = doc_["servers"];
    if (!servers.HasMember(key.c_str())) {
      JValue server(rapidjson::kObjectType);
      server.AddMember("host", s(host), a());
      server.AddMember("protocol", s(protocol), a());
      server.AddMember("description", s(description), a());
      servers.AddMember(s(key), server, a());
    }
    return key;
  }
  std::string kafka_server(const InstanceSpec& is) {
    std::string brokers = option(is, "brokers"), security = option(is, "security_protocol");
    std::string first = brokers.substr(0, brokers.find(','));
    bool tls = security == "ssl" || security == "sasl_ssl";
    return add_server(tls ? "kafka-secure" : "kafka", first, "Kafka cluster, bootstrap brokers " + brokers + ".");
  }
  std::string mqtt_server(const InstanceSpec& is) {
    Url u = parse_url(option(is, "uri"));
    return add_server(u.scheme == "mqtts" ? "secure-mqtt" : "mqtt", u.host, "MQTT broker.");
  }

  // A topic template's ${expression} parts become {parameters}.
  void add_channel(const std::string& key, const std::string& server, const std::string& address, const std::string& message,
                   const std::string& description) {
    JValue channel(rapidjson::kObjectType), params(rapidjson::kObjectType);
    std::string addr;
    int n = 0;
    for (size_t i = 0; i < address.size();) {
      size_t open = address.find("${", i);
      if (open == std::string::npos) {
        addr += address.substr(i);
        break;
      }
      size_t close = address.find('}', open);
      if (close == std::string::npos) {
        addr += address.substr(i);
        break;
      }
      addr += address.substr(i, open - i);
      std::string expr = address.substr(open + 2, close - open - 2);
      std::string name = id(expr);
      bool simple = !expr.empty() && expr.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") ==
                                         std::string::npos;
      if (!simple || params.HasMember(name.c_str())) name = "p" + std::to_string(++n);
      std::replace(name.begin(), name.end(), '-', '_');
      addr += "{" + name + "}";
      JValue p(rapidjson::kObjectType);
      p.AddMember("description", s("The value of the expression `" + expr + "` for each message."), a());
      params.AddMember(s(name), p, a());
      i = close + 1;
    }
    channel.AddMember("address", s(addr), a());
    channel.AddMember("description", s(description), a());
    JValue servers(rapidjson::kArrayType);
    servers.PushBack(ref("#/servers/" + server), a());
    channel.AddMember("servers", servers, a());
    JValue messages(rapidjson::kObjectType);
    messages.AddMember(s(message), ref("#/components/messages/" + message), a());
    channel.AddMember("messages", messages, a());
    if (params.MemberCount()) channel.AddMember("parameters", params, a());
    doc_["channels"].AddMember(s(key), channel, a());
  }

  void add_operation(const std::string& key, const char* action, const std::string& channel, const std::string& message,
                     const std::string& summary) {
    JValue op(rapidjson::kObjectType);
    op.AddMember("action", JValue(action, a()), a());
    op.AddMember("channel", ref("#/channels/" + channel), a());
    op.AddMember("summary", s(summary), a());
    JValue messages(rapidjson::kArrayType);
    messages.PushBack(ref("#/channels/" + channel + "/messages/" + message), a());
    op.AddMember("messages", messages, a());
    doc_["operations"].AddMember(s(key), op, a());
  }

  void add_message(const std::string& key, const std::string& name, JValue& schema, const char* content_type) {
    JValue m(rapidjson::kObjectType), payload(rapidjson::kObjectType);
    m.AddMember("name", s(id(name)), a());
    m.AddMember("contentType", JValue(content_type, a()), a());
    payload.AddMember("schemaFormat", "application/schema+json;version=draft-07", a());
    payload.AddMember("schema", schema, a());
    m.AddMember("payload", payload, a());
    doc_["components"]["messages"].AddMember(s(key), m, a());
  }

  // What arrives: what the first step validates, when it is a validate step.
  JValue source_schema(const FlowSpec& f) {
    JValue schema(rapidjson::kObjectType);
    if (!f.steps.empty() && f.steps[0].type == "validate") validate_schema(f.steps[0], schema);
    return schema;
  }

  // What leaves: the shape the steps fix, step by step ({} where it is not known).
  JValue sink_schema(const FlowSpec& f) {
    JValue shape(rapidjson::kObjectType);
    for (auto& step : f.steps) {
      if (step.type == "validate") {
        validate_schema(step, shape);
      } else if (step.type == "map") {
        const JValue* set = option_value(step, "set");
        bool fresh = option(step, "unmapped") == "drop";
        if (fresh) shape = object_schema();
        if (set && set->IsObject() && shape.HasMember("properties"))
          for (auto& m : set->GetObject()) add_property(shape, m.name.GetString(), m.value);
        if (fresh && set && set->IsObject()) {  // every field it sets is there
          JValue required(rapidjson::kArrayType);
          for (auto& m : shape["properties"].GetObject()) required.PushBack(JValue(m.name, a()), a());
          if (!required.Empty()) shape.AddMember("required", required, a());
        }
      } else if (step.type == "envelope" && option(step, "mode") != "unwrap") {
        JValue event = object_schema();
        for (const char* k : {"specversion", "id", "source", "type"}) {
          JValue t(rapidjson::kObjectType);
          t.AddMember("type", "string", a());
          event["properties"].AddMember(JValue(k, a()), t, a());
        }
        event["properties"].AddMember("data", shape, a());
        shape = event;
      }
    }
    return shape;
  }

  JValue object_schema() {
    JValue o(rapidjson::kObjectType);
    o.AddMember("type", "object", a());
    o.AddMember("properties", JValue(rapidjson::kObjectType), a());
    return o;
  }

  // `set: { customer.name: ... }` adds customer (an object) with name; a literal gives the type.
  void add_property(JValue& object, std::string path, const JValue& value) {
    JValue* at = &object;
    for (size_t dot; (dot = path.find('.')) != std::string::npos; path = path.substr(dot + 1)) {
      std::string part = path.substr(0, dot);
      JValue& props = (*at)["properties"];
      if (!props.HasMember(part.c_str())) props.AddMember(s(part), object_schema(), a());
      at = &props[part.c_str()];
      if (!at->HasMember("properties")) return;  // a field set whole before: its shape stays open
    }
    JValue t(rapidjson::kObjectType);
    if (value.IsBool()) t.AddMember("type", "boolean", a());
    else if (value.IsInt64() || value.IsUint64()) t.AddMember("type", "integer", a());
    else if (value.IsNumber()) t.AddMember("type", "number", a());
    else if (value.IsNull()) t.AddMember("type", "null", a());
    else if (value.IsObject()) {
      t = object_schema();
      for (auto& m : value.GetObject()) add_property(t, m.name.GetString(), m.value);
    } else if (value.IsArray()) t.AddMember("type", "array", a());
    JValue& props = (*at)["properties"];
    if (props.HasMember(path.c_str())) props.RemoveMember(path.c_str());
    props.AddMember(s(path), t, a());
  }

  // An inline schema, or one in schema_file when it can be read (at most 1 MiB).
  void validate_schema(const InstanceSpec& step, JValue& out) {
    if (const JValue* inline_schema = option_value(step, "schema"); inline_schema && inline_schema->IsObject()) {
      out.CopyFrom(*inline_schema, a());
    } else if (std::string file = option(step, "schema_file"); !file.empty()) {
      std::string text, error;
      host::Doc d;
      if (host::read_regular_file(file, 1 << 20, "", text, error)) d.Parse<rapidjson::kParseIterativeFlag>(text.c_str());
      if (d.IsObject()) out.CopyFrom(d, a());
    }
    if (out.IsObject() && out.HasMember("$schema")) out.RemoveMember("$schema");  // the format says the draft
  }

  bool envelope_last(const FlowSpec& f) const {
    for (auto it = f.steps.rbegin(); it != f.steps.rend(); ++it) {
      if (it->type == "envelope") return option(*it, "mode") != "unwrap";
      if (it->type == "map") return false;
    }
    return false;
  }

  host::Doc doc_;
};

}  // namespace

std::string asyncapi_document(const std::vector<FlowSpec>& flows) {
  Writer w;
  std::set<std::string> secrets;
  for (auto& f : flows) {
    w.flow(f);
    secrets.insert(f.secrets.begin(), f.secrets.end());
  }
  return w.text(secrets);
}

}  // namespace edgeflow
