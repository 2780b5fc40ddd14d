// A real, private mosquitto broker for integration tests (header-only).
//
//   edgeflow::test::MosquittoServer mqtt;                 // started, ready on return
//   mqtt.publish("in/a", {"one", "two"}, 1);             // mosquitto_pub -l
//   mqtt.wait_log("edgeflow-x 1 in/#");                   // the broker's own log, as it comes
//   mqtt.restart();                                       // SIGTERM, then the same config and port
//
// The broker runs as a child process (not daemonised) in a temp dir, listening on a free loopback
// port, with persistence on (the database in the temp dir, saved at every stop), connection and
// subscription messages in its log, and a queue limit far above any test (mosquitto drops QoS 1/2
// messages beyond max_queued_messages, 1000 by default: tests that park thousands of messages
// for an offline session would lose them to the broker, not to edgeflow). Its log (stderr) is read
// by a thread line by line, so tests wait on what the broker says instead of polling.
//
// mosquitto 2 run as root switches to the user `mosquitto`, which could not write the temp dir:
// the config sets `user` to the current user, so the broker keeps running as whoever runs the tests.
//
// When mosquitto is missing the constructor throws, pointing at scripts/test.sh (which installs
// the `mosquitto` package): tests fail, never skip.
#pragma once

#include "test_support.hpp"

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace edgeflow::test {

class MosquittoServer {
 public:
  // `listener_conf`: lines for the listener (TLS: cafile, certfile, keyfile, require_certificate);
  // `global_conf`: lines for the whole broker (allow_anonymous false, password_file, ...).
  explicit MosquittoServer(std::string listener_conf = "", std::string global_conf = "")
      : listener_conf_(std::move(listener_conf)), global_conf_(std::move(global_conf)) {
    if (std::system("command -v mosquitto >/dev/null 2>&1") != 0)
      throw std::runtime_error("mosquitto is not installed: run scripts/test.sh, which installs the Debian packages "
                               "mosquitto and mosquitto-clients, or apt-get install them");
    std::string tmpl = (std::filesystem::temp_directory_path() / "edgeflow-mqtt-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    for (int attempt = 1;; ++attempt) {
      port_ = free_loopback_port();
      try {
        start();
        return;
      } catch (const std::exception& e) {
        // Another process may take the port between our probe and the broker's bind.
        if (attempt < 3 && std::string(e.what()).find("Address already in use") != std::string::npos) continue;
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
        throw;
      }
    }
  }
  ~MosquittoServer() {
    if (pid_ > 0) {
      ::kill(pid_, SIGCONT);
      ::kill(pid_, SIGKILL);
    }
    reap();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  MosquittoServer(const MosquittoServer&) = delete;
  MosquittoServer& operator=(const MosquittoServer&) = delete;

  int port() const { return port_; }
  std::string uri() const { return std::string(tls_ ? "mqtts" : "mqtt") + "://127.0.0.1:" + std::to_string(port_); }
  const std::filesystem::path& dir() const { return dir_; }

  // Starts the broker (again: same config, port and persistence file) and waits until it runs.
  void start() {
    if (pid_ > 0) throw std::runtime_error("mosquitto is already running");
    write_config();
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    size_t mark = log_mark();
    pid_ = fork();
    if (pid_ == 0) {
      int null = ::open("/dev/null", O_RDWR);
      dup2(null, 0);
      dup2(null, 1);
      dup2(fds[1], 2);
      std::string conf = (dir_ / "mosquitto.conf").string();
      execlp("mosquitto", "mosquitto", "-c", conf.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    ::close(fds[1]);
    reader_ = std::thread([this, fd = fds[0]] { read_log(fd); });
    bool up = wait_log_since(mark, [](const std::string& l) { return l.find(" running") != std::string::npos && l.find("mosquitto version") != std::string::npos; },
                             std::chrono::seconds(30));
    if (!up) {
      std::string log = log_text();
      ::kill(pid_, SIGKILL);
      reap();
      throw std::runtime_error("mosquitto did not start on port " + std::to_string(port_) + ":\n" + log);
    }
  }

  // SIGTERM: mosquitto saves its persistence database and exits.
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGCONT);
    ::kill(pid_, SIGTERM);
    reap();
  }
  void restart() {
    stop();
    start();
  }
  // SIGSTOP / SIGCONT: the broker keeps its connections open and answers nothing.
  void freeze() { ::kill(pid_, SIGSTOP); }
  void thaw() { ::kill(pid_, SIGCONT); }

  // --- the broker's log ---
  size_t log_mark() {
    std::lock_guard lock(mutex_);
    return lines_.size();
  }
  // Waits until a line logged after `mark` satisfies pred.
  bool wait_log_since(size_t mark, const std::function<bool(const std::string&)>& pred,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mutex_);
    size_t checked = mark;
    return cv_.wait_for(lock, timeout, [&] {
      for (; checked < lines_.size(); ++checked)
        if (pred(lines_[checked])) return true;
      return false;
    });
  }
  bool wait_log(const std::string& needle, size_t mark = 0, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return wait_log_since(mark, [&](const std::string& l) { return l.find(needle) != std::string::npos; }, timeout);
  }
  std::string log_text() {
    std::lock_guard lock(mutex_);
    std::string s;
    for (auto& l : lines_) s += l + "\n";
    return s;
  }

  // --- clients (mosquitto-clients) ---
  std::vector<std::string> client_args(const std::string& tool) const {
    return {tool, "-h", "127.0.0.1", "-p", std::to_string(port_)};
  }
  // Publishes each message (one line each) with mosquitto_pub -l; throws if it fails.
  void publish(const std::string& topic, const std::vector<std::string>& messages, int qos,
               const std::vector<std::string>& extra = {}) {
    std::string file = (dir_ / ("pub-" + std::to_string(++files_) + ".txt")).string();
    {
      std::ofstream f(file);
      for (auto& m : messages) f << m << "\n";
    }
    auto args = client_args("mosquitto_pub");
    for (auto& a : std::vector<std::string>{"-t", topic, "-q", std::to_string(qos), "-l"}) args.push_back(a);
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_command(args, file, std::chrono::seconds(120));
    std::filesystem::remove(file);
    if (r.status != 0)
      throw std::runtime_error("mosquitto_pub failed (status " + std::to_string(r.status) + "): " + r.err + "\n" + log_text());
  }
  // Receives `count` messages with mosquitto_sub (extra: -c -i id, -V mqttv5, -F ...); returns
  // the output lines (fewer when `wait` passes first).
  std::vector<std::string> subscribe(const std::string& filter, size_t count, int qos, const std::vector<std::string>& extra = {},
                                     int wait_s = 30) {
    auto args = client_args("mosquitto_sub");
    for (auto& a : std::vector<std::string>{"-t", filter, "-q", std::to_string(qos), "-C", std::to_string(count), "-W",
                                            std::to_string(wait_s)})
      args.push_back(a);
    args.insert(args.end(), extra.begin(), extra.end());
    auto r = run_command(args, "", std::chrono::seconds(wait_s + 30));
    std::vector<std::string> lines;
    size_t at = 0;
    while (at < r.out.size()) {
      size_t nl = r.out.find('\n', at);
      if (nl == std::string::npos) nl = r.out.size();
      lines.push_back(r.out.substr(at, nl - at));
      at = nl + 1;
    }
    return lines;
  }

 private:
  void write_config() {
    passwd* pw = getpwuid(geteuid());
    std::ofstream conf(dir_ / "mosquitto.conf", std::ios::trunc);
    conf << "user " << (pw ? pw->pw_name : "root") << "\n"
         << "persistence true\n"
         << "persistence_location " << dir_.string() << "/\n"
         << "log_dest stderr\n"
         << "log_type error\nlog_type warning\nlog_type notice\nlog_type information\nlog_type subscribe\n"
         << "connection_messages true\n"
         << "max_queued_messages 10000000\n"
         << global_conf_ << "\n"
         << (global_conf_.find("allow_anonymous") == std::string::npos ? "allow_anonymous true\n" : "")
         << "listener " << port_ << " 127.0.0.1\n"
         << listener_conf_ << "\n";
    tls_ = listener_conf_.find("certfile") != std::string::npos;
    if (!conf) throw std::runtime_error("cannot write " + (dir_ / "mosquitto.conf").string());
  }

  void read_log(int fd) {
    std::string partial;
    char buf[4096];
    for (;;) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      partial.append(buf, size_t(n));
      size_t nl;
      bool any = false;
      while ((nl = partial.find('\n')) != std::string::npos) {
        std::lock_guard lock(mutex_);
        lines_.push_back(partial.substr(0, nl));
        partial.erase(0, nl + 1);
        any = true;
      }
      if (any) cv_.notify_all();
    }
    ::close(fd);
  }

  void reap() {
    if (pid_ > 0) {
      int status = 0;
      while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
      }
      pid_ = -1;
    }
    if (reader_.joinable()) reader_.join();
  }

  std::string listener_conf_, global_conf_;
  std::filesystem::path dir_;
  int port_ = 0;
  bool tls_ = false;
  pid_t pid_ = -1;
  std::thread reader_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::string> lines_;
  int files_ = 0;
};

// A throwaway certificate authority made with the openssl CLI: a CA, and certificates it signs.
class TestCa {
 public:
  TestCa(const std::filesystem::path& dir, const std::string& name) : dir_(dir), name_(name) {
    std::filesystem::create_directories(dir_);
    openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key(name_),
             "-out", cert(name_), "-days", "2", "-subj", "/CN=" + name_});
  }
  std::string ca_file() const { return cert(name_); }
  // Issues `who`.crt / `who`.key for the names in `san` (e.g. "IP:127.0.0.1,DNS:localhost").
  void issue(const std::string& who, const std::string& san) {
    std::string ext = (dir_ / (who + ".ext")).string();
    std::ofstream(ext) << "subjectAltName=" << san << "\n";
    std::string csr = (dir_ / (who + ".csr")).string();
    openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key(who), "-out", csr,
             "-subj", "/CN=" + who});
    openssl({"x509", "-req", "-in", csr, "-CA", cert(name_), "-CAkey", key(name_), "-CAcreateserial", "-out", cert(who),
             "-days", "2", "-extfile", ext});
  }
  std::string cert(const std::string& who) const { return (dir_ / (who + ".crt")).string(); }
  std::string key(const std::string& who) const { return (dir_ / (who + ".key")).string(); }

 private:
  void openssl(std::vector<std::string> args) const {
    args.insert(args.begin(), "openssl");
    auto r = run_command(args);
    if (r.status != 0) throw std::runtime_error("openssl " + args[1] + " failed: " + r.err);
  }
  std::filesystem::path dir_;
  std::string name_;
};

}  // namespace edgeflow::test
