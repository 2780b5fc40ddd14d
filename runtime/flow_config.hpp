// Flow files: YAML → checked FlowSpecs. Every problem is collected (not just the first) with
// file:line:col, the key path and the fix, before anything starts.
#pragma once

#include "loader.hpp"
#include "yaml_file.hpp"

#include <edgeflow/host/config.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace edgeflow {

// A sink's durable buffer (`buffer:`): what it accepts is acknowledged to the source once on
// disk, and delivered from there.
struct BufferSpec {
  uint64_t max_bytes = 1ull << 30;
  bool reject_when_full = false;  // else block: the source waits for room
};

struct InstanceSpec {
  std::string key;    // "source", "steps[0]", "sinks.out", "dead_letter"
  std::string type;
  std::string where;  // file:line:col of the instance's map
  const ComponentRef* component = nullptr;
  std::shared_ptr<host::Doc> config;  // every declared option, defaults filled in
  host::Locations locations;          // key paths relative to the instance
  std::chrono::milliseconds flush_interval{1000};  // sinks: the longest they hold what they were written
  std::optional<BufferSpec> buffer;                // sinks.*: a durable buffer in front of it
};

struct RetryPolicy {
  std::chrono::milliseconds initial{100};
  std::chrono::milliseconds max{30000};
  int64_t max_attempts = 0;  // 0: retry until delivered (backpressure holds the source)
};

struct FlowSpec {
  std::string name;
  std::string file;
  std::string where;
  InstanceSpec source;
  std::vector<InstanceSpec> steps;
  std::vector<InstanceSpec> sinks;  // in file order; the name is key without "sinks."
  InstanceSpec dead_letter;         // type empty: the runtime's local dead-letter file
  int64_t max_in_flight = 10000;
  uint64_t max_in_flight_bytes = 64ull << 20;
  std::chrono::milliseconds drain_timeout{30000};
  RetryPolicy retry;
  std::chrono::milliseconds restart_initial{1000};
  std::chrono::milliseconds restart_max{60000};
  std::set<std::string> secrets;  // secret option values, scrubbed from anything printed

  std::string sink_name(size_t i) const { return sinks[i].key.substr(6); }
  // Every instance in pipeline order: source, steps, sinks, dead letter.
  std::vector<const InstanceSpec*> instances() const {
    std::vector<const InstanceSpec*> all{&source};
    for (auto& i : steps) all.push_back(&i);
    for (auto& i : sinks) all.push_back(&i);
    all.push_back(&dead_letter);
    return all;
  }
};

// Expands the given files and directories (*.yaml, *.yml, sorted) into flow specs.
std::vector<FlowSpec> load_flows(const std::vector<std::string>& paths, const PluginRegistry& plugins,
                                 const YamlLimits& limits, host::Diagnostics& diag);
// The flows of one file's text (`name` is what errors call it): what load_flows does per file.
std::vector<FlowSpec> load_flow_text(const std::string& name, const std::string& text, const PluginRegistry& plugins,
                                     const YamlLimits& limits, host::Diagnostics& diag);

// The option tables of the runtime's own flow keys, for docs and inspect.
const ef_component& flow_settings_component();
const ef_component& retry_settings_component();
const ef_component& sink_settings_component();
const ef_component& buffer_settings_component();
// The runtime's own keys of a sink's map (flush_interval, buffer), checked beside its plugin's
// options, which it skips; problems go to diag.
void sink_settings(const YAML::Node& node, const std::string& file, const std::string& key, host::Diagnostics& diag,
                   std::set<std::string>& secrets, InstanceSpec& out);
const ef_component& restart_settings_component();

// The effective config of a flow as YAML-ish text, the values of secret options replaced by
// "<redacted>" (and nothing else: a value that merely equals a secret is shown as it is).
std::string describe_flow(const FlowSpec& flow);
// Everything that defines a flow, secrets included and file positions left out: two reads of
// the same definition give the same text (what a reload compares).
std::string flow_fingerprint(const FlowSpec& flow);

// Replaces every secret value in text by "<redacted>".
std::string scrub(std::string text, const std::set<std::string>& secrets);

}  // namespace edgeflow
