// A real, private PostgreSQL server for integration tests (header-only).
//
//   edgeflow::test::PostgresServer pg;          // initdb + start, ready on return
//   pg.psql("CREATE TABLE t (id int PRIMARY KEY)");
//   connect_somehow(pg.dsn());                  // host=127.0.0.1 port=N user=postgres dbname=postgres
//
// The constructor finds the server binaries (the highest /usr/lib/postgresql/<v>/bin, else
// `pg_config --bindir`; $EDGEFLOW_PG_BINDIR overrides both), makes a temp dir, runs initdb in it
// (trust auth, superuser `postgres`, UTF8), configures it for logical replication on a free
// loopback port with its Unix socket inside the temp dir, starts it with `pg_ctl -w` and then polls
// until it accepts connections (bounded deadline). The destructor stops it (`-m immediate`) and
// removes the temp dir. PostgreSQL refuses to run as root: when the tests run as root, the server
// tools (initdb, pg_ctl) run as the `postgres` system user (setgid/setuid in the forked child);
// otherwise as the current user. Clients (psql, pg_isready) run as the current user.
//
// When the binaries are missing the constructor throws, with a message pointing at
// scripts/test.sh (which installs the `postgresql` package): tests fail, they never skip.
// Every failure is a std::runtime_error naming the command, its exit status, its stderr and the
// tail of the server log.
#pragma once

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace edgeflow::test {

class PostgresServer {
 public:
  struct Result {
    int status = -1;  // exit code, or 128 + signal
    std::string out;
    std::string err;
  };

  // `extra_conf`: postgresql.conf lines after ours (a later setting wins), e.g. "wal_level = replica".
  // `first_hba`: pg_hba.conf lines put before initdb's trust-everything ones (first match wins).
  explicit PostgresServer(std::string extra_conf = "", const std::string& first_hba = "")
      : extra_conf_(std::move(extra_conf)) {
    bindir_ = find_bindir();
    if (bindir_.empty()) {
      const char* env = std::getenv("EDGEFLOW_PG_BINDIR");
      throw std::runtime_error(
          std::string("PostgreSQL server binaries not found (looked in ") +
          (env != nullptr && *env != '\0' ? std::string("$EDGEFLOW_PG_BINDIR=") + env
                                           : "/usr/lib/postgresql/*/bin and `pg_config --bindir`") +
          "): run scripts/test.sh, which installs the Debian package `postgresql`, or install it "
          "yourself (apt-get install postgresql)");
    }
    resolve_server_user();

    std::string tmpl =
        (std::filesystem::temp_directory_path() / "edgeflow-pg-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    }
    dir_ = tmpl;
    try {
      // Traversable by postgres; owned by it so initdb can create data/ and pg_ctl the log.
      ::chmod(dir_.c_str(), 0755);
      if (as_other_user_ && ::chown(dir_.c_str(), uid_, gid_) != 0) {
        throw std::runtime_error("chown " + dir_.string() + ": " + std::strerror(errno));
      }
      data_ = dir_ / "data";
      log_ = dir_ / "server.log";
      check({bin("initdb"), "-D", data_.string(), "-A", "trust", "-U", "postgres", "-E", "UTF8",
             "--no-locale", "--no-sync"},
            /*as_server=*/true);
      {
        std::ofstream conf(data_ / "postgresql.conf", std::ios::app);
        conf << "\ninclude 'edgeflow_test.conf'\n";
        if (!conf) throw std::runtime_error("cannot append to " + (data_ / "postgresql.conf").string());
      }
      if (!first_hba.empty()) {
        std::stringstream hba;
        hba << std::ifstream(data_ / "pg_hba.conf").rdbuf();
        std::ofstream(data_ / "pg_hba.conf", std::ios::trunc) << first_hba << "\n" << hba.str();
      }
      start();
    } catch (...) {
      cleanup();
      throw;
    }
  }

  ~PostgresServer() { cleanup(); }

  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  // Whether the server binaries are installed. Not for skipping: a missing PostgreSQL is a failure.
  static bool available() { return !find_bindir().empty(); }

  int port() const { return port_; }
  const std::filesystem::path& dir() const { return dir_; }
  const std::filesystem::path& data_dir() const { return data_; }
  std::string bin(const std::string& name) const { return (bindir_ / name).string(); }

  std::string dsn(const std::string& dbname = "postgres") const {
    return "host=127.0.0.1 port=" + std::to_string(port_) + " user=postgres dbname=" + dbname;
  }

  // Runs `sql` (any number of statements, each in its own implicit transaction unless the script
  // says BEGIN/COMMIT) with `psql -X -A -t -q -v ON_ERROR_STOP=1`; returns stdout with the final
  // newline removed (so a one-value query compares directly). Throws on any error.
  std::string psql(const std::string& sql, const std::string& dbname = "postgres") const {
    std::filesystem::path file = dir_ / ("query-" + std::to_string(++queries_) + ".sql");
    {
      std::ofstream f(file);
      f << sql << "\n";
    }
    Result r = check({bin("psql"), "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                      dsn(dbname), "-f", file.string()},
                     /*as_server=*/false);
    std::error_code ec;
    std::filesystem::remove(file, ec);
    if (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r.out;
  }

  // The last `lines` lines of the server log (for failure messages).
  std::string log_tail(std::size_t lines = 40) const {
    std::ifstream in(log_);
    if (!in) return "(no server log at " + log_.string() + ")";
    std::deque<std::string> tail;
    for (std::string line; std::getline(in, line);) {
      tail.push_back(line);
      if (tail.size() > lines) tail.pop_front();
    }
    std::string s;
    for (auto& l : tail) s += l + "\n";
    return s;
  }

  // Runs a command (argv[0] a path) and returns its status and output; never throws for a non-zero
  // exit. `as_server`: run as the server's user (postgres when we are root).
  Result run(const std::vector<std::string>& argv, bool as_server = false,
             std::chrono::seconds timeout = std::chrono::seconds(120)) const {
    return run_command(argv, as_server && as_other_user_, uid_, gid_, dir_, timeout);
  }

 private:
  static std::filesystem::path find_bindir() {
    if (const char* env = std::getenv("EDGEFLOW_PG_BINDIR"); env != nullptr && *env != '\0') {
      return has_server_binaries(env) ? std::filesystem::path(env) : std::filesystem::path();
    }
    std::filesystem::path best;
    long best_version = -1;
    std::error_code ec;
    for (auto it = std::filesystem::directory_iterator("/usr/lib/postgresql", ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      const std::string name = it->path().filename().string();
      char* end = nullptr;
      long v = std::strtol(name.c_str(), &end, 10);
      if (end == name.c_str() || *end != '\0') continue;
      if (v > best_version && has_server_binaries(it->path() / "bin")) {
        best_version = v;
        best = it->path() / "bin";
      }
    }
    if (!best.empty()) return best;
    for (const char* dir : {"/usr/bin", "/usr/local/bin", "/usr/local/pgsql/bin"}) {
      std::filesystem::path pg_config = std::filesystem::path(dir) / "pg_config";
      if (::access(pg_config.c_str(), X_OK) != 0) continue;
      Result r = run_command({pg_config.string(), "--bindir"}, false, 0, 0, "/",
                             std::chrono::seconds(30));
      std::string out = r.out;
      while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
      if (r.status == 0 && has_server_binaries(out)) return out;
    }
    return {};
  }

  static bool has_server_binaries(const std::filesystem::path& dir) {
    for (const char* b : {"postgres", "initdb", "pg_ctl", "psql", "pg_isready"}) {
      if (::access((dir / b).c_str(), X_OK) != 0) return false;
    }
    return true;
  }

  void resolve_server_user() {
    if (::geteuid() != 0) return;  // not root: the server runs as us
    struct passwd* pw = ::getpwnam("postgres");
    if (pw == nullptr) {
      throw std::runtime_error(
          "running as root but there is no `postgres` system user to run PostgreSQL as "
          "(PostgreSQL refuses to run as root): install the Debian package `postgresql` "
          "(scripts/test.sh does)");
    }
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    as_other_user_ = true;
  }

  static int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      int e = errno;
      ::close(fd);
      throw std::runtime_error(std::string("finding a free port: ") + std::strerror(e));
    }
    ::close(fd);
    return ntohs(addr.sin_port);
  }

  void write_config() const {
    std::filesystem::path file = data_ / "edgeflow_test.conf";
    std::ofstream conf(file, std::ios::trunc);
    conf << "listen_addresses = '127.0.0.1'\n"
         << "port = " << port_ << "\n"
         << "unix_socket_directories = '" << dir_.string() << "'\n"
         << "wal_level = logical\n"
         << "max_replication_slots = 10\n"
         << "max_wal_senders = 10\n"
         // fsync=off for speed; synchronous_commit stays on: SQL-level logical decoding
         // (pg_logical_slot_*_changes) only reads WAL that is flushed, so with it off a just
         // committed transaction can be invisible to the slot for up to wal_writer_delay.
         << "fsync = off\n"
         << "log_min_messages = warning\n"
         << extra_conf_ << "\n";
    conf.close();
    if (!conf) throw std::runtime_error("cannot write " + file.string());
    if (as_other_user_) (void)::chown(file.c_str(), uid_, gid_);
  }

  void start() {
    // The free port can be taken between our probe and the server's bind: try a few ports.
    for (int attempt = 1;; ++attempt) {
      port_ = free_port();
      write_config();
      Result r = run({bin("pg_ctl"), "-D", data_.string(), "-l", log_.string(), "-w", "-t", "60",
                      "start"},
                     /*as_server=*/true);
      if (r.status == 0) {
        started_ = true;
        break;
      }
      const std::string log = log_tail(20);
      if (attempt < 3 && log.find("could not bind") != std::string::npos) continue;
      throw failure("pg_ctl start", r);
    }
    wait_ready();
  }

  // pg_ctl -w returns once the postmaster reports "ready" (accepting connections); one TCP
  // check confirms a client on our port really gets in, and fails loudly otherwise.
  void wait_ready() const {
    Result r = run({bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
                    "postgres", "-d", "postgres", "-t", "10"});
    if (r.status != 0) throw failure("pg_isready (the server did not accept a TCP connection)", r);
  }

  void cleanup() noexcept {
    if (started_) {
      started_ = false;
      try {
        Result r = run({bin("pg_ctl"), "-D", data_.string(), "-m", "immediate", "-w", "-t", "30",
                        "stop"},
                       /*as_server=*/true);
        if (r.status != 0) kill_postmaster();
      } catch (...) {
        kill_postmaster();
      }
    }
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  // Last resort when pg_ctl stop fails: SIGKILL the postmaster named in postmaster.pid.
  void kill_postmaster() const noexcept {
    std::ifstream in(data_ / "postmaster.pid");
    long pid = 0;
    if (in >> pid && pid > 1) ::kill(static_cast<pid_t>(pid), SIGKILL);
  }

  Result check(const std::vector<std::string>& argv, bool as_server) const {
    Result r = run(argv, as_server);
    if (r.status != 0) throw failure(argv, r);
    return r;
  }

  std::runtime_error failure(const std::vector<std::string>& argv, const Result& r) const {
    std::string cmd;
    for (auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    return failure(cmd, r);
  }

  std::runtime_error failure(const std::string& what, const Result& r) const {
    std::ostringstream m;
    m << "PostgresServer: `" << what << "` failed with exit status " << r.status;
    if (as_other_user_) m << " (run as user postgres where it is a server tool)";
    m << "\n--- stderr ---\n" << r.err << "--- stdout ---\n" << r.out
      << "--- server log tail (" << log_.string() << ") ---\n" << log_tail();
    return std::runtime_error(m.str());
  }

  // fork + exec with stdout and stderr captured; argv and the environment are prepared before the
  // fork so the child only makes async-signal-safe calls.
  static Result run_command(const std::vector<std::string>& argv, bool switch_user, uid_t uid,
                            gid_t gid, const std::filesystem::path& cwd,
                            std::chrono::seconds timeout) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    // The caller's environment minus libpq's variables (they would redirect the clients), plus a
    // fixed locale and a connect timeout.
    std::vector<std::string> env_strings;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      std::string kv = *e;
      if (kv.rfind("PG", 0) == 0 || kv.rfind("LC_ALL=", 0) == 0) continue;
      env_strings.push_back(kv);
    }
    env_strings.push_back("LC_ALL=C");
    env_strings.push_back("PGCONNECT_TIMEOUT=10");
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    const std::string cwd_s = cwd.string();

    int out_pipe[2], err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
      throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    }
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
      int e = errno;
      ::close(out_pipe[0]);
      ::close(out_pipe[1]);
      throw std::runtime_error(std::string("pipe: ") + std::strerror(e));
    }

    pid_t pid = ::fork();
    if (pid < 0) {
      int e = errno;
      for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
      throw std::runtime_error(std::string("fork: ") + std::strerror(e));
    }
    if (pid == 0) {
      int devnull = ::open("/dev/null", O_RDONLY);
      if (devnull >= 0) ::dup2(devnull, 0);
      ::dup2(out_pipe[1], 1);
      ::dup2(err_pipe[1], 2);
      if (switch_user) {
        if (::setgroups(0, nullptr) != 0 || ::setgid(gid) != 0 || ::setuid(uid) != 0) {
          const char msg[] = "PostgresServer: cannot switch to user postgres\n";
          (void)!::write(2, msg, sizeof msg - 1);
          ::_exit(126);
        }
      }
      if (::chdir(cwd_s.c_str()) != 0) (void)!::chdir("/");
      ::execve(args[0], args.data(), envp.data());
      const char msg[] = "PostgresServer: exec failed\n";
      (void)!::write(2, msg, sizeof msg - 1);
      ::_exit(127);
    }
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);

    Result r;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    int open_fds = 2;
    bool timed_out = false;
    char buf[4096];
    while (open_fds > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        timed_out = true;
        break;
      }
      int n = ::poll(fds, 2, static_cast<int>(left.count()));
      if (n < 0) {
        if (errno == EINTR) continue;
        break;
      }
      for (int i = 0; i < 2; ++i) {
        if (fds[i].fd < 0 || fds[i].revents == 0) continue;
        ssize_t got = ::read(fds[i].fd, buf, sizeof buf);
        if (got > 0) {
          (i == 0 ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
        } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
          ::close(fds[i].fd);
          fds[i].fd = -1;
          --open_fds;
        }
      }
    }
    for (auto& p : fds) {
      if (p.fd >= 0) ::close(p.fd);
    }
    if (timed_out) ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) {
      r.status = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      r.status = 128 + WTERMSIG(status);
    }
    if (timed_out) {
      r.err += "\n(killed after " + std::to_string(timeout.count()) + " s)\n";
      if (r.status == 0) r.status = -1;
    }
    return r;
  }

  std::string extra_conf_;
  std::filesystem::path bindir_;
  std::filesystem::path dir_;
  std::filesystem::path data_;
  std::filesystem::path log_;
  int port_ = 0;
  bool started_ = false;
  bool as_other_user_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  mutable std::atomic<int> queries_{0};  // psql may run on several threads at once
};

}  // namespace edgeflow::test
