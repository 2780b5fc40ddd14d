// The daemon's set of flows (Runtime) and the host callback table every plugin is given.
#include "engine_internal.hpp"

#include "log.hpp"

#include <edgeflow/sdk/backoff.hpp>
#include <edgeflow/sdk/expr/value.hpp>

#include <rapidjson/stringbuffer.h>
#include <rapidjson/writer.h>

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <bit>
#include <ctime>
#include <filesystem>

namespace edgeflow {

using namespace detail;
using host::JValue;

// ---------------------------------------------------------------------------------------------
// Runtime

void log_summary(const Flow& f) {
  auto& s = f.stats();
  log_info(f.name(), "", std::string("ended ") + state_name(f.state()) + ": emitted=" + std::to_string(s.emitted.load()) +
                             " delivered=" + std::to_string(s.delivered.load()) +
                             " dead_lettered=" + std::to_string(s.dead_lettered.load()) +
                             " unresolved=" + std::to_string(s.unresolved_at_stop.load()) +
                             " restarts=" + std::to_string(s.restarts.load()));
  for (auto& m : f.plugin_metrics()) {
    char value[32];
    std::snprintf(value, sizeof value, "%.17g", m.value);
    log_info(f.name(), "", "metric " + m.instance + " " + m.name + "=" + value);
  }
}

std::string dead_letter_store_path(const std::string& state_dir) {
  return (state_dir.empty() ? std::string("edgeflow-state") : state_dir) + "/dead_letters.sqlite";
}

Runtime::Runtime(RuntimeOptions options)
    : options_(std::move(options)), plugins_(runtime_host_api()) {
  for (auto& d : options_.plugin_dirs) plugins_.load_dir(d);
}

Runtime::~Runtime() {
  request_stop();
  for (auto& f : flows()) f->join();
}

bool Runtime::build(host::Diagnostics& diag, std::vector<std::shared_ptr<Flow>>& out) {
  std::vector<FlowSpec> specs;
  {
    auto lock = lock_plugins();
    specs = load_flows(paths_, plugins_, options_.yaml, diag);
  }
  if (!diag.ok()) return false;
  std::string state = options_.state_dir.empty() ? "edgeflow-state" : options_.state_dir;
  for (auto& spec : specs) {
    if (!spec.dead_letter.component) {
      // No dead letter named: keep rejected messages in the repair station's store, where
      // `edgeflow dlq` finds them.
      const ComponentRef* store = plugins_.find(EF_KIND_SINK, "dlq_store");
      if (!store) {
        diag.errors.push_back(spec.where + ": dead_letter: no dead_letter configured and the "
                                           "built-in dlq_store sink is not loaded; add `dead_letter: "
                                           "{ type: ..., ... }` or load edgeflow-dlq_store.so");
        continue;
      }
      YAML::Node n(YAML::NodeType::Map);
      n["path"] = dead_letter_store_path(state);
      spec.dead_letter.key = "dead_letter";
      spec.dead_letter.type = "dlq_store";
      spec.dead_letter.where = spec.where;
      spec.dead_letter.component = store;
      spec.dead_letter.config = std::make_shared<host::Doc>();
      host::ConfigBuilder b{spec.file, diag, spec.dead_letter.locations, nullptr};
      b.build(n, *store->component, "dead_letter", {}, *spec.dead_letter.config);
    }
    out.push_back(std::make_shared<Flow>(std::move(spec), options_.state_dir));
  }
  return diag.ok();
}

bool Runtime::load(const std::vector<std::string>& paths, host::Diagnostics& diag) {
  paths_ = paths;
  std::vector<std::shared_ptr<Flow>> built;
  bool ok = build(diag, built);
  if (ok)
    for (auto& f : built) f->check(diag.errors);  // the plugins' own checks
  ok = ok && diag.ok();
  std::lock_guard lock(mutex_);
  if (ok) flows_ = std::move(built);
  return ok;
}

void Runtime::unload_unused_plugins() {
  std::vector<const ComponentRef*> used;
  for (auto& f : flows())
    for (const InstanceSpec* i : f->spec().instances()) used.push_back(i->component);
  auto lock = lock_plugins();
  plugins_.unload_unused(used);
}

void Runtime::start(Flow& f) {
  f.start([this] {
    { std::lock_guard lock(mutex_); }  // a waiter between its check and its wait sees this
    cv_.notify_all();
  });
}

void Runtime::start() {
  for (auto& f : flows()) start(*f);
}

void Runtime::request_stop() {
  std::vector<std::shared_ptr<Flow>> all;
  int requests;
  {
    std::lock_guard lock(mutex_);
    requests = ++stop_requests_;
    all = flows_;
  }
  for (auto& f : all) {
    if (requests > 1) f->force_stop();
    else f->request_stop();
  }
  cv_.notify_all();
}

void Runtime::wait() {
  std::unique_lock lock(mutex_);
  cv_.wait(lock, [&] {
    if (reloading_) return false;
    return std::all_of(flows_.begin(), flows_.end(), [](auto& f) { return f->ended(); });
  });
  auto all = flows_;
  lock.unlock();
  for (auto& f : all) f->join();
}

ReloadResult Runtime::reload() {
  std::lock_guard one(reload_mutex_);
  ReloadResult r;
  r.at = iso_timestamp();
  auto finish = [&] {
    std::lock_guard lock(mutex_);
    last_reload_ = r;
    return r;
  };
  {
    std::lock_guard lock(mutex_);
    if (stop_requests_) {
      r.errors.push_back("the daemon is stopping");
      return r;
    }
  }
  {
    auto lock = lock_plugins();
    for (auto& d : options_.plugin_dirs)
      for (auto& f : plugins_.load_new(d)) r.plugins_loaded.push_back(f);
  }
  // Parsed first, checked only for what would start: a running flow's plugins are not asked
  // again, and nothing changes unless all of it is valid.
  host::Diagnostics diag;
  std::vector<std::shared_ptr<Flow>> fresh;
  std::map<std::string, std::shared_ptr<Flow>> running;
  for (auto& f : flows()) running[f->name()] = f;
  std::vector<std::shared_ptr<Flow>> next, starting, stopping;
  std::set<std::string> names;
  if (build(diag, fresh)) {
    for (auto& f : fresh) {
      names.insert(f->name());
      auto it = running.find(f->name());
      if (it != running.end() && flow_fingerprint(it->second->spec()) == flow_fingerprint(f->spec())) {
        next.push_back(it->second);
        r.unchanged.push_back(f->name());
        continue;
      }
      f->check(diag.errors);
      next.push_back(f);
      starting.push_back(f);
      if (it != running.end()) {
        stopping.push_back(it->second);
        r.restarted.push_back(f->name());
      } else {
        r.started.push_back(f->name());
      }
    }
  }
  if (!diag.ok()) {
    r.started.clear();
    r.restarted.clear();
    r.unchanged.clear();
    r.errors = diag.errors;
    return finish();
  }
  for (auto& [name, f] : running) {
    if (names.count(name)) continue;
    stopping.push_back(f);
    r.stopped.push_back(name);
  }
  {
    std::lock_guard lock(mutex_);
    reloading_ = true;
  }
  // Each drains as at a stop (drain_timeout), then the new definition starts in its place: a CDC
  // flow resumes from its slot, a Kafka flow from its group's offsets.
  for (auto& f : stopping) f->request_stop();
  for (auto& f : stopping) {
    f->join();
    f->taps().close_all();  // a tap of the old definition would wait for events forever
    log_summary(*f);
  }
  bool stop_came;
  {
    std::lock_guard lock(mutex_);
    flows_ = next;
    stop_came = stop_requests_ > 0;
  }
  for (auto& f : starting) {
    if (stop_came) break;
    start(*f);
  }
  {
    std::lock_guard lock(mutex_);
    reloading_ = false;
  }
  cv_.notify_all();
  r.applied = true;
  log_info("", "runtime",
           "reloaded: " + std::to_string(r.started.size()) + " started, " + std::to_string(r.restarted.size()) +
               " restarted, " + std::to_string(r.stopped.size()) + " stopped, " + std::to_string(r.unchanged.size()) +
               " unchanged");
  return finish();
}

std::optional<ReloadResult> Runtime::last_reload() const {
  std::lock_guard lock(mutex_);
  return last_reload_;
}

int Runtime::exit_code() const {
  for (auto& f : flows()) {
    if (f->state() == FlowState::failed || f->stats().unresolved_at_stop > 0) return 1;
  }
  return 0;
}

std::shared_ptr<Flow> Runtime::flow(std::string_view name) const {
  std::lock_guard lock(mutex_);
  for (auto& f : flows_)
    if (f->name() == name) return f;
  return nullptr;
}

std::vector<std::shared_ptr<Flow>> Runtime::flows() const {
  std::lock_guard lock(mutex_);
  return flows_;
}

std::string ReloadResult::json() const {
  rapidjson::StringBuffer out;
  rapidjson::Writer<rapidjson::StringBuffer> w(out);
  w.StartObject();
  w.Key("status");
  w.String(applied ? "applied" : "invalid");
  w.Key("at");
  w.String(at.c_str());
  for (auto [k, v] : {std::pair{"errors", &errors}, {"started", &started}, {"restarted", &restarted},
                      {"stopped", &stopped}, {"unchanged", &unchanged}, {"plugins_loaded", &plugins_loaded}}) {
    w.Key(k);
    w.StartArray();
    for (auto& s : *v) w.String(s.data(), rapidjson::SizeType(s.size()));
    w.EndArray();
  }
  w.EndObject();
  return std::string(out.GetString(), out.GetSize());
}

// ---------------------------------------------------------------------------------------------
// The host callback table

const ef_host_api* runtime_host_api() {
  static const ef_host_api api = [] {
    ef_host_api h{};
    h.struct_size = sizeof(ef_host_api);
    h.abi_major = EF_ABI_MAJOR;
    h.abi_minor = EF_ABI_MINOR;
    host::fill_message_api(h);

    h.log = [](ef_ctx* c, uint32_t level, const char* text, size_t len) {
      ef_log_level l = level > EF_LOG_ERROR ? EF_LOG_ERROR : ef_log_level(level);
      if (!c) return edgeflow::log(l, "", "plugin", std::string_view(text, len));
      I(c)->flow->log(l, *I(c), std::string_view(text, len));
    };
    h.fail = [](ef_ctx* c, const char* reason, size_t len) {
      if (!c) return set_init_failure(std::string(reason, len));
      if (t_fail_reason) return void(t_fail_reason->assign(reason, len));
      I(c)->last_error.assign(reason, len);
    };
    h.config_where = [](ef_ctx* c, const char* key) -> const char* {
      Instance* inst = I(c);
      if (!key || !*key) return inst->spec->where.c_str();
      auto it = inst->spec->locations.find(host::join_key(inst->spec->key, key));
      return it == inst->spec->locations.end() ? inst->spec->where.c_str() : it->second.c_str();
    };
    h.config_key = [](ef_ctx* c, const char* key) -> const char* {
      thread_local std::string full;
      full = host::join_key(I(c)->spec->key, key ? key : "");
      return full.c_str();
    };
    h.instance_name = [](ef_ctx* c) { return I(c)->name.c_str(); };
    h.state_dir = [](ef_ctx* c) -> const char* {
      Instance* inst = I(c);
      if (inst->state_dir.empty()) return nullptr;
      std::error_code ec;
      std::filesystem::create_directories(inst->state_dir, ec);
      if (ec) {
        inst->flow->log(EF_LOG_ERROR, *inst, "cannot create state directory " + inst->state_dir + ": " + ec.message());
        return nullptr;
      }
      return inst->state_dir.c_str();
    };

    h.message_new = [](ef_ctx* c) { return reinterpret_cast<ef_message*>(static_cast<host::Message*>(I(c)->flow->new_message())); };
    h.message_free = [](ef_ctx* c, ef_message* m) { I(c)->flow->free_message(FM(m)); };

    h.emit = [](ef_ctx* c, ef_message* const* msgs, size_t n, int32_t timeout) {
      return I(c)->flow->emit(msgs, n, timeout);
    };
    h.poll = [](ef_ctx* c, int32_t timeout) { return I(c)->flow->poll(timeout); };
    h.in_flight = [](ef_ctx* c) { return size_t(I(c)->flow->stats().in_flight.load()); };
    h.metric_set = [](ef_ctx* c, const char* name, size_t len, uint32_t kind, double value) {
      I(c)->flow->set_metric(*I(c), std::string_view(name, len), kind, value);
    };

    h.batch_size = [](const ef_batch* b) { return B(b)->msgs->size(); };
    h.batch_at = [](const ef_batch* b, size_t i) -> ef_message* {
      if (i >= B(b)->msgs->size()) return nullptr;
      return reinterpret_cast<ef_message*>(static_cast<host::Message*>((*B(b)->msgs)[i]));
    };
    // drop, reject and split only mean something to a transformer step.
    h.batch_drop = [](ef_batch* b, size_t i) {
      if (B(b)->step && i < B(b)->msgs->size()) (*B(b)->msgs)[i]->fate = FlowMessage::drop;
    };
    h.batch_reject = [](ef_batch* b, size_t i, const char* reason, size_t len) {
      if (!B(b)->step || i >= B(b)->msgs->size()) return;
      FlowMessage* m = (*B(b)->msgs)[i];
      m->fate = FlowMessage::reject;
      m->reason.assign(reason ? reason : "", reason ? len : 0);
    };
    h.batch_split = [](ef_batch* b, size_t i) -> ef_message* {
      if (!B(b)->step || i >= B(b)->msgs->size()) return nullptr;
      return reinterpret_cast<ef_message*>(static_cast<host::Message*>(B(b)->flow->split(*B(b), i)));
    };
    h.sink_count = [](ef_ctx* c) { return I(c)->flow->sink_count(); };
    h.sink_name = [](ef_ctx* c, size_t i) -> const char* {
      return i < I(c)->flow->sink_count() ? I(c)->flow->sink_name(i).data() : nullptr;
    };
    h.sink_index = [](ef_ctx* c, const char* name, size_t len) {
      return I(c)->flow->sink_index(std::string_view(name, len));
    };
    h.ack = [](ef_ctx* c, ef_message* m, uint32_t status, const char* reason, size_t len) {
      I(c)->flow->sink_ack(I(c)->sink, FM(m), status, std::string_view(reason ? reason : "", reason ? len : 0));
    };
    h.ack_batch = [](ef_ctx* c, ef_batch* b, uint32_t status, const char* reason, size_t len) {
      std::string_view r(reason ? reason : "", reason ? len : 0);
      for (FlowMessage* m : *B(b)->msgs) I(c)->flow->sink_ack(I(c)->sink, m, status, r);
    };
    return h;
  }();
  return &api;
}

}  // namespace edgeflow
