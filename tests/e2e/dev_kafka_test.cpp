// `edgeflow dev kafka` as a child process: its banner and bootstrap line, real librdkafka clients
// through both the printed brokers and the --port forwarder, signals and exit codes.
#include "daemon.hpp"
#include "kafka_mock.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <memory>

using edgeflow::test::Daemon;
using edgeflow::test::kafka_consume_all;
using edgeflow::test::kafka_produce;
using edgeflow::test::KafkaMessage;
using edgeflow::test::TempDir;

namespace {

std::string slurp(const std::string& path) { return edgeflow::test::join(edgeflow::test::read_lines(path)); }

// A loopback socket bound to a port the kernel picks; listening when `listen_too`.
struct Socket {
  int fd = -1;
  int port = 0;
  explicit Socket(bool listen_too) {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        (listen_too && ::listen(fd, 1) != 0) || ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("cannot bind a loopback socket");
    port = ntohs(a.sin_port);
  }
  ~Socket() { ::close(fd); }
};

// `edgeflow dev kafka ARGS...` started, its stdout read up to and including the bootstrap line.
struct DevKafka {
  std::unique_ptr<Daemon> daemon;
  std::vector<std::string> banner;  // the lines before the bootstrap line
  std::string bootstraps;           // empty if stdout ended first
  DevKafka(std::vector<std::string> args, const std::string& stderr_file) {
    args.insert(args.begin(), {"dev", "kafka"});
    daemon = std::make_unique<Daemon>(args, stderr_file);
    for (std::string line; daemon->line(line);) {
      if (line.rfind("bootstrap.servers=", 0) == 0) {
        bootstraps = line.substr(18);
        break;
      }
      banner.push_back(line);
    }
  }
  std::string banner_text() const { return edgeflow::test::join(banner); }
};

TEST(DevKafka, ServesClientsThroughThePrintedBrokersAndThroughThePortAndStopsOnSigterm) {
  TempDir dir;
  std::unique_ptr<DevKafka> dev;
  int port = 0;
  // The free port can be taken between the probe and the command's bind: then it exits 1 and
  // says so; try another.
  for (int attempt = 0; attempt < 3; ++attempt) {
    port = Socket(false).port;
    dev = std::make_unique<DevKafka>(
        std::vector<std::string>{"--port", std::to_string(port), "--topic", "t", "--partitions", "2"},
        dir.file("stderr.log"));
    if (!dev->bootstraps.empty()) break;
    ASSERT_EQ(dev->daemon->wait(), 1) << slurp(dir.file("stderr.log"));
    ASSERT_NE(slurp(dir.file("stderr.log")).find("in use"), std::string::npos) << slurp(dir.file("stderr.log"));
  }
  ASSERT_FALSE(dev->bootstraps.empty()) << dev->banner_text() << slurp(dir.file("stderr.log"));
  ASSERT_EQ(dev->bootstraps.rfind("127.0.0.1:", 0), 0u) << dev->bootstraps;
  EXPECT_EQ(std::count(dev->bootstraps.begin(), dev->bootstraps.end(), ','), 0) << "one broker by default";

  // The banner comes first and says what this is.
  std::string banner = dev->banner_text();
  EXPECT_NE(banner.find("IN-MEMORY AND FOR DEVELOPMENT ONLY"), std::string::npos) << banner;
  EXPECT_NE(banner.find("5 MB"), std::string::npos) << banner;
  EXPECT_NE(banner.find("dropped SILENTLY"), std::string::npos) << banner;
  EXPECT_NE(banner.find("topics created with 2 partition(s): t"), std::string::npos) << banner;
  EXPECT_NE(banner.find("127.0.0.1:" + std::to_string(port) + " is forwarded to broker 1 (" + dev->bootstraps + ")"),
            std::string::npos)
      << banner;

  const std::string via_port = "127.0.0.1:" + std::to_string(port);
  auto a = kafka_produce(dev->bootstraps, "t",
                         {{.key = "via-brokers", .value = "1", .headers = {{"h", "a"}}, .partition = 1}});
  auto b = kafka_produce(via_port, "t", {{.key = "via-port", .value = "2", .headers = {{"h", "b"}}, .partition = 1}});
  EXPECT_EQ(a[0].offset, 0);
  EXPECT_EQ(b[0].offset, 1);
  // --partitions 2: there is no partition 2.
  EXPECT_THROW(kafka_produce(via_port, "t", {{.key = "k", .value = "v", .partition = 2}}, std::chrono::milliseconds(1500)),
               std::runtime_error);

  for (const std::string& bootstrap : {via_port, dev->bootstraps}) {
    auto got = kafka_consume_all(bootstrap, "t", 2);
    ASSERT_EQ(got.size(), 2u) << bootstrap;
    EXPECT_EQ(got[0].key, "via-brokers");
    EXPECT_EQ(got[0].value, "1");
    EXPECT_EQ(got[0].headers, (std::vector<std::pair<std::string, std::string>>{{"h", "a"}}));
    EXPECT_EQ(got[1].key, "via-port");
    EXPECT_EQ(got[1].headers, (std::vector<std::pair<std::string, std::string>>{{"h", "b"}}));
    EXPECT_EQ(got[1].partition, 1);
    EXPECT_EQ(got[1].offset, 1);
  }

  dev->daemon->signal(SIGTERM);
  std::string line;
  EXPECT_FALSE(dev->daemon->line(line)) << "nothing after the bootstrap line: " << line;
  EXPECT_EQ(dev->daemon->wait(), 0) << slurp(dir.file("stderr.log"));
  EXPECT_NE(slurp(dir.file("stderr.log")).find("stopping"), std::string::npos) << slurp(dir.file("stderr.log"));
}

TEST(DevKafka, SeveralBrokersAndSigint) {
  TempDir dir;
  DevKafka dev({"--brokers", "3"}, dir.file("stderr.log"));
  ASSERT_FALSE(dev.bootstraps.empty()) << dev.banner_text() << slurp(dir.file("stderr.log"));
  EXPECT_EQ(std::count(dev.bootstraps.begin(), dev.bootstraps.end(), ','), 2) << dev.bootstraps;
  EXPECT_EQ(dev.banner_text().find("is forwarded"), std::string::npos) << "no --port, no forwarder";
  // A topic nobody created: made on first use, with the mock's fixed 4 partitions.
  EXPECT_EQ(kafka_produce(dev.bootstraps, "auto", {{.key = "k", .value = "v", .partition = 3}})[0].partition, 3);
  dev.daemon->signal(SIGINT);
  EXPECT_EQ(dev.daemon->wait(), 0) << slurp(dir.file("stderr.log"));
}

TEST(DevKafka, APortInUseIsAnErrorBeforeTheBanner) {
  TempDir dir;
  Socket taken(true);
  DevKafka dev({"--port", std::to_string(taken.port)}, dir.file("stderr.log"));
  EXPECT_TRUE(dev.bootstraps.empty());
  EXPECT_TRUE(dev.banner.empty()) << dev.banner_text();
  EXPECT_EQ(dev.daemon->wait(), 1);
  EXPECT_NE(slurp(dir.file("stderr.log")).find("cannot listen on 127.0.0.1:" + std::to_string(taken.port)),
            std::string::npos)
      << slurp(dir.file("stderr.log"));
}

TEST(DevKafka, UsageErrorsExitTwoWithTheReason) {
  TempDir dir;
  struct Case {
    std::vector<std::string> args;
    std::string says;
  };
  for (const Case& c : {Case{{"--partitions", "0"}, "--partitions is a whole number from 1 to 1000, not '0'"},
                        Case{{"--brokers"}, "--brokers needs a value"},
                        Case{{"--port", "99999"}, "--port is a whole number from 1 to 65535"},
                        Case{{"--topic", "a/b"}, "--topic 'a/b'"},
                        Case{{"--topic", "t", "--topic", "t"}, "--topic t is given twice"},
                        Case{{"--bogus"}, "unknown option --bogus"}}) {
    DevKafka dev(c.args, dir.file("stderr.log"));
    EXPECT_TRUE(dev.bootstraps.empty());
    EXPECT_EQ(dev.daemon->wait(), 2) << c.says;
    std::string err = slurp(dir.file("stderr.log"));
    EXPECT_NE(err.find(c.says), std::string::npos) << err;
    EXPECT_NE(err.find("Usage:"), std::string::npos) << err;
  }
  // `dev` alone, or with something other than kafka.
  Daemon d({"dev", "zookeeper"}, dir.file("stderr.log"));
  EXPECT_EQ(d.wait(), 2);
  EXPECT_NE(slurp(dir.file("stderr.log")).find("dev needs 'kafka'"), std::string::npos);
}

}  // namespace
