// A non-blocking TCP connection to the broker, optionally TLS (OpenSSL), used from one thread at
// a time. Connecting is bounded by a deadline; errors say host:port and the OS's or OpenSSL's
// reason, and what to check.
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace edgeflow::mqtt {

struct ConnectError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Where the broker is: from `mqtt://host:port`, `mqtts://...` (tcp://, ssl://, tls:// too).
struct Endpoint {
  std::string host;
  int port = 1883;
  bool tls = false;
  std::string text() const { return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port); }
};

// The endpoint of a URI, or an error text saying what is wrong with it.
inline std::string parse_uri(const std::string& uri, Endpoint& out) {
  size_t sep = uri.find("://");
  if (sep == std::string::npos) return "expected scheme://host[:port], for example mqtt://broker:1883 or mqtts://broker:8883";
  std::string scheme = uri.substr(0, sep);
  if (scheme == "mqtt" || scheme == "tcp") out.tls = false;
  else if (scheme == "mqtts" || scheme == "ssl" || scheme == "tls") out.tls = true;
  else return "unknown scheme \"" + scheme + "\": use mqtt:// (or tcp://) for plain TCP, mqtts:// (or ssl://) for TLS";
  out.port = out.tls ? 8883 : 1883;
  std::string rest = uri.substr(sep + 3);
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::string port;
  if (!rest.empty() && rest[0] == '[') {
    size_t close = rest.find(']');
    if (close == std::string::npos) return "missing ']' after an IPv6 address";
    out.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size()) {
      if (rest[close + 1] != ':') return "expected :port after ']'";
      port = rest.substr(close + 2);
    }
  } else {
    size_t colon = rest.rfind(':');
    out.host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (out.host.empty()) return "no host name";
  if (out.host.find_first_of("/?#@") != std::string::npos) return "a path, query or user part is not supported; give credentials in username/password";
  if (!port.empty()) {
    char* end = nullptr;
    long p = std::strtol(port.c_str(), &end, 10);
    if (*end || p < 1 || p > 65535) return "the port \"" + port + "\" is not a number from 1 to 65535";
    out.port = int(p);
  }
  return "";
}

inline std::string openssl_errors() {
  std::string s;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    s += (s.empty() ? "" : "; ") + std::string(buf);
  }
  return s.empty() ? "unknown OpenSSL error" : s;
}

struct TlsFiles {
  std::string ca_file;
  std::string cert_file;
  std::string key_file;
  std::string key_password;
  std::string server_name;  // checked against the certificate; default: the host
};

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtx = std::shared_ptr<SSL_CTX>;

// Loads the TLS files once (start()); a file that cannot be used is named in the error.
inline SslCtx make_tls_context(const TlsFiles& f) {
  SslCtx ctx(SSL_CTX_new(TLS_client_method()), SslCtxFree{});
  if (!ctx) throw ConnectError("cannot create a TLS context: " + openssl_errors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  if (!f.ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), f.ca_file.c_str(), nullptr) != 1)
      throw ConnectError("cannot load the CA certificates from ca_file " + f.ca_file + ": " + openssl_errors());
  } else if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
    throw ConnectError("cannot load the system's CA certificates: " + openssl_errors());
  }
  if (!f.key_password.empty()) {
    // OpenSSL keeps the pointer: the string lives in the component's config as long as the context.
    SSL_CTX_set_default_passwd_cb_userdata(ctx.get(), const_cast<char*>(f.key_password.c_str()));
  }
  if (!f.cert_file.empty() && SSL_CTX_use_certificate_chain_file(ctx.get(), f.cert_file.c_str()) != 1)
    throw ConnectError("cannot load the client certificate from cert_file " + f.cert_file + ": " + openssl_errors());
  if (!f.key_file.empty()) {
    if (SSL_CTX_use_PrivateKey_file(ctx.get(), f.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
      throw ConnectError("cannot load the client key from key_file " + f.key_file + ": " + openssl_errors() +
                         (f.key_password.empty() ? "" : " (is key_password right?)"));
    if (SSL_CTX_check_private_key(ctx.get()) != 1)
      throw ConnectError("key_file " + f.key_file + " does not match cert_file " + f.cert_file);
  }
  return ctx;
}

class Connection {
 public:
  using Clock = std::chrono::steady_clock;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { close(); }

  // TCP connect (and TLS handshake) to `ep` before `deadline`; throws ConnectError.
  void open(const Endpoint& ep, const SslCtx& tls, const std::string& server_name, Clock::time_point deadline) {
    close();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    int rc = getaddrinfo(ep.host.c_str(), std::to_string(ep.port).c_str(), &hints, &res);
    if (rc != 0)
      throw ConnectError("cannot resolve the broker's host " + ep.host + ": " + gai_strerror(rc) + " (check uri)");
    std::string last;
    for (addrinfo* a = res; a && fd_ < 0; a = a->ai_next) {
      int fd = ::socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
      if (fd < 0) {
        last = std::strerror(errno);
        continue;
      }
      if (::connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
        last = std::strerror(errno);
        ::close(fd);
        continue;
      }
      if (!wait(fd, POLLOUT, deadline)) {
        last = "timed out";
        ::close(fd);
        continue;
      }
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) {
        last = std::strerror(err);
        ::close(fd);
        continue;
      }
      fd_ = fd;
    }
    freeaddrinfo(res);
    if (fd_ < 0)
      throw ConnectError("cannot connect to the MQTT broker at " + ep.text() + ": " + last +
                         " (is the broker running, and are uri and the firewall right?)");
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (tls) handshake(ep, tls, server_name.empty() ? ep.host : server_name, deadline);
  }

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }

  void close() {
    if (ssl_) {
      SSL_free(ssl_);
      ssl_ = nullptr;
    }
    if (fd_ >= 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  // Reads what is there into `buf` (appended); returns false when the peer closed the connection
  // or it failed (`error` says why). Reading nothing is not an error.
  bool read_some(std::string& buf, std::string& error) {
    char tmp[65536];
    for (int round = 0; round < 16; ++round) {
      ssize_t n;
      if (ssl_) {
        ERR_clear_error();
        int r = SSL_read(ssl_, tmp, sizeof tmp);
        if (r <= 0) {
          int e = SSL_get_error(ssl_, r);
          if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return true;
          error = e == SSL_ERROR_ZERO_RETURN ? "the broker closed the connection" : "TLS read failed: " + tls_error(e);
          return false;
        }
        n = r;
      } else {
        n = ::recv(fd_, tmp, sizeof tmp, 0);
        if (n == 0) {
          error = "the broker closed the connection";
          return false;
        }
        if (n < 0) {
          if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
          error = std::string("reading from the broker failed: ") + std::strerror(errno);
          return false;
        }
      }
      buf.append(tmp, size_t(n));
      if (size_t(n) < sizeof tmp) return true;
    }
    return true;
  }

  // Writes as much of `data` as the socket takes; returns the bytes written, or -1 (`error`).
  ssize_t write_some(std::string_view data, std::string& error) {
    if (data.empty()) return 0;
    if (ssl_) {
      ERR_clear_error();
      int r = SSL_write(ssl_, data.data(), int(std::min<size_t>(data.size(), 1 << 30)));
      if (r > 0) return r;
      int e = SSL_get_error(ssl_, r);
      if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) return 0;
      error = "TLS write failed: " + tls_error(e);
      return -1;
    }
    ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
    if (n >= 0) return n;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
    error = std::string("writing to the broker failed: ") + std::strerror(errno);
    return -1;
  }

  // Whether decrypted bytes wait inside OpenSSL (poll() would not see them).
  bool pending() const { return ssl_ && SSL_pending(ssl_) > 0; }

  // Writes all of `data` before `deadline`; false (with `error`) if it cannot.
  bool write_all(std::string_view data, Clock::time_point deadline, std::string& error) {
    while (!data.empty()) {
      ssize_t n = write_some(data, error);
      if (n < 0) return false;
      data.remove_prefix(size_t(n));
      if (!data.empty() && !wait(fd_, POLLOUT, deadline)) {
        error = "the broker does not take what is written to it (timed out)";
        return false;
      }
    }
    return true;
  }

  // Waits until the socket is readable (or has buffered TLS data) or `ms` passed.
  bool wait_readable(int ms) const {
    if (pending()) return true;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, ms) > 0;
  }

  static bool wait(int fd, short events, Clock::time_point deadline) {
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left < 0) left = 0;
      pollfd p{fd, events, 0};
      int r = ::poll(&p, 1, int(left));
      if (r > 0) return true;
      if (r == 0) return false;
      if (errno != EINTR) return false;
    }
  }

 private:
  void handshake(const Endpoint& ep, const SslCtx& tls, const std::string& name, Clock::time_point deadline) {
    ssl_ = SSL_new(tls.get());
    if (!ssl_) throw ConnectError("cannot create a TLS session: " + openssl_errors());
    SSL_set_fd(ssl_, fd_);
    in_addr a4;
    in6_addr a6;
    bool is_ip = inet_pton(AF_INET, name.c_str(), &a4) == 1 || inet_pton(AF_INET6, name.c_str(), &a6) == 1;
    if (is_ip) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
    } else {
      SSL_set_tlsext_host_name(ssl_, name.c_str());
      SSL_set1_host(ssl_, name.c_str());
    }
    for (;;) {
      ERR_clear_error();
      int r = SSL_connect(ssl_);
      if (r == 1) return;
      int e = SSL_get_error(ssl_, r);
      short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
      if (ev && wait(fd_, ev, deadline)) continue;
      std::string why;
      long verify = SSL_get_verify_result(ssl_);
      if (verify != X509_V_OK)
        why = std::string("the broker's certificate was not accepted: ") + X509_verify_cert_error_string(verify) +
              " (check ca_file, and that the certificate is for " + name + "; server_name overrides the name checked)";
      else if (ev)
        why = "timed out";
      else
        why = tls_error(e);
      close();
      throw ConnectError("TLS handshake with the MQTT broker at " + ep.text() + " failed: " + why);
    }
  }

  std::string tls_error(int e) const {
    if (e == SSL_ERROR_SYSCALL) {
      std::string q = openssl_errors();
      return errno ? std::string(std::strerror(errno)) : q == "unknown OpenSSL error" ? "the connection was closed" : q;
    }
    return openssl_errors();
  }

  int fd_ = -1;
  SSL* ssl_ = nullptr;
};

}  // namespace edgeflow::mqtt
