// Engine overhead: generate -> passthrough -> drop through the real daemon, at batch sizes 1,
// 64 and 1024, plus the idle RSS of a daemon running one flow. CPU time and peak RSS come from
// the kernel (wait4 rusage) for the whole daemon process, so nothing is estimated.
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace {

struct Result {
  double wall, cpu;
  long max_rss_kib;
};

std::string temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "edgeflow-bench-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

pid_t spawn(const std::vector<std::string>& args, int stderr_fd) {
  pid_t pid = fork();
  if (pid == 0) {
    if (stderr_fd >= 0) dup2(stderr_fd, 2);
    std::vector<char*> argv{const_cast<char*>(EDGEFLOW_BIN)};
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(EDGEFLOW_BIN, argv.data());
    _exit(127);
  }
  return pid;
}

Result run_flow(const std::string& dir, long count, int batch) {
  std::string flow = dir + "/flow.yaml";
  std::ofstream(flow) << "flow: bench\n"
                      << "source: { type: generate, count: " << count << ", batch_size: " << batch << " }\n"
                      << "steps: [ { type: passthrough } ]\n"
                      << "sinks: { out: { type: drop } }\n"
                      << "max_in_flight: 100000\n";
  double t0 = now();
  pid_t pid = spawn({"run", "--log-level", "warn", "--state-dir", dir + "/state", flow}, -1);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  double wall = now() - t0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "edgeflow failed (status %d)\n", status);
    std::exit(1);
  }
  double cpu = double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
  return {wall, cpu, ru.ru_maxrss};
}

// RSS of a daemon with one quiet flow, read once the flow reports running.
long idle_rss_kib(const std::string& dir) {
  std::string flow = dir + "/idle.yaml";
  std::ofstream(flow) << "flow: idle\nsource: { type: generate, rate: 1 }\nsinks: { out: { type: drop } }\n";
  int fds[2];
  if (pipe(fds) != 0) return -1;
  pid_t pid = spawn({"run", "--state-dir", dir + "/state", flow}, fds[1]);
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
  std::printf("edgeflow engine benchmark: generate -> passthrough -> drop (%s)\n", EDGEFLOW_BIN);
  std::printf("%-8s %12s %10s %10s %16s %16s %12s\n", "batch", "messages", "wall s", "cpu s",
              "msg/s (wall)", "msg/s per core", "cpu s/M msg");
  struct Case {
    int batch;
    long count;
  };
  for (Case c : {Case{1, 500000}, Case{64, 4000000}, Case{1024, 10000000}}) {
    long n = c.count * scale;
    Result r = run_flow(dir, n, c.batch);
    std::printf("%-8d %12ld %10.3f %10.3f %16.0f %16.0f %12.3f   peak RSS %ld KiB\n", c.batch, n, r.wall, r.cpu,
                double(n) / r.wall, double(n) / r.cpu, r.cpu / double(n) * 1e6, r.max_rss_kib);
  }
  std::printf("idle RSS with one flow: %ld KiB\n", idle_rss_kib(dir));
  std::filesystem::remove_all(dir);
}
