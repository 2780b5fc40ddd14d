// Hot reload against the real daemon: a changed, an added and a removed flow while an unchanged
// one keeps running with its counters; an invalid edit that changes nothing and says why; and
// the three ways in: `edgeflow reload` (POST /reload), SIGHUP, and a flow file written.
#include "daemon.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <thread>

using edgeflow::test::CommandResult;
using edgeflow::test::Daemon;
using edgeflow::test::read_lines;
using edgeflow::test::TempDir;

namespace {

class Reload : public ::testing::Test {
 protected:
  TempDir dir;
  int admin_port = edgeflow::test::free_loopback_port();
  std::string flows = dir.file("flows");

  std::string admin() { return "127.0.0.1:" + std::to_string(admin_port); }
  // An endless flow writing to out/<out>.jsonl.
  void write_flow(const std::string& name, const std::string& out, const std::string& extra = "") {
    std::filesystem::create_directories(flows);
    std::string tmp = dir.file(name + ".tmp");
    std::ofstream(tmp) << "flow: " << name << "\nsource: { type: generate, rate: 200 }\n" << extra
                       << "sinks:\n  out: { type: file, path: " << dir.file(out + ".jsonl") << ", fsync: false }\n";
    std::filesystem::rename(tmp, flows + "/" + name + ".yaml");  // as an editor or a deploy does
  }
  CommandResult get(const std::string& path) {
    return edgeflow::test::run_command({"curl", "-s", "http://" + admin() + path});
  }
  CommandResult reload() {
    return edgeflow::test::run_command({EDGEFLOW_BIN, "reload", "--admin", admin()});
  }
  static long number(const std::string& json, const std::string& key) {
    size_t at = json.find("\"" + key + "\":");
    return at == std::string::npos ? -1 : std::stol(json.substr(at + key.size() + 3));
  }
  long emitted(const std::string& flow) { return number(get("/flows/" + flow).out, "emitted"); }
  bool lines_grow(const std::string& out) {
    size_t before = read_lines(dir.file(out + ".jsonl")).size();
    return edgeflow::test::poll_until([&] { return read_lines(dir.file(out + ".jsonl")).size() > before + 20; });
  }
  std::string log() { return edgeflow::test::join(read_lines(dir.file("err.log"))); }
};

}  // namespace

TEST_F(Reload, OnlyWhatChangedRestartsAndAnInvalidEditChangesNothing) {
  write_flow("steady", "steady");
  write_flow("edited", "edited-1");
  write_flow("dropped", "dropped");
  Daemon d({"run", "--state-dir", dir.file("state"), "--admin", admin(), flows}, dir.file("err.log"));
  ASSERT_TRUE(edgeflow::test::poll_until([&] { return get("/ready").out.find("\"ready\":true") != std::string::npos; },
                                         std::chrono::seconds(60)))
      << log();
  ASSERT_TRUE(lines_grow("steady"));
  long steady_before = emitted("steady");
  ASSERT_GT(steady_before, 0);

  // A tap of a flow that is about to change: the reload ends it (curl exits 0, not on its timeout).
  CommandResult tapped;
  std::thread tap([&] {
    tapped = edgeflow::test::run_command(
        {"curl", "-sN", "--max-time", "60", "-o", dir.file("tap.txt"), "http://" + admin() + "/flows/edited/tap?rate=1000"});
  });
  // Open: events arrive.
  ASSERT_TRUE(edgeflow::test::poll_until([&] { return !read_lines(dir.file("tap.txt")).empty(); }));

  // One changed, one added, one removed: `edgeflow reload` says which, and the steady flow goes on
  // counting where it was (a restarted flow would count from 0 again).
  write_flow("edited", "edited-2");
  write_flow("added", "added");
  std::filesystem::remove(flows + "/dropped.yaml");
  auto r = reload();
  EXPECT_EQ(r.status, 0) << r.out << r.err << log();
  EXPECT_NE(r.out.find("\"status\":\"applied\""), std::string::npos) << r.out;
  // The file watch may have applied part of it first: then this reload finds less to do.
  auto last = get("/reload").out;
  EXPECT_NE(last.find("\"status\":\"applied\""), std::string::npos) << last;
  EXPECT_GE(emitted("steady"), steady_before) << "the unchanged flow was restarted";
  EXPECT_TRUE(lines_grow("edited-2")) << log();
  EXPECT_TRUE(lines_grow("added")) << log();
  EXPECT_NE(get("/flows/dropped").out.find("no flow named"), std::string::npos);
  EXPECT_EQ(number(get("/flows/steady").out, "restarts"), 0);
  tap.join();
  EXPECT_EQ(tapped.status, 0) << tapped.err;
  EXPECT_NE(edgeflow::test::join(read_lines(dir.file("tap.txt"))).find("\"flow\":\"edited\""), std::string::npos);
  // What a stopped flow did is logged as at an exit.
  EXPECT_NE(log().find("flow=dropped msg=\"ended stopped: emitted="), std::string::npos) << log();

  // An invalid edit: nothing changes, and the errors name the file, the line and the key.
  long edited_before = emitted("edited");
  std::ofstream(flows + "/edited.yaml") << "flow: edited\nsource: { type: generate, rate: fast }\nsinks: { out: { type: drop } }\n";
  r = reload();
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("\"status\":\"invalid\""), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("edited.yaml:2:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("source.rate"), std::string::npos) << r.out;
  EXPECT_TRUE(lines_grow("edited-2")) << "the old definition must keep running";
  EXPECT_GE(emitted("edited"), edited_before);
  EXPECT_GE(emitted("steady"), steady_before);

  // SIGHUP, with the file fixed: applied.
  write_flow("edited", "edited-3");
  d.signal(SIGHUP);
  EXPECT_TRUE(lines_grow("edited-3")) << log();
  EXPECT_NE(log().find("reloading the flow files"), std::string::npos);
  EXPECT_GE(emitted("steady"), steady_before);
  EXPECT_EQ(number(get("/flows/steady").out, "restarts"), 0);

  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0) << log();
}

// Written and left alone, a flow file is picked up by itself.
TEST_F(Reload, AWrittenFlowFileIsPickedUpWithoutBeingAsked) {
  write_flow("first", "first");
  Daemon d({"run", "--state-dir", dir.file("state"), "--admin", admin(), flows}, dir.file("err.log"));
  ASSERT_TRUE(edgeflow::test::poll_until([&] { return get("/ready").out.find("\"ready\":true") != std::string::npos; },
                                         std::chrono::seconds(60)))
      << log();
  write_flow("second", "second");
  EXPECT_TRUE(lines_grow("second")) << log();
  auto last = get("/reload").out;
  EXPECT_NE(last.find("\"started\":[\"second\"]"), std::string::npos) << last;
  EXPECT_NE(last.find("\"unchanged\":[\"first\"]"), std::string::npos) << last;
  d.signal(SIGTERM);
  EXPECT_EQ(d.wait(), 0) << log();
}
