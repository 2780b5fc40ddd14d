// The repair station end to end, with the daemon and the `edgeflow dlq` CLI as child processes:
// poison events dead-lettered by a validate step, the schema fixed and the daemon restarted,
// `dlq replay` delivering the repaired ones (marked replayed, carrying the replay header) while
// one still refused comes back with its history, then purges by filter; and the admin API's /dlq.
#include "daemon.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <csignal>

using edgeflow::test::CommandResult;
using edgeflow::test::Daemon;
using edgeflow::test::read_lines;
using edgeflow::test::TempDir;

namespace {

class Repair : public ::testing::Test {
 protected:
  TempDir dir;
  int admin_port = edgeflow::test::free_loopback_port();

  std::string flow(const std::string& qty_schema) {
    return dir.write("orders.yaml", R"(flow: orders
source: { type: file, path: )" + dir.file("in.jsonl") + R"(, follow: true, poll_interval: 20ms }
steps:
  - type: validate
    schema: { type: object, required: [id, qty], properties: { qty: )" + qty_schema + R"( } }
  - type: map
    set: { replay_of: 'headers["edgeflow-replay-of"]' }
sinks:
  out: { type: file, path: )" + dir.file("out.jsonl") + R"( }
)");
  }
  std::unique_ptr<Daemon> start(const std::string& file, const std::string& log) {
    return std::make_unique<Daemon>(std::vector<std::string>{"run", "--state-dir", dir.file("state"), "--admin",
                                                             "127.0.0.1:" + std::to_string(admin_port), file},
                                    dir.file(log));
  }
  CommandResult dlq(std::vector<std::string> args) {
    args.insert(args.begin(), {EDGEFLOW_BIN, "dlq"});
    args.insert(args.end(), {"--state-dir", dir.file("state"), "--admin", "127.0.0.1:" + std::to_string(admin_port)});
    return edgeflow::test::run_command(args);
  }
  static int count(const std::string& json) {
    size_t at = json.find("\"count\":");
    return at == std::string::npos ? -1 : std::stoi(json.substr(at + 8));
  }
  // The id of the letter whose payload has this order id (from `dlq list --json` and show).
  int64_t letter_of(int order) {
    auto all = dlq({"list", "--json"}).out;
    for (size_t at = 0; (at = all.find("{\"id\":", at)) != std::string::npos; ++at) {
      int64_t id = std::stoll(all.substr(at + 6));
      auto shown = dlq({"show", std::to_string(id), "--json"}).out;
      std::string head = "\"payload\":\"{\\\"id\\\":" + std::to_string(order);
      if (shown.find(head + ",") != std::string::npos || shown.find(head + "}") != std::string::npos) return id;
    }
    return -1;
  }
  std::string log(const std::string& file) { return edgeflow::test::join(read_lines(dir.file(file))); }
};

}  // namespace

TEST_F(Repair, PoisonEventsAreRepairedReplayedAndPurged) {
  dir.write("in.jsonl", R"({"id":1,"qty":5}
{"id":2,"qty":"5"}
{"id":3}
{"id":4,"qty":7}
)");
  // The schema wants an integer: 2 (a string) and 3 (none) are dead-lettered by steps[0].
  auto d = start(flow("{ type: integer }"), "run1.log");
  ASSERT_TRUE(edgeflow::test::poll_until([&] { return count(dlq({"list", "--json"}).out) == 2; }, std::chrono::seconds(60)))
      << log("run1.log");
  ASSERT_TRUE(edgeflow::test::poll_until([&] { return read_lines(dir.file("out.jsonl")).size() == 2; }));
  auto listed = dlq({"list"});
  EXPECT_EQ(listed.status, 0) << listed.err;
  EXPECT_NE(listed.out.find("orders"), std::string::npos) << listed.out;
  EXPECT_NE(listed.out.find("steps[0]"), std::string::npos) << listed.out;
  int64_t two = letter_of(2), three = letter_of(3);
  ASSERT_GT(two, 0);
  ASSERT_GT(three, 0);
  auto shown = dlq({"show", std::to_string(two)});
  EXPECT_EQ(shown.status, 0) << shown.err;
  EXPECT_NE(shown.out.find("stage:     steps[0]"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("{\"id\":2,\"qty\":\"5\"}"), std::string::npos) << shown.out;
  EXPECT_NE(shown.out.find("qty"), std::string::npos) << shown.out;  // the reason names the field
  d->signal(SIGTERM);
  ASSERT_EQ(d->wait(), 0) << log("run1.log");

  // The schema fixed (a quantity may come as text) and the daemon restarted; 3 still has none.
  d = start(flow("{ type: [integer, string] }"), "run2.log");
  ASSERT_TRUE(edgeflow::test::poll_until([&] {
    return edgeflow::test::run_command({"curl", "-sf", "http://127.0.0.1:" + std::to_string(admin_port) + "/ready"}).status == 0;
  }, std::chrono::seconds(60))) << log("run2.log");
  auto r = dlq({"replay", "--flow", "orders"});
  EXPECT_EQ(r.status, 1) << r.out << r.err;  // not all delivered
  EXPECT_NE(r.out.find("\"replayed\":2,\"delivered\":1,\"rejected_again\":1,\"not_finished\":0"), std::string::npos)
      << r.out << r.err << log("run2.log");

  // 2 went on from the step that refused it, with the replay header.
  auto out = read_lines(dir.file("out.jsonl"));
  ASSERT_EQ(out.size(), 3u) << log("run2.log");
  EXPECT_EQ(out[2], R"({"id":2,"qty":"5","replay_of":")" + std::to_string(two) + "\"}");
  auto replayed = dlq({"show", std::to_string(two), "--json"}).out;
  EXPECT_NE(replayed.find("\"state\":\"replayed\""), std::string::npos) << replayed;
  EXPECT_NE(replayed.find("\"replays\":1"), std::string::npos) << replayed;
  // 3 failed again: one letter still, new again, its first failure in its history.
  auto again = dlq({"show", std::to_string(three), "--json"}).out;
  EXPECT_NE(again.find("\"state\":\"new\""), std::string::npos) << again;
  EXPECT_NE(again.find("\"replays\":1"), std::string::npos) << again;
  EXPECT_NE(again.find("\"history\":[{\"stage\":\"steps[0]\",\"reason\":"), std::string::npos) << again;
  EXPECT_EQ(count(dlq({"list", "--json"}).out), 2);
  // Replayed once more, it keeps every failure.
  r = dlq({"replay", "--id", std::to_string(three)});
  EXPECT_NE(r.out.find("\"rejected_again\":1"), std::string::npos) << r.out << r.err;
  again = dlq({"show", std::to_string(three), "--json"}).out;
  EXPECT_NE(again.find("\"replays\":2"), std::string::npos) << again;
  EXPECT_NE(again.find("\"history\":[{\"stage\":\"steps[0]\""), std::string::npos) << again;
  EXPECT_NE(again.find("},{\"stage\":\"steps[0]\""), std::string::npos) << again;
  // A letter already replayed is not replayed again unless asked for by id.
  r = dlq({"replay", "--flow", "orders", "--state", "replayed", "--limit", "0"});
  EXPECT_EQ(r.status, 2) << r.out << r.err;  // limit 0 is refused

  // The admin API: the same letters; actions only as JSON POSTs.
  auto api = edgeflow::test::run_command({"curl", "-s", "http://127.0.0.1:" + std::to_string(admin_port) + "/dlq?state=new"});
  EXPECT_EQ(count(api.out), 1) << api.out;
  api = edgeflow::test::run_command(
      {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST", "http://127.0.0.1:" + std::to_string(admin_port) + "/dlq/purge?all=true"});
  EXPECT_EQ(api.out, "415");  // a plain form POST, as a web page could send
  api = edgeflow::test::run_command(
      {"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:" + std::to_string(admin_port) + "/dlq/replay"});
  EXPECT_EQ(api.out, "405");
  api = edgeflow::test::run_command({"curl", "-s", "http://127.0.0.1:" + std::to_string(admin_port) + "/dlq/" + std::to_string(two)});
  EXPECT_NE(api.out.find("\"payload\":\"{\\\"id\\\":2"), std::string::npos) << api.out;

  // Purge by filter: without one it refuses; then the replayed letter, then by reason.
  auto p = dlq({"purge"});
  EXPECT_EQ(p.status, 2);
  EXPECT_NE(p.err.find("purge needs a filter"), std::string::npos) << p.err;
  p = dlq({"purge", "--state", "replayed"});
  EXPECT_EQ(p.out, "purged 1 letter(s)\n") << p.err;
  EXPECT_EQ(count(dlq({"list", "--json"}).out), 1);
  p = dlq({"purge", "--reason", "no-such-reason"});
  EXPECT_EQ(p.out, "purged 0 letter(s)\n") << p.err;
  p = dlq({"purge", "--flow", "orders", "--reason", "qty"});
  EXPECT_EQ(p.out, "purged 1 letter(s)\n") << p.err;
  EXPECT_EQ(count(dlq({"list", "--json"}).out), 0);
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0) << log("run2.log");
}
