// Kafka egress: an idempotent producer (acks=all) whose delivery reports resolve each message's
// end-to-end acknowledgement. Topic, key, partition and headers come from expressions.
//
// Statuses: delivered once the broker acknowledged the write; rejected (to the dead letter, with
// the reason) when the message can never be written as it is (too large, a topic or key that does
// not evaluate, a partition that does not exist); retry for everything transient (the runtime
// retries with backoff, in order per sink). A fatal producer error (e.g. the idempotent
// producer's sequence was lost) fails the flow with librdkafka's reason.
#pragma once

#include "client.hpp"

#include <edgeflow/sdk/expr.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>

namespace edgeflow::kafka {

namespace expr = sdk::expr;
using sdk::Batch;
using sdk::Message;
using sdk::Spec;

class KafkaSink : public sdk::Sink, public Handler {
 public:
  struct Config : ClientOptions {
    std::string topic;
    std::string key;
    std::string partition;
    Json headers;
    bool forward_headers = true;
    std::string compression = "lz4";
    std::chrono::milliseconds linger{5};
    sdk::Bytes batch_bytes{1 << 20};
    sdk::Bytes max_message_bytes{1000000};
    std::chrono::milliseconds delivery_timeout{30000};
    std::string acks = "all";
    bool idempotence = true;
  };
  static constexpr const char* type = "kafka";
  static constexpr const char* description =
      "Produces each message to Kafka (idempotent, acks=all by default); a message counts as "
      "delivered when the broker acknowledged it.";
  static void describe(Spec<Config>& s) {
    describe_client(s);
    s.option("topic", &Config::topic)
        .required()
        .doc("Topic: text, or a template with ${expression} parts evaluated per message.")
        .example("orders.${region}");
    s.option("key", &Config::key)
        .doc("Expression for the Kafka key (partitioning, compaction); default: the message's key.")
        .example("id");
    s.option("partition", &Config::partition)
        .doc("Expression for the partition number; default: librdkafka's partitioner on the key.")
        .example("int(shard) % 12");
    s.option("headers", &Config::headers)
        .doc("Kafka headers to add: name: expression.")
        .example("{ event-type: op, source: \"'edge-7'\" }");
    s.option("forward_headers", &Config::forward_headers)
        .doc("Also send the message's own headers (e.g. those a Kafka or HTTP source received).")
        .example("false");
    s.option("compression", &Config::compression).one_of("none|gzip|snappy|lz4|zstd").doc("Batch compression.").example("zstd");
    s.option("linger", &Config::linger)
        .doc("How long a batch may wait to fill (linger.ms): latency against throughput.")
        .example("20ms");
    s.option("batch_bytes", &Config::batch_bytes).min(1).doc("Largest batch per partition (batch.size).").example("1MiB");
    s.option("max_message_bytes", &Config::max_message_bytes)
        .min(1000)
        .doc("Largest message produced (message.max.bytes); keep it at or below the topic's "
             "max.message.bytes. Larger messages go to the dead letter.")
        .example("1MiB");
    s.option("delivery_timeout", &Config::delivery_timeout)
        .min(1)
        .doc("How long librdkafka keeps trying one message (message.timeout.ms) before it is "
             "handed back to the runtime as a retry.")
        .example("1m");
    s.option("acks", &Config::acks)
        .one_of("all|leader|none")
        .doc("Which replicas must have a message before it counts as delivered; idempotence needs all.")
        .example("all");
    s.option("idempotence", &Config::idempotence)
        .doc("Idempotent producer: no duplicates or reordering from librdkafka's own retries.")
        .example("true");
  }

  KafkaSink(sdk::Context c, Config cfg) : Sink(c), cfg_(std::move(cfg)) {
    if (cfg_.idempotence && cfg_.acks != "all")
      throw Error(c.where("acks") + ": acks: the idempotent producer needs acks: all (or set idempotence: false)");
    topic_ = expr::compile_template(c, "topic", cfg_.topic);
    if (!cfg_.key.empty()) key_ = expr::compile_option(c, "key", cfg_.key);
    if (!cfg_.partition.empty()) partition_ = expr::compile_option(c, "partition", cfg_.partition);
    if (auto* o = cfg_.headers.object()) {
      for (auto& [name, v] : *o) {
        std::string k = "headers." + name;
        if (!v.string()) throw Error(c.where(k) + ": " + k + ": expected an expression");
        headers_.push_back({name, expr::compile_option(c, k, *v.string())});
      }
    } else if (!cfg_.headers.is_null()) {
      throw Error(c.where("headers") + ": headers: expected a map of name: expression");
    }
    conf_ = client_conf(c, cfg_, {"enable.idempotence", "acks", "request.required.acks", "message.max.bytes",
                                  "message.timeout.ms", "delivery.timeout.ms", "compression.codec",
                                  "compression.type", "linger.ms", "queue.buffering.max.ms", "batch.size"});
    set(c, conf_.get(), "enable.idempotence", cfg_.idempotence ? "true" : "false", "idempotence");
    set(c, conf_.get(), "acks", cfg_.acks == "all" ? "all" : cfg_.acks == "leader" ? "1" : "0", "acks");
    set(c, conf_.get(), "compression.codec", cfg_.compression, "compression");
    set(c, conf_.get(), "linger.ms", std::to_string(cfg_.linger.count()), "linger");
    set(c, conf_.get(), "batch.size", std::to_string(cfg_.batch_bytes.value), "batch_bytes");
    set(c, conf_.get(), "message.max.bytes", std::to_string(cfg_.max_message_bytes.value), "max_message_bytes");
    set(c, conf_.get(), "message.timeout.ms", std::to_string(cfg_.delivery_timeout.count()), "delivery_timeout");
  }
  ~KafkaSink() override { close(); }

  const sdk::Context& log_context() const override { return context(); }

  void start() override {
    rd_kafka_conf_t* conf = rd_kafka_conf_dup(conf_.get());
    attach(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t* rk, const rd_kafka_message_t* m, void*) {
      static_cast<KafkaSink*>(static_cast<Handler*>(rd_kafka_opaque(rk)))->delivered(rk, *m);
    });
    rd_kafka_conf_set_error_cb(conf, [](rd_kafka_t* rk, int err, const char* reason, void*) {
      static_cast<KafkaSink*>(static_cast<Handler*>(rd_kafka_opaque(rk)))->client_error(rk, err, reason);
    });
    char err[512];
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk_) {
      rd_kafka_conf_destroy(conf);
      throw Error(std::string("cannot create the Kafka producer: ") + err);
    }
    running_ = true;
    poller_ = std::thread([this] {
      while (running_) rd_kafka_poll(rk_, 100);
    });
    check_reachable(rk_, *this, cfg_.brokers, kReachTimeoutMs);
    // A fixed topic's metadata now, not when the first message waits for it (and the flow fills
    // up meanwhile). Only a warm-up: a broker that does not answer yet is retried by librdkafka.
    if (cfg_.topic.find("${") == std::string::npos) {
      rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_, cfg_.topic.c_str(), nullptr);
      const rd_kafka_metadata_t* md = nullptr;
      if (rkt && rd_kafka_metadata(rk_, 0, rkt, &md, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) rd_kafka_metadata_destroy(md);
      if (rkt) rd_kafka_topic_destroy(rkt);
    }
  }

  void stop() override { close(); }

  void write(Batch b) override {
    if (auto why = fatal()) throw Error("the Kafka producer failed and cannot go on: " + *why);
    for (size_t i = 0; i < b.size(); ++i) produce(b[i]);
  }

  void flush(int32_t timeout_ms) override {
    if (rk_) rd_kafka_flush(rk_, timeout_ms);
  }

 private:
  static constexpr int kReachTimeoutMs = 10000;

  void produce(Message m) {
    std::string rendered, key;
    int32_t partition = RD_KAFKA_PARTITION_UA;
    rd_kafka_headers_t* hdrs = nullptr;
    try {
      if (!topic_.is_literal()) rendered = topic_.render(m);
      if (topic_.is_literal() ? topic_.literal().empty() : rendered.empty()) throw expr::EvalError("topic is empty");
      if (key_) key = expr::required_text(expr::eval_option(*key_, "key", m), "key");
      else key = std::string(m.key());
      if (partition_) {
        expr::Val p = expr::eval_option(*partition_, "partition", m);
        if (!p.is_int() || p.as_int() < 0 || p.as_int() > INT32_MAX)
          throw expr::EvalError("partition: `" + partition_->text() + "` is not a partition number: " + expr::to_text(p));
        partition = int32_t(p.as_int());
      }
      hdrs = headers(m);
    } catch (const expr::EvalError& e) {
      if (hdrs) rd_kafka_headers_destroy(hdrs);
      ack(m, EF_ACK_REJECTED, e.what());
      return;
    }
    const std::string& topic = topic_.is_literal() ? topic_.literal() : rendered;
    bool once = false;
    rd_kafka_topic_t* rkt = handle(topic, once);
    std::unique_ptr<rd_kafka_topic_t, void (*)(rd_kafka_topic_t*)> release(once ? rkt : nullptr, rd_kafka_topic_destroy);
    // Not copied: a message stays valid until it is acknowledged, and that is the delivery report,
    // after which librdkafka no longer reads it.
    std::string_view value = m.payload();
    for (;;) {
      rd_kafka_resp_err_t err = rd_kafka_producev(
          rk_, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition), RD_KAFKA_V_MSGFLAGS(0),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
          RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(m.raw()), RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;  // the headers now belong to librdkafka
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        // The local queue is the bound: wait for deliveries to make room.
        rd_kafka_poll(rk_, 100);
        if (!fatal()) continue;
      }
      if (hdrs) rd_kafka_headers_destroy(hdrs);
      ack(m, permanent(err) ? EF_ACK_REJECTED : EF_ACK_RETRY, reason(err, topic, partition, value.size()));
      return;
    }
  }

  // librdkafka's topic handle, kept per name: looking the name up on every produce takes its locks.
  // Beyond kMaxTopicHandles names (a template) a handle is for one message: `once` is set and
  // the caller releases it (the message keeps its own reference).
  rd_kafka_topic_t* handle(const std::string& name, bool& once) {
    once = false;
    if (auto it = topics_.find(name); it != topics_.end()) return it->second;
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk_, name.c_str(), nullptr);
    if (topics_.size() < kMaxTopicHandles) topics_.emplace(name, rkt);
    else once = true;
    return rkt;
  }

  rd_kafka_headers_t* headers(Message m) const {
    size_t forwarded = cfg_.forward_headers ? m.header_count() : 0;
    if (forwarded == 0 && headers_.empty()) return nullptr;
    rd_kafka_headers_t* h = rd_kafka_headers_new(forwarded + headers_.size());
    for (size_t i = 0; i < forwarded; ++i) {
      auto [name, value] = m.header_at(i);
      rd_kafka_header_add(h, name.data(), ssize_t(name.size()), value.data(), ssize_t(value.size()));
    }
    try {
      for (auto& [name, e] : headers_) {
        std::string v = expr::required_text(expr::eval_option(e, "headers." + name, m), "headers." + name);
        rd_kafka_header_add(h, name.data(), ssize_t(name.size()), v.data(), ssize_t(v.size()));
      }
    } catch (...) {
      rd_kafka_headers_destroy(h);
      throw;
    }
    return h;
  }

  // From the poller thread: one delivery report.
  void delivered(rd_kafka_t* rk, const rd_kafka_message_t& r) {
    Message m(static_cast<ef_message*>(r._private));
    if (r.err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      ack(m, EF_ACK_DELIVERED);
      return;
    }
    // Known before this ack reaches the runtime, so the next write already refuses.
    note_fatal(rk);
    std::string topic = r.rkt ? rd_kafka_topic_name(r.rkt) : "?";
    ack(m, permanent(r.err) ? EF_ACK_REJECTED : EF_ACK_RETRY, reason(r.err, topic, r.partition, r.len));
  }

  void client_error(rd_kafka_t* rk, int err, const char* why) {
    note_error(why);
    if (err != RD_KAFKA_RESP_ERR__FATAL) {
      context().warn(std::string("Kafka: ") + why);
      return;
    }
    note_fatal(rk);
  }

  void note_fatal(rd_kafka_t* rk) {
    char text[512];
    rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, text, sizeof text);
    if (!orig) return;
    std::lock_guard lock(mutex_);
    if (fatal_) return;
    fatal_ = std::string(rd_kafka_err2name(orig)) + ": " + text;
    context().error("fatal Kafka producer error: " + *fatal_);
  }

  std::optional<std::string> fatal() const {
    std::lock_guard lock(mutex_);
    return fatal_;
  }

  // Errors that no retry can fix: the message goes to the dead letter.
  static bool permanent(rd_kafka_resp_err_t err) {
    switch (err) {
      case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
      case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
      case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
      case RD_KAFKA_RESP_ERR_INVALID_RECORD:
      case RD_KAFKA_RESP_ERR_INVALID_MSG:
      case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
      case RD_KAFKA_RESP_ERR__INVALID_ARG:
      case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
        return true;
      default:
        return false;
    }
  }

  std::string reason(rd_kafka_resp_err_t err, const std::string& topic, int32_t partition, size_t bytes) const {
    std::string where = "topic " + topic + (partition == RD_KAFKA_PARTITION_UA ? "" : " partition " + std::to_string(partition));
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE || err == RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE)
      return "Kafka: the message (" + std::to_string(bytes) + " bytes) is larger than " +
             (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ? "the broker or max_message_bytes allows" : "allowed") +
             " for " + where + " (" + rd_kafka_err2name(err) + ")";
    return "Kafka: " + where + ": " + rd_kafka_err2str(err) + " (" + rd_kafka_err2name(err) + ")";
  }

  void close() {
    if (!rk_) return;
    // No flush of its own: the flow's drain has flushed for what was left of drain_timeout, and
    // what is still open stays open (the source reads it again after the restart).
    running_ = false;
    poller_.join();
    rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(rk_, 0);  // the purged ones are reported as retries
    for (auto& [name, rkt] : topics_) rd_kafka_topic_destroy(rkt);
    topics_.clear();
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
  }

  Config cfg_;
  Conf conf_;
  expr::Template topic_;
  static constexpr size_t kMaxTopicHandles = 1024;
  std::unordered_map<std::string, rd_kafka_topic_t*> topics_;  // flow thread only
  std::optional<expr::Expr> key_, partition_;
  std::vector<std::pair<std::string, expr::Expr>> headers_;
  rd_kafka_t* rk_ = nullptr;
  std::atomic<bool> running_{false};
  std::thread poller_;
  mutable std::mutex mutex_;
  std::optional<std::string> fatal_;
};

}  // namespace edgeflow::kafka
