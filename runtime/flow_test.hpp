// `edgeflow test`: runs flow test files. Each test runs the flow's own steps for real, in the
// engine, with its source replaced by the test's input messages and its sinks and dead letter by
// captures; then what each received is compared with what the test expects.
#pragma once

#include "flow_test_file.hpp"
#include "loader.hpp"

#include <functional>
#include <string>
#include <vector>

namespace edgeflow::flowtest {

struct CaseResult {
  std::string file, name;
  bool passed = false;
  bool error = false;     // the test could not run (its file or flow is invalid)
  std::string failure;    // what differs, or why it could not run
  double seconds = 0;
};

// The test files of the paths: `*.test.yaml` files, directories (searched recursively), or flow
// files (their `NAME.test.yaml` beside them). Problems go to diag.
std::vector<std::string> find_test_files(const std::vector<std::string>& paths, host::Diagnostics& diag);

// Runs every test of the files, printing each outcome (and the differences) as it is known.
std::vector<CaseResult> run_test_files(const std::vector<std::string>& files, const PluginRegistry& plugins,
                                       const YamlLimits& limits, const std::function<void(const std::string&)>& print);

// The results as JUnit XML, for CI.
std::string junit_xml(const std::vector<CaseResult>& results);

}  // namespace edgeflow::flowtest
