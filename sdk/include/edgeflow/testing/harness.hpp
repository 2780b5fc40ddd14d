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
// Link EdgeflowSDK::harness (libedgeflow-harness), which holds the host side.
#pragma once

#include <edgeflow/sdk/plugin.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
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

// The harness's host callbacks, for a test that wraps one to inject a fault.
const ef_host_api* host_api();

// Everything of the harness that does not depend on the component's class, compiled into
// libedgeflow-harness with the host's message and config model: a plugin's tests need neither
// the JSON nor the YAML library the host is built on.
class Core {
 public:
  Core(const ef_component& component, const std::string& yaml, Options options);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  // start() is called before the first run/transform/write; call it yourself to test its errors.
  void start();
  void stop();

  // --- sources ---
  // Runs the source on this thread until it returns; emit/poll say "stopping" once
  // `stop_after` messages were emitted (0: never) or request_stop() was called.
  void run(size_t stop_after = 0);
  // run() in two halves, for running it on another thread (RunningSource): arm() on the
  // calling thread, so a request_stop() that follows it is never lost.
  void arm(size_t stop_after = 0);
  void run_armed();
  void request_stop();
  std::vector<Output> emitted();
  size_t emitted_count();
  // Waits (for a source running on another thread) until n messages were emitted in all.
  bool wait_emitted(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Resolves an emitted message; on_ack hears it at the source's next emit/poll, or at deliver().
  void ack(uint64_t token, ef_ack_status status = EF_ACK_DELIVERED);
  void ack_all_emitted(ef_ack_status status = EF_ACK_DELIVERED);
  // Hands queued acks to on_ack now (only while run() is not running).
  void deliver();

  // --- transformers ---
  TransformResult transform(const std::vector<Input>& inputs);

  // --- sinks ---
  // write() failing (EF_ERROR: the flow would fail) throws.
  void write(const std::vector<Input>& inputs);
  void flush(int32_t timeout_ms = 1000);
  // Waits until n acks arrived in all (from any thread); returns them in arrival order.
  std::vector<SinkAck> wait_acks(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // The acks that arrived so far, without waiting.
  std::vector<SinkAck> acks();
  // As the runtime drains: flush until every message written was acked, or the timeout.
  std::vector<SinkAck> drain(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Writes inputs one batch of batch_size at a time as a flow would: at most max_in_flight
  // unacked, flush(0) whenever it waits for room and once flush_interval passed since the first
  // unflushed write, then drain(). A sink that holds acks across writes must finish here.
  std::vector<SinkAck> deliver(const std::vector<Input>& inputs, size_t batch_size = 1, size_t max_in_flight = 10000,
                               std::chrono::milliseconds flush_interval = std::chrono::seconds(1),
                               std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // What the component does, to wait for a condition on it: changes().wait_until(pred).
  Changes& changes();
  // The last value the component set for a metric, if it set one.
  std::optional<double> metric(const std::string& name);
  // Everything the component logged.
  std::vector<std::string> logs();

 protected:
  void* instance();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace detail

template <class T>
class Harness : public detail::Core {
 public:
  explicit Harness(const std::string& yaml, Options options = {}) : Core(component_of(), yaml, std::move(options)) {}
  T& component() { return static_cast<sdk::detail::Instance<T>*>(instance())->impl; }

 private:
  static ef_component component_of() {
    sdk::g_host = detail::host_api();  // before create(), which may already call the host
    return sdk::detail::make_component<T>();
  }
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
