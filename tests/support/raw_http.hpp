// A raw TCP client for HTTP tests that need bytes no well-behaved client sends: malformed
// framing, smuggled requests, half-closes, slow heads, many connections from many loopback
// addresses (127.0.0.x: every one of them reaches the kernel's loopback).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <stdexcept>
#include <string>

namespace edgeflow::test {

class RawConnection {
 public:
  // Connects to 127.0.0.1:port from `from` (any 127.x.y.z address).
  explicit RawConnection(int port, const std::string& from = "127.0.0.1") {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in local{};
    local.sin_family = AF_INET;
    inet_pton(AF_INET, from.c_str(), &local.sin_addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
      throw std::runtime_error("bind " + from + ": " + std::strerror(errno));
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(uint16_t(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0)
      throw std::runtime_error(std::string("connect: ") + std::strerror(errno));
  }
  ~RawConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  // False when the server already closed (EPIPE, ECONNRESET).
  bool send(const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      ssize_t n = ::send(fd_, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return false;
      off += size_t(n);
    }
    return true;
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }
  // True as soon as the server sent something (or closed); false when `timeout` passed first.
  bool answered_within(std::chrono::milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, int(timeout.count())) > 0;
  }

  // Everything the server sends until it closes the connection (or `timeout` passes: then the
  // text so far and closed() false).
  std::string read_until_closed(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::string out;
    closed_ = read_some(out, timeout, [](const std::string&) { return false; });
    return out;
  }

  // One response: status line, headers and a Content-Length body; empty when the server closed first.
  struct Response {
    int status = 0;
    std::string status_line, body, raw;
    std::map<std::string, std::string> headers;  // names in lower case
  };
  Response read_response(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    auto complete = [](const std::string& s) {
      size_t end = s.find("\r\n\r\n");
      if (end == std::string::npos) return false;
      size_t cl = 0;
      std::string head = s.substr(0, end);
      for (char& c : head) c = char(std::tolower(static_cast<unsigned char>(c)));
      if (size_t at = head.find("\r\ncontent-length:"); at != std::string::npos) cl = std::stoul(head.substr(at + 17));
      return s.size() >= end + 4 + cl;
    };
    if (!complete(pending_)) closed_ = read_some(pending_, timeout, complete);
    Response r;
    size_t end = pending_.find("\r\n\r\n");
    if (end == std::string::npos) return r;
    std::string head = pending_.substr(0, end);
    size_t line_end = head.find("\r\n");
    r.status_line = head.substr(0, line_end);
    if (r.status_line.size() >= 12) r.status = std::stoi(r.status_line.substr(9, 3));
    size_t pos = line_end == std::string::npos ? head.size() : line_end + 2;
    while (pos < head.size()) {
      size_t e = head.find("\r\n", pos);
      if (e == std::string::npos) e = head.size();
      std::string line = head.substr(pos, e - pos);
      size_t colon = line.find(':');
      std::string name = line.substr(0, colon);
      for (char& c : name) c = char(std::tolower(static_cast<unsigned char>(c)));
      std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
      while (!value.empty() && value[0] == ' ') value.erase(0, 1);
      r.headers[name] = value;
      pos = e + 2;
    }
    size_t cl = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    r.body = pending_.substr(end + 4, cl);
    r.raw = pending_.substr(0, end + 4 + cl);
    pending_.erase(0, end + 4 + cl);
    return r;
  }
  // What arrived after the last response read.
  const std::string& rest() const { return pending_; }
  bool closed() const { return closed_; }

 private:
  // Reads into out until done(out), the peer closes (true) or the timeout (false).
  template <class Done>
  bool read_some(std::string& out, std::chrono::milliseconds timeout, Done done) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    char buf[65536];
    while (!done(out)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return false;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, int(left.count())) <= 0) continue;
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) return true;
      out.append(buf, size_t(n));
    }
    return false;
  }

  int fd_ = -1;
  std::string pending_;
  bool closed_ = false;
};

// Room for `n` more descriptors: the soft limit raised toward the hard one.
inline void allow_descriptors(rlim_t n) {
  rlimit rl{};
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < n) {
    rl.rlim_cur = std::min(n, rl.rlim_max);
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

}  // namespace edgeflow::test
