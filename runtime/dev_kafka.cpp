// `edgeflow dev kafka`: librdkafka's mock cluster (rdkafka_mock.h) in the foreground.
//
// The mock cluster is a real Kafka protocol peer that librdkafka runs inside the process that
// created it: N brokers on 127.0.0.1, each on a port the kernel picks, topics and partitions in
// memory. It is what librdkafka's own tests use; it is not Kafka (no disk, no replication, about
// 5 MB per partition with the oldest batches dropped silently: see the banner). This command only
// creates it, names its addresses and waits for SIGINT/SIGTERM.
//
// librdkafka 2.0.2 cannot make a mock broker listen on a chosen port, so `--port N` adds a small
// TCP forwarder: it accepts on 127.0.0.1:N and copies bytes both ways between each client and
// broker 1. A client that bootstraps there asks for metadata through it and from then on connects
// to the addresses the brokers advertise (their own random ports), like with any Kafka whose
// bootstrap address is a load balancer.
#include "dev_kafka.hpp"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <list>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace edgeflow {

const char* const kDevKafkaUsage = R"(Usage:
  edgeflow dev kafka [--brokers N] [--partitions N] [--topic NAME]... [--port N]

Runs an in-memory Kafka (librdkafka's mock cluster) in the foreground until SIGINT or SIGTERM.
FOR DEVELOPMENT ONLY: nothing is kept on disk, and each partition keeps only about 5 MB (older
messages are dropped silently). Prints a banner, then one line `bootstrap.servers=HOST:PORT,...`.

  --brokers N      brokers in the cluster (1 to 16, default 1)
  --partitions N   partitions of each --topic (1 to 1000, default 4)
  --topic NAME     create topic NAME at start (repeatable); any other topic is created when a
                   client first uses it, always with 4 partitions (librdkafka's mock fixes that)
  --port N         also accept clients on 127.0.0.1:N and forward them byte for byte to broker 1
                   (the brokers themselves listen on random ports); clients bootstrap there, then
                   connect to the broker addresses the cluster advertises
)";

namespace {

constexpr int kMockAutoCreatePartitions = 4;  // librdkafka 2.0.2: mcluster->defaults.partition_cnt

struct Options {
  int brokers = 1;
  int partitions = kMockAutoCreatePartitions;
  int port = 0;  // 0: no forwarder
  std::vector<std::string> topics;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int parse_int(const std::string& name, const std::string& text, int min, int max) {
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max)
    throw UsageError(name + " is a whole number from " + std::to_string(min) + " to " + std::to_string(max) +
                     ", not '" + text + "'");
  return v;
}

// Kafka's own rule for topic names: 1 to 249 of [a-zA-Z0-9._-], not "." or "..".
void check_topic(const std::string& t) {
  bool ok = !t.empty() && t.size() <= 249 && t != "." && t != "..";
  for (char c : t) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-');
  if (!ok) throw UsageError("--topic '" + t + "': a topic name is 1 to 249 of a-z A-Z 0-9 . _ -");
}

Options parse(const std::vector<std::string>& args) {
  Options o;
  std::set<std::string> seen;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&]() -> const std::string& {
      if (i + 1 >= args.size()) throw UsageError(arg + " needs a value");
      return args[++i];
    };
    if (arg == "--brokers") o.brokers = parse_int(arg, value(), 1, 16);
    else if (arg == "--partitions") o.partitions = parse_int(arg, value(), 1, 1000);
    else if (arg == "--port") o.port = parse_int(arg, value(), 1, 65535);
    else if (arg == "--topic") {
      const std::string& t = value();
      check_topic(t);
      if (!seen.insert(t).second) throw UsageError("--topic " + t + " is given twice");
      o.topics.push_back(t);
    } else if (arg.rfind("--", 0) == 0) {
      throw UsageError("unknown option " + arg);
    } else {
      throw UsageError("unexpected argument '" + arg + "'");
    }
  }
  return o;
}

std::string errno_text(const std::string& what, int err) { return what + ": " + std::strerror(err); }

// Accepts on 127.0.0.1:port and copies bytes both ways between each client and `upstream`, in
// one poll() thread. Each direction buffers at most kCap bytes and stops reading while full, so
// a slow side slows the other instead of growing memory. A FIN is passed on as a FIN (half
// close); an error on either side closes both.
class Forwarder {
 public:
  Forwarder(int port, const sockaddr_in& upstream) : upstream_(upstream) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (listen_fd_ < 0) throw std::runtime_error(errno_text("socket", errno));
    int one = 1;
    ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(listen_fd_, 64) != 0) {
      int e = errno;
      ::close(listen_fd_);
      throw std::runtime_error(errno_text("--port " + std::to_string(port) + ": cannot listen on 127.0.0.1:" +
                                              std::to_string(port),
                                          e));
    }
    if (::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
      int e = errno;
      ::close(listen_fd_);
      throw std::runtime_error(errno_text("pipe", e));
    }
    thread_ = std::thread([this] { run(); });
  }

  ~Forwarder() {
    char b = 1;
    while (::write(wake_[1], &b, 1) < 0 && errno == EINTR) {
    }
    thread_.join();
    for (auto& c : conns_) close_both(c);
    ::close(listen_fd_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

 private:
  static constexpr size_t kCap = 256 * 1024;

  struct Conn {
    int fd[2] = {-1, -1};        // 0: the client, 1: the broker
    std::string buf[2];          // buf[i]: read from fd[i], not yet written to fd[1 - i]
    bool eof[2] = {false, false};   // fd[i] sent FIN
    bool shut[2] = {false, false};  // FIN passed on to fd[i]
    bool dead = false;
  };

  static void close_both(Conn& c) {
    for (int& fd : c.fd) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }

  void accept_one() {
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (client < 0) return;  // EAGAIN, or a connection reset before we got to it
    int broker = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    // A loopback connect completes (or is refused) at once: no need to make it non-blocking.
    if (broker < 0 || ::connect(broker, reinterpret_cast<const sockaddr*>(&upstream_), sizeof upstream_) != 0) {
      std::fprintf(stderr, "edgeflow dev kafka: %s\n", errno_text("forwarding a client to broker 1", errno).c_str());
      if (broker >= 0) ::close(broker);
      ::close(client);
      return;
    }
    ::fcntl(broker, F_SETFL, ::fcntl(broker, F_GETFL) | O_NONBLOCK);
    int one = 1;
    ::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    ::setsockopt(broker, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    Conn& c = conns_.emplace_back();
    c.fd[0] = client;
    c.fd[1] = broker;
  }

  // Reads and writes fd[i] as poll() said it can.
  static void service(Conn& c, int i, short revents, char* chunk, size_t chunk_size) {
    if (c.dead || revents == 0) return;
    if (revents & (POLLERR | POLLNVAL)) {
      c.dead = true;
      return;
    }
    if ((revents & (POLLIN | POLLHUP)) && !c.eof[i] && c.buf[i].size() < kCap) {
      ssize_t n = ::recv(c.fd[i], chunk, std::min(chunk_size, kCap - c.buf[i].size()), 0);
      if (n > 0) c.buf[i].append(chunk, size_t(n));
      else if (n == 0) c.eof[i] = true;
      else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) c.dead = true;
    }
    std::string& out = c.buf[1 - i];
    if ((revents & POLLOUT) && !out.empty()) {
      ssize_t n = ::send(c.fd[i], out.data(), out.size(), MSG_NOSIGNAL);
      if (n > 0) out.erase(0, size_t(n));
      else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) c.dead = true;
    }
  }

  void run() {
    std::vector<char> chunk(64 * 1024);
    std::vector<pollfd> fds;
    for (;;) {
      fds.clear();
      fds.push_back({wake_[0], POLLIN, 0});
      fds.push_back({listen_fd_, POLLIN, 0});
      for (auto& c : conns_) {
        for (int i = 0; i < 2; ++i) {
          short events = 0;
          if (!c.eof[i] && c.buf[i].size() < kCap) events |= POLLIN;
          if (!c.buf[1 - i].empty()) events |= POLLOUT;
          // A negative fd is skipped by poll(): a side with nothing to do cannot spin on POLLHUP.
          fds.push_back({events != 0 ? c.fd[i] : -1, events, 0});
        }
      }
      if (::poll(fds.data(), fds.size(), -1) < 0) {
        if (errno == EINTR) continue;
        std::fprintf(stderr, "edgeflow dev kafka: %s; the --port forwarder stops\n", errno_text("poll", errno).c_str());
        return;
      }
      if (fds[0].revents != 0) return;
      size_t k = 2;
      for (auto& c : conns_) {
        for (int i = 0; i < 2; ++i) service(c, i, fds[k++].revents, chunk.data(), chunk.size());
        // A side that sent FIN and whose bytes are all passed on: pass the FIN on too.
        for (int i = 0; i < 2; ++i) {
          if (!c.dead && c.eof[i] && c.buf[i].empty() && !c.shut[1 - i]) {
            ::shutdown(c.fd[1 - i], SHUT_WR);
            c.shut[1 - i] = true;
          }
        }
      }
      for (auto it = conns_.begin(); it != conns_.end();) {
        bool done = it->dead || (it->shut[0] && it->shut[1]);
        if (done) {
          close_both(*it);
          it = conns_.erase(it);
        } else {
          ++it;
        }
      }
      if (fds[1].revents & POLLIN) accept_one();
    }
  }

  sockaddr_in upstream_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::list<Conn> conns_;  // touched by the thread only, then by the destructor after join()
  std::thread thread_;
};

// "127.0.0.1:41234,127.0.0.1:..." -> the first address.
sockaddr_in first_broker(const std::string& bootstraps) {
  std::string first = bootstraps.substr(0, bootstraps.find(','));
  size_t colon = first.rfind(':');
  sockaddr_in a{};
  a.sin_family = AF_INET;
  int port = 0;
  if (colon == std::string::npos || ::inet_pton(AF_INET, first.substr(0, colon).c_str(), &a.sin_addr) != 1 ||
      std::from_chars(first.data() + colon + 1, first.data() + first.size(), port).ec != std::errc())
    throw std::runtime_error("cannot read the first broker's address from '" + bootstraps + "'");
  a.sin_port = htons(static_cast<uint16_t>(port));
  return a;
}

void log_to_stderr(const rd_kafka_t*, int level, const char* fac, const char* buf) {
  std::fprintf(stderr, "edgeflow dev kafka: librdkafka %d %s: %s\n", level, fac, buf);
}

// The handle the mock cluster belongs to, and the cluster; destroyed in the order librdkafka
// requires (clusters before their handle).
struct Mock {
  rd_kafka_t* rk = nullptr;
  rd_kafka_mock_cluster_t* cluster = nullptr;
  ~Mock() {
    if (cluster) rd_kafka_mock_cluster_destroy(cluster);
    if (rk) rd_kafka_destroy(rk);
  }
};

}  // namespace

int dev_kafka(const std::vector<std::string>& args) {
  Options o;
  try {
    for (auto& a : args) {
      if (a == "-h" || a == "--help") {
        std::fputs(kDevKafkaUsage, stdout);
        return 0;
      }
    }
    o = parse(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "edgeflow dev kafka: %s\n\n%s", e.what(), kDevKafkaUsage);
    return 2;
  }

  // SIGINT/SIGTERM are taken by sigwait() below; blocked before any thread starts, so no
  // librdkafka or forwarder thread receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto fail = [](const std::string& msg) {
    std::fprintf(stderr, "edgeflow dev kafka: %s\n", msg.c_str());
    return 1;
  };
  Mock mock;
  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  // The handle only hosts the cluster and never connects anywhere: its notice that it has no
  // bootstrap.servers (level 5) is noise; warnings and errors still reach stderr.
  rd_kafka_conf_set(conf, "log_level", "4", err, sizeof err);
  rd_kafka_conf_set_log_cb(conf, log_to_stderr);
  mock.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
  if (!mock.rk) {
    rd_kafka_conf_destroy(conf);
    return fail(std::string("cannot create a librdkafka handle: ") + err);
  }
  mock.cluster = rd_kafka_mock_cluster_new(mock.rk, o.brokers);
  if (!mock.cluster) return fail("librdkafka could not create the mock cluster (see its log above)");
  for (auto& t : o.topics) {
    rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(mock.cluster, t.c_str(), o.partitions, std::min(3, o.brokers));
    if (e) return fail("creating topic " + t + ": " + rd_kafka_err2str(e));
  }
  std::string bootstraps = rd_kafka_mock_cluster_bootstraps(mock.cluster);

  std::unique_ptr<Forwarder> forwarder;
  std::string upstream = bootstraps.substr(0, bootstraps.find(','));
  if (o.port != 0) {
    try {
      forwarder = std::make_unique<Forwarder>(o.port, first_broker(bootstraps));
    } catch (const std::exception& e) {
      return fail(e.what());
    }
  }

  std::string topics;
  for (auto& t : o.topics) topics += (topics.empty() ? "" : ", ") + t;
  std::printf(
      "edgeflow dev kafka: librdkafka %s mock cluster, %d broker(s)\n"
      "\n"
      "  IN-MEMORY AND FOR DEVELOPMENT ONLY. This is not a Kafka server: nothing is written to\n"
      "  disk and every message is gone when this command stops. Each partition keeps only about\n"
      "  5 MB (and at most 100000 batches): older messages are dropped SILENTLY, and a consumer\n"
      "  that falls that far behind loses them. Never put data you need into it.\n"
      "\n",
      rd_kafka_version_str(), o.brokers);
  if (!o.topics.empty())
    std::printf("  topics created with %d partition(s): %s\n", o.partitions, topics.c_str());
  std::printf("  other topics are created when a client first uses them, with %d partitions\n",
              kMockAutoCreatePartitions);
  if (forwarder)
    std::printf("  127.0.0.1:%d is forwarded to broker 1 (%s): clients bootstrap there, then connect\n"
                "  to the broker addresses below\n",
                o.port, upstream.c_str());
  std::printf("  stop with Ctrl-C or SIGTERM\n\nbootstrap.servers=%s\n", bootstraps.c_str());
  std::fflush(stdout);

  for (;;) {
    int sig = 0;
    if (sigwait(&stop, &sig) == 0) {
      std::fprintf(stderr, "edgeflow dev kafka: %s: stopping; the cluster's data is discarded\n", strsignal(sig));
      break;
    }
  }
  forwarder.reset();
  return 0;
}

}  // namespace edgeflow
