// The durable sink buffer, measured on the real daemon:
//   1. while the sink is up: the same flow (file -> file, fsync per batch) without and with
//      `buffer: { type: disk }`, for 100 B and 1 KiB events, and file -> http (an echo server):
//      the buffer's CPU overhead beside a sink that only copies and beside one that does work;
//   2. an outage: events into an HTTP sink whose destination is down (nothing listens), until
//      the backlog is on disk (by default 1 GiB of 1 KiB events): the ingest rate and peak RSS;
//   3. the destination back: the same buffer drained into a file sink: the drain rate against
//      the ingest rate, and the peak RSS while a 1 GiB backlog drains.
// CPU and peak RSS are the kernel's (wait4 rusage) for each daemon process; every run is checked
// to have delivered every event.
#include "bench.hpp"

#include <csignal>
#include <cstring>

namespace {

using namespace bench;

// A JSON-lines file of n events of about `size` bytes each.
void make_events(const std::string& path, long n, size_t size) {
  std::ofstream out(path);
  std::string pad(size > 40 ? size - 40 : 1, 'x');
  for (long i = 0; i < n; ++i) out << "{\"id\":" << i << ",\"device\":\"d-" << (i % 64) << "\",\"pad\":\"" << pad << "\"}\n";
}

long lines_of(const std::string& path) {
  std::ifstream in(path);
  long n = 0;
  for (std::string l; std::getline(in, l);) ++n;
  return n;
}

std::string flow(const std::string& name, const std::string& in, const std::string& sink, bool buffered) {
  return "flow: " + name + "\nsource: { type: file, path: " + in + ", batch_size: 1024 }\nmax_in_flight: 100000\n" +
         "sinks:\n  out:\n" + sink + (buffered ? "    buffer: { type: disk, max_size: 4GiB }\n" : "");
}

// A number from the daemon's /metrics (curl), or -1.
double metric(int port, const std::string& name) {
  std::string cmd = "curl -s http://127.0.0.1:" + std::to_string(port) + "/metrics";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return -1;
  std::string text;
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof buf, p)) > 0;) text.append(buf, n);
  pclose(p);
  size_t at = text.find("\n" + name + "{");
  if (at == std::string::npos) return -1;
  return std::atof(text.c_str() + text.find("} ", at) + 2);
}

}  // namespace

int main(int argc, char** argv) {
  long scale = argc > 1 ? std::atol(argv[1]) : 1;          // multiplies the event counts of part 1
  long backlog_mib = argc > 2 ? std::atol(argv[2]) : 1024;  // the outage's backlog
  if (!installed("curl")) die("needs curl (apt-get install curl) to read the daemon's metrics");
  std::string dir = temp_dir();
  std::printf("edgeflow durable buffer benchmark (%s), %ld CPU(s)\n\n", EDGEFLOW_BIN, sysconf(_SC_NPROCESSORS_ONLN));

  std::printf("1. file -> file (fsync per batch), unbuffered and buffered (ratio: CPU against unbuffered)\n");
  header();
  for (auto [size, n] : {std::pair<size_t, long>{100, 1000000 * scale}, {1024, 300000 * scale}}) {
    std::string in = dir + "/in.jsonl", out = dir + "/out.jsonl";
    make_events(in, n, size);
    std::string sink = "    type: file\n    path: " + out + "\n";
    std::optional<Result> base;
    for (bool buffered : {false, true}) {
      std::filesystem::remove(out);
      Result r = run_flow(dir, flow("copy", in, sink, buffered), n);
      if (lines_of(out) != n) die("the sink did not get every event");
      std::string name = std::to_string(size) + " B events, " + (buffered ? "buffered" : "unbuffered");
      row(name.c_str(), n, r, base);
      if (!base) base = r;
    }
  }

  // The same with a sink that does work: HTTP, 100 events per request, to an echo server (Poco)
  // that reads each request and sends it back. Only the daemon is measured.
  {
    long m = 200000 * scale;
    std::string in = dir + "/in.jsonl";
    make_events(in, m, 1024);
    int port = free_loopback_port();
    pid_t echo = spawn({ECHO_BIN, std::to_string(port), "8"}, "", "/dev/null", dir + "/echo.log");
    std::string sink = "    type: http\n    url: http://127.0.0.1:" + std::to_string(port) +
                       "/events\n    batch_size: 100\n    workers: 4\n";
    // The echo server is up once a flow gets through to it.
    for (int i = 0; i < 100; ++i) {
      std::ofstream(dir + "/probe.jsonl") << "{\"id\":0}\n";
      std::string flow_file = dir + "/probe.yaml";
      std::ofstream(flow_file) << flow("probe", dir + "/probe.jsonl", sink, false);
      if (std::system((std::string(EDGEFLOW_BIN) + " run --admin off --state-dir " + dir + "/probe-state " + flow_file +
                       " >/dev/null 2>&1").c_str()) == 0)
        break;
      std::filesystem::remove_all(dir + "/probe-state");
    }
    std::optional<Result> base;
    for (bool buffered : {false, true}) {
      Result r = run_flow(dir, flow("http", in, sink, buffered), m);
      row(buffered ? "1024 B events, http sink, buffered" : "1024 B events, http sink, unbuffered", m, r, base);
      if (!base) base = r;
    }
    kill(echo, SIGTERM);
    waitpid(echo, nullptr, 0);
  }

  long n = backlog_mib * 1024;  // 1 KiB events
  std::string in = dir + "/backlog.jsonl", out = dir + "/drained.jsonl";
  make_events(in, n, 1024);
  int down = free_loopback_port(), admin = free_loopback_port();
  std::printf("\n2. outage: %ld events of 1 KiB (%ld MiB) into an HTTP sink whose destination is down\n", n, backlog_mib);
  std::string fill = dir + "/fill.yaml", log = dir + "/fill.log";
  std::ofstream(fill) << flow("outage", in,
                              "    type: http\n    url: http://127.0.0.1:" + std::to_string(down) +
                                  "/events\n    max_attempts: 1\n",
                              true)
                      << "retry: { initial_backoff: 1s, max_backoff: 5s }\n";
  double t0 = now();
  pid_t pid = spawn({EDGEFLOW_BIN, "run", "--admin", "127.0.0.1:" + std::to_string(admin), "--state-dir",
                     dir + "/state", fill},
                    "", "", log);
  // The daemon's own count says when the whole backlog is on disk (read every 50 ms).
  double appended = 0;
  while ((appended = metric(admin, "edgeflow_buffer_appended_total")) < double(n)) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) die("the daemon ended early:\n" + slurp(log));
    usleep(50000);
  }
  double fill_wall = now() - t0;
  kill(pid, SIGTERM);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  if (!WIFEXITED(status)) die("the daemon did not stop on SIGTERM:\n" + slurp(log));
  double ingest = double(n) / fill_wall;
  std::printf("   on disk in %.1f s: %.0f events/s, %.1f MiB/s; daemon CPU %.1f s, peak RSS %ld KiB\n", fill_wall,
              ingest, double(backlog_mib) / fill_wall, cpu_seconds(ru), ru.ru_maxrss);
  std::printf("   buffer file: %.0f MiB\n",
              double(std::filesystem::file_size(dir + "/state/buffer/outage/out.sqlite")) / 1048576.0);

  std::printf("\n3. the destination back: the backlog drained into a file sink (fsync per batch)\n");
  std::string empty = dir + "/empty.jsonl";
  std::ofstream(empty).flush();
  std::string drain = dir + "/drain.yaml";
  std::ofstream(drain) << flow("outage", empty, "    type: file\n    path: " + out + "\n", true);
  Result r = run({EDGEFLOW_BIN, "run", "--admin", "off", "--state-dir", dir + "/state", drain}, "", "",
                 dir + "/drain.log");
  if (lines_of(out) != n) die("the drain delivered " + std::to_string(lines_of(out)) + " of " + std::to_string(n));
  double rate = double(n) / r.wall;
  std::printf("   drained in %.1f s: %.0f events/s, %.1f MiB/s (%.1fx the ingest rate); CPU %.1f s (%.2f s/M), "
              "peak RSS %ld KiB\n",
              r.wall, rate, double(backlog_mib) / r.wall, rate / ingest, r.cpu, r.cpu / double(n) * 1e6, r.max_rss_kib);
  std::printf("   buffer file after the drain: %.0f MiB\n",
              double(std::filesystem::file_size(dir + "/state/buffer/outage/out.sqlite")) / 1048576.0);
  std::filesystem::remove_all(dir);
}
