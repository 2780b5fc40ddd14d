// dedupe: drops repeats of an idempotency key seen within a time window, so a redelivery (a
// source replaying after a crash, a producer retrying, an upstream at-least-once hop) reaches
// the sinks once. A repeat is dropped, which acknowledges it as delivered: the first occurrence
// already went through.
//
// The window is counted from a key's first occurrence; a repeat does not extend it. So a key
// passes at most once per ttl, and an id that keeps recurring (a periodic status record) passes
// again every ttl instead of being suppressed for as long as it keeps coming. The keys sit in
// one queue in the order they were first seen: expiry (by ttl) and eviction (at max_keys) both
// remove from its front in O(1), so memory is O(max_keys) whatever the traffic.
//
// State is in memory only and per instance: a restart of the daemon or of the flow (the engine
// creates the steps anew on every run, also after a failure) forgets the window. That is the
// safe side: messages a failed run left unacknowledged are delivered again after the restart and
// must not be taken for repeats of themselves.
#include <edgeflow/sdk/expr.hpp>
#include <edgeflow/sdk/plugin.hpp>

#include <chrono>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

using namespace edgeflow::sdk;

namespace {

class Dedupe : public Transformer {
 public:
  struct Config {
    std::string key;
    int64_t max_keys = 100000;
    std::chrono::milliseconds ttl{std::chrono::minutes(10)};
    std::string clock = "wall";
  };
  static constexpr const char* type = "dedupe";
  static constexpr const char* description =
      "Drops messages whose idempotency key was already seen within a time window (in memory, bounded).";
  static void describe(Spec<Config>& s) {
    s.option("key", &Config::key)
        .required()
        .doc("Expression for the idempotency key, compared by its text form; a null or empty key rejects the message.")
        .example("concat(source.table, ':', after.id)");
    s.option("max_keys", &Config::max_keys)
        .min(1)
        .doc("Keys remembered at most (roughly 150 bytes each plus the key); when full, the oldest is forgotten early.")
        .example("1000000");
    s.option("ttl", &Config::ttl)
        .min(1)
        .doc("How long after its first occurrence a key's repeats are dropped.")
        .example("1h");
    s.option("clock", &Config::clock)
        .one_of("wall|message")
        .doc("wall: time as this process measures it (steady clock); message: the message timestamps, so a replay "
             "of old data deduplicates as it did live (messages without a timestamp are rejected).")
        .example("message");
  }

  Dedupe(Context c, Config cfg)
      : Transformer(c),
        key_(expr::compile_option(c, "key", cfg.key)),
        max_keys_(size_t(cfg.max_keys)),
        ttl_(cfg.ttl.count()),
        message_clock_(cfg.clock == "message") {
    if (!key_.reads_message())
      throw Error(c.where("key") + ": key: `" + cfg.key + "` reads nothing of the message, so it is the same for every "
                  "message and every message after the first would be dropped; use the field that identifies a "
                  "message, like after.id");
  }

  // Keys remembered now, never more than max_keys.
  size_t remembered() const { return index_.size(); }

  void transform(Batch b) override {
    // One reading per batch: a batch takes microseconds, far below any sensible ttl.
    int64_t wall = message_clock_ ? 0 : steady_ms();
    for (size_t i = 0; i < b.size(); ++i) {
      Message m = b[i];
      int64_t now = wall;
      if (message_clock_) {
        now = m.timestamp_ms();
        if (now == 0) {
          b.reject(i, "dedupe: clock: message, but the message has no timestamp; use clock: wall for this source");
          continue;
        }
      }
      std::string key;
      try {
        expr::Val v = key_.eval(m);
        if (v.is_null()) {
          b.reject(i, "dedupe: key: `" + key_.text() + "`: the key is null; a message without a key is not deduplicated");
          continue;
        }
        key = expr::to_text(v);
        // An empty key would make every keyless message a repeat of the first: no key at all.
        if (key.empty()) {
          b.reject(i, "dedupe: key: `" + key_.text() + "`: the key is empty; a message without a key is not deduplicated");
          continue;
        }
      } catch (const expr::EvalError& e) {
        b.reject(i, "dedupe: key: `" + key_.text() + "`: " + e.what());
        continue;
      }
      if (seen(key, now)) b.drop(i);
    }
  }

 private:
  struct Entry {
    std::string key;
    int64_t first_seen;
  };
  using Queue = std::list<Entry>;

  static int64_t steady_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // Whether key is a repeat within the window; if not, it is remembered as seen now.
  bool seen(std::string& key, int64_t now) {
    expire(now);
    if (auto it = index_.find(key); it != index_.end()) {
      // A message clock may go backwards (late or replayed events): a repeat is a repeat.
      if (now - it->second->first_seen < ttl_) return true;
      // Outside the window but not expired yet, because message time is not monotonic.
      forget(it->second);
    }
    if (index_.size() >= max_keys_) {
      if (!warned_ && now - order_.front().first_seen < ttl_) {
        warned_ = true;
        context().warn("max_keys (" + std::to_string(max_keys_) + ") reached before keys expired: the oldest keys are "
                       "forgotten early, so their repeats would pass; raise max_keys or lower ttl (warned once)");
      }
      forget(order_.begin());
    }
    order_.push_back({std::move(key), now});
    index_.emplace(order_.back().key, std::prev(order_.end()));
    return false;
  }

  void expire(int64_t now) {
    while (!order_.empty() && now - order_.front().first_seen >= ttl_) forget(order_.begin());
  }

  void forget(Queue::iterator it) {
    index_.erase(std::string_view(it->key));
    order_.erase(it);
  }

  expr::Expr key_;
  size_t max_keys_;
  int64_t ttl_;
  bool message_clock_;
  bool warned_ = false;
  Queue order_;  // oldest first
  std::unordered_map<std::string_view, Queue::iterator> index_;  // views into order_'s keys
};

}  // namespace

EDGEFLOW_PLUGIN("dedupe", "0.1.0", Dedupe)
