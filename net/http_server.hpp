// The HTTP/1.1 server the webhook source and the admin API share. One epoll thread reads and
// writes every connection, so an open connection costs a socket and a few KiB, never a thread:
// a thousand slow clients do not delay anyone else (docs/architecture.md, "The HTTP server").
// Requests are framed strictly (http_parser.hpp) under deadlines: the whole head within
// head_timeout, no pause longer than body_timeout in a body or write_timeout in an answer.
// Connections are capped per listener and per client address. A complete request goes to a small
// pool of handler threads; the handler answers through its Reply at once or later, from any
// thread (the webhook answers when the flow has acknowledged the event).
#pragma once

#include "http_parser.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace edgeflow::net {

struct ServerSettings {
  std::string listen;  // "host:port"; port 0 picks a free one
  std::string tls_cert, tls_key;  // both set: HTTPS
  int threads = 4;                // handler threads
  size_t max_connections = 1024;
  size_t max_connections_per_client = 256;
  std::chrono::milliseconds head_timeout{10000};
  std::chrono::milliseconds body_timeout{10000};
  std::chrono::milliseconds idle_timeout{15000};  // a keep-alive connection between requests
  std::chrono::milliseconds write_timeout{10000};
  ParseLimits limits;
};

// Every address `host` resolves to is a loopback one (127.0.0.0/8, ::1): only this machine reaches it.
bool is_loopback(const std::string& host);

class Core;

// Answers one request exactly once: the first of send(), a stream, or the timeout answer wins.
class Reply {
 public:
  Reply(std::shared_ptr<Core> core, uint64_t connection, bool head_only);
  // The answer; ignored when one was already given or the client is gone.
  void send(Response r);
  // Unless answered within `after`, the server answers make() (called on its own thread).
  void on_timeout(std::chrono::milliseconds after, std::function<Response()> make);
  // A chunked stream (Server-Sent Events): start, then write until it returns false (the client
  // is gone, or more than 1 MiB behind), then end.
  bool stream_start(int status, const std::string& content_type, std::vector<Header> headers = {});
  bool stream_write(std::string_view data);
  void stream_end();
  // The connection closed (or the server stopped) before the answer was written.
  bool gone() const { return gone_.load(); }

 private:
  friend class Core;
  bool claim() { return !answered_.exchange(true); }
  std::shared_ptr<Core> core_;
  uint64_t connection_;
  bool head_only_;
  bool keep_alive_ = true;
  std::atomic<bool> answered_{false};
  std::atomic<bool> gone_{false};
  std::atomic<size_t> unsent_{0};  // stream bytes posted and not yet written
  std::function<Response()> timeout_answer_;
};

class Handler {
 public:
  virtual ~Handler() = default;
  // On the server's thread, once the head is read: an answer to send without reading the body
  // (unknown path, wrong method, no room), or nullopt to read a body of at most *max_body bytes.
  virtual std::optional<Response> head(const Request& req, uint64_t& max_body) = 0;
  // On a handler thread, with the whole request.
  virtual void handle(Request req, std::shared_ptr<Reply> reply) = 0;
};

class HttpServer {
 public:
  // Binds and starts serving; throws std::runtime_error naming the address and the reason.
  HttpServer(ServerSettings settings, Handler& handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  size_t connections() const;
  // Closes the listener and every connection (open replies become gone), then joins the threads.
  void stop();

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace edgeflow::net
