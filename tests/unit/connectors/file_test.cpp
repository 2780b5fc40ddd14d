// The file source and sink through the SDK harness: positions, resumption, follow, and how
// write failures turn into retries.
#include "file.cpp"

#include "test_support.hpp"

#include <edgeflow/testing/harness.hpp>

#include <gtest/gtest.h>

#include <thread>

using edgeflow::testing::ConfigError;
using edgeflow::testing::Harness;
using edgeflow::test::read_lines;
using edgeflow::test::TempDir;

namespace {

std::vector<std::string> payloads(const std::vector<edgeflow::testing::Output>& out) {
  std::vector<std::string> p;
  for (auto& o : out) p.push_back(o.payload);
  return p;
}

class FileSourceTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::string in = dir.file("in.jsonl");
  edgeflow::testing::Options opts{.state_dir = dir.file("state")};
  std::string config(const std::string& extra = "") { return "path: " + in + "\n" + extra; }
};

}  // namespace

TEST_F(FileSourceTest, EmitsOneMessagePerLineSkippingBlankOnes) {
  dir.write("in.jsonl", "{\"a\":1}\r\n\n   \n{\"a\":2}\n{\"a\":3}");
  Harness<FileSource> h(config("batch_size: 2"), opts);
  h.run();
  auto out = h.emitted();
  EXPECT_EQ(payloads(out), (std::vector<std::string>{"{\"a\":1}", "{\"a\":2}", "{\"a\":3}"}));
  EXPECT_EQ(out[0].content_type, "application/json");
  EXPECT_GT(out[0].timestamp_ms, 1700000000000);  // the time it was read
}

TEST_F(FileSourceTest, ResumesAfterTheContiguousPrefixOfResolvedLines) {
  dir.write("in.jsonl", "l0\nl1\nl2\nl3\n");
  {
    Harness<FileSource> h(config(), opts);
    h.run();
    ASSERT_EQ(h.emitted_count(), 4u);
    // l2 is still open: only l0 and l1 may be committed, although l3 is done.
    h.ack(0);
    h.ack(3);
    h.ack(1, EF_ACK_REJECTED);  // dead-lettered counts as resolved
    h.ack(2, EF_ACK_RETRY);
  }
  Harness<FileSource> again(config(), opts);
  again.run();
  EXPECT_EQ(payloads(again.emitted()), (std::vector<std::string>{"l2", "l3"}));
}

TEST_F(FileSourceTest, AStoredPositionForAnotherFileIsIgnored) {
  dir.write("in.jsonl", "a\nb\n");
  {
    Harness<FileSource> h(config(), opts);
    h.run();
    h.ack_all_emitted();
  }
  // The file was replaced (new inode): start from its beginning, and say so.
  std::filesystem::remove(in);
  dir.write("in.jsonl", "c\nd\ne\n");
  Harness<FileSource> h(config(), opts);
  h.run();
  EXPECT_EQ(payloads(h.emitted()), (std::vector<std::string>{"c", "d", "e"}));
  auto logs = h.logs();
  ASSERT_FALSE(logs.empty());
  EXPECT_NE(logs[0].find("is for another file or a truncated one"), std::string::npos) << logs[0];
}

TEST_F(FileSourceTest, FollowPicksUpAppendedLinesAndCompletedPartialOnes) {
  dir.write("in.jsonl", "one\ntw");
  Harness<FileSource> h(config("follow: true\npoll_interval: 5ms"), opts);
  std::thread t([&] { h.run(); });
  ASSERT_TRUE(h.wait_emitted(1));
  {
    std::ofstream(in, std::ios::app) << "o\nthree\n";
  }
  ASSERT_TRUE(h.wait_emitted(3));
  h.request_stop();
  t.join();
  EXPECT_EQ(payloads(h.emitted()), (std::vector<std::string>{"one", "two", "three"}));
}

TEST_F(FileSourceTest, AMissingFileFailsStartWithItsName) {
  Harness<FileSource> h(config(), opts);
  try {
    h.start();
    FAIL() << "start did not throw";
  } catch (const edgeflow::sdk::Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open " + in + ": No such file or directory"), std::string::npos)
        << e.what();
  }
}

TEST_F(FileSourceTest, PathIsRequired) {
  try {
    Harness<FileSource> h("follow: true");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("path: required option missing; add `path: "), std::string::npos) << e.what();
  }
}

TEST(FileSink, AppendsOneLinePerMessageAndAcksDelivered) {
  TempDir dir;
  std::string out = dir.file("sub/dir/out.jsonl");
  Harness<FileSink> h("path: " + out);
  h.write({{.payload = "{\"a\":1}"}, {.payload = "{\"a\":2}"}});
  h.write({{.payload = "{\"a\":3}"}});
  auto acks = h.wait_acks(3);
  ASSERT_EQ(acks.size(), 3u);
  for (auto& a : acks) EXPECT_EQ(a.status, EF_ACK_DELIVERED);
  EXPECT_EQ(read_lines(out), (std::vector<std::string>{"{\"a\":1}", "{\"a\":2}", "{\"a\":3}"}));
}

TEST(FileSink, APayloadWithANewlineIsRejectedNotSplit) {
  TempDir dir;
  Harness<FileSink> h("path: " + dir.file("out.jsonl") + "\nfsync: false");
  h.write({{.payload = "{\"a\":\n1}"}, {.payload = "ok"}});
  auto acks = h.wait_acks(2);
  ASSERT_EQ(acks.size(), 2u);
  EXPECT_EQ(acks[0].status, EF_ACK_REJECTED);
  EXPECT_NE(acks[0].reason.find("payload contains a newline"), std::string::npos);
  EXPECT_EQ(acks[1].status, EF_ACK_DELIVERED);
  EXPECT_EQ(read_lines(dir.file("out.jsonl")), std::vector<std::string>{"ok"});
}

TEST(FileSink, AFullDiskIsARetryWithTheReason) {
  Harness<FileSink> h("path: /dev/full");
  h.write({{.payload = "x"}, {.payload = "y"}});
  auto acks = h.wait_acks(2);
  ASSERT_EQ(acks.size(), 2u);
  for (auto& a : acks) {
    EXPECT_EQ(a.status, EF_ACK_RETRY);
    EXPECT_NE(a.reason.find("cannot write /dev/full: No space left on device"), std::string::npos) << a.reason;
  }
}

TEST(FileSink, AnUnwritableDirectoryFailsStart) {
  Harness<FileSink> h("path: /proc/edgeflow/out.jsonl");
  EXPECT_THROW(h.start(), edgeflow::sdk::Error);
}
