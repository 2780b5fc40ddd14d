#include "flow_config.hpp"

#include <algorithm>
#include <filesystem>
#include <map>

#include <rapidjson/writer.h>

namespace edgeflow {
namespace {

namespace fs = std::filesystem;

constexpr uint32_t kSpecSize = sizeof(ef_option_spec);

const ef_option_spec kFlowOptions[] = {
    {kSpecSize, "max_in_flight", EF_OPT_INT, EF_OPT_HAS_MIN, "10000", 1, 0, nullptr,
     "Messages emitted by the source and not yet acknowledged end to end; the source is paused "
     "at this bound.", "10000"},
    {kSpecSize, "max_in_flight_bytes", EF_OPT_SIZE, EF_OPT_HAS_MIN, "64MiB", 1, 0, nullptr,
     "Payload bytes in flight; the source is paused at this bound.", "64MiB"},
    {kSpecSize, "drain_timeout", EF_OPT_DURATION, 0, "30s", 0, 0, nullptr,
     "On shutdown, how long to wait for in-flight messages to be acknowledged; what is still "
     "open then is left unacknowledged at the source (redelivered after restart).", "30s"},
};
const ef_option_spec kRetryOptions[] = {
    {kSpecSize, "initial_backoff", EF_OPT_DURATION, EF_OPT_HAS_MIN, "100ms", 1, 0, nullptr,
     "First wait before a sink retries a message it could not deliver.", "100ms"},
    {kSpecSize, "max_backoff", EF_OPT_DURATION, EF_OPT_HAS_MIN, "30s", 1, 0, nullptr,
     "Cap of the exponential backoff (full jitter) between retries.", "30s"},
    {kSpecSize, "max_attempts", EF_OPT_INT, EF_OPT_HAS_MIN, "0", 0, 0, nullptr,
     "Attempts before a message goes to the dead letter; 0 retries until delivered, holding "
     "the source back.", "10"},
};
const ef_option_spec kSinkOptions[] = {
    {kSpecSize, "flush_interval", EF_OPT_DURATION, EF_OPT_HAS_MIN, "1s", 1, 0, nullptr,
     "How long a sink may hold what it was written before the runtime calls its flush(): a sink "
     "that batches across writes never holds its flow still. The runtime also flushes at once "
     "when the flow waits for room.", "200ms"},
    {kSpecSize, "buffer", EF_OPT_ANY, 0, nullptr, 0, 0, nullptr,
     "A durable buffer in front of the sink (not the dead letter): see `buffer`.",
     "{ type: disk, max_size: 1GiB }"},
};
const ef_option_spec kBufferOptions[] = {
    {kSpecSize, "type", EF_OPT_ENUM, EF_OPT_REQUIRED, nullptr, 0, 0, "disk",
     "Where the buffer lives: `disk`, a SQLite file under the state directory "
     "(buffer/FLOW/SINK.sqlite). A message is acknowledged to the source once it is on disk, and "
     "the sink is written from the buffer, in order, when it can take it.", "disk"},
    {kSpecSize, "max_size", EF_OPT_SIZE, EF_OPT_HAS_MIN, "1GiB", 1024, 0, nullptr,
     "The most message bytes the buffer holds.", "256MiB"},
    {kSpecSize, "when_full", EF_OPT_ENUM, 0, "block", 0, 0, "block|reject",
     "At max_size: `block` holds the source back until the sink drains some; `reject` sends what "
     "does not fit to the dead letter, with the reason.", "reject"},
};
const ef_option_spec kRestartOptions[] = {
    {kSpecSize, "initial_backoff", EF_OPT_DURATION, EF_OPT_HAS_MIN, "1s", 1, 0, nullptr,
     "First wait before a failed flow is started again.", "1s"},
    {kSpecSize, "max_backoff", EF_OPT_DURATION, EF_OPT_HAS_MIN, "1m", 1, 0, nullptr,
     "Cap of the exponential backoff (full jitter) between restarts of a failing flow.", "1m"},
};

ef_component section(const char* name, const char* doc, const ef_option_spec* opts, uint32_t n) {
  ef_component c{};
  c.struct_size = sizeof(ef_component);
  c.type = name;
  c.description = doc;
  c.options = opts;
  c.option_count = n;
  return c;
}

const std::vector<std::string> kTopKeys = {"flow",    "source",      "steps",         "sinks",
                                           "dead_letter", "retry",   "restart",       "max_in_flight",
                                           "max_in_flight_bytes", "drain_timeout", "description"};

// Names become file names (dead letters, positions): "." and ".." would step out of them.
bool valid_name(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  });
}

struct Parser {
  const PluginRegistry& plugins;
  host::Diagnostics& diag;
  std::string file;

  // Builds one plugin instance; false when it has errors (already reported).
  bool instance(const YAML::Node& node, uint32_t kind, const std::string& key, FlowSpec& flow,
                InstanceSpec& out) {
    out.key = key;
    out.where = host::where(file, node.Mark());
    if (!node.IsMap()) {
      diag.add(file, node.Mark(), key,
               std::string("expected a map with a `type:` key, for example: ") + key +
                   ": { type: " + (kind == EF_KIND_SOURCE ? "generate" : "file") + ", ... }");
      return false;
    }
    std::vector<std::string> known = plugins.types(kind);
    YAML::Node t = node["type"];
    if (!t || !t.IsScalar()) {
      diag.add(file, node.Mark(), key,
               std::string("missing `type:`; the ") + kind_name(kind) + " types available are: " +
                   host::list_names(known));
      return false;
    }
    out.type = t.Scalar();
    out.component = plugins.find(kind, out.type);
    if (!out.component) {
      std::string msg = "unknown " + std::string(kind_name(kind)) + " type '" + out.type + "'." +
                        host::suggest(out.type, known) + " Known " + kind_name(kind) +
                        " types: " + (known.empty() ? "(none loaded)" : host::list_names(known)) +
                        ".";
      if (!plugins.refusals().empty())
        msg += " Note: " + std::to_string(plugins.refusals().size()) +
               " plugin file(s) were refused at load; see the loader errors above.";
      diag.add(file, t.Mark(), key + ".type", msg);
      return false;
    }
    size_t before = diag.errors.size();
    out.config = std::make_shared<host::Doc>();
    host::ConfigBuilder b{file, diag, out.locations, &flow.secrets};
    if (kind != EF_KIND_SINK) {
      b.build(node, *out.component->component, key, {"type"}, *out.config);
      return diag.errors.size() == before;
    }
    // A sink's own runtime settings sit beside its plugin's options.
    b.build(node, *out.component->component, key, {"type", "flush_interval", "buffer"}, *out.config);
    sink_settings(node, file, key, diag, flow.secrets, out);
    if (out.buffer && key == "dead_letter")
      diag.add(file, node["buffer"].Mark(), key + ".buffer",
               "the dead letter takes no buffer: it is where a buffer's rejects go; remove `buffer:` here");
    return diag.errors.size() == before;
  }

  void settings(const YAML::Node& node, const ef_component& spec, const std::string& key,
                const std::set<std::string>& skip, FlowSpec& flow, host::Doc& out) {
    if (node && !node.IsMap()) {
      diag.add(file, node.Mark(), key, "expected a map of settings, for example: " + key + ": { " +
                                           spec.options[0].name + ": " + spec.options[0].example + " }");
    }
    host::Locations locs;
    host::ConfigBuilder b{file, diag, locs, &flow.secrets};
    b.build(node && node.IsMap() ? node : YAML::Node(YAML::NodeType::Map), spec, key, skip, out);
  }

  // A setting the checks let through, or `fallback` when they reported it (the flow then never
  // runs, but the value is read all the same).
  static int64_t int_or(const host::Doc& d, const char* k, int64_t fallback) {
    return d[k].IsInt64() ? d[k].GetInt64() : fallback;
  }
  static std::chrono::milliseconds ms(const host::Doc& d, const char* k) { return std::chrono::milliseconds(int_or(d, k, 0)); }

  void flow(const YAML::Node& root, std::vector<FlowSpec>& out,
            std::map<std::string, std::string>& names) {
    FlowSpec f;
    f.file = file;
    f.where = host::where(file, root.Mark());
    for (auto it = root.begin(); it != root.end(); ++it) {
      std::string k = it->first.as<std::string>();
      if (std::find(kTopKeys.begin(), kTopKeys.end(), k) == kTopKeys.end())
        diag.add(file, it->first.Mark(), k,
                 "unknown key '" + k + "' at the top of a flow." + host::suggest(k, kTopKeys) +
                     " Known keys: " + host::list_names(kTopKeys));
    }
    YAML::Node name = root["flow"];
    if (!name || !name.IsScalar() || !valid_name(name.Scalar())) {
      diag.add(file, name ? name.Mark() : root.Mark(), "flow",
               "every flow needs a name of letters, digits, '_', '-' or '.' (not '.' or '..'); add `flow: orders`");
    } else {
      f.name = name.Scalar();
      auto [it, fresh] = names.emplace(f.name, host::where(file, name.Mark()));
      if (!fresh)
        diag.add(file, name.Mark(), "flow",
                 "flow '" + f.name + "' is already defined at " + it->second + "; names must be unique");
    }

    if (YAML::Node src = root["source"]) instance(src, EF_KIND_SOURCE, "source", f, f.source);
    else diag.add(file, root.Mark(), "source", "missing `source:`; add `source: { type: generate }`");

    if (YAML::Node steps = root["steps"]) {
      if (!steps.IsSequence()) {
        diag.add(file, steps.Mark(), "steps", "expected a list of steps: `steps: [ { type: ... } ]`");
      } else {
        for (size_t i = 0; i < steps.size(); ++i) {
          InstanceSpec s;
          instance(steps[i], EF_KIND_TRANSFORMER, "steps[" + std::to_string(i) + "]", f, s);
          f.steps.push_back(std::move(s));
        }
      }
    }

    YAML::Node sinks = root["sinks"];
    if (!sinks || !sinks.IsMap() || sinks.size() == 0) {
      diag.add(file, sinks ? sinks.Mark() : root.Mark(), "sinks",
               "a flow needs at least one named sink: `sinks: { out: { type: stdout } }`");
    } else if (sinks.size() > 64) {
      diag.add(file, sinks.Mark(), "sinks", "at most 64 sinks per flow; split the flow");
    } else {
      for (auto it = sinks.begin(); it != sinks.end(); ++it) {
        std::string sname = it->first.as<std::string>();
        if (!valid_name(sname))
          diag.add(file, it->first.Mark(), "sinks." + sname,
                   "sink names use letters, digits, '_', '-' or '.' (not '.' or '..')");
        InstanceSpec s;
        instance(it->second, EF_KIND_SINK, "sinks." + sname, f, s);
        f.sinks.push_back(std::move(s));
      }
    }
    if (YAML::Node dl = root["dead_letter"]) instance(dl, EF_KIND_SINK, "dead_letter", f, f.dead_letter);

    // The flow's own settings sit beside the structural keys checked above.
    std::set<std::string> structural;
    for (auto it = root.begin(); it != root.end(); ++it) structural.insert(it->first.as<std::string>());
    for (uint32_t i = 0; i < flow_settings_component().option_count; ++i)
      structural.erase(flow_settings_component().options[i].name);
    host::Doc top;
    settings(root, flow_settings_component(), "", structural, f, top);
    if (top.IsObject() && top.HasMember("max_in_flight") && top["max_in_flight"].IsInt64()) {
      f.max_in_flight = top["max_in_flight"].GetInt64();
      f.max_in_flight_bytes = uint64_t(int_or(top, "max_in_flight_bytes", 0));
      f.drain_timeout = ms(top, "drain_timeout");
    }
    host::Doc retry;
    settings(root["retry"], retry_settings_component(), "retry", {}, f, retry);
    if (retry.IsObject() && retry["initial_backoff"].IsInt64() && retry["max_backoff"].IsInt64()) {
      f.retry.initial = ms(retry, "initial_backoff");
      f.retry.max = ms(retry, "max_backoff");
      f.retry.max_attempts = int_or(retry, "max_attempts", 0);
    }
    host::Doc restart;
    settings(root["restart"], restart_settings_component(), "restart", {}, f, restart);
    if (restart.IsObject() && restart["initial_backoff"].IsInt64() && restart["max_backoff"].IsInt64()) {
      f.restart_initial = ms(restart, "initial_backoff");
      f.restart_max = ms(restart, "max_backoff");
    }
    out.push_back(std::move(f));
  }
};

void collect(const std::string& path, std::vector<std::string>& files, host::Diagnostics& diag) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> found;
    for (auto& e : fs::directory_iterator(path, ec)) {
      auto ext = e.path().extension();
      // Flow tests live beside the flows they test (`edgeflow test`).
      if ((ext == ".yaml" || ext == ".yml") && !is_test_file(e.path().string()))
        found.push_back(e.path().string());
    }
    if (ec) diag.errors.push_back(path + ": cannot read directory: " + ec.message());
    if (found.empty() && !ec)
      diag.errors.push_back(path + ": no flow files (*.yaml, *.yml) in this directory");
    std::sort(found.begin(), found.end());
    files.insert(files.end(), found.begin(), found.end());
  } else if (fs::exists(path, ec)) {
    files.push_back(path);
  } else {
    diag.errors.push_back(path + ": no such file or directory");
  }
}

void redact(host::JValue& config, const ef_component& c) {
  for (uint32_t i = 0; i < c.option_count; ++i) {
    if (!(c.options[i].flags & EF_OPT_SECRET)) continue;
    auto it = config.FindMember(c.options[i].name);
    if (it != config.MemberEnd() && !it->value.IsNull()) it->value.SetString("<redacted>");
  }
}

std::string instance_line(const InstanceSpec& s, bool redacted = true) {
  if (!s.component) return "";
  host::Doc copy;
  copy.CopyFrom(*s.config, copy.GetAllocator());
  if (redacted) redact(copy, *s.component->component);
  rapidjson::StringBuffer buf;
  rapidjson::Writer<rapidjson::StringBuffer> w(buf);
  copy.Accept(w);
  std::string line = s.key + ": " + s.type + " " + buf.GetString();
  if (s.buffer)
    line += " buffer: disk, max_size " + std::to_string(s.buffer->max_bytes) + " bytes, when_full " +
            (s.buffer->reject_when_full ? "reject" : "block");
  if (!redacted) line += " flush_interval " + std::to_string(s.flush_interval.count());
  return line + "\n";
}

}  // namespace

const ef_component& flow_settings_component() {
  static const ef_component c = section("flow", "Settings of a flow.", kFlowOptions, 3);
  return c;
}
const ef_component& retry_settings_component() {
  static const ef_component c = section("retry", "How sinks retry undelivered messages.", kRetryOptions, 3);
  return c;
}
const ef_component& sink_settings_component() {
  static const ef_component c = section("sink", "The runtime's settings of each sink.", kSinkOptions, 2);
  return c;
}
const ef_component& buffer_settings_component() {
  static const ef_component c = section("buffer", "A sink's durable buffer.", kBufferOptions, 3);
  return c;
}
void sink_settings(const YAML::Node& node, const std::string& file, const std::string& key, host::Diagnostics& diag,
                   std::set<std::string>& secrets, InstanceSpec& out) {
  std::set<std::string> plugin_keys;
  for (auto it = node.begin(); it != node.end(); ++it)
    if (it->first.IsScalar()) plugin_keys.insert(it->first.Scalar());
  plugin_keys.erase("flush_interval");
  plugin_keys.erase("buffer");  // read as any YAML here, then checked by its own table
  host::Doc sink;
  host::Locations locs;
  host::ConfigBuilder b{file, diag, locs, &secrets};
  b.build(node, sink_settings_component(), key, plugin_keys, sink);
  if (sink.IsObject() && sink.HasMember("flush_interval") && sink["flush_interval"].IsInt64())
    out.flush_interval = std::chrono::milliseconds(sink["flush_interval"].GetInt64());
  YAML::Node buf = node["buffer"];
  if (!buf) return;
  if (!buf.IsMap()) {
    diag.add(file, buf.Mark(), key + ".buffer", "expected a map, for example: buffer: { type: disk, max_size: 1GiB }");
    return;
  }
  size_t before = diag.errors.size();
  host::Doc spec;
  b.build(buf, buffer_settings_component(), key + ".buffer", {}, spec);
  if (diag.errors.size() != before || !spec.IsObject()) return;
  BufferSpec bs;
  if (spec["max_size"].IsInt64()) bs.max_bytes = uint64_t(spec["max_size"].GetInt64());
  bs.reject_when_full = spec["when_full"].IsString() && std::string_view(spec["when_full"].GetString()) == "reject";
  out.buffer = bs;
}

const ef_component& restart_settings_component() {
  static const ef_component c = section("restart", "How a failed flow is restarted.", kRestartOptions, 2);
  return c;
}

namespace {

void parse_docs(const std::string& file, const std::vector<YAML::Node>& docs, const PluginRegistry& plugins,
                host::Diagnostics& diag, std::vector<FlowSpec>& flows, std::map<std::string, std::string>& names) {
  Parser p{plugins, diag, file};
  for (auto& d : docs) {
    if (d.IsNull()) continue;
    if (!d.IsMap()) {
      diag.add(file, d.Mark(), "", "a flow is a map with `flow`, `source`, `steps` and `sinks`; see examples/");
      continue;
    }
    // The guard lets through only maps with text keys; yaml-cpp's own conversions may still
    // throw on what it builds, and that must be an error, never a crash.
    try {
      p.flow(d, flows, names);
    } catch (const YAML::Exception& e) {
      diag.add(file, e.mark, "", "cannot read this flow: " + e.msg);
    }
  }
}

// A secret may also appear in another option's error (the same ${env:...} given to a number),
// reported before the secret option was read: scrub once every secret is known.
void scrub_errors(const std::vector<FlowSpec>& flows, host::Diagnostics& diag, size_t first_error) {
  std::set<std::string> secrets;
  for (auto& f : flows) secrets.insert(f.secrets.begin(), f.secrets.end());
  for (size_t i = first_error; i < diag.errors.size(); ++i) diag.errors[i] = scrub(diag.errors[i], secrets);
}

}  // namespace

std::vector<FlowSpec> load_flows(const std::vector<std::string>& paths, const PluginRegistry& plugins,
                                 const YamlLimits& limits, host::Diagnostics& diag) {
  size_t first_error = diag.errors.size();
  std::vector<std::string> files;
  for (auto& p : paths) collect(p, files, diag);
  std::vector<FlowSpec> flows;
  std::map<std::string, std::string> names;
  for (auto& file : files) parse_docs(file, load_yaml_file(file, limits, diag), plugins, diag, flows, names);
  scrub_errors(flows, diag, first_error);
  if (flows.empty() && diag.ok()) diag.errors.push_back("no flows found in the given paths");
  return flows;
}

std::vector<FlowSpec> load_flow_text(const std::string& name, const std::string& text, const PluginRegistry& plugins,
                                     const YamlLimits& limits, host::Diagnostics& diag) {
  size_t first_error = diag.errors.size();
  std::vector<FlowSpec> flows;
  std::map<std::string, std::string> names;
  parse_docs(name, load_yaml_text(name, text, limits, diag), plugins, diag, flows, names);
  scrub_errors(flows, diag, first_error);
  return flows;
}

std::string flow_fingerprint(const FlowSpec& f) {
  std::string s = "flow: " + f.name + "\n";
  for (const InstanceSpec* i : f.instances()) s += instance_line(*i, false);
  s += std::to_string(f.max_in_flight) + " " + std::to_string(f.max_in_flight_bytes) + " " +
       std::to_string(f.drain_timeout.count()) + " " + std::to_string(f.retry.initial.count()) + " " +
       std::to_string(f.retry.max.count()) + " " + std::to_string(f.retry.max_attempts) + " " +
       std::to_string(f.restart_initial.count()) + " " + std::to_string(f.restart_max.count()) + "\n";
  return s;
}

std::string describe_flow(const FlowSpec& f) {
  std::string s = "flow: " + f.name + "  # " + f.where + "\n";
  s += instance_line(f.source);
  for (auto& st : f.steps) s += instance_line(st);
  for (auto& sk : f.sinks) s += instance_line(sk);
  s += f.dead_letter.component ? instance_line(f.dead_letter)
                               : "dead_letter: dlq_store <state dir>/dead_letters.sqlite\n";
  s += "max_in_flight: " + std::to_string(f.max_in_flight) +
       ", max_in_flight_bytes: " + std::to_string(f.max_in_flight_bytes) +
       ", drain_timeout: " + std::to_string(f.drain_timeout.count()) + "ms\n";
  s += "retry: initial " + std::to_string(f.retry.initial.count()) + "ms, max " +
       std::to_string(f.retry.max.count()) + "ms, attempts " +
       (f.retry.max_attempts ? std::to_string(f.retry.max_attempts) : std::string("unlimited")) + "\n";
  return s;
}

std::string scrub(std::string text, const std::set<std::string>& secrets) {
  for (auto& sec : secrets) {
    if (sec.size() < 3) continue;  // too short to tell apart from ordinary text
    for (size_t at = text.find(sec); at != std::string::npos; at = text.find(sec, at))
      text.replace(at, sec.size(), "<redacted>");
  }
  return text;
}

}  // namespace edgeflow
