// Webhook ingress: `wrk` posting a ~100 B JSON event over 64 concurrent keep-alive connections,
// first to a minimal Poco echo server (the peer: a common C++ HTTP stack with nothing behind it,
// thread per connection), then to the daemon running http source -> map -> drop, where every 202 means the event went
// through the flow and was acknowledged. Same wrk settings for both, in the same run; two rounds,
// alternating, so a noisy neighbour shows as a difference between rounds.
//
// Per server: requests/s and p99 latency from wrk; CPU s per million requests and peak RSS from
// wait4 rusage of the server process (stopped with SIGTERM after the load). The daemon must
// report every emitted event delivered and wrk must see no non-2xx answer, or the benchmark fails.
//
// Then slow clients: the latency of 200 sequential requests on one keep-alive connection, with
// no other client and then with BENCH_HTTP_SLOW (1000) connections open that each sent part of a
// head (from 127.0.0.2 and up, 100 per address), against both servers. A request not answered
// within 5 s counts as 5 s.
//
// Environment: BENCH_HTTP_SECONDS (default 10) per measurement, BENCH_HTTP_CONNECTIONS (64),
// BENCH_HTTP_THREADS (2, wrk's), BENCH_HTTP_SLOW (1000).
#include "bench.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>

#include <cctype>
#include <chrono>
#include <cstring>
#include <thread>

namespace {

using namespace bench;

int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v && *v ? std::atoi(v) : dflt;
}

bool accepts(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(uint16_t(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

// Servers still running; killed at exit, so bench::die does not leave one behind.
std::vector<pid_t>& live() {
  static std::vector<pid_t> pids;
  return pids;
}

// A server process started now and measured until stop().
struct Server {
  pid_t pid = -1;
  std::string log;
  Server(const std::vector<std::string>& args, const std::string& log_file, int port) : log(log_file) {
    pid = spawn(args, "", log_file, log_file);
    live().push_back(pid);
    // Startup is not measured by wrk; polling connect() until it listens is just the wait for it.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (!accepts(port)) {
      if (waitpid(pid, nullptr, WNOHANG) == pid) die(args[0] + " exited at start:\n" + slurp(log));
      if (std::chrono::steady_clock::now() > deadline) die(args[0] + " does not listen on " + std::to_string(port));
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  Result stop() {
    kill(pid, SIGTERM);
    int status = 0;
    rusage ru{};
    wait4(pid, &status, 0, &ru);
    std::erase(live(), pid);
    pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) die("server failed (status " + std::to_string(status) + "):\n" + slurp(log));
    Result r;
    r.cpu = cpu_seconds(ru);
    r.max_rss_kib = ru.ru_maxrss;
    return r;
  }
  ~Server() {
    if (pid > 0) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      std::erase(live(), pid);
    }
  }
};

struct Load {
  long requests = 0;
  long non2xx = 0;
  double rps = 0;
  double p99_ms = 0;
};

// The whitespace-separated word right after `marker` in text, or "".
std::string word_after(const std::string& text, const std::string& marker) {
  size_t at = text.find(marker);
  if (at == std::string::npos) return "";
  at += marker.size();
  while (at < text.size() && std::isspace(static_cast<unsigned char>(text[at]))) ++at;
  size_t end = at;
  while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end]))) ++end;
  return text.substr(at, end - at);
}

// The word right before `marker` in text, or "".
std::string word_before(const std::string& text, const std::string& marker) {
  size_t end = text.find(marker);
  if (end == std::string::npos) return "";
  size_t at = text.find_last_of(" \t\n", end == 0 ? 0 : end - 1);
  at = at == std::string::npos ? 0 : at + 1;
  return text.substr(at, end - at);
}

long number(const std::string& word) { return word.empty() ? 0 : std::stol(word); }

double to_ms(const std::string& num, const std::string& unit) {
  double v = std::stod(num);
  if (unit == "us") return v / 1000;
  if (unit == "s") return v * 1000;
  return v;
}

Load wrk(const std::string& dir, const std::string& url, int seconds, int conns, int threads) {
  std::string script = dir + "/post.lua", out = dir + "/wrk.out";
  std::ofstream(script) << "wrk.method = \"POST\"\n"
                           "wrk.headers[\"Content-Type\"] = \"application/json\"\n"
                           "wrk.body = '{\"id\":12345,\"type\":\"order.paid\",\"customer\":\"c-778\",\"total\":129.5,"
                           "\"currency\":\"EUR\",\"site\":\"edge-7\"}'\n";
  run({"wrk", "-t", std::to_string(threads), "-c", std::to_string(conns), "-d", std::to_string(seconds) + "s", "--latency",
       "-s", script, url},
      "", out, dir + "/wrk.err");
  std::string text = slurp(out);
  Load l;
  l.requests = number(word_before(text, " requests in"));
  if (std::string rps = word_after(text, "Requests/sec:"); !rps.empty()) l.rps = std::stod(rps);
  if (std::string p99 = word_after(text, "99%"); !p99.empty()) {  // e.g. 1.95ms
    size_t unit = p99.find_first_not_of("0123456789.");
    if (unit != 0 && unit != std::string::npos) l.p99_ms = to_ms(p99.substr(0, unit), p99.substr(unit));
  }
  l.non2xx = number(word_after(text, "Non-2xx or 3xx responses:"));
  if (size_t at = text.find("Socket errors:"); at != std::string::npos)
    std::printf("  wrk: %s\n", text.substr(at, text.find('\n', at) - at).c_str());
  if (l.requests == 0 || l.rps == 0) die("cannot read wrk's output:\n" + text);
  return l;
}

void print(const char* name, const Load& l, const Result& r, double base_rps) {
  std::printf("%-28s %10.0f %9.2f %11.1f %10.2f %9ld %8ld", name, l.rps, l.p99_ms, r.cpu / double(l.requests) * 1e6,
              r.cpu, r.max_rss_kib, l.non2xx);
  if (base_rps > 0) std::printf("   %5.2fx", l.rps / base_rps);
  std::printf("\n");
}

// A TCP connection to 127.0.0.1:port from `from`; -1 when it cannot be made.
int connect_from(int port, const std::string& from) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in local{}, to{};
  local.sin_family = to.sin_family = AF_INET;
  inet_pton(AF_INET, from.c_str(), &local.sin_addr);
  to.sin_port = htons(uint16_t(port));
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Milliseconds for each of `n` sequential POSTs on one keep-alive connection (5000 for one not
// answered within 5 s, after which the rest are not tried).
std::vector<double> latencies(int port, int n) {
  const std::string body = R"({"id":12345,"type":"order.paid","customer":"c-778","total":129.5})";
  const std::string req = "POST /hook HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body;
  std::vector<double> ms;
  int fd = connect_from(port, "127.0.0.1");
  if (fd < 0) die("cannot connect for the latency probe");
  for (int i = 0; i < n; ++i) {
    double start = now();
    if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != ssize_t(req.size())) break;
    std::string got;
    bool answered = false;
    while (!answered) {
      double left = 5.0 - (now() - start);
      pollfd p{fd, POLLIN, 0};
      if (left <= 0 || ::poll(&p, 1, int(left * 1000)) <= 0) break;
      char buf[4096];
      ssize_t r = ::recv(fd, buf, sizeof buf, 0);
      if (r <= 0) break;
      got.append(buf, size_t(r));
      size_t end = got.find("\r\n\r\n");
      size_t cl = got.find("Content-Length: ");
      if (end != std::string::npos && cl != std::string::npos && got.size() >= end + 4 + std::stoul(got.substr(cl + 16)))
        answered = true;
    }
    ms.push_back(answered ? (now() - start) * 1000 : 5000);
    if (!answered) break;
  }
  ::close(fd);
  std::sort(ms.begin(), ms.end());
  return ms;
}

double percentile(const std::vector<double>& v, double p) { return v.empty() ? 0 : v[size_t(p * double(v.size() - 1))]; }

// Latency of a normal client alone, then beside `slow` connections stuck in their heads.
void slow_clients(const char* name, int port, int slow) {
  auto alone = latencies(port, 200);
  std::vector<int> fds;
  for (int i = 0; i < slow; ++i) {
    int fd = connect_from(port, "127.0.0." + std::to_string(2 + i / 100));
    if (fd < 0) die("cannot open slow connection " + std::to_string(i));
    const char* part = "POST /hook HTTP/1.1\r\nHost: bench\r\nX-Slow: ";
    [[maybe_unused]] auto n = ::send(fd, part, std::strlen(part), MSG_NOSIGNAL);
    fds.push_back(fd);
  }
  auto crowded = latencies(port, 200);
  for (int fd : fds) ::close(fd);
  auto answered = std::count_if(crowded.begin(), crowded.end(), [](double ms) { return ms < 5000; });
  std::printf("%-28s %9.3f %9.3f %12.3f %9.3f %5ld/200\n", name, percentile(alone, 0.5), percentile(alone, 0.99),
              percentile(crowded, 0.5), percentile(crowded, 0.99), long(answered));
}

}  // namespace

int main() {
  std::atexit([] {
    for (pid_t p : live()) kill(p, SIGKILL);
  });
  if (!installed("wrk")) die("wrk is not installed (Debian package wrk)");
  int seconds = env_int("BENCH_HTTP_SECONDS", 10), conns = env_int("BENCH_HTTP_CONNECTIONS", 64),
      threads = env_int("BENCH_HTTP_THREADS", 2);
  std::string dir = temp_dir();
  std::string echo_bin = (std::filesystem::path(program_invocation_name).parent_path() / "bench_http_echo").string();
  std::printf("wrk -t%d -c%d -d%ds --latency, POST of a 104 B JSON event; poco: 128 threads, edgeflow: event loop + 4\n",
              threads, conns, seconds);
  std::printf("%-28s %10s %9s %11s %10s %9s %8s %8s\n", "", "req/s", "p99 ms", "cpu us/req", "cpu s", "RSS KiB", "non-2xx",
              "of echo");
  for (int round = 1; round <= 2; ++round) {
    int port = free_loopback_port();
    Load echo_load;
    Result echo_r;
    {
      Server echo({echo_bin, std::to_string(port), "128"}, dir + "/echo.log", port);
      echo_load = wrk(dir, "http://127.0.0.1:" + std::to_string(port) + "/hook", seconds, conns, threads);
      echo_r = echo.stop();
    }
    print(("poco echo (round " + std::to_string(round) + ")").c_str(), echo_load, echo_r, 0);

    port = free_loopback_port();
    std::string flow = dir + "/flow.yaml";
    std::ofstream(flow) << "flow: webhook\n"
                           "source:\n  type: http\n  listen: 127.0.0.1:" + std::to_string(port) + "\n  path: /hook\n"
                           "steps:\n  - type: map\n    set:\n      order: id\n      amount_cents: int(total * 100)\n"
                           "      site: site\n"
                           "sinks:\n  out: { type: drop }\n";
    Load ef_load;
    Result ef_r;
    {
      Server ef({EDGEFLOW_BIN, "run", "--admin", "off", "--state-dir", dir + "/state", flow}, dir + "/edgeflow.log", port);
      ef_load = wrk(dir, "http://127.0.0.1:" + std::to_string(port) + "/hook", seconds, conns, threads);
      ef_r = ef.stop();
    }
    std::string log = slurp(dir + "/edgeflow.log");
    std::string emitted = word_after(log, "emitted="), delivered = word_after(log, "delivered=");
    if (emitted.empty() || emitted != delivered || log.find("dead_lettered=0 unresolved=0") == std::string::npos)
      die("edgeflow did not deliver every event it took:\n" + log);
    if (ef_load.non2xx != 0) die("edgeflow answered " + std::to_string(ef_load.non2xx) + " requests with non-2xx");
    // wrk counts the requests it finished; a request cut off at the end may have been emitted.
    if (number(emitted) < ef_load.requests) die("edgeflow emitted fewer events than wrk got answers for:\n" + log);
    print(("edgeflow http->map->drop (" + std::to_string(round) + ")").c_str(), ef_load, ef_r, echo_load.rps);
    std::filesystem::remove_all(dir + "/state");
  }

  // Slow clients: descriptors for them, in this process and in the servers it starts.
  int slow = env_int("BENCH_HTTP_SLOW", 1000);
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  std::printf("\nlatency of one client (200 sequential POSTs, keep-alive), alone and beside %d connections that sent part "
              "of a head\n%-28s %9s %9s %12s %9s %9s\n",
              slow, "", "p50 ms", "p99 ms", "slow p50 ms", "p99 ms", "answered");
  {
    int port = free_loopback_port();
    Server echo({echo_bin, std::to_string(port), "128"}, dir + "/echo.log", port);
    slow_clients("poco echo", port, slow);
    kill(echo.pid, SIGKILL);  // its threads sit in the slow heads; SIGTERM would wait for them
    waitpid(echo.pid, nullptr, 0);
    std::erase(live(), echo.pid);
    echo.pid = -1;
  }
  {
    int port = free_loopback_port();
    std::string flow = dir + "/slow.yaml";
    std::ofstream(flow) << "flow: webhook\nsource:\n  type: http\n  listen: 127.0.0.1:" + std::to_string(port) +
                               "\n  path: /hook\n  max_connections: 4096\nsinks:\n  out: { type: drop }\n";
    Server ef({EDGEFLOW_BIN, "run", "--admin", "off", "--state-dir", dir + "/state", flow}, dir + "/edgeflow.log", port);
    slow_clients("edgeflow http->drop", port, slow);
    ef.stop();
  }
  std::filesystem::remove_all(dir);
  return 0;
}
