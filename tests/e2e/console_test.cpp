// The web console in a real browser: the daemon bound off loopback with a token, and
// tests/tools/console_check.mjs driving headless Chromium through the token form, the flows view
// (a finished flow's numbers checked against /flows), a flow's pipeline and live tap, and a dead
// letter of a running flow replayed.
// Screenshots are kept in the build tree (test-artifacts/console/).
#include "daemon.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

using edgeflow::test::Daemon;
using edgeflow::test::TempDir;

TEST(Console, WorksInHeadlessChromium) {
  TempDir dir;
  const std::string token = "console-test-token-0123456789";
  std::string flows = dir.write("flows.yaml", R"yaml(flow: live
source: { type: generate, rate: 20 }
steps: [ { type: passthrough } ]
sinks: { out: { type: drop } }
---
flow: done
source: { type: generate, count: 20 }
sinks: { out: { type: drop } }
---
flow: rejects
source: { type: generate, rate: 5 }
steps: [ { type: map, set: { n: "int(key)" } } ]
sinks: { out: { type: drop } }
)yaml");
  std::string token_file = dir.write("token", token + "\n");
  uint16_t port = edgeflow::test::free_loopback_port();
  Daemon d({"run", "--state-dir", dir.file("state"), "--admin", "0.0.0.0:" + std::to_string(port), "--admin-token-file",
            token_file, flows},
           dir.file("err.log"));
  std::string base = "http://127.0.0.1:" + std::to_string(port);
  // Ready when the finite flow has ended and dead letters are in the store (the rejecting flow
  // keeps running: a replay goes into a running flow).
  ASSERT_TRUE(edgeflow::test::poll_until([&] {
    auto flows = edgeflow::test::run_command({"curl", "-s", "-H", "Authorization: Bearer " + token, base + "/flows/done"});
    auto dlq = edgeflow::test::run_command({"curl", "-s", "-H", "Authorization: Bearer " + token, base + "/dlq?limit=1"});
    return flows.out.find("\"state\":\"finished\"") != std::string::npos && dlq.out.find("\"count\":1") != std::string::npos;
  })) << edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log")));
  auto r = edgeflow::test::run_command({"node", std::string(EDGEFLOW_SOURCE_DIR) + "/tests/tools/console_check.mjs", base,
                                        token, EDGEFLOW_SCREENSHOTS},
                                       "", std::chrono::seconds(120));
  EXPECT_EQ(r.status, 0) << r.out << r.err << edgeflow::test::join(edgeflow::test::read_lines(dir.file("err.log")));
}
