// The admin HTTP API (on net/http_server.hpp): /health, /ready, /flows, /flows/<name>, /metrics (Prometheus text
// format) and /flows/<name>/tap (Server-Sent Events). Loopback by default; anywhere else only
// with a token, which every endpoint but /health then asks for.
#pragma once

#include "engine.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

namespace edgeflow {

struct AdminOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 9464;  // 0: any free port
  std::string token;     // empty: none, allowed on a loopback address only
};

// "[host:]port" (or "off": nullopt). Throws std::invalid_argument saying what is wrong.
std::optional<AdminOptions> parse_admin_address(const std::string& text);

// The Prometheus text exposition of everything the runtime counts.
std::string prometheus_text(const Runtime& rt);
// JSON documents of /flows and /flows/<name>.
std::string flows_json(const Runtime& rt);
std::string flow_json(const Flow& f);

class AdminServer {
 public:
  // Listens at once; throws std::runtime_error naming the address and what went wrong (a port in
  // use, a non-loopback address without a token).
  AdminServer(Runtime& rt, AdminOptions options);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  uint16_t port() const;
  // Ends open taps and stops listening; waits for the request threads.
  void stop();

  struct Impl;  // admin.cpp's request handlers see it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace edgeflow
