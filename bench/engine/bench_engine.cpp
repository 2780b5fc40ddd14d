// Engine overhead, measured on the real daemon:
//   1. generate -> passthrough -> drop at batch sizes 1, 64 and 1024;
//   2. the idle RSS of a daemon running one flow;
//   3. side by side with peers on the same input: copying a JSON-lines file through edgeflow
//      (file -> passthrough -> file) against cat (the floor), jq -c . and mlr (Miller), each
//      when installed.
// CPU time and peak RSS come from the kernel (wait4 rusage) for each whole process, and every
// edgeflow run is checked to have delivered every message, so nothing is estimated.
#include "bench.hpp"

#include <csignal>
#include <cstring>

namespace {

using namespace bench;

// RSS of a daemon with one quiet flow, read once the flow reports running.
long idle_rss_kib(const std::string& dir) {
  std::string flow = dir + "/idle.yaml";
  std::ofstream(flow) << "flow: idle\nsource: { type: generate, rate: 1 }\nsinks: { out: { type: drop } }\n";
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return -1;
  pid_t pid = spawn({EDGEFLOW_BIN, "run", "--admin", "off", "--state-dir", dir + "/state", flow}, "", "",
                    "/dev/fd/" + std::to_string(fds[1]));
  close(fds[1]);
  FILE* err = fdopen(fds[0], "r");
  char line[4096];
  while (std::fgets(line, sizeof line, err))
    if (std::strstr(line, "flow running")) break;
  long rss = -1;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string l; std::getline(status, l);)
    if (l.rfind("VmRSS:", 0) == 0) rss = std::atol(l.c_str() + 6);
  kill(pid, SIGTERM);
  while (std::fgets(line, sizeof line, err)) {
  }
  fclose(err);
  waitpid(pid, nullptr, 0);
  return rss;
}

}  // namespace

int main(int argc, char** argv) {
  long scale = argc > 1 ? std::atol(argv[1]) : 1;  // multiply message counts for longer runs
  std::string dir = temp_dir();
  std::printf("edgeflow engine benchmark (%s), %ld CPU(s)\n\n", EDGEFLOW_BIN, sysconf(_SC_NPROCESSORS_ONLN));

  std::printf("1. generate -> passthrough -> drop\n");
  std::printf("%-8s %12s %10s %10s %16s %16s %12s %14s\n", "batch", "messages", "wall s", "cpu s", "msg/s (wall)",
              "msg/s per core", "cpu s/M msg", "peak RSS KiB");
  struct Case {
    int batch;
    long count;
  };
  for (Case c : {Case{1, 1000000}, Case{64, 5000000}, Case{1024, 10000000}}) {
    long n = c.count * scale;
    std::ostringstream y;
    y << "flow: bench\nsource: { type: generate, count: " << n << ", batch_size: " << c.batch
      << " }\nsteps: [ { type: passthrough } ]\nsinks: { out: { type: drop } }\nmax_in_flight: 100000\n";
    Result r = run_flow(dir, y.str(), n);
    std::printf("%-8d %12ld %10.3f %10.3f %16.0f %16.0f %12.3f %14ld\n", c.batch, n, r.wall, r.cpu, double(n) / r.wall,
                double(n) / r.cpu, r.cpu / double(n) * 1e6, r.max_rss_kib);
  }

  std::printf("\n2. idle RSS of the daemon with one flow: %ld KiB\n", idle_rss_kib(dir));

  long n = 2000000 * scale;
  std::string in = dir + "/in.jsonl", out = dir + "/out.jsonl";
  run_flow(dir,
           "flow: make\nsource: { type: generate, count: " + std::to_string(n) +
               ", batch_size: 1024 }\nsinks: { out: { type: file, path: " + in + ", fsync: false } }\n",
           n);
  std::printf("\n3. copy %ld JSON lines (%.0f MiB) file -> file, side by side (ratio: CPU against edgeflow)\n", n,
              double(std::filesystem::file_size(in)) / 1048576.0);
  header();
  auto copy_flow = [&](bool parse) {
    std::filesystem::remove(out);
    return run_flow(dir,
                    "flow: copy\nsource: { type: file, path: " + in + ", batch_size: 1024 }\nsteps: [ { type: passthrough, parse: " +
                        (parse ? "true" : "false") + " } ]\nsinks: { out: { type: file, path: " + out +
                        ", fsync: false } }\nmax_in_flight: 100000\n",
                    n);
  };
  Result ef = copy_flow(false);
  row("edgeflow (bytes only)", n, ef, std::nullopt);
  Result efp = copy_flow(true);
  row("edgeflow (parse: true)", n, efp, std::nullopt);
  if (std::filesystem::file_size(out) != std::filesystem::file_size(in)) die("edgeflow's copy differs in size");
  row("cat (the floor)", n, run({"cat"}, in, out, ""), ef);
  if (installed("jq")) row("jq -c . (parses, re-serialises)", n, run({"jq", "-c", "."}, in, out, ""), efp);
  else std::printf("jq: not installed (apt-get install jq), skipped\n");
  if (installed("mlr")) row("mlr --jsonl cat (Miller, Go)", n, run({"mlr", "--jsonl", "cat"}, in, out, ""), efp);
  else std::printf("mlr: not installed (apt-get install miller), skipped\n");
  std::printf("ratio > 1: the peer spent that many times edgeflow's CPU (bytes-only row for cat, parse row "
              "for the JSON tools)\n");
  std::filesystem::remove_all(dir);
}
