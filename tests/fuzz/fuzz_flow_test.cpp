// Flow test files (`edgeflow test`): an operator's bytes → YAML guard → yaml-cpp → inputs, CDC
// fixtures, expectations and their compiled conditions. Anything may be refused, but only with
// diagnostics that name the file: no crash, no unbounded expansion.
#include "flow_test_file.hpp"

#include <cstdint>
#include <cstdlib>

using namespace edgeflow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  host::Diagnostics diag;
  YamlLimits limits;
  limits.max_file_bytes = 1 << 20;
  auto file = flowtest::parse_test_text("fuzz.test.yaml", std::string(reinterpret_cast<const char*>(data), size), limits, diag);
  for (auto& e : diag.errors)
    if (e.rfind("fuzz.test.yaml", 0) != 0) std::abort();
  if (diag.ok() && file.cases.empty()) std::abort();  // accepted means something to run
  return 0;
}
