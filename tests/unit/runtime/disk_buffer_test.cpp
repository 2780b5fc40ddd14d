// The durable buffer's store: durable appends, order, the size bound, a process killed while it
// appends, and a damaged byte on disk.
#include "disk_buffer.hpp"
#include "test_support.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <iterator>
#include <sys/wait.h>
#include <unistd.h>

using edgeflow::DiskBuffer;
using edgeflow::test::TempDir;

namespace {

std::vector<std::string> bodies(const std::vector<DiskBuffer::Record>& rs) {
  std::vector<std::string> out;
  for (auto& r : rs) out.push_back(r.body);
  return out;
}

}  // namespace

TEST(DiskBuffer, RecordsOutliveTheProcessInOrderUntilRemoved) {
  TempDir dir;
  std::string path = dir.file("buffer/flow/out.sqlite");
  int64_t first_seq = 0;
  {
    DiskBuffer b(path, 1 << 20);
    ASSERT_EQ(b.append({"a", "bb"}, 1000), 2u);
    ASSERT_EQ(b.append({"ccc"}, 2000), 1u);
    std::vector<DiskBuffer::Damaged> damaged;
    auto rs = b.read(0, 10, damaged);
    ASSERT_EQ(rs.size(), 3u);
    first_seq = rs[0].seq;
    b.remove({first_seq});
    EXPECT_EQ(b.stats().records, 2u);
    EXPECT_EQ(b.stats().bytes, 5u);
    EXPECT_EQ(b.stats().oldest_ms, 1000);
  }
  DiskBuffer b(path, 1 << 20);
  EXPECT_EQ(b.stats().records, 2u);
  EXPECT_EQ(b.stats().bytes, 5u);
  std::vector<DiskBuffer::Damaged> damaged;
  auto rs = b.read(0, 10, damaged);
  EXPECT_EQ(bodies(rs), (std::vector<std::string>{"bb", "ccc"}));
  EXPECT_GT(rs[0].seq, first_seq);
  EXPECT_EQ(bodies(b.read(rs[0].seq, 10, damaged)), (std::vector<std::string>{"ccc"}));
  b.remove({rs[0].seq, rs[1].seq, 999999});  // an unknown seq is no error
  EXPECT_EQ(b.stats().records, 0u);
  EXPECT_EQ(b.stats().oldest_ms, 0);
  // Sequence numbers never go back, even after the buffer was empty.
  ASSERT_EQ(b.append({"d"}, 3000), 1u);
  EXPECT_GT(b.last_seq(), rs[1].seq);
  EXPECT_GT(b.read(0, 1, damaged).at(0).seq, rs[1].seq);
  EXPECT_TRUE(damaged.empty());
}

TEST(DiskBuffer, AnAppendTakesWhatFitsWithinMaxBytesInOrder) {
  TempDir dir;
  DiskBuffer b(dir.file("b.sqlite"), 10);
  EXPECT_EQ(b.append({"12345", "1234"}, 1), 2u);
  EXPECT_EQ(b.last_seq(), 2);
  EXPECT_EQ(b.append({"12", "3"}, 2), 0u);  // the first does not fit: nothing after it either
  EXPECT_EQ(b.stats().bytes, 9u);
  EXPECT_EQ(b.append({"x", "y"}, 3), 1u);  // exactly 10
  EXPECT_EQ(b.last_seq(), 3);
  std::vector<DiskBuffer::Damaged> damaged;
  auto rs = b.read(0, 100, damaged);
  EXPECT_EQ(bodies(rs), (std::vector<std::string>{"12345", "1234", "x"}));
  b.remove({rs[0].seq});
  EXPECT_EQ(b.append({"y"}, 5), 1u);
  EXPECT_EQ(b.last_seq(), 4);
}

// A child appends and says so after each append returned; it is killed at a random point. Every
// append it reported is there afterwards, whole, and no batch is there in part.
TEST(DiskBuffer, AProcessKilledWhileAppendingLosesNothingItWasToldWasStored) {
  TempDir dir;
  std::string path = dir.file("crash.sqlite");
  for (int round = 0; round < 5; ++round) {
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      DiskBuffer b(path, uint64_t(1) << 30);
      for (int i = 0;; ++i) {
        std::string tag = std::to_string(round) + ":" + std::to_string(i);
        std::string a = tag + ":a", c = tag + ":c";
        if (b.append({a, std::string(4000, 'x'), c}, i) != 3) _exit(3);
        if (write(fds[1], "+", 1) != 1) _exit(4);
      }
    }
    close(fds[1]);
    // Let it get some appends done, then kill it wherever it is.
    char c;
    for (int k = 0; k < 20 + round * 7; ++k) ASSERT_EQ(read(fds[0], &c, 1), 1);
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFSIGNALED(status));
    size_t reported = 0;
    while (read(fds[0], &c, 1) == 1) ++reported;
    reported += size_t(20 + round * 7);
    close(fds[0]);

    DiskBuffer b(path, uint64_t(1) << 30);
    std::vector<DiskBuffer::Damaged> damaged;
    auto rs = b.read(0, 1000000, damaged);
    EXPECT_TRUE(damaged.empty());
    size_t mine = 0;
    for (size_t i = 0; i < rs.size(); ++i) {
      if (rs[i].body.rfind(std::to_string(round) + ":", 0) != 0 || rs[i].body.back() != 'a') continue;
      ++mine;
      ASSERT_LT(i + 2, rs.size());  // a batch is whole
      EXPECT_EQ(rs[i + 1].body.size(), 4000u);
      EXPECT_EQ(rs[i + 2].body, rs[i].body.substr(0, rs[i].body.size() - 1) + "c");
    }
    EXPECT_GE(mine, reported) << "round " << round;
    EXPECT_LE(mine, reported + 1) << "round " << round;  // at most the one being appended when killed
  }
}

TEST(DiskBuffer, ADamagedByteSetsItsRecordAsideAndTheRestIsRead) {
  TempDir dir;
  std::string path = dir.file("d.sqlite");
  {
    DiskBuffer b(path, 1 << 20);
    ASSERT_EQ(b.append({"first record", "SECOND-RECORD-MARKER payload", "third record"}, 7), 3u);
  }
  // The closed database has no WAL left: the bodies are in the main file.
  std::string bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  size_t at = bytes.find("SECOND-RECORD-MARKER");
  ASSERT_NE(at, std::string::npos);
  bytes[at + 3] ^= 0x20;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;

  DiskBuffer b(path, 1 << 20);
  std::vector<DiskBuffer::Damaged> damaged;
  auto rs = b.read(0, 10, damaged);
  EXPECT_EQ(bodies(rs), (std::vector<std::string>{"first record", "third record"}));
  ASSERT_EQ(damaged.size(), 1u);
  EXPECT_NE(damaged[0].reason.find("is damaged: checksum"), std::string::npos) << damaged[0].reason;
  EXPECT_EQ(damaged[0].body, "SECoND-RECORD-MARKER payload");
  EXPECT_EQ(b.stats().records, 3u);  // kept until dealt with (dead-lettered), then removed
  damaged.clear();
  EXPECT_EQ(b.read(0, 10, damaged).size(), 2u);
  ASSERT_EQ(damaged.size(), 1u);
  b.remove({damaged[0].seq});
  damaged.clear();
  EXPECT_EQ(b.read(0, 10, damaged).size(), 2u);
  EXPECT_TRUE(damaged.empty());
  EXPECT_EQ(b.stats().records, 2u);
}

TEST(DiskBuffer, AFileThatIsNotABufferIsRefusedWithItsPath) {
  TempDir dir;
  std::string path = dir.write("junk.sqlite", std::string(8192, 'j'));
  try {
    DiskBuffer b(path, 100);
    FAIL() << "opened";
  } catch (const edgeflow::BufferError& e) {
    EXPECT_NE(std::string(e.what()).find("buffer " + path + ": "), std::string::npos) << e.what();
  }
}
