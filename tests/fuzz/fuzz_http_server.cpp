// HTTP requests through a real listener: a client's bytes over a loopback TCP connection → the
// server (epoll thread, parser, deadlines, handler threads, keep-alive, 100-continue) → what
// comes back. The client sends everything, half-closes, and reads to the end. Checks: the server
// closes the connection promptly (it never waits for bytes that cannot come), everything it
// writes is a sequence of well-formed answers with exact Content-Length bodies, and nothing
// follows an answer that closes the connection.
#include "http_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <thread>

using namespace edgeflow::net;

namespace {

// /small takes bodies up to 16 bytes, /nope is refused at the head, /slow answers from a thread
// of its own; every other path echoes the body's size.
class Echo : public Handler {
 public:
  std::optional<Response> head(const Request& req, uint64_t& max_body) override {
    if (req.path == "/nope") return Response{404, error_json("no such path"), "application/json", {}, 0, false};
    max_body = req.path == "/small" ? 16 : 4096;
    return std::nullopt;
  }
  void handle(Request req, std::shared_ptr<Reply> reply) override {
    Response r{200, "{\"bytes\":" + std::to_string(req.body.size()) + "}", "application/json", {}, 0, false};
    if (req.path == "/slow") {
      std::thread([reply, r] { reply->send(r); }).detach();
      return;
    }
    reply->send(r);
  }
};

ServerSettings settings() {
  ServerSettings s;
  s.listen = "127.0.0.1:0";
  s.threads = 2;
  s.limits.max_head_bytes = 2048;
  return s;
}

HttpServer& server() {
  static Echo echo;
  static HttpServer s(settings(), echo);
  return s;
}

// Every answer in `out`, in order: status line, head, Content-Length body. Aborts on anything else.
void check_answers(std::string_view out) {
  bool closed = false;
  while (!out.empty()) {
    if (closed) std::abort();  // bytes after an answer that closed the connection
    if (out.rfind("HTTP/1.1 ", 0) != 0 && out.rfind("HTTP/1.0 ", 0) != 0) std::abort();
    size_t end = out.find("\r\n\r\n");
    if (end == std::string_view::npos) std::abort();
    std::string head(out.substr(0, end + 2));
    out.remove_prefix(end + 4);
    int status = std::atoi(head.c_str() + 9);
    if (status < 100 || status > 599) std::abort();
    if (status == 100) continue;
    for (char& c : head) c = char(std::tolower(static_cast<unsigned char>(c)));
    size_t cl = head.find("\r\ncontent-length: ");
    if (cl == std::string::npos) std::abort();
    size_t length = std::strtoull(head.c_str() + cl + 18, nullptr, 10);
    if (head.find("\r\nconnection: close\r\n") != std::string::npos) closed = true;
    // Every body here is JSON; an answer to HEAD has the length of the body it would have had,
    // and none.
    if (length == 0 || out.empty() || out[0] != '{') continue;
    if (out.size() < length) std::abort();
    out.remove_prefix(length);
  }
}

// Waits until `fd` has `events` or `ms` passed, through signals.
bool wait_for(int fd, short events, int ms) {
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, int(std::max<int64_t>(0, left.count())));
    if (n >= 0 || errno != EINTR) return n == 1;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 8192) return 0;
  uint16_t port = server().port();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Each connection from another loopback address: the client half-closes first, so each ends
  // in TIME_WAIT, and thousands a second would use up one address's ports within seconds.
  static uint32_t next = 0;
  sockaddr_in from{};
  from.sin_family = AF_INET;
  from.sin_addr.s_addr = htonl(0x7f010000u + (next++ % 0x00fe0000u));
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) std::abort();
  // libFuzzer's timers interrupt system calls: an interrupted connect goes on by itself.
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    int error = errno;
    socklen_t len = sizeof error;
    if (error == EINTR && wait_for(fd, POLLOUT, 3000)) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      std::fprintf(stderr, "fuzz_http_server: connect: %s\n", std::strerror(error));
      std::abort();
    }
  }
  // The server may close early (an error answer): what it did not read is not sent.
  for (size_t sent = 0; sent < size;) {
    ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += size_t(n);
  }
  ::shutdown(fd, SHUT_WR);
  std::string out;
  char buf[4096];
  for (;;) {
    // Nothing more can arrive, and every handler answers at once: a server still silent after
    // 3 s is waiting for what cannot come.
    if (!wait_for(fd, POLLIN, 3000)) {
      std::fprintf(stderr, "fuzz_http_server: silent for 3 s with %zu connections open, after %zu bytes:\n%s\n",
                   server().connections(), out.size(), out.c_str());
      std::abort();
    }
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  ::close(fd);
  check_answers(out);
  return 0;
}
