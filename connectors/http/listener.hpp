// One Poco HTTPServer per address:port, shared by every http source of the process that listens
// there: the plugin is loaded once per process, so a static registry sees every flow. Each source
// registers a path (a Route); requests go to the route of their path, 404 for any other. The
// first source on an address:port starts the server, the last one stops it.
#pragma once

#include "common.hpp"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/ThreadPool.h>

#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>

namespace edgeflow::http {

using Poco::Net::HTTPResponse;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

// Answers a request with a JSON body (and Retry-After when given).
inline void respond(HTTPServerResponse& resp, int status, const std::string& body, int retry_after_s = 0) {
  resp.setStatus(HTTPResponse::HTTPStatus(status));
  if (retry_after_s > 0) resp.set("Retry-After", std::to_string(retry_after_s));
  resp.setContentType("application/json");
  resp.setContentLength(std::streamsize(body.size()));
  resp.send().write(body.data(), std::streamsize(body.size()));
}

// A path served by one source.
class Route {
 public:
  virtual ~Route() = default;
  virtual void handle(HTTPServerRequest& req, HTTPServerResponse& resp) = 0;
};

struct ListenerSettings {
  std::string listen;  // address:port
  std::string tls_cert, tls_key;
  int threads = 128;
  bool operator==(const ListenerSettings&) const = default;
};

class Listener {
 public:
  // Registers `route` at `path`, starting the server if nobody listens there yet. Throws when the
  // path is taken or the address:port is served with other settings.
  static void attach(const ListenerSettings& s, const std::string& path, const std::string& owner,
                     std::shared_ptr<Route> route) {
    std::lock_guard lock(registry_mutex());
    auto& reg = registry();
    auto it = reg.find(s.listen);
    if (it == reg.end()) {
      std::shared_ptr<Listener> l;
      try {
        l = std::make_shared<Listener>(s);
      } catch (const Poco::Exception& e) {
        throw Error("listen: cannot serve HTTP on " + s.listen + ": " + e.displayText());
      }
      l->routes_[path] = {owner, std::move(route)};
      reg[s.listen] = std::move(l);
      return;
    }
    Listener& l = *it->second;
    if (!(l.settings_ == s))
      throw Error("listen: " + s.listen + " is already served by another http source with other tls_cert, tls_key or " +
                  "threads; give every source on one address:port the same values");
    std::unique_lock routes_lock(l.routes_mutex_);
    if (auto r = l.routes_.find(path); r != l.routes_.end())
      throw Error("path: " + path + " on " + s.listen + " is already served by " + r->second.owner +
                  "; give each flow on one listener its own path");
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
      if (!it->second->routes_.empty()) return;
    }
    // Under the registry lock: a source starting meanwhile on this address:port binds only
    // after the old socket is closed.
    it->second->shut_down();
    reg.erase(it);
  }

  explicit Listener(const ListenerSettings& s) : settings_(s), pool_(2, s.threads + 1, 60) {
    Poco::Net::SocketAddress addr(s.listen);
    auto params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(s.threads);
    params->setMaxQueued(1024);
    params->setKeepAlive(true);
    params->setKeepAliveTimeout(Poco::Timespan(15, 0));
    params->setMaxKeepAliveRequests(0);  // unlimited
    params->setServerName("edgeflow");
    if (!s.tls_cert.empty()) {
      Poco::Net::Context::Ptr ctx = new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, s.tls_key, s.tls_cert, "",
                                                           Poco::Net::Context::VERIFY_NONE);
      server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), pool_,
                                                        Poco::Net::SecureServerSocket(addr, 256, ctx), params);
    } else {
      server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), pool_, Poco::Net::ServerSocket(addr, 256), params);
    }
    server_->start();
  }
  ~Listener() { shut_down(); }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

 private:
  struct Entry {
    std::string owner;
    std::shared_ptr<Route> route;
  };

  class Handler : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handler(Listener* l) : l_(l) {}
    void handleRequest(HTTPServerRequest& req, HTTPServerResponse& resp) override { l_->dispatch(req, resp); }

   private:
    Listener* l_;
  };
  class Factory : public Poco::Net::HTTPRequestHandlerFactory {
   public:
    explicit Factory(Listener* l) : l_(l) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override { return new Handler(l_); }

   private:
    Listener* l_;
  };

  static std::mutex& registry_mutex() {
    static std::mutex m;
    return m;
  }
  static std::map<std::string, std::shared_ptr<Listener>>& registry() {
    static std::map<std::string, std::shared_ptr<Listener>> r;
    return r;
  }

  void dispatch(HTTPServerRequest& req, HTTPServerResponse& resp) {
    const std::string& uri = req.getURI();
    std::string path = uri.substr(0, uri.find('?'));
    std::shared_ptr<Route> route;
    {
      std::shared_lock lock(routes_mutex_);
      if (auto it = routes_.find(path); it != routes_.end()) route = it->second.route;
    }
    if (!route) {
      resp.setKeepAlive(false);  // the body was not read
      respond(resp, 404, error_body("no flow listens at " + path));
      return;
    }
    route->handle(req, resp);
  }

  // Aborts open connections and waits until no handler thread runs any more, so neither this
  // object nor a route is used after it returns.
  void shut_down() {
    if (!server_) return;
    server_->stopAll(true);
    pool_.joinAll();
    server_.reset();
  }

  ListenerSettings settings_;
  Poco::ThreadPool pool_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  std::shared_mutex routes_mutex_;
  std::map<std::string, Entry> routes_;
};

}  // namespace edgeflow::http
