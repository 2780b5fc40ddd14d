// Kafka to Kafka: edgeflow against the kcat pipe, for messages of 100 B and of 1 KiB, each size
// on its own development broker:
//   1. `edgeflow dev kafka` (librdkafka's in-memory mock cluster) in its own process, so its CPU
//      is charged to neither side (it is reported beside them), with every topic created up front
//      with enough partitions that none holds more than about 4 MB: the mock keeps only 5 MiB of
//      batches per partition and silently drops older ones;
//   2. the input topic filled with N JSON messages of exactly the size (lz4, acks=all, an equal
//      share per partition) and counted: every partition's low watermark must still be 0 and the
//      high watermarks must add up to N, or the benchmark fails;
//   3. `kcat -C -e | kcat -P` (the peer: partitions assigned, no group) and the daemon
//      with the source in standalone mode (no group either), running kafka -> kafka and
//      kafka -> map -> kafka; then the same pipe with `kcat -G` (a consumer group: the broker's
//      initial rebalance delay) and the daemon with the source in group mode. Each copies the
//      whole input into a fresh topic. Every output must hold N messages (sum of high
//      watermarks) and every edgeflow run must report all N delivered, or the benchmark fails.
//      Both producers use the same settings: lz4, idempotent, acks=all.
// Client CPU and peak RSS come from wait4 rusage (the pipe: both kcat processes added up); the
// broker's CPU from /proc/<pid>/stat over each run.
#include "bench.hpp"
#include "kafka_broker.hpp"

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

std::optional<Broker> broker;

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
  KafkaClient client(bs);
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
