// The host side of the test harness (edgeflow/testing/harness.hpp): the fake host's callbacks
// on the host's own message and config model, compiled once into libedgeflow-harness.
#include <edgeflow/testing/harness.hpp>

#include <edgeflow/host/config.hpp>
#include <edgeflow/host/message.hpp>

#include <atomic>
#include <filesystem>
#include <map>

namespace edgeflow::testing::detail {

namespace {

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

HMessage* HM(ef_message* m) { return static_cast<HMessage*>(host::M(m)); }
HBatch* HB(ef_batch* b) { return reinterpret_cast<HBatch*>(b); }
const HBatch* HB(const ef_batch* b) { return reinterpret_cast<const HBatch*>(b); }

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

Ctx* X(ef_ctx* c) { return reinterpret_cast<Ctx*>(c); }

Output output_of(host::Message& m, const std::vector<std::string>& sinks) {
  Output o{m.payload_bytes(), m.key, m.content_type, m.headers, m.meta, m.timestamp_ms, m.token, {}, {}};
  if (m.routed)
    for (size_t i = 0; i < sinks.size() && i < 64; ++i)
      if (m.routes & (1ull << i)) o.routes.push_back(sinks[i]);
  return o;
}

void record_ack(Ctx* c, ef_message* m, uint32_t status, const char* reason, size_t len) {
  {
    std::lock_guard lock(c->mutex);
    c->acks.push_back({HM(m)->payload_bytes(), ef_ack_status(status), std::string(reason ? reason : "", reason ? len : 0)});
  }
  c->cv.notify_all();
  c->options.changes->bump();
}

}  // namespace

const ef_host_api* host_api() {
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
    h.config_key = [](ef_ctx*, const char* key) { return key ? key : ""; };  // the config is the instance's
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

struct Core::State {
  ef_component comp;
  Ctx ctx;
  host::Doc config;
  void* self = nullptr;
  bool started = false;
  size_t written = 0;  // messages written, for drain()

  ef_ctx* raw() { return reinterpret_cast<ef_ctx*>(&ctx); }
  HMessage* fill(const Input& in) {
    HMessage* m = ctx.make();
    m->set_payload(in.payload.data(), in.payload.size());
    m->key = in.key;
    m->headers = in.headers;
    m->meta = in.meta;
    m->content_type = in.content_type;
    m->timestamp_ms = in.timestamp_ms;
    return m;
  }
};

Core::Core(const ef_component& component, const std::string& yaml, Options options) : s_(std::make_unique<State>()) {
  s_->comp = component;
  Ctx& ctx = s_->ctx;
  ctx.options = std::move(options);
  if (!ctx.options.changes) ctx.options.changes = std::make_shared<Changes>();
  ctx.instance_name = ctx.options.name + "/" + component.type;
  ctx.where = ctx.options.file + ":1:1";
  host::Diagnostics diag;
  YAML::Node node;
  try {
    node = YAML::Load(yaml);
  } catch (const YAML::Exception& e) {
    throw ConfigError(host::where(ctx.options.file, e.mark) + ": YAML syntax error: " + e.msg);
  }
  host::ConfigBuilder b{ctx.options.file, diag, ctx.locations, nullptr};
  b.build(node, s_->comp, "", {}, s_->config);
  if (!diag.ok()) {
    std::string all;
    for (auto& e : diag.errors) all += (all.empty() ? "" : "\n") + e;
    throw ConfigError(all);
  }
  if (s_->comp.create(s_->raw(), reinterpret_cast<const ef_value*>(&s_->config), &s_->self) != EF_OK)
    throw ConfigError(ctx.last_error);
  ctx.deliver = [this](const ef_ack* a, size_t n) { s_->comp.on_ack(s_->self, a, n); };
}

Core::~Core() {
  stop();
  s_->comp.destroy(s_->self);
}

void* Core::instance() { return s_->self; }

void Core::start() {
  if (s_->started) return;
  s_->started = true;
  if (s_->comp.start(s_->self) != EF_OK) throw sdk::Error(s_->ctx.last_error);
}

void Core::stop() {
  if (!s_->started) return;
  s_->started = false;
  if (s_->comp.kind == EF_KIND_SOURCE) s_->ctx.deliver_pending();
  s_->comp.stop(s_->self);
}

void Core::run(size_t stop_after) {
  arm(stop_after);
  run_armed();
}

void Core::arm(size_t stop_after) {
  start();
  s_->ctx.stop = false;
  s_->ctx.stop_after = stop_after ? emitted_count() + stop_after : 0;
}

void Core::run_armed() {
  if (s_->comp.run(s_->self) != EF_OK) throw sdk::Error(s_->ctx.last_error);
}

void Core::request_stop() {
  s_->ctx.stop = true;
  s_->ctx.cv.notify_all();
}

std::vector<Output> Core::emitted() {
  std::lock_guard lock(s_->ctx.mutex);
  return s_->ctx.emitted;
}

size_t Core::emitted_count() {
  std::lock_guard lock(s_->ctx.mutex);
  return s_->ctx.emitted.size();
}

bool Core::wait_emitted(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(s_->ctx.mutex);
  return s_->ctx.cv.wait_for(lock, timeout, [&] { return s_->ctx.emitted.size() >= n; });
}

void Core::ack(uint64_t token, ef_ack_status status) {
  {
    std::lock_guard lock(s_->ctx.mutex);
    s_->ctx.pending_acks.push_back(ef_ack{sizeof(ef_ack), uint32_t(status), token});
  }
  s_->ctx.cv.notify_all();
}

void Core::ack_all_emitted(ef_ack_status status) {
  for (auto& o : emitted()) ack(o.token, status);
}

void Core::deliver() { s_->ctx.deliver_pending(); }

TransformResult Core::transform(const std::vector<Input>& inputs) {
  start();
  std::vector<HMessage*> batch;
  for (auto& in : inputs) batch.push_back(s_->fill(in));
  HBatch b{&batch, true, &s_->ctx.messages};
  TransformResult r;
  if (s_->comp.transform(s_->self, reinterpret_cast<ef_batch*>(&b)) != EF_OK) r.error = s_->ctx.last_error;
  for (auto* m : batch) {
    if (m->fate == HMessage::drop) {
      ++r.dropped;
    } else if (m->fate == HMessage::reject) {
      r.rejected.push_back(output_of(*m, s_->ctx.options.sinks));
      r.rejected.back().reason = m->reason;
    } else {
      r.kept.push_back(output_of(*m, s_->ctx.options.sinks));
    }
  }
  return r;
}

void Core::write(const std::vector<Input>& inputs) {
  start();
  std::vector<HMessage*> batch;
  for (auto& in : inputs) batch.push_back(s_->fill(in));
  HBatch b{&batch, false, &s_->ctx.messages};
  s_->written += inputs.size();
  if (s_->comp.write(s_->self, reinterpret_cast<ef_batch*>(&b)) != EF_OK) throw sdk::Error(s_->ctx.last_error);
}

void Core::flush(int32_t timeout_ms) {
  if (s_->comp.flush && s_->comp.flush(s_->self, timeout_ms) != EF_OK) throw sdk::Error(s_->ctx.last_error);
}

std::vector<SinkAck> Core::wait_acks(size_t n, std::chrono::milliseconds timeout) {
  std::unique_lock lock(s_->ctx.mutex);
  s_->ctx.cv.wait_for(lock, timeout, [&] { return s_->ctx.acks.size() >= n; });
  return s_->ctx.acks;
}

std::vector<SinkAck> Core::acks() {
  std::lock_guard lock(s_->ctx.mutex);
  return s_->ctx.acks;
}

std::vector<SinkAck> Core::drain(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0 || acks().size() >= s_->written) break;
    flush(int32_t(std::min<int64_t>(left.count(), 100)));
    wait_acks(s_->written, std::min(left, std::chrono::milliseconds(100)));
  }
  return acks();
}

std::vector<SinkAck> Core::deliver(const std::vector<Input>& inputs, size_t batch_size, size_t max_in_flight,
                                    std::chrono::milliseconds flush_interval, std::chrono::milliseconds timeout) {
  using Clock = std::chrono::steady_clock;
  auto deadline = Clock::now() + timeout;
  auto flush_due = Clock::time_point::max();
  for (size_t at = 0; at < inputs.size();) {
    size_t n = std::min(batch_size, inputs.size() - at);
    while (s_->written - acks().size() + n > max_in_flight) {
      if (Clock::now() >= deadline) throw sdk::Error("deliver: no room within the timeout; the sink holds its acks");
      flush(0);
      flush_due = Clock::time_point::max();
      wait_acks(s_->written + n - max_in_flight, std::chrono::milliseconds(100));
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

Changes& Core::changes() { return *s_->ctx.options.changes; }

std::optional<double> Core::metric(const std::string& name) {
  std::lock_guard lock(s_->ctx.mutex);
  auto it = s_->ctx.metrics.find(name);
  return it == s_->ctx.metrics.end() ? std::nullopt : std::optional<double>(it->second);
}

std::vector<std::string> Core::logs() {
  std::lock_guard lock(s_->ctx.mutex);
  return s_->ctx.logs;
}

}  // namespace edgeflow::testing::detail
