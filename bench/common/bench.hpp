// What every benchmark needs: run a command or a flow in the real daemon, measure it with the
// kernel's rusage, and check the daemon delivered everything.
#pragma once

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace bench {


struct Result {
  double wall = 0, cpu = 0;
  long max_rss_kib = 0;
};

inline std::string temp_dir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "edgeflow-bench-XXXXXX").string();
  return mkdtemp(tmpl.data());
}

inline double now() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) / 1e9;
}

[[noreturn]] inline void die(const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", program_invocation_short_name, why.c_str());
  std::exit(1);
}

// A loopback TCP port nothing listens on right now (the kernel's pick), for a server to start on.
inline int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
    die("cannot find a free loopback port");
  ::close(fd);
  return ntohs(a.sin_port);
}

inline std::string slurp(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

inline double cpu_seconds(const rusage& ru) {
  return double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// Starts args (searched in PATH) with stdin, stdout and stderr read from or written to the given
// files; "" leaves a stream as it is, and err == out sends both to one file. A pipe is passed as
// "/dev/fd/N" of an O_CLOEXEC descriptor, so the child holds no other end of it.
inline pid_t spawn(const std::vector<std::string>& args, const std::string& in, const std::string& out,
                   const std::string& err) {
  pid_t pid = fork();
  if (pid == 0) {
    auto redirect = [](const std::string& path, int fd, int flags) {
      if (path.empty()) return;
      int f = open(path.c_str(), flags, 0644);
      if (f < 0) _exit(126);
      dup2(f, fd);
    };
    redirect(in, 0, O_RDONLY);
    redirect(out, 1, O_WRONLY | O_CREAT | O_TRUNC);
    if (!err.empty() && err == out) dup2(1, 2);
    else redirect(err, 2, O_WRONLY | O_CREAT | O_TRUNC);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  if (pid < 0) die("fork failed");
  return pid;
}

// Runs args to the end with its streams redirected as spawn() does; a failure shows the stderr
// file.
inline Result run(const std::vector<std::string>& args, const std::string& in, const std::string& out,
                  const std::string& err) {
  double t0 = now();
  pid_t pid = spawn(args, in, out, err);
  int status = 0;
  rusage ru{};
  wait4(pid, &status, 0, &ru);
  Result r;
  r.wall = now() - t0;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    die(args[0] + " failed (status " + std::to_string(status) + ")" + (err.empty() ? "" : ":\n" + slurp(err)));
  r.cpu = cpu_seconds(ru);
  r.max_rss_kib = ru.ru_maxrss;
  return r;
}

// Runs a flow to its end and checks the daemon's own summary: every message delivered.
// The `map` step bench/kafka and bench/mqtt run on their JSON events: parse, six fields mapped,
// serialised again, the long `note` kept so the output is about as large as the input.
inline const char* const kMapStep =
    "steps:\n"
    "  - type: map\n"
    "    unmapped: drop\n"
    "    set:\n"
    "      event_id: id\n"
    "      device: upper(device)\n"
    "      temp_f: round(temp * 9 / 5 + 32, 2)\n"
    "      status: \"ok ? 'ok' : 'fault'\"\n"
    "      at_ms: ts\n"
    "      note: note\n";

inline Result run_flow(const std::string& dir, const std::string& yaml, long expect) {
  std::string flow = dir + "/flow.yaml", log = dir + "/edgeflow.log";
  std::ofstream(flow) << yaml;
  Result r = run({EDGEFLOW_BIN, "run", "--admin", "off", "--state-dir", dir + "/state", flow}, "", "", log);
  std::string text = slurp(log);
  std::string want = "emitted=" + std::to_string(expect) + " delivered=" + std::to_string(expect) +
                     " dead_lettered=0 unresolved=0";
  if (text.find(want) == std::string::npos)
    die("edgeflow did not deliver all " + std::to_string(expect) + " messages:\n" + text);
  std::filesystem::remove_all(dir + "/state");
  return r;
}

inline bool installed(const std::string& tool) {
  return std::system(("command -v " + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// One row of a side-by-side table; ratio: this row's CPU over the base row's.
inline void row(const char* name, long n, const Result& r, const std::optional<Result>& base) {
  std::printf("%-36s %9.3f %9.3f %12.3f %14.0f %10ld", name, r.wall, r.cpu, r.cpu / double(n) * 1e6,
              double(n) / r.cpu, r.max_rss_kib);
  if (base) std::printf("   %6.2fx", r.cpu / base->cpu);
  std::printf("\n");
}

inline void header() {
  std::printf("%-36s %9s %9s %12s %14s %10s %9s\n", "", "wall s", "cpu s", "cpu s/M msg", "msg/s per core",
              "RSS KiB", "ratio");
}

}  // namespace bench
