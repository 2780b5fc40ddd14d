// Flow test files (`*.test.yaml` beside the flows): input messages and what the flow's sinks and
// dead letter must receive. Read as hostile input like flow files: every problem is reported
// with file:line:col and the key, before anything runs. `edgeflow test` runs them (flow_test.hpp).
#pragma once

#include "yaml_file.hpp"

#include <edgeflow/host/config.hpp>
#include <edgeflow/sdk/expr.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace edgeflow::flowtest {

using Pairs = std::vector<std::pair<std::string, std::string>>;

struct Input {
  std::string where;
  std::string payload, key, content_type;
  Pairs headers, meta;
  int64_t timestamp_ms = 0;
};

// A condition on one message; its text is shown when it fails.
struct Condition {
  std::string text;
  sdk::expr::Expr expr;
};

// What one message at a sink (or one dead letter) must be. Only what is given is checked.
struct Expected {
  std::string where;
  std::optional<std::string> payload_json;  // a mapping or list: compared as JSON, order of members aside
  std::optional<std::string> payload_text;  // a scalar: the payload's exact text
  std::optional<std::string> key, content_type;
  Pairs headers, meta;  // each listed one must be there with this value
  std::vector<Condition> when;
  // Dead letters only.
  std::optional<std::string> stage;
  std::optional<std::string> reason;  // a part of the reason
};

struct Case {
  std::string name, where;
  std::vector<Input> input;
  // Every sink of the flow not named here must receive nothing; so must the dead letter unless
  // dead_letter lists what it gets.
  std::map<std::string, std::vector<Expected>> sinks;
  std::map<std::string, std::string> sink_where;
  std::vector<Expected> dead_letter;
  std::chrono::milliseconds timeout{10000};
};

struct File {
  std::string path;
  std::string flow_file;  // resolved against the test file's directory
  std::string flow_name;  // empty: the file's only flow
  std::string name_where; // file:line:col of `name:` (or of the file's top)
  Pairs env;              // set before the flow file is read (its ${env:...})
  std::vector<Case> cases;
};

// Bounds on what a test file may ask for.
inline constexpr size_t kMaxInputs = 10000;
inline constexpr size_t kMaxCases = 1000;
inline constexpr uint64_t kMaxExpandedBytes = 256ull << 20;

// Parses a test file's text (`name` is what errors call it, and where the flow file is found
// from); problems go to diag.
File parse_test_text(const std::string& name, const std::string& text, const YamlLimits& limits,
                     host::Diagnostics& diag);
File parse_test_file(const std::string& path, const YamlLimits& limits, host::Diagnostics& diag);

// A CDC event as the postgres_cdc source emits it, from a fixture (`cdc:` in an input): the
// payload, and the message key (the row key's JSON text).
bool cdc_fixture(const YAML::Node& n, const std::string& file, const std::string& key, host::Diagnostics& diag,
                 Input& out);

}  // namespace edgeflow::flowtest
