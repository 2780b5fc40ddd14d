// Kafka to Kafka: edgeflow against the kcat pipe, for messages of 100 B and of 1 KiB, each size
// on its own development broker:
//   1. `edgeflow dev kafka` (librdkafka's in-memory mock cluster) in its own process, so its CPU
//      is charged to neither side (it is reported beside them), with every topic created up front
//      with enough partitions that none holds more than about 4 MB: the mock keeps only 5 MiB of
//      batches per partition and silently drops older ones;
//   2. the input topic filled with N JSON messages of exactly the size (lz4, acks=all, an equal
//      share per partition) and counted: every partition's low watermark must still be 0 and the
//      high watermarks must add up to N, or the benchmark fails;
//   3. `kcat -C -e | kcat -P` (the issue's peer: partitions assigned, no group) and the daemon
//      with the source in standalone mode (no group either), running kafka -> kafka and
//      kafka -> map -> kafka; then the same pipe with `kcat -G` (a consumer group: the broker's
//      initial rebalance delay) and the daemon with the source in group mode. Each copies the
//      whole input into a fresh topic. Every output must hold N messages (sum of high
//      watermarks) and every edgeflow run must report all N delivered, or the benchmark fails.
//      Both producers use the same settings: lz4, idempotent, acks=all.
// Client CPU and peak RSS come from wait4 rusage (the pipe: both kcat processes added up); the
// broker's CPU from /proc/<pid>/stat over each run.
#include "bench.hpp"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <ctime>
#include <thread>

namespace {

using namespace bench;

constexpr double kPartitionBytes = 4e6;  // input bytes per partition, at most (the mock keeps 5 MiB)

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

std::optional<Broker> broker;

// The benchmark's own client: fills the input and counts topics.
struct Client {
  rd_kafka_t* rk = nullptr;
  long failed = 0;  // delivery reports with an error

  explicit Client(const std::string& bootstrap) {
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
      if (m->err) ++static_cast<Client*>(opaque)->failed;
    });
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) die(std::string("cannot create a Kafka producer: ") + err);
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() { rd_kafka_destroy(rk); }

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

  void fill(const std::string& topic, long n, size_t size, int parts) {
    rd_kafka_topic_t* t = rd_kafka_topic_new(rk, topic.c_str(), nullptr);
    for (long i = 0; i < n; ++i) {
      std::string m = payload(i, size);
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

struct Run {
  std::string tool;
  Result r;
  double broker_cpu = 0;
};

// kcat -C ... | kcat -P ...: both processes' CPU added up, and their peak RSS added up (they run
// side by side the whole time); wall time until both have exited.
Result kcat_pipe(const std::vector<std::string>& from, const std::vector<std::string>& to, const std::string& dir) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) die("pipe failed");
  double t0 = now();
  pid_t a = spawn(from, "", "/dev/fd/" + std::to_string(fds[1]), dir + "/kcat-C.log");
  pid_t b = spawn(to, "/dev/fd/" + std::to_string(fds[0]), "", dir + "/kcat-P.log");
  close(fds[0]);
  close(fds[1]);
  Result r;
  for (pid_t pid : {a, b}) {
    int status = 0;
    rusage ru{};
    if (wait4(pid, &status, 0, &ru) != pid) die("wait4 failed");
    std::string log = dir + (pid == a ? "/kcat-C.log" : "/kcat-P.log");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      die(std::string(pid == a ? "kcat -C" : "kcat -P") + " failed (status " + std::to_string(status) + "):\n" + slurp(log));
    r.cpu += cpu_seconds(ru);
    r.max_rss_kib += ru.ru_maxrss;
  }
  r.wall = now() - t0;
  return r;
}

void print_run(const Run& x, long n) {
  std::printf("%-30s %9ld %8.3f %8.3f %10.0f %10.3f %13ld %13.3f\n", x.tool.c_str(), n, x.r.wall, x.r.cpu,
              double(n) / x.r.wall, x.r.cpu / double(n) * 1e6, x.r.max_rss_kib, x.broker_cpu);
}

// The median of n / seconds(run).
template <class F>
double median_rate(const std::vector<Run>& runs, long n, F seconds) {
  std::vector<double> v;
  for (auto& x : runs) v.push_back(double(n) / seconds(x));
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
}

// One message size, on its own broker.
void bench_size(const std::string& dir, long n, size_t size, long rounds) {
  int parts = 1;
  while (double(n) * double(size) / parts > kPartitionBytes) parts *= 2;
  std::vector<std::string> topics{"in"};
  for (long i = 0; i < rounds; ++i)
    for (const char* t : {"out_kcat_", "out_kcatg_", "out_spass_", "out_smap_", "out_gpass_", "out_gmap_"})
      topics.push_back(t + std::to_string(i));
  broker.emplace(dir, parts, topics);
  std::string bs = broker->bootstrap;
  Client client(bs);
  for (auto& t : topics)
    if (int p = client.partitions(t); p != parts)
      die("topic " + t + " has " + std::to_string(p) + " partitions, not " + std::to_string(parts));

  double t0 = now();
  client.fill("in", n, size, parts);
  long in = client.count("in", true);
  if (in != n) die("the input topic holds " + std::to_string(in) + " messages, not " + std::to_string(n));
  std::printf("%zu B messages: %ld in topic `in`, %d partitions (%.1f MB each), lz4; filled in %.1f s; broker %s\n",
              size, n, parts, double(n) * double(size) / parts / 1e6, now() - t0, bs.c_str());

  auto measured = [&](const std::string& tool, const std::string& out, auto body) {
    Run x{tool, {}, 0};
    double before = broker->cpu();
    x.r = body(x);
    x.broker_cpu = broker->cpu() - before;
    long got = client.count(out, false);
    if (got != n) die(tool + " wrote " + std::to_string(got) + " messages to " + out + ", not " + std::to_string(n));
    return x;
  };
  // The same producer settings as the kafka sink's defaults: lz4, idempotent, acks=all.
  auto kcat = [&](long i, bool group) {
    std::string out = (group ? "out_kcatg_" : "out_kcat_") + std::to_string(i);
    std::vector<std::string> consume{"kcat", "-b", bs, "-o", "beginning", "-e", "-q"};
    if (group) consume.insert(consume.end(), {"-G", "bench-" + out, "in"});
    else consume.insert(consume.end(), {"-C", "-t", "in"});
    return measured(group ? "kcat -G -e | kcat -P" : "kcat -C -e | kcat -P", out, [&](Run&) {
      return kcat_pipe(consume, {"kcat", "-P", "-b", bs, "-t", out, "-z", "lz4", "-X", "enable.idempotence=true", "-X", "acks=all"},
                       dir);
    });
  };
  auto edgeflow = [&](long i, bool map, bool standalone) {
    std::string out = std::string(standalone ? "out_s" : "out_g") + (map ? "map_" : "pass_") + std::to_string(i);
    std::string yaml = "flow: kafka\nsource:\n  type: kafka\n  brokers: \"" + bs + "\"\n  group_id: bench-" + out +
                       "\n  mode: " + (standalone ? "standalone" : "group") +
                       "\n  topics: [in]\n  start_from: earliest\n  end_at_eof: true\n";
    if (map) yaml += kMapStep;
    yaml += "sinks:\n  out:\n    type: kafka\n    brokers: \"" + bs + "\"\n    topic: " + out + "\n";
    std::string tool = std::string("edgeflow ") + (standalone ? "standalone" : "group") + (map ? " map" : " pass");
    return measured(tool, out, [&](Run&) { return run_flow(dir, yaml, n); });
  };

  std::printf("%-30s %9s %8s %8s %10s %10s %13s %13s\n", "tool", "messages", "wall s", "cpu s", "msg/s", "cpu s/M",
              "peak RSS KiB", "broker cpu s");
  // Without a group (the goal's comparison), then with one; each round alternates which side goes first.
  std::vector<Run> kc, kg, spass, smap, gpass, gmap;
  auto row = [&](std::vector<Run>& runs, Run x) { runs.push_back(std::move(x)), print_run(runs.back(), n); };
  for (long i = 0; i < rounds; ++i) {
    if (i % 2 == 0) row(kc, kcat(i, false));
    row(spass, edgeflow(i, false, true));
    row(smap, edgeflow(i, true, true));
    if (i % 2 == 1) row(kc, kcat(i, false));
  }
  for (long i = 0; i < rounds; ++i) {
    if (i % 2 == 0) row(kg, kcat(i, true));
    row(gpass, edgeflow(i, false, false));
    row(gmap, edgeflow(i, true, false));
    if (i % 2 == 1) row(kg, kcat(i, true));
  }
  auto wall = [](const Run& x) { return x.r.wall; };
  double c = median_rate(kc, n, wall), g = median_rate(kg, n, wall);
  double sp = median_rate(spass, n, wall), sm = median_rate(smap, n, wall);
  double gp = median_rate(gpass, n, wall), gm = median_rate(gmap, n, wall);
  const char* med = rounds > 1 ? "medians; " : "";
  std::printf("edgeflow standalone / kcat -C pipe msg/s (%sneither joins a group): pass-through %.2fx, map %.2fx "
              "(goal for map >= 1.5x): %s\n",
              med, sp / c, sm / c, sm / c >= 1.5 ? "met" : "missed");
  std::printf("edgeflow group / kcat -G pipe msg/s (%sboth join a consumer group): pass-through %.2fx, map %.2fx\n", med,
              gp / g, gm / g);
  std::printf("the development broker's peak RSS: %ld KiB\n\n", broker->peak_rss_kib());
}

}  // namespace

int main(int argc, char** argv) {
  double scale = argc > 1 ? std::atof(argv[1]) : 1.0;  // 1.0: one million messages of each size
  long rounds = argc > 2 ? std::atol(argv[2]) : 1;     // runs of each tool, each into its own topic
  if (!(scale > 0) || rounds < 1 || rounds > 4) die("usage: bench_kafka [scale > 0] [rounds 1..4]");
  if (!installed("kcat")) die("kcat is not installed (Debian: apt-get install kcat)");
  long n = std::max(1L, long(1e6 * scale));
  std::string dir = temp_dir();
  setvbuf(stdout, nullptr, _IOLBF, 0);  // rows in order with a failure's message on stderr
  std::printf("edgeflow Kafka benchmark (%s), librdkafka %s, %ld CPU(s)\n\n", EDGEFLOW_BIN, rd_kafka_version_str(),
              sysconf(_SC_NPROCESSORS_ONLN));
  for (size_t size : {size_t(100), size_t(1024)}) {
    bench_size(dir, n, size, rounds);
    broker.reset();
  }
  std::printf("msg/s: messages over the wall time from start to exit (connecting, and for edgeflow starting the "
              "daemon, and joining the group where there is one, included).\ncpu s, peak RSS: the client processes (the pipe: both kcat "
              "processes added up); broker cpu s: the development broker over the run.\n");
  std::filesystem::remove_all(dir);
}
