// The development Kafka broker (`edgeflow dev kafka`) as a child process, and the benchmarks'
// own librdkafka client that fills topics and counts them: shared by bench/kafka and
// bench/pgsink.
#pragma once

#include "bench.hpp"

#include <librdkafka/rdkafka.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>

namespace bench {

// The development broker: `edgeflow dev kafka` as a child process. Destroyed on std::exit too
// (bench::die), so a failed run still stops it.
struct Broker {
  pid_t pid = -1;
  std::string bootstrap;

  Broker(const std::string& dir, int partitions, const std::vector<std::string>& topics) {
    std::vector<std::string> args{EDGEFLOW_BIN, "dev", "kafka", "--brokers", "1", "--partitions",
                                  std::to_string(partitions)};
    for (auto& t : topics) args.insert(args.end(), {"--topic", t});
    std::string out = dir + "/broker.out", log = dir + "/broker.log";
    std::filesystem::remove(out);  // a previous broker's line must not be taken for this one's
    pid = spawn(args, "", out, log);
    // The line `bootstrap.servers=host:port,...` follows a banner on its standard output.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (;;) {
      std::string text = slurp(out);
      auto at = text.find("bootstrap.servers=");
      if (at != std::string::npos && text.find('\n', at) != std::string::npos) {
        at += std::strlen("bootstrap.servers=");
        bootstrap = text.substr(at, text.find('\n', at) - at);
        return;
      }
      int status = 0;
      if (waitpid(pid, &status, WNOHANG) == pid) {
        pid = -1;
        die("edgeflow dev kafka exited (status " + std::to_string(status) + "):\n" + slurp(log));
      }
      if (std::chrono::steady_clock::now() > deadline) die("edgeflow dev kafka printed no bootstrap.servers line in 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;
  ~Broker() {
    if (pid <= 0) return;
    kill(pid, SIGTERM);
    int status = 0;
    waitpid(pid, &status, 0);
  }

  // The broker's peak RSS (VmHWM), KiB.
  long peak_rss_kib() const {
    std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/status"));
    for (std::string line; std::getline(in, line);)
      if (line.rfind("VmHWM:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1;
  }

  // CPU seconds the broker process has used so far (utime + stime).
  double cpu() const {
    std::string s = slurp("/proc/" + std::to_string(pid) + "/stat");
    auto paren = s.rfind(')');
    if (paren == std::string::npos) die("cannot read /proc/" + std::to_string(pid) + "/stat");
    std::istringstream in(s.substr(paren + 2));
    std::vector<std::string> f;
    for (std::string w; in >> w;) f.push_back(w);
    if (f.size() < 13) die("cannot read /proc/" + std::to_string(pid) + "/stat");
    return (std::stod(f[11]) + std::stod(f[12])) / double(sysconf(_SC_CLK_TCK));
  }
};

// The benchmark's own client: fills the input and counts topics.
struct KafkaClient {
  rd_kafka_t* rk = nullptr;
  long failed = 0;  // delivery reports with an error

  explicit KafkaClient(const std::string& bootstrap) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    auto set = [&](const char* k, const std::string& v) {
      if (rd_kafka_conf_set(conf, k, v.c_str(), err, sizeof err) != RD_KAFKA_CONF_OK) die(err);
    };
    set("bootstrap.servers", bootstrap);
    set("compression.codec", "lz4");
    set("acks", "all");
    set("linger.ms", "5");
    set("queue.buffering.max.messages", "1000000");
    rd_kafka_conf_set_opaque(conf, this);
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
      if (m->err) ++static_cast<KafkaClient*>(opaque)->failed;
    });
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die(std::string("cannot create a Kafka producer: ") + err);
  }
  KafkaClient(const KafkaClient&) = delete;
  KafkaClient& operator=(const KafkaClient&) = delete;
  ~KafkaClient() { rd_kafka_destroy(rk); }

  int partitions(const std::string& topic) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    const rd_kafka_metadata_t* md = nullptr;
    rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, t, &md, 10000);
    rd_kafka_topic_destroy(t);
    if (e) die("metadata of " + topic + ": " + rd_kafka_err2str(e));
    int n = md->topic_cnt == 1 && !md->topics[0].err ? md->topics[0].partition_cnt : -1;
    rd_kafka_metadata_destroy(md);
    if (n < 0) die("topic " + topic + " does not exist on the broker");
    return n;
  }

  // Messages in the topic: the high watermarks added up. With `whole`, every partition must
  // still start at offset 0 (nothing dropped by the mock's retention).
  long count(const std::string& topic, bool whole) {
    long n = 0;
    for (int p = 0, parts = partitions(topic); p < parts; ++p) {
      int64_t lo = 0, hi = 0;
      rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic.c_str(), p, &lo, &hi, 10000);
      if (e) die("watermarks of " + topic + "[" + std::to_string(p) + "]: " + rd_kafka_err2str(e));
      if (whole && lo != 0)
        die(topic + "[" + std::to_string(p) + "] starts at offset " + std::to_string(lo) +
            ": the development broker dropped older messages; give the topic more partitions");
      n += long(hi);
    }
    return n;
  }

  // n messages of `size` bytes, an equal contiguous share per partition; with `keys`, the ids
  // repeat every `keys` messages (an upsert workload).
  void fill(const std::string& topic, long n, size_t size, int parts, long keys = 0) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    for (long i = 0; i < n; ++i) {
      std::string m = payload(keys ? i % keys : i, size);
      auto partition = int32_t(i * parts / n);  // an equal, contiguous share per partition
      while (rd_kafka_produce(t, partition, RD_KAFKA_MSG_F_COPY, m.data(), m.size(), nullptr, 0, nullptr) != 0) {
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL)
          die(std::string("producing the input: ") + rd_kafka_err2str(rd_kafka_last_error()));
        rd_kafka_poll(rk, 10);
      }
      if (i % 10000 == 0) rd_kafka_poll(rk, 0);
    }
    rd_kafka_topic_destroy(t);
    if (rd_kafka_flush(rk, 300000) != RD_KAFKA_RESP_ERR_NO_ERROR) die("the input was not delivered within 5 minutes");
    if (failed) die(std::to_string(failed) + " input messages were not delivered");
  }

  // A JSON event of exactly `size` bytes: five fields the map step uses, then text up to the size.
  static std::string payload(long i, size_t size) {
    static const char* words[] = {"pump",   "valve",  "north", "south", "line",  "pressure", "nominal", "check",
                                  "sensor", "reading", "batch", "shift", "alpha", "delta",    "cooling", "inlet"};
    char head[160];
    int len = std::snprintf(head, sizeof head, R"({"id":%ld,"device":"dev-%04ld","temp":%.2f,"ok":%s,"ts":%ld,"note":")",
                            i, i % 10000, 15 + double(i % 2000) / 100, i % 17 ? "true" : "false", 1764000000000L + i);
    std::string s(head, size_t(len));
    uint64_t x = uint64_t(i) * 6364136223846793005ULL + 1442695040888963407ULL;
    while (s.size() + 2 < size) {
      x = x * 6364136223846793005ULL + 1442695040888963407ULL;
      s += words[(x >> 33) % 16];
      s += ' ';
    }
    s.resize(size - 2);
    return s + "\"}";
  }
};

}  // namespace bench
