// An in-memory Kafka cluster in the test process, and real librdkafka clients to use it
// (header-only; the including target links pkg-config `rdkafka`).
//
//   edgeflow::test::KafkaMock kafka;              // 1 broker; KafkaMock kafka(3) for three
//   kafka.create_topic("orders", 4);
//   connect_somehow(kafka.bootstraps());          // "127.0.0.1:41234[,...]"
//   kafka.produce("orders", {{.key = "k1", .value = "v1", .headers = {{"h", "x"}}}});
//   auto got = kafka.consume_all("orders", 1);    // key, value, headers, partition, offset
//
// The cluster is librdkafka's mock cluster (rdkafka_mock.h): a real Kafka protocol peer run by
// librdkafka inside this process, its brokers on 127.0.0.1 ports the kernel picks. What it does
// differently from Kafka (librdkafka 2.0.2, checked by tests/integration/kafka_mock_test.cpp
// where it matters):
//   * A topic nobody created is created by the first metadata request naming it, from any client
//     (producer or consumer, whatever `allow.auto.create.topics` says), with 4 partitions; a
//     produce to partition N of an unknown topic creates it with N + 1. consume_all() on a topic
//     that does not exist therefore creates it (and finds nothing).
//   * Partition leaders are picked at random among the brokers, and every topic has min(3,
//     brokers) replicas whatever replication factor is asked for. With more than one broker, pin
//     a leader with set_leader() before set_down() if the test depends on which one goes away.
//   * Each partition keeps about 5 MB and at most 100000 batches; older batches are dropped
//     silently (the log start offset moves up). Keep test data well below that.
//   * set_down() closes the broker's connections and refuses new ones until set_up(); the
//     partitions it leads have no reachable leader meanwhile (nothing fails over).
//
// Every failure is a std::runtime_error naming what failed; consume_all() instead returns what it
// read by the deadline (so a test compares the count) and says on stderr why it stopped short.
#pragma once

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace edgeflow::test {

// One Kafka record: what produce() writes and what consume_all() returns.
struct KafkaMessage {
  // Default member initializers all round, so designated initializers may leave any out.
  std::string key{};  // empty: no key (a null key reads back as "")
  std::string value{};
  std::vector<std::pair<std::string, std::string>> headers{};  // in order; names may repeat
  int32_t partition = -1;  // produce: -1 lets the partitioner choose; read: where it is
  int64_t offset = -1;     // read: its offset
};

namespace kafka_detail {

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;

// A client handle; `settings` are librdkafka properties.
inline Handle client(rd_kafka_type_t type, const std::vector<std::pair<std::string, std::string>>& settings,
                     void (*dr_cb)(rd_kafka_t*, const rd_kafka_message_t*, void*) = nullptr,
                     void* opaque = nullptr) {
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf, name.c_str(), value.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error("kafka test client: " + name + "=" + value + ": " + err);
    }
  }
  if (dr_cb) rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
  if (opaque) rd_kafka_conf_set_opaque(conf, opaque);
  rd_kafka_t* rk = rd_kafka_new(type, conf, err, sizeof err);
  if (!rk) {
    rd_kafka_conf_destroy(conf);
    throw std::runtime_error(std::string("kafka test client: rd_kafka_new: ") + err);
  }
  return Handle(rk);
}

struct Deliveries {
  std::vector<KafkaMessage>* out = nullptr;
  size_t done = 0;
  std::string first_error{};
};

inline void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  auto* d = static_cast<Deliveries*>(opaque);
  ++d->done;
  size_t index = reinterpret_cast<uintptr_t>(m->_private);
  if (m->err) {
    if (d->first_error.empty())
      d->first_error = "message " + std::to_string(index) + ": " + rd_kafka_err2str(m->err);
    return;
  }
  (*d->out)[index].partition = m->partition;
  (*d->out)[index].offset = m->offset;
}

}  // namespace kafka_detail

// Writes `messages` to `topic` with a fresh idempotent producer and waits for every delivery
// report. Returns the messages with the partition and offset each was written at; throws if any
// was not delivered within `timeout`.
inline std::vector<KafkaMessage> kafka_produce(const std::string& bootstraps, const std::string& topic,
                                               std::vector<KafkaMessage> messages,
                                               std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  kafka_detail::Deliveries d{&messages};
  auto p = kafka_detail::client(RD_KAFKA_PRODUCER,
                                {{"bootstrap.servers", bootstraps},
                                 {"enable.idempotence", "true"},
                                 {"linger.ms", "0"},
                                 {"message.timeout.ms", std::to_string(timeout.count())}},
                                kafka_detail::on_delivery, &d);
  for (size_t i = 0; i < messages.size(); ++i) {
    const KafkaMessage& m = messages[i];
    rd_kafka_headers_t* headers = rd_kafka_headers_new(m.headers.size());
    for (auto& [name, value] : m.headers)
      rd_kafka_header_add(headers, name.data(), ssize_t(name.size()), value.data(), ssize_t(value.size()));
    rd_kafka_resp_err_t err = rd_kafka_producev(
        p.get(), RD_KAFKA_V_TOPIC(topic.c_str()), RD_KAFKA_V_PARTITION(m.partition < 0 ? RD_KAFKA_PARTITION_UA : m.partition),
        RD_KAFKA_V_KEY(m.key.empty() ? nullptr : m.key.data(), m.key.size()),
        RD_KAFKA_V_VALUE(const_cast<char*>(m.value.data()), m.value.size()), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(headers), RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(uintptr_t(i))), RD_KAFKA_V_END);
    if (err) {
      rd_kafka_headers_destroy(headers);  // ours again when producev fails
      throw std::runtime_error("kafka_produce(" + topic + "): message " + std::to_string(i) + ": " +
                               rd_kafka_err2str(err));
    }
  }
  // flush() serves the delivery reports; message.timeout.ms bounds each, this the whole.
  rd_kafka_resp_err_t err = rd_kafka_flush(p.get(), int(timeout.count()) + 5000);
  if (err || d.done != messages.size())
    throw std::runtime_error("kafka_produce(" + topic + "): " + std::to_string(d.done) + " of " +
                             std::to_string(messages.size()) + " delivery reports: " + rd_kafka_err2str(err));
  if (!d.first_error.empty()) throw std::runtime_error("kafka_produce(" + topic + "): " + d.first_error);
  return messages;
}

// Reads `topic` from the beginning with a fresh consumer (no group: every partition started at
// OFFSET_BEGINNING) until at least `expected_count` messages were read and every partition is at
// its end, or until `timeout`. Returns everything read, in the order read (per partition in
// offset order), extras included; on a timeout, what it had, with the reason on stderr.
inline std::vector<KafkaMessage> kafka_consume_all(const std::string& bootstraps, const std::string& topic,
                                                   size_t expected_count,
                                                   std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + timeout;
  auto remaining_ms = [&] {  // rounded up: 0 only once the deadline has passed
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
    return int(std::max<long long>(left, 0));
  };
  auto c = kafka_detail::client(RD_KAFKA_CONSUMER, {{"bootstrap.servers", bootstraps},
                                                     {"enable.partition.eof", "true"},
                                                     {"fetch.wait.max.ms", "50"}});
  std::string last_error;
  int partitions = 0;
  // The topic's partition count; retried while the cluster has no answer yet (a broker down).
  while (partitions == 0) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(c.get(), topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t err = rd_kafka_metadata(c.get(), 0, t, &md, std::max(remaining_ms(), 1));
    rd_kafka_topic_destroy(t);
    if (!err && md->topic_cnt == 1 && !md->topics[0].err) partitions = md->topics[0].partition_cnt;
    else last_error = rd_kafka_err2str(err ? err : md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC);
    if (md) rd_kafka_metadata_destroy(md);
    if (partitions == 0 && remaining_ms() == 0) {
      std::fprintf(stderr, "kafka_consume_all(%s): no metadata for the topic: %s\n", topic.c_str(), last_error.c_str());
      return {};
    }
  }
  // The simple consumer: a group-less rd_kafka_assign() is refused ("Unknown group"), and a
  // group.id would bring a coordinator into every read.
  rd_kafka_topic_t* t = rd_kafka_topic_new(c.get(), topic.c_str(), nullptr);
  rd_kafka_queue_t* queue = rd_kafka_queue_new(c.get());
  int started = 0;
  for (; started < partitions; ++started)
    if (rd_kafka_consume_start_queue(t, started, RD_KAFKA_OFFSET_BEGINNING, queue) != 0) break;
  auto stop = [&] {
    for (int p = 0; p < started; ++p) rd_kafka_consume_stop(t, p);
    rd_kafka_queue_destroy(queue);
    rd_kafka_topic_destroy(t);
  };
  if (started < partitions) {
    std::string why = rd_kafka_err2str(rd_kafka_last_error());
    stop();
    throw std::runtime_error("kafka_consume_all(" + topic + "): consume_start: " + why);
  }

  std::vector<KafkaMessage> got;
  std::vector<bool> at_end(size_t(partitions), false);
  auto all_at_end = [&] { return std::find(at_end.begin(), at_end.end(), false) == at_end.end(); };
  while (!(got.size() >= expected_count && all_at_end())) {
    int wait = std::min(remaining_ms(), 100);
    if (wait == 0) {
      std::fprintf(stderr, "kafka_consume_all(%s): %zu of %zu message(s) after %lld ms%s%s%s\n", topic.c_str(),
                   got.size(), expected_count, static_cast<long long>(timeout.count()),
                   all_at_end() ? "" : ", not every partition read to its end",
                   last_error.empty() ? "" : "; last error: ", last_error.c_str());
      break;
    }
    rd_kafka_message_t* m = rd_kafka_consume_queue(queue, wait);
    if (!m) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      if (m->partition >= 0 && m->partition < partitions) at_end[size_t(m->partition)] = true;
    } else if (m->err) {
      last_error = rd_kafka_message_errstr(m);  // transient (a broker down...): keep going
    } else {
      KafkaMessage k;
      if (m->key) k.key.assign(static_cast<const char*>(m->key), m->key_len);
      if (m->payload) k.value.assign(static_cast<const char*>(m->payload), m->len);
      rd_kafka_headers_t* hdrs = nullptr;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        const char* name;
        const void* value;
        size_t size;
        for (size_t i = 0; rd_kafka_header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; ++i)
          k.headers.emplace_back(name, value ? std::string(static_cast<const char*>(value), size) : std::string());
      }
      k.partition = m->partition;
      k.offset = m->offset;
      if (m->partition >= 0 && m->partition < partitions) at_end[size_t(m->partition)] = false;
      got.push_back(std::move(k));
    }
    rd_kafka_message_destroy(m);
  }
  stop();
  return got;
}

// librdkafka's mock cluster with `brokers` brokers (ids 1..brokers), for the life of the object.
class KafkaMock {
 public:
  using Message = KafkaMessage;

  explicit KafkaMock(int brokers = 1) : brokers_(brokers) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // The handle only hosts the cluster: its notice about having no bootstrap.servers is noise.
    rd_kafka_conf_set(conf, "log_level", "4", err, sizeof err);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk_) {
      rd_kafka_conf_destroy(conf);
      throw std::runtime_error(std::string("KafkaMock: rd_kafka_new: ") + err);
    }
    cluster_ = rd_kafka_mock_cluster_new(rk_, brokers);
    if (!cluster_) {
      rd_kafka_destroy(rk_);
      throw std::runtime_error("KafkaMock: rd_kafka_mock_cluster_new(" + std::to_string(brokers) +
                               ") failed (librdkafka logged why on stderr)");
    }
    bootstraps_ = rd_kafka_mock_cluster_bootstraps(cluster_);
  }

  ~KafkaMock() {
    rd_kafka_mock_cluster_destroy(cluster_);  // before its handle, as librdkafka requires
    rd_kafka_destroy(rk_);
  }

  KafkaMock(const KafkaMock&) = delete;
  KafkaMock& operator=(const KafkaMock&) = delete;

  // "127.0.0.1:PORT,127.0.0.1:PORT,...": broker 1 first.
  const std::string& bootstraps() const { return bootstraps_; }
  int brokers() const { return brokers_; }
  // For what the helpers do not cover (rd_kafka_mock_push_request_errors, ...).
  rd_kafka_mock_cluster_t* cluster() const { return cluster_; }

  // Throws if it exists already (also when a client has auto-created it).
  void create_topic(const std::string& name, int partitions = 1) {
    check("create_topic(" + name + ")",
          rd_kafka_mock_topic_create(cluster_, name.c_str(), partitions, std::min(3, brokers_)));
  }
  void set_leader(const std::string& topic, int32_t partition, int32_t broker_id) {
    check("set_leader(" + topic + ", " + std::to_string(partition) + ")",
          rd_kafka_mock_partition_set_leader(cluster_, topic.c_str(), partition, broker_id));
  }
  void set_down(int32_t broker_id) {
    check("set_down(" + std::to_string(broker_id) + ")", rd_kafka_mock_broker_set_down(cluster_, broker_id));
  }
  void set_up(int32_t broker_id) {
    check("set_up(" + std::to_string(broker_id) + ")", rd_kafka_mock_broker_set_up(cluster_, broker_id));
  }

  std::vector<Message> produce(const std::string& topic, std::vector<Message> messages,
                               std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    return kafka_produce(bootstraps_, topic, std::move(messages), timeout);
  }
  std::vector<Message> consume_all(const std::string& topic, size_t expected_count,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(30)) const {
    return kafka_consume_all(bootstraps_, topic, expected_count, timeout);
  }

 private:
  static void check(const std::string& what, rd_kafka_resp_err_t err) {
    if (err) throw std::runtime_error("KafkaMock::" + what + ": " + rd_kafka_err2str(err));
  }

  int brokers_;
  rd_kafka_t* rk_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  std::string bootstraps_;
};

}  // namespace edgeflow::test
