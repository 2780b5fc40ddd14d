// A scripted HTTP(S) server for tests (Poco HTTPServer on a free loopback port), a small client,
// `curl` as a child process, and a throwaway PKI made with the openssl CLI.
#pragma once

#include "test_support.hpp"

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace edgeflow::test {

// Closed until open(): a scripted reply can wait on it to hold a request as long as a test wants.
class Gate {
 public:
  void wait() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return open_; });
  }
  void open() {
    {
      std::lock_guard lock(m_);
      open_ = true;
    }
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool open_ = false;
};

struct Seen {
  std::string method, uri, body, content_type, peer;
  std::map<std::string, std::string> headers;
  std::chrono::steady_clock::time_point at;
};

struct Reply {
  int status = 200;
  std::string body = "{}";
  std::vector<std::pair<std::string, std::string>> headers = {};
};

class HttpTestServer {
 public:
  // script(request, index of the request from 0) -> reply; default: 200 {}.
  using Script = std::function<Reply(const Seen&, size_t)>;

  // port 0: any free one; else that port (a destination that comes back where it was).
  explicit HttpTestServer(Script script = {}, const std::string& tls_cert = "", const std::string& tls_key = "",
                          int port = 0)
      : script_(std::move(script)) {
    auto params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(32);
    Poco::Net::SocketAddress addr("127.0.0.1", Poco::UInt16(port));
    if (!tls_cert.empty()) {
      Poco::Net::Context::Ptr ctx =
          new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, tls_key, tls_cert, "", Poco::Net::Context::VERIFY_NONE);
      Poco::Net::SecureServerSocket s(addr, 64, ctx);
      port_ = s.address().port();
      server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), pool_, s, params);
    } else {
      Poco::Net::ServerSocket s(addr, 64);
      port_ = s.address().port();
      server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(this), pool_, s, params);
    }
    server_->start();
  }
  ~HttpTestServer() {
    server_->stopAll(true);
    pool_.joinAll();
  }

  int port() const { return port_; }
  std::string url(const std::string& path, bool tls = false) const {
    return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
  }
  std::vector<Seen> seen() {
    std::lock_guard lock(m_);
    return seen_;
  }
  // Waits until n requests arrived in all; returns them.
  std::vector<Seen> wait_seen(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    std::unique_lock lock(m_);
    cv_.wait_for(lock, timeout, [&] { return seen_.size() >= n; });
    return seen_;
  }

 private:
  class Handler : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handler(HttpTestServer* s) : s_(s) {}
    void handleRequest(Poco::Net::HTTPServerRequest& req, Poco::Net::HTTPServerResponse& resp) override {
      Seen r;
      r.method = req.getMethod();
      r.uri = req.getURI();
      r.content_type = req.getContentType();
      r.peer = req.clientAddress().toString();
      for (auto& [k, v] : req) r.headers[k] = v;
      Poco::StreamCopier::copyToString(req.stream(), r.body);
      r.at = std::chrono::steady_clock::now();
      size_t index;
      {
        std::lock_guard lock(s_->m_);
        index = s_->seen_.size();
        s_->seen_.push_back(r);
      }
      s_->cv_.notify_all();
      Reply reply = s_->script_ ? s_->script_(r, index) : Reply{};
      resp.setStatusAndReason(Poco::Net::HTTPResponse::HTTPStatus(reply.status));
      for (auto& [k, v] : reply.headers) resp.set(k, v);
      resp.setContentType("application/json");
      resp.setContentLength(std::streamsize(reply.body.size()));
      resp.send() << reply.body;
    }

   private:
    HttpTestServer* s_;
  };
  class Factory : public Poco::Net::HTTPRequestHandlerFactory {
   public:
    explicit Factory(HttpTestServer* s) : s_(s) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override {
      return new Handler(s_);
    }

   private:
    HttpTestServer* s_;
  };

  Script script_;
  Poco::ThreadPool pool_{2, 33};
  std::unique_ptr<Poco::Net::HTTPServer> server_;
  int port_ = 0;
  std::mutex m_;
  std::condition_variable cv_;
  std::vector<Seen> seen_;
};

struct Response {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
};

// One request with Poco's client on a fresh connection.
inline Response http_request(int port, const std::string& method, const std::string& path, const std::string& body,
                             const std::vector<std::pair<std::string, std::string>>& headers = {},
                             const std::string& content_type = "application/json") {
  Poco::Net::HTTPClientSession s("127.0.0.1", Poco::UInt16(port));
  s.setTimeout(Poco::Timespan(60, 0));
  Poco::Net::HTTPRequest req(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
  for (auto& [k, v] : headers) req.set(k, v);
  if (!body.empty() || method == "POST") {
    req.setContentType(content_type);
    req.setContentLength(std::streamsize(body.size()));
  }
  s.sendRequest(req) << body;
  Poco::Net::HTTPResponse resp;
  std::istream& in = s.receiveResponse(resp);
  Response r;
  r.status = int(resp.getStatus());
  for (auto& [k, v] : resp) r.headers[k] = v;
  Poco::StreamCopier::copyToString(in, r.body);
  return r;
}

// Runs a program, returns its standard output (stderr goes to ours) and exit status.
inline std::pair<int, std::string> run_program(const std::vector<std::string>& args) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), out};
}

// `curl` with the given arguments; the status and body of the response (exit status != 0: status 0).
inline Response curl(std::vector<std::string> args) {
  args.insert(args.begin(), {"curl", "-sS", "--max-time", "60", "-w", "\n%{http_code}"});
  auto [rc, out] = run_program(args);
  Response r;
  if (rc != 0) return r;
  size_t nl = out.rfind('\n');
  r.status = std::stoi(out.substr(nl + 1));
  r.body = out.substr(0, nl);
  return r;
}

// A test CA and a server certificate for localhost/127.0.0.1 signed by it, in `dir`:
// <name>-ca.pem, <name>-server.pem, <name>-server.key.
inline void make_pki(const std::string& dir, const std::string& name) {
  std::string ca = dir + "/" + name + "-ca", srv = dir + "/" + name + "-server", ext = dir + "/" + name + "-ext.cnf";
  FILE* f = fopen(ext.c_str(), "w");
  fputs("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n", f);
  fclose(f);
  std::vector<std::vector<std::string>> steps = {
      {"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
       ca + ".key", "-out", ca + ".pem", "-days", "2", "-subj", "/CN=edgeflow test CA " + name},
      {"openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", srv + ".key",
       "-out", srv + ".csr", "-subj", "/CN=localhost"},
      {"openssl", "x509", "-req", "-in", srv + ".csr", "-CA", ca + ".pem", "-CAkey", ca + ".key", "-CAcreateserial", "-out",
       srv + ".pem", "-days", "2", "-extfile", ext},
  };
  for (auto& s : steps)
    if (run_program(s).first != 0) throw std::runtime_error("openssl failed making the test PKI: " + s[1]);
}

}  // namespace edgeflow::test
