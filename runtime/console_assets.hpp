// The web console's files (runtime/console), compiled into the daemon by console/embed.cmake:
// it works at a site with no network, and no CDN is ever asked for anything.
#pragma once

#include <string_view>

namespace edgeflow {

struct ConsoleAsset {
  std::string_view name, content_type, body;
};

// index.html, app.js or app.css; null for anything else.
const ConsoleAsset* console_asset(std::string_view name);

}  // namespace edgeflow
