#include "http_server.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <unordered_map>

namespace edgeflow::net {

using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kStreamBacklog = 1 << 20;  // a stream this far behind is dropped
constexpr auto kLinger = std::chrono::seconds(2);
constexpr auto kSweepEvery = std::chrono::milliseconds(50);

std::string ssl_error() {
  unsigned long e = ERR_get_error();
  if (!e) return "unknown TLS error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  ERR_clear_error();
  return buf;
}

}  // namespace

class Core : public std::enable_shared_from_this<Core> {
 public:
  enum class Kind { answer, stream, end, timeout };
  struct Posted {
    uint64_t connection;
    Reply* reply;
    Kind kind;
    std::string bytes;
    bool close = false;
    Clock::time_point deadline{};
  };

  Core(ServerSettings s, Handler& h) : settings_(std::move(s)), handler_(h) {}
  // The eventfd lives as long as the Core, which every Reply holds: a post() racing stop() never
  // writes to a descriptor number reused meanwhile.
  ~Core() {
    release();
    for (int fd : {epoll_fd_, wake_fd_})
      if (fd >= 0) ::close(fd);
  }

  void start() {
    std::string where = settings_.listen;
    size_t colon = where.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error(where + ": not address:port");
    std::string host = where.substr(0, colon), port = where.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    addrinfo hints{}, *found = nullptr;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &found); rc != 0)
      throw std::runtime_error("cannot resolve " + where + ": " + gai_strerror(rc));
    std::string why = "no address";
    for (addrinfo* a = found; a && listen_fd_ < 0; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) continue;
      int one = 1;
      ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
      if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 1024) == 0) {
        listen_fd_ = fd;
      } else {
        why = std::strerror(errno);
        ::close(fd);
      }
    }
    freeaddrinfo(found);
    if (listen_fd_ < 0) throw std::runtime_error("cannot listen on " + where + ": " + why);
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len);
    port_ = ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6&>(ss).sin6_port
                                           : reinterpret_cast<sockaddr_in&>(ss).sin_port);
    if (!settings_.tls_cert.empty()) {
      tls_ = SSL_CTX_new(TLS_server_method());
      if (!tls_ || SSL_CTX_set_min_proto_version(tls_, TLS1_2_VERSION) != 1 ||
          SSL_CTX_use_certificate_chain_file(tls_, settings_.tls_cert.c_str()) != 1)
        throw std::runtime_error("tls_cert " + settings_.tls_cert + ": " + ssl_error());
      if (SSL_CTX_use_PrivateKey_file(tls_, settings_.tls_key.c_str(), SSL_FILETYPE_PEM) != 1 ||
          SSL_CTX_check_private_key(tls_) != 1)
        throw std::runtime_error("tls_key " + settings_.tls_key + ": " + ssl_error());
      SSL_CTX_set_mode(tls_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (epoll_fd_ < 0 || wake_fd_ < 0) throw std::runtime_error(std::string("epoll: ") + std::strerror(errno));
    watch(listen_fd_, EPOLLIN, kListenId);
    watch(wake_fd_, EPOLLIN, kWakeId);
    loop_ = std::thread([this] { loop(); });
    for (int i = 0; i < std::max(1, settings_.threads); ++i) workers_.emplace_back([this] { work(); });
  }

  void stop() {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
    }
    wake();
    if (loop_.joinable()) loop_.join();
    {
      std::lock_guard lock(jobs_mutex_);
      for (auto& j : jobs_) j.reply->gone_ = true;
      jobs_.clear();
    }
    jobs_cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
    release();
  }

  bool post(Posted p) {
    {
      std::lock_guard lock(mutex_);
      if (stopped_) return false;
      posted_.push_back(std::move(p));
    }
    wake();
    return true;
  }

  uint16_t port() const { return port_; }
  size_t connections() const { return open_.load(); }

 private:
  static constexpr uint64_t kListenId = 0, kWakeId = 1;
  enum class Phase { reading, dispatched, writing, streaming, lingering };

  struct Conn {
    uint64_t id = 0;
    int fd = -1;
    SSL* ssl = nullptr;
    std::string peer, peer_ip;
    RequestParser parser;
    std::string in, out;
    size_t out_off = 0;
    Phase phase = Phase::reading;
    uint32_t events = 0;
    bool tls_wants_write = false;
    bool close_after = false;
    bool head_only = false;
    Clock::time_point deadline = Clock::time_point::max();
    std::shared_ptr<Reply> reply;
  };
  struct Job {
    Request request;
    std::shared_ptr<Reply> reply;
  };

  // The port is free again once stop() returns.
  void release() {
    if (listen_fd_ >= 0) {
      ::close(listen_fd_);
      listen_fd_ = -1;
    }
    if (tls_) {
      SSL_CTX_free(tls_);
      tls_ = nullptr;
    }
  }

  void wake() {
    uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
  }

  void watch(int fd, uint32_t events, uint64_t id) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }

  void interest(Conn& c) {
    uint32_t ev = 0;
    switch (c.phase) {
      case Phase::reading:
      case Phase::lingering: ev = EPOLLIN; break;
      case Phase::writing: ev = EPOLLOUT; break;
      case Phase::streaming: ev = EPOLLIN | (c.out_off < c.out.size() ? uint32_t(EPOLLOUT) : 0u); break;
      case Phase::dispatched: ev = 0; break;
    }
    if (c.ssl && c.tls_wants_write) ev |= EPOLLOUT;
    if (ev == c.events) return;
    c.events = ev;
    epoll_event e{};
    e.events = ev;
    e.data.u64 = c.id;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &e);
  }

  // --- the loop thread ---------------------------------------------------------------------

  void loop() {
    epoll_event events[256];
    auto next_sweep = Clock::now() + kSweepEvery;
    for (;;) {
      int n = ::epoll_wait(epoll_fd_, events, 256, ready_.empty() ? int(kSweepEvery.count()) : 0);
      {
        std::lock_guard lock(mutex_);
        if (stopped_) break;
      }
      for (int i = 0; i < n; ++i) {
        uint64_t id = events[i].data.u64;
        if (id == kListenId) accept_all();
        else if (id == kWakeId) drain_posted();
        else if (Conn* c = find(id)) on_event(*c, events[i].events);
      }
      // Connections that went back to reading after an answer: their next request may be
      // buffered already (pipelining, TLS records), which no readiness event would report. Once a
      // turn, so a pipelining client cannot keep the loop from the others.
      std::vector<uint64_t> ready;
      ready.swap(ready_);
      for (uint64_t id : ready)
        if (Conn* c = find(id); c && c->phase == Phase::reading && process(*c))
          if (Conn* still = find(id); still && still->phase == Phase::reading && still->ssl && SSL_pending(still->ssl))
            do_read(*still);
      auto now = Clock::now();
      if (now >= next_sweep) {
        sweep(now);
        next_sweep = now + kSweepEvery;
      }
    }
    for (auto& [id, c] : conns_) drop(*c);
    conns_.clear();
    per_client_.clear();
  }

  void accept_all() {
    if (Clock::now() < accept_paused_until_) return;
    for (;;) {
      sockaddr_storage ss{};
      socklen_t len = sizeof ss;
      int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        // Out of descriptors: stop accepting for a moment rather than spin on the readable listener.
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          accept_paused_until_ = Clock::now() + std::chrono::milliseconds(100);
          pause_listener(true);
        }
        return;
      }
      char ip[INET6_ADDRSTRLEN] = "?";
      uint16_t port = 0;
      if (ss.ss_family == AF_INET) {
        auto& a = reinterpret_cast<sockaddr_in&>(ss);
        inet_ntop(AF_INET, &a.sin_addr, ip, sizeof ip);
        port = ntohs(a.sin_port);
      } else if (ss.ss_family == AF_INET6) {
        auto& a = reinterpret_cast<sockaddr_in6&>(ss);
        inet_ntop(AF_INET6, &a.sin6_addr, ip, sizeof ip);
        port = ntohs(a.sin6_port);
      }
      size_t& from_client = per_client_[ip];
      if (conns_.size() >= settings_.max_connections || from_client >= settings_.max_connections_per_client) {
        refuse(fd, conns_.size() >= settings_.max_connections ? "too many open connections; try again later"
                                                              : "too many open connections from your address; try again later");
        if (from_client == 0) per_client_.erase(ip);
        continue;
      }
      ++from_client;
      auto c = std::make_unique<Conn>();
      c->id = next_id_++;
      c->fd = fd;
      c->peer_ip = ip;
      c->peer = (ss.ss_family == AF_INET6 ? "[" + std::string(ip) + "]" : std::string(ip)) + ":" + std::to_string(port);
      c->parser = RequestParser(settings_.limits);
      c->deadline = Clock::now() + settings_.head_timeout;
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (tls_) {
        c->ssl = SSL_new(tls_);
        SSL_set_fd(c->ssl, fd);
        SSL_set_accept_state(c->ssl);
      }
      c->events = EPOLLIN;
      watch(fd, EPOLLIN, c->id);
      open_.fetch_add(1);
      conns_.emplace(c->id, std::move(c));
    }
  }

  void pause_listener(bool paused) {
    epoll_event e{};
    e.events = paused ? 0u : uint32_t(EPOLLIN);
    e.data.u64 = kListenId;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, listen_fd_, &e);
  }

  // Over a connection cap: a short 503 (plain HTTP only: a TLS client would need a handshake).
  void refuse(int fd, const char* why) {
    if (!tls_) {
      std::string out;
      serialize(error_response(503, why, 1), false, false, out);
      [[maybe_unused]] auto n = ::send(fd, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    }
    ::close(fd);
  }

  void drop(Conn& c) {
    if (c.reply) c.reply->gone_ = true;
    if (c.ssl) SSL_free(c.ssl);
    ::close(c.fd);
    open_.fetch_sub(1);
    auto it = per_client_.find(c.peer_ip);
    if (it != per_client_.end() && --it->second == 0) per_client_.erase(it);
  }

  Conn* find(uint64_t id) {
    auto it = conns_.find(id);
    return it == conns_.end() ? nullptr : it->second.get();
  }

  void close_conn(Conn& c) {
    uint64_t id = c.id;
    drop(c);
    conns_.erase(id);
  }

  enum class Io { ok, again, eof, error };

  Io io_read(Conn& c, char* buf, size_t cap, size_t& got) {
    if (!c.ssl) {
      for (;;) {
        ssize_t n = ::recv(c.fd, buf, cap, 0);
        if (n > 0) {
          got = size_t(n);
          return Io::ok;
        }
        if (n == 0) return Io::eof;
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? Io::again : Io::error;
      }
    }
    c.tls_wants_write = false;
    int n = SSL_read(c.ssl, buf, int(cap));
    if (n > 0) {
      got = size_t(n);
      return Io::ok;
    }
    return tls_status(c, n);
  }

  Io io_write(Conn& c, const char* buf, size_t len, size_t& put) {
    if (!c.ssl) {
      for (;;) {
        ssize_t n = ::send(c.fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0) {
          put = size_t(n);
          return Io::ok;
        }
        if (errno == EINTR) continue;
        return errno == EAGAIN || errno == EWOULDBLOCK ? Io::again : Io::error;
      }
    }
    c.tls_wants_write = false;
    int n = SSL_write(c.ssl, buf, int(std::min<size_t>(len, 1 << 30)));
    if (n > 0) {
      put = size_t(n);
      return Io::ok;
    }
    return tls_status(c, n);
  }

  Io tls_status(Conn& c, int rc) {
    switch (SSL_get_error(c.ssl, rc)) {
      case SSL_ERROR_WANT_READ: return Io::again;
      case SSL_ERROR_WANT_WRITE:
        c.tls_wants_write = true;
        return Io::again;
      case SSL_ERROR_ZERO_RETURN: return Io::eof;
      case SSL_ERROR_SYSCALL:
        ERR_clear_error();
        return errno == 0 ? Io::eof : Io::error;
      default:
        ERR_clear_error();
        return Io::error;
    }
  }

  void on_event(Conn& c, uint32_t ev) {
    uint64_t id = c.id;
    if (ev & EPOLLERR) return close_conn(c);
    switch (c.phase) {
      case Phase::reading: return do_read(c);
      case Phase::writing: return do_write(c);
      case Phase::lingering: return do_linger(c);
      case Phase::streaming:
        if (ev & (EPOLLIN | EPOLLHUP)) {
          // Nothing is expected from a stream's client: this is it going away.
          char buf[4096];
          size_t got = 0;
          Io r = io_read(c, buf, sizeof buf, got);
          if (r == Io::eof || r == Io::error) return close_conn(c);
        }
        if (find(id)) do_write(c);
        return;
      case Phase::dispatched:
        // No interest is registered while a handler has the request: only a hang-up wakes us.
        if (ev & EPOLLHUP) return close_conn(c);
        return;
    }
  }

  void do_read(Conn& c) {
    char buf[16384];
    // At most 16 reads a turn: epoll reports the rest again, after the other connections.
    for (int turn = 0; turn < 16 && c.phase == Phase::reading; ++turn) {
      size_t got = 0;
      Io r = io_read(c, buf, sizeof buf, got);
      if (r == Io::ok) {
        c.in.append(buf, got);
        if (!process(c)) return;  // closed
        continue;
      }
      if (r == Io::again) return interest(c);
      if (r == Io::error) return close_conn(c);
      // End of input: a request cut short is answered (the client may only have half-closed).
      if (c.parser.idle() && c.in.empty()) return close_conn(c);
      if (c.parser.end_of_input() == RequestParser::Result::failed)
        return answer(c, error_response(c.parser.status(), c.parser.error()), true);
      return close_conn(c);
    }
  }

  // Feeds buffered input to the parser; false when the connection was closed.
  bool process(Conn& c) {
    uint64_t id = c.id;
    auto now = Clock::now();
    // Until the parser needs more bytes: a head may complete a request with no body at all.
    while (c.phase == Phase::reading) {
      bool was_idle = c.parser.idle();
      std::string_view in = c.in;
      size_t before = in.size();
      auto r = c.parser.feed(in);
      c.in.erase(0, before - in.size());
      if (was_idle && !c.parser.idle()) c.deadline = now + settings_.head_timeout;
      switch (r) {
        case RequestParser::Result::need_more:
          if (c.parser.reading_body()) c.deadline = now + settings_.body_timeout;
          if (!c.out.empty()) flush_continue(c);
          return true;
        case RequestParser::Result::head_ready: {
          Request& req = c.parser.request();
          req.remote = c.peer;
          req.remote_address = c.peer_ip;
          c.head_only = req.method == "HEAD";
          uint64_t max_body = 1 << 20;
          std::optional<Response> early;
          try {
            early = handler_.head(req, max_body);
          } catch (const std::exception& e) {
            early = error_response(500, std::string("internal error: ") + e.what());
          }
          if (early) {
            // The body is not read: the connection cannot carry another request.
            bool has_body = c.parser.expected_body() > 0 || req.header("transfer-encoding");
            answer(c, std::move(*early), has_body || !req.keep_alive);
            if (!find(id)) return false;
            continue;
          }
          c.parser.body_limit(max_body);
          if (c.parser.reading_body()) {
            c.deadline = now + settings_.body_timeout;
            if (req.expects_continue) c.out += "HTTP/1.1 100 Continue\r\n\r\n";
          }
          continue;
        }
        case RequestParser::Result::complete:
          dispatch(c);
          return true;
        case RequestParser::Result::failed:
          answer(c, error_response(c.parser.status(), c.parser.error()), true);
          return find(id) != nullptr;
      }
    }
    return true;
  }

  // "100 Continue" is written while the body is still being read.
  void flush_continue(Conn& c) {
    while (c.out_off < c.out.size()) {
      size_t put = 0;
      if (io_write(c, c.out.data() + c.out_off, c.out.size() - c.out_off, put) != Io::ok) break;
      c.out_off += put;
    }
    if (c.out_off == c.out.size()) {
      c.out.clear();
      c.out_off = 0;
    }
  }

  void dispatch(Conn& c) {
    Request req = std::move(c.parser.request());
    auto reply = std::make_shared<Reply>(shared_from_this(), c.id, c.head_only);
    reply->keep_alive_ = req.keep_alive;
    c.reply = reply;
    c.phase = Phase::dispatched;
    c.deadline = Clock::time_point::max();
    interest(c);
    {
      std::lock_guard lock(jobs_mutex_);
      jobs_.push_back({std::move(req), std::move(reply)});
    }
    jobs_cv_.notify_one();
  }

  // Answers on the loop thread (errors, early answers, timeouts).
  void answer(Conn& c, Response r, bool close) {
    if (c.reply && !c.reply->claim()) return;
    r.close = r.close || close;
    std::string bytes;
    serialize(r, true, c.head_only, bytes);
    start_write(c, std::move(bytes), r.close);
  }

  void start_write(Conn& c, std::string bytes, bool close) {
    c.out.append(bytes);
    c.close_after = close;
    c.phase = Phase::writing;
    c.deadline = Clock::now() + settings_.write_timeout;
    do_write(c);
  }

  void do_write(Conn& c) {
    while (c.out_off < c.out.size()) {
      size_t put = 0;
      Io r = io_write(c, c.out.data() + c.out_off, c.out.size() - c.out_off, put);
      if (r == Io::again) {
        interest(c);
        return;
      }
      if (r != Io::ok) return close_conn(c);
      c.out_off += put;
      c.deadline = Clock::now() + settings_.write_timeout;
      if (c.phase == Phase::streaming && c.reply) {
        size_t left = c.reply->unsent_.load();
        while (!c.reply->unsent_.compare_exchange_weak(left, left > put ? left - put : 0)) {
        }
      }
      // A stream that never quite catches up would otherwise keep everything it ever sent.
      if (c.out_off >= 65536) {
        c.out.erase(0, c.out_off);
        c.out_off = 0;
      }
    }
    c.out.clear();
    c.out_off = 0;
    if (c.phase == Phase::streaming) {
      c.deadline = Clock::time_point::max();
      return interest(c);
    }
    if (c.phase != Phase::writing) return interest(c);
    c.reply.reset();
    if (c.close_after) return linger(c);
    // Keep-alive: the next request, which may already be buffered (pipelining, or TLS records).
    c.parser.reset();
    c.head_only = false;
    c.phase = Phase::reading;
    c.deadline = Clock::now() + settings_.idle_timeout;
    interest(c);
    ready_.push_back(c.id);
  }

  // After an answer that closes the connection: stop sending, read what the client still sends
  // for a moment, so its socket does not reset the connection before it read the answer.
  void linger(Conn& c) {
    if (c.ssl) return close_conn(c);
    ::shutdown(c.fd, SHUT_WR);
    c.phase = Phase::lingering;
    c.deadline = Clock::now() + kLinger;
    interest(c);
    do_linger(c);
  }

  void do_linger(Conn& c) {
    char buf[16384];
    for (int i = 0; i < 16; ++i) {
      ssize_t n = ::recv(c.fd, buf, sizeof buf, 0);
      if (n > 0 || (n < 0 && errno == EINTR)) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      return close_conn(c);  // the client closed (or the connection failed)
    }
    // Still sending: the next event reads on, until the client stops or the deadline passes.
  }

  void drain_posted() {
    uint64_t count;
    [[maybe_unused]] auto n = ::read(wake_fd_, &count, sizeof count);
    std::deque<Posted> posted;
    {
      std::lock_guard lock(mutex_);
      posted.swap(posted_);
    }
    for (auto& p : posted) {
      auto it = conns_.find(p.connection);
      if (it == conns_.end() || it->second->reply.get() != p.reply) continue;
      Conn& c = *it->second;
      switch (p.kind) {
        case Kind::answer:
          if (c.phase == Phase::dispatched) start_write(c, std::move(p.bytes), p.close);
          break;
        case Kind::timeout:
          if (c.phase == Phase::dispatched) c.deadline = p.deadline;
          break;
        case Kind::stream:
          if (c.phase == Phase::dispatched) c.phase = Phase::streaming;
          if (c.phase != Phase::streaming) break;
          c.out.append(p.bytes);
          do_write(c);
          break;
        case Kind::end:
          if (c.phase == Phase::streaming || c.phase == Phase::dispatched) start_write(c, std::move(p.bytes), true);
          break;
      }
    }
  }

  void sweep(Clock::time_point now) {
    if (accept_paused_until_ != Clock::time_point{} && now >= accept_paused_until_) {
      accept_paused_until_ = {};
      pause_listener(false);
    }
    std::vector<Conn*> due;
    for (auto& [id, c] : conns_)
      if (now >= c->deadline) due.push_back(c.get());
    for (Conn* c : due) {
      switch (c->phase) {
        case Phase::reading:
          if (c->parser.idle() && c->in.empty()) close_conn(*c);
          else answer(*c, error_response(408, c->parser.reading_body() ? "the body stalled; send it without pauses"
                                                                      : "the request head took too long"),
                      true);
          break;
        case Phase::dispatched:
          if (c->reply && c->reply->timeout_answer_ && c->reply->claim()) {
            Response r;
            try {
              r = c->reply->timeout_answer_();
            } catch (const std::exception& e) {
              r = error_response(504, std::string("no answer in time (") + e.what() + ")");
            }
            std::string bytes;
            serialize(r, c->reply->keep_alive_, c->head_only, bytes);
            start_write(*c, std::move(bytes), !c->reply->keep_alive_ || r.close);
          } else {
            c->deadline = Clock::time_point::max();
          }
          break;
        default: close_conn(*c);
      }
    }
  }

  // --- handler threads ---------------------------------------------------------------------

  void work() {
    for (;;) {
      Job job;
      {
        std::unique_lock lock(jobs_mutex_);
        jobs_cv_.wait(lock, [&] { return !jobs_.empty() || stopped(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      try {
        handler_.handle(std::move(job.request), job.reply);
      } catch (const std::exception& e) {
        job.reply->send(error_response(500, std::string("internal error: ") + e.what()));
      }
    }
  }

  bool stopped() {
    std::lock_guard lock(mutex_);
    return stopped_;
  }

  ServerSettings settings_;
  Handler& handler_;
  int listen_fd_ = -1, epoll_fd_ = -1, wake_fd_ = -1;
  uint16_t port_ = 0;
  SSL_CTX* tls_ = nullptr;
  std::thread loop_;
  std::vector<std::thread> workers_;

  std::mutex mutex_;  // stopped_ and posted_
  bool stopped_ = false;
  std::deque<Posted> posted_;

  std::mutex jobs_mutex_;
  std::condition_variable jobs_cv_;
  std::deque<Job> jobs_;

  // The loop thread's own.
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  std::unordered_map<std::string, size_t> per_client_;
  std::vector<uint64_t> ready_;
  uint64_t next_id_ = 2;
  Clock::time_point accept_paused_until_{};
  std::atomic<size_t> open_{0};

  friend class Reply;
};

// --- Reply -------------------------------------------------------------------------------------

Reply::Reply(std::shared_ptr<Core> core, uint64_t connection, bool head_only)
    : core_(std::move(core)), connection_(connection), head_only_(head_only) {}

void Reply::send(Response r) {
  if (gone_ || !claim()) return;
  std::string bytes;
  serialize(r, keep_alive_, head_only_, bytes);
  core_->post({connection_, this, Core::Kind::answer, std::move(bytes), !keep_alive_ || r.close});
}

void Reply::on_timeout(std::chrono::milliseconds after, std::function<Response()> make) {
  timeout_answer_ = std::move(make);
  core_->post({connection_, this, Core::Kind::timeout, {}, false, Clock::now() + after});
}

bool Reply::stream_start(int status, const std::string& content_type, std::vector<Header> headers) {
  if (gone_ || !claim()) return false;
  std::string head = "HTTP/1.1 " + std::to_string(status) + " " + reason_phrase(status) + "\r\nServer: edgeflow\r\n";
  head += "Content-Type: " + content_type + "\r\n";
  for (auto& h : headers) head += h.name + ": " + h.value + "\r\n";
  head += "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
  return core_->post({connection_, this, Core::Kind::stream, std::move(head)});
}

bool Reply::stream_write(std::string_view data) {
  if (gone_ || unsent_.load() > kStreamBacklog) return false;
  if (data.empty()) return true;
  char size[20];
  int n = std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  std::string chunk(size, size_t(n));
  chunk.append(data);
  chunk += "\r\n";
  unsent_ += chunk.size();
  return core_->post({connection_, this, Core::Kind::stream, std::move(chunk)});
}

void Reply::stream_end() {
  if (gone_) return;
  core_->post({connection_, this, Core::Kind::end, "0\r\n\r\n", true});
}

bool is_loopback(const std::string& host) {
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &found) != 0) return false;
  bool all = found != nullptr;
  for (addrinfo* a = found; a; a = a->ai_next) {
    if (a->ai_family == AF_INET)
      all &= (ntohl(reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr.s_addr) >> 24) == 127;
    else if (a->ai_family == AF_INET6)
      all &= IN6_IS_ADDR_LOOPBACK(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
    else all = false;
  }
  freeaddrinfo(found);
  return all;
}

// --- HttpServer --------------------------------------------------------------------------------

HttpServer::HttpServer(ServerSettings settings, Handler& handler)
    : core_(std::make_shared<Core>(std::move(settings), handler)) {
  core_->start();
}

HttpServer::~HttpServer() { stop(); }

uint16_t HttpServer::port() const { return core_->port(); }
size_t HttpServer::connections() const { return core_->connections(); }
void HttpServer::stop() { core_->stop(); }

}  // namespace edgeflow::net
