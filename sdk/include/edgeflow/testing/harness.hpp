// Unit-test one plugin component without the runtime: a fake host that checks its YAML config
// exactly like the daemon does, feeds it messages and records what it emitted, kept, dropped,
// rejected, routed and acknowledged. Works with any test framework (GoogleTest in tests/).
//
//   edgeflow::testing::Harness<MySink> h("path: /tmp/out.jsonl");
//   h.write({{.payload = R"({"id":1})"}});
//   auto acks = h.wait_acks(1);           // [{payload, EF_ACK_DELIVERED, ""}]
//
// Config mistakes throw ConfigError carrying the daemon's message (file:line:col: key: fix).
// The harness compiles the component into the test binary: include the plugin's source, or
// put its class in a header, and do not link a second EDGEFLOW_PLUGIN into the same binary.
#pragma once

#include <edgeflow/host/config.hpp>
#include <edgeflow/host/message.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace edgeflow::testing {

using Pairs = std::vector<std::pair<std::string, std::string>>;

// The value of `name` among pairs (an Output's headers or meta), or "<none>" without one.
inline std::string value_of(const Pairs& pairs, std::string_view name) {
  for (auto& [k, v] : pairs)
    if (k == name) return v;
  return "<none>";
}

// A message to hand to a transformer or sink.
struct Input {
  std::string payload;
  std::string key = {};
  Pairs headers = {};
  Pairs meta = {};
  std::string content_type = {};
  int64_t timestamp_ms = 0;
};

// A message as the component left it.
struct Output {
  std::string payload;
  std::string key;
  std::string content_type;
  Pairs headers;
  Pairs meta;
  int64_t timestamp_ms = 0;
  uint64_t token = 0;               // what a source set
  std::vector<std::string> routes;  // sink names; empty: every sink
  std::string reason;               // why it was rejected
};

struct TransformResult {
  std::vector<Output> kept;      // in batch order, splits appended
  std::vector<Output> rejected;  // with reason
  size_t dropped = 0;
  std::string error;             // the hook failed (threw): what it said
};

struct SinkAck {
  std::string payload;
  ef_ack_status status;
  std::string reason;
};

// Counts what components do (emit, log, set a metric, acknowledge at a sink), so a test can wait
// for a condition no single call returns: a metric's value, what two sources emitted together.
// Several harnesses may share one (Options::changes).
class Changes {
 public:
  void bump() {
    {
      std::lock_guard lock(mutex_);
      ++count_;
    }
    cv_.notify_all();
  }
  // pred() is checked now and after every change (without any harness lock held), until it holds
  // or the timeout passes; returns its last value.
  bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      uint64_t seen;
      {
        std::lock_guard lock(mutex_);
        seen = count_;
      }
      if (pred()) return true;
      std::unique_lock lock(mutex_);
      if (!cv_.wait_until(lock, deadline, [&] { return count_ != seen; })) {
        lock.unlock();
        return pred();
      }
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t count_ = 0;
};

struct Options {
  std::vector<std::string> sinks = {};  // the flow's sink names, for routing transformers
  std::string state_dir = {};           // given to the component; empty: none
  std::string file = "<harness>";       // the name config errors point at
  std::string name = "test";            // the flow part of the instance name
  std::shared_ptr<Changes> changes = {};  // shared with other harnesses; default: one of its own
};

struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

namespace detail {

struct HMessage : host::Message {
  enum Fate : uint8_t { keep, drop, reject };
  Fate fate = keep;
  std::string reason;
};

struct HBatch {
  std::vector<HMessage*>* msgs;
  bool step;
  std::vector<std::unique_ptr<HMessage>>* owner;
};

inline HMessage* HM(ef_message* m) { return static_cast<HMessage*>(host::M(m)); }
inline HBatch* HB(ef_batch* b) { return reinterpret_cast<HBatch*>(b); }
inline const HBatch* HB(const ef_batch* b) { return reinterpret_cast<const HBatch*>(b); }

// What ef_ctx points to: the state of one harnessed instance.
struct Ctx {
  Options options;
  std::string instance_name;
  std::string where;
  host::Locations locations;
  std::string last_error;
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<std::string> logs;
  std::vector<std::unique_ptr<HMessage>> messages;
  // source side
  std::vector<Output> emitted;
  std::vector<ef_ack> pending_acks;
  size_t in_flight = 0;
  size_t stop_after = 0;
  std::atomic<bool> stop{false};
  std::function<void(const ef_ack*, size_t)> deliver;
  // sink side
  std::vector<SinkAck> acks;
  std::map<std::string, double> metrics;

  HMessage* make() {
    std::lock_guard lock(mutex);
    return messages.emplace_back(std::make_unique<HMessage>()).get();
  }
  bool stopping() {
    return stop.load() || (stop_after && emitted.size() >= stop_after);
  }
  void deliver_pending() {
    std::vector<ef_ack> a;
    {
      std::lock_guard lock(mutex);
      a.swap(pending_acks);
      in_flight -= a.size();
    }
    if (!a.empty() && deliver) deliver(a.data(), a.size());
  }
};

inline Ctx* X(ef_ctx* c) { return reinterpret_cast<Ctx*>(c); }

inline Output output_of(host::Message& m, const std::vector<std::string>& sinks) {
  Output o{m.payload_bytes(), m.key, m.content_type, m.headers, m.meta, m.timestamp_ms, m.token, {}, {}};
  if (m.routed)
    for (size_t i = 0; i < sinks.size() && i < 64; ++i)
      if (m.routes & (1ull << i)) o.routes.push_back(sinks[i]);
  return o;
}

inline void record_ack(Ctx* c, ef_message* m, uint32_t status, const char* reason, size_t len) {
  {
    std::lock_guard lock(c->mutex);
    c->acks.push_back({HM(m)->payload_bytes(), ef_ack_status(status), std::string(reason ? reason : "", reason ? len : 0)});
  }
  c->cv.notify_all();
  c->options.changes->bump();
}

inline const ef_host_api* host_api() {
  static const ef_host_api api = [] {
    ef_host_api h{};
    h.struct_size = sizeof(ef_host_api);
    h.abi_major = EF_ABI_MAJOR;
    h.abi_minor = EF_ABI_MINOR;
    host::fill_message_api(h);
    h.log = [](ef_ctx* c, uint32_t, const char* text, size_t len) {
      if (!c) return;
      {
        std::lock_guard lock(X(c)->mutex);
        X(c)->logs.emplace_back(text, len);
      }
      X(c)->options.changes->bump();
    };
    h.fail = [](ef_ctx* c, const char* reason, size_t len) {
      if (c) X(c)->last_error.assign(reason, len);
    };
    h.config_where = [](ef_ctx* c, const char* key) -> const char* {
      auto it = X(c)->locations.find(key ? key : "");
      return it == X(c)->locations.end() ? X(c)->where.c_str() : it->second.c_str();
    };
    h.instance_name = [](ef_ctx* c) { return X(c)->instance_name.c_str(); };
    h.state_dir = [](ef_ctx* c) -> const char* {
      if (X(c)->options.state_dir.empty()) return nullptr;
      std::error_code ec;
      std::filesystem::create_directories(X(c)->options.state_dir, ec);
      return ec ? nullptr : X(c)->options.state_dir.c_str();
    };
    h.metric_set = [](ef_ctx* c, const char* name, size_t len, uint32_t, double value) {
      {
        std::lock_guard lock(X(c)->mutex);
        X(c)->metrics[std::string(name, len)] = value;
      }
      X(c)->options.changes->bump();
    };
    h.message_new = [](ef_ctx* c) -> ef_message* {
      return reinterpret_cast<ef_message*>(static_cast<host::Message*>(X(c)->make()));
    };
    h.message_free = [](ef_ctx*, ef_message*) {};  // owned by the harness until it ends
    h.emit = [](ef_ctx* c, ef_message* const* msgs, size_t n, int32_t) -> ef_status {
      Ctx* x = X(c);
      x->deliver_pending();
      if (x->stopping()) return EF_STOPPING;
      {
        std::lock_guard lock(x->mutex);
        for (size_t i = 0; i < n; ++i) x->emitted.push_back(output_of(*HM(msgs[i]), x->options.sinks));
        x->in_flight += n;
      }
      x->cv.notify_all();
      x->options.changes->bump();
      return EF_OK;
    };
    h.poll = [](ef_ctx* c, int32_t timeout_ms) -> ef_status {
      Ctx* x = X(c);
      x->deliver_pending();
      if (x->stopping()) return EF_STOPPING;
      if (timeout_ms > 0) {
        std::unique_lock lock(x->mutex);
        x->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                       [&] { return x->stop.load() || !x->pending_acks.empty(); });
      }
      x->deliver_pending();
      return x->stopping() ? EF_STOPPING : EF_OK;
    };
    h.in_flight = [](ef_ctx* c) {
      std::lock_guard lock(X(c)->mutex);
      return X(c)->in_flight;
    };
    h.batch_size = [](const ef_batch* b) { return HB(b)->msgs->size(); };
    h.batch_at = [](const ef_batch* b, size_t i) -> ef_message* {
      if (i >= HB(b)->msgs->size()) return nullptr;
      return reinterpret_cast<ef_message*>(static_cast<host::Message*>((*HB(b)->msgs)[i]));
    };
    h.batch_drop = [](ef_batch* b, size_t i) {
      if (HB(b)->step && i < HB(b)->msgs->size()) (*HB(b)->msgs)[i]->fate = HMessage::drop;
    };
    h.batch_reject = [](ef_batch* b, size_t i, const char* reason, size_t len) {
      if (!HB(b)->step || i >= HB(b)->msgs->size()) return;
      (*HB(b)->msgs)[i]->fate = HMessage::reject;
      (*HB(b)->msgs)[i]->reason.assign(reason ? reason : "", reason ? len : 0);
    };
    h.batch_split = [](ef_batch* b, size_t i) -> ef_message* {
      if (!HB(b)->step || i >= HB(b)->msgs->size()) return nullptr;
      HMessage* copy = HB(b)->owner->emplace_back(std::make_unique<HMessage>()).get();
      copy->copy_from(*(*HB(b)->msgs)[i]);
      HB(b)->msgs->push_back(copy);
      return reinterpret_cast<ef_message*>(static_cast<host::Message*>(copy));
    };
    h.sink_count = [](ef_ctx* c) { return X(c)->options.sinks.size(); };
    h.sink_name = [](ef_ctx* c, size_t i) -> const char* {
      return i < X(c)->options.sinks.size() ? X(c)->options.sinks[i].c_str() : nullptr;
    };
    h.sink_index = [](ef_ctx* c, const char* name, size_t len) -> int32_t {
      auto& s = X(c)->options.sinks;
      for (size_t i = 0; i < s.size(); ++i)
        if (s[i] == std::string_view(name, len)) return int32_t(i);
      return -1;
    };
    h.ack = [](ef_ctx* c, ef_message* m, uint32_t status, const char* reason, size_t len) {
      record_ack(X(c), m, status, reason, len);
    };
    h.ack_batch = [](ef_ctx* c, ef_batch* b, uint32_t status, const char* reason, size_t len) {
      for (HMessage* m : *HB(b)->msgs)
        record_ack(X(c), reinterpret_cast<ef_message*>(static_cast<host::Message*>(m)), status, reason, len);
    };
    return h;
  }();
  return &api;
}

}  // namespace detail

template <class T>
class Harness {
 public:
  explicit Harness(const std::string& yaml, Options options = {}) : comp_(sdk::detail::make_component<T>()) {
    sdk::g_host = detail::host_api();
    ctx_.options = std::move(options);
    if (!ctx_.options.changes) ctx_.options.changes = std::make_shared<Changes>();
    ctx_.instance_name = ctx_.options.name + "/" + T::type;
    ctx_.where = ctx_.options.file + ":1:1";
    host::Diagnostics diag;
    YAML::Node node;
    try {
      node = YAML::Load(yaml);
    } catch (const YAML::Exception& e) {
      throw ConfigError(host::where(ctx_.options.file, e.mark) + ": YAML syntax error: " + e.msg);
    }
    host::ConfigBuilder b{ctx_.options.file, diag, ctx_.locations, nullptr};
    b.build(node, comp_, "", {}, config_);
    if (!diag.ok()) {
      std::string all;
      for (auto& e : diag.errors) all += (all.empty() ? "" : "\n") + e;
      throw ConfigError(all);
    }
    if (comp_.create(raw(), reinterpret_cast<const ef_value*>(&config_), &self_) != EF_OK)
      throw ConfigError(ctx_.last_error);
    ctx_.deliver = [this](const ef_ack* a, size_t n) { comp_.on_ack(self_, a, n); };
  }
  ~Harness() {
    stop();
    comp_.destroy(self_);
  }
  Harness(const Harness&) = delete;
  Harness& operator=(const Harness&) = delete;

  // start() is called before the first run/transform/write; call it yourself to test its errors.
  void start() {
    if (started_) return;
    started_ = true;
    if (comp_.start(self_) != EF_OK) throw sdk::Error(ctx_.last_error);
  }
  void stop() {
    if (!started_) return;
    started_ = false;
    if constexpr (T::kind == EF_KIND_SOURCE) ctx_.deliver_pending();
    comp_.stop(self_);
  }

  // --- sources ---
  // Runs the source on this thread until it returns; emit/poll say "stopping" once
  // `stop_after` messages were emitted (0: never) or request_stop() was called.
  void run(size_t stop_after = 0) {
    arm(stop_after);
    run_armed();
  }
  // run() in two halves, for running it on another thread (RunningSource): arm() on the
  // calling thread, so a request_stop() that follows it is never lost.
  void arm(size_t stop_after = 0) {
    start();
    ctx_.stop = false;
    ctx_.stop_after = stop_after ? emitted_count() + stop_after : 0;
  }
  void run_armed() {
    if (comp_.run(self_) != EF_OK) throw sdk::Error(ctx_.last_error);
  }
  void request_stop() {
    ctx_.stop = true;
    ctx_.cv.notify_all();
  }
  std::vector<Output> emitted() {
    std::lock_guard lock(ctx_.mutex);
    return ctx_.emitted;
  }
  size_t emitted_count() {
    std::lock_guard lock(ctx_.mutex);
    return ctx_.emitted.size();
  }
  // Waits (for a source running on another thread) until n messages were emitted in all.
  bool wait_emitted(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(ctx_.mutex);
    return ctx_.cv.wait_for(lock, timeout, [&] { return ctx_.emitted.size() >= n; });
  }
  // Resolves an emitted message; on_ack hears it at the source's next emit/poll, or at deliver().
  void ack(uint64_t token, ef_ack_status status = EF_ACK_DELIVERED) {
    {
      std::lock_guard lock(ctx_.mutex);
      ctx_.pending_acks.push_back(ef_ack{sizeof(ef_ack), uint32_t(status), token});
    }
    ctx_.cv.notify_all();
  }
  void ack_all_emitted(ef_ack_status status = EF_ACK_DELIVERED) {
    for (auto& o : emitted()) ack(o.token, status);
  }
  // Hands queued acks to on_ack now (only while run() is not running).
  void deliver() { ctx_.deliver_pending(); }

  // --- transformers ---
  TransformResult transform(const std::vector<Input>& inputs) {
    start();
    std::vector<detail::HMessage*> batch;
    for (auto& in : inputs) batch.push_back(fill(ctx_.make(), in));
    detail::HBatch b{&batch, true, &ctx_.messages};
    TransformResult r;
    if (comp_.transform(self_, reinterpret_cast<ef_batch*>(&b)) != EF_OK) r.error = ctx_.last_error;
    for (auto* m : batch) {
      if (m->fate == detail::HMessage::drop) {
        ++r.dropped;
      } else if (m->fate == detail::HMessage::reject) {
        r.rejected.push_back(detail::output_of(*m, ctx_.options.sinks));
        r.rejected.back().reason = m->reason;
      } else {
        r.kept.push_back(detail::output_of(*m, ctx_.options.sinks));
      }
    }
    return r;
  }

  // --- sinks ---
  // write() failing (EF_ERROR: the flow would fail) throws.
  void write(const std::vector<Input>& inputs) {
    start();
    std::vector<detail::HMessage*> batch;
    for (auto& in : inputs) batch.push_back(fill(ctx_.make(), in));
    detail::HBatch b{&batch, false, &ctx_.messages};
    written_ += inputs.size();
    if (comp_.write(self_, reinterpret_cast<ef_batch*>(&b)) != EF_OK) throw sdk::Error(ctx_.last_error);
  }
  void flush(int32_t timeout_ms = 1000) {
    if (comp_.flush && comp_.flush(self_, timeout_ms) != EF_OK) throw sdk::Error(ctx_.last_error);
  }
  // Waits until n acks arrived in all (from any thread); returns them in arrival order.
  std::vector<SinkAck> wait_acks(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::unique_lock lock(ctx_.mutex);
    ctx_.cv.wait_for(lock, timeout, [&] { return ctx_.acks.size() >= n; });
    return ctx_.acks;
  }
  // The acks that arrived so far, without waiting.
  std::vector<SinkAck> acks() {
    std::lock_guard lock(ctx_.mutex);
    return ctx_.acks;
  }
  // As the runtime drains: flush until every message written was acked, or the timeout.
  std::vector<SinkAck> drain(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || acks().size() >= written_) break;
      flush(int32_t(std::min<int64_t>(left.count(), 100)));
      wait_acks(written_, std::min(left, std::chrono::milliseconds(100)));
    }
    return acks();
  }
  // Writes inputs one batch of batch_size at a time as a flow would: at most max_in_flight
  // unacked, flush(0) whenever it waits for room and once flush_interval passed since the first
  // unflushed write, then drain(). A sink that holds acks across writes must finish here.
  std::vector<SinkAck> deliver(const std::vector<Input>& inputs, size_t batch_size = 1, size_t max_in_flight = 10000,
                               std::chrono::milliseconds flush_interval = std::chrono::seconds(1),
                               std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    using Clock = std::chrono::steady_clock;
    auto deadline = Clock::now() + timeout;
    auto flush_due = Clock::time_point::max();
    for (size_t at = 0; at < inputs.size();) {
      size_t n = std::min(batch_size, inputs.size() - at);
      while (written_ - acks().size() + n > max_in_flight) {
        if (Clock::now() >= deadline) throw sdk::Error("deliver: no room within the timeout; the sink holds its acks");
        flush(0);
        flush_due = Clock::time_point::max();
        wait_acks(written_ + n - max_in_flight, std::chrono::milliseconds(100));
      }
      write(std::vector<Input>(inputs.begin() + long(at), inputs.begin() + long(at + n)));
      at += n;
      if (flush_due == Clock::time_point::max()) flush_due = Clock::now() + flush_interval;
      if (Clock::now() >= flush_due) {
        flush(0);
        flush_due = Clock::time_point::max();
      }
    }
    return drain(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
  }

  // What the component does, to wait for a condition on it: changes().wait_until(pred).
  Changes& changes() { return *ctx_.options.changes; }

  // The last value the component set for a metric, if it set one.
  std::optional<double> metric(const std::string& name) {
    std::lock_guard lock(ctx_.mutex);
    auto it = ctx_.metrics.find(name);
    return it == ctx_.metrics.end() ? std::nullopt : std::optional<double>(it->second);
  }

  // Everything the component logged.
  std::vector<std::string> logs() {
    std::lock_guard lock(ctx_.mutex);
    return ctx_.logs;
  }
  T& component() { return static_cast<sdk::detail::Instance<T>*>(self_)->impl; }

 private:
  ef_ctx* raw() { return reinterpret_cast<ef_ctx*>(&ctx_); }
  static detail::HMessage* fill(detail::HMessage* m, const Input& in) {
    m->set_payload(in.payload.data(), in.payload.size());
    m->key = in.key;
    m->headers = in.headers;
    m->meta = in.meta;
    m->content_type = in.content_type;
    m->timestamp_ms = in.timestamp_ms;
    return m;
  }

  ef_component comp_;
  detail::Ctx ctx_;
  host::Doc config_;
  void* self_ = nullptr;
  bool started_ = false;
  size_t written_ = 0;  // messages written, for drain()
};

// A source running on its own thread until stopped: streams, consumers, anything whose run()
// does not end by itself. The test drives it through harness(): wait_emitted, ack, metric, logs.
template <class T>
class RunningSource {
 public:
  // `host`: a replacement host table (a copy of the harness's with a callback wrapped, to inject
  // faults), in place before the source starts.
  explicit RunningSource(const std::string& yaml, Options options = {}, const ef_host_api* host = nullptr)
      : h_(yaml, std::move(options)) {
    if (host) sdk::g_host = host;
    h_.arm();
    thread_ = std::thread([this] {
      try {
        h_.run_armed();
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex_);
        error_ = e.what();
      }
      h_.changes().bump();  // a test may wait for run() to end
    });
  }
  ~RunningSource() { stop(); }
  RunningSource(const RunningSource&) = delete;
  RunningSource& operator=(const RunningSource&) = delete;

  Harness<T>& harness() { return h_; }
  // Ends run() and stops the component; what it emitted, logged and measured stays readable.
  void stop() {
    if (!thread_.joinable()) return;
    h_.request_stop();
    thread_.join();
    h_.stop();
  }
  // What run() threw, if it did.
  std::string error() {
    std::lock_guard lock(mutex_);
    return error_;
  }

 private:
  Harness<T> h_;
  std::thread thread_;
  std::mutex mutex_;
  std::string error_;
};

}  // namespace edgeflow::testing
