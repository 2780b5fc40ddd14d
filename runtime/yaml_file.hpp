// Reads a flow file as hostile input: a regular file only (a FIFO or device never blocks the
// loader), size-capped, and checked event by event before yaml-cpp builds nodes from it, so an
// alias bomb, runaway nesting or a duplicate key is refused with its file:line:col instead of
// being expanded into memory or silently overwritten.
#pragma once

#include <edgeflow/host/config.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace edgeflow {

struct YamlLimits {
  uint64_t max_file_bytes = 16ull << 20;
  // Nodes that aliases stand for, summed over a file; a legitimate flow shares a few small blocks.
  uint64_t max_alias_nodes = 100000;
  int max_depth = 64;
  // yaml-cpp 0.7 can report empty documents without end on some malformed text.
  int max_documents = 1000;
};

// The documents of `file`, or an empty vector with the reasons in diag.
std::vector<YAML::Node> load_yaml_file(const std::string& file, const YamlLimits& limits, host::Diagnostics& diag);

// The same checks on text already in memory (`name` is what errors call it).
std::vector<YAML::Node> load_yaml_text(const std::string& name, const std::string& text, const YamlLimits& limits,
                                       host::Diagnostics& diag);

// Whether a file is a flow test (`*.test.yaml`, `*.test.yml`, see flow_test_file.hpp): flow
// loading and the file watch skip them.
bool is_test_file(const std::string& path);

}  // namespace edgeflow
