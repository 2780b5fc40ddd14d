// Webhook ingress: an HTTP endpoint whose answer follows the end-to-end acknowledgement. A request
// is answered 202 only once every sink delivered the event (or the dead letter holds it), so a
// sender that sees 202 may forget the event; anything else tells it to send again.
//
// Threads: the shared server (net/http_server.hpp) reads requests on its event loop, which also
// refuses what needs no body (path, method, rate, bearer token); its handler threads check the
// signature and the JSON and queue the request (bounded). The flow's source thread (run()) takes
// queued requests in batches, emits them, and answers each one from on_ack; a request that waits
// longer than ack_timeout is answered 504 by the server while its event goes on (the sender may
// send it again: at-least-once). No thread waits for an answer.
//
// Statuses: 202 delivered or dead-lettered (mode: async), 200/422 the sink's verdict (mode:
// sync), 400 bad JSON, 401 bad auth (token, signature, stale timestamp, replay), 404 unknown
// path, 405 method, 413 too large, 429 rate limit, a full queue or a full flow, 503 stopping or
// a run that ended with the event unresolved, 504 ack_timeout. Errors are {"error": "..."}.
#pragma once

#include "listener.hpp"

#include <edgeflow/sdk/state_file.hpp>

#include <Poco/Net/SocketAddress.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace edgeflow::http {

using Clock = std::chrono::steady_clock;

inline int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Signatures seen within the tolerance window, bounded: a full cache refuses new signatures
// (503) rather than forgetting one that could then be replayed. With a state directory the
// window survives a restart: each signature is appended to a file before its request goes on
// (a process crash keeps it; a power loss may lose the last ones), and the file is rewritten
// with the live ones when it has grown to twice the capacity.
class ReplayCache {
 public:
  ReplayCache(size_t capacity, std::string file, int64_t now_s) : capacity_(capacity), file_(std::move(file)) {
    if (file_.empty()) return;
    std::ifstream in(file_);
    std::string line;
    while (std::getline(in, line)) {
      size_t sp = line.find(' ');
      if (sp == std::string::npos) continue;
      std::string sig = line.substr(sp + 1);
      if (line[0] == '-') {
        erase(sig);
      } else if (int64_t expires = std::atoll(line.c_str()); expires >= now_s && !seen_.count(sig) && seen_.size() < capacity_) {
        seen_.insert(sig);
        by_expiry_.emplace(expires, sig);
      }
    }
    rewrite();
  }
  ~ReplayCache() {
    if (fd_ >= 0) ::close(fd_);
  }
  ReplayCache(const ReplayCache&) = delete;
  ReplayCache& operator=(const ReplayCache&) = delete;

  enum Result { fresh, replayed, full };
  Result insert(const std::string& sig, int64_t expires_s, int64_t now_s) {
    std::lock_guard lock(mutex_);
    while (!by_expiry_.empty() && by_expiry_.begin()->first < now_s) {
      seen_.erase(by_expiry_.begin()->second);
      by_expiry_.erase(by_expiry_.begin());
    }
    if (seen_.count(sig)) return replayed;
    if (seen_.size() >= capacity_) return full;
    seen_.insert(sig);
    by_expiry_.emplace(expires_s, sig);
    append(std::to_string(expires_s) + " " + sig + "\n");
    return fresh;
  }
  // A request answered "send again" (429, 503, 504) gives its signature back, so the retry passes.
  // Best effort on disk, and never a rewrite: it runs on the server's event loop too (at 504).
  void forget(const std::string& sig) noexcept {
    std::lock_guard lock(mutex_);
    if (!erase(sig) || fd_ < 0) return;
    std::string line = "- " + sig + "\n";
    if (sdk::write_all(fd_, line.data(), line.size())) ++lines_;
  }

 private:
  bool erase(const std::string& sig) {
    if (!seen_.erase(sig)) return false;
    for (auto it = by_expiry_.begin(); it != by_expiry_.end(); ++it)
      if (it->second == sig) {
        by_expiry_.erase(it);
        break;
      }
    return true;
  }

  void append(const std::string& line) {
    if (file_.empty()) return;
    if (++lines_ > 2 * capacity_) return rewrite();
    if (fd_ < 0 || !sdk::write_all(fd_, line.data(), line.size()))
      throw Error("cannot record a signature in " + file_ + ": " + std::strerror(errno));
  }

  void rewrite() {
    std::string live;
    for (auto& [expires, sig] : by_expiry_) live += std::to_string(expires) + " " + sig + "\n";
    sdk::store_atomically(file_, live);
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(file_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    lines_ = by_expiry_.size();
  }

  std::mutex mutex_;
  size_t capacity_;
  std::string file_;
  int fd_ = -1;
  size_t lines_ = 0;
  std::unordered_set<std::string> seen_;
  std::multimap<int64_t, std::string> by_expiry_;
};

// Requests per second with bursts; answers how long until the next one would pass.
class TokenBucket {
 public:
  TokenBucket(double rate, double burst) : rate_(rate), burst_(burst), tokens_(burst), last_(Clock::now()) {}
  // 0 when the request may pass, else the seconds (rounded up, at least 1) to wait.
  int take() {
    std::lock_guard lock(mutex_);
    auto now = Clock::now();
    tokens_ = std::min(burst_, tokens_ + std::chrono::duration<double>(now - last_).count() * rate_);
    last_ = now;
    if (tokens_ >= 1) {
      tokens_ -= 1;
      return 0;
    }
    return std::max(1, int(std::ceil((1 - tokens_) / rate_)));
  }

 private:
  std::mutex mutex_;
  double rate_, burst_, tokens_;
  Clock::time_point last_;
};

class HttpSource : public sdk::Source {
 public:
  struct Config {
    std::string listen = "0.0.0.0:8080";
    std::string path = "/";
    std::vector<std::string> methods{"POST"};
    std::string format = "json";
    std::string mode = "async";
    std::vector<std::string> headers;
    std::string bearer_token;
    std::string hmac_secret;
    std::string auth;
    std::string signature_header = "X-Edgeflow-Signature";
    std::string timestamp_header = "X-Edgeflow-Timestamp";
    std::chrono::milliseconds signature_tolerance{300000};
    int64_t replay_cache_size = 100000;
    sdk::Bytes max_body_bytes{1 << 20};
    double rate_limit = 0;
    double rate_burst = 0;
    std::chrono::milliseconds ack_timeout{30000};
    int64_t queue_size = 1024;
    int64_t batch_size = 64;
    std::chrono::milliseconds busy_timeout{1000};
    std::string tls_cert;
    std::string tls_key;
    int64_t threads = 4;
    int64_t max_connections = 1024;
    int64_t max_connections_per_client = 256;
    std::chrono::milliseconds head_timeout{10000};
    std::chrono::milliseconds body_timeout{10000};
    std::chrono::milliseconds idle_timeout{15000};
  };
  static constexpr const char* type = "http";
  static constexpr const char* description =
      "Webhook endpoint: each request body becomes an event; the request is answered 202 only after "
      "the flow delivered it (or dead-lettered it). Several flows can share one listener by path.";
  static void describe(sdk::Spec<Config>& s) {
    s.option("listen", &Config::listen)
        .doc("address:port to listen on. Flows with the same listen share one server and differ by path.")
        .example("127.0.0.1:9000");
    s.option("path", &Config::path).doc("Request path this flow serves (exact match, query ignored).").example("/hooks/orders");
    s.option("methods", &Config::methods).doc("Accepted methods; others get 405.").example("[POST, PUT]");
    s.option("format", &Config::format)
        .one_of("json|raw")
        .doc("json: the body must be one JSON value (400 otherwise). raw: any bytes.")
        .example("raw");
    s.option("mode", &Config::mode)
        .one_of("async|sync")
        .doc("async: 202 once delivered or dead-lettered. sync: 200 when delivered, 422 when the flow "
             "dead-lettered the event (the sink refused it).")
        .example("sync");
    s.option("headers", &Config::headers)
        .doc("Request headers copied into the event's headers (absent ones are skipped).")
        .example("[X-Request-Id, X-GitHub-Event]");
    s.option("bearer_token", &Config::bearer_token)
        .secret()
        .doc("Require `Authorization: Bearer <token>`; never logged.")
        .example("${file:/run/credentials/edgeflow.service/webhook-token}");
    s.option("hmac_secret", &Config::hmac_secret)
        .secret()
        .doc("Require an HMAC-SHA256 signature over `<timestamp>.<raw body>` with this key, sent as "
             "`sha256=<hex>` in signature_header, the Unix time in seconds in timestamp_header.")
        .example("${env:WEBHOOK_HMAC_KEY}");
    s.option("auth", &Config::auth)
        .one_of("|none")
        .doc("`none` accepts requests without bearer_token or hmac_secret on an address beyond loopback; "
             "without it such a listener is a config error (a webhook open to the network by accident).")
        .example("none");
    s.option("signature_header", &Config::signature_header).doc("Header carrying the HMAC signature.").example("X-Signature");
    s.option("timestamp_header", &Config::timestamp_header).doc("Header carrying the signed Unix timestamp.").example("X-Timestamp");
    s.option("signature_tolerance", &Config::signature_tolerance)
        .min(1000)
        .doc("How far the signed timestamp may be from now, either way; a signature is refused as a "
             "replay if seen within this window.")
        .example("2m");
    s.option("replay_cache_size", &Config::replay_cache_size)
        .min(1)
        .doc("Signatures remembered within the tolerance window; when full, new signed requests get 503.")
        .example("500000");
    s.option("max_body_bytes", &Config::max_body_bytes).min(1).doc("Larger bodies get 413.").example("256KiB");
    s.option("rate_limit", &Config::rate_limit)
        .min(0)
        .doc("Requests per second this flow accepts (token bucket; 0: no limit); over it: 429 with Retry-After.")
        .example("200");
    s.option("rate_burst", &Config::rate_burst)
        .min(0)
        .doc("Requests accepted at once above the rate (bucket size); default: rate_limit, at least 1.")
        .example("50");
    s.option("ack_timeout", &Config::ack_timeout)
        .min(1)
        .doc("Longest wait for the acknowledgement; then 504, and the event still goes on (a sender "
             "that sends it again may cause a duplicate).")
        .example("10s");
    s.option("queue_size", &Config::queue_size)
        .min(1)
        .doc("Requests waiting for the flow's source thread; when full, 429.")
        .example("4096");
    s.option("batch_size", &Config::batch_size).range(1, 4096).doc("Requests emitted together, at most.").example("128");
    s.option("busy_timeout", &Config::busy_timeout)
        .doc("How long a request waits for room while the flow is full (max_in_flight) before 429.")
        .example("200ms");
    s.option("tls_cert", &Config::tls_cert).doc("Server certificate chain (PEM); with tls_key, serve HTTPS.").example("/etc/edgeflow/tls.crt");
    s.option("tls_key", &Config::tls_key).doc("Private key of tls_cert (PEM).").example("/etc/edgeflow/tls.key");
    s.option("threads", &Config::threads)
        .range(1, 256)
        .doc("Threads of the listener that check requests (signature, JSON); connections do not hold one.")
        .example("8");
    s.option("max_connections", &Config::max_connections)
        .range(1, 1000000)
        .doc("Open connections the listener accepts; more are answered 503 and closed.")
        .example("4096");
    s.option("max_connections_per_client", &Config::max_connections_per_client)
        .range(1, 1000000)
        .doc("Open connections from one client address; more are answered 503 and closed. Behind a "
             "reverse proxy every connection comes from the proxy: raise it to max_connections.")
        .example("64");
    s.option("head_timeout", &Config::head_timeout)
        .min(100)
        .doc("Time a client has to send a request's whole head (request line and headers); then 408.")
        .example("5s");
    s.option("body_timeout", &Config::body_timeout)
        .min(100)
        .doc("Longest pause while a body is being sent; then 408.")
        .example("5s");
    s.option("idle_timeout", &Config::idle_timeout)
        .min(100)
        .doc("How long a keep-alive connection may sit between requests before it is closed.")
        .example("30s");
  }

  HttpSource(sdk::Context c, Config cfg) : Source(c), cfg_(std::move(cfg)) {
    try {
      Poco::Net::SocketAddress check(cfg_.listen);
    } catch (const Poco::Exception& e) {
      throw Error(c.where("listen") + ": listen: \"" + cfg_.listen + "\" is not address:port (" + e.displayText() + ")");
    }
    if (cfg_.path.empty() || cfg_.path[0] != '/' || cfg_.path.find('?') != std::string::npos)
      throw Error(c.where("path") + ": path: must start with / and hold no query, e.g. /hooks/orders");
    if (cfg_.methods.empty()) throw Error(c.where("methods") + ": methods: list at least one, e.g. [POST]");
    for (auto& m : cfg_.methods) {
      if (m.empty() || !std::all_of(m.begin(), m.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; }))
        throw Error(c.where("methods") + ": methods: \"" + m + "\" is not an HTTP method in capitals, e.g. POST");
    }
    if (!cfg_.bearer_token.empty() && !cfg_.hmac_secret.empty())
      throw Error(c.where("hmac_secret") + ": hmac_secret: use either bearer_token or hmac_secret, not both");
    bool open = cfg_.bearer_token.empty() && cfg_.hmac_secret.empty();
    if (cfg_.auth == "none" && !open)
      throw Error(c.where("auth") + ": auth: none contradicts the bearer_token or hmac_secret also given; remove one");
    if (open && cfg_.auth != "none" && !net::is_loopback(Poco::Net::SocketAddress(cfg_.listen).host().toString()))
      throw Error(c.where("listen") + ": listen: " + cfg_.listen +
                  " is reachable beyond this machine and the webhook has no authentication: set bearer_token or "
                  "hmac_secret, or write `auth: none` to accept anyone's requests");
    if (cfg_.tls_cert.empty() != cfg_.tls_key.empty())
      throw Error(c.where(cfg_.tls_cert.empty() ? "tls_key" : "tls_cert") + ": tls_cert and tls_key go together: set both for HTTPS");
    if (cfg_.rate_burst > 0 && cfg_.rate_limit <= 0)
      throw Error(c.where("rate_burst") + ": rate_burst: needs rate_limit");
  }

  void start() override {
    // The replay window is kept in the state directory (when there is one) only if it is needed.
    auto ep = std::make_shared<Endpoint>(cfg_, cfg_.hmac_secret.empty() ? "" : sdk::state_file(context(), ".replay"));
    Listener::attach({cfg_.listen, cfg_.tls_cert, cfg_.tls_key, int(cfg_.threads), size_t(cfg_.max_connections),
                      size_t(cfg_.max_connections_per_client), cfg_.head_timeout, cfg_.body_timeout, cfg_.idle_timeout},
                     cfg_.path, context().name(), ep);
    endpoint_ = std::move(ep);
    context().info("serving " + std::string(cfg_.tls_cert.empty() ? "http" : "https") + "://" + cfg_.listen + cfg_.path);
  }

  void stop() override {
    if (!endpoint_) return;
    Listener::detach(cfg_.listen, cfg_.path);
    endpoint_->close();
    for (auto& [token, p] : waiting_) endpoint_->finish(p, 503, error_body("the flow stopped before the event was delivered"), 1);
    waiting_.clear();
    context().counter("requests", double(endpoint_->requests()));
    endpoint_.reset();
  }

  void run() override {
    std::vector<std::shared_ptr<Pending>> batch;
    std::vector<ef_message*> msgs;
    for (;;) {
      // With events in flight, acks from sink threads arrive through poll(); keep it short then.
      bool busy = in_flight() > 0;
      endpoint_->take(batch, size_t(cfg_.batch_size), busy ? std::chrono::milliseconds(0) : kIdleWait);
      if (batch.empty()) {
        if (!poll(busy ? kAckPollMs : 0)) break;
        continue;
      }
      msgs.clear();
      // Registered before emit(): once it is admitted, their acks may come in any emit() or poll().
      for (auto& p : batch) {
        uint64_t token = first_token_ + msgs.size();
        msgs.push_back(to_message(*p, token));
        waiting_.emplace(token, p);
      }
      ef_status st = emit(msgs, int32_t(cfg_.busy_timeout.count()));
      if (st == EF_OK) {
        first_token_ += batch.size();
        events_ += batch.size();
        context().counter("events", double(events_));
        batch.clear();
        continue;
      }
      for (size_t i = 0; i < msgs.size(); ++i) {
        waiting_.erase(first_token_ + i);
        free_message(sdk::Message(msgs[i]));
      }
      for (auto& p : batch)
        if (st == EF_BUSY) endpoint_->finish(p, 429, error_body("the flow is full; send again later"), 1);
        else endpoint_->finish(p, 503, error_body("the flow is stopping; send again later"), 1);
      batch.clear();
      if (st != EF_BUSY) break;
    }
    // From now on new requests get 503; the drain still delivers acks for the waiting ones.
    endpoint_->close();
  }

  void on_ack(std::span<const ef_ack> acks) override {
    for (auto& a : acks) {
      auto it = waiting_.find(a.token);
      if (it == waiting_.end()) continue;
      auto p = std::move(it->second);
      waiting_.erase(it);
      bool sync = cfg_.mode == "sync";
      switch (a.status) {
        case EF_ACK_DELIVERED:
          if (sync) endpoint_->finish(p, 200, "{\"status\":\"delivered\"}");
          else endpoint_->finish(p, 202, "{\"status\":\"accepted\"}");
          break;
        case EF_ACK_REJECTED:
          if (sync)
            endpoint_->finish(p, 422, "{\"status\":\"rejected\",\"error\":\"the flow refused the event; it is in the dead letter\"}");
          else endpoint_->finish(p, 202, "{\"status\":\"dead_lettered\"}");
          break;
        default:
          endpoint_->finish(p, 503, error_body("the event was not delivered; send it again"), 1);
      }
    }
  }

 private:
  static constexpr std::chrono::milliseconds kIdleWait{100};
  static constexpr int32_t kAckPollMs = 2;

  // One request from its arrival to its answer: the server's Reply, answered from the flow's
  // source thread (or by the server itself when ack_timeout passes).
  struct Pending {
    std::string body, content_type, method, path, remote, signature;
    std::vector<std::pair<std::string, std::string>> headers;
    std::shared_ptr<net::Reply> reply;
  };

  // The route one source registers: what the server's threads do, and the queue to the flow.
  class Endpoint : public Route {
   public:
    Endpoint(const Config& cfg, std::string replay_file)
        : cfg_(cfg),
          replay_(std::make_shared<ReplayCache>(size_t(cfg.replay_cache_size), std::move(replay_file), now_seconds())),
          bucket_(cfg.rate_limit, cfg.rate_burst > 0 ? cfg.rate_burst : std::max(1.0, cfg.rate_limit)) {}

    // What can be decided before the body is read, so a refused request never costs its body.
    std::optional<Response> head(const Request& req, uint64_t& max_body) override {
      requests_.fetch_add(1, std::memory_order_relaxed);
      if (std::find(cfg_.methods.begin(), cfg_.methods.end(), req.method) == cfg_.methods.end()) {
        std::string allow;
        for (auto& m : cfg_.methods) allow += (allow.empty() ? "" : ", ") + m;
        Response r = answer(405, error_body(req.method + " is not accepted here; use " + allow));
        r.headers.push_back({"Allow", allow});
        return r;
      }
      if (closed()) return answer(503, error_body("the flow is not running; send again later"), 1);
      if (cfg_.rate_limit > 0)
        if (int wait = bucket_.take()) return answer(429, error_body("rate limit exceeded; send again later"), wait);
      if (!cfg_.bearer_token.empty()) {
        const std::string* auth = req.header("Authorization");
        static const std::string scheme = "Bearer ";
        if (!auth || auth->size() <= scheme.size() ||
            !std::equal(scheme.begin(), scheme.end(), auth->begin(), [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
            })) {
          Response r = answer(401, error_body("missing bearer token (Authorization: Bearer <token>)"));
          r.headers.push_back({"WWW-Authenticate", "Bearer"});
          return r;
        }
        if (!constant_time_equal(std::string_view(*auth).substr(scheme.size()), cfg_.bearer_token))
          return answer(401, error_body("bad bearer token"));
      }
      max_body = cfg_.max_body_bytes.value;
      return std::nullopt;
    }

    void handle(Request req, std::shared_ptr<net::Reply> reply) override {
      auto p = std::make_shared<Pending>();
      p->body = std::move(req.body);
      p->reply = std::move(reply);
      if (std::string why = authenticate(req, *p); !why.empty())
        return p->reply->send(answer(why == kReplayFull ? 503 : 401, error_body(why), why == kReplayFull ? 1 : 0));
      if (cfg_.format == "json") {
        if (std::string why = json_error(p->body); !why.empty()) {
          forget(*p);
          return p->reply->send(answer(400, error_body("the body is not JSON: " + why)));
        }
      }
      if (const std::string* ct = req.header("Content-Type")) p->content_type = *ct;
      if (p->content_type.empty() && cfg_.format == "json") p->content_type = "application/json";
      p->method = req.method;
      p->path = cfg_.path;
      p->remote = req.remote;
      for (auto& h : cfg_.headers)
        if (const std::string* v = req.header(h)) p->headers.emplace_back(h, *v);

      // The server answers 504 when the flow has not acknowledged in time; the event goes on.
      p->reply->on_timeout(cfg_.ack_timeout, [replay = replay_, sig = p->signature, ms = cfg_.ack_timeout.count()] {
        if (!sig.empty()) replay->forget(sig);
        return answer(504, error_body("no acknowledgement within " + std::to_string(ms) +
                                      " ms; the event is still being processed and may be delivered"));
      });
      std::unique_lock lock(mutex_);
      if (closed_) {
        lock.unlock();
        return finish(p, 503, error_body("the flow is not running; send again later"), 1);
      }
      if (queue_.size() >= size_t(cfg_.queue_size)) {
        lock.unlock();
        return finish(p, 429, error_body("too many requests waiting; send again later"), 1);
      }
      // The source thread waits for a non-empty queue: only the first request of a run wakes it.
      queue_.push_back(p);
      if (queue_.size() == 1) work_.notify_one();
    }

    // Flow thread: up to `max` queued requests, waiting up to `wait` for the first.
    void take(std::vector<std::shared_ptr<Pending>>& out, size_t max, std::chrono::milliseconds wait) {
      std::unique_lock lock(mutex_);
      if (queue_.empty() && wait.count() > 0) work_.wait_for(lock, wait, [&] { return !queue_.empty(); });
      while (!queue_.empty() && out.size() < max) {
        out.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }

    // Answers a request (the server keeps only the first answer: one that timed out is left alone).
    // A "send again" answer gives the signature back, so the retry passes the replay check.
    void finish(const std::shared_ptr<Pending>& p, int status, std::string body, int retry_after = 0) {
      if (status == 429 || status == 503) forget(*p);
      p->reply->send(answer(status, std::move(body), retry_after));
    }

    // New requests get 503; queued ones are answered 503 now.
    void close() {
      std::deque<std::shared_ptr<Pending>> left;
      {
        std::lock_guard lock(mutex_);
        closed_ = true;
        left.swap(queue_);
      }
      for (auto& p : left) finish(p, 503, error_body("the flow is stopping; send again later"), 1);
    }

    uint64_t requests() const { return requests_.load(std::memory_order_relaxed); }

   private:
    static constexpr const char* kReplayFull = "too many signed requests within the tolerance window; send again later";

    bool closed() {
      std::lock_guard lock(mutex_);
      return closed_;
    }

    // Empty when the signature passes (or none is asked for), else why not (the text of the 401).
    std::string authenticate(const Request& req, Pending& p) {
      if (cfg_.hmac_secret.empty()) return {};
      const std::string* ts_header = req.header(cfg_.timestamp_header);
      const std::string* sig_header = req.header(cfg_.signature_header);
      if (!ts_header || !sig_header || ts_header->empty() || sig_header->empty())
        return "missing signature: send " + cfg_.timestamp_header + " and " + cfg_.signature_header;
      const std::string& ts = *ts_header;
      std::string sig = *sig_header;
      if (ts.size() > 12 || ts.find_first_not_of("0123456789") != std::string::npos)
        return cfg_.timestamp_header + " must be the Unix time in seconds";
      int64_t t = std::stoll(ts);
      int64_t now = now_seconds();
      int64_t tolerance = cfg_.signature_tolerance.count() / 1000;
      if (t < now - tolerance || t > now + tolerance) return "stale timestamp: more than " + std::to_string(tolerance) + " s from now";
      if (sig.rfind("sha256=", 0) == 0) sig.erase(0, 7);
      std::transform(sig.begin(), sig.end(), sig.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
      std::string signed_text = ts + "." + p.body;
      if (!constant_time_equal(sig, hmac_sha256_hex(cfg_.hmac_secret, signed_text))) return "bad signature";
      switch (replay_->insert(sig, t + tolerance, now)) {
        case ReplayCache::replayed: return "signature already used (replay)";
        case ReplayCache::full: return kReplayFull;
        case ReplayCache::fresh: break;
      }
      p.signature = std::move(sig);
      return {};
    }

    void forget(const Pending& p) {
      if (!p.signature.empty()) replay_->forget(p.signature);
    }

    const Config cfg_;  // a copy: a server thread may still be in handle() after the source is gone
    std::shared_ptr<ReplayCache> replay_;
    TokenBucket bucket_;
    std::mutex mutex_;
    std::condition_variable work_;
    std::deque<std::shared_ptr<Pending>> queue_;
    bool closed_ = false;
    std::atomic<uint64_t> requests_{0};
  };

  ef_message* to_message(const Pending& p, uint64_t token) {
    sdk::Message m = new_message();
    m.set_payload(p.body);
    if (!p.content_type.empty()) m.set_content_type(p.content_type);
    m.set_timestamp_ms(
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
    for (auto& [name, value] : p.headers) m.set_header(name, value);
    m.set_meta("http.method", p.method);
    m.set_meta("http.path", p.path);
    m.set_meta("http.remote_addr", p.remote);
    m.set_token(token);
    return m.raw();
  }

  Config cfg_;
  std::shared_ptr<Endpoint> endpoint_;
  std::unordered_map<uint64_t, std::shared_ptr<Pending>> waiting_;  // emitted, by token
  uint64_t first_token_ = 1;
  uint64_t events_ = 0;
};

}  // namespace edgeflow::http
