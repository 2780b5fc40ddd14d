// The command line's client of a running daemon's admin API (`dlq replay`, `reload`, `cdc snapshot`).
#pragma once

#include <string>

namespace edgeflow {

struct AdminReply {
  int status = 0;  // 0: no answer (error says why)
  std::string body;
  std::string error;
};

// One request to the admin API at `admin` ([host:]port); actions (POST) go as JSON requests.
AdminReply admin_request(const std::string& admin, const std::string& token, const std::string& method,
                         const std::string& target, int timeout_s, const std::string& body = "");

}  // namespace edgeflow
