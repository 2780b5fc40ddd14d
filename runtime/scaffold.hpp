// `edgeflow plugin new`: writes an out-of-tree plugin project that builds and passes its tests
// against the installed SDK at once.
#pragma once

#include <string>

namespace edgeflow {

struct ScaffoldResult {
  bool ok = false;
  std::string message;  // what was written and what to do next, or why nothing was
};

// name: the component type ([a-z][a-z0-9_]*, at most 64 bytes); kind: source, transformer or
// sink; dir: the project directory to create (empty: ./<name>), which must not hold anything.
ScaffoldResult scaffold_plugin(const std::string& name, const std::string& kind, const std::string& dir);

}  // namespace edgeflow
