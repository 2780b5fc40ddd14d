// `edgeflow docs`: the component reference (docs/reference/), written from the option tables the
// plugins and the runtime declare, so it cannot drift from what the config checker accepts.
#pragma once

#include "loader.hpp"

#include <map>
#include <string>

namespace edgeflow {

// File name → Markdown: README.md (the index), flow.md (the runtime's own keys), and sources.md,
// transformers.md and sinks.md (every component the registry has, by type).
std::map<std::string, std::string> reference_docs(const PluginRegistry& plugins);

}  // namespace edgeflow
