// Synthetic JSON events for demos, load tests and benchmarks: as fast as the flow admits them,
// or at a steady rate. Nothing to commit, so acks only count down what is in flight.
#include <edgeflow/sdk/plugin.hpp>

#include <charconv>
#include <chrono>
#include <string>
#include <vector>

using namespace edgeflow::sdk;

namespace {

class Generate : public Source {
 public:
  struct Config {
    int64_t count = 0;
    double rate = 0;
    int64_t batch_size = 64;
    int64_t keys = 16;
  };
  static constexpr const char* type = "generate";
  static constexpr const char* description =
      "Synthetic JSON events {\"id\",\"key\",\"value\",\"ts\"}: a fixed count or endless, at a rate "
      "or as fast as the flow takes them.";
  static void describe(Spec<Config>& s) {
    s.option("count", &Config::count).min(0).doc("Events to emit before the source ends; 0 is endless.").example("1000");
    s.option("rate", &Config::rate).min(0).doc("Events per second; 0 emits as fast as the flow admits them.").example("10");
    s.option("batch_size", &Config::batch_size).range(1, 65536).doc("Events per emitted batch.").example("64");
    s.option("keys", &Config::keys).range(1, 1e9).doc("Distinct message keys, k-0 .. k-(keys-1), cycled.").example("16");
  }
  Generate(Context c, Config cfg) : Source(c), cfg_(cfg) {}

  void run() override {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    std::vector<ef_message*> batch;
    std::string payload;
    char key[32] = "k-";
    while (cfg_.count == 0 || next_ < uint64_t(cfg_.count)) {
      uint64_t n = uint64_t(cfg_.batch_size);
      if (cfg_.count) n = std::min<uint64_t>(n, uint64_t(cfg_.count) - next_);
      if (cfg_.rate > 0) {
        // Pace by the schedule, not by sleeping a fixed gap, so slow batches do not drift.
        auto due = start + std::chrono::duration_cast<Clock::duration>(
                               std::chrono::duration<double>(double(next_) / cfg_.rate));
        auto now = Clock::now();
        if (due > now) {
          auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(due - now).count() + 1;
          if (!poll(int32_t(std::min<int64_t>(wait, 100)))) return;
          continue;
        }
        // Only what is due now, so a low rate emits one event at a time.
        double ready = std::chrono::duration<double>(now - start).count() * cfg_.rate + 1 - double(next_);
        n = std::min(n, std::max<uint64_t>(uint64_t(ready), 1));
      }
      const int64_t ts = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count();
      batch.clear();
      for (uint64_t i = 0; i < n; ++i) {
        uint64_t id = next_ + i;
        Message m = new_message();
        std::string_view k(key, size_t(std::to_chars(key + 2, key + sizeof key, id % uint64_t(cfg_.keys)).ptr - key));
        payload.assign("{\"id\":");
        append_number(payload, id);
        payload.append(",\"key\":\"").append(k).append("\",\"value\":");
        append_number(payload, (id * 2654435761u) % 10000);
        payload.append(",\"ts\":");
        append_number(payload, uint64_t(ts));
        payload.push_back('}');
        m.set_payload(payload);
        m.set_key(k);
        m.set_content_type("application/json");
        m.set_timestamp_ms(ts);
        m.set_token(id);
        batch.push_back(m.raw());
      }
      if (emit(batch) != EF_OK) {
        for (auto* m : batch) free_message(Message(m));
        return;
      }
      next_ += n;
    }
  }
  void on_ack(std::span<const ef_ack>) override {}

 private:
  static void append_number(std::string& s, uint64_t v) {
    char buf[24];
    s.append(buf, size_t(std::to_chars(buf, buf + sizeof buf, v).ptr - buf));
  }

  Config cfg_;
  uint64_t next_ = 0;
};

}  // namespace

EDGEFLOW_PLUGIN("generate", "0.1.0", Generate)
