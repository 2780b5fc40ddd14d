// A flow's life: its component instances made, checked, started and stopped, its thread and
// its restarts with backoff, its state and metrics.
#include "engine_internal.hpp"

#include "log.hpp"

#include <edgeflow/sdk/backoff.hpp>
#include <edgeflow/sdk/expr/value.hpp>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <bit>
#include <ctime>
#include <filesystem>

namespace edgeflow {

using namespace detail;
using host::JValue;

const char* state_name(FlowState s) {
  switch (s) {
    case FlowState::created: return "created";
    case FlowState::starting: return "starting";
    case FlowState::running: return "running";
    case FlowState::draining: return "draining";
    case FlowState::backoff: return "backoff";
    case FlowState::finished: return "finished";
    case FlowState::stopped: return "stopped";
    case FlowState::failed: return "failed";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

Flow::Flow(FlowSpec spec, std::string state_dir)
    : spec_(std::move(spec)), state_dir_(std::move(state_dir)), rng_(std::random_device{}()) {
  for (size_t i = 0; i < spec_.sinks.size(); ++i) sink_names_.push_back(spec_.sink_name(i));
  steps_.resize(spec_.steps.size());
  sinks_.resize(spec_.sinks.size());
  per_sink_.resize(spec_.sinks.size());
  for (const InstanceSpec* i : spec_.instances()) {
    stages_.push_back(std::make_unique<StageStats>());
    stages_.back()->key = i->key;
    stages_.back()->type = i->type;
    if (i->buffer) {
      stages_.back()->buffer = std::make_unique<BufferStats>();
      stages_.back()->buffer->max_bytes = i->buffer->max_bytes;
      buffered_ = true;
    }
  }
}

int Flow::stage_index(std::string_view key) const {
  for (size_t i = 0; i < stages_.size(); ++i)
    if (stages_[i]->key == key) return int(i);
  return -1;
}

std::string Flow::tap_event(size_t stage, FlowMessage* m) {
  rapidjson::StringBuffer out;
  host::JsonWriter<rapidjson::StringBuffer> w(out);
  auto str = [&](std::string_view v) { w.String(v.data(), rapidjson::SizeType(v.size())); };
  w.StartObject();
  w.Key("flow");
  str(spec_.name);
  w.Key("stage");
  str(stages_[stage]->key);
  w.Key("at");
  str(iso_timestamp());
  w.Key("key");
  str(m->key);
  w.Key("content_type");
  str(m->content_type);
  auto pairs = [&](const char* name, const auto& kv) {
    w.Key(name);
    w.StartObject();
    for (auto& [k, v] : kv) {
      w.Key(k.data(), rapidjson::SizeType(k.size()));
      str(v);
    }
    w.EndObject();
  };
  pairs("headers", m->headers);
  pairs("meta", m->meta);
  // JSON stays JSON (parsed here at most once: later stages reuse it); anything else, or a
  // payload too large to show, is a string, cut.
  constexpr size_t kShown = 64 * 1024;
  w.Key("payload");
  JValue* doc = m->root(nullptr);
  if (doc && message_bytes(m) <= 2 * kShown) {
    doc->Accept(w);
  } else {
    const std::string& p = m->payload_bytes();
    str(std::string_view(p).substr(0, kShown));
    if (p.size() > kShown) {
      w.Key("truncated_from");
      w.Uint64(p.size());
    }
  }
  w.EndObject();
  return scrub(std::string(out.GetString(), out.GetSize()), spec_.secrets);
}

Flow::~Flow() {
  request_stop();
  join();
}

void Flow::start(std::function<void()> on_end) {
  on_end_ = std::move(on_end);
  {
    std::lock_guard lock(observe_mutex_);
    started_ = true;
  }
  thread_ = std::thread([this] { thread_main(); });
}

bool Flow::ended() const {
  std::lock_guard lock(observe_mutex_);
  return ended_ || !started_;  // never started counts as ended
}

void Flow::request_stop() {
  {
    std::lock_guard lock(inbox_mutex_);
    stop_ = true;
  }
  inbox_cv_.notify_all();
  source_cv_.notify_all();
}

void Flow::force_stop() {
  {
    std::lock_guard lock(inbox_mutex_);
    force_ = true;
    stop_ = true;
  }
  inbox_cv_.notify_all();
  source_cv_.notify_all();
}

void Flow::join() {
  if (thread_.joinable()) thread_.join();
}

std::string Flow::last_error() const {
  std::lock_guard lock(observe_mutex_);
  return last_error_;
}

bool Flow::wait_for(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  std::unique_lock lock(observe_mutex_);
  return observe_cv_.wait_for(lock, timeout, [&] {
    lock.unlock();
    bool ok = pred();
    lock.lock();
    return ok;
  });
}

void Flow::set_state(FlowState s) {
  {
    std::lock_guard lock(observe_mutex_);
    state_ = s;
  }
  observe_cv_.notify_all();
  log_info(spec_.name, "", std::string("flow ") + state_name(s));
}

void Flow::fail(const Instance& inst, std::string_view what) {
  std::string msg = scrub(inst.spec->key + " (" + inst.spec->type + "): " + std::string(what), spec_.secrets);
  if (!failed_) log_error(spec_.name, inst.spec->key, msg);
  {
    std::lock_guard lock(inbox_mutex_);  // a source waiting in emit/poll sees it
    failed_ = true;
  }
  source_cv_.notify_all();
  {
    std::lock_guard lock(observe_mutex_);
    last_error_ = msg;
  }
  observe_cv_.notify_all();
}

void Flow::log(ef_log_level level, const Instance& inst, std::string_view text) const {
  if (!log_enabled(level)) return;
  edgeflow::log(level, spec_.name, inst.spec->key, scrub(std::string(text), spec_.secrets));
}

bool Flow::create_instances(std::vector<std::string>* errors) {
  auto make = [&](Instance& inst, const InstanceSpec& is, int sink) {
    inst = Instance{};
    inst.flow = this;
    inst.spec = &is;
    inst.comp = is.component->component;
    inst.sink = sink;
    inst.name = spec_.name + "/" + is.key + ":" + is.type;
    if (!state_dir_.empty()) inst.state_dir = state_dir_ + "/" + spec_.name;
    if (inst.comp->create(C(&inst), reinterpret_cast<const ef_value*>(is.config.get()), &inst.self) == EF_OK)
      return true;
    inst.self = nullptr;
    std::string why = inst.last_error.empty() ? "create failed (no reason given)" : inst.last_error;
    // Plugins that know where in the YAML the problem is say so themselves.
    std::string msg = why.rfind(spec_.file, 0) == 0 ? why : is.where + ": " + is.key + ": " + why;
    if (errors) errors->push_back(scrub(msg, spec_.secrets));
    else fail(inst, why);
    return false;
  };
  bool ok = make(source_, spec_.source, -1);
  for (size_t i = 0; i < steps_.size(); ++i) ok = make(steps_[i], spec_.steps[i], -1) && ok;
  for (size_t i = 0; i < sinks_.size(); ++i) {
    ok = make(sinks_[i].inst, spec_.sinks[i], int(i)) && ok;
    sinks_[i].flush_interval = spec_.sinks[i].flush_interval;
  }
  ok = make(dlq_.inst, spec_.dead_letter, kDeadLetter) && ok;
  dlq_.flush_interval = spec_.dead_letter.flush_interval;
  return ok;
}

Flow::SignalResult Flow::signal(const host::Doc& command, std::string& reason) {
  std::lock_guard lock(signal_mutex_);
  if (!signals_open_) {
    reason = "the source of flow " + spec_.name + " is not running (the flow is " + state_name(state()) + ")";
    return SignalResult::unavailable;
  }
  if (!source_.comp->signal) {
    reason = "the " + spec_.source.type + " source of flow " + spec_.name + " takes no signals";
    return SignalResult::unavailable;
  }
  // The hook's reason comes through host->fail() on this thread, not into the source's
  // last_error, which its own thread writes.
  struct Capture {
    explicit Capture(std::string* r) { t_fail_reason = r; }
    ~Capture() { t_fail_reason = nullptr; }
  } capture(&reason);
  ef_status st = source_.comp->signal(source_.self, reinterpret_cast<const ef_value*>(&command));
  if (st == EF_OK) {
    rapidjson::StringBuffer text;
    rapidjson::Writer<rapidjson::StringBuffer> w(text);
    command.Accept(w);
    log_info(spec_.name, "source", "signal taken: " + scrub(std::string(text.GetString(), text.GetSize()), spec_.secrets));
    return SignalResult::taken;
  }
  if (reason.empty()) reason = "refused (no reason given)";
  reason = scrub(reason, spec_.secrets);
  return SignalResult::refused;
}

bool Flow::check(std::vector<std::string>& errors) {
  bool ok = create_instances(&errors);
  for (Instance* inst : {&source_, &dlq_.inst}) {
    if (inst->self) inst->comp->destroy(inst->self);
    inst->self = nullptr;
  }
  for (auto& s : steps_) {
    if (s.self) s.comp->destroy(s.self);
    s.self = nullptr;
  }
  for (auto& s : sinks_) {
    if (s.inst.self) s.inst.comp->destroy(s.inst.self);
    s.inst.self = nullptr;
  }
  return ok;
}

bool Flow::start_instances() {
  auto start = [&](Instance& inst) {
    if (!inst.comp->start) {
      inst.started = true;
      return true;
    }
    if (inst.comp->start(inst.self) != EF_OK) {
      fail(inst, "start failed: " + inst.last_error);
      inst.started = true;  // stop() is still owed after a failed start
      return false;
    }
    inst.started = true;
    return true;
  };
  // Downstream first, so nothing is emitted into a sink that is not ready.
  if (!start(dlq_.inst)) return false;
  for (auto& s : sinks_)
    if (!start(s.inst)) return false;
  for (auto& s : steps_)
    if (!start(s)) return false;
  return start(source_);
}

void Flow::teardown() {
  auto stop = [](Instance& inst) {
    if (inst.started && inst.comp->stop) inst.comp->stop(inst.self);
    inst.started = false;
  };
  // Sinks first: after stop() they send no more acks, so what is open now stays open.
  for (auto& s : sinks_) stop(s.inst);
  stop(dlq_.inst);
  {
    std::lock_guard lock(inbox_mutex_);
    inbox_work_.swap(inbox_);
  }
  resolved_at_.reset();
  for (auto& e : inbox_work_)
    if (e.status == EF_ACK_DELIVERED && e.msg->in_use) handle_ack(e.sink, e.msg, e.status, e.reason);
  inbox_work_.clear();
  close_buffers();  // what the sinks delivered is removed; the rest is read again next run

  // Whatever is still open is neither delivered nor lost: the source hears "retry" and does not
  // commit it, so it is read again after the restart.
  uint64_t open = 0;
  for (auto& o : origins_) {
    if (!o->in_use) continue;
    if (o->injected) {
      o->injected->done(o->token, EF_ACK_RETRY);
      o->in_use = false;
      free_origins_.push_back(o.get());
      continue;
    }
    ready_.push_back(ef_ack{sizeof(ef_ack), EF_ACK_RETRY, o->token});
    o->in_use = false;
    free_origins_.push_back(o.get());
    ++open;
  }
  if (open) {
    stats_.unresolved_at_stop += open;
    log_warn(spec_.name, "", std::to_string(open) +
                                 " message(s) left unacknowledged at the source; they will be "
                                 "delivered again after a restart");
  }
  abandon_injections();
  deliver_acks();
  for (auto& m : messages_) {
    if (m->in_use) {
      m->in_use = false;
      free_messages_.push_back(m.get());
    }
  }
  for (auto& s : sinks_) s.held.clear();
  dlq_queue_.clear();
  stats_.in_flight = 0;
  stats_.in_flight_bytes = 0;

  stop(source_);
  for (auto& s : steps_) stop(s);
  auto destroy = [](Instance& inst) {
    if (inst.self) inst.comp->destroy(inst.self);
    inst.self = nullptr;
  };
  destroy(source_);
  for (auto& s : steps_) destroy(s);
  for (auto& s : sinks_) {
    destroy(s.inst);
    s.failures = 0;
  }
  destroy(dlq_.inst);
}

bool Flow::run_once() {
  failed_ = false;
  set_state(FlowState::starting);
  if (!create_instances(nullptr) || !open_buffers() || !start_instances()) {
    teardown();
    return false;
  }
  set_state(FlowState::running);
  {
    std::lock_guard lock(inbox_mutex_);
    source_done_ = false;
    source_status_ = EF_OK;
  }
  if (buffered_) {
    // A backlog left by the last run drains from the start, whether or not the source has news.
    std::lock_guard pipeline(pipeline_mutex_);
    pump();
  }
  source_running_ = true;
  {
    std::lock_guard lock(signal_mutex_);
    signals_open_ = true;
  }
  source_thread_ = std::thread([this] {
    ef_status st = source_.comp->run(source_.self);
    {
      std::lock_guard lock(signal_mutex_);  // no signal is taken that no run() will see
      signals_open_ = false;
    }
    {
      std::lock_guard lock(inbox_mutex_);
      source_done_ = true;
      source_status_ = st;
    }
    inbox_cv_.notify_all();
  });
  serve_source();
  source_thread_.join();
  source_running_ = false;
  if (source_status_ != EF_OK && !failed_) fail(source_, "run failed: " + source_.last_error);
  if (!failed_) drain();
  teardown();
  return !failed_;
}

void Flow::thread_main() {
  t_flow = this;
  t_pipeline_thread = this;
  uint32_t attempt = 0;
  for (;;) {
    auto began = Clock::now();
    if (run_once()) {
      set_state(stop_ ? FlowState::stopped : FlowState::finished);
      break;
    }
    if (stop_) {
      set_state(FlowState::failed);
      break;
    }
    if (Clock::now() - began > spec_.restart_max) attempt = 0;  // it ran well for a while
    auto delay = backoff(++attempt, spec_.restart_initial, spec_.restart_max);
    stats_.restarts++;
    log_warn(spec_.name, "", "flow failed: " + last_error() + "; restart " + std::to_string(attempt) +
                                 " in " + std::to_string(delay.count()) + "ms");
    set_state(FlowState::backoff);
    std::unique_lock lock(inbox_mutex_);
    if (inbox_cv_.wait_for(lock, delay, [&] { return stop_.load(); })) {
      lock.unlock();
      set_state(FlowState::failed);
      break;
    }
  }
  t_flow = nullptr;
  t_pipeline_thread = nullptr;
  {
    std::lock_guard lock(observe_mutex_);
    ended_ = true;
  }
  observe_cv_.notify_all();
  if (on_end_) on_end_();
}

std::vector<PluginMetric> Flow::plugin_metrics() const {
  std::lock_guard lock(metrics_mutex_);
  std::vector<PluginMetric> out;
  for (auto& [key, v] : metrics_) out.push_back({key.first, key.second, v.kind, v.value});
  return out;
}

void Flow::set_metric(const Instance& inst, std::string_view name, uint32_t kind, double value) {
  bool valid = !name.empty() && name.size() <= 64 && kind <= EF_METRIC_COUNTER &&
               std::all_of(name.begin(), name.end(), [](char c) {
                 return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
               });
  std::lock_guard lock(metrics_mutex_);
  auto [it, fresh] = metrics_.try_emplace({inst.name, std::string(name)}, MetricValue{ef_metric_kind(kind), value, value});
  if (!valid) {
    metrics_.erase(it);
    if (rejected_metrics_.insert(std::string(name)).second)
      log(EF_LOG_ERROR, inst, "metric name '" + std::string(name) + "' refused: use 1 to 64 of [a-z0-9_], kind gauge or counter");
    return;
  }
  if (fresh) return;
  MetricValue& m = it->second;
  if (kind == EF_METRIC_COUNTER && m.kind == EF_METRIC_COUNTER) {
    // A restarted flow's new instance counts from 0 again: the reported total keeps rising.
    m.value += value >= m.last ? value - m.last : value;
    m.last = value;
  } else {
    m = MetricValue{ef_metric_kind(kind), value, value};
  }
}

std::chrono::milliseconds Flow::backoff(uint32_t attempt, std::chrono::milliseconds initial,
                                        std::chrono::milliseconds cap) {
  return sdk::full_jitter(initial, cap, attempt, rng_, 1);
}

}  // namespace edgeflow
