// Webhook ingress: an HTTP endpoint whose answer follows the end-to-end acknowledgement. A request
// is answered 202 only once every sink delivered the event (or the dead letter holds it), so a
// sender that sees 202 may forget the event; anything else tells it to send again.
//
// Threads: Poco's server threads read, check and authenticate a request, then queue it (bounded)
// and wait on it. The flow's source thread (run()) takes queued requests in batches, emits them, and
// completes each one from on_ack; a request that waits longer than ack_timeout is answered 504
// while its event goes on (the sender may send it again: at-least-once).
//
// Statuses: 202 delivered or dead-lettered (mode: async), 200/422 the sink's verdict (mode:
// sync), 400 bad JSON, 401 bad auth (token, signature, stale timestamp, replay), 404 unknown
// path, 405 method, 413 too large, 429 rate limit, a full queue or a full flow, 503 stopping or
// a run that ended with the event unresolved, 504 ack_timeout. Errors are {"error": "..."}.
#pragma once

#include "listener.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <istream>
#include <map>
#include <memory>
#include <set>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace edgeflow::http {

using Clock = std::chrono::steady_clock;

// Signatures seen within the tolerance window, bounded: a full cache refuses new signatures
// (503) rather than forgetting one that could then be replayed.
class ReplayCache {
 public:
  explicit ReplayCache(size_t capacity) : capacity_(capacity) {}
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
    return fresh;
  }
  // A request answered "send again" (429, 503, 504) gives its signature back, so the retry passes.
  void forget(const std::string& sig) {
    std::lock_guard lock(mutex_);
    if (!seen_.erase(sig)) return;
    for (auto it = by_expiry_.begin(); it != by_expiry_.end(); ++it)
      if (it->second == sig) {
        by_expiry_.erase(it);
        return;
      }
  }

 private:
  std::mutex mutex_;
  size_t capacity_;
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
    int64_t threads = 128;
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
        .range(1, 4096)
        .doc("Server threads of the listener: each open (keep-alive) connection holds one.")
        .example("256");
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
    if (cfg_.tls_cert.empty() != cfg_.tls_key.empty())
      throw Error(c.where(cfg_.tls_cert.empty() ? "tls_key" : "tls_cert") + ": tls_cert and tls_key go together: set both for HTTPS");
    if (cfg_.rate_burst > 0 && cfg_.rate_limit <= 0)
      throw Error(c.where("rate_burst") + ": rate_burst: needs rate_limit");
  }

  void start() override {
    auto ep = std::make_shared<Endpoint>(cfg_);
    Listener::attach({cfg_.listen, cfg_.tls_cert, cfg_.tls_key, int(cfg_.threads)}, cfg_.path, context().name(), ep);
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

  // One request from its arrival to its answer; shared by its server thread and the flow's
  // source thread.
  struct Pending {
    std::string body, content_type, method, path, remote, signature;
    std::vector<std::pair<std::string, std::string>> headers;
    bool done = false;
    int status = 0;
    int retry_after = 0;
    std::string answer;
    std::condition_variable cv;
  };

  // The route one source registers: everything the server threads do, and the queue to the flow.
  class Endpoint : public Route {
   public:
    explicit Endpoint(const Config& cfg)
        : cfg_(cfg),
          replay_(size_t(cfg.replay_cache_size)),
          bucket_(cfg.rate_limit, cfg.rate_burst > 0 ? cfg.rate_burst : std::max(1.0, cfg.rate_limit)) {}

    void handle(HTTPServerRequest& req, HTTPServerResponse& resp) override {
      requests_.fetch_add(1, std::memory_order_relaxed);
      if (std::find(cfg_.methods.begin(), cfg_.methods.end(), req.getMethod()) == cfg_.methods.end()) {
        std::string allow;
        for (auto& m : cfg_.methods) allow += (allow.empty() ? "" : ", ") + m;
        resp.set("Allow", allow);
        resp.setKeepAlive(false);
        return respond(resp, 405, error_body(req.getMethod() + " is not accepted here; use " + allow));
      }
      if (closed()) {
        resp.setKeepAlive(false);
        return respond(resp, 503, error_body("the flow is not running; send again later"), 1);
      }
      if (cfg_.rate_limit > 0) {
        if (int wait = bucket_.take()) {
          resp.setKeepAlive(false);
          return respond(resp, 429, error_body("rate limit exceeded; send again later"), wait);
        }
      }
      auto p = std::make_shared<Pending>();
      if (req.hasContentLength() && uint64_t(req.getContentLength64()) > cfg_.max_body_bytes.value) {
        resp.setKeepAlive(false);  // the body is not read
        return respond(resp, 413, error_body("the body is larger than " + std::to_string(cfg_.max_body_bytes.value) + " bytes"));
      }
      if (!read_body(req.stream(), p->body)) {
        resp.setKeepAlive(false);
        return respond(resp, 413, error_body("the body is larger than " + std::to_string(cfg_.max_body_bytes.value) + " bytes"));
      }
      if (std::string why = authenticate(req, *p); !why.empty()) {
        return respond(resp, why == kReplayFull ? 503 : 401, error_body(why), why == kReplayFull ? 1 : 0);
      }
      if (cfg_.format == "json") {
        if (std::string why = json_error(p->body); !why.empty()) {
          forget(*p);
          return respond(resp, 400, error_body("the body is not JSON: " + why));
        }
      }
      p->content_type = req.getContentType();
      if (p->content_type.empty() && cfg_.format == "json") p->content_type = "application/json";
      p->method = req.getMethod();
      p->path = cfg_.path;
      p->remote = req.clientAddress().toString();
      for (auto& h : cfg_.headers)
        if (req.has(h)) p->headers.emplace_back(h, req.get(h));

      std::unique_lock lock(mutex_);
      if (closed_) {
        lock.unlock();
        forget(*p);
        return respond(resp, 503, error_body("the flow is not running; send again later"), 1);
      }
      if (queue_.size() >= size_t(cfg_.queue_size)) {
        lock.unlock();
        forget(*p);
        return respond(resp, 429, error_body("too many requests waiting; send again later"), 1);
      }
      // The source thread waits for a non-empty queue: only the first request of a run wakes it.
      queue_.push_back(p);
      if (queue_.size() == 1) work_.notify_one();
      if (!p->cv.wait_for(lock, cfg_.ack_timeout, [&] { return p->done; })) {
        p->done = true;  // the source thread's answer, when it comes, is dropped
        lock.unlock();
        forget(*p);
        return respond(resp, 504,
                       error_body("no acknowledgement within " + std::to_string(cfg_.ack_timeout.count()) +
                                  " ms; the event is still being processed and may be delivered"));
      }
      int status = p->status, retry = p->retry_after;
      std::string answer = std::move(p->answer);
      lock.unlock();
      if (status == 429 || status == 503) forget(*p);
      respond(resp, status, answer, retry);
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

    // Answers a request (once; a request that timed out already is left alone).
    void finish(const std::shared_ptr<Pending>& p, int status, std::string answer, int retry_after = 0) {
      {
        std::lock_guard lock(mutex_);
        if (p->done) return;
        p->done = true;
        p->status = status;
        p->answer = std::move(answer);
        p->retry_after = retry_after;
      }
      p->cv.notify_one();
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

    bool read_body(std::istream& in, std::string& body) const {
      uint64_t limit = cfg_.max_body_bytes.value;
      char buf[8192];
      while (in) {
        in.read(buf, sizeof buf);
        body.append(buf, size_t(in.gcount()));
        if (body.size() > limit) return false;
      }
      return true;
    }

    // Empty when the request may pass, else why not (the text of the 401).
    std::string authenticate(HTTPServerRequest& req, Pending& p) {
      if (!cfg_.bearer_token.empty()) {
        std::string auth = req.get("Authorization", "");  // a copy: get() may return its default argument
        static const std::string scheme = "Bearer ";
        if (auth.size() <= scheme.size() || !std::equal(scheme.begin(), scheme.end(), auth.begin(), [](char a, char b) {
              return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
            }))
          return "missing bearer token (Authorization: Bearer <token>)";
        if (!constant_time_equal(std::string_view(auth).substr(scheme.size()), cfg_.bearer_token)) return "bad bearer token";
        return {};
      }
      if (cfg_.hmac_secret.empty()) return {};
      std::string ts = req.get(cfg_.timestamp_header, "");
      std::string sig = req.get(cfg_.signature_header, "");
      if (ts.empty() || sig.empty())
        return "missing signature: send " + cfg_.timestamp_header + " and " + cfg_.signature_header;
      if (ts.size() > 12 || ts.find_first_not_of("0123456789") != std::string::npos)
        return cfg_.timestamp_header + " must be the Unix time in seconds";
      int64_t t = std::stoll(ts);
      int64_t now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
      int64_t tolerance = cfg_.signature_tolerance.count() / 1000;
      if (t < now - tolerance || t > now + tolerance) return "stale timestamp: more than " + std::to_string(tolerance) + " s from now";
      if (sig.rfind("sha256=", 0) == 0) sig.erase(0, 7);
      std::transform(sig.begin(), sig.end(), sig.begin(), [](unsigned char ch) { return char(std::tolower(ch)); });
      std::string signed_text = ts + "." + p.body;
      if (!constant_time_equal(sig, hmac_sha256_hex(cfg_.hmac_secret, signed_text))) return "bad signature";
      switch (replay_.insert(sig, t + tolerance, now)) {
        case ReplayCache::replayed: return "signature already used (replay)";
        case ReplayCache::full: return kReplayFull;
        case ReplayCache::fresh: break;
      }
      p.signature = std::move(sig);
      return {};
    }

    void forget(const Pending& p) {
      if (!p.signature.empty()) replay_.forget(p.signature);
    }

    const Config cfg_;  // a copy: a server thread may still be in handle() after the source is gone
    ReplayCache replay_;
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
