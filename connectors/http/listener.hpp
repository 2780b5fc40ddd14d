// One HTTP server per address:port, shared by every http source of the process that listens
// there: the plugin is loaded once per process, so a static registry sees every flow. Each source
// registers a path (a Route); requests go to the route of their path, 404 for a path never
// served. A path whose flow stopped answers 503 with Retry-After for as long as the listener
// lives (a webhook sender drops an event on 404, and retries on 503). The first source on an
// address:port starts the server, the last one stops it.
#pragma once

#include "common.hpp"

#include <http_server.hpp>

#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <string>

namespace edgeflow::http {

using net::Request;
using net::Response;

inline Response answer(int status, std::string body, int retry_after_s = 0) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.retry_after_s = retry_after_s;
  return r;
}

// A path served by one source.
class Route {
 public:
  virtual ~Route() = default;
  // Before the body is read: an answer that needs no body, or nullopt and the body's limit.
  virtual std::optional<Response> head(const Request& req, uint64_t& max_body) = 0;
  virtual void handle(Request req, std::shared_ptr<net::Reply> reply) = 0;
};

struct ListenerSettings {
  std::string listen;  // address:port
  std::string tls_cert, tls_key;
  int threads = 4;
  size_t max_connections = 1024;
  size_t max_connections_per_client = 256;
  std::chrono::milliseconds head_timeout{10000}, body_timeout{10000}, idle_timeout{15000};
  bool operator==(const ListenerSettings&) const = default;
};

class Listener : public net::Handler {
 public:
  // Registers `route` at `path`, starting the server if nobody listens there yet. Throws when the
  // path is taken or the address:port is served with other settings.
  static void attach(const ListenerSettings& s, const std::string& path, const std::string& owner,
                     std::shared_ptr<Route> route) {
    std::lock_guard lock(registry_mutex());
    auto& reg = registry();
    auto it = reg.find(s.listen);
    if (it == reg.end()) {
      auto l = std::make_shared<Listener>();
      l->routes_[path] = {owner, std::move(route)};
      try {
        l->start(s);
      } catch (const std::exception& e) {
        throw Error("listen: cannot serve HTTP on " + s.listen + ": " + e.what());
      }
      reg[s.listen] = std::move(l);
      return;
    }
    Listener& l = *it->second;
    if (!(l.settings_ == s))
      throw Error("listen: " + s.listen + " is already served by another http source with other tls_cert, tls_key, " +
                  "threads, connection limits or timeouts; give every source on one address:port the same values");
    std::unique_lock routes_lock(l.routes_mutex_);
    if (auto r = l.routes_.find(path); r != l.routes_.end())
      throw Error("path: " + path + " on " + s.listen + " is already served by " + r->second.owner +
                  "; give each flow on one listener its own path");
    l.stopped_.erase(path);
    l.routes_[path] = {owner, std::move(route)};
  }

  // Unregisters the path; the last route stops the server (and waits for its threads).
  static void detach(const std::string& listen, const std::string& path) {
    std::lock_guard lock(registry_mutex());
    auto& reg = registry();
    auto it = reg.find(listen);
    if (it == reg.end()) return;
    {
      std::unique_lock routes_lock(it->second->routes_mutex_);
      it->second->routes_.erase(path);
      it->second->stopped_.insert(path);
      if (!it->second->routes_.empty()) return;
    }
    // Under the registry lock: a source starting meanwhile on this address:port binds only
    // after the old socket is closed.
    it->second->server_->stop();
    reg.erase(it);
  }

  ~Listener() override {
    if (server_) server_->stop();
  }

  std::optional<Response> head(const Request& req, uint64_t& max_body) override {
    if (auto route = find(req.path)) return route->head(req, max_body);
    return gone(req.path);
  }

  void handle(Request req, std::shared_ptr<net::Reply> reply) override {
    auto route = find(req.path);
    if (!route) return reply->send(*gone(req.path));
    route->handle(std::move(req), std::move(reply));
  }

 private:
  struct Entry {
    std::string owner;
    std::shared_ptr<Route> route;
  };

  void start(const ListenerSettings& s) {
    settings_ = s;
    net::ServerSettings ns;
    ns.listen = s.listen;
    ns.tls_cert = s.tls_cert;
    ns.tls_key = s.tls_key;
    ns.threads = s.threads;
    ns.max_connections = s.max_connections;
    ns.max_connections_per_client = s.max_connections_per_client;
    ns.head_timeout = s.head_timeout;
    ns.body_timeout = s.body_timeout;
    ns.idle_timeout = s.idle_timeout;
    server_ = std::make_unique<net::HttpServer>(ns, *this);
  }

  std::shared_ptr<Route> find(const std::string& path) {
    std::shared_lock lock(routes_mutex_);
    auto it = routes_.find(path);
    return it == routes_.end() ? nullptr : it->second.route;
  }

  std::optional<Response> gone(const std::string& path) {
    std::shared_lock lock(routes_mutex_);
    if (stopped_.count(path))
      return answer(503, error_body("the flow serving " + path + " is stopped; send again later"), 5);
    return answer(404, error_body("no flow listens at " + path));
  }

  static std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, std::shared_ptr<Listener>>& registry() {
    static std::map<std::string, std::shared_ptr<Listener>> r;
    return r;
  }

  ListenerSettings settings_;
  std::shared_mutex routes_mutex_;
  std::map<std::string, Entry> routes_;
  std::set<std::string> stopped_;  // paths once served here whose flow stopped
  std::unique_ptr<net::HttpServer> server_;
};

}  // namespace edgeflow::http
