// Webhook/REST egress: each message (or, with batch_size > 1, a JSON array of several) is sent
// as one HTTP request by a pool of worker threads that keep their connections alive.
//
// Outcome: 2xx delivered; 408, 429, 5xx, connection errors and timeouts are tried again here,
// with capped exponential backoff and full jitter (a Retry-After is waited for instead, up to
// max_retry_after), up to max_attempts, and then handed to the runtime as a retry (which keeps
// retrying with its own backoff); any other status is refused for good: the message goes to the
// dead letter with the status and the start of the response body.
//
// Why retry inside the sink when the runtime retries too: a webhook that answers 503 for a
// second should not stall the flow's whole sink queue behind the runtime's held list; the
// workers ride it out per request while other requests go on. Order is therefore not kept
// across workers (workers: 1 keeps it).
//
// Secrets (bearer_token, header values) never appear in logs or reasons: a reason names the
// method, scheme, host, port and path, never the query or the headers.
#pragma once

#include "common.hpp"

#include <edgeflow/sdk/backoff.hpp>
#include <edgeflow/sdk/expr.hpp>

#include <Poco/Exception.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/URI.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <utility>
#include <vector>

namespace edgeflow::http {

namespace expr = sdk::expr;

class HttpSink : public sdk::Sink {
 public:
  struct Config {
    std::string url;
    std::string method = "POST";
    sdk::Json headers;
    std::string bearer_token;
    std::string content_type = "application/json";
    int64_t batch_size = 1;
    std::chrono::milliseconds timeout{10000};
    int64_t max_attempts = 5;
    std::chrono::milliseconds initial_backoff{200};
    std::chrono::milliseconds max_backoff{10000};
    std::chrono::milliseconds max_retry_after{60000};
    int64_t workers = 4;
    std::string ca_file;
    bool insecure_skip_verify = false;
    std::string client_cert;
    std::string client_key;
  };
  static constexpr const char* type = "http";
  static constexpr const char* description =
      "Sends each message as an HTTP request (webhook, REST call); 2xx counts as delivered, 408/429/5xx "
      "and network errors are retried, other statuses go to the dead letter.";
  static void describe(sdk::Spec<Config>& s) {
    s.option("url", &Config::url)
        .required()
        .doc("http:// or https:// URL: text, or a template with ${expression} parts evaluated per message.")
        .example("https://api.example.com/orders/${id}");
    s.option("method", &Config::method).doc("Method: text, or a template.").example("PUT");
    s.option("headers", &Config::headers)
        .secret()
        .doc("Request headers: name: expression (quote literal text: \"'v1'\"). Redacted in prints: "
             "they may hold credentials.")
        .example("{ X-Event-Type: op, X-Source: \"'edge-7'\" }");
    s.option("bearer_token", &Config::bearer_token)
        .secret()
        .doc("Sends `Authorization: Bearer <token>`; never logged.")
        .example("${file:/run/credentials/edgeflow.service/api-token}");
    s.option("content_type", &Config::content_type)
        .doc("Content-Type when the message has none (with batch_size > 1 always application/json).")
        .example("text/plain");
    s.option("batch_size", &Config::batch_size)
        .range(1, 10000)
        .doc("Messages per request: more than 1 sends a JSON array of the payloads (which must be JSON) "
             "of messages with the same URL, method and headers; the whole array shares one outcome.")
        .example("100");
    s.option("timeout", &Config::timeout).min(1).doc("Connect, send and receive timeout of one attempt.").example("5s");
    s.option("max_attempts", &Config::max_attempts)
        .range(1, 1000)
        .doc("Attempts per request here before it goes back to the runtime as a retry.")
        .example("3");
    s.option("initial_backoff", &Config::initial_backoff).min(1).doc("First wait between attempts (doubles, full jitter).").example("50ms");
    s.option("max_backoff", &Config::max_backoff).min(1).doc("Longest wait between attempts.").example("30s");
    s.option("max_retry_after", &Config::max_retry_after)
        .doc("Longest Retry-After waited for; a longer one ends the attempts (the runtime retries later).")
        .example("5m");
    s.option("workers", &Config::workers)
        .range(1, 256)
        .doc("Requests in flight at once (one worker thread and keep-alive connection set each).")
        .example("16");
    s.option("ca_file", &Config::ca_file)
        .doc("CA certificates (PEM) to verify the server with; default: the system's.")
        .example("/etc/edgeflow/api-ca.pem");
    s.option("insecure_skip_verify", &Config::insecure_skip_verify)
        .doc("Do not verify the server's certificate (logged as a warning at start). Only for tests.")
        .example("true");
    s.option("client_cert", &Config::client_cert).doc("Client certificate (PEM), for mutual TLS.").example("/etc/edgeflow/client.crt");
    s.option("client_key", &Config::client_key).doc("Private key of client_cert (PEM).").example("/etc/edgeflow/client.key");
  }

  HttpSink(sdk::Context c, Config cfg) : Sink(c), cfg_(std::move(cfg)) {
    url_ = expr::compile_template(c, "url", cfg_.url);
    method_ = expr::compile_template(c, "method", cfg_.method);
    if (auto* o = cfg_.headers.object()) {
      for (auto& [name, v] : *o) {
        std::string k = "headers." + name;
        if (!v.string()) throw Error(c.where(k) + ": " + k + ": expected an expression (quote literal text: \"'value'\")");
        headers_.push_back({name, expr::compile_option(c, k, *v.string())});
      }
    } else if (!cfg_.headers.is_null()) {
      throw Error(c.where("headers") + ": headers: expected a map of name: expression");
    }
    if (cfg_.url.find("${") == std::string::npos) check_url(c, cfg_.url);
    if (cfg_.client_cert.empty() != cfg_.client_key.empty())
      throw Error(c.where(cfg_.client_cert.empty() ? "client_key" : "client_cert") +
                  ": client_cert and client_key go together: set both for mutual TLS");
    if (cfg_.max_backoff < cfg_.initial_backoff)
      throw Error(c.where("max_backoff") + ": max_backoff: must be at least initial_backoff");
  }
  ~HttpSink() override { close(); }

  void start() override {
    init_ssl_client();
    if (cfg_.insecure_skip_verify)
      context().warn("insecure_skip_verify: the server's TLS certificate is NOT verified; anyone on the path can read and change the requests");
    try {
      tls_ = new Poco::Net::Context(Poco::Net::Context::TLS_CLIENT_USE, cfg_.client_key, cfg_.client_cert, cfg_.ca_file,
                                    cfg_.insecure_skip_verify ? Poco::Net::Context::VERIFY_NONE : Poco::Net::Context::VERIFY_RELAXED,
                                    9, cfg_.ca_file.empty());
    } catch (const Poco::Exception& e) {
      throw Error("cannot set up TLS (ca_file, client_cert, client_key): " + e.displayText());
    }
    stopping_ = false;
    for (int64_t i = 0; i < cfg_.workers; ++i) workers_.emplace_back([this] { work(); });
  }

  void stop() override { close(); }

  void write(sdk::Batch b) override {
    std::vector<Job> jobs;
    std::map<std::string, size_t> open;  // target -> index of the job still taking messages
    for (size_t i = 0; i < b.size(); ++i) {
      sdk::Message m = b[i];
      Target t;
      try {
        t = target(m);
      } catch (const expr::EvalError& e) {
        ack(m, EF_ACK_REJECTED, e.what());
        continue;
      }
      std::string_view payload = m.payload();
      if (cfg_.batch_size == 1) {
        std::string ct(m.content_type());
        jobs.push_back({std::move(t), std::string(payload), ct.empty() ? cfg_.content_type : ct, {m.raw()}});
        continue;
      }
      if (std::string why = json_error(payload); !why.empty()) {
        ack(m, EF_ACK_REJECTED, "batch_size > 1 sends a JSON array, and this payload is not JSON: " + why);
        continue;
      }
      std::string key = t.key();
      auto it = open.find(key);
      if (it == open.end() || jobs[it->second].msgs.size() >= size_t(cfg_.batch_size)) {
        jobs.push_back({std::move(t), "[", "application/json", {}});
        it = open.insert_or_assign(key, jobs.size() - 1).first;
      }
      Job& j = jobs[it->second];
      if (j.msgs.size()) j.body += ',';
      j.body.append(payload);
      j.msgs.push_back(m.raw());
    }
    if (jobs.empty()) return;
    {
      std::lock_guard lock(mutex_);
      for (auto& j : jobs) {
        if (cfg_.batch_size > 1) j.body += ']';
        queue_.push_back(std::move(j));
      }
    }
    work_cv_.notify_all();
  }

  void flush(int32_t timeout_ms) override {
    std::unique_lock lock(mutex_);
    idle_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return queue_.empty() && active_ == 0; });
  }

 private:
  struct Target {
    std::string scheme, host, path_query, method;
    uint16_t port = 0;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string origin() const { return scheme + "://" + host + ":" + std::to_string(port); }
    // For reasons: no query (it may carry a token), no headers.
    std::string where() const { return method + " " + origin() + path_query.substr(0, path_query.find('?')); }
    std::string key() const {
      std::string k = method + ' ' + origin() + path_query;
      for (auto& [n, v] : headers) k += '\n' + n + ':' + v;
      return k;
    }
  };
  struct Job {
    Target t;
    std::string body, content_type;
    std::vector<ef_message*> msgs;
  };
  enum class Kind { delivered, retry, reject };
  struct Outcome {
    Kind kind;
    std::string reason;
    std::optional<std::chrono::milliseconds> retry_after;
  };
  using Sessions = std::map<std::string, std::unique_ptr<Poco::Net::HTTPClientSession>>;

  static constexpr size_t kExcerptBytes = 512;
  static constexpr size_t kMaxSessionsPerWorker = 64;

  static void check_url(const sdk::Context& c, const std::string& url) {
    try {
      Poco::URI u(url);
      if ((u.getScheme() == "http" || u.getScheme() == "https") && !u.getHost().empty()) return;
    } catch (const Poco::Exception&) {
    }
    throw Error(c.where("url") + ": url: \"" + url + "\" is not an http:// or https:// URL with a host");
  }

  Target target(sdk::Message m) const {
    Target t;
    std::string url = url_.render(m);
    Poco::URI u;
    try {
      u = Poco::URI(url);
    } catch (const Poco::Exception& e) {
      throw expr::EvalError("url: the rendered URL is not valid: " + e.displayText());
    }
    t.scheme = u.getScheme();
    if ((t.scheme != "http" && t.scheme != "https") || u.getHost().empty())
      throw expr::EvalError("url: the rendered URL is not an http:// or https:// URL with a host");
    t.host = u.getHost();
    t.port = u.getPort();
    t.path_query = u.getPathEtc();
    if (t.path_query.empty()) t.path_query = "/";
    t.method = method_.render(m);
    if (t.method.empty() || !std::all_of(t.method.begin(), t.method.end(), [](char ch) { return ch >= 'A' && ch <= 'Z'; }))
      throw expr::EvalError("method: \"" + t.method + "\" is not an HTTP method in capitals");
    for (auto& [name, e] : headers_)
      t.headers.emplace_back(name, expr::required_text(expr::eval_option(e, "headers." + name, m), "headers." + name));
    return t;
  }

  void work() {
    Sessions sessions;
    std::mt19937_64 rng(std::random_device{}());
    for (;;) {
      Job job;
      {
        std::unique_lock lock(mutex_);
        work_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;  // close() answers what is still queued
        job = std::move(queue_.front());
        queue_.pop_front();
        ++active_;
      }
      run(job, sessions, rng);
      {
        std::lock_guard lock(mutex_);
        --active_;
      }
      idle_cv_.notify_all();
    }
  }

  // Workers publish in turn, each reading the totals under the lock: a counter reported lower than
  // before would read as a restarted plugin to the runtime.
  void publish_counters() {
    std::lock_guard lock(counters_mutex_);
    context().counter("requests", double(requests_.load()));
    context().counter("failed_attempts", double(failed_.load()));
  }

  void run(Job& job, Sessions& sessions, std::mt19937_64& rng) {
    for (int64_t attempt = 1;; ++attempt) {
      Outcome o = send(job, sessions);
      requests_.fetch_add(1, std::memory_order_relaxed);
      bool failed = o.kind != Kind::delivered && o.kind != Kind::reject;
      if (failed) failed_.fetch_add(1, std::memory_order_relaxed);
      publish_counters();  // before the ack: whoever sees the ack sees the attempts that led to it
      if (o.kind == Kind::delivered) return resolve(job, EF_ACK_DELIVERED, {});
      if (o.kind == Kind::reject) return resolve(job, EF_ACK_REJECTED, o.reason);
      if (attempt >= cfg_.max_attempts)
        return resolve(job, EF_ACK_RETRY, o.reason + " (" + std::to_string(attempt) + " attempts)");
      std::chrono::milliseconds wait;
      if (o.retry_after) {
        if (*o.retry_after > cfg_.max_retry_after)
          return resolve(job, EF_ACK_RETRY, o.reason + " (Retry-After beyond max_retry_after)");
        wait = *o.retry_after;
      } else {
        wait = sdk::full_jitter(cfg_.initial_backoff, cfg_.max_backoff, uint64_t(attempt), rng);
      }
      std::unique_lock lock(mutex_);
      if (work_cv_.wait_for(lock, wait, [&] { return stopping_; })) {
        lock.unlock();
        return resolve(job, EF_ACK_RETRY, o.reason + " (stopped while waiting to try again)");
      }
    }
  }

  void resolve(const Job& job, ef_ack_status st, const std::string& reason) const {
    for (auto* m : job.msgs) ack(sdk::Message(m), st, reason);
  }

  Poco::Net::HTTPClientSession& session(const Target& t, Sessions& sessions) const {
    std::string key = t.origin();
    auto it = sessions.find(key);
    if (it != sessions.end()) return *it->second;
    if (sessions.size() >= kMaxSessionsPerWorker) sessions.erase(sessions.begin());
    std::unique_ptr<Poco::Net::HTTPClientSession> s;
    if (t.scheme == "https") s = std::make_unique<Poco::Net::HTTPSClientSession>(t.host, t.port, tls_);
    else s = std::make_unique<Poco::Net::HTTPClientSession>(t.host, t.port);
    s->setKeepAlive(true);
    s->setTimeout(Poco::Timespan(cfg_.timeout.count() * 1000));
    return *sessions.emplace(key, std::move(s)).first->second;
  }

  Outcome send(const Job& job, Sessions& sessions) const {
    // A kept-alive connection the server closed meanwhile fails at once: try once more on a new one.
    for (int round = 0;; ++round) {
      auto& s = session(job.t, sessions);
      bool reused = s.connected();
      try {
        return exchange(job, s);
      } catch (const Poco::TimeoutException&) {
        s.reset();
        return {Kind::retry, job.t.where() + ": no answer within " + std::to_string(cfg_.timeout.count()) + " ms", {}};
      } catch (const Poco::Net::SSLException& e) {
        s.reset();
        return {Kind::retry, job.t.where() + ": TLS: " + e.displayText(), {}};
      } catch (const Poco::Exception& e) {
        s.reset();
        if (reused && round == 0) continue;
        return {Kind::retry, job.t.where() + ": " + e.displayText(), {}};
      } catch (const std::exception& e) {
        s.reset();
        return {Kind::retry, job.t.where() + ": " + e.what(), {}};
      }
    }
  }

  Outcome exchange(const Job& job, Poco::Net::HTTPClientSession& s) const {
    Poco::Net::HTTPRequest req(job.t.method, job.t.path_query, Poco::Net::HTTPMessage::HTTP_1_1);
    req.setKeepAlive(true);
    for (auto& [n, v] : job.t.headers) req.set(n, v);
    if (!cfg_.bearer_token.empty()) req.set("Authorization", "Bearer " + cfg_.bearer_token);
    req.setContentType(job.content_type);
    req.setContentLength(std::streamsize(job.body.size()));
    s.sendRequest(req).write(job.body.data(), std::streamsize(job.body.size()));
    Poco::Net::HTTPResponse resp;
    std::istream& in = s.receiveResponse(resp);
    // The start of the body for the reason; the rest is read (up to 1 MiB) so the connection can
    // be used again, else dropped.
    std::string excerpt(kExcerptBytes, '\0');
    in.read(excerpt.data(), std::streamsize(excerpt.size()));
    excerpt.resize(size_t(in.gcount()));
    char sink[8192];
    size_t rest = 0;
    while (in && rest < (1u << 20)) {
      in.read(sink, sizeof sink);
      rest += size_t(in.gcount());
    }
    if (in) s.reset();
    int status = int(resp.getStatus());
    if (status >= 200 && status < 300) return {Kind::delivered, {}, {}};
    std::string reason = job.t.where() + ": HTTP " + std::to_string(status) + " " + resp.getReason();
    if (!excerpt.empty()) reason += ": " + excerpt;
    if (status == 408 || status == 429 || status >= 500) return {Kind::retry, reason, parse_retry_after(resp.get("Retry-After", ""))};
    return {Kind::reject, reason, {}};
  }

  // Joins the workers; what they had not started, and what waited to be tried again, is acked
  // as a retry.
  void close() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    std::deque<Job> left;
    {
      std::lock_guard lock(mutex_);
      left.swap(queue_);
    }
    for (auto& j : left) resolve(j, EF_ACK_RETRY, "the sink stopped before sending the request");
  }

  Config cfg_;
  expr::Template url_, method_;
  std::vector<std::pair<std::string, expr::Expr>> headers_;
  Poco::Net::Context::Ptr tls_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_cv_, idle_cv_;
  std::deque<Job> queue_;
  size_t active_ = 0;
  bool stopping_ = false;
  std::atomic<uint64_t> requests_{0}, failed_{0};
  std::mutex counters_mutex_;
};

}  // namespace edgeflow::http
